//go:build unix

package gossip

import (
	"net"
	"runtime"
	"syscall"
)

// readBufferOf returns conn's receive buffer as the kernel reports it, or
// 0 if it cannot be read.
func readBufferOf(conn *net.UDPConn) int {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0
	}
	size := 0
	raw.Control(func(fd uintptr) {
		if n, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF); err == nil {
			size = n
		}
	})
	return size
}

// readBufferShort reports whether got, a receive buffer as the kernel
// reports it, is less than want was asked for: Linux reports twice the
// size it set, to count its own bookkeeping.
func readBufferShort(got, want int) bool {
	if runtime.GOOS == "linux" {
		got /= 2
	}
	return got > 0 && got < want
}
