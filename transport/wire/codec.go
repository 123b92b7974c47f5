package wire

import (
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/bcache-go/bcache/crdt"
)

// Wire format. A frame is the version byte WireVersion, the Kind byte, then
// exactly one msgpack value: the message body as an array of its fields in
// declaration order. There are no field names, maps or ext types.
//
//	Delta    [origin str, originID uint, seq uint, base int, records [record...]]
//	Digest   [session, token, step, level uint, parents blob32, hashes blob64,
//	          cut wall int, cut logical uint, cut node uint, coverage int]
//	Versions [session, token, step, leaves blob32, counts blob32, versions blobKV]
//	         or the same and [..., part from uint, part through uint],
//	         either then [..., prints blob32] (one a version)
//	Repair   [session, token, step, records [record...], wants blob64,
//	          final bool, truncated bool]
//	Reject   [session, token, step, records [record...]]
//	Direct   [originID uint, base int, record...]   records of 5 to 7 fields
//
// session and token are uints of up to 64 bits, step one of up to 32.
//	record   [key str, value bin|nil, wall int, logical uint, node uint,
//	          expires int, flags uint]   flags: bit 0 Tombstone, bit 1 Evicted
//
// In a Delta, base is the wall time of the first record, every record's
// wall is written as its (wrapping) offset from base, and its node XORed
// with the Delta's OriginID: a batch of one writer's records then spends a
// few bytes on each timestamp instead of about twenty. In a Repair, base and
// origin are zero, so walls and nodes are written as they are. A Direct is
// written as a Delta without Origin and Seq (it has neither), its records
// inline after the base rather than in a list of their own, and a
// record's expires and flags left out when they are zero (flags first:
// a record has 5, 6 or 7 fields, the missing ones zero).
//	version  [key str, wall int, logical uint, node uint, tombstone bool]
//
// blob32 and blob64 are a bin of little-endian uint32 or uint64 values, so
// their length must be a multiple of 4 or 8. blobKV is a bin of 29-byte
// KeyVersion entries: keyhash u64, wall i64, logical u32, node u64 and flags
// u8 (bit 0 Tombstone, the other bits zero), all little-endian. An empty list
// or blob is an empty array or bin; an empty Value is nil.
//
// Integers are written in their shortest msgpack form; any integer form
// whose value fits the field is accepted. Decoding normalizes: every empty
// slice, and an empty Value, decodes as nil (an empty and an absent value
// are the same thing). Strings are raw bytes, not checked for UTF-8.

// Sentinel errors, wrapped by every error Encode and Decode return.
var (
	// ErrMalformed is a frame or message that breaks the wire format.
	ErrMalformed = errors.New("wire: malformed message")
	// ErrTooLarge is a frame, key or value over its Limits.
	ErrTooLarge = errors.New("wire: message too large")
	// ErrVersion is a frame whose version byte is not WireVersion.
	ErrVersion = errors.New("wire: unsupported wire version")
	// ErrUnknownKind is a frame or message of no known Kind.
	ErrUnknownKind = errors.New("wire: unknown message kind")
)

// Reason returns a short stable label for err, for reject counters:
// "too_large", "version", "unknown_kind" or "malformed" (also for any error
// that wraps none of the sentinels), and "" for nil.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrVersion):
		return "version"
	case errors.Is(err, ErrUnknownKind):
		return "unknown_kind"
	}
	return "malformed"
}

// Limits bounds what a Codec encodes and accepts. Zero or negative fields
// mean the DefaultLimits value.
type Limits struct {
	// MaxFrame bounds a whole frame, in bytes; longer frames are rejected
	// before any parsing.
	MaxFrame int
	// MaxKey bounds every string: record and version keys and Delta.Origin.
	MaxKey int
	// MaxValue bounds a record value.
	MaxValue int
}

// DefaultLimits returns 64 MiB frames, 64 KiB keys and 16 MiB values.
func DefaultLimits() Limits {
	return Limits{MaxFrame: 64 << 20, MaxKey: 64 << 10, MaxValue: 16 << 20}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxFrame <= 0 {
		l.MaxFrame = d.MaxFrame
	}
	if l.MaxKey <= 0 {
		l.MaxKey = d.MaxKey
	}
	if l.MaxValue <= 0 {
		l.MaxValue = d.MaxValue
	}
	return l
}

// Codec encodes and decodes frames, reusing one msgpack encoder.
// It is not safe for concurrent use: keep one per node (under its lock) or
// per goroutine. It must not be copied after NewCodec.
type Codec struct {
	lim Limits
	out appendWriter
	enc *msgpack.Encoder
	// body is the frame body being decoded, nil between calls; pos is the
	// offset in it of the next value.
	body []byte
	pos  int
	// start is the offset in out.b where the frame being encoded begins.
	start int
	// err is the first error of the current Encode or Decode; once it is
	// set, every read and write does nothing.
	err error
	// intern, if set, shares decoded keys and values (see Interner).
	intern *Interner
	// reuse says whether a Delta's or a Direct's records are decoded into
	// recs, which the next Decode reuses (ReuseDeltaRecords).
	reuse bool
	recs  []crdt.Record
	used  int // how many of recs the last delta decoded into them filled
}

// maxReused is the most records a Delta or Direct may hold to be decoded
// into the codec's scratch: more than a datagram holds (one of 8 KiB, a
// member's on a loopback address, of records of 8 bytes or more; one of
// smaller records, down to a Direct's 6, is decoded into a slice of its
// own), so that a stream's large delta does not stay held.
const maxReused = 1024

// ReuseDeltaRecords sets whether a decoded Delta's or Direct's Records are
// in a slice that the codec reuses at the next Decode, when there are at
// most a datagram's worth of them (the keys and values are the
// message's own either way). A caller that keeps nothing of a delta past
// its handling, such as transport.Node, then allocates no slice for
// each: at 100,000 writes a second on three members, those slices were a
// seventh of the bytes a member allocated.
//
// The scratch holds the last delta's keys and values until the next
// delta reuses its rows; a caller done with a delta calls ReleaseRecords
// so that it holds none of them meanwhile. A frame that fails to decode
// leaves nothing in it.
func (c *Codec) ReuseDeltaRecords(ok bool) { c.reuse = ok }

// ReleaseRecords zeroes the rows of the codec's scratch that the last
// Decode filled (see ReuseDeltaRecords): the Records of the last Delta or
// Direct decoded into it become zero records, and the codec holds none of
// their keys and values.
func (c *Codec) ReleaseRecords() {
	clear(c.recs[:c.used])
	c.used = 0
}

// NewCodec returns a codec that enforces l (zero fields take their default).
func NewCodec(l Limits) *Codec {
	c := &Codec{lim: l.withDefaults()}
	c.enc = msgpack.NewEncoder(&c.out)
	return c
}

// Limits returns the limits c enforces, defaults filled in.
func (c *Codec) Limits() Limits { return c.lim }

// Encode appends the frame of m to dst and returns the extended slice. On
// error it returns dst unchanged (its spare capacity may have been written)
// and an error wrapping ErrTooLarge for a key, value or frame over the
// limits, ErrMalformed for a message that breaks the format's consistency
// rules (the ones Decode enforces) and ErrUnknownKind for a nil or foreign
// Message.
func (c *Codec) Encode(dst []byte, m Message) ([]byte, error) {
	if err := checkMessage(m); err != nil {
		return dst, fmt.Errorf("encode %s: %w", kindName(m), err)
	}
	c.err, c.start = nil, len(dst)
	c.out.b = append(dst, WireVersion, byte(m.Kind()))
	c.encodeBody(m)
	if c.err == nil && len(c.out.b)-c.start > c.lim.MaxFrame {
		c.fail(ErrTooLarge, "frame of %d bytes exceeds limit %d", len(c.out.b)-c.start, c.lim.MaxFrame)
	}
	out, err := c.out.b, c.err
	c.out.b, c.err = nil, nil
	if err != nil {
		return dst, fmt.Errorf("encode %s: %w", m.Kind(), err)
	}
	return out, nil
}

// Decode parses one frame. It returns a message that shares no memory with
// frame, or nil and an error wrapping ErrTooLarge, ErrVersion,
// ErrUnknownKind or ErrMalformed. It never panics on any input, and it
// allocates only in proportion to the frame's actual content, never to the
// lengths the frame claims: each length is checked against the bytes left
// as it is read, in the one pass that decodes (a pass that validated the
// whole frame first, needed while msgpack's decoder read the frames, cost
// about a tenth of receiving a delta). A frame refused after some of its
// records were read has allocated at most in proportion to its size, and
// returns nothing of them.
func (c *Codec) Decode(frame []byte) (Message, error) {
	kind, err := c.header(frame)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	body := frame[2:]
	c.err, c.body, c.pos = nil, body, 0
	m := c.decodeBody(kind)
	if c.err == nil && c.left() != 0 {
		c.fail(ErrMalformed, "%d bytes left over", c.left())
	}
	if c.err == nil {
		c.err = checkMessage(m)
	}
	err = c.err
	c.err, c.body, c.pos = nil, nil, 0
	if err != nil {
		c.ReleaseRecords() // the records read before the error
		return nil, fmt.Errorf("decode %s: %w", kind, err)
	}
	return m, nil
}

// header checks the frame's size, version and kind.
func (c *Codec) header(frame []byte) (Kind, error) {
	switch {
	case len(frame) > c.lim.MaxFrame:
		return 0, fmt.Errorf("%w: frame of %d bytes exceeds limit %d", ErrTooLarge, len(frame), c.lim.MaxFrame)
	case len(frame) < 2:
		return 0, fmt.Errorf("%w: frame of %d bytes has no header", ErrMalformed, len(frame))
	case frame[0] != WireVersion:
		return 0, fmt.Errorf("%w: got version %d, want %d", ErrVersion, frame[0], WireVersion)
	}
	k := Kind(frame[1])
	if k < KindDelta || k > KindDirect {
		return 0, fmt.Errorf("%w: kind %d", ErrUnknownKind, frame[1])
	}
	return k, nil
}

// fail records the first error of the current call.
func (c *Codec) fail(sentinel error, format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
	}
}

// kindName names m's kind for an error, also when m is nil.
func kindName(m Message) string {
	if m == nil {
		return "nil message"
	}
	return m.Kind().String()
}

// maxLevel is the deepest digest level: crdt.MaxTreeBits leaf bits, four bits
// (log2 crdt.Fanout) per level.
const maxLevel = crdt.MaxTreeBits / crdt.FanoutBits

// checkMessage enforces the consistency rules that span fields: Encode
// applies them before writing, Decode after parsing.
func checkMessage(m Message) error {
	switch m := m.(type) {
	case *Delta:
		if m != nil {
			return capped(len(m.Records), "records")
		}
	case *Repair:
		if m != nil {
			return errors.Join(capped(len(m.Records), "records"), capped(len(m.Wants), "wants"),
				ascending(m.Wants, "wants"))
		}
	case *Reject:
		if m != nil {
			return capped(len(m.Records), "records")
		}
	case *Direct:
		if m != nil {
			return capped(len(m.Records), "records")
		}
	case *Digest:
		if m != nil {
			return checkDigest(m)
		}
	case *Versions:
		if m != nil {
			return checkVersions(m)
		}
	}
	return fmt.Errorf("%w: nil or foreign message %T", ErrUnknownKind, m)
}

// checkDigest requires crdt.Fanout hashes per parent, or the root alone at
// level 0, or nothing at all, and parents that are strictly ascending nodes
// of the level above.
func checkDigest(m *Digest) error {
	if err := ascending(m.Parents, "parents"); err != nil {
		return err
	}
	if n := len(m.Parents); n > 0 && m.Level > 0 && uint64(m.Parents[n-1]) >= 1<<(crdt.FanoutBits*(uint(m.Level)-1)) {
		return fmt.Errorf("%w: digest level %d names parent %d, beyond its level", ErrMalformed, m.Level, m.Parents[n-1])
	}
	switch {
	case m.Level > maxLevel:
		return fmt.Errorf("%w: digest level %d exceeds %d", ErrMalformed, m.Level, maxLevel)
	case m.Level == 0 && len(m.Parents) > 0:
		return fmt.Errorf("%w: digest level 0 with %d parents", ErrMalformed, len(m.Parents))
	case m.Level == 0 && len(m.Hashes) <= 1:
		return nil
	case len(m.Hashes) != len(m.Parents)*crdt.Fanout:
		return fmt.Errorf("%w: digest level %d has %d hashes for %d parents, want %d per parent",
			ErrMalformed, m.Level, len(m.Hashes), len(m.Parents), crdt.Fanout)
	}
	return nil
}

// checkVersions requires at most MaxLeavesPerStep strictly ascending
// leaves, one count per leaf, counts adding up to the number of versions,
// and each leaf's versions strictly ascending by key hash; with a Part,
// one leaf, and its versions within the part's range, From at most
// Through; without Prints, no version's Print set. (That the range lies within the leaf is the receiver's to
// check: the codec does not know the digest's width.)
func checkVersions(m *Versions) error {
	switch {
	case len(m.Leaves) > MaxLeavesPerStep:
		return fmt.Errorf("%w: %d leaves, limit %d", ErrTooLarge, len(m.Leaves), MaxLeavesPerStep)
	case len(m.Counts) != len(m.Leaves):
		return fmt.Errorf("%w: %d counts for %d leaves", ErrMalformed, len(m.Counts), len(m.Leaves))
	case m.Part != nil && len(m.Leaves) != 1:
		return fmt.Errorf("%w: a part of %d leaves, want one", ErrMalformed, len(m.Leaves))
	case m.Part != nil && m.Part.From > m.Part.Through:
		return fmt.Errorf("%w: a part from %#x through %#x", ErrMalformed, m.Part.From, m.Part.Through)
	}
	if !m.Prints {
		for _, kv := range m.Versions {
			if kv.Print != 0 { // it would not go: the message said otherwise than sent
				return fmt.Errorf("%w: key hash %#x has a print in a Versions without prints", ErrMalformed, kv.KeyHash)
			}
		}
	}
	if m.Part != nil {
		for _, kv := range m.Versions {
			if !m.Part.Holds(kv.KeyHash) {
				return fmt.Errorf("%w: key hash %#x outside its part, %#x through %#x", ErrMalformed, kv.KeyHash, m.Part.From, m.Part.Through)
			}
		}
	}
	if err := ascending(m.Leaves, "leaves"); err != nil {
		return err
	}
	var sum uint64
	for _, n := range m.Counts {
		sum += uint64(n)
	}
	if sum != uint64(len(m.Versions)) {
		return fmt.Errorf("%w: counts add up to %d, have %d versions", ErrMalformed, sum, len(m.Versions))
	}
	off := 0
	for i, n := range m.Counts {
		group := m.Versions[off : off+int(n)]
		for j := 1; j < len(group); j++ {
			if group[j].KeyHash <= group[j-1].KeyHash {
				return fmt.Errorf("%w: versions of leaf %d not strictly ascending by key hash", ErrMalformed, m.Leaves[i])
			}
		}
		off += int(n)
	}
	return nil
}

// capped requires a list to hold at most MaxRecords entries.
func capped(n int, what string) error {
	if n > MaxRecords {
		return fmt.Errorf("%w: %d %s, limit %d", ErrTooLarge, n, what, MaxRecords)
	}
	return nil
}

// ascending requires a list to be strictly ascending: no repeats, so that
// the work a message asks for is bounded by what it names once.
func ascending[T uint32 | uint64](list []T, what string) error {
	for i := 1; i < len(list); i++ {
		if list[i] <= list[i-1] {
			return fmt.Errorf("%w: %s not strictly ascending at %d", ErrMalformed, what, i)
		}
	}
	return nil
}
