package wire

import (
	"math"

	"github.com/bcache-go/bcache/crdt"
)

// RecordSize returns the exact number of bytes r occupies encoded inside a
// Repair's record list. It does not check the limits.
func RecordSize(r *crdt.Record) int { return DeltaRecordSize(r, 0, 0) }

// DeltaRecordSize returns the exact number of bytes r occupies encoded inside
// the record list of a Delta with the given base wall time and OriginID.
func DeltaRecordSize(r *crdt.Record, base int64, origin crdt.NodeID) int {
	n := 1 + strSize(len(r.Key)) + intSize(r.Time.Wall-base) + uintSize(uint64(r.Time.Logical)) +
		uintSize(uint64(elide(r.Time.Node, origin))) + intSize(r.Expires) + 1
	if len(r.Value) == 0 {
		return n + 1
	}
	return n + binSize(len(r.Value))
}

// DeltaOverhead returns the bytes of a Delta frame with this origin and this
// many records, excluding the records' own bytes (see DeltaRecordSize),
// counting OriginID, Seq and the base wall time at their widest (9 bytes
// each). So DeltaOverhead plus the sum of DeltaRecordSize is an upper bound
// on the frame size, exact when the three are all at least 2^32 in
// magnitude, and at most 24 bytes over otherwise.
func DeltaOverhead(origin string, records int) int {
	return 2 + arrayHeaderSize(5) + strSize(len(origin)) + 9 + 9 + 9 + arrayHeaderSize(records)
}

// uintSize is the encoded size of v in its shortest msgpack form.
func uintSize(v uint64) int {
	switch {
	case v <= math.MaxInt8:
		return 1
	case v <= math.MaxUint8:
		return 2
	case v <= math.MaxUint16:
		return 3
	case v <= math.MaxUint32:
		return 5
	}
	return 9
}

// intSize is the encoded size of v in its shortest msgpack form.
func intSize(v int64) int {
	switch {
	case v >= 0:
		return uintSize(uint64(v))
	case v >= -32:
		return 1
	case v >= math.MinInt8:
		return 2
	case v >= math.MinInt16:
		return 3
	case v >= math.MinInt32:
		return 5
	}
	return 9
}

// strSize is the encoded size of a string of n bytes.
func strSize(n int) int {
	switch {
	case n < 32:
		return 1 + n
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

// binSize is the encoded size of a bin of n bytes.
func binSize(n int) int {
	switch {
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

// arrayHeaderSize is the encoded size of the header of an n-element array.
func arrayHeaderSize(n int) int {
	switch {
	case n < 16:
		return 1
	case n <= math.MaxUint16:
		return 3
	}
	return 5
}
