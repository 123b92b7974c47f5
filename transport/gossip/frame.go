package gossip

import (
	"errors"
	"fmt"
)

// MaxNameLen bounds member names, in bytes: a frame spends one byte on
// the length.
const MaxNameLen = 255

// errFrame is a received message that is not a frame of ours.
var errFrame = errors.New("gossip: malformed frame")

// memberlist's user messages do not say who sent them, and the protocol
// must know whom to answer, so every frame starts with the sender's name:
// one length byte, the name, then the protocol frame.

// appendFrame appends the frame of payload from name to dst.
func appendFrame(dst []byte, name string, payload []byte) []byte {
	dst = append(dst, byte(len(name)))
	dst = append(dst, name...)
	return append(dst, payload...)
}

// parseFrame splits a frame into the sender's name and the protocol frame,
// which still points into b.
func parseFrame(b []byte) (from string, payload []byte, err error) {
	if len(b) < 1 || int(b[0]) == 0 || len(b) < 1+int(b[0]) {
		return "", nil, fmt.Errorf("%w: %d bytes", errFrame, len(b))
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], nil
}
