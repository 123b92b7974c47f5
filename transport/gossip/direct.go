package gossip

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"hash/crc32"
	"sync"
	"sync/atomic"

	"github.com/bcache-go/bcache/transport/wire"
	"github.com/hashicorp/memberlist"
)

// A datagram that carries one of bcache's frames passes, in memberlist,
// from the transport's reader to memberlist's packet goroutine, then
// through its handoff queue to its handler goroutine, which calls
// NotifyMsg: two goroutine handoffs, each of which, in a process whose
// other threads sleep, wakes a thread. With every member a process of its
// own on two cores, those wake-ups were most of a receiver's context
// switches, and the tail of the replication latency followed them. So
// the transport opens each datagram itself, exactly as memberlist would
// (the label, the decryption with the keyring's keys, the checksum), and a
// plain user message goes from the reader straight to the replicator.
// Anything else, or anything it cannot open, goes to memberlist as before,
// which handles, counts and logs it as it always has.

// Memberlist's message types and encryption layout (its wire format, which
// its protocol versions fix): a datagram may start with a label header
// (hasLabelMsg, a length byte, the label), is then, with encryption, a
// version byte, a 12-byte nonce and the AES-GCM ciphertext of the rest
// (the label as additional data), which may start with a checksum header
// (hasCrcMsg and the big-endian CRC-32 of what follows), and then a
// message type byte and the message.
const (
	mlUserMsg     = 8
	mlHasCrcMsg   = 12
	mlHasLabelMsg = 244
	mlGCMVersion  = 1 // the encryption version of protocol versions 2 and up
	mlNonceSize   = 12
)

// mlDirectMsg is the type of a datagram that holds a direct delta alone
// (frame.go, rawVersion): not one of memberlist's types, which it would
// refuse, so only members whose transport opens datagrams itself get it.
// It stands for the wire version too, so it changes with it (0xbc for
// version 2): a member refuses the direct deltas of another wire version
// as it refuses their other frames, never misreads them.
const mlDirectMsg = 0xba + wire.WireVersion

// opener opens datagrams as memberlist's ingestPacket does, for user
// messages alone. It is not safe for concurrent use: the transport's
// reader alone calls it.
type opener struct {
	label   string
	keyring *memberlist.Keyring // nil: no encryption
	keys    [][]byte            // the keyring's keys when aead was made
	aead    []cipher.AEAD       // one per key
	// plain holds the plaintext of the last encrypted datagram, after
	// directRoom bytes; it is reused for the next.
	plain []byte
}

// userMessage opens the datagram buf[start:] (buf[:start] is room it may
// write over). It returns the user message the datagram carries and true,
// or false if the datagram holds anything else or cannot be opened, for
// memberlist to handle; nil and true for one memberlist would panic on
// (see crashes), which the caller counts and drops. A user message comes in a slice of its own. A
// datagram of a direct delta alone (mlDirectMsg) gives the frame it stands
// for, made in place where it can be: over buf, when the room before its
// type byte is at least directRoom bytes, or in the opener's buffer for
// plaintext; such a frame is good until the next call or until the caller
// writes to buf again. The transport's reader hands it to the protocol,
// which keeps nothing of a frame (transport.Node.Receive): a datagram read
// into a buffer that the reader reuses costs no allocation to open. With
// a copy for each, they were a sixth of the bytes a member allocated at
// 100,000 writes a second on three members (the keys and values it keeps
// were a third).
func (o *opener) userMessage(buf []byte, start int) ([]byte, bool) {
	at := start // the datagram's rest is buf[at:]
	b := buf[at:]
	var label []byte // the packet's, compared without a copy
	if len(b) > 0 && b[0] == mlHasLabelMsg {
		if len(b) < 2 || b[1] == 0 || len(b) < 2+int(b[1]) {
			return nil, false
		}
		label = b[2 : 2+int(b[1])]
		at += 2 + int(b[1])
		b = buf[at:]
	}
	if string(label) != o.label {
		return nil, false
	}
	if o.keyring != nil {
		if o.crashes(b, label) {
			return nil, true // refused: see crashes
		}
		plain, ok := o.decrypt(b, label)
		if !ok {
			return nil, false
		}
		buf, at = plain, directRoom
		b = buf[at:]
	}
	if len(b) >= 5 && b[0] == mlHasCrcMsg {
		if crc32.ChecksumIEEE(b[5:]) != binary.BigEndian.Uint32(b[1:5]) {
			return nil, false
		}
		at += 5
		b = buf[at:]
	}
	if compressed(b) {
		return nil, true // refused: see compressed
	}
	if len(b) > 1 && b[0] == mlDirectMsg {
		if at < directRoom {
			return append(directHeader[:], b[1:]...), true
		}
		// The header goes in the room before the type byte, which it
		// overwrites.
		f := buf[at-directRoom:]
		copy(f, directHeader[:])
		return f, true
	}
	if len(b) < 1 || b[0] != mlUserMsg {
		return nil, false
	}
	return append([]byte(nil), b[1:]...), true
}

// crashes reports whether memberlist would panic on the encrypted payload
// b: one of encryption version 0 (memberlist's protocol 1 and below, which
// no member sends) that a key of the keyring opens and whose padding says
// more than it holds, which memberlist's pkcs7decode slices off past the
// start. Only a holder of a key writes one, and one datagram took a
// member's process down (found by review); userMessage refuses it. It
// reports too one that opens to what memberlist would decompress (see
// compressed).
func (o *opener) crashes(b, label []byte) bool {
	if len(b) < 1+mlNonceSize+2*16 || b[0] != 0 {
		return false
	}
	nonce, sealed := b[1:1+mlNonceSize], b[1+mlNonceSize:]
	for _, aead := range o.aeads() {
		if plain, err := aead.Open(nil, nonce, sealed, label); err == nil {
			if len(plain) == 0 || int(plain[len(plain)-1]) > len(plain) {
				return true
			}
			// What memberlist decompresses is refused too (see
			// compressed), after the padding as it reads it.
			plain, ok := afterChecksum(plain[:len(plain)-int(plain[len(plain)-1])])
			return ok && compressed(plain)
		}
	}
	return false
}

// mlCompoundMsg is memberlist's compound message: parts, each handled as
// a datagram's message.
const mlCompoundMsg = 7

// compressed reports whether memberlist would decompress the message b
// (a datagram's, opened, after its checksum header): a compressed
// message, or a compound one with one among its parts, at any depth. No
// member compresses (see Config's EnableCompression), and memberlist
// v0.7.0 decompresses up to 40 MiB of a datagram's 64 KiB (an LZW code
// stands for up to 4 KiB), allocating about 64 MiB, and hands what it
// holds (user messages of that size among them, past every datagram's
// bound) on: the stream reader refuses a compressed message already
// (stateTooLarge), datagrams went to memberlist (found by review). The
// opener refuses it (nil, true), counted as a bad frame.
func compressed(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	switch b[0] {
	case mlCompressMsg:
		return true
	case mlCompoundMsg: // as memberlist's decodeCompoundMessage reads it
		if len(b) < 2 || len(b) < 2+2*int(b[1]) {
			return false
		}
		n := int(b[1])
		lens, rest := b[2:2+2*n], b[2+2*n:]
		for i := range n {
			l := int(binary.BigEndian.Uint16(lens[2*i:]))
			if len(rest) < l {
				return false // truncated: memberlist handles the parts before
			}
			if compressed(rest[:l]) {
				return true
			}
			rest = rest[l:]
		}
	}
	return false
}

// afterChecksum returns a datagram's plaintext b after its checksum
// header, if it has one, as memberlist's ingestPacket reads it: false if
// the checksum does not match (memberlist drops the datagram).
func afterChecksum(b []byte) ([]byte, bool) {
	if len(b) >= 5 && b[0] == mlHasCrcMsg {
		if crc32.ChecksumIEEE(b[5:]) != binary.BigEndian.Uint32(b[1:5]) {
			return nil, false
		}
		return b[5:], true
	}
	return b, true
}

// refuses reports whether memberlist would panic on the datagram buf
// (see crashes), or decompress it (see compressed), for a transport whose
// datagrams go to memberlist unopened.
func (o *opener) refuses(buf []byte) bool {
	var label []byte
	if len(buf) > 0 && buf[0] == mlHasLabelMsg {
		if len(buf) < 2 || buf[1] == 0 || len(buf) < 2+int(buf[1]) {
			return false
		}
		label, buf = buf[2:2+int(buf[1])], buf[2+int(buf[1]):]
	}
	if string(label) != o.label {
		return false
	}
	if o.keyring == nil {
		plain, ok := afterChecksum(buf)
		return ok && compressed(plain)
	}
	if o.crashes(buf, label) {
		return true
	}
	plain, ok := o.decrypt(buf, label)
	if !ok {
		return false
	}
	plain, ok = afterChecksum(plain[directRoom:])
	return ok && compressed(plain)
}

// directRoom is the room a direct delta's own datagram needs before its
// type byte to become the frame it stands for (directHeader in place of
// the type byte).
const directRoom = len(directHeader) - 1

// decrypt opens a GCM-encrypted payload with the first of the keyring's
// keys that authenticates it, into the opener's plaintext buffer, after
// directRoom bytes.
func (o *opener) decrypt(b, label []byte) ([]byte, bool) {
	if len(b) < 1+mlNonceSize+16 || b[0] != mlGCMVersion {
		return nil, false
	}
	nonce, sealed := b[1:1+mlNonceSize], b[1+mlNonceSize:]
	if cap(o.plain) < directRoom+len(sealed) { // the plaintext is shorter by the tag
		o.plain = make([]byte, 0, max(directRoom+len(sealed), maxDatagram))
	}
	for _, aead := range o.aeads() {
		if buf, err := aead.Open(o.plain[:directRoom], nonce, sealed, label); err == nil {
			return buf, true
		}
	}
	return nil, false
}

// aeads returns a cipher for each of the keyring's keys, made again when
// the keys change.
func (o *opener) aeads() []cipher.AEAD {
	if keys := o.keyring.GetKeys(); !sameKeys(keys, o.keys) {
		o.keys, o.aead = keys, newAEADs(keys)
	}
	return o.aead
}

// newAEADs makes an AES-GCM cipher for each of keys, in their order.
func newAEADs(keys [][]byte) []cipher.AEAD {
	var out []cipher.AEAD
	for _, k := range keys {
		block, err := aes.NewCipher(k)
		if err != nil {
			continue // memberlist's keyring takes only AES key sizes
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			continue
		}
		out = append(out, aead)
	}
	return out
}

func sameKeys(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// direct is where the transport's reader delivers the user messages it
// opens itself.
type direct struct {
	open    opener
	deliver func([]byte) // NotifyMsg's work
}

// The other way, the same: a datagram carrying one of bcache's frames is
// built here, as memberlist's SendBestEffort builds it (the user message
// type byte, encrypted with the keyring's primary key and the label as
// additional data, behind the label header), and written to the socket,
// counted as memberlist's datagrams are. memberlist makes two or three
// buffers for each, and with a key a new cipher and its key schedule; the
// sealer keeps its cipher while the primary key stays. It leaves out the
// checksum header memberlist adds for peers of protocol version 5: five
// bytes a datagram, and a CRC-32 of every byte. An encrypted datagram is
// authenticated by AES-GCM already; a plain one has UDP's checksum, the
// integrity memberlist's packets had before version 5, and bcache's
// decoder refuses any frame it cannot parse whole.

// sealer builds the datagrams of bcache's frames. It is safe for
// concurrent use.
type sealer struct {
	label   []byte
	keyring *memberlist.Keyring // nil: no encryption
	cipher  atomic.Pointer[sealKey]
	bufs    sync.Pool // *[]byte
}

// sealKey is an AEAD and the key it was made with.
type sealKey struct {
	key  []byte
	aead cipher.AEAD
}

// seal returns the datagram for frame, in a buffer from the sealer's pool
// that the caller gives back with release once it is sent: a datagram of
// a direct delta alone if raw and frame holds one (isDirect), else a user
// message.
func (s *sealer) seal(frame []byte, raw bool) (*[]byte, error) {
	kind := byte(mlUserMsg)
	if raw && isDirect(frame) {
		kind, frame = mlDirectMsg, frame[len(directHeader):]
	}
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := (*bp)[:0]
	if len(s.label) > 0 {
		b = append(b, mlHasLabelMsg, byte(len(s.label)))
		b = append(b, s.label...)
	}
	if s.keyring == nil {
		b = append(b, kind)
		b = append(b, frame...)
		*bp = b
		return bp, nil
	}
	k, err := s.key()
	if err != nil {
		s.release(bp)
		return nil, err
	}
	b = append(b, mlGCMVersion)
	nonceAt := len(b)
	b = append(b, make([]byte, mlNonceSize)...)
	if _, err := rand.Read(b[nonceAt:]); err != nil {
		s.release(bp)
		return nil, err
	}
	plainAt := len(b)
	b = append(b, kind)
	b = append(b, frame...)
	// Sealed in place: the ciphertext overwrites the plaintext exactly.
	b = k.aead.Seal(b[:plainAt], b[nonceAt:plainAt], b[plainAt:], s.label)
	*bp = b
	return bp, nil
}

func (s *sealer) release(bp *[]byte) { s.bufs.Put(bp) }

// key returns the cipher of the keyring's primary key, made again when
// that key changes.
func (s *sealer) key() (*sealKey, error) {
	primary := s.keyring.GetPrimaryKey()
	if k := s.cipher.Load(); k != nil && bytes.Equal(k.key, primary) {
		return k, nil
	}
	block, err := aes.NewCipher(primary)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &sealKey{key: bytes.Clone(primary), aead: aead}
	s.cipher.Store(k)
	return k, nil
}

// sendPacket sends frame to the member to as one datagram: sealed here and
// written to the socket when the member runs the default UDP transport,
// through memberlist's SendBestEffort otherwise.
func (r *Replicator) sendPacket(to *memberlist.Node, frame []byte) error {
	if r.out == nil {
		return r.ml.SendBestEffort(to, frame)
	}
	bp, err := r.out.seal.seal(frame, r.raw.Load())
	if err != nil {
		return err
	}
	defer r.out.seal.release(bp)
	if err := r.out.t.writeToNode(*bp, to); err != nil {
		return err // not sent: not counted (TestFailedDatagramsAreNotCountedAsSent)
	}
	r.wire.count(*bp)
	return nil
}

// directOut is where sendPacket writes: the sealer and the transport.
type directOut struct {
	seal sealer
	t    *netTransport
}
