package clusterfill

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// marksMember holds marks and no record.
type marksMember struct {
	marks    []store.Mark
	complete bool
}

func (m marksMember) Lookup(string) (crdt.Record, bool)  { return crdt.Record{}, false }
func (m marksMember) Receive(crdt.Record) ([]byte, bool) { return nil, false }
func (m marksMember) Marks() ([]store.Mark, bool)        { return m.marks, m.complete }

// bareMember holds no record and cannot say its marks.
type bareMember struct{}

func (bareMember) Lookup(string) (crdt.Record, bool)  { return crdt.Record{}, false }
func (bareMember) Receive(crdt.Record) ([]byte, bool) { return nil, false }

// TestMarksAnswerRoundTrips: a member's marks, answered, are read back as
// they were (the node every node's, as a collection raises them); a
// member that cannot say them answers NotHeld, which is no malformed
// answer; a marks request with a key is a bad request.
func TestMarksAnswerRoundTrips(t *testing.T) {
	top := crdt.Timestamp{Wall: math.MaxInt64, Logical: math.MaxUint32, Node: math.MaxUint64}
	marks := []store.Mark{
		{Leaf: 0, Time: crdt.Timestamp{Wall: math.MinInt64 + 1, Node: math.MaxUint64}},
		{Leaf: 7, Time: crdt.Timestamp{Wall: -5, Logical: 9, Node: math.MaxUint64}},
		{Leaf: 65535, Time: top},
	}
	for _, complete := range []bool{false, true} {
		b := Serve(marksMember{marks, complete}, Request(MarksRequest, ""), 10, nil, nil)
		got, said, ok := Marks(b, 65536)
		if !ok || !slices.Equal(got, marks) || said != complete {
			t.Fatalf("Marks = %+v, complete %v, %v; want %+v, complete %v", got, said, ok, marks, complete)
		}
		if MarksMalformed(b, 65536) {
			t.Fatal("a marks answer taken for malformed")
		}
	}
	if got, _, ok := Marks(Serve(marksMember{}, Request(MarksRequest, ""), 10, nil, nil), 65536); !ok || len(got) != 0 {
		t.Fatalf("no marks: %+v, %v; want none, answered", got, ok)
	}
	nh := Serve(bareMember{}, Request(MarksRequest, ""), 10, nil, nil)
	if !bytes.Equal(nh, NotHeld()) {
		t.Fatalf("a member without marks answered %v, want NotHeld", nh)
	}
	if _, _, ok := Marks(nh, 65536); ok || MarksMalformed(nh, 65536) {
		t.Fatal("NotHeld taken for marks, or for a malformed answer")
	}
	if !BadRequest(Request(MarksRequest, "k"), 10) || BadRequest(Request(MarksRequest, ""), 10) {
		t.Fatal("a marks request with a key is bad, one without is not")
	}
	if a := Serve(marksMember{marks, true}, Request(MarksRequest, "k"), 10, nil, nil); !bytes.Equal(a, NotHeld()) {
		t.Fatalf("a marks request with a key answered %v, want NotHeld", a)
	}
}

// TestMalformedMarksAreRefusedWhole: a marks answer with a leaf past the
// digest, leaves not ascending, a counter past 32 bits, or cut anywhere is
// refused whole (nothing taken) and counted malformed; no input panics.
func TestMalformedMarksAreRefusedWhole(t *testing.T) {
	entry := func(dst []byte, leaf uint64, wall int64, logical uint64) []byte {
		dst = binary.AppendUvarint(dst, leaf)
		dst = binary.AppendVarint(dst, wall)
		return binary.AppendUvarint(dst, logical)
	}
	head := []byte{answerMarks, 1}
	good := entry(entry(head, 1, 10, 0), 2, 10, 0)
	if _, _, ok := Marks(good, 4); !ok {
		t.Fatal("the good answer was refused")
	}
	for name, b := range map[string][]byte{
		"leaf past the digest":   entry(head, 4, 10, 0),
		"leaves descending":      entry(entry(head, 2, 10, 0), 1, 10, 0),
		"a leaf twice":           entry(entry(head, 2, 10, 0), 2, 11, 0),
		"counter past 32 bits":   entry(head, 1, 10, math.MaxUint32+1),
		"leaf past 32 bits":      entry(head, 1<<32, 10, 0),
		"completeness byte of 2": entry([]byte{answerMarks, 2}, 1, 10, 0),
		"no completeness byte":   {answerMarks},
		"another answer":         {answerValue},
		"empty":                  {},
	} {
		if ms, _, ok := Marks(b, 4); ok || ms != nil || !MarksMalformed(b, 4) {
			t.Errorf("%s: taken (%+v, %v), or not counted malformed", name, ms, ok)
		}
	}
	// Cut anywhere but between entries: refused. (The header alone is an
	// answer of no marks, the first entry alone one of one.)
	if _, _, ok := Marks(good[:1], 4); ok {
		t.Error("an answer without its completeness byte was taken")
	}
	first := len(entry(head, 1, 10, 0))
	for cut := 3; cut < len(good); cut++ {
		ms, _, ok := Marks(good[:cut], 4)
		switch {
		case cut == first && (!ok || len(ms) != 1):
			t.Errorf("cut after the first entry: %+v, %v; want it alone", ms, ok)
		case cut != first && ok:
			t.Errorf("cut at %d of %d: taken as %+v", cut, len(good), ms)
		}
	}
}

// FuzzMarks: no answer panics Marks, and what it takes is ascending,
// within the digest, and encodes back to the answer.
func FuzzMarks(f *testing.F) {
	f.Add(AppendMarks([]store.Mark{{Leaf: 1, Time: crdt.Timestamp{Wall: 5}}}, true), uint32(16))
	f.Add([]byte{answerMarks, 0, 0xff, 0xff}, uint32(65536))
	f.Fuzz(func(t *testing.T, b []byte, leaves uint32) {
		ms, complete, ok := Marks(b, leaves)
		if !ok {
			return
		}
		for i, m := range ms {
			if m.Leaf >= leaves || i > 0 && m.Leaf <= ms[i-1].Leaf {
				t.Fatalf("took %+v", ms)
			}
		}
		if back := AppendMarks(ms, complete); len(back) > len(b) {
			t.Fatalf("re-encoded %d bytes from %d", len(back), len(b))
		}
	})
}

// TestAnErrorAnswerToAMarksRequestIsOfAnEarlierRelease: members of the
// releases before NotHeld answered a request of a kind they did not know
// (a MarksRequest) with an Error, "bad request", as their Serve did. That
// is an answer of a known form, saying the peer cannot give its marks,
// as NotHeld says for the release before: it was taken for a malformed
// answer, so the asker counted it in Stats.FillAnswersBad and, never
// counting it among the answers after which it stops (marks.go), asked
// such peers again at every collection, for ever.
func TestAnErrorAnswerToAMarksRequestIsOfAnEarlierRelease(t *testing.T) {
	earlier := append([]byte{answerError}, "bad request"...) // their Serve's answer to a kind it did not know
	if _, _, ok := Marks(earlier, 65536); ok {
		t.Fatal("an Error answer taken for marks")
	}
	if MarksMalformed(earlier, 65536) {
		t.Fatal("an earlier release's Error answer to a marks request taken for a malformed answer")
	}
	for _, bad := range [][]byte{nil, {answerValue}, {answerMarks, 2}, {answerNotHeld, 0}} {
		if !MarksMalformed(bad, 65536) {
			t.Fatalf("%v not taken for a malformed answer", bad)
		}
	}
}

// TestAnErrorAnswerToAFetchIsNoBadAnswer: a peer that could not read a
// fetch (a key longer than its MaxKeySize, or a request of an earlier
// release's) answers an Error, a known form: not a bad answer.
func TestAnErrorAnswerToAFetchIsNoBadAnswer(t *testing.T) {
	if FetchMalformed(append([]byte{answerError}, "bad request"...), "k") {
		t.Fatal("an Error answer to a fetch taken for a malformed answer")
	}
	for _, bad := range [][]byte{nil, {answerMarks, 2}, {answerNotHeld, 0}} {
		if !FetchMalformed(bad, "k") {
			t.Fatalf("%v not taken for a malformed answer to a fetch", bad)
		}
	}
}
