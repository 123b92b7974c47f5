package gossip

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"slices"

	"github.com/hashicorp/memberlist"
)

// A frame too large for datagrams goes over a stream of its own, written
// here as memberlist's SendReliable writes it, so that the peer's
// memberlist reads it as ever: the label header, then either the user
// message (its type byte, a msgpack header holding its length, the frame)
// or, with a key, memberlist's encrypted stream message (its type byte, the
// big-endian length of what follows, then the encryption version, a nonce
// and the AES-GCM ciphertext of the user message, with the type byte, the
// length and the label as additional data). SendReliable copies the frame
// into a buffer grown from empty (each repair of a catch-up reallocated
// and zeroed: a sixth of the CPU of a member serving a million-key
// catch-up), and with a key into two more, making a cipher each time.
// Here a plain frame is written as it is, behind its header, and an
// encrypted one copied once, into a buffer reused (up to maxPooled),
// sealed in place with the cipher the sealer keeps. (memberlist's
// go-metrics counter memberlist.tcp.sent no longer counts these frames;
// Stats.WireStreamBytes does.)

// Memberlist's stream message types (see direct.go for the others).
const mlEncryptMsg = 10

// streamOverhead is the most an encrypted stream message adds to a frame
// within memberlist's limit: the encryption version, the nonce, the tag,
// and the user message's type byte and header with the longest length it
// takes (a 32-bit one). The label header and the encrypted message's own
// type byte and length come before, outside the limit and outside this. memberlist reads a stream message of at most
// maxStreamFrame bytes, plain or encrypted: a frame it could not read is
// refused here, and the codec's MaxFrame leaves room for this (a frame
// near the limit went, and was refused by every peer at every retry:
// found by review).
const streamOverhead = 1 + mlNonceSize + 16 + 1 + len("\x81\xaaUserMsgLen") + 5

// maxMessage is the codec's MaxFrame for frames behind a header of
// headroom bytes: the longest message a stream carries.
func maxMessage(headroom int) int { return maxStreamFrame - streamOverhead - headroom }

// maxPooled bounds the buffers the sealer keeps for streams: a frame's
// copy past it is left to the collector (each peer's sender kept one the
// size of the largest frame it sent, through a collection: found by
// review).
const maxPooled = 4 << 20

// userMsgHeader is the msgpack encoding of memberlist's header of a user
// message on a stream, a map of one entry, "UserMsgLen", whose value
// follows: userMsgLen appends it as memberlist's encoder does.
var userMsgHeader = append([]byte{0x81, 0xa0 | byte(len("UserMsgLen"))}, "UserMsgLen"...)

// userMsgLen appends n, a length, as memberlist's msgpack encoder encodes
// an int: a positive fixint up to 127, else the smallest signed integer
// that holds it.
func userMsgLen(b []byte, n int) []byte {
	switch {
	case n <= 0x7f:
		return append(b, byte(n))
	case n <= 0x7fff:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(n))
	case n <= 0x7fffffff:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
}

// userMsgHead appends the user message's type byte and header for a
// frame of n bytes.
func userMsgHead(b []byte, n int) []byte {
	return userMsgLen(append(append(b, mlUserMsg), userMsgHeader...), n)
}

// writeReliable writes frame to conn as memberlist's SendReliable does
// (see above), with s's label and key. It is safe for concurrent use.
func (s *sealer) writeReliable(conn net.Conn, frame []byte) error {
	if len(frame) > maxStreamFrame-streamOverhead {
		return fmt.Errorf("gossip: a frame of %d bytes, over the %d a peer reads", len(frame), maxStreamFrame-streamOverhead)
	}
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer func() {
		if cap(*bp) <= maxPooled {
			s.release(bp)
		}
	}()
	b := (*bp)[:0]
	if len(s.label) > 0 {
		b = append(b, mlHasLabelMsg, byte(len(s.label)))
		b = append(b, s.label...)
	}
	if s.keyring == nil {
		b = userMsgHead(b, len(frame))
		*bp = b
		return writeAll(conn, b, frame)
	}
	k, err := s.key()
	if err != nil {
		return err
	}
	head := len(b)
	b = slices.Grow(b, 5+streamOverhead+len(frame)) // one copy: Seal's tag needs no other (the type and length are outside streamOverhead)
	b = append(b, mlEncryptMsg, 0, 0, 0, 0, mlGCMVersion)
	nonceAt := len(b)
	b = append(b, make([]byte, mlNonceSize)...)
	if _, err := rand.Read(b[nonceAt:]); err != nil {
		return err
	}
	plainAt := len(b)
	b = append(userMsgHead(b, len(frame)), frame...)
	binary.BigEndian.PutUint32(b[head+1:], uint32(1+mlNonceSize+len(b)-plainAt+k.aead.Overhead()))
	// The additional data: the type byte and the length, then the label.
	aad := append(append(make([]byte, 0, 5+len(s.label)), b[head:head+5]...), s.label...)
	b = k.aead.Seal(b[:plainAt], b[nonceAt:plainAt], b[plainAt:], aad)
	*bp = b
	return writeAll(conn, b, nil)
}

// writeAll writes head and then body to conn.
func writeAll(conn net.Conn, head, body []byte) error {
	for _, b := range [][]byte{head, body} {
		if len(b) == 0 {
			continue
		}
		if n, err := conn.Write(b); err != nil {
			return err
		} else if n != len(b) {
			return fmt.Errorf("gossip: wrote %d of %d bytes to a stream", n, len(b))
		}
	}
	return nil
}

// sendReliable sends frame to the member to over a stream of its own, as
// memberlist's SendReliable would (see writeReliable), on the transport
// memberlist uses (so that the stream is counted, has its deadline and is
// cut at Close).
func (r *Replicator) sendReliable(to *memberlist.Node, frame []byte) error {
	conn, err := r.ct.DialAddressTimeout(to.FullAddress(), r.cfg.Timings.TCPTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	return r.reliable.writeReliable(conn, frame)
}
