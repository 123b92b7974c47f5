package examples

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/bcache-go/bcache/proptest"
	"github.com/bcache-go/bcache/transport"
	"pgregory.net/rapid"
)

// Counter is a PN-counter per key, state-based: every incarnation of a
// member counts its increments and its decrements in a slot of its own
// ("n1#0"), a replica merges a slot by keeping the larger count, and a
// key's value is the increments of every slot less the decrements. After
// each operation the replica sends its slot of that key to every member
// it sees; Sync sends everything it holds.
type Counter struct {
	name    string
	slot    string
	members []string
	state   CounterState
	// merge folds a received count into the replica's: the larger of the
	// two. A broken variant swaps it.
	merge func(held, received int64) int64
}

// CounterState is a Counter's state: per key, per slot, the increments
// (P) and the decrements (N).
type CounterState struct {
	P, N map[string]map[string]int64
}

// CounterOps are the operations of a Counter: inc and dec by 1 to 5, and
// read (its result: the value).
func CounterOps() []proptest.OpKind {
	by := func(t *rapid.T) any { return rapid.Int64Range(1, 5).Draw(t, "by") }
	return []proptest.OpKind{{Name: "inc", Arg: by}, {Name: "dec", Arg: by}, {Name: "read"}}
}

// NewCounter returns member name's Counter in incarnation inc.
func NewCounter(name string, inc int, _ func() int64) (proptest.Object, error) {
	return newCounter(name, inc, larger), nil
}

// larger is a Counter's merge of a slot's count.
func larger(held, received int64) int64 { return max(held, received) }

func newCounter(name string, inc int, merge func(held, received int64) int64) *Counter {
	return &Counter{
		name:  name,
		slot:  fmt.Sprintf("%s#%d", name, inc),
		state: CounterState{P: map[string]map[string]int64{}, N: map[string]map[string]int64{}},
		merge: merge,
	}
}

// Do implements proptest.Object.
func (c *Counter) Do(op proptest.Op) (any, []transport.Envelope) {
	switch op.Name {
	case "read":
		return c.value(op.Key), nil
	case "inc", "dec":
		side := c.state.P
		if op.Name == "dec" {
			side = c.state.N
		}
		if side[op.Key] == nil {
			side[op.Key] = map[string]int64{}
		}
		side[op.Key][c.slot] += op.Arg.(int64)
		delta := CounterState{P: map[string]map[string]int64{}, N: map[string]map[string]int64{}}
		for _, s := range []struct{ from, to map[string]map[string]int64 }{{c.state.P, delta.P}, {c.state.N, delta.N}} {
			if n, ok := s.from[op.Key][c.slot]; ok {
				s.to[op.Key] = map[string]int64{c.slot: n}
			}
		}
		return nil, c.broadcast(delta)
	}
	panic("counter: no operation " + op.Name)
}

func (c *Counter) value(key string) int64 {
	var v int64
	for _, n := range c.state.P[key] {
		v += n
	}
	for _, n := range c.state.N[key] {
		v -= n
	}
	return v
}

// broadcast sends s to every other member in view.
func (c *Counter) broadcast(s CounterState) []transport.Envelope {
	b, _ := json.Marshal(s)
	var out []transport.Envelope
	for _, m := range c.members {
		if m != c.name {
			out = append(out, transport.Envelope{To: m, Payload: b})
		}
	}
	return out
}

// Receive implements proptest.Object: it merges a received state.
func (c *Counter) Receive(_ string, payload []byte) []transport.Envelope {
	var s CounterState
	if json.Unmarshal(payload, &s) != nil {
		return nil
	}
	for _, side := range []struct{ held, got map[string]map[string]int64 }{{c.state.P, s.P}, {c.state.N, s.N}} {
		for key, slots := range side.got {
			if side.held[key] == nil {
				side.held[key] = map[string]int64{}
			}
			for slot, n := range slots {
				side.held[key][slot] = c.merge(side.held[key][slot], n)
			}
		}
	}
	return nil
}

// Tick implements proptest.Object: a Counter has no timers.
func (c *Counter) Tick() []transport.Envelope { return nil }

// Sync implements proptest.Object: it sends peer everything it holds.
func (c *Counter) Sync(peer string) []transport.Envelope {
	b, _ := json.Marshal(c.state)
	return []transport.Envelope{{To: peer, Payload: b}}
}

// SetMembers implements proptest.Object.
func (c *Counter) SetMembers(names []string) { c.members = slices.Clone(names) }

// State implements proptest.Object: a copy of the counts.
func (c *Counter) State() any {
	cp := func(m map[string]map[string]int64) map[string]map[string]int64 {
		out := make(map[string]map[string]int64, len(m))
		for k, v := range m {
			out[k] = maps.Clone(v)
		}
		return out
	}
	return CounterState{P: cp(c.state.P), N: cp(c.state.N)}
}

// CounterModel is the specification of a Counter: every slot of the
// converged state holds exactly the increments and decrements its
// incarnation made, or, for an incarnation that crashed, the counts it
// had after some of its operations (what it sent before it crashed).
type CounterModel struct {
	// totals are, per slot and key, the counts after each operation of
	// the slot's incarnation, 0 first: index 0 for P, 1 for N.
	totals  map[string]map[string]*[2][]int64
	crashed map[string]bool
}

// NewCounterModel returns an empty CounterModel.
func NewCounterModel() proptest.Model {
	return &CounterModel{totals: map[string]map[string]*[2][]int64{}, crashed: map[string]bool{}}
}

// Did implements proptest.Model. A read is judged by what the member
// surely holds: its own slot exactly, every other slot between nothing
// and all of it (under partitions a member may see any mix of the others'
// counts). Reads were not judged at all, and a counter whose reads were
// always 0 passed (found by review).
func (m *CounterModel) Did(member string, inc int, op proptest.Op, result any) error {
	slot := fmt.Sprintf("%s#%d", member, inc)
	if op.Name == "read" {
		var own, othersP, othersN int64
		for s, keys := range m.totals {
			t := keys[op.Key]
			if t == nil {
				continue
			}
			p, n := t[0][len(t[0])-1], t[1][len(t[1])-1]
			if s == slot {
				own = p - n
			} else {
				othersP, othersN = othersP+p, othersN+n
			}
		}
		if v := result.(int64); v < own-othersN || v > own+othersP {
			return fmt.Errorf("%s reads %q as %d: its own slot holds %d, the others at most +%d and -%d", member, op.Key, v, own, othersP, othersN)
		}
		return nil
	}
	if m.totals[slot] == nil {
		m.totals[slot] = map[string]*[2][]int64{}
	}
	t := m.totals[slot][op.Key]
	if t == nil {
		t = &[2][]int64{{0}, {0}}
		m.totals[slot][op.Key] = t
	}
	i := 0
	if op.Name == "dec" {
		i = 1
	}
	t[i] = append(t[i], t[i][len(t[i])-1]+op.Arg.(int64))
	return nil
}

// DidOn implements proptest.StateModel: a read must also be the value of
// the counts the member held (a counter whose reads ignored every other
// member's counts passed Did's bounds: found by review).
func (m *CounterModel) DidOn(member string, inc int, op proptest.Op, result any, before any) error {
	if op.Name == "read" {
		held := &Counter{state: before.(CounterState)}
		if want := held.value(op.Key); result.(int64) != want {
			return fmt.Errorf("%s reads %q as %d, but holds counts of %d", member, op.Key, result, want)
		}
	}
	return m.Did(member, inc, op, result)
}

// Crashed implements proptest.Model.
func (m *CounterModel) Crashed(member string, inc int) {
	m.crashed[fmt.Sprintf("%s#%d", member, inc)] = true
}

// Check implements proptest.Model. It looks at keys and slots in order:
// a failure must say the same each time its run is replayed, or rapid
// cannot shrink it (found by review).
func (m *CounterModel) Check(state any) error {
	s := state.(CounterState)
	for i, side := range []map[string]map[string]int64{s.P, s.N} {
		for _, key := range slices.Sorted(maps.Keys(side)) {
			slots := side[key]
			for _, slot := range slices.Sorted(maps.Keys(slots)) {
				n := slots[slot]
				t := m.totals[slot][key]
				if t == nil {
					return fmt.Errorf("key %q holds a count %d of slot %s, which never counted it", key, n, slot)
				}
				if m.crashed[slot] && !slices.Contains(t[i], n) {
					return fmt.Errorf("key %q holds %d in crashed slot %s, which counted %v", key, n, slot, t[i])
				}
				if !m.crashed[slot] && n != t[i][len(t[i])-1] {
					return fmt.Errorf("key %q holds %d in slot %s, which counted %d", key, n, slot, t[i][len(t[i])-1])
				}
			}
		}
	}
	for _, slot := range slices.Sorted(maps.Keys(m.totals)) { // a live slot's counts must all be there
		if m.crashed[slot] {
			continue
		}
		keys := m.totals[slot]
		for _, key := range slices.Sorted(maps.Keys(keys)) {
			t := keys[key]
			for i, side := range []map[string]map[string]int64{s.P, s.N} {
				if want := t[i][len(t[i])-1]; want != 0 && side[key][slot] != want {
					return fmt.Errorf("key %q holds %d in slot %s, which counted %d", key, side[key][slot], slot, want)
				}
			}
		}
	}
	return nil
}
