package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/bcache-go/bcache/crdt"
)

// Generators. Every empty slice is drawn both as nil and as empty, since
// the codec documents that both decode as nil.

func drawInt64(t *rapid.T, label string) int64 {
	edges := []int64{0, 1, -1, -32, -33, 127, 128, -128, -129, 255, 256, -32768, -32769,
		math.MaxUint16, math.MaxUint16 + 1, math.MinInt32, math.MaxUint32, math.MaxUint32 + 1, math.MinInt64, math.MaxInt64}
	return rapid.OneOf(rapid.Int64(), rapid.SampledFrom(edges)).Draw(t, label)
}

func drawUint64(t *rapid.T, label string) uint64 {
	edges := []uint64{0, 127, 128, 255, 256, math.MaxUint16, math.MaxUint16 + 1, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64}
	return rapid.OneOf(rapid.Uint64(), rapid.SampledFrom(edges)).Draw(t, label)
}

func drawUint32(t *rapid.T, label string) uint32 {
	edges := []uint32{0, 127, 128, 255, 256, math.MaxUint16, math.MaxUint16 + 1, math.MaxUint32}
	return rapid.OneOf(rapid.Uint32(), rapid.SampledFrom(edges)).Draw(t, label)
}

// drawBytes draws short byte strings and, now and then, one whose length
// sits on a msgpack header boundary.
func drawBytes(t *rapid.T, label string, maxLen int) []byte {
	lengths := []int{31, 32, 255, 256, math.MaxUint16, math.MaxUint16 + 1}
	n := rapid.OneOf(rapid.IntRange(0, 24), rapid.SampledFrom(lengths)).Draw(t, label+" len")
	n = min(n, maxLen)
	if n == 0 {
		if rapid.Bool().Draw(t, label+" nil") {
			return nil
		}
		return []byte{}
	}
	pattern := rapid.SliceOfN(rapid.Byte(), 1, 8).Draw(t, label)
	b := make([]byte, n)
	for i := range b {
		b[i] = pattern[i%len(pattern)]
	}
	return b
}

func drawKey(t *rapid.T, label string) string {
	if rapid.Bool().Draw(t, label+" small") {
		return rapid.StringMatching(`[ab]{0,2}`).Draw(t, label)
	}
	return string(drawBytes(t, label, DefaultLimits().MaxKey))
}

func drawSlice[T any](t *rapid.T, label string, maxLen int, draw func(*rapid.T, string) T) []T {
	n := rapid.IntRange(0, maxLen).Draw(t, label+" count")
	if n == 0 {
		if rapid.Bool().Draw(t, label+" nil") {
			return nil
		}
		return []T{}
	}
	s := make([]T, n)
	for i := range s {
		s[i] = draw(t, fmt.Sprintf("%s %d", label, i))
	}
	return s
}

func drawTimestamp(t *rapid.T, label string) crdt.Timestamp {
	return crdt.Timestamp{Wall: drawInt64(t, label+" wall"), Logical: drawUint32(t, label+" logical"),
		Node: crdt.NodeID(drawUint64(t, label+" node"))}
}

func drawRecord(t *rapid.T, label string) crdt.Record {
	r := crdt.Record{Key: drawKey(t, label+" key"), Value: drawBytes(t, label+" value", math.MaxInt),
		Time: drawTimestamp(t, label), Expires: drawInt64(t, label+" expires"),
		Tombstone: rapid.Bool().Draw(t, label+" tombstone"), Evicted: rapid.Bool().Draw(t, label+" evicted")}
	if r.Tombstone || r.Evicted {
		r.Value = nil // they hold none: a frame with one is refused
	}
	return r
}

func drawVersion(t *rapid.T, label string) crdt.Version {
	return crdt.Version{Key: drawKey(t, label+" key"), Time: drawTimestamp(t, label), Tombstone: rapid.Bool().Draw(t, label+" tombstone")}
}

func drawKeyVersion(t *rapid.T, label string) KeyVersion {
	return KeyVersion{KeyHash: drawUint64(t, label+" hash"), Time: drawTimestamp(t, label), Tombstone: rapid.Bool().Draw(t, label+" tombstone")}
}

func drawSession(t *rapid.T) Session {
	return Session{ID: drawUint64(t, "session"), Token: drawUint64(t, "token"), Step: drawUint32(t, "step")}
}

// drawAscending draws a strictly ascending list of up to max values below
// limit (limit 0: any).
func drawAscending[T uint32 | uint64](t *rapid.T, label string, max int, limit T) []T {
	var out []T
	next := T(0)
	for i := range rapid.IntRange(0, max).Draw(t, label+" len") {
		step := T(rapid.Uint64Range(1, 1<<20).Draw(t, fmt.Sprintf("%s %d", label, i)))
		if i == 0 {
			step--
		}
		if next+step < next || (limit != 0 && next+step >= limit) {
			break
		}
		next += step
		out = append(out, next)
	}
	return out
}

func drawDigest(t *rapid.T) *Digest {
	m := &Digest{Session: drawSession(t), Level: uint8(rapid.IntRange(0, maxLevel).Draw(t, "level")),
		Cut: drawTimestamp(t, "cut"), Coverage: drawInt64(t, "coverage")}
	if m.Level == 0 {
		m.Hashes = drawSlice(t, "hashes", 1, drawUint64)
		return m
	}
	m.Parents = drawAscending(t, "parents", 4, uint32(1)<<(crdt.FanoutBits*(m.Level-1)))
	m.Hashes = make([]uint64, len(m.Parents)*crdt.Fanout)
	for i := range m.Hashes {
		m.Hashes[i] = drawUint64(t, fmt.Sprintf("hash %d", i))
	}
	return m
}

func drawVersions(t *rapid.T) *Versions {
	m := &Versions{Session: drawSession(t)}
	m.Leaves = drawAscending(t, "leaves", 5, uint32(0))
	m.Counts = make([]uint32, len(m.Leaves))
	for i := range m.Counts {
		hashes := drawAscending(t, fmt.Sprintf("hashes %d", i), 3, uint64(0))
		m.Counts[i] = uint32(len(hashes))
		for _, h := range hashes {
			v := drawKeyVersion(t, fmt.Sprintf("version %d", len(m.Versions)))
			v.KeyHash = h
			m.Versions = append(m.Versions, v)
		}
	}
	if m.Prints = rapid.Bool().Draw(t, "prints"); m.Prints {
		for i := range m.Versions {
			m.Versions[i].Print = drawUint32(t, fmt.Sprintf("print %d", i))
		}
	}
	if len(m.Leaves) == 1 && rapid.Bool().Draw(t, "part") {
		// A part: a range around the leaf's versions (or any, with none).
		m.Part = &KeyRange{From: 0, Through: math.MaxUint64}
		if n := len(m.Versions); n > 0 {
			m.Part.From = rapid.Uint64Range(0, m.Versions[0].KeyHash).Draw(t, "part from")
			m.Part.Through = rapid.Uint64Range(m.Versions[n-1].KeyHash, math.MaxUint64).Draw(t, "part through")
		}
	}
	return m
}

func drawMessage(t *rapid.T, k Kind) Message {
	switch k {
	case KindDelta:
		return &Delta{Origin: drawKey(t, "origin"), OriginID: crdt.NodeID(drawUint64(t, "origin id")),
			Seq: drawUint64(t, "seq"), Records: drawSlice(t, "records", 6, drawRecord)}
	case KindDigest:
		return drawDigest(t)
	case KindVersions:
		return drawVersions(t)
	case KindDirect:
		return &Direct{OriginID: crdt.NodeID(drawUint64(t, "origin id")), Records: drawSlice(t, "records", 6, drawRecord)}
	case KindRepair:
		return &Repair{Session: drawSession(t),
			Records: drawSlice(t, "records", 6, drawRecord), Wants: drawAscending(t, "wants", 6, uint64(0)),
			Final: rapid.Bool().Draw(t, "final"), Truncated: rapid.Bool().Draw(t, "truncated")}
	}
	return &Reject{Session: drawSession(t), Records: drawSlice(t, "records", 6, drawRecord)}
}

// normalize returns a copy of m as Decode yields it: empty slices and empty
// values are nil.
func normalize(m Message) Message {
	switch m := m.(type) {
	case *Delta:
		c := *m
		c.Records = normalizeRecords(m.Records)
		return &c
	case *Digest:
		c := *m
		c.Parents, c.Hashes = orNil(m.Parents), orNil(m.Hashes)
		return &c
	case *Versions:
		c := *m
		c.Leaves, c.Counts, c.Versions = orNil(m.Leaves), orNil(m.Counts), orNil(m.Versions)
		return &c
	case *Repair:
		c := *m
		c.Records, c.Wants = normalizeRecords(m.Records), orNil(m.Wants)
		return &c
	case *Reject:
		c := *m
		c.Records = normalizeRecords(m.Records)
		return &c
	case *Direct:
		c := *m
		c.Records = normalizeRecords(m.Records)
		return &c
	}
	return m
}

func orNil[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func normalizeRecords(rs []crdt.Record) []crdt.Record {
	rs = slices.Clone(orNil(rs))
	for i := range rs {
		rs[i].Value = orNil(rs[i].Value)
	}
	return rs
}

func TestCodecRoundTrip(t *testing.T) {
	for k := KindDelta; k <= KindDirect; k++ {
		t.Run(k.String(), func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				m := drawMessage(t, k)
				prefix := rapid.SliceOfN(rapid.Byte(), 0, 3).Draw(t, "prefix")
				c := NewCodec(Limits{})
				frame, err := c.Encode(slices.Clone(prefix), m)
				if err != nil {
					t.Fatalf("Encode: got error %v, want nil", err)
				}
				if !bytes.Equal(frame[:len(prefix)], prefix) {
					t.Fatalf("Encode changed dst: got %x, want %x", frame[:len(prefix)], prefix)
				}
				got, err := c.Decode(frame[len(prefix):])
				if err != nil {
					t.Fatalf("Decode: got error %v, want nil", err)
				}
				want := normalize(m)
				if !equalMessages(got, want) {
					t.Fatalf("Decode: got %#v, want %#v", got, want)
				}
				clear(frame) // the decoded message must not alias the frame
				if !equalMessages(got, want) {
					t.Fatalf("after clearing the frame: got %#v, want %#v", got, want)
				}
			})
		})
	}
}

func TestCodecRecordSize(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := drawRecord(t, "record")
		origin := drawKey(t, "origin")
		d := &Delta{Origin: origin, OriginID: crdt.NodeID(rapid.Uint64Min(1<<32).Draw(t, "origin id")),
			Seq: rapid.Uint64Min(1<<32).Draw(t, "seq"), Records: []crdt.Record{r}}
		frame := mustEncode(t, d)
		// The overhead counts the base at its widest; the base is the record's wall.
		overhead := DeltaOverhead(origin, 1) - 9 + intSize(r.Time.Wall)
		if got, want := len(frame)-overhead, DeltaRecordSize(&r, r.Time.Wall, d.OriginID); got != want {
			t.Fatalf("encoded record size: got %d, want DeltaRecordSize %d", got, want)
		}
		rep := mustEncode(t, &Repair{Records: []crdt.Record{r}})
		empty := mustEncode(t, &Repair{})
		if got, want := len(rep)-len(empty), RecordSize(&r); got != want {
			t.Fatalf("encoded repair record size: got %d, want RecordSize %d", got, want)
		}
	})
}

func TestCodecDeltaOverhead(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := drawMessage(t, KindDelta).(*Delta)
		bound := DeltaOverhead(d.Origin, len(d.Records))
		base := deltaBase(d.Records)
		for i := range d.Records {
			bound += DeltaRecordSize(&d.Records[i], base, d.OriginID)
		}
		got := len(mustEncode(t, d))
		wide := d.OriginID > math.MaxUint32 && d.Seq > math.MaxUint32 && (base > math.MaxUint32 || base < math.MinInt32)
		if wide && got != bound {
			t.Fatalf("frame size with wide ids: got %d, want %d", got, bound)
		}
		if got > bound || got < bound-24 {
			t.Fatalf("frame size: got %d, want within [%d, %d]", got, bound-24, bound)
		}
	})
}

func TestCodecDeltaOverheadListHeaders(t *testing.T) {
	for _, n := range []int{0, 15, 16, MaxRecords} { // MaxRecords is under 2^16: no array32 header
		d := &Delta{Origin: "o", OriginID: math.MaxUint64, Seq: math.MaxUint64, Records: make([]crdt.Record, n)}
		// The base (0) takes one byte where the overhead counts nine.
		want := DeltaOverhead("o", n) - 8 + n*DeltaRecordSize(&crdt.Record{}, 0, math.MaxUint64)
		if got := len(mustEncode(t, d)); got != want {
			t.Errorf("%d records: got %d bytes, want %d", n, got, want)
		}
	}
}

// frameHex builds a frame of kind k from a hex body; "{z29}" stands for 29
// zero bytes.
func frameHex(t *testing.T, k Kind, body string) []byte {
	for {
		i := strings.Index(body, "{z")
		if i < 0 {
			break
		}
		j := strings.Index(body[i:], "}") + i
		var n int
		if _, err := fmt.Sscanf(body[i+2:j], "%d", &n); err != nil {
			t.Fatalf("bad placeholder in %q: %v", body, err)
		}
		body = body[:i] + strings.Repeat("00", n) + body[j+1:]
	}
	return append([]byte{WireVersion, byte(k)}, hexBytes(t, body)...)
}

func TestDecodeRejects(t *testing.T) {
	small := Limits{MaxKey: 4, MaxValue: 8}
	const (
		delta  = "95 a16f 01 02 00 91 " // Delta "o" 1 2 base 0, one record follows
		record = "97 a16b c40176 01 02 03 00 00"
	)
	cases := []struct {
		name string
		kind Kind
		body string
		lim  Limits
		want error
	}{
		{"valid delta", KindDelta, delta + record, Limits{}, nil},
		{"valid value at the limit", KindDelta, delta + "97 a16b c408 {z8} 01 02 03 00 00", small, nil},
		{"valid repair", KindRepair, "97 00 00 00 90 c400 c3 c2", Limits{}, nil},
		{"valid versions", KindVersions, "96 00 00 00 c404 01000000 c404 01000000 c41d {z29}", Limits{}, nil},
		{"truncated", KindDelta, "95 a16f 01 02 00", Limits{}, ErrMalformed},
		{"trailing byte", KindDelta, delta + record + "00", Limits{}, ErrMalformed},
		{"four fields", KindDelta, "94 a16f 01 02 90", Limits{}, ErrMalformed},
		{"six fields", KindDelta, "96 a16f 01 02 00 90 c0", Limits{}, ErrMalformed},
		{"record of six fields", KindDelta, delta + "96 a16b c40176 01 02 03 00", Limits{}, ErrMalformed},
		{"origin is an int", KindDelta, "95 01 01 02 00 90", Limits{}, ErrMalformed},
		{"origin is nil", KindDelta, "95 c0 01 02 00 90", Limits{}, ErrMalformed},
		{"seq is a string", KindDelta, "95 a16f 01 a178 00 90", Limits{}, ErrMalformed},
		{"seq is negative", KindDelta, "95 a16f 01 ff 00 90", Limits{}, ErrMalformed},
		{"origin id is a float", KindDelta, "95 a16f ca00000000 02 00 90", Limits{}, ErrMalformed},
		{"key is a bin", KindDelta, delta + "97 c4016b c0 01 02 03 00 00", Limits{}, ErrMalformed},
		{"value is a str", KindDelta, delta + "97 a16b a176 01 02 03 00 00", Limits{}, ErrMalformed},
		{"base is a string", KindDelta, "95 a16f 01 02 a130 90", Limits{}, ErrMalformed},
		{"wall overflows int64", KindDelta, delta + "97 a16b c0 cfffffffffffffffff 02 03 00 00", Limits{}, ErrMalformed},
		{"logical overflows uint32", KindDelta, delta + "97 a16b c0 01 cf0000000100000000 03 00 00", Limits{}, ErrMalformed},
		{"unknown flag", KindDelta, delta + "97 a16b c0 01 02 03 00 04", Limits{}, ErrMalformed},
		{"final is nil", KindRepair, "97 00 00 00 90 c400 c0 c2", Limits{}, ErrMalformed},
		{"records is nil", KindDelta, "95 a16f 01 02 00 c0", Limits{}, ErrMalformed},
		{"more records than bytes", KindDelta, "95 a16f 01 02 00 95 00 00 00 00 00", Limits{}, ErrMalformed},
		{"blob is an array", KindRepair, "97 00 00 00 90 90 c3 c2", Limits{}, ErrMalformed},
		{"blob is nil", KindDigest, "9a 00 00 00 01 c0 c400 00 00 00 00", Limits{}, ErrMalformed},
		{"map for the message", KindDelta, "85 a16f 01 02 00 90", Limits{}, ErrMalformed},
		{"map for a record", KindDelta, delta + "81 a16b 01", Limits{}, ErrMalformed},
		{"ext for the origin", KindDelta, "95 c70105 00 01 02 00 90", Limits{}, ErrMalformed},
		{"fixext for a record", KindDelta, delta + "d40100", Limits{}, ErrMalformed},
		{"reserved code", KindDelta, "95 c1 01 02 00 90", Limits{}, ErrMalformed},
		{"nesting too deep", KindDelta, "95 a16f 01 02 00 " + strings.Repeat("91", 9) + "00", Limits{}, ErrMalformed},
		{"origin over the key limit", KindDelta, "95 a56f6f6f6f6f 01 02 00 90", small, ErrTooLarge},
		{"key over the limit", KindDelta, delta + "97 a56b6b6b6b6b c0 01 02 03 00 00", small, ErrTooLarge},
		{"value over the limit", KindDelta, delta + "97 a16b c409 {z9} 01 02 03 00 00", small, ErrTooLarge},
		{"reject record key over the limit", KindReject, "94 00 00 00 91 97 a56b6b6b6b6b c0 01 02 03 00 00", small, ErrTooLarge},
		{"frame over the limit", KindDelta, delta + record, Limits{MaxFrame: 19}, ErrTooLarge},
		{"digest level 7", KindDigest, "9a 00 00 00 07 c400 c400 00 00 00 00", Limits{}, ErrMalformed},
		{"digest level 0 with parents", KindDigest, "9a 00 00 00 00 c404 01000000 c480 {z128} 00 00 00 00", Limits{}, ErrMalformed},
		{"digest level 0 with two hashes", KindDigest, "9a 00 00 00 00 c400 c410 {z16} 00 00 00 00", Limits{}, ErrMalformed},
		{"digest hashes short of fanout", KindDigest, "9a 00 00 00 01 c404 00000000 c478 {z120} 00 00 00 00", Limits{}, ErrMalformed},
		{"digest hashes without parents", KindDigest, "9a 00 00 00 01 c400 c480 {z128} 00 00 00 00", Limits{}, ErrMalformed},
		{"parents blob of 3 bytes", KindDigest, "9a 00 00 00 01 c403 000000 c400 00 00 00 00", Limits{}, ErrMalformed},
		{"wants blob of 7 bytes", KindRepair, "97 00 00 00 90 c407 {z7} c3 c2", Limits{}, ErrMalformed},
		{"counts for fewer leaves", KindVersions, "96 00 00 00 c404 01000000 c400 c400", Limits{}, ErrMalformed},
		{"counts over versions", KindVersions, "96 00 00 00 c404 01000000 c404 02000000 c41d {z29}", Limits{}, ErrMalformed},
		{"versions blob of 28 bytes", KindVersions, "96 00 00 00 c400 c400 c41c {z28}", Limits{}, ErrMalformed},
		{"parents repeated", KindDigest, "9a 00 00 00 02 c408 0000000000000000 c4ff00 {z256} 00 00 00 00", Limits{}, ErrMalformed},
		{"parents descending", KindDigest, "9a 00 00 00 03 c408 0200000001000000 c4ff00 {z256} 00 00 00 00", Limits{}, ErrMalformed},
		{"parent beyond its level", KindDigest, "9a 00 00 00 02 c404 10000000 c480 {z128} 00 00 00 00", Limits{}, ErrMalformed},
		{"leaves repeated", KindVersions, "96 00 00 00 c408 0100000001000000 c408 {z8} c400", Limits{}, ErrMalformed},
		{"versions of a leaf repeated", KindVersions, "96 00 00 00 c404 01000000 c404 02000000 c43a {z58}", Limits{}, ErrMalformed},
		{"wants repeated", KindRepair, "97 00 00 00 90 c410 {z16} c3 c2", Limits{}, ErrMalformed},
		{"key version flag 2", KindVersions, "96 00 00 00 c404 01000000 c404 01000000 c41d {z28} 02", Limits{}, ErrMalformed},
		{"versions with prints", KindVersions, "97 00 00 00 c404 01000000 c404 01000000 c41d {z29} c404 07000000", Limits{}, nil},
		{"a part with prints", KindVersions, "99 00 00 00 c404 01000000 c404 01000000 c41d {z29} 00 01 c404 07000000", Limits{}, nil},
		{"prints for fewer versions", KindVersions, "97 00 00 00 c404 01000000 c404 01000000 c41d {z29} c400", Limits{}, ErrMalformed},
		{"prints for more versions", KindVersions, "97 00 00 00 c404 01000000 c404 01000000 c41d {z29} c408 {z8}", Limits{}, ErrMalformed},
		{"prints blob of 3 bytes", KindVersions, "97 00 00 00 c404 01000000 c404 01000000 c41d {z29} c403 {z3}", Limits{}, ErrMalformed},
		{"versions of 10 fields", KindVersions, "9a 00 00 00 c404 01000000 c404 01000000 c41d {z29} 00 01 c404 07000000 00", Limits{}, ErrMalformed},
		{"versions of 5 fields", KindVersions, "95 00 00 00 c404 01000000 c404 01000000", Limits{}, ErrMalformed},
		{"direct record of 5 fields", KindDirect, "93 01 02 95 a16b c0 01 02 03", Limits{}, nil},
		{"direct record of 6 fields", KindDirect, "93 01 02 96 a16b c0 01 02 03 04", Limits{}, nil},
		{"direct record of 7 fields", KindDirect, "93 01 02 97 a16b c0 01 02 03 04 01", Limits{}, nil},
		{"direct record of 4 fields", KindDirect, "93 01 02 94 a16b c0 01 02", Limits{}, ErrMalformed},
		{"direct record of 8 fields", KindDirect, "93 01 02 98 a16b c0 01 02 03 04 01 00", Limits{}, ErrMalformed},
		{"direct of 1 field", KindDirect, "91 01", Limits{}, ErrMalformed},
		{"direct without a base", KindDirect, "91 01 02", Limits{}, ErrMalformed},
		{"direct record list", KindDirect, "93 01 02 91 95 a16b c0 01 02 03", Limits{}, ErrMalformed},
		{"direct record with an unknown flag", KindDirect, "93 01 02 97 a16b c0 01 02 03 04 04", Limits{}, ErrMalformed},
		{"direct records more than the bytes", KindDirect, "9f 01 02 95 a16b c0 01 02 03", Limits{}, ErrMalformed},
		// A tombstone or an evicted version holds no value (found by review).
		{"tombstone with a value", KindDelta, delta + "97 a16b c40176 01 02 03 00 01", Limits{}, ErrMalformed},
		{"evicted version with a value", KindRepair, "97 00 00 00 91 97 a16b c40176 01 02 03 00 02 c400 c3 c2", Limits{}, ErrMalformed},
		{"tombstone with an empty value", KindDelta, delta + "97 a16b c400 01 02 03 00 01", Limits{}, nil},
		{"direct tombstone with a value", KindDirect, "93 01 02 97 a16b c40176 01 02 03 04 01", Limits{}, ErrMalformed},
	}
	for _, tc := range cases {
		m, err := NewCodec(tc.lim).Decode(frameHex(t, tc.kind, tc.body))
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: got error %v, want nil", tc.name, err)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: got error %v, want one wrapping %v", tc.name, err, tc.want)
		case tc.want != nil && m != nil:
			t.Errorf("%s: got message %#v with the error, want nil", tc.name, m)
		}
	}
}

// TestLengthsPastTwoToThe31AreRefused: a 32-bit length header of 2^31 or
// more is refused where it is read: where int has 32 bits it read as
// negative, passed the checks against the bytes left, and moved the
// offset back (found by review, in the validation pass Decode ran then;
// the decoder compares lengths as uint64).
func TestLengthsPastTwoToThe31AreRefused(t *testing.T) {
	for _, body := range []string{
		"95 db80000000",                              // the origin, a str32
		"95 a0 01 01 00 dd80000000",                  // the records, an array32
		"95 a0 01 01 00 91 97 a1 6b c6ffffffff",      // a value, a bin32
		"95 a0 01 01 00 91 97 db80000000 0000000000", // a key, a str32
	} {
		frame := append([]byte{WireVersion, byte(KindDelta)}, hexBytes(t, body)...)
		m, err := NewCodec(Limits{}).Decode(frame)
		if m != nil || !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v, %v; want ErrMalformed or ErrTooLarge", body, m, err)
		}
	}
}

func TestDecodeRejectsHeaders(t *testing.T) {
	valid := mustEncode(t, &Reject{Session: Session{ID: 1}})
	cases := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"empty", nil, ErrMalformed},
		{"version only", []byte{WireVersion}, ErrMalformed},
		{"header only", valid[:2], ErrMalformed},
		{"version 0", append([]byte{0}, valid[1:]...), ErrVersion},
		{"version 1", append([]byte{1}, valid[1:]...), ErrVersion},
		{"version 3", append([]byte{3}, valid[1:]...), ErrVersion},
		{"kind 0", append([]byte{WireVersion, 0}, valid[2:]...), ErrUnknownKind},
		{"kind 7", append([]byte{WireVersion, 7}, valid[2:]...), ErrUnknownKind},
		{"kind 255", append([]byte{WireVersion, 255}, valid[2:]...), ErrUnknownKind},
		{"over the frame limit before parsing", append([]byte{0, 0}, make([]byte, 100)...), ErrTooLarge},
	}
	c := NewCodec(Limits{MaxFrame: 100})
	for _, tc := range cases {
		if m, err := c.Decode(tc.frame); !errors.Is(err, tc.want) || m != nil {
			t.Errorf("%s: got (%v, %v), want (nil, error wrapping %v)", tc.name, m, err, tc.want)
		}
	}
}

func TestDecodeRejectsEveryPrefix(t *testing.T) {
	c := NewCodec(Limits{})
	for _, m := range sampleMessages() {
		frame := mustEncode(t, m)
		for n := range len(frame) {
			if got, err := c.Decode(frame[:n]); err == nil || got != nil {
				t.Errorf("%s cut to %d of %d bytes: got (%v, %v), want (nil, error)", m.Kind(), n, len(frame), got, err)
			}
		}
	}
}

// foreign is a Message the codec does not know.
type foreign struct{}

func (foreign) Kind() Kind { return KindDelta }

func TestEncodeRejects(t *testing.T) {
	small := Limits{MaxFrame: 64, MaxKey: 4, MaxValue: 8}
	many := make([]crdt.Record, 10)
	cases := []struct {
		name string
		m    Message
		want error
	}{
		{"nil", nil, ErrUnknownKind},
		{"nil delta", (*Delta)(nil), ErrUnknownKind},
		{"nil digest", (*Digest)(nil), ErrUnknownKind},
		{"foreign", foreign{}, ErrUnknownKind},
		{"origin too long", &Delta{Origin: "12345"}, ErrTooLarge},
		{"key too long", &Delta{Records: []crdt.Record{{Key: "12345"}}}, ErrTooLarge},
		{"value too long", &Repair{Records: []crdt.Record{{Value: make([]byte, 9)}}}, ErrTooLarge},
		{"answer key too long", &Reject{Records: []crdt.Record{{Key: "12345", Tombstone: true}}}, ErrTooLarge},
		{"frame too long", &Delta{Records: many}, ErrTooLarge},
		{"wants over the frame", &Repair{Wants: []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}}, ErrTooLarge},
		{"wants repeated", &Repair{Wants: []uint64{1, 1}}, ErrMalformed},
		{"too many records", &Delta{Records: make([]crdt.Record, MaxRecords+1)}, ErrTooLarge},
		{"too many rejection answers", &Reject{Records: make([]crdt.Record, MaxRecords+1)}, ErrTooLarge},
		{"too many leaves", &Versions{Leaves: make([]uint32, MaxLeavesPerStep+1), Counts: make([]uint32, MaxLeavesPerStep+1)}, ErrTooLarge},
		{"digest level 7", &Digest{Level: 7}, ErrMalformed},
		{"digest hashes short", &Digest{Level: 1, Parents: []uint32{0}, Hashes: []uint64{1}}, ErrMalformed},
		{"versions counts short", &Versions{Leaves: []uint32{1}}, ErrMalformed},
		{"versions counts off", &Versions{Leaves: []uint32{1}, Counts: []uint32{1}}, ErrMalformed},
		{"a part of two leaves", &Versions{Leaves: []uint32{1, 2}, Counts: []uint32{0, 0}, Part: &KeyRange{Through: 9}}, ErrMalformed},
		{"a part of no leaf", &Versions{Part: &KeyRange{Through: 9}}, ErrMalformed},
		{"a part backwards", &Versions{Leaves: []uint32{1}, Counts: []uint32{0}, Part: &KeyRange{From: 9, Through: 8}}, ErrMalformed},
		{"a version outside its part", &Versions{Leaves: []uint32{1}, Counts: []uint32{1}, Versions: []KeyVersion{{KeyHash: 10}}, Part: &KeyRange{From: 2, Through: 9}}, ErrMalformed},
		{"a print in a Versions without prints", &Versions{Leaves: []uint32{1}, Counts: []uint32{1}, Versions: []KeyVersion{{KeyHash: 10, Print: 7}}}, ErrMalformed},
	}
	c := NewCodec(small)
	dst := []byte("prefix")
	for _, tc := range cases {
		got, err := c.Encode(dst, tc.m)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got error %v, want one wrapping %v", tc.name, err, tc.want)
		}
		if string(got) != "prefix" {
			t.Errorf("%s: got dst %q, want it unchanged", tc.name, got)
		}
	}
}

func TestCodecReason(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fmt.Errorf("decode: %w", ErrMalformed), "malformed"},
		{fmt.Errorf("decode: %w", ErrTooLarge), "too_large"},
		{fmt.Errorf("decode: %w", ErrVersion), "version"},
		{fmt.Errorf("decode: %w", ErrUnknownKind), "unknown_kind"},
		{errors.New("other"), "malformed"},
	}
	for _, tc := range cases {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v): got %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestCodecDefaultLimits(t *testing.T) {
	want := Limits{MaxFrame: 64 << 20, MaxKey: 64 << 10, MaxValue: 16 << 20}
	if got := NewCodec(Limits{MaxKey: -1}).Limits(); got != want {
		t.Fatalf("NewCodec(zero limits).Limits(): got %+v, want %+v", got, want)
	}
	if got := NewCodec(Limits{MaxKey: 7}).Limits().MaxKey; got != 7 {
		t.Fatalf("MaxKey: got %d, want 7", got)
	}
}

// TestDirectFrameIsShorter: a lone write sent straight from its writer is
// five bytes shorter as a Direct than as a Delta (no origin, seq or record
// list header; no expiry and flags, which are zero), and decodes to the
// same records; a record with an expiry or flags keeps them.
func TestDirectFrameIsShorter(t *testing.T) {
	id := crdt.NodeID(0xdeadbeefcafebabe)
	write := crdt.Record{Key: "k000000000000001", Value: make([]byte, 100), Time: crdt.Timestamp{Wall: 1_790_000_000_000_000_000, Node: id}}
	expiring, deleted := write, write
	expiring.Expires, deleted.Value, deleted.Tombstone = write.Time.Wall+int64(time.Minute), nil, true
	for _, tc := range []struct {
		name  string
		recs  []crdt.Record
		saved int
	}{
		{"a lone write", []crdt.Record{write}, 5},
		{"with an expiry", []crdt.Record{expiring}, 4},
		{"a delete", []crdt.Record{deleted}, 3},
		{"three writes", []crdt.Record{write, expiring, deleted}, 3 + 2 + 1 + 0},
	} {
		c := NewCodec(Limits{})
		delta, err := c.Encode(nil, &Delta{OriginID: id, Records: tc.recs})
		if err != nil {
			t.Fatal(err)
		}
		direct, err := c.Encode(nil, &Direct{OriginID: id, Records: tc.recs})
		if err != nil {
			t.Fatal(err)
		}
		if len(delta)-len(direct) != tc.saved {
			t.Errorf("%s: Delta %d bytes, Direct %d, want %d fewer", tc.name, len(delta), len(direct), tc.saved)
		}
		m, err := c.Decode(direct)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := m.(*Direct).Delta(); got.OriginID != id || !reflect.DeepEqual(got.Records, normalizeRecords(tc.recs)) {
			t.Errorf("%s: decoded %+v, want the records %+v", tc.name, got, tc.recs)
		}
	}
}

// TestReusedDeltaRecords: with ReuseDeltaRecords, a Delta's or a Direct's
// records are decoded into the codec's slice, which the next frame's take
// over (and a frame of another kind leaves alone): one allocation a frame
// fewer, keys and values still the message's own, and a field a record
// leaves out (a Direct's record without an expiry or flags) zero, not the
// last frame's. A delta of more records than a datagram holds gets a
// slice of its own, and the codec keeps none larger.
func TestReusedDeltaRecords(t *testing.T) {
	id := crdt.NodeID(0xdeadbeefcafebabe)
	recs := func(n int, tag string) []crdt.Record {
		var rs []crdt.Record
		for i := range n {
			rs = append(rs, crdt.Record{Key: fmt.Sprintf("%s%03d", tag, i), Value: []byte(tag), Time: crdt.Timestamp{Wall: 1_790_000_000_000_000_000 + int64(i), Node: id}})
		}
		return rs
	}
	enc := NewCodec(Limits{})
	frame := func(m Message) []byte {
		f, err := enc.Encode(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b := recs(5, "a"), recs(3, "b")
	direct, delta := frame(&Direct{OriginID: id, Records: a}), frame(&Delta{OriginID: id, Records: b})
	repair := frame(&Repair{Session: Session{ID: 1, Token: 2, Step: 3}, Records: recs(2, "r")})
	c := NewCodec(Limits{})
	c.ReuseDeltaRecords(true)
	decode := func(f []byte) Message {
		m, err := c.Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	first := decode(direct).(*Direct).Records
	if !reflect.DeepEqual(first, a) {
		t.Fatalf("decoded %+v, want %+v", first, a)
	}
	decode(repair)
	if !reflect.DeepEqual(first, a) {
		t.Fatal("a Repair's records went into the deltas' slice")
	}
	second := decode(delta).(*Delta).Records
	if !reflect.DeepEqual(second, b) || &second[0] != &first[0] {
		t.Fatalf("decoded %+v (same slice: %v), want %+v in the same slice", second, &second[0] == &first[0], b)
	}
	if !reflect.DeepEqual(first[:len(b)], b) || first[len(b)].Key != "" {
		t.Fatalf("the slice after the second delta holds %+v", first)
	}
	big := recs(maxReused+1, "c")
	if got := decode(frame(&Direct{OriginID: id, Records: big})).(*Direct).Records; !reflect.DeepEqual(got, big) || &got[0] == &first[0] {
		t.Fatal("a delta of more records than a datagram holds went into the reused slice")
	}
	if decode(direct); cap(c.recs) != maxReused {
		t.Fatalf("the codec keeps a slice of %d records, want %d", cap(c.recs), maxReused)
	}
	// An expiring delete, then records that carry neither (Direct's short
	// form leaves both out): none may keep the first's.
	marked := recs(2, "m")
	for i := range marked {
		marked[i].Expires, marked[i].Tombstone, marked[i].Value = 1_800_000_000_000_000_000, true, nil
	}
	decode(frame(&Direct{OriginID: id, Records: marked}))
	if got := decode(frame(&Direct{OriginID: id, Records: b})).(*Direct).Records; !reflect.DeepEqual(got, b) {
		t.Fatalf("after records with an expiry and a tombstone, decoded %+v, want %+v", got, b)
	}
	reused := testing.AllocsPerRun(100, func() { decode(direct) })
	c.ReuseDeltaRecords(false)
	fresh := testing.AllocsPerRun(100, func() { decode(direct) })
	if reused != fresh-1 {
		t.Fatalf("decoding a Direct of %d records: %.0f allocations reusing, %.0f not; want one fewer", len(a), reused, fresh)
	}
}

// TestReleasedRecordsHoldNoValue: once its caller is done with a delta
// (ReleaseRecords), the codec holds none of its values, and a frame that
// failed to decode leaves none of the records read before the error; the
// reused slice has no room past its records, so a caller's append cannot
// write into the codec's scratch.
func TestReleasedRecordsHoldNoValue(t *testing.T) {
	id := crdt.NodeID(7)
	big := make([]byte, 1<<20)
	c := NewCodec(Limits{})
	c.ReuseDeltaRecords(true)
	m, err := c.Decode(mustEncode(t, &Direct{OriginID: id, Records: []crdt.Record{{Key: "k", Value: big, Time: crdt.Timestamp{Wall: 1, Node: id}}}}))
	if err != nil {
		t.Fatal(err)
	}
	if rs := m.(*Direct).Records; cap(rs) != len(rs) {
		t.Errorf("a reused slice of %d records has room for %d", len(rs), cap(rs))
	}
	c.ReleaseRecords()
	for i, r := range c.recs {
		if r.Value != nil || r.Key != "" {
			t.Fatalf("after ReleaseRecords the codec holds record %d: %q, %d bytes", i, r.Key, len(r.Value))
		}
	}
	bad := mustEncode(t, &Direct{OriginID: id, Records: []crdt.Record{
		{Key: "a", Value: big, Time: crdt.Timestamp{Wall: 1, Node: id}},
		{Key: "b", Tombstone: true, Time: crdt.Timestamp{Wall: 1, Node: id}},
	}})
	bad[len(bad)-1] = 0x7f // the last record's flags out of range
	if _, err := c.Decode(bad); err == nil {
		t.Fatal("decoded a frame with a record's flags out of range")
	}
	for i, r := range c.recs {
		if r.Value != nil || r.Key != "" {
			t.Fatalf("after a refused frame the codec holds record %d: %q, %d bytes", i, r.Key, len(r.Value))
		}
	}
}

// TestVersionsAreBoundedByTheFrameNotByMaxRecords: a Versions' versions
// are not capped by MaxRecords (an honest chunk of leaves of a large
// replica lists more), only by its leaves and the frame's size, as
// MaxRecords' doc says; the README said every list of a frame was capped
// at 16,384, versions included.
func TestVersionsAreBoundedByTheFrameNotByMaxRecords(t *testing.T) {
	const n = 4 * MaxRecords
	vs := make([]KeyVersion, n)
	for i := range vs {
		vs[i].KeyHash = uint64(i)
	}
	m := &Versions{Session: Session{ID: 1, Token: 2, Step: 3}, Leaves: []uint32{0}, Counts: []uint32{n}, Versions: vs}
	got, err := NewCodec(Limits{}).Decode(mustEncode(t, m))
	if err != nil {
		t.Fatalf("a Versions of %d versions in one leaf: %v", n, err)
	}
	if len(got.(*Versions).Versions) != n {
		t.Fatalf("decoded %d versions, want %d", len(got.(*Versions).Versions), n)
	}
}

// TestAClaimPastTheFrameIsMalformedNotTooLarge: a key or value whose
// header claims more bytes than the frame holds is malformed, whatever it
// claims, as the validation pass that ran before decoding counted it;
// one the frame holds whole, over the limit, is too large. With the pass
// gone, a claim over the limit was counted too large.
func TestAClaimPastTheFrameIsMalformedNotTooLarge(t *testing.T) {
	c := NewCodec(Limits{MaxKey: 8, MaxValue: 8})
	delta := func(key string, value []byte) []byte {
		b := append([]byte{WireVersion, byte(KindDelta)}, hexBytes(t, "95 a0 01 01 00 91 97")...)
		b = append(b, 0xa0|byte(len(key)))
		b = append(append(b, key...), 0xc4, byte(len(value)))
		return append(append(b, value...), 0, 0, 0, 0, 0)
	}
	if _, err := c.Decode(delta("k", []byte("v"))); err != nil {
		t.Fatalf("a well-formed delta: %v", err)
	}
	for _, tc := range []struct {
		name, reason string
		frame        []byte
	}{
		{"a key of 9 bytes", "too_large", delta("123456789", nil)},
		{"a value of 9 bytes", "too_large", delta("k", []byte("123456789"))},
		{"a key claiming 100,000 bytes", "malformed", append([]byte{WireVersion, byte(KindDelta)}, hexBytes(t, "95 a0 01 01 00 91 97 db000186a0 0000000000")...)},
		{"a value claiming 100,000 bytes", "malformed", append([]byte{WireVersion, byte(KindDelta)}, hexBytes(t, "95 a0 01 01 00 91 97 a16b c6000186a0 0000000000")...)},
	} {
		if _, err := c.Decode(tc.frame); Reason(err) != tc.reason {
			t.Errorf("%s: %v (%q), want %q", tc.name, err, Reason(err), tc.reason)
		}
	}
}
