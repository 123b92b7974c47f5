//go:build !unix

package gossip

import "net"

// readBufferOf returns 0: the receive buffer is not read here.
func readBufferOf(*net.UDPConn) int { return 0 }

// readBufferUsable returns got.
func readBufferUsable(got int) int { return got }

// readBufferShort reports false: the receive buffer is not read here.
func readBufferShort(got, want int) bool { return false }

// readBufferLimit is not called where the buffer is not read.
func readBufferLimit(want int) string { return "" }
