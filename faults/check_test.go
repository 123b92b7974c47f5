package faults

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// An op is a write or a delete sent to a member, in the order the
// schedule sent them. Ops sent to one side of a partition are ordered
// among themselves by the side's replication (a schedule sends a key's ops
// on one side through one member, or waits between them); the two sides'
// ops on a key are concurrent, and either side's last may win, by its
// timestamp.
type op struct {
	seq    int
	member string
	side   int // the side of the partition it was sent on; 0 before it
	key    string
	value  string
	del    bool
	acked  bool // the member answered 204: the write or delete is acknowledged
	ignore bool // sent by a member whose clock is beyond MaxClockDrift
}

func (o op) String() string {
	what := "set " + o.value
	if o.del {
		what = "delete"
	}
	ack := ""
	if !o.acked {
		ack = " (not acknowledged)"
	}
	return fmt.Sprintf("#%d %s on %s (side %d)%s", o.seq, what, o.member, o.side, ack)
}

// history is what a schedule sent.
type history struct {
	ops []op
}

func (h *history) record(m *member, side int, key, value string, del bool, err error) {
	h.ops = append(h.ops, op{seq: len(h.ops), member: m.name, side: side, key: key, value: value, del: del,
		acked: err == nil, ignore: m.offset > maxDrift})
}

// maxDrift is the members' MaxClockDrift (bcache's default).
const maxDrift = 30 * time.Second

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
)

// judge classifies each key's final state, agreed on by the members (or
// not: split), against the history.
func (h *history) judge(final map[string]state, split map[string]bool) map[string]fate {
	byKey := map[string][]op{}
	for _, o := range h.ops {
		if !o.ignore {
			byKey[o.key] = append(byKey[o.key], o)
		}
	}
	fates := map[string]fate{}
	for key, ops := range byKey {
		if split[key] {
			fates[key] = fateSplit
			continue
		}
		fates[key] = classify(ops, final[key])
	}
	return fates
}

// classify judges a key's final state against its ops, in the order sent.
// The ops that may win are, for each side, its last acknowledged op and
// any unacknowledged op after it (it may have been applied); ops sent
// before the partition (side 0) are overwritten by any acknowledged during
// it. A key none of whose ops was acknowledged may be absent (none may
// have been applied); once one was, absence needs a delete that may win.
func classify(ops []op, got state) fate {
	last := map[int]int{} // side -> index of its last acknowledged op
	for i, o := range ops {
		if o.acked {
			last[o.side] = i
		}
	}
	partitioned := false
	for side := range last {
		partitioned = partitioned || side > 0
	}
	var winners []op
	for i, o := range ops {
		if partitioned && o.side == 0 {
			continue
		}
		if l, ok := last[o.side]; (ok && i == l) || (!o.acked && (!ok || i > l)) {
			winners = append(winners, o)
		}
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
	return fmt.Sprintf("%s: %s; %d keys: %d ok, %d lost, %d stale, %d resurrected, %d unknown, %d split; %d ops not acknowledged; %d suspicions",
		v.name, agreed, len(v.fates), counts[fateOK], counts[fateLost], counts[fateStale],
		counts[fateResurrected], counts[fateUnknown], counts[fateSplit], v.unacked, v.suspicions)
}

// ok reports whether every key came out ok, the members agreed and every
// op was acknowledged.
func (v verdict) ok() bool {
	if !v.agreed || v.unacked > 0 || len(v.fates) == 0 {
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
