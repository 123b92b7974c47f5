package gossip

import (
	"errors"
	"fmt"

	"github.com/bcache-go/bcache/transport/wire"
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
// get a frame or two of the newer kinds before the view is updated: its
// new metadata updates it, see NodeMeta; anti-entropy brings it what it
// refused.)
const directVersion = 1

// A member whose transport opens datagrams itself (the default UDP
// transport: direct.go) also takes a direct delta in a datagram of its
// own type (mlDirectMsg), whose one type byte stands for memberlist's
// user-message byte, the anonymous header and the wire header of a
// wire.Direct frame: four bytes less on every write's datagram to every
// peer (147 bytes to 143 for a lone write of a 16-byte key and a 100-byte
// value). Such a member's delegate protocol range reaches rawVersion;
// one with another transport (memberlist would refuse the type) stops at
// directVersion.
const rawVersion = 2

// A member at printsVersion takes too a session's Versions that carry
// their keys' prints (wire.Versions.Prints), and its sessions list them
// to each peer whose range reaches it (a session's Versions go to its
// peer alone): members of earlier releases refuse them as malformed.
// Such a member also takes what rawVersion says, so one with another
// transport, which stops at directVersion, never lists prints, nor is
// sent them: in a session with such a member, a key of a hash the
// responder holds another key of reaches the initiator only in a Reject
// that nothing awaits (see transport's package doc), as before. (Gated
// on the least range in the view, as they first were, prints went to no
// one in a cluster with such a member.)
const printsVersion = 3

// delegateMax is the highest delegate protocol version this member takes:
// printsVersion (tests play members of earlier releases with less).
var delegateMax uint8 = printsVersion

// directHeader is how a frame holding a direct delta in its short form
// starts: the anonymous header and the wire header. A datagram of type
// mlDirectMsg holds the rest.
var directHeader = [4]byte{callMarker, 0, wire.WireVersion, byte(wire.KindDirect)}

// isDirect reports whether b is a frame holding a direct delta in its
// short form, sent without its sender's name.
func isDirect(b []byte) bool { return len(b) >= len(directHeader) && [4]byte(b[:4]) == directHeader }

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
