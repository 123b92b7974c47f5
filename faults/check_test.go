//go:build linux

package faults

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bcache-go/bcache"
	"github.com/bcache-go/bcache/crdt"
)

// An op is a write or a delete sent to a member, in the order the
// schedule sent them, with the version the member gave it (its
// Bcache-Token). Last-writer-wins keeps, of a key's ops, the one with the
// greatest version. The members of a lab share one kernel clock (network
// namespaces do not change CLOCK_REALTIME), so without a clock offset an
// op sent later carries the greater version; the checker does not rely on
// it: it compares the versions the members returned.
//
// A member whose clock is more than MaxClockDrift ahead stamps its ops
// that far ahead, and the others refuse them (crdt.HLC.CheckDrift) only
// while their version is more than MaxClockDrift ahead of their own
// clock: from version-MaxClockDrift on (for a clock 2 minutes ahead, 90 s
// after the write) they take them, and the ops win over every op of the
// others whose version is lower, sent later or not. That is
// last-writer-wins with a bad clock, bounded by the offset; the checker
// models it by the time it judges at (see classify).
type op struct {
	seq    int
	member string
	side   int // the side of the partition it was sent on; 0 before it
	key    string
	value  string
	del    bool
	acked  bool           // the member answered 204 with its version: the write or delete is acknowledged
	ver    crdt.Timestamp // the version the member answered with (acknowledged ops only)
	sent   int64          // when it was sent, Unix nanoseconds (on the lab's one clock)
	err    string         // why it is not acknowledged
}

func (o op) String() string {
	what := "set " + o.value
	if o.del {
		what = "delete"
	}
	ack := fmt.Sprintf(", version %v", o.ver)
	if !o.acked {
		ack = " (not acknowledged: " + o.err + ")"
	}
	return fmt.Sprintf("#%d %s on %s (side %d)%s", o.seq, what, o.member, o.side, ack)
}

// history is what a schedule sent.
type history struct {
	ops []op
	// oneClock is set when no member's clock is offset: every version is
	// then stamped from the kernel's one clock, and since the schedule
	// sends each op once the one before it is answered, an acknowledged
	// op's version must be greater than that of every op acknowledged
	// before it was sent (see misordered).
	oneClock bool
}

// set writes key on m and records it.
func (h *history) set(m *member, side int, key, value string) {
	sent := time.Now().UnixNano()
	ver, err := m.set(key, value)
	h.add(m.name, side, key, value, false, sent, ver, err)
}

// del deletes key on m and records it.
func (h *history) del(m *member, side int, key string) {
	sent := time.Now().UnixNano()
	ver, err := m.del(key)
	h.add(m.name, side, key, "", true, sent, ver, err)
}

func (h *history) add(member string, side int, key, value string, del bool, sent int64, ver crdt.Timestamp, err error) {
	o := op{seq: len(h.ops), member: member, side: side, key: key, value: value, del: del,
		acked: err == nil, ver: ver, sent: sent}
	if err != nil {
		o.err = err.Error()
	}
	h.ops = append(h.ops, o)
}

// maxDrift is the members' MaxClockDrift (bcache's default).
const maxDrift = bcache.DefaultMaxClockDrift

// takeGrace is how long after an op beyond MaxClockDrift became
// acceptable the checker still lets it win or not: the members take it
// at their next exchange with its member, not at once.
const takeGrace = 10 * time.Second

// beyondDrift reports whether o was stamped more than MaxClockDrift
// ahead of the time it was sent: refused by the others when sent.
func (o op) beyondDrift() bool { return o.acked && o.ver.Wall-o.sent > int64(maxDrift) }

// takenBy reports whether the others hold o, an acknowledged op, at time
// at: taken (yes), refused (no: its version is still more than
// MaxClockDrift ahead), or perhaps (it became acceptable less than
// takeGrace before).
func (o op) takenBy(at int64) (yes, perhaps bool) {
	if !o.beyondDrift() {
		return true, false
	}
	acceptable := o.ver.Wall - int64(maxDrift)
	switch {
	case acceptable > at:
		return false, false
	case acceptable > at-int64(takeGrace):
		return false, true
	}
	return true, false
}

// state is a key's value on a member: present with a value, or not.
type state struct {
	value   string
	present bool
}

func (s state) String() string {
	if !s.present {
		return "absent"
	}
	return fmt.Sprintf("%q", s.value)
}

// fate is the verdict on one key.
type fate string

const (
	fateOK          fate = "ok"          // an outcome last-writer-wins allows
	fateLost        fate = "lost"        // absent, though every op that may win wrote a value
	fateStale       fate = "stale"       // a value an op that may win overwrote
	fateResurrected fate = "resurrected" // a value, though every op that may win deleted it
	fateUnknown     fate = "unknown"     // a value no op wrote
	fateSplit       fate = "split"       // the members do not agree
	// misordered: on one clock, an acknowledged op's version is not above
	// that of an op acknowledged before it was sent. Last-writer-wins then
	// lets the earlier op win, and the later acknowledged op is lost
	// although the versions the members answered with allow it.
	fateMisordered fate = "misordered"
)

// judge classifies each key's final state, agreed on by the members (or
// not: split), against the history, as of time at (Unix nanoseconds: when
// the final state was read).
func (h *history) judge(final map[string]state, split map[string]bool, at int64) map[string]fate {
	byKey := map[string][]op{}
	for _, o := range h.ops {
		byKey[o.key] = append(byKey[o.key], o)
	}
	fates := map[string]fate{}
	for key, ops := range byKey {
		if split[key] {
			fates[key] = fateSplit
			continue
		}
		if h.oneClock && misordered(ops) {
			fates[key] = fateMisordered
			continue
		}
		fates[key] = classify(ops, final[key], at)
	}
	return fates
}

// misordered reports whether an acknowledged op of ops (in the order
// sent, each once the one before was answered) has a version not greater
// than an earlier acknowledged op's: on one clock, an HLC stamps an op at
// or after the time it was sent, and stamped the ops before it at or
// before their answers, so the versions of a key's acknowledged ops rise.
func misordered(ops []op) bool {
	var prev crdt.Timestamp
	for _, o := range ops {
		if !o.acked {
			continue
		}
		if !prev.Less(o.ver) {
			return true
		}
		prev = o.ver
	}
	return false
}

// classify judges a key's final state against its ops, in the order
// sent, as of time at. The op that must win is the acknowledged one with
// the greatest version, of those the others hold at time at (an op
// stamped beyond MaxClockDrift is refused until its version less
// MaxClockDrift has passed: until then it cannot win; see op). Others
// may win instead: an unacknowledged op (applied or not; its version is
// unknown) sent after the last acknowledged op of its side, or, during a
// partition, after the partition began (ops sent before it, side 0, are
// overwritten by any acknowledged during it); and an acknowledged op of
// greater version that the others perhaps took by time at. A key none of
// whose ops was acknowledged may be absent (none may have been applied);
// once one was, absence needs a delete that may win.
func classify(ops []op, got state, at int64) fate {
	last := map[int]int{} // side -> index of its last acknowledged op
	must := -1            // index of the op that must win
	for i, o := range ops {
		if !o.acked {
			continue
		}
		last[o.side] = i
		if taken, _ := o.takenBy(at); taken && (must < 0 || ops[must].ver.Less(o.ver)) {
			must = i
		}
	}
	partitioned := false
	for side := range last {
		partitioned = partitioned || side > 0
	}
	var winners []op
	for i, o := range ops {
		switch {
		case i == must:
		case o.acked:
			_, perhaps := o.takenBy(at)
			if !perhaps || must >= 0 && o.ver.Less(ops[must].ver) {
				continue
			}
		case partitioned && o.side == 0:
			continue
		default: // not acknowledged
			if l, ok := last[o.side]; ok && i < l {
				continue
			}
		}
		winners = append(winners, o)
	}
	for _, w := range winners {
		if w.del && !got.present || !w.del && got.present && w.value == got.value {
			return fateOK
		}
	}
	if !got.present {
		if !slices.ContainsFunc(ops, func(o op) bool { return o.acked }) {
			return fateOK // nothing acknowledged: perhaps nothing was applied
		}
		return fateLost
	}
	for _, o := range ops {
		if !o.del && o.value == got.value {
			if slices.ContainsFunc(winners, func(w op) bool { return !w.del }) {
				return fateStale
			}
			return fateResurrected
		}
	}
	return fateUnknown
}

// verdict is one run's outcome.
type verdict struct {
	name   string
	heal   time.Duration // from the heal to every member agreeing
	at     time.Time     // when the final state was read: what it is judged as of
	joined time.Duration // from the heal to every member seeing every other (0: not within a minute)
	agreed bool
	fates  map[string]fate
	// unacked counts the ops no member acknowledged. A member answers a
	// write over a local socket whatever the network does, so any is a
	// failure of the run: the checker lets an unacknowledged op win or
	// not, and a run of them would judge nothing.
	unacked int
	final   map[string]state
	per     map[string]map[string]state // member -> key -> state, if split
	stats   map[string]string           // member -> its /v1/stats at the end
	// suspicions counts the times a member's memberlist suspected a
	// peer, over the run, on every member: failure detection's false
	// alarms (and true ones: the kill and the pause).
	suspicions int
	// reads counts the reads of keys during the run, readFaults those no
	// history allows (history.judgeReads), one line each.
	reads      int
	readFaults []string
}

// line is the verdict a person reads.
func (v verdict) line() string {
	counts := map[fate]int{}
	for _, f := range v.fates {
		counts[f]++
	}
	agreed := fmt.Sprintf("agreed %.2f s after the heal (all members in every view after %.2f s)", v.heal.Seconds(), v.joined.Seconds())
	if !v.agreed {
		agreed = fmt.Sprintf("NOT agreed %.0f s after the heal", v.heal.Seconds())
	}
	return fmt.Sprintf("%s: %s; %d keys: %d ok, %d lost, %d stale, %d resurrected, %d unknown, %d split, %d misordered; %d of %d reads during the run not allowed; %d ops not acknowledged; %d suspicions",
		v.name, agreed, len(v.fates), counts[fateOK], counts[fateLost], counts[fateStale],
		counts[fateResurrected], counts[fateUnknown], counts[fateSplit], counts[fateMisordered], len(v.readFaults), v.reads, v.unacked, v.suspicions)
}

// ok reports whether every key came out ok, the members agreed, every
// op was acknowledged and every read during the run was allowed.
func (v verdict) ok() bool {
	if !v.agreed || v.unacked > 0 || len(v.fates) == 0 || len(v.readFaults) > 0 {
		return false
	}
	for _, f := range v.fates {
		if f != fateOK {
			return false
		}
	}
	return true
}

// write puts the details of the run in dir/name.txt and returns the path.
func (v verdict) write(dir string, h *history) string {
	var b strings.Builder
	fmt.Fprintln(&b, v.line())
	for _, f := range v.readFaults {
		fmt.Fprintf(&b, "read during the run: %s\n", f)
	}
	for _, key := range slices.Sorted(maps.Keys(v.fates)) {
		fmt.Fprintf(&b, "\n%s: %s, final %v\n", key, v.fates[key], v.final[key])
		for _, o := range h.ops {
			if o.key == key {
				fmt.Fprintf(&b, "  %v\n", o)
			}
		}
		for _, m := range slices.Sorted(maps.Keys(v.per)) {
			fmt.Fprintf(&b, "  on %s: %v\n", m, v.per[m][key])
		}
	}
	for _, m := range slices.Sorted(maps.Keys(v.stats)) {
		fmt.Fprintf(&b, "\n%s stats: %s\n", m, v.stats[m])
	}
	path := filepath.Join(dir, strings.ReplaceAll(v.name, " ", "_")+".txt")
	os.WriteFile(path, []byte(b.String()), 0o644)
	return path
}

// seen is one read the lab made of a key on a member: what the member
// served, and in which of its processes (member.life).
type seen struct {
	member string
	life   int
	key    string
	got    state
}

// judgeReads checks what the members served during the run, read by
// read, and returns a line for each read no history allows:
//
//   - a value no op of its key wrote (made up, or another key's);
//   - a value older than one the same process of the member served
//     before it (a member's reads go forward: it never replaces a version
//     with an older one, and an evicted key keeps its version), as far as
//     the ops' versions are known: an op not acknowledged has none, nor
//     a value two ops wrote.
//
// An absence is not judged: a delete not acknowledged has no version,
// and a miss after an eviction is allowed. A restarted process may serve
// older values than the process before it (its snapshot is older than
// what that one held), so each process is judged on its own.
func (h *history) judgeReads(reads []seen) []string {
	type kv struct{ key, value string }
	writers := map[kv][]op{}
	for _, o := range h.ops {
		if !o.del {
			writers[kv{o.key, o.value}] = append(writers[kv{o.key, o.value}], o)
		}
	}
	type process struct {
		member string
		life   int
		key    string
	}
	newest := map[process]op{} // the newest version each process served of each key, by its op
	var faults []string
	for _, r := range reads {
		if !r.got.present {
			continue
		}
		ops := writers[kv{r.key, r.got.value}]
		if len(ops) == 0 {
			faults = append(faults, fmt.Sprintf("%s (process %d) served %s %v, which no op wrote", r.member, r.life, r.key, r.got))
			continue
		}
		o := ops[0]
		if len(ops) > 1 || !o.acked {
			continue // its version is not known
		}
		p := process{r.member, r.life, r.key}
		if before, ok := newest[p]; ok && o.ver.Compare(before.ver) < 0 {
			faults = append(faults, fmt.Sprintf("%s (process %d) served %s %q (version %v) after %q (version %v)", r.member, r.life, r.key, o.value, o.ver, before.value, before.ver))
			continue
		}
		newest[p] = o
	}
	return faults
}

// unacked returns the number of ops no member acknowledged.
func (h *history) unacked() int {
	n := 0
	for _, o := range h.ops {
		if !o.acked {
			n++
		}
	}
	return n
}
