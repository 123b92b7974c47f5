package gossip

import (
	"net"
	"syscall"
)

// forceReadBufferPast asks for a receive buffer of size with
// SO_RCVBUFFORCE, which goes past net.core.rmem_max for a process allowed
// to administer the network (CAP_NET_ADMIN: root on a host, not in a
// container that drops the capability, as Docker and Kubernetes do by
// default). Elsewhere the kernel refuses it (EPERM) and the buffer stays
// as setReadBuffer left it.
func forceReadBufferPast(conn *net.UDPConn, size int) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, size)
	}); err != nil {
		return err
	}
	return serr
}
