//go:build !linux

package gossip

import (
	"errors"
	"net"
)

// forceReadBufferPast returns errors.ErrUnsupported: only Linux lets a
// privileged process go past the system's limit.
func forceReadBufferPast(*net.UDPConn, int) error { return errors.ErrUnsupported }
