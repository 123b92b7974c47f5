package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/bcache-go/bcache/crdt"
)

// Version 1 of the snapshot format kept its records as a frame of the
// first version of the sync protocol's wire format: the bytes 1 (wire
// version) and 4 (Repair), then a msgpack array of seven fields of which
// the third is the list of records:
//
//	[session uint, echo int, records [record...], wants bin,
//	 rejected [version...], final bool, truncated bool]
//	record [key str, value bin|nil, wall int, logical uint, node uint,
//	        expires int, flags uint]   flags: bit 0 tombstone, bit 1 evicted
//
// The reader below knows exactly that much msgpack, checks every length
// against the bytes that remain, and is frozen: it does not follow the wire
// protocol, so a snapshot written by that release stays readable whatever
// the protocol becomes.

// decodeLegacyRecords appends the records of a version-1 'R' section.
func decodeLegacyRecords(dst []crdt.Record, b []byte) ([]crdt.Record, error) {
	if len(b) < 2 || b[0] != 1 || b[1] != 4 {
		return dst, errors.New("not a version-1 record frame")
	}
	d := &mpReader{b: b[2:]}
	if d.arrayLen() != 7 {
		return dst, d.errOr("frame of %d fields, want 7")
	}
	d.uint(math.MaxUint64) // session
	d.int()                // echo
	n := d.arrayLen()
	// Grown once, to the records the bytes left can hold (8 bytes each at
	// least): appended one by one, a slice grown by copies, a file of
	// small records took 63 bytes of memory a byte (found by review).
	dst = slices.Grow(dst, min(n, len(d.b)/minLegacyRecord))
	for i := 0; i < n && d.err == nil; i++ {
		dst = append(dst, d.record())
	}
	d.skipBlob() // wants
	for m := d.arrayLen(); m > 0 && d.err == nil; m-- {
		d.skipVersion()
	}
	d.bool()
	d.bool()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the frame", len(d.b))
	}
	return dst, d.err
}

// minLegacyRecord is the fewest bytes a version-1 record takes: its
// array's code and seven fields of a byte.
const minLegacyRecord = 8

// mpReader reads the msgpack subset of version-1 record frames, keeping
// the first error.
type mpReader struct {
	b   []byte
	err error
}

func (d *mpReader) errOr(format string) error {
	if d.err != nil {
		return d.err
	}
	return errors.New(format)
}

func (d *mpReader) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
	d.b = nil
}

// take returns the next n bytes.
func (d *mpReader) take(n int) []byte {
	if n < 0 || n > len(d.b) {
		d.fail("%d bytes wanted, %d left", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *mpReader) code() byte {
	if c := d.take(1); c != nil {
		return c[0]
	}
	return 0
}

// length reads a big-endian length of width bytes.
func (d *mpReader) length(width int) int {
	b := d.take(width)
	switch width {
	case 1:
		if b != nil {
			return int(b[0])
		}
	case 2:
		if b != nil {
			return int(binary.BigEndian.Uint16(b))
		}
	case 4:
		if b != nil {
			u := binary.BigEndian.Uint32(b)
			if u > math.MaxInt32 {
				// No frame is that long; where int has 32 bits, it read
				// as negative and passed the checks against the bytes left.
				d.fail("length %d", u)
				return 0
			}
			return int(u)
		}
	}
	return 0
}

func (d *mpReader) arrayLen() int {
	c := d.code()
	var n int
	switch {
	case c >= 0x90 && c <= 0x9f:
		n = int(c & 0x0f)
	case c == 0xdc:
		n = d.length(2)
	case c == 0xdd:
		n = d.length(4)
	default:
		d.fail("array expected, code 0x%02x", c)
	}
	if n > len(d.b) { // every element takes at least a byte
		d.fail("%d elements in %d bytes", n, len(d.b))
		return 0
	}
	return n
}

// raw reads a str or bin (or nil, as an empty value).
func (d *mpReader) raw() []byte {
	c := d.code()
	switch {
	case c >= 0xa0 && c <= 0xbf:
		return d.take(int(c & 0x1f))
	case c == 0xc0:
		return nil
	case c == 0xd9 || c == 0xc4:
		return d.take(d.length(1))
	case c == 0xda || c == 0xc5:
		return d.take(d.length(2))
	case c == 0xdb || c == 0xc6:
		return d.take(d.length(4))
	}
	d.fail("str or bin expected, code 0x%02x", c)
	return nil
}

// integer reads any msgpack integer as its bits and whether it is signed
// and negative.
func (d *mpReader) integer() (bits uint64, negative bool) {
	c := d.code()
	switch {
	case c <= 0x7f:
		return uint64(c), false
	case c >= 0xe0:
		return uint64(int64(int8(c))), true
	}
	if c < 0xcc || c > 0xd3 {
		d.fail("integer expected, code 0x%02x", c)
		return 0, false
	}
	width := 1 << ((c - 0xcc) % 4) // uint8..uint64 are 0xcc..0xcf, int8..int64 0xd0..0xd3
	b := d.take(width)
	if b == nil {
		return 0, false
	}
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	if c >= 0xd0 { // signed: extend the sign of a narrower width
		shift := 64 - 8*uint(width)
		s := int64(v<<shift) >> shift
		return uint64(s), s < 0
	}
	return v, false
}

func (d *mpReader) uint(limit uint64) uint64 {
	v, neg := d.integer()
	if neg || v > limit {
		d.fail("unsigned integer out of range")
		return 0
	}
	return v
}

func (d *mpReader) int() int64 {
	v, neg := d.integer()
	if !neg && v > math.MaxInt64 {
		d.fail("integer out of range")
		return 0
	}
	return int64(v)
}

func (d *mpReader) bool() bool {
	switch d.code() {
	case 0xc2:
		return false
	case 0xc3:
		return true
	}
	d.fail("bool expected")
	return false
}

func (d *mpReader) record() crdt.Record {
	if d.arrayLen() != 7 {
		d.fail("record of other than 7 fields")
		return crdt.Record{}
	}
	key := d.raw()
	value := d.raw()
	var r crdt.Record
	r.Time.Wall = d.int()
	r.Time.Logical = uint32(d.uint(math.MaxUint32))
	r.Time.Node = crdt.NodeID(d.uint(math.MaxUint64))
	r.Expires = d.int()
	flags := d.uint(3)
	if len(key) > maxKey || len(value) > maxValue {
		d.fail("record of a %d-byte key and a %d-byte value over the limits", len(key), len(value))
	}
	r.Key, r.Tombstone, r.Evicted = string(key), flags&1 != 0, flags&2 != 0
	if len(value) > 0 {
		r.Value = bytes.Clone(value)
	}
	return r
}

func (d *mpReader) skipBlob() { d.raw() }

func (d *mpReader) skipVersion() {
	if d.arrayLen() != 5 {
		d.fail("version of other than 5 fields")
		return
	}
	d.raw()
	d.int()
	d.uint(math.MaxUint32)
	d.uint(math.MaxUint64)
	d.bool()
}
