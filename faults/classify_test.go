//go:build linux

package faults

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// The checker judges every run of the suite; these pin its verdicts on
// histories built by hand, so that a checker that passes anything (or
// fails what last-writer-wins allows) is caught without a lab.

func set(side int, value string) op { return op{side: side, value: value, acked: true} }
func del(side int) op               { return op{side: side, del: true, acked: true} }
func unacked(o op) op               { o.acked = false; return o }

// ahead is o stamped d ahead of the time it was sent: by a member whose
// clock is d ahead (held in its version's Wall until stamp).
func ahead(o op, d time.Duration) op { o.ver.Wall = int64(d); return o }

// base is when the ops built by hand begin, second, how far apart they
// are sent.
var base = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

const second = int64(time.Second)

// stamp gives the ops of a key built by hand the times they were sent, a
// second apart in order, and the versions of one clock (an op sent later
// has a greater version) offset as ahead asked.
func stamp(ops []op) []op {
	out := make([]op, len(ops))
	for i, o := range ops {
		o.seq, o.key, o.member = i, "k", "n0"
		o.sent = base + int64(i)*second
		o.ver = crdt.Timestamp{Wall: o.sent + o.ver.Wall, Node: 1}
		if !o.acked {
			o.ver = crdt.Timestamp{}
		}
		out[i] = o
	}
	return out
}

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
		at   time.Duration // when it is judged, after base (0: a minute)
	}{
		{name: "the write", ops: []op{set(0, "a")}, got: has("a"), want: fateOK},
		{name: "the write gone", ops: []op{set(0, "a")}, got: absent, want: fateLost},
		{name: "a value nobody wrote", ops: []op{set(0, "a")}, got: has("zz"), want: fateUnknown},
		{name: "the last of two writes", ops: []op{set(0, "a"), set(0, "b")}, got: has("b"), want: fateOK},
		{name: "the first of two writes", ops: []op{set(0, "a"), set(0, "b")}, got: has("a"), want: fateStale},
		{name: "a delete", ops: []op{set(0, "a"), del(0)}, got: absent, want: fateOK},
		{name: "a deleted value back", ops: []op{set(0, "a"), del(0)}, got: has("a"), want: fateResurrected},
		{name: "a write after a delete", ops: []op{set(0, "a"), del(0), set(0, "b")}, got: has("b"), want: fateOK},
		{name: "a delete's value after a later write", ops: []op{set(0, "a"), del(0), set(0, "b")}, got: absent, want: fateLost},

		// An unacknowledged op may or may not have been applied.
		{name: "an unacknowledged write applied", ops: []op{set(0, "a"), unacked(set(0, "b"))}, got: has("b"), want: fateOK},
		{name: "an unacknowledged write not applied", ops: []op{set(0, "a"), unacked(set(0, "b"))}, got: has("a"), want: fateOK},
		{name: "an unacknowledged delete applied", ops: []op{set(0, "a"), unacked(del(0))}, got: absent, want: fateOK},
		{name: "an unacknowledged write overwritten", ops: []op{unacked(set(0, "a")), set(0, "b")}, got: has("a"), want: fateStale},
		{name: "nothing acknowledged, nothing applied", ops: []op{unacked(set(0, "a"))}, got: absent, want: fateOK},
		{name: "nothing acknowledged, applied", ops: []op{unacked(set(0, "a"))}, got: has("a"), want: fateOK},
		{name: "nothing acknowledged, a value nobody wrote", ops: []op{unacked(set(0, "a"))}, got: has("b"), want: fateUnknown},

		// During a partition the two sides' ops are concurrent, and the one
		// with the greater version wins; on one clock, the one sent later.
		// What was written before the partition is overwritten by either.
		{name: "the earlier side's write", ops: []op{set(0, "a"), set(1, "x"), set(2, "y")}, got: has("x"), want: fateStale},
		{name: "the later side's write", ops: []op{set(0, "a"), set(1, "x"), set(2, "y")}, got: has("y"), want: fateOK},
		{name: "the earlier side's write, its clock ahead", ops: []op{set(0, "a"), ahead(set(1, "x"), 20*time.Second), set(2, "y")}, got: has("x"), want: fateOK},
		{name: "the later side's write, the other's clock ahead", ops: []op{set(0, "a"), ahead(set(1, "x"), 20*time.Second), set(2, "y")}, got: has("y"), want: fateStale},
		{name: "the write before the partition", ops: []op{set(0, "a"), set(1, "x"), set(2, "y")}, got: has("a"), want: fateStale},
		{name: "neither side's write", ops: []op{set(0, "a"), set(1, "x"), set(2, "y")}, got: absent, want: fateLost},
		{name: "the later side's delete", ops: []op{set(0, "a"), set(1, "x"), del(2)}, got: absent, want: fateOK},
		{name: "the earlier side's write back over the later side's delete", ops: []op{set(0, "a"), set(1, "x"), del(2)}, got: has("x"), want: fateResurrected},
		{name: "the earlier side's delete", ops: []op{set(0, "a"), del(1), set(2, "y")}, got: absent, want: fateLost},
		{name: "the later side's write over a delete", ops: []op{set(0, "a"), del(1), set(2, "y")}, got: has("y"), want: fateOK},
		{name: "the pre-partition write under a delete and a write", ops: []op{set(0, "a"), del(1), set(2, "y")}, got: has("a"), want: fateStale},
		{name: "deleted on both sides, back", ops: []op{set(0, "a"), del(1), del(2)}, got: has("a"), want: fateResurrected},
		{name: "a side's earlier write", ops: []op{set(0, "a"), set(1, "x1"), set(1, "x2"), set(2, "y")}, got: has("x1"), want: fateStale},
		{name: "one side only", ops: []op{set(0, "a"), set(2, "y")}, got: has("a"), want: fateStale},
		{name: "one side only, its write", ops: []op{set(0, "a"), set(2, "y")}, got: has("y"), want: fateOK},
		{name: "a side whose write is not acknowledged", ops: []op{set(0, "a"), unacked(set(1, "x"))}, got: has("a"), want: fateOK},
		{name: "a side whose write is not acknowledged, applied", ops: []op{set(0, "a"), unacked(set(1, "x"))}, got: has("x"), want: fateOK},
		// An unacknowledged op's version is unknown: it may be the greater.
		{name: "a side's unacknowledged write against the other's", ops: []op{set(0, "a"), unacked(set(1, "x")), set(2, "y")}, got: has("x"), want: fateOK},
		{name: "a side's unacknowledged write, the other side's wins", ops: []op{set(0, "a"), unacked(set(1, "x")), set(2, "y")}, got: has("y"), want: fateOK},
		{name: "a side's unacknowledged write, the value before the partition", ops: []op{set(0, "a"), unacked(set(1, "x")), set(2, "y")}, got: has("a"), want: fateStale},

		// A write stamped 2 minutes ahead (beyond MaxClockDrift, 30 s),
		// sent at base+1 s: the others refuse it until base+91 s, take it
		// at their next exchange with its member, and from then on it
		// wins over the later write of the other side.
		{name: "refused: a write beyond MaxClockDrift", ops: []op{set(0, "a"), ahead(set(1, "x"), 2*time.Minute), set(2, "y")}, got: has("y"), want: fateOK},
		{name: "refused: a write beyond MaxClockDrift, held", ops: []op{set(0, "a"), ahead(set(1, "x"), 2*time.Minute), set(2, "y")}, got: has("x"), want: fateStale},
		{name: "refused: a write beyond MaxClockDrift, on its own", ops: []op{set(0, "a"), ahead(set(1, "x"), 2*time.Minute)}, got: has("a"), want: fateOK},
		{name: "being taken: a write beyond MaxClockDrift", ops: []op{set(0, "a"), ahead(set(1, "x"), 2*time.Minute), set(2, "y")}, got: has("x"), want: fateOK, at: 95 * time.Second},
		{name: "being taken: the later write", ops: []op{set(0, "a"), ahead(set(1, "x"), 2*time.Minute), set(2, "y")}, got: has("y"), want: fateOK, at: 95 * time.Second},
		{name: "taken: a write beyond MaxClockDrift", ops: []op{set(0, "a"), ahead(set(1, "x"), 2*time.Minute), set(2, "y")}, got: has("x"), want: fateOK, at: 2 * time.Minute},
		{name: "taken: the later write, overwritten", ops: []op{set(0, "a"), ahead(set(1, "x"), 2*time.Minute), set(2, "y")}, got: has("y"), want: fateStale, at: 2 * time.Minute},
		{name: "taken: a delete beyond MaxClockDrift", ops: []op{set(0, "a"), ahead(del(1), 2*time.Minute), set(2, "y")}, got: has("y"), want: fateResurrected, at: 2 * time.Minute},
	} {
		at := base + int64(time.Minute)
		if c.at != 0 {
			at = base + int64(c.at)
		}
		ops := stamp(c.ops)
		if got := classify(ops, c.got, at); got != c.want {
			t.Errorf("%s: %v with %v: %s, want %s", c.name, ops, c.got, got, c.want)
		}
	}
}

// TestLaterSideWinsOnOneClock: the members of a lab share one clock, so
// of two sides' acknowledged writes of a key the one sent later has the
// greater version and must win. A heal that kept the earlier side's
// values and lost every acknowledged write of the later side is not ok.
func TestLaterSideWinsOnOneClock(t *testing.T) {
	keys := make([]string, 30)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	h := &history{}
	now := base
	write := func(member string, side int, key, value string) {
		now += int64(time.Millisecond)
		h.add(member, side, key, value, false, now, crdt.Timestamp{Wall: now, Node: 1}, nil)
	}
	for _, k := range keys {
		write("n0", 0, k, "base-"+k)
	}
	for _, k := range keys { // side 1 writes first...
		write("n0", 1, k, k+"-side1")
	}
	for _, k := range keys { // ...then side 2: each of its writes is the last
		write("n2", 2, k, k+"-side2")
	}
	judge := func(name, won string) verdict {
		final := map[string]state{}
		for _, k := range keys {
			final[k] = has(k + won)
		}
		return verdict{name: name, agreed: true, final: final, fates: h.judge(final, nil, now+second), unacked: h.unacked()}
	}
	if v := judge("side 2 kept", "-side2"); !v.ok() {
		t.Errorf("the later side's writes kept: %s", v.line())
	}
	if v := judge("side 2 dropped", "-side1"); v.ok() || !strings.Contains(v.line(), "30 stale") {
		t.Errorf("a heal that lost all 30 acknowledged (and last) writes of side 2: %s", v.line())
	}
}

// TestVerdictFailsWhatIsNotJudged: a run whose members agreed fails on a
// single wrong key, on a split, on any op not acknowledged (the checker
// would let it win or not, judging nothing), and when no key was judged.
func TestVerdictFailsWhatIsNotJudged(t *testing.T) {
	agreed := func(h *history, final map[string]state, split map[string]bool) verdict {
		return verdict{name: "by hand", agreed: true, final: final, fates: h.judge(final, split, base+second), unacked: h.unacked()}
	}
	h := &history{}
	n := 0
	record := func(key, value string, del bool, err error) {
		n++
		sent := base + int64(n)*int64(time.Millisecond)
		ver := crdt.Timestamp{Wall: sent, Node: 1}
		if err != nil {
			ver = crdt.Timestamp{}
		}
		h.add("n0", 0, key, value, del, sent, ver, err)
	}
	record("k0", "a", false, nil)
	record("k1", "b", false, nil)
	record("k1", "", true, nil)
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
	if v := (verdict{name: "by hand", fates: h.judge(good, nil, base+second)}); v.ok() {
		t.Errorf("members that did not agree passed: %s", v.line())
	}
	if v := agreed(&history{}, nil, nil); v.ok() {
		t.Errorf("a run that judged no key passed: %s", v.line())
	}

	record("k2", "c", false, errors.New("the member did not answer"))
	v := agreed(h, map[string]state{"k0": has("a"), "k1": absent, "k2": absent}, nil)
	if v.fates["k2"] != fateOK {
		t.Errorf("an unacknowledged write that never landed: %s", v.fates["k2"])
	}
	if v.ok() || !strings.Contains(v.line(), "1 ops not acknowledged") {
		t.Errorf("a run with an op not acknowledged passed: %s", v.line())
	}
}

// TestLaterWriteWithLowerVersionOnOneClockFails: the members of a lab
// without a clock offset share the kernel's clock, and the schedule sends
// each op once the one before it is answered, so an acknowledged op's
// version is greater than that of every op acknowledged before it was
// sent. A member that stamped a later write below an earlier one (a clock
// that went back, an HLC that lost its state at a restart) makes
// last-writer-wins keep the earlier write: the later acknowledged write
// is lost, though the checker, taking the versions the members answered
// with as the order, found the outcome the one they allow.
func TestLaterWriteWithLowerVersionOnOneClockFails(t *testing.T) {
	h := &history{oneClock: true}
	now := base
	write := func(member string, side int, key, value string, ver int64) {
		now += int64(time.Millisecond)
		h.add(member, side, key, value, false, now, crdt.Timestamp{Wall: ver, Node: 1}, nil)
	}
	write("n0", 0, "k0", "base", base+1)
	write("n0", 1, "k0", "side1", base+int64(10*time.Millisecond))
	// Sent after side 1's write was answered, stamped 5 s behind it.
	write("n2", 2, "k0", "side2", base-int64(5*time.Second))
	final := map[string]state{"k0": has("side1")} // what LWW makes of those versions
	v := verdict{name: "a later write stamped behind", agreed: true, final: final,
		fates: h.judge(final, nil, now+second), unacked: h.unacked()}
	if v.ok() {
		t.Errorf("the later acknowledged write lost to an earlier one on one clock, and the run passed: %s", v.line())
	}

	// The same history with versions in the order sent is judged as before.
	h = &history{oneClock: true}
	now = base
	write("n0", 0, "k0", "base", base+1)
	write("n0", 1, "k0", "side1", base+int64(10*time.Millisecond))
	write("n2", 2, "k0", "side2", base+int64(20*time.Millisecond))
	final = map[string]state{"k0": has("side2")}
	if v := (verdict{name: "in order", agreed: true, final: final, fates: h.judge(final, nil, now+second)}); !v.ok() {
		t.Errorf("versions in the order sent: %s", v.line())
	}
}

// TestReadsDuringTheRunAreJudged: what the members served during a run
// is judged read by read. A value no op wrote fails the run, and so does
// a process of a member that serves a value older than one it served
// before (a member's reads go forward); a restarted process may serve
// older values (its snapshot), a value of an op not acknowledged has no
// version to compare, and a miss is not judged.
func TestReadsDuringTheRunAreJudged(t *testing.T) {
	h := &history{oneClock: true}
	now := base
	write := func(key, value string, err error) {
		now += int64(time.Millisecond)
		ver := crdt.Timestamp{Wall: now, Node: 1}
		if err != nil {
			ver = crdt.Timestamp{}
		}
		h.add("n0", 0, key, value, false, now, ver, err)
	}
	write("k0", "old", nil)
	write("k0", "new", nil)
	write("k0", "maybe", errors.New("the member did not answer"))
	read := func(member string, life int, got state) seen {
		return seen{member: member, life: life, key: "k0", got: got}
	}
	final := map[string]state{"k0": has("new")}
	judged := func(reads ...seen) verdict {
		return verdict{name: "by hand", agreed: true, final: final, fates: h.judge(final, nil, now+second), reads: len(reads), readFaults: h.judgeReads(reads)}
	}
	for name, reads := range map[string][]seen{
		"forward":                      {read("n1", 1, has("old")), read("n1", 1, absent), read("n1", 1, has("new")), read("n2", 1, has("old"))},
		"back across a restart":        {read("n1", 1, has("new")), read("n1", 2, has("old"))},
		"back to a miss":               {read("n1", 1, has("new")), read("n1", 1, absent)},
		"an op without a version":      {read("n1", 1, has("new")), read("n1", 1, has("maybe")), read("n1", 1, has("new"))},
		"one member ahead of another":  {read("n1", 1, has("new")), read("n2", 1, has("old"))},
		"no reads (the final is read)": nil,
	} {
		if v := judged(reads...); !v.ok() {
			t.Errorf("%s: %s: %q", name, v.line(), v.readFaults)
		}
	}
	for name, reads := range map[string][]seen{
		"back":           {read("n1", 1, has("old")), read("n1", 1, has("new")), read("n1", 1, has("old"))},
		"back in a life": {read("n1", 1, has("new")), read("n1", 2, has("new")), read("n1", 2, has("old"))},
		"made up":        {read("n1", 1, has("nobody's"))},
		"another key's":  {{member: "n1", life: 1, key: "k1", got: has("new")}},
	} {
		v := judged(reads...)
		if v.ok() || len(v.readFaults) != 1 || !strings.Contains(v.line(), fmt.Sprintf("1 of %d reads during the run not allowed", len(reads))) {
			t.Errorf("%s passed: %s: %q", name, v.line(), v.readFaults)
		}
	}
}
