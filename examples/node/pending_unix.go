//go:build unix

package main

import (
	"net"
	"syscall"
)

// hasUnread reports whether the kernel holds bytes received on c that no
// one has read yet: recv(MSG_PEEK) of one byte, which leaves it there.
// The sockets of package net are non-blocking, so the peek does not wait.
// A connection that is not a socket has none.
func hasUnread(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var n int
	var b [1]byte
	if rc.Control(func(fd uintptr) {
		n, _, err = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
	}) != nil {
		return false
	}
	return err == nil && n > 0
}
