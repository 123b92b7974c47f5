package faults

import (
	"errors"
	"strings"
	"testing"
)

// The checker judges every run of the suite; these pin its verdicts on
// histories built by hand, so that a checker that passes anything (or
// fails what last-writer-wins allows) is caught without a lab.

func set(side int, value string) op { return op{side: side, value: value, acked: true} }
func del(side int) op               { return op{side: side, del: true, acked: true} }
func unacked(o op) op               { o.acked = false; return o }

var (
	absent = state{}
	has    = func(v string) state { return state{value: v, present: true} }
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		name string
		ops  []op
		got  state
		want fate
	}{
		{"the write", []op{set(0, "a")}, has("a"), fateOK},
		{"the write gone", []op{set(0, "a")}, absent, fateLost},
		{"a value nobody wrote", []op{set(0, "a")}, has("zz"), fateUnknown},
		{"the last of two writes", []op{set(0, "a"), set(0, "b")}, has("b"), fateOK},
		{"the first of two writes", []op{set(0, "a"), set(0, "b")}, has("a"), fateStale},
		{"a delete", []op{set(0, "a"), del(0)}, absent, fateOK},
		{"a deleted value back", []op{set(0, "a"), del(0)}, has("a"), fateResurrected},
		{"a write after a delete", []op{set(0, "a"), del(0), set(0, "b")}, has("b"), fateOK},
		{"a delete's value after a later write", []op{set(0, "a"), del(0), set(0, "b")}, absent, fateLost},

		// An unacknowledged op may or may not have been applied.
		{"an unacknowledged write applied", []op{set(0, "a"), unacked(set(0, "b"))}, has("b"), fateOK},
		{"an unacknowledged write not applied", []op{set(0, "a"), unacked(set(0, "b"))}, has("a"), fateOK},
		{"an unacknowledged delete applied", []op{set(0, "a"), unacked(del(0))}, absent, fateOK},
		{"an unacknowledged write overwritten", []op{unacked(set(0, "a")), set(0, "b")}, has("a"), fateStale},
		{"nothing acknowledged, nothing applied", []op{unacked(set(0, "a"))}, absent, fateOK},
		{"nothing acknowledged, applied", []op{unacked(set(0, "a"))}, has("a"), fateOK},
		{"nothing acknowledged, a value nobody wrote", []op{unacked(set(0, "a"))}, has("b"), fateUnknown},

		// During a partition each side's last op may win; what was written
		// before it is overwritten by either.
		{"side 1 wins", []op{set(0, "a"), set(1, "x"), set(2, "y")}, has("x"), fateOK},
		{"side 2 wins", []op{set(0, "a"), set(1, "x"), set(2, "y")}, has("y"), fateOK},
		{"the write before the partition", []op{set(0, "a"), set(1, "x"), set(2, "y")}, has("a"), fateStale},
		{"neither side's write", []op{set(0, "a"), set(1, "x"), set(2, "y")}, absent, fateLost},
		{"one side's delete wins", []op{set(0, "a"), del(1), set(2, "y")}, absent, fateOK},
		{"one side's write over its delete", []op{set(0, "a"), del(1), set(2, "y")}, has("y"), fateOK},
		{"the pre-partition write under a delete and a write", []op{set(0, "a"), del(1), set(2, "y")}, has("a"), fateStale},
		{"deleted on both sides, back", []op{set(0, "a"), del(1), del(2)}, has("a"), fateResurrected},
		{"a side's earlier write", []op{set(0, "a"), set(1, "x1"), set(1, "x2"), set(2, "y")}, has("x1"), fateStale},
		{"one side only", []op{set(0, "a"), set(2, "y")}, has("a"), fateStale},
		{"one side only, its write", []op{set(0, "a"), set(2, "y")}, has("y"), fateOK},
		{"a side whose write is not acknowledged", []op{set(0, "a"), unacked(set(1, "x"))}, has("a"), fateOK},
		{"a side whose write is not acknowledged, applied", []op{set(0, "a"), unacked(set(1, "x"))}, has("x"), fateOK},
		{"a side's unacknowledged write against the other's", []op{set(0, "a"), unacked(set(1, "x")), set(2, "y")}, has("x"), fateOK},
		{"a side's unacknowledged write, the other side's wins", []op{set(0, "a"), unacked(set(1, "x")), set(2, "y")}, has("y"), fateOK},
		{"a side's unacknowledged write, the value before the partition", []op{set(0, "a"), unacked(set(1, "x")), set(2, "y")}, has("a"), fateStale},
	} {
		ops := make([]op, len(c.ops))
		for i, o := range c.ops {
			o.seq, o.key = i, "k"
			ops[i] = o
		}
		if got := classify(ops, c.got); got != c.want {
			t.Errorf("%s: %v with %v: %s, want %s", c.name, ops, c.got, got, c.want)
		}
	}
}

// TestVerdictFailsWhatIsNotJudged: a run whose members agreed fails on a
// single wrong key, on a split, on any op not acknowledged (the checker
// would let it win or not, judging nothing), and when no key was judged.
func TestVerdictFailsWhatIsNotJudged(t *testing.T) {
	m := &member{name: "n0"}
	agreed := func(h *history, final map[string]state, split map[string]bool) verdict {
		return verdict{name: "by hand", agreed: true, final: final, fates: h.judge(final, split), unacked: h.unacked()}
	}
	h := &history{}
	h.record(m, 0, "k0", "a", false, nil)
	h.record(m, 0, "k1", "b", false, nil)
	h.record(m, 0, "k1", "", true, nil)
	good := map[string]state{"k0": has("a"), "k1": absent}
	if v := agreed(h, good, nil); !v.ok() {
		t.Fatalf("the outcome the history allows: %s", v.line())
	}
	for name, final := range map[string]map[string]state{
		"lost":        {"k0": absent, "k1": absent},
		"resurrected": {"k0": has("a"), "k1": has("b")},
	} {
		if v := agreed(h, final, nil); v.ok() || !strings.Contains(v.line(), "1 "+name) {
			t.Errorf("one key %s passed: %s", name, v.line())
		}
	}
	if v := agreed(h, good, map[string]bool{"k1": true}); v.ok() || !strings.Contains(v.line(), "1 split") {
		t.Errorf("a split passed: %s", v.line())
	}
	if v := (verdict{name: "by hand", fates: h.judge(good, nil)}); v.ok() {
		t.Errorf("members that did not agree passed: %s", v.line())
	}
	if v := agreed(&history{}, nil, nil); v.ok() {
		t.Errorf("a run that judged no key passed: %s", v.line())
	}

	h.record(m, 0, "k2", "c", false, errors.New("the member did not answer"))
	v := agreed(h, map[string]state{"k0": has("a"), "k1": absent, "k2": absent}, nil)
	if v.fates["k2"] != fateOK {
		t.Errorf("an unacknowledged write that never landed: %s", v.fates["k2"])
	}
	if v.ok() || !strings.Contains(v.line(), "1 ops not acknowledged") {
		t.Errorf("a run with an op not acknowledged passed: %s", v.line())
	}
}
