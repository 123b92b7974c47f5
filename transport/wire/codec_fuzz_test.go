package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// sampleMessages returns fixed messages of every kind, with edge values.
func sampleMessages() []Message {
	ts := crdt.Timestamp{Wall: 1_700_000_000_000_000_000, Logical: 3, Node: 0xfeed}
	edge := crdt.Timestamp{Wall: math.MinInt64, Logical: math.MaxUint32, Node: math.MaxUint64}
	recs := []crdt.Record{
		{Key: "k1", Value: []byte("hello"), Time: ts, Expires: 1_700_000_001_000_000_000},
		{Key: "", Time: edge, Tombstone: true},
		{Key: "evicted", Time: ts, Evicted: true, Expires: -1},
	}
	return []Message{
		&Delta{Origin: "node-a", OriginID: 0xdeadbeefcafe, Seq: 1, Records: recs},
		&Delta{Origin: "", OriginID: math.MaxUint64, Seq: math.MaxUint64},
		&Digest{Session: Session{ID: 7}, Level: 0, Hashes: []uint64{42}},
		&Digest{Session: Session{ID: 7, Token: 5, Step: 3}, Level: 2, Parents: []uint32{1, 9}, Hashes: make([]uint64, 2*crdt.Fanout)},
		&Digest{Session: Session{ID: math.MaxUint64, Token: math.MaxUint64, Step: math.MaxUint32}, Level: 6},
		&Versions{Session: Session{ID: 1, Token: 99, Step: 2}, Leaves: []uint32{3, 4}, Counts: []uint32{1, 0},
			Versions: []KeyVersion{{KeyHash: math.MaxUint64, Time: edge, Tombstone: true}}},
		&Versions{Session: Session{ID: 1, Token: 99, Step: 3}, Leaves: []uint32{7}, Counts: []uint32{2},
			Versions: []KeyVersion{{KeyHash: 5, Time: ts}, {KeyHash: 6, Time: edge}}, Part: &KeyRange{From: 5, Through: math.MaxUint64}},
		&Versions{Session: Session{ID: 1, Token: 99, Step: 4}, Leaves: []uint32{7}, Counts: []uint32{2},
			Versions: []KeyVersion{{KeyHash: 5, Time: ts, Print: 1}, {KeyHash: 6, Time: edge, Print: math.MaxUint32}}, Prints: true},
		&Versions{Session: Session{ID: 1, Token: 99, Step: 5}, Leaves: []uint32{7}, Counts: []uint32{1},
			Versions: []KeyVersion{{KeyHash: 5, Time: ts}}, Part: &KeyRange{From: 5, Through: 6}, Prints: true},
		&Repair{Session: Session{ID: 2, Token: 1, Step: 4}, Records: recs, Wants: []uint64{1, 2, 3}, Final: true},
		&Repair{Session: Session{ID: 2}, Truncated: true},
		&Reject{Session: Session{ID: 3}, Records: recs},
		&Reject{},
		&Direct{OriginID: 0xfeed, Records: append([]crdt.Record{{Key: "short", Value: []byte("v"), Time: ts}}, recs...)},
		&Direct{},
	}
}

// fataler is what testing.TB and *rapid.T have in common for helpers.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// mustEncode encodes m with default limits or fails the test.
func mustEncode(t fataler, m Message) []byte {
	t.Helper()
	frame, err := NewCodec(Limits{}).Encode(nil, m)
	if err != nil {
		t.Fatalf("Encode(%#v): got error %v, want nil", m, err)
	}
	return frame
}

// hexBytes decodes a hex string that may contain spaces.
func hexBytes(t fataler, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// bombPrefixes returns, per kind, hex bodies that stop right where a list,
// string or blob (or, at "", the message itself) begins.
func bombPrefixes() map[Kind][]string {
	return map[Kind][]string{
		KindDelta:    {"", "94", "94a00000", "94a0000091", "94a000009197", "94a000009197a0"},
		KindDigest:   {"", "95", "95000001", "95000001c400"},
		KindVersions: {"", "950000", "950000c400", "950000c400c400"},
		KindRepair: {"", "970000", "97000091", "9700009197", "9700009197a0", "97000090",
			"97000090c400", "97000090c40091", "97000090c4009195"},
		KindReject: {"", "9200", "920091", "92009195"},
		KindDirect: {"", "930000", "93000095", "93000095a0"},
	}
}

// lengthBombs returns frames of kind k (every kind when k is 0) holding an
// array32, bin32 or str32 header that claims 2^32-1 elements or bytes.
func lengthBombs(t fataler, k Kind) [][]byte {
	var frames [][]byte
	prefixes := bombPrefixes()
	for kind := KindDelta; kind <= KindDirect; kind++ {
		if k != 0 && k != kind {
			continue
		}
		for _, p := range prefixes[kind] {
			for _, bomb := range []string{"ddffffffff", "c6ffffffff", "dbffffffff"} {
				frames = append(frames, append([]byte{WireVersion, byte(kind)}, hexBytes(t, p+bomb)...))
			}
		}
	}
	return frames
}

// equalMessages reports whether a and b are deeply equal. Decoded messages
// are normalized (empty slices and values are nil), so two decodings of the
// same content compare equal.
func equalMessages(a, b Message) bool { return reflect.DeepEqual(a, b) }

// fuzzLimits are small enough for the fuzzer to reach the limit checks.
func fuzzLimits() Limits { return Limits{MaxFrame: 1 << 16, MaxKey: 40, MaxValue: 300} }

// checkFixpoint asserts that Decode fails cleanly or that decode∘encode is a
// fixpoint: re-encoding the decoded message and decoding again yields an
// equal message and the same bytes. A frame Decode takes has a body of one
// well-formed msgpack value (validate), as when Decode validated every
// frame before decoding it.
func checkFixpoint(t *testing.T, frame []byte) {
	c := NewCodec(fuzzLimits())
	m, err := c.Decode(frame)
	if err != nil {
		if m != nil || Reason(err) == "" {
			t.Fatalf("Decode: got (%v, %v), want nil message and a labelled error", m, err)
		}
		return
	}
	if err := validate(frame[2:]); err != nil {
		t.Fatalf("Decode took %x, which is no well-formed msgpack value: %v", frame, err)
	}
	enc, err := c.Encode(nil, m)
	if err != nil {
		t.Fatalf("Encode of decoded %#v: got error %v, want nil", m, err)
	}
	m2, err := c.Decode(enc)
	if err != nil {
		t.Fatalf("Decode of re-encoded %x: got error %v, want nil", enc, err)
	}
	if !equalMessages(m, m2) {
		t.Fatalf("decode∘encode: got %#v, want %#v", m2, m)
	}
	if enc2, _ := c.Encode(nil, m2); !bytes.Equal(enc, enc2) {
		t.Fatalf("second encoding: got %x, want %x", enc2, enc)
	}
}

// fuzzKind seeds a fuzz target for the bodies of kind k and runs it.
func fuzzKind(f *testing.F, k Kind) {
	for _, m := range sampleMessages() {
		if m.Kind() == k {
			f.Add(mustEncode(f, m)[2:])
		}
	}
	for _, frame := range lengthBombs(f, k) {
		f.Add(frame[2:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFixpoint(t, append([]byte{WireVersion, byte(k)}, body...))
	})
}

// The per-kind targets fuzz the body of one kind each, header fixed.

func FuzzDecodeDelta(f *testing.F)    { fuzzKind(f, KindDelta) }
func FuzzDecodeDigest(f *testing.F)   { fuzzKind(f, KindDigest) }
func FuzzDecodeVersions(f *testing.F) { fuzzKind(f, KindVersions) }
func FuzzDecodeRepair(f *testing.F)   { fuzzKind(f, KindRepair) }
func FuzzDecodeReject(f *testing.F)   { fuzzKind(f, KindReject) }
func FuzzDecodeDirect(f *testing.F)   { fuzzKind(f, KindDirect) }

// FuzzDecode feeds whole frames, header included.
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(mustEncode(f, m))
	}
	for _, frame := range lengthBombs(f, 0) {
		f.Add(frame)
	}
	f.Add([]byte{})
	f.Add([]byte{WireVersion})
	f.Add([]byte{2, byte(KindDelta), 0x90})
	f.Fuzz(checkFixpoint)
}

// allocated returns the fewest bytes f allocated in three runs.
func allocated(f func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

func TestDecodeLengthBombsAllocateLittle(t *testing.T) {
	c := NewCodec(Limits{})
	for _, frame := range lengthBombs(t, 0) {
		var err error
		n := allocated(func() { _, err = c.Decode(frame) })
		t.Logf("%x: %d bytes: %v", frame, n, err)
		if err == nil {
			t.Errorf("Decode(%x): got nil error, want one", frame)
		}
		if n >= 4<<10 {
			t.Errorf("Decode(%x): allocated %d bytes, want < 4 KiB", frame, n)
		}
	}
}

func TestDecodeAllocationBounded(t *testing.T) {
	d := &Delta{Origin: "origin", OriginID: 1, Seq: 1, Records: make([]crdt.Record, 10_000)}
	for i := range d.Records {
		d.Records[i] = crdt.Record{Key: fmt.Sprintf("key-%05d", i), Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(i)}}
	}
	// Well-formed lists of as many elements as the bytes left can hold at
	// the least size of a record, each a string of that size where a
	// record belongs: the decoder preallocates for all of them, then
	// fails at the first. The worst preallocation.
	strings := func(n, size int) []byte {
		b := make([]byte, 0, n*size)
		for range n {
			b = append(append(b, byte(0xa0+size-1)), make([]byte, size-1)...)
		}
		return b
	}
	frame := func(k Kind, head string, body []byte) []byte {
		return append(append([]byte{WireVersion, byte(k)}, hexBytes(t, head)...), body...)
	}
	worstRecords := frame(KindDelta, "95 a0 00 00 00 dd 00001388", strings(5000, minRecordSize))
	worstRejects := frame(KindReject, "94 00 00 00 dd 00001388", strings(5000, minRecordSize))
	worstDirect := frame(KindDirect, "dd 0000138a 00 00", strings(5000, minShortRecordSize))
	cases := []struct {
		name  string
		frame []byte
		valid bool
	}{
		{"delta of 10000 records", mustEncode(t, d), true},
		{"records of the wrong type", worstRecords, false},
		{"answers of the wrong type", worstRejects, false},
		{"direct records of the wrong type", worstDirect, false},
	}
	c := NewCodec(Limits{})
	for _, tc := range cases {
		var err error
		n := allocated(func() { _, err = c.Decode(tc.frame) })
		if (err == nil) != tc.valid {
			t.Errorf("%s: got error %v, want valid=%v", tc.name, err, tc.valid)
		}
		t.Logf("%s: %d bytes allocated for a %d-byte frame (%.1fx)", tc.name, n, len(tc.frame), float64(n)/float64(len(tc.frame)))
		if limit := uint64(16*len(tc.frame) + 4<<10); n > limit {
			t.Errorf("%s: allocated %d bytes for a %d-byte frame, want <= %d", tc.name, n, len(tc.frame), limit)
		}
	}
}

func TestValidate(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("91", n) + "00" }
	cases := []struct {
		name string
		body string
		ok   bool
	}{
		{"fixint", "05", true},
		{"eight nested arrays", deep(8), true},
		{"nine nested arrays", deep(9), false},
		{"empty", "", false},
		{"trailing byte", "0500", false},
		{"two values", "90 90", false},
		{"array16 header cut", "dc00", false},
		{"str8 length missing", "d9", false},
		{"str longer than the rest", "a3 6162", false},
		{"bin32 longer than the rest", "c6 00000004 616263", false},
		{"array longer than the rest", "93 0000", false},
		{"uint64 cut", "cf 00000000", false},
		{"fixmap", "80", false},
		{"map16", "de 0000", false},
		{"map32", "df 00000000", false},
		{"fixext1", "d4 01 00", false},
		{"ext8", "c7 01 05 00", false},
		{"ext32", "c9 00000001 05 00", false},
		{"reserved c1", "c1", false},
		{"float64", "cb 0000000000000000", true},
		{"nested bomb", "92 00 dd ffffffff", false},
	}
	for _, tc := range cases {
		err := validate(hexBytes(t, tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s: got error %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got error %v, want one wrapping ErrMalformed", tc.name, err)
		}
	}
}

// FuzzReuseMatchesFresh: a codec that reuses its deltas' records decodes
// any frame b, after any frame a, exactly as a fresh codec decodes b.
func FuzzReuseMatchesFresh(f *testing.F) {
	for _, m := range sampleMessages() {
		for _, n := range sampleMessages() {
			f.Add(mustEncode(f, m), mustEncode(f, n))
		}
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		c := NewCodec(fuzzLimits())
		c.ReuseDeltaRecords(true)
		_, _ = c.Decode(a) // a is anything: only what it leaves behind matters
		got, gerr := c.Decode(b)
		want, werr := NewCodec(fuzzLimits()).Decode(b)
		if (gerr == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("after %x, %x decoded to %#v, %v; a fresh codec: %#v, %v", a, b, got, gerr, want, werr)
		}
	})
}

// TestListsOverTheCapAreRefusedBeforeTheyAreMade: a frame claiming more
// records (or wants) than MaxRecords is refused before they are made. The
// cap was checked after the whole list was decoded: a 20 MiB direct frame
// of 3.5M empty records made 266 MiB of them, under the protocol's lock,
// before it was refused (found by review).
func TestListsOverTheCapAreRefusedBeforeTheyAreMade(t *testing.T) {
	const n = 4 * MaxRecords
	record := hexBytes(t, "95 a0 c0 00 00 00") // a direct record: key, no value, wall, logical, node
	body := make([]byte, 0, n*len(record))
	for range n {
		body = append(body, record...)
	}
	direct := append(append([]byte{WireVersion, byte(KindDirect)}, hexBytes(t, fmt.Sprintf("dd %08x 00 00", n+2))...), body...)
	wants := append([]byte{WireVersion, byte(KindRepair)}, hexBytes(t, fmt.Sprintf("97 00 00 00 90 c6 %08x", 8*n))...)
	for i := range n { // ascending: a list refused only for its length
		wants = binary.LittleEndian.AppendUint64(wants, uint64(i))
	}
	wants = append(wants, 0xc3, 0xc2)
	c := NewCodec(Limits{})
	for name, frame := range map[string][]byte{"direct records": direct, "wants": wants} {
		var err error
		got := allocated(func() { _, err = c.Decode(frame) })
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s: %v, want ErrTooLarge", name, err)
		}
		if got > uint64(len(frame)) {
			t.Fatalf("%s: %d bytes allocated for a frame of %d, refused", name, got, len(frame))
		}
	}
}
