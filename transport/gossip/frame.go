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

// A protocol frame whose receiver need not know its sender (a direct
// delta: transport.Envelope.Anonymous) starts instead with a zero byte, as
// a call frame does, and a zero name length, which no call frame has: two
// bytes where the name took 1+len(name) (17 for the random names New
// draws), on the frame that every write sends to every peer. A member
// sends such frames, writes its direct deltas in their short form
// (wire.Direct) and opens its sessions with the digest's root only while
// every member's memberlist delegate protocol range reaches directVersion:
// members of earlier releases refuse the first two and misread the third.
// (A member that comes back as an earlier release under the same name may
// get a frame or two of the newer kinds before the view is updated;
// anti-entropy brings it what it refused.)
const directVersion = 1

// delegateMax is the highest delegate protocol version this member takes:
// directVersion (tests play a member of an earlier release with 0).
var delegateMax uint8 = directVersion

// anonymousHeader is the header of a frame sent without its sender's name.
var anonymousHeader = [2]byte{callMarker, 0}

// isAnonymous reports whether b is a frame sent without its sender's name.
func isAnonymous(b []byte) bool { return len(b) >= 2 && b[0] == callMarker && b[1] == 0 }

// parseFrame splits a frame into the sender's name and the protocol frame,
// which still points into b.
func parseFrame(b []byte) (from string, payload []byte, err error) {
	if len(b) < 1 || int(b[0]) == 0 || len(b) < 1+int(b[0]) {
		return "", nil, fmt.Errorf("%w: %d bytes", errFrame, len(b))
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], nil
}
