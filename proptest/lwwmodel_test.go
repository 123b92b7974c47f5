package proptest_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/proptest"
	"github.com/bcache-go/bcache/transport"
)

// phantom is the production store as StoreSpec builds it, with a fault:
// a set of "a" also writes the value to "b", a write nobody asked for.
type phantom struct{ proptest.Object }

func (p phantom) Do(op proptest.Op) (any, []transport.Envelope) {
	res, out := p.Object.Do(op)
	if op.Name == "set" && op.Key == "a" {
		_, more := p.Object.Do(proptest.Op{Name: "set", Key: "b", Arg: op.Arg})
		out = append(out, more...)
	}
	return res, out
}

// TestLWWModelCatchesAWriteNobodyMade: the LWW model holds that every key
// holds its newest write, so a key nobody wrote holds nothing. Its check
// looked only at the keys written, and a store that wrote "b" on its own
// passed every interleaving of a script that writes "a" alone (found by
// review).
func TestLWWModelCatchesAWriteNobodyMade(t *testing.T) {
	spec := proptest.StoreSpec(proptest.DefaultStoreConfig())
	inner := spec.New
	spec.New = func(name string, inc int, phys func() int64) (proptest.Object, error) {
		o, err := inner(name, inc, phys)
		return phantom{o}, err
	}
	script := []proptest.Scripted{
		{Member: 0, Op: proptest.Op{Name: "set", Key: "a", Arg: "x"}},
		{Member: 1, Op: proptest.Op{Name: "get", Key: "a"}},
	}
	if runs, err := proptest.Exploration(spec, script, proptest.Explore{MaxTicks: -1}); err == nil {
		t.Fatalf("%d runs of a store that writes \"b\" on its own passed", runs)
	}
}

// TestLWWModelSaysTheSameOfOneState: the model's verdict on a state with
// several keys wrong names the same key each time (it named the first its
// map gave, and a failure did not replay from its seed: found by review).
func TestLWWModelSaysTheSameOfOneState(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		m := proptest.StoreSpec(proptest.DefaultStoreConfig()).Model()
		var held []crdt.Version
		for i, key := range []string{"a", "b", "c", "d"} {
			rec := crdt.Record{Key: key, Value: []byte("x"), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}}
			if err := m.Did("n0", 0, proptest.Op{Name: "set", Key: key, Arg: "x"}, rec); err != nil {
				t.Fatal(err)
			}
			held = append(held, crdt.Version{Key: key, Time: crdt.Timestamp{Wall: 1, Node: 9}}) // nobody wrote it
		}
		seen[fmt.Sprint(m.Check(held))] = true
	}
	if len(seen) != 1 {
		t.Fatalf("one state, %d verdicts: %v", len(seen), slices.Sorted(maps.Keys(seen)))
	}
}
