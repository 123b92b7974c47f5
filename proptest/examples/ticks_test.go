package examples

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/proptest"
	"github.com/bcache-go/bcache/transport"
	"pgregory.net/rapid"
)

// batchCounter is a broken grow-only counter: its deltas are "add n to
// slot s", applied by adding, so a duplicated one counts twice (its Sync,
// a max per slot, is right). With batch, Do's deltas wait for the next
// Tick, as a flush timer's would.
type batchCounter struct {
	name, slot string
	members    []string
	p          map[string]map[string]int64
	batch      bool
	pending    []batchDelta
}

type batchDelta struct {
	Key, Slot string
	N         int64
}

func newBatchCounter(name string, inc int, batch bool) *batchCounter {
	return &batchCounter{name: name, slot: fmt.Sprintf("%s#%d", name, inc), p: map[string]map[string]int64{}, batch: batch}
}

func (c *batchCounter) add(key, slot string, n int64) {
	if c.p[key] == nil {
		c.p[key] = map[string]int64{}
	}
	c.p[key][slot] += n
}

func (c *batchCounter) Do(op proptest.Op) (any, []transport.Envelope) {
	switch op.Name {
	case "read":
		var v int64
		for _, n := range c.p[op.Key] {
			v += n
		}
		return v, nil
	case "inc":
		n := op.Arg.(int64)
		c.add(op.Key, c.slot, n)
		d := batchDelta{op.Key, c.slot, n}
		if c.batch {
			c.pending = append(c.pending, d)
			return nil, nil
		}
		return nil, c.bcast([]batchDelta{d})
	}
	panic("no op " + op.Name)
}

func (c *batchCounter) bcast(ds []batchDelta) []transport.Envelope {
	if len(ds) == 0 {
		return nil
	}
	b, _ := json.Marshal(ds)
	b = append([]byte{'d'}, b...)
	var out []transport.Envelope
	for _, m := range c.members {
		if m != c.name {
			out = append(out, transport.Envelope{To: m, Payload: b})
		}
	}
	return out
}

func (c *batchCounter) Receive(_ string, payload []byte) []transport.Envelope {
	switch payload[0] {
	case 'd':
		var ds []batchDelta
		_ = json.Unmarshal(payload[1:], &ds)
		for _, d := range ds {
			c.add(d.Key, d.Slot, d.N) // the bug: a duplicate counts twice
		}
	case 's':
		var s map[string]map[string]int64
		_ = json.Unmarshal(payload[1:], &s)
		for k, slots := range s {
			for slot, n := range slots {
				if c.p[k] == nil {
					c.p[k] = map[string]int64{}
				}
				c.p[k][slot] = max(c.p[k][slot], n)
			}
		}
	}
	return nil
}

func (c *batchCounter) Tick() []transport.Envelope {
	ds := c.pending
	c.pending = nil
	return c.bcast(ds)
}

func (c *batchCounter) Sync(peer string) []transport.Envelope {
	b, _ := json.Marshal(c.p)
	return []transport.Envelope{{To: peer, Payload: append([]byte{'s'}, b...)}}
}

func (c *batchCounter) SetMembers(names []string) { c.members = slices.Clone(names) }

func (c *batchCounter) State() any {
	p := map[string]map[string]int64{}
	for k, v := range c.p {
		p[k] = maps.Clone(v)
	}
	return CounterState{P: p, N: map[string]map[string]int64{}}
}

func batchCounterSpec(batch bool) proptest.Spec {
	by := func(t *rapid.T) any { return rapid.Int64Range(1, 5).Draw(t, "by") }
	return proptest.Spec{
		New: func(name string, inc int, _ func() int64) (proptest.Object, error) {
			return newBatchCounter(name, inc, batch), nil
		},
		Ops:      []proptest.OpKind{{Name: "inc", Arg: by}, {Name: "read"}},
		Model:    NewCounterModel,
		Describe: func(b []byte) string { return string(b) },
	}
}

var batchScript = []proptest.Scripted{
	{Member: 0, Op: proptest.Op{Name: "inc", Key: "a", Arg: int64(2)}},
	{Member: 1, Op: proptest.Op{Name: "inc", Key: "a", Arg: int64(1)}},
	{Member: 0, Op: proptest.Op{Name: "read", Key: "a"}},
}

// TestExplorationOfATickSender: a data type that sends from Tick (a
// batching one) has its frames delivered late, lost and duplicated before
// its runs' end (Explore.MaxTicks, one by default): without, nothing was
// in flight, and its exploration passed the counter that counts a
// duplicated delta twice (found by review). Sending at once, it is found
// too.
func TestExplorationOfATickSender(t *testing.T) {
	if n, err := proptest.Exploration(batchCounterSpec(true), batchScript, proptest.Explore{}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("the batching counter that counts a duplicate twice: %d runs, %v; want it found", n, err)
	}
	if n, err := proptest.Exploration(batchCounterSpec(false), batchScript, proptest.Explore{MaxTicks: -1}); err == nil {
		t.Fatalf("the counter that counts a duplicate twice passed: %d runs", n)
	}
}

// TestExplorationPanicIsTheRunsFailure: a panic of the data type's code
// during an exploration is that run's failure, with its events (it ended
// the test binary: found by review).
func TestExplorationPanicIsTheRunsFailure(t *testing.T) {
	spec := counterSpec(larger)
	spec.New = func(name string, inc int, _ func() int64) (proptest.Object, error) {
		return &panicOnSecond{Counter: newCounter(name, inc, larger)}, nil
	}
	script := []proptest.Scripted{
		{Member: 0, Op: proptest.Op{Name: "inc", Key: "a", Arg: int64(1)}},
		{Member: 1, Op: proptest.Op{Name: "inc", Key: "a", Arg: int64(1)}},
	}
	if n, err := proptest.Exploration(spec, script, proptest.Explore{}); err == nil || !strings.Contains(err.Error(), "receiver bug") || !strings.Contains(err.Error(), "events:") {
		t.Fatalf("%d runs, %v; want the panic as a run's failure, with its events", n, err)
	}
}

// panicOnSecond is a counter whose second frame received panics.
type panicOnSecond struct {
	*Counter
	got int
}

func (p *panicOnSecond) Receive(from string, b []byte) []transport.Envelope {
	if p.got++; p.got == 2 {
		panic("receiver bug on the second frame")
	}
	return p.Counter.Receive(from, b)
}

// checkCounting is a counter model that counts its final checks.
type checkCounting struct {
	proptest.Model
	checks *int
}

func (c checkCounting) Check(state any) error {
	*c.checks++
	return c.Model.Check(state)
}

// TestEveryRunIsChecked: every run of CheckType ends with the model's
// check; one in six crashed every member, and ended checking nothing
// (found by review): the last live member is not crashed.
func TestEveryRunIsChecked(t *testing.T) {
	checks, runs := 0, 0
	spec := counterSpec(larger)
	spec.Model = func() proptest.Model { return checkCounting{NewCounterModel(), &checks} }
	prop := proptest.TypeProperty(spec)
	rapid.Check(t, func(t *rapid.T) {
		runs++
		prop(t)
	})
	if checks != runs {
		t.Fatalf("%d of %d runs ended with the model's check", checks, runs)
	}
}

// TestModelFailuresSayTheSame: a model's failure names the same key at
// every replay of its run, or rapid cannot shrink it: the example models
// looked at keys in map order (found by review).
func TestModelFailuresSayTheSame(t *testing.T) {
	m := NewCounterModel()
	state := CounterState{P: map[string]map[string]int64{}, N: map[string]map[string]int64{}}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		state.P[k] = map[string]int64{"n0#0": 1} // counts no member made
	}
	first := m.Check(state)
	if first == nil {
		t.Fatal("counts nobody made passed")
	}
	for range 20 {
		if err := m.Check(state); err == nil || err.Error() != first.Error() {
			t.Fatalf("%v, then %v", first, err)
		}
	}
}

// TestSimulateTypeBlamesDo: a panic of the data type's Do in
// SimulateType is not reported as the argument generator's (found by
// review).
func TestSimulateTypeBlamesDo(t *testing.T) {
	spec := counterSpec(larger)
	spec.New = func(name string, inc int, _ func() int64) (proptest.Object, error) {
		return panicOnDo{newCounter(name, inc, larger)}, nil
	}
	spec.Ops = slices.DeleteFunc(spec.Ops, func(k proptest.OpKind) bool { return k.Arg == nil }) // operations with an argument alone
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "bug in Do") {
			t.Fatalf("recovered %v; want Do's own panic", r)
		}
	}()
	_, err := proptest.SimulateType(spec, proptest.TypeSimConfig{Nodes: 2, Ops: 10, PerRound: 1})
	t.Fatalf("SimulateType returned %v; want Do's panic", err)
}

// panicOnDo is a counter whose Do panics.
type panicOnDo struct{ *Counter }

func (panicOnDo) Do(proptest.Op) (any, []transport.Envelope) { panic("bug in Do") }
