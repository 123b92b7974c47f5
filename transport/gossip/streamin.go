package gossip

import (
	"bytes"
	"cmp"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"

	"github.com/bcache-go/bcache/transport"
)

// A frame too large for a datagram comes over a stream of its own
// (reliable.go). memberlist reads such a stream into a buffer it makes
// for each message (and, with a key, into two more: the ciphertext grown
// from empty, then the plaintext), then calls NotifyMsg: at a million-key
// catch-up, 141 MB of fresh buffers whose pages the kernel faulted in and
// zeroed as the stream's reads filled them, a sixth of the joiner's CPU.
// So the transport reads each stream it accepts itself, exactly as
// memberlist would (the label, the decryption with the keyring's keys,
// the user message's header), into a buffer it reuses, and hands a user
// message read whole to the replicator, which keeps nothing of a frame
// (transport.Node.Receive; Ask's answers are valid only during the call).
// Anything else (memberlist's own exchanges, a message it cannot read
// whole or open, a stream cut short) goes to memberlist with the bytes
// already read in front, which handles, answers, counts and logs it as it
// always has; but a message that memberlist v0.7.0 would panic on (an
// empty plaintext; encryption version 0 whose padding says more than it
// holds), which only a holder of a key can seal and which took the
// process down, is counted as a bad frame and the stream closed.
// (memberlist's go-metrics counter memberlist.tcp.accept no longer counts
// the streams read here.)

// mlMaxStreamMsg is the most memberlist reads of a stream's message, plain
// (a user message) or encrypted (what follows the length): the same 20
// MiB for both (its maxUserMsgBytes and maxPushStateBytes). A stream that
// says more goes to memberlist, which refuses it.
const mlMaxStreamMsg = 20 << 20

// maxPooledRead bounds the buffers the stream reader keeps: room for a
// repair message of transport.DefaultMaxRepairBytes, its headers, and its
// plaintext beside its ciphertext, with room to spare (sealer's
// maxPooled, 4 MiB, is less than one such message: every buffer was grown
// from 4 KiB again, and a third of what the reading saved went to its
// copies). A stream's buffer past it is left to the collector.
const maxPooledRead = 2*transport.DefaultMaxRepairBytes + transport.DefaultMaxRepairBytes/4

// maxHeldStreamBytes bounds the bytes that the streams being read hold
// together: their buffers' room (a pooled one's too), and the plaintexts
// opened beside them. A stream whose next bytes would take it past the
// bound is closed unread, counted (Stats.StreamsRefused); its sender
// tries again, as after any failed stream. The bounds per address (see
// maxInbound) let each stream grow to 20 MiB, and more again as it is
// opened: a member holding the key that announced members at many
// addresses (a whole IPv6 /64) and opened 64 streams from each held
// that much per stream, without any bound in all (found by review).
// Twelve of the largest messages fit, far more than a catch-up has in
// flight.
const maxHeldStreamBytes = 256 << 20

// streamReader reads the streams the transport accepts (see above). It is
// safe for concurrent use: each stream is read on a goroutine of its own,
// as memberlist reads them.
type streamReader struct {
	label   string
	keyring *memberlist.Keyring // nil: no encryption
	ciphers keyCiphers
	timeout time.Duration // memberlist's TCPTimeout, the stream's deadline
	deliver func([]byte)  // NotifyMsg's work
	bufs    sync.Pool     // *[]byte, up to maxPooledRead
	read    atomic.Uint64 // user messages read here (for tests)
	// held is the bytes the streams being read hold (maxHeldStreamBytes,
	// or limit if set: tests); refused, if set, counts a stream closed
	// for it.
	held    atomic.Int64
	limit   int64
	refused func()
}

// take reads conn's message. It returns nil if it read a user message and
// delivered it, or read what memberlist would panic on, or would have
// taken the streams read past maxHeldStreamBytes (then the caller closes
// conn), or else a stream that gives memberlist what was read from conn
// and then the rest of conn.
func (s *streamReader) take(conn net.Conn) net.Conn {
	var deadline time.Time
	if s.timeout > 0 {
		deadline = time.Now().Add(s.timeout)
		conn.SetDeadline(deadline) // memberlist's own, later, stops at it (replayConn)
	}
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	in := inStream{conn: conn, buf: (*bp)[:0], r: s}
	defer func() { s.held.Add(-in.charged) }()
	var msg []byte
	ok := false
	if in.charge(cap(in.buf)) {
		msg, ok = s.message(&in)
	}
	switch {
	case in.over:
		if s.refused != nil {
			s.refused()
		}
	case ok:
		// Counted before it is delivered: a test that saw the value
		// applied read the count as 0 now and then (a CI-like run).
		s.read.Add(1)
		s.deliver(msg)
	case in.drop:
		s.deliver(nil) // counted as a frame that does not parse (Stats' BadFrames)
	}
	var rest net.Conn
	pooled := cap(in.buf) <= maxPooledRead
	if !ok && !in.drop && !in.over {
		// A buffer too large to keep goes to memberlist as it is, not
		// copied.
		read := in.buf
		if pooled {
			read = bytes.Clone(read)
		}
		rest = &replayConn{Conn: conn, r: bytes.NewReader(read), err: in.err, deadline: deadline}
	}
	if pooled {
		*bp = in.buf[:0]
		s.bufs.Put(bp)
	}
	return rest
}

// message reads a whole user message from in: false if in holds anything
// else, or cannot be read whole or opened. The message is a slice of
// in.buf, good until in.buf is reused.
func (s *streamReader) message(in *inStream) ([]byte, bool) {
	at := 0
	if !in.fill(1) {
		return nil, false
	}
	var label []byte
	if in.buf[0] == mlHasLabelMsg {
		if !in.fill(2) || in.buf[1] == 0 || !in.fill(2+int(in.buf[1])) {
			return nil, false
		}
		label = in.buf[2 : 2+int(in.buf[1])]
		at = 2 + int(in.buf[1])
	}
	if string(label) != s.label || !in.fill(at+1) {
		return nil, false
	}
	if s.keyring == nil {
		if in.buf[at] != mlUserMsg {
			in.drop = stateTooLarge(in.buf[at], &streamBytes{in: in, at: at + 1})
			return nil, false
		}
		start, n, ok := userMsgHeaderAt(in, at+1)
		if !ok || !in.fill(start+n) {
			return nil, false
		}
		return in.buf[start : start+n], true
	}
	plain, ok := s.open(in, at, label)
	if !ok {
		return nil, false
	}
	if plain[0] != mlUserMsg {
		in.drop = stateTooLarge(plain[0], bytes.NewReader(plain[1:]))
		return nil, false
	}
	p := inStream{buf: plain} // read from the plaintext, and no further
	start, n, ok := userMsgHeaderAt(&p, 1)
	if !ok || len(plain) < start+n {
		return nil, false
	}
	return plain[start : start+n], true
}

// open reads memberlist's encrypted stream message at in.buf[at:] and
// opens it with the keyring's keys, label in its additional data: the
// plaintext, at least its type byte, or false if in holds anything else,
// or a message that cannot be read whole or opened, or one that must not
// reach memberlist (in.drop: what would panic it). The plaintext is good
// until in.buf is reused.
func (s *streamReader) open(in *inStream, at int, label []byte) ([]byte, bool) {
	// memberlist's encrypted stream message: its type byte, the length of
	// what follows, the encryption version, the nonce, the ciphertext.
	if in.buf[at] != mlEncryptMsg || !in.fill(at+5) {
		return nil, false
	}
	more := int(binary.BigEndian.Uint32(in.buf[at+1:]))
	end := at + 5 + more
	if more > mlMaxStreamMsg || more < 1+mlNonceSize+16 || !in.fill(end) {
		return nil, false
	}
	vsn := in.buf[at+5]
	if vsn != mlGCMVersion && (vsn != 0 || more < 1+mlNonceSize+2*16) {
		return nil, false // memberlist refuses it before it decrypts
	}
	// The plaintext goes after all that was read, in the same buffer: what
	// was read stays as it came, for memberlist if the message is not a
	// user message, and one buffer is reused for both. A message too large
	// for the buffers kept is opened into a buffer of its own: the read
	// one grown to hold both would copy it, for a stream that may be a
	// stranger's that opens with no key (found by review: 125 MiB
	// allocated for one of 20 MiB).
	read := len(in.buf)
	var room []byte
	switch {
	case read+more > maxPooledRead:
		if !in.charge(more) {
			return nil, false
		}
		room = make([]byte, 0, more)
	case cap(in.buf) < read+more:
		// A sixteenth to spare: grown to just the bytes wanted, a buffer
		// kept from a message was copied whole for every next message a
		// few bytes longer.
		c := min(read+more+more/16, maxPooledRead)
		if !in.charge(c - cap(in.buf)) {
			return nil, false
		}
		in.buf = grow(in.buf, c)
		fallthrough
	default:
		room = in.buf[read:read]
	}
	nonce, sealed := in.buf[at+6:at+6+mlNonceSize], in.buf[at+6+mlNonceSize:end]
	aad := append(append(make([]byte, 0, 5+len(label)), in.buf[at:at+5]...), label...)
	var plain []byte
	for _, aead := range s.ciphers.get(s.keyring) {
		var err error
		if plain, err = aead.Open(room, nonce, sealed, aad); err == nil {
			break
		}
		plain = nil
	}
	if plain != nil && vsn == 0 {
		// Version 0 (memberlist's protocol 1 and below; no member sends
		// it) is padded: memberlist's pkcs7decode slices off as many bytes
		// as the last says, and panics past the start.
		if pad := int(plain[len(plain)-1]); pad > len(plain) {
			in.drop = true
			return nil, false
		}
		plain = plain[:len(plain)-int(plain[len(plain)-1])]
		in.drop = len(plain) == 0 || stateTooLarge(plain[0], bytes.NewReader(plain[1:]))
		return nil, false // memberlist reads it, and no member sends it
	}
	if plain != nil && len(plain) == 0 {
		// Opened, and empty: memberlist's readStream reads its type byte
		// with no check, and its panic took the process down. Only a
		// holder of a key writes it; the stream is closed unread.
		in.drop = true
		return nil, false
	}
	return plain, plain != nil
}

// userMsgHeaderAt reads memberlist's header of a user message at in.buf[at:]
// as memberlist's encoder writes it (userMsgHeader, then the length as
// userMsgLen writes it): the start of the message and its length, or false
// for a header written otherwise (memberlist's own decoder reads any
// msgpack), an empty message, or one over memberlist's limit.
func userMsgHeaderAt(in *inStream, at int) (start, n int, ok bool) {
	at += len(userMsgHeader)
	if !in.fill(at+1) || !bytes.Equal(in.buf[at-len(userMsgHeader):at], userMsgHeader) {
		return 0, 0, false
	}
	switch c := in.buf[at]; {
	case c <= 0x7f:
		n, at = int(c), at+1
	case c == 0xd1 && in.fill(at+3):
		n, at = int(int16(binary.BigEndian.Uint16(in.buf[at+1:]))), at+3
	case c == 0xd2 && in.fill(at+5):
		n, at = int(int32(binary.BigEndian.Uint32(in.buf[at+1:]))), at+5
	default:
		return 0, 0, false
	}
	if n <= 0 || n > mlMaxStreamMsg {
		return 0, 0, false
	}
	return at, n, true
}

// inStream is a stream read into buf. A stream with no conn is buf alone.
type inStream struct {
	conn net.Conn
	buf  []byte
	err  error // the read that failed, if one did
	drop bool  // what was read would crash memberlist: closed, not handed on
	// r, if set, counts the bytes the stream holds (charged) in its held
	// bytes; over says the stream would have taken them past its bound:
	// closed, not handed on.
	r       *streamReader
	charged int64
	over    bool
}

// charge counts n more bytes held by the stream, unless that takes the
// reader's streams past their bound: then it sets over, and reports
// false.
func (in *inStream) charge(n int) bool {
	if in.r == nil || n <= 0 {
		return true
	}
	limit := cmp.Or(in.r.limit, maxHeldStreamBytes)
	if in.r.held.Add(int64(n)) > limit {
		in.r.held.Add(-int64(n))
		in.over = true
		return false
	}
	in.charged += int64(n)
	return true
}

// fill reads until buf holds at least n bytes, growing it as they come:
// doubled when full, never to more than twice what has come (4 KiB at
// least), so that a stream that says it holds more than it sends holds
// little more than it sent. It reports whether buf holds n bytes. (Grown
// to just the bytes wanted, a buffer kept from a message was copied
// whole for every next message a few bytes longer.)
func (in *inStream) fill(n int) bool {
	for len(in.buf) < n {
		if in.conn == nil {
			return false
		}
		if len(in.buf) == cap(in.buf) {
			c := max(2*len(in.buf), 4096)
			if n > maxPooledRead && c > n {
				c = n // a buffer not kept gets no room to spare
			}
			if !in.charge(c - cap(in.buf)) {
				return false
			}
			in.buf = grow(in.buf, c)
		}
		m, err := in.conn.Read(in.buf[len(in.buf):cap(in.buf)])
		in.buf = in.buf[:len(in.buf)+m]
		if err != nil {
			in.err = err
			return len(in.buf) >= n
		}
	}
	return true
}

// grow returns b with room for n bytes in all.
func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b
	}
	c := make([]byte, len(b), n)
	copy(c, b)
	return c
}

// replayConn is a stream that reads r first, then the stream, or the
// error its last read gave if it gave one (memberlist sees the stream
// end as it ended, without a second wait for its deadline).
//
// The first deadline memberlist sets (TCPTimeout from its handleConn's
// start) stops at deadline, the one set when the stream was accepted:
// memberlist's went from there, and a stream that sent its first bytes
// just before it was held for its deadline twice (found by review). The
// ones it sets after it has read the message are its own, as before the
// reader: sendLocalState gives a push and pull's reply TCPTimeout from
// its start, and the joiner waits as long for it (clamped to the accept,
// a joiner whose state took most of TCPTimeout to come had its reply cut
// short; found by review).
type replayConn struct {
	net.Conn
	r        *bytes.Reader
	err      error
	deadline time.Time // zero: none
	set      bool      // memberlist has set its first deadline
}

func (c *replayConn) clamp(t time.Time) time.Time {
	if c.set {
		return t
	}
	c.set = true
	if !c.deadline.IsZero() && (t.IsZero() || t.After(c.deadline)) {
		return c.deadline
	}
	return t
}

func (c *replayConn) SetDeadline(t time.Time) error { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *replayConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.clamp(t))
}
func (c *replayConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.clamp(t))
}

func (c *replayConn) Read(b []byte) (int, error) {
	switch {
	case c.r != nil:
		n, err := c.r.Read(b)
		if c.r.Len() == 0 {
			// Read whole: let go of it (up to 20 MiB, which memberlist
			// reads into buffers of its own and may hold the stream for
			// TCPTimeout after).
			c.r = nil
		}
		if n > 0 || err == nil {
			return n, nil
		}
		return c.Read(b)
	case c.err != nil:
		return 0, c.err
	}
	return c.Conn.Read(b)
}

// keyCiphers keeps a cipher for each of a keyring's keys, made again when
// the keys change. It is safe for concurrent use.
type keyCiphers struct {
	cur atomic.Pointer[cipherSet]
}

type cipherSet struct {
	keys [][]byte
	aead []cipher.AEAD
}

// get returns the ciphers of kr's keys, primary first.
func (k *keyCiphers) get(kr *memberlist.Keyring) []cipher.AEAD {
	keys := kr.GetKeys()
	if c := k.cur.Load(); c != nil && sameKeys(keys, c.keys) {
		return c.aead
	}
	c := &cipherSet{keys: keys, aead: newAEADs(keys)}
	k.cur.Store(c)
	return c.aead
}

// memberlist's stream message types that stateTooLarge looks at.
const (
	mlPushPullMsg = 6
	mlCompressMsg = 9
)

// maxPushNodes is the most members a push/pull state may claim: memberlist
// (v0.7.0) makes room for as many as its header says, up to 1,048,576 of
// 112 bytes (112 MiB), before it reads one, so that a stream of 52 bytes
// held that much until its deadline (found by review: 449 MiB in use for
// four such streams, where a stream of a member without a key is held to
// a buffer of 20 MiB). 16,384 of them are 1.75 MiB.
const maxPushNodes = 1 << 14

// stateTooLarge reports whether a stream message of memberlist's of type
// typ, whose bytes after the type r reads, must not reach memberlist: a
// push/pull state whose header claims more than maxPushNodes members, or
// any user state, or a compressed message (no member compresses, see Config's
// EnableCompression: memberlist would decompress up to 40 MiB of it, a
// push/pull state among them, unchecked). The header is read as
// memberlist reads it, with its own codec, and no further; one that does
// not decode is memberlist's to refuse.
func stateTooLarge(typ byte, r io.Reader) bool {
	switch typ {
	case mlCompressMsg:
		return true
	case mlPushPullMsg:
		var header struct { // memberlist's pushPullHeader
			Nodes        int
			UserStateLen int
			Join         bool
		}
		if codec.NewDecoder(r, &codec.MsgpackHandle{}).Decode(&header) != nil {
			return false
		}
		// No member sends a user state (LocalState is empty), and
		// memberlist makes room for the one the header claims, up to 20
		// MiB, before it reads a byte of it: a stream of a few dozen
		// bytes held that much until its deadline, outside
		// maxHeldStreamBytes (found by review,
		// TestPushPullClaimingAUserStateIsRefused).
		return header.Nodes > maxPushNodes || header.UserStateLen > 0
	}
	return false
}

// streamBytes reads a stream's bytes from in.buf[at:], filling it from
// the stream as it goes, no further than what it is asked for: what it
// reads stays in in.buf for memberlist.
type streamBytes struct {
	in *inStream
	at int
}

func (r *streamBytes) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if !r.in.fill(r.at + 1) {
		if r.in.err != nil {
			return 0, r.in.err
		}
		return 0, io.EOF
	}
	n := copy(p, r.in.buf[r.at:])
	r.at += n
	return n, nil
}

// replyRefused reads the first message of a stream this member dialed as
// memberlist's readStream will read it (a push and pull's reply, a ping's
// ack: no label header before it, the label in an encrypted message's
// additional data), and reports whether it must not reach memberlist:
// what would panic it (an encrypted message that opens empty, or to
// padding past its start), or what stateTooLarge refuses. memberlist read
// replies as it read accepted streams: a member holding the key that
// answered this member's push and pull with an empty message took this
// process down, and one claiming a million members made it allocate 112
// MiB (found by review).
func (s *streamReader) replyRefused(in *inStream) bool {
	if !in.fill(1) {
		return false
	}
	if s.keyring == nil || in.buf[0] != mlEncryptMsg {
		return stateTooLarge(in.buf[0], &streamBytes{in: in, at: 1})
	}
	plain, ok := s.open(in, 0, []byte(s.label))
	return in.drop || ok && stateTooLarge(plain[0], bytes.NewReader(plain[1:]))
}

// errRefusedReply is the error memberlist reads from a dialed stream whose
// reply replyRefused refused.
var errRefusedReply = errors.New("gossip: a reply memberlist must not read (refused, closed)")

// replyConn is a stream this member dialed (memberlist's push and pull,
// its ping over a stream, bcache's frames, which read nothing): the first
// time memberlist reads it, its reply is read and checked
// (streamReader.replyRefused), then read by memberlist as it came.
type replyConn struct {
	*countingConn
	sr      *streamReader
	checked bool
	rest    *replayConn // what the check read, then the stream
}

func (c *replyConn) Read(b []byte) (int, error) {
	if !c.checked {
		c.checked = true
		in := inStream{conn: c.countingConn}
		if c.sr.replyRefused(&in) {
			c.sr.deliver(nil) // counted as a frame that does not parse (Stats' BadFrames)
			c.Close()
			return 0, errRefusedReply
		}
		c.rest = &replayConn{Conn: c.countingConn, r: bytes.NewReader(in.buf), err: in.err}
	}
	return c.rest.Read(b)
}
