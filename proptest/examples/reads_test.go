package examples

import (
	"strings"
	"testing"

	"github.com/bcache-go/bcache/proptest"
	"github.com/bcache-go/bcache/transport"
)

// ownReadCounter is a Counter whose reads count its own slot alone: it
// never shows what other members counted, however much of it it holds.
type ownReadCounter struct{ *Counter }

func (c ownReadCounter) Do(op proptest.Op) (any, []transport.Envelope) {
	if op.Name == "read" {
		return c.state.P[op.Key][c.slot] - c.state.N[op.Key][c.slot], nil
	}
	return c.Counter.Do(op)
}

// ownContainsSet is a Set whose contains sees its own adds alone.
type ownContainsSet struct{ *Set }

func (s ownContainsSet) Do(op proptest.Op) (any, []transport.Envelope) {
	if op.Name == "contains" {
		for _, tag := range s.live(op.Key) {
			if strings.HasPrefix(tag, s.prefix+".") {
				return true, nil
			}
		}
		return false, nil
	}
	return s.Set.Do(op)
}

// TestReadsThatIgnoreWhatTheMemberHoldsAreCaught: a counter whose reads
// ignore every other member's counts, and a set whose contains ignores
// every add but the member's own, replicate correctly and converge, but
// no read ever shows another member's write. The models judged a read
// between nothing and everything the others did, not knowing what the
// member held, and both passed CheckType and ExploreType; judged against
// the state the read ran on (proptest.StateModel), they fail.
func TestReadsThatIgnoreWhatTheMemberHoldsAreCaught(t *testing.T) {
	counter := proptest.Spec{New: func(name string, inc int, _ func() int64) (proptest.Object, error) {
		return ownReadCounter{newCounter(name, inc, larger)}, nil
	}, Ops: CounterOps(), Model: NewCounterModel}
	set := proptest.Spec{New: func(name string, inc int, _ func() int64) (proptest.Object, error) {
		return ownContainsSet{newSet(name, inc)}, nil
	}, Ops: SetOps(), Model: NewSetModel}
	if !fails(t, proptest.TypeProperty(counter)) {
		t.Error("CheckType passed a counter whose reads ignore the other members' counts")
	}
	if !fails(t, proptest.TypeProperty(set)) {
		t.Error("CheckType passed a set whose contains ignores the other members' adds")
	}
	script := []proptest.Scripted{
		{Member: 0, Op: proptest.Op{Name: "inc", Key: "a", Arg: int64(2)}},
		{Member: 1, Op: proptest.Op{Name: "read", Key: "a"}},
	}
	if n, err := proptest.Exploration(counter, script, proptest.Explore{MaxTicks: -1}); err == nil {
		t.Errorf("Exploration passed a counter whose reads ignore the other members' counts (%d runs)", n)
	}
	script = []proptest.Scripted{
		{Member: 0, Op: proptest.Op{Name: "add", Key: "a"}},
		{Member: 1, Op: proptest.Op{Name: "contains", Key: "a"}},
	}
	if n, err := proptest.Exploration(set, script, proptest.Explore{MaxTicks: -1}); err == nil {
		t.Errorf("Exploration passed a set whose contains ignores the other members' adds (%d runs)", n)
	}
}
