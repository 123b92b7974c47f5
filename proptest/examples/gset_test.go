package examples

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/bcache-go/bcache/proptest"
	"github.com/bcache-go/bcache/transport"
	"pgregory.net/rapid"
)

// gset is a grow-only set of small ints per key, a researcher's own CRDT:
// add broadcasts the element, Sync sends everything, merge is union.
type gset struct {
	name    string
	members []string
	state   map[string]map[int64]bool
	order   map[string][]int64 // arrival order, for the order-dependent variant
	broken  string
}

func newGSet(broken string) func(string, int, func() int64) (proptest.Object, error) {
	return func(name string, _ int, _ func() int64) (proptest.Object, error) {
		return &gset{name: name, state: map[string]map[int64]bool{}, order: map[string][]int64{}, broken: broken}, nil
	}
}

func (g *gset) add(key string, e int64) {
	if g.state[key] == nil {
		g.state[key] = map[int64]bool{}
	}
	if !g.state[key][e] {
		g.order[key] = append(g.order[key], e)
	}
	g.state[key][e] = true
}

func (g *gset) Do(op proptest.Op) (any, []transport.Envelope) {
	switch op.Name {
	case "read":
		return slices.Sorted(maps.Keys(g.state[op.Key])), nil
	case "add":
		e := op.Arg.(int64)
		g.add(op.Key, e)
		b, _ := json.Marshal(map[string][]int64{op.Key: {e}})
		var out []transport.Envelope
		for _, m := range g.members {
			if m != g.name {
				out = append(out, transport.Envelope{To: m, Payload: b})
			}
		}
		return nil, out
	}
	panic("gset: " + op.Name)
}

func (g *gset) Receive(_ string, p []byte) []transport.Envelope {
	var m map[string][]int64
	if json.Unmarshal(p, &m) != nil {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if g.broken == "replace" { // merge that loses elements: the received set replaces the held one
			g.state[k] = map[int64]bool{}
			g.order[k] = nil
		}
		for _, e := range m[k] {
			if g.broken == "drop3" && e == 3 { // merge that loses one element
				continue
			}
			g.add(k, e)
		}
	}
	return nil
}

func (g *gset) Tick() []transport.Envelope { return nil }

func (g *gset) Sync(peer string) []transport.Envelope {
	m := map[string][]int64{}
	for k, s := range g.state {
		if g.broken == "order" {
			m[k] = slices.Clone(g.order[k])
		} else {
			m[k] = slices.Sorted(maps.Keys(s))
		}
	}
	b, _ := json.Marshal(m)
	return []transport.Envelope{{To: peer, Payload: b}}
}

func (g *gset) SetMembers(n []string) { g.members = slices.Clone(n) }

func (g *gset) State() any {
	if g.broken == "order" { // the state is the arrival order
		out := map[string][]int64{}
		for k, v := range g.order {
			out[k] = slices.Clone(v)
		}
		return out
	}
	out := map[string][]int64{}
	for k, s := range g.state {
		out[k] = slices.Sorted(maps.Keys(s))
	}
	return out
}

// gsetModel: the converged set of a key is exactly the elements added to
// it (an add by an incarnation that crashed may be lost); a read holds
// every element its member added and only elements someone added.
type gsetModel struct {
	added   map[string]map[int64][]string // key -> element -> incarnations
	crashed map[string]bool
}

func newGSetModel() proptest.Model {
	return &gsetModel{added: map[string]map[int64][]string{}, crashed: map[string]bool{}}
}

func (m *gsetModel) Did(member string, inc int, op proptest.Op, result any) error {
	by := fmt.Sprintf("%s#%d", member, inc)
	switch op.Name {
	case "add":
		if m.added[op.Key] == nil {
			m.added[op.Key] = map[int64][]string{}
		}
		e := op.Arg.(int64)
		m.added[op.Key][e] = append(m.added[op.Key][e], by)
	case "read":
		got := result.([]int64)
		for _, e := range got {
			if len(m.added[op.Key][e]) == 0 {
				return fmt.Errorf("read %q holds %d, which nobody added", op.Key, e)
			}
		}
		for e, bys := range m.added[op.Key] {
			if slices.Contains(bys, by) && !slices.Contains(got, e) {
				return fmt.Errorf("read %q misses %d, which this member added", op.Key, e)
			}
		}
	}
	return nil
}

func (m *gsetModel) Crashed(member string, inc int) {
	m.crashed[fmt.Sprintf("%s#%d", member, inc)] = true
}

func (m *gsetModel) Check(state any) error {
	s := state.(map[string][]int64)
	for _, k := range slices.Sorted(maps.Keys(s)) {
		for _, e := range s[k] {
			if len(m.added[k][e]) == 0 {
				return fmt.Errorf("%q holds %d, which nobody added", k, e)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m.added)) {
		for _, e := range slices.Sorted(maps.Keys(m.added[k])) {
			live := slices.ContainsFunc(m.added[k][e], func(by string) bool { return !m.crashed[by] })
			if live && !slices.Contains(s[k], e) {
				return fmt.Errorf("%q lost %d, added by %v", k, e, m.added[k][e])
			}
		}
	}
	return nil
}

func gsetSpec(broken string) proptest.Spec {
	return proptest.Spec{
		New:      newGSet(broken),
		Ops:      []proptest.OpKind{{Name: "add", Arg: func(t *rapid.T) any { return rapid.Int64Range(0, 4).Draw(t, "e") }}, {Name: "read"}},
		Model:    newGSetModel,
		Describe: func(b []byte) string { return string(b) },
	}
}

// TestHarnessCatchesBrokenGrowOnlySets: a researcher's grow-only set
// passes CheckType and every interleaving of ExploreType (SameOutcome:
// its adds are blind), and three broken variants are each caught by
// both: a merge that replaces the held set with the received one, a
// merge that drops one element, and a state that is the order the
// elements arrived in (equal sets, unequal states).
func TestHarnessCatchesBrokenGrowOnlySets(t *testing.T) {
	proptest.CheckType(t, gsetSpec(""))
	script := []proptest.Scripted{
		{Member: 0, Op: proptest.Op{Name: "add", Key: "a", Arg: int64(1)}},
		{Member: 1, Op: proptest.Op{Name: "add", Key: "a", Arg: int64(3)}},
		{Member: 0, Op: proptest.Op{Name: "add", Key: "a", Arg: int64(2)}},
		{Member: 1, Op: proptest.Op{Name: "read", Key: "a"}},
	}
	bounds := proptest.Explore{MaxTicks: -1, SameOutcome: true} // it sends nothing from Tick
	t.Logf("%d runs", proptest.ExploreType(t, gsetSpec(""), script, bounds))
	for _, b := range []string{"replace", "drop3", "order"} {
		if r := proptest.Counterexample(t, proptest.TypeProperty(gsetSpec(b))); r == "" {
			t.Errorf("CheckType passed the broken grow-only set %q", b)
		}
		if runs, err := proptest.Exploration(gsetSpec(b), script, bounds); err == nil {
			t.Errorf("ExploreType passed the broken grow-only set %q in %d runs", b, runs)
		}
	}
}
