package wire

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/bcache-go/bcache/crdt"
)

// Typed decoding. The body is read field by field straight from the
// frame (c.pos is the offset of the next value), checking each value's
// type, range and limit before allocating for it: msgpack's own decoder,
// reading through an io.Reader a byte at a time, took about 1.4 times as
// long a record (most of what is left is the key's and the value's
// allocations). Each read method does nothing once c.err is set and
// records its own failure there, so the message decoders read straight
// through and Decode checks c.err once.

// decodeBody reads the body of a message of kind k.
func (c *Codec) decodeBody(k Kind) Message {
	switch k {
	case KindDelta:
		m := &Delta{}
		c.fields(5, "delta")
		m.Origin = c.str("origin")
		m.OriginID = crdt.NodeID(c.uint(math.MaxUint64, "origin id"))
		m.Seq = c.uint(math.MaxUint64, "seq")
		base := c.int("base")
		m.Records = c.records(base, m.OriginID, c.reuse)
		return m
	case KindDirect:
		m := &Direct{}
		n := c.list(1, "direct")
		if c.err == nil && n < 2 {
			c.fail(ErrMalformed, "direct: got %d fields, want at least 2", n)
		}
		m.OriginID = crdt.NodeID(c.uint(math.MaxUint64, "origin id"))
		base := c.int("base")
		m.Records = c.recordsOf(n-2, 5, base, m.OriginID, c.reuse)
		return m
	case KindDigest:
		m := &Digest{}
		c.fields(10, "digest")
		m.Session = c.session()
		m.Level = uint8(c.uint(maxLevel, "level"))
		m.Parents, m.Hashes = c.uint32s("parents"), c.uint64s("hashes", 0)
		m.Cut, m.Coverage = c.timestamp(), c.int("coverage")
		return m
	case KindVersions:
		m := &Versions{}
		n := c.list(1, "versions")
		if c.err == nil && (n < 6 || n > 9) {
			c.fail(ErrMalformed, "versions: got %d fields, want 6 to 9", n)
		}
		m.Session = c.session()
		m.Leaves, m.Counts = c.uint32s("leaves"), c.uint32s("counts")
		m.Versions = c.keyVersions()
		if n >= 8 {
			m.Part = &KeyRange{From: c.uint(math.MaxUint64, "part from"), Through: c.uint(math.MaxUint64, "part through")}
		}
		if n%2 == 1 { // a field more: the prints
			m.Prints = true
			prints := c.uint32s("prints")
			if c.err == nil && len(prints) != len(m.Versions) {
				c.fail(ErrMalformed, "versions: %d prints for %d versions", len(prints), len(m.Versions))
			}
			for i := range prints {
				if i < len(m.Versions) {
					m.Versions[i].Print = prints[i]
				}
			}
		}
		return m
	case KindRepair:
		m := &Repair{}
		c.fields(7, "repair")
		m.Session = c.session()
		m.Records, m.Wants = c.records(0, 0, false), c.uint64s("wants", MaxRecords)
		m.Final, m.Truncated = c.bool("final"), c.bool("truncated")
		return m
	}
	m := &Reject{}
	c.fields(4, "reject")
	m.Session, m.Records = c.session(), c.records(0, 0, false)
	return m
}

func (c *Codec) session() Session {
	return Session{
		ID:    c.uint(math.MaxUint64, "session"),
		Token: c.uint(math.MaxUint64, "token"),
		Step:  uint32(c.uint(math.MaxUint32, "step")),
	}
}

// Minimum encoded sizes of list elements: a list header claiming more
// elements than the bytes left could hold is rejected before the slice is
// allocated, which bounds the allocation by the frame size.
const (
	minRecordSize      = 8 // fixarray, fixstr, nil, five fixints
	minShortRecordSize = 6 // a Direct's record without expires and flags
)

// records reads a record list written by putRecords with the same base and
// origin (into the codec's scratch if reuse: see recordsOf).
func (c *Codec) records(base int64, origin crdt.NodeID, reuse bool) []crdt.Record {
	return c.recordsOf(c.list(minRecordSize, "records"), 7, base, origin, reuse)
}

// recordsOf reads n records of at least minFields fields (5 or 7; the
// missing ones are zero) written with the same base and origin, into the
// codec's scratch if reuse and they are few.
func (c *Codec) recordsOf(n, minFields int, base int64, origin crdt.NodeID, reuse bool) []crdt.Record {
	if minFields < 7 && c.err == nil && n > c.left()/minShortRecordSize {
		c.fail(ErrMalformed, "records: %d cannot fit in %d bytes", n, c.left())
	}
	// Every list of records is capped (checkMessage): refused before its
	// records are made, not after (a 20 MiB frame of 3.5M empty records
	// made 266 MiB of them and held the protocol's lock for 0.44 s before
	// it was refused: found by review).
	if c.err == nil && n > MaxRecords {
		c.fail(ErrTooLarge, "records: %d, limit %d", n, MaxRecords)
	}
	if n <= 0 || c.err != nil {
		return nil
	}
	var rs []crdt.Record
	if reuse && n <= maxReused {
		if cap(c.recs) < n {
			c.recs = make([]crdt.Record, maxReused)
		}
		rs = c.recs[:n:n] // an append by the caller must not write into the scratch
		if c.used > n {
			clear(c.recs[n:c.used]) // the last frame's keys and values, which the caller is done with
		}
		c.used = n
	} else {
		rs = make([]crdt.Record, n)
	}
	for i := range rs {
		r := &rs[i]
		*r = crdt.Record{} // a reused slice holds the last frame's: a field a record leaves out is zero
		fields := c.list(1, "record")
		if c.err == nil && (fields < minFields || fields > 7) {
			c.fail(ErrMalformed, "record: got %d fields, want %d to 7", fields, minFields)
		}
		r.Key, r.Value = c.str("key"), c.bin("value")
		r.Time = c.timestamp()
		if fields > 5 {
			r.Expires = c.int("expires")
		}
		r.Time.Wall += base // wrapping, as putRecords subtracted it
		r.Time.Node ^= origin
		var flags uint64
		if fields > 6 {
			flags = c.uint(flagTombstone|flagEvicted, "flags")
		}
		r.Tombstone, r.Evicted = flags&flagTombstone != 0, flags&flagEvicted != 0
		if c.err == nil && flags != 0 && len(r.Value) > 0 {
			// A tombstone or an evicted version holds no value: one sent
			// with it was reported to the change feed as held, and kept
			// alive there (found by review).
			c.fail(ErrMalformed, "record: a value of %d bytes on a tombstone or an evicted version", len(r.Value))
		}
		if c.err != nil {
			c.err = fmt.Errorf("record %d: %w", i, c.err)
			return nil
		}
	}
	return rs
}

func (c *Codec) timestamp() crdt.Timestamp {
	return crdt.Timestamp{
		Wall:    c.int("wall"),
		Logical: uint32(c.uint(math.MaxUint32, "logical")),
		Node:    crdt.NodeID(c.uint(math.MaxUint64, "node")),
	}
}

func (c *Codec) keyVersions() []KeyVersion {
	b := c.blob(keyVersionSize, "key versions")
	if len(b) == 0 {
		return nil
	}
	vs := make([]KeyVersion, len(b)/keyVersionSize)
	for i := range vs {
		e := b[i*keyVersionSize : (i+1)*keyVersionSize]
		if e[28]&^flagTombstone != 0 {
			c.fail(ErrMalformed, "key version %d has flags 0x%02x", i, e[28])
			return nil
		}
		vs[i] = KeyVersion{
			KeyHash: binary.LittleEndian.Uint64(e),
			Time: crdt.Timestamp{
				Wall:    int64(binary.LittleEndian.Uint64(e[8:])),
				Logical: binary.LittleEndian.Uint32(e[16:]),
				Node:    crdt.NodeID(binary.LittleEndian.Uint64(e[20:])),
			},
			Tombstone: e[28] == flagTombstone,
		}
	}
	return vs
}

func (c *Codec) uint32s(what string) []uint32 {
	b := c.blob(4, what)
	if len(b) == 0 {
		return nil
	}
	vs := make([]uint32, len(b)/4)
	for i := range vs {
		vs[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return vs
}

// uint64s reads a bin of little-endian uint64s. A list of more than most
// (0: no bound) is refused before it is made.
func (c *Codec) uint64s(what string, most int) []uint64 {
	b := c.blob(8, what)
	if most > 0 && len(b)/8 > most && c.err == nil {
		c.fail(ErrTooLarge, "%s: %d, limit %d", what, len(b)/8, most)
	}
	if len(b) == 0 || c.err != nil {
		return nil
	}
	vs := make([]uint64, len(b)/8)
	for i := range vs {
		vs[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return vs
}

// peek returns the next type code without consuming it; ok is false (and
// c.err set) at the end of the body or after an earlier error.
func (c *Codec) peek(what string) (code byte, ok bool) {
	if c.err != nil {
		return 0, false
	}
	if c.pos >= len(c.body) {
		c.fail(ErrMalformed, "%s: truncated", what)
		return 0, false
	}
	return c.body[c.pos], true
}

// left returns the bytes of the body not read yet.
func (c *Codec) left() int { return len(c.body) - c.pos }

// take consumes the code byte and an n-byte big-endian argument after it
// and returns the argument; ok is false (and c.err set) if the body ends
// first.
func (c *Codec) take(n int, what string) (arg uint64, ok bool) {
	if c.left() < 1+n {
		c.fail(ErrMalformed, "%s: truncated", what)
		return 0, false
	}
	b := c.body[c.pos+1 : c.pos+1+n]
	c.pos += 1 + n
	switch n {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), true
	case 4:
		return uint64(binary.BigEndian.Uint32(b)), true
	case 8:
		return binary.BigEndian.Uint64(b), true
	}
	return 0, true
}

// wrongType records that the value for what has the wrong type.
func (c *Codec) wrongType(what, want string, code byte) {
	c.fail(ErrMalformed, "%s: got type code 0x%02x, want %s", what, code, want)
}

// fields reads the header of a fixed-size array of n fields.
func (c *Codec) fields(n int, what string) {
	if got := c.list(1, what); c.err == nil && got != n {
		c.fail(ErrMalformed, "%s: got %d fields, want %d", what, got, n)
	}
}

// list reads an array header of elements at least minSize bytes each.
func (c *Codec) list(minSize int, what string) int {
	code, ok := c.peek(what)
	if !ok {
		return 0
	}
	var n uint64
	switch {
	case code >= codeFixArrMin && code <= codeFixArrMax:
		_, ok = c.take(0, what)
		n = uint64(code - codeFixArrMin)
	case code == codeArray16:
		n, ok = c.take(2, what)
	case code == codeArray32:
		n, ok = c.take(4, what)
	default:
		c.wrongType(what, "array", code)
		return 0
	}
	if ok && n > uint64(c.left()/minSize) {
		c.fail(ErrMalformed, "%s: %d elements cannot fit in %d bytes", what, n, c.left())
	}
	if c.err != nil {
		return 0
	}
	return int(n)
}

// integer reads any msgpack integer as its two's complement bits and sign.
func (c *Codec) integer(what string) (v uint64, negative bool) {
	code, ok := c.peek(what)
	if !ok {
		return 0, false
	}
	var s int64 // a signed encoding's value
	switch {
	case code <= codePosFixMax:
		c.pos++
		return uint64(code), false
	case code >= codeNegFixMin:
		c.pos++
		s = int64(int8(code))
	case code >= codeUint8 && code <= codeUint64: // 1, 2, 4, 8 bytes
		v, _ := c.take(1<<(code-codeUint8), what)
		return v, false
	case code >= codeInt8 && code <= codeInt64:
		v, _ := c.take(1<<(code-codeInt8), what)
		switch code {
		case codeInt8:
			s = int64(int8(v))
		case codeInt16:
			s = int64(int16(v))
		case codeInt32:
			s = int64(int32(v))
		default:
			s = int64(v)
		}
	default:
		c.wrongType(what, "integer", code)
		return 0, false
	}
	if c.err != nil {
		return 0, false
	}
	return uint64(s), s < 0
}

// uint reads an unsigned integer no greater than limit.
func (c *Codec) uint(limit uint64, what string) uint64 {
	v, neg := c.integer(what)
	switch {
	case c.err != nil:
	case neg:
		c.fail(ErrMalformed, "%s: %d is negative", what, int64(v))
	case v > limit:
		c.fail(ErrMalformed, "%s: %d exceeds %d", what, v, limit)
	}
	if c.err != nil {
		return 0
	}
	return v
}

// int reads a signed 64-bit integer.
func (c *Codec) int(what string) int64 {
	v, neg := c.integer(what)
	if c.err == nil && !neg && v > math.MaxInt64 {
		c.fail(ErrMalformed, "%s: %d overflows int64", what, v)
	}
	if c.err != nil {
		return 0
	}
	return int64(v)
}

func (c *Codec) bool(what string) bool {
	code, ok := c.peek(what)
	if ok && code != codeTrue && code != codeFalse {
		c.wrongType(what, "bool", code)
	}
	if c.err != nil {
		return false
	}
	c.pos++
	return code == codeTrue
}

// raw reads the header of a str or bin (as isType tells) of at most limit
// bytes and returns its payload, still inside the frame, skipping it.
func (c *Codec) raw(isType func(byte) bool, want string, limit int, sentinel error, what string) []byte {
	code, ok := c.peek(what)
	if ok && !isType(code) {
		c.wrongType(what, want, code)
	}
	if c.err != nil {
		return nil
	}
	var n uint64
	switch code {
	case codeStr8, codeBin8:
		n, _ = c.take(1, what)
	case codeStr16, codeBin16:
		n, _ = c.take(2, what)
	case codeStr32, codeBin32:
		n, _ = c.take(4, what)
	default: // fixstr
		c.take(0, what)
		n = uint64(code - codeFixStrMin)
	}
	// Past the bytes left first: a frame that claims more than it holds
	// is malformed, whatever it claims (so the validation pass that ran
	// before decoding counted it), and one that holds a value over the
	// limit is too large.
	switch {
	case c.err != nil:
		return nil
	case n > uint64(c.left()):
		c.fail(ErrMalformed, "%s: %d bytes, %d left", what, n, c.left())
		return nil
	case n > uint64(limit):
		c.fail(sentinel, "%s: %d bytes exceed limit %d", what, n, limit)
		return nil
	}
	b := c.body[c.pos : c.pos+int(n)]
	c.pos += int(n)
	return b
}

// str reads a string of at most MaxKey bytes, copying it out of the frame.
func (c *Codec) str(what string) string {
	b := c.raw(isStr, "str", c.lim.MaxKey, ErrTooLarge, what)
	if c.intern != nil && c.err == nil {
		return c.intern.str(b)
	}
	return string(b)
}

// bin reads a value: nil, or a bin of at most MaxValue bytes, copied out of
// the frame. An empty bin reads as nil.
func (c *Codec) bin(what string) []byte {
	if code, ok := c.peek(what); ok && code == codeNil {
		c.pos++
		return nil
	}
	b := c.raw(isBin, "bin or nil", c.lim.MaxValue, ErrTooLarge, what)
	if len(b) == 0 {
		return nil
	}
	if c.intern != nil {
		return c.intern.bin(b)
	}
	return append(make([]byte, 0, len(b)), b...)
}

// blob reads a bin of fixed-width entries, returned still inside the frame.
func (c *Codec) blob(width int, what string) []byte {
	b := c.raw(isBin, "bin", len(c.body), ErrMalformed, what)
	if c.err == nil && len(b)%width != 0 {
		c.fail(ErrMalformed, "%s: %d bytes is not a multiple of %d", what, len(b), width)
		return nil
	}
	return b
}

func isStr(c byte) bool {
	return c >= codeFixStrMin && c <= codeFixStrMax || c == codeStr8 || c == codeStr16 || c == codeStr32
}

func isBin(c byte) bool { return c == codeBin8 || c == codeBin16 || c == codeBin32 }
