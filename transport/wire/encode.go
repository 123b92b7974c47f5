package wire

import (
	"encoding/binary"

	"github.com/bcache-go/bcache/crdt"
)

// encodeBody writes the body of m, which checkMessage has accepted.
func (c *Codec) encodeBody(m Message) {
	switch m := m.(type) {
	case *Delta:
		_ = c.enc.EncodeArrayLen(5)
		c.putStr(m.Origin, "origin")
		_ = c.enc.EncodeUint(uint64(m.OriginID))
		_ = c.enc.EncodeUint(m.Seq)
		base := deltaBase(m.Records)
		_ = c.enc.EncodeInt(base)
		c.putRecords(m.Records, base, m.OriginID)
	case *Direct:
		if !c.putList(2+len(m.Records), "records") {
			return
		}
		_ = c.enc.EncodeUint(uint64(m.OriginID))
		base := deltaBase(m.Records)
		_ = c.enc.EncodeInt(base)
		c.putRecordsInline(m.Records, base, m.OriginID)
	case *Digest:
		_ = c.enc.EncodeArrayLen(10)
		c.putSession(m.Session)
		_ = c.enc.EncodeUint(uint64(m.Level))
		c.putUint32s(m.Parents)
		c.putUint64s(m.Hashes)
		c.putTimestamp(m.Cut)
		_ = c.enc.EncodeInt(m.Coverage)
	case *Versions:
		fields := 6
		if m.Part != nil {
			fields = 8
		}
		if m.Prints {
			fields++
		}
		_ = c.enc.EncodeArrayLen(fields)
		c.putSession(m.Session)
		c.putUint32s(m.Leaves)
		c.putUint32s(m.Counts)
		c.putKeyVersions(m.Versions)
		if m.Part != nil {
			_ = c.enc.EncodeUint(m.Part.From)
			_ = c.enc.EncodeUint(m.Part.Through)
		}
		if m.Prints {
			c.putPrints(m.Versions)
		}
	case *Repair:
		_ = c.enc.EncodeArrayLen(7)
		c.putSession(m.Session)
		c.putRecords(m.Records, 0, 0)
		c.putUint64s(m.Wants)
		_ = c.enc.EncodeBool(m.Final)
		_ = c.enc.EncodeBool(m.Truncated)
	case *Reject:
		_ = c.enc.EncodeArrayLen(4)
		c.putSession(m.Session)
		c.putRecords(m.Records, 0, 0)
	}
}

// The put methods write through the encoder to an appendWriter, which never
// fails, so the encoder's errors are discarded; c.err holds limit errors.

func (c *Codec) putSession(s Session) {
	_ = c.enc.EncodeUint(s.ID)
	_ = c.enc.EncodeUint(s.Token)
	_ = c.enc.EncodeUint(uint64(s.Step))
}

func (c *Codec) putStr(s, what string) {
	if len(s) > c.lim.MaxKey {
		c.fail(ErrTooLarge, "%s of %d bytes exceeds limit %d", what, len(s), c.lim.MaxKey)
		return
	}
	_ = c.enc.EncodeString(s)
}

func (c *Codec) putTimestamp(t crdt.Timestamp) {
	_ = c.enc.EncodeInt(t.Wall)
	_ = c.enc.EncodeUint(uint64(t.Logical))
	_ = c.enc.EncodeUint(uint64(t.Node))
}

// putList writes the header of an n-element list, refusing one that could
// not fit in a frame (which would also overflow the msgpack header).
func (c *Codec) putList(n int, what string) bool {
	if n > c.lim.MaxFrame {
		c.fail(ErrTooLarge, "%d %s exceed the frame limit %d", n, what, c.lim.MaxFrame)
		return false
	}
	_ = c.enc.EncodeArrayLen(n)
	return true
}

// deltaBase is the wall time a Delta's record walls are written relative
// to: its first record's.
func deltaBase(rs []crdt.Record) int64 {
	if len(rs) == 0 {
		return 0
	}
	return rs[0].Time.Wall
}

// putRecords writes a record list, stopping early once the frame is over
// the limit. Walls are written as offsets from base (wrapping), and node ids
// XORed with origin.
func (c *Codec) putRecords(rs []crdt.Record, base int64, origin crdt.NodeID) {
	if !c.putList(len(rs), "records") {
		return
	}
	for i := range rs {
		c.putRecord(&rs[i], base, origin)
		if c.err == nil && len(c.out.b)-c.start > c.lim.MaxFrame {
			c.fail(ErrTooLarge, "frame exceeds limit %d at record %d", c.lim.MaxFrame, i)
		}
		if c.err != nil {
			return
		}
	}
}

// putRecordsInline writes the records of a Direct, each with its zero
// trailing fields left out, stopping early once the frame is over the
// limit.
func (c *Codec) putRecordsInline(rs []crdt.Record, base int64, origin crdt.NodeID) {
	for i := range rs {
		c.putRecordFields(&rs[i], base, origin, shortFields(&rs[i]))
		if c.err == nil && len(c.out.b)-c.start > c.lim.MaxFrame {
			c.fail(ErrTooLarge, "frame exceeds limit %d at record %d", c.lim.MaxFrame, i)
		}
		if c.err != nil {
			return
		}
	}
}

// shortFields is how many fields r takes in a Direct: 7, less its flags
// and then its expiry while they are zero.
func shortFields(r *crdt.Record) int {
	switch {
	case recordFlags(r) != 0:
		return 7
	case r.Expires != 0:
		return 6
	}
	return 5
}

func (c *Codec) putRecord(r *crdt.Record, base int64, origin crdt.NodeID) {
	c.putRecordFields(r, base, origin, 7)
}

// putRecordFields writes r's first n fields (5 to 7).
func (c *Codec) putRecordFields(r *crdt.Record, base int64, origin crdt.NodeID, n int) {
	if len(r.Value) > c.lim.MaxValue {
		c.fail(ErrTooLarge, "value of %d bytes for key %q exceeds limit %d", len(r.Value), r.Key, c.lim.MaxValue)
		return
	}
	_ = c.enc.EncodeArrayLen(n)
	c.putStr(r.Key, "key")
	if len(r.Value) == 0 {
		_ = c.enc.EncodeNil()
	} else {
		_ = c.enc.EncodeBytes(r.Value)
	}
	_ = c.enc.EncodeInt(r.Time.Wall - base)
	_ = c.enc.EncodeUint(uint64(r.Time.Logical))
	_ = c.enc.EncodeUint(uint64(elide(r.Time.Node, origin)))
	if n > 5 {
		_ = c.enc.EncodeInt(r.Expires)
	}
	if n > 6 {
		_ = c.enc.EncodeUint(recordFlags(r))
	}
}

// elide is how a record's node is written in a Delta: XORed with the
// origin, a bijection that turns the origin's own records' node into 0.
func elide(node, origin crdt.NodeID) crdt.NodeID { return node ^ origin }

// Record flag bits.
const (
	flagTombstone = 1 << 0
	flagEvicted   = 1 << 1
)

func recordFlags(r *crdt.Record) uint64 {
	var f uint64
	if r.Tombstone {
		f |= flagTombstone
	}
	if r.Evicted {
		f |= flagEvicted
	}
	return f
}

// putBlobHeader writes the header of a bin of n entries of width bytes.
func (c *Codec) putBlobHeader(n, width int, what string) bool {
	if n > c.lim.MaxFrame/width {
		c.fail(ErrTooLarge, "%d %s exceed the frame limit %d", n, what, c.lim.MaxFrame)
		return false
	}
	_ = c.enc.EncodeBytesLen(n * width)
	return true
}

func (c *Codec) putUint32s(vs []uint32) {
	if c.putBlobHeader(len(vs), 4, "uint32s") {
		for _, v := range vs {
			c.out.b = binary.LittleEndian.AppendUint32(c.out.b, v)
		}
	}
}

func (c *Codec) putUint64s(vs []uint64) {
	if c.putBlobHeader(len(vs), 8, "uint64s") {
		for _, v := range vs {
			c.out.b = binary.LittleEndian.AppendUint64(c.out.b, v)
		}
	}
}

// putPrints writes the Print of each of vs, as a list of uint32s.
func (c *Codec) putPrints(vs []KeyVersion) {
	if c.putBlobHeader(len(vs), 4, "prints") {
		for _, v := range vs {
			c.out.b = binary.LittleEndian.AppendUint32(c.out.b, v.Print)
		}
	}
}

// keyVersionSize is the width of one KeyVersion in a Versions blob.
const keyVersionSize = 8 + 8 + 4 + 8 + 1

func (c *Codec) putKeyVersions(vs []KeyVersion) {
	if !c.putBlobHeader(len(vs), keyVersionSize, "key versions") {
		return
	}
	for i := range vs {
		b := binary.LittleEndian.AppendUint64(c.out.b, vs[i].KeyHash)
		b = binary.LittleEndian.AppendUint64(b, uint64(vs[i].Time.Wall))
		b = binary.LittleEndian.AppendUint32(b, vs[i].Time.Logical)
		b = binary.LittleEndian.AppendUint64(b, uint64(vs[i].Time.Node))
		var flags byte
		if vs[i].Tombstone {
			flags = flagTombstone
		}
		c.out.b = append(b, flags)
	}
}

// appendWriter is the io.Writer the encoder writes to: it appends to b and
// never fails, so the encoder's errors need no checking.
type appendWriter struct{ b []byte }

// Write implements io.Writer.
func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// WriteByte implements io.ByteWriter.
func (w *appendWriter) WriteByte(b byte) error {
	w.b = append(w.b, b)
	return nil
}
