//go:build unix

package gossip

import (
	"fmt"
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

// readBufferUsable returns the part of got, a receive buffer as the
// kernel reports it, that holds datagrams: Linux reports twice the size
// it set, to count its own bookkeeping.
func readBufferUsable(got int) int {
	if runtime.GOOS == "linux" {
		return got / 2
	}
	return got
}

// readBufferShort reports whether got, a receive buffer as the kernel
// reports it, is less than want was asked for.
func readBufferShort(got, want int) bool {
	return got > 0 && readBufferUsable(got) < want
}

// readBufferLimit names the system's limit on receive buffers and how to
// raise it to want.
func readBufferLimit(want int) string {
	if runtime.GOOS == "linux" {
		return fmt.Sprintf("net.core.rmem_max: sysctl -w net.core.rmem_max=%d, or give the process CAP_NET_ADMIN, which lets it ask past the limit", want)
	}
	return fmt.Sprintf("kern.ipc.maxsockbuf: sysctl kern.ipc.maxsockbuf=%d", 2*want)
}
