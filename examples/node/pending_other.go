//go:build !unix

package main

import "net"

// hasUnread reports whether the kernel holds bytes received on c that no
// one has read yet; off unix it is not asked, and reports none.
func hasUnread(net.Conn) bool { return false }
