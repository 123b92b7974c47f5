package examples

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/proptest"
	"github.com/bcache-go/bcache/transport"
	"pgregory.net/rapid"
)

func counterSpec(merge func(held, received int64) int64) proptest.Spec {
	return proptest.Spec{
		New: func(name string, inc int, _ func() int64) (proptest.Object, error) {
			return newCounter(name, inc, merge), nil
		},
		Ops: CounterOps(), Model: NewCounterModel, Describe: func(b []byte) string { return string(b) },
	}
}

func setSpec(removeUnseen bool) proptest.Spec {
	return proptest.Spec{
		New: func(name string, inc int, _ func() int64) (proptest.Object, error) {
			s := newSet(name, inc)
			s.removeUnseen = removeUnseen
			return s, nil
		},
		Ops: SetOps(), Model: NewSetModel, Describe: func(b []byte) string { return string(b) },
	}
}

// TestCounter runs the harness over the PN-counter.
func TestCounter(t *testing.T) {
	proptest.CheckType(t, proptest.Spec{New: NewCounter, Ops: CounterOps(), Model: NewCounterModel})
}

// TestSet runs the harness over the add-wins set.
func TestSet(t *testing.T) {
	proptest.CheckType(t, proptest.Spec{New: NewSet, Ops: SetOps(), Model: NewSetModel})
}

// TestHarnessCatchesBrokenCounters: counters that add what they receive
// to what they hold (a duplicate or a second sync counts twice), or take
// the last count received (a reordered frame takes a count back), must
// fail.
func TestHarnessCatchesBrokenCounters(t *testing.T) {
	for name, merge := range map[string]func(held, received int64) int64{
		"sum":           func(held, received int64) int64 { return held + received },
		"last received": func(_, received int64) int64 { return received },
	} {
		t.Run(name, func(t *testing.T) {
			if !fails(t, proptest.TypeProperty(counterSpec(merge))) {
				t.Fatalf("the harness passed a counter whose merge is %s", name)
			}
		})
	}
}

// TestHarnessCatchesBrokenSets: a set whose removes also remove adds
// their sender had not seen (remove wins over a concurrent add) must
// fail.
func TestHarnessCatchesBrokenSets(t *testing.T) {
	if !fails(t, proptest.TypeProperty(setSpec(true))) {
		t.Fatal("the harness passed a set whose removes remove adds they did not see")
	}
}

// setScript is a small scope for the set: two members add and remove
// the same key concurrently, and read it.
var setScript = []proptest.Scripted{
	{Member: 0, Op: proptest.Op{Name: "add", Key: "a"}},
	{Member: 1, Op: proptest.Op{Name: "add", Key: "a"}},
	{Member: 1, Op: proptest.Op{Name: "remove", Key: "a"}},
	{Member: 0, Op: proptest.Op{Name: "contains", Key: "a"}},
}

// TestSetEveryInterleaving explores every interleaving of setScript with
// the deliveries, one loss and one duplication.
func TestSetEveryInterleaving(t *testing.T) {
	// The set sends nothing from Tick: time passing adds no frame, and
	// ten times the runs (MaxTicks -1).
	runs := proptest.ExploreType(t, setSpec(false), setScript, proptest.Explore{MaxTicks: -1})
	t.Logf("%d runs", runs)
}

// TestCounterEveryInterleaving explores two members counting
// concurrently.
func TestCounterEveryInterleaving(t *testing.T) {
	script := []proptest.Scripted{
		{Member: 0, Op: proptest.Op{Name: "inc", Key: "a", Arg: int64(2)}},
		{Member: 1, Op: proptest.Op{Name: "dec", Key: "a", Arg: int64(1)}},
		{Member: 0, Op: proptest.Op{Name: "inc", Key: "a", Arg: int64(1)}},
		{Member: 1, Op: proptest.Op{Name: "read", Key: "a"}},
	}
	runs := proptest.ExploreType(t, counterSpec(larger), script, proptest.Explore{MaxTicks: -1}) // it sends nothing from Tick
	t.Logf("%d runs", runs)
}

// TestExplorationCatchesBrokenTypes: the exhaustive search finds a
// failing run of the broken set and of both broken counters at this
// small scope. A counter that keeps the last count it received converges
// once the final syncs have run, but on the way a reordered frame takes a
// member's count back: the invariant that counts never go back catches
// it (exploration has no crashes, which would reset a member's counts).
func TestExplorationCatchesBrokenTypes(t *testing.T) {
	counterScript := []proptest.Scripted{
		{Member: 0, Op: proptest.Op{Name: "inc", Key: "a", Arg: int64(2)}},
		{Member: 0, Op: proptest.Op{Name: "inc", Key: "a", Arg: int64(1)}},
		{Member: 1, Op: proptest.Op{Name: "dec", Key: "a", Arg: int64(1)}},
	}
	last := counterSpec(func(_, received int64) int64 { return received })
	last.Invariant = countsNeverGoBack
	for _, tc := range []struct {
		name   string
		spec   proptest.Spec
		script []proptest.Scripted
	}{
		{"set whose removes remove unseen adds", setSpec(true), setScript},
		{"counter that sums", counterSpec(func(held, received int64) int64 { return held + received }), counterScript},
		{"counter that keeps the last count", last, counterScript},
	} {
		runs, err := proptest.Exploration(tc.spec, tc.script, proptest.Explore{})
		if err == nil {
			t.Errorf("the exploration passed a %s (%d runs)", tc.name, runs)
			continue
		}
		t.Logf("%s: found in %d runs: %v", tc.name, runs, err)
	}
}

// countsNeverGoBack is an invariant over Counter states: no member's
// count of any slot ever decreases.
func countsNeverGoBack() func(map[string]any) error {
	seen := map[string]int64{} // member, side, key, slot -> count
	return func(states map[string]any) error {
		for member, st := range states {
			s := st.(CounterState)
			for i, side := range []map[string]map[string]int64{s.P, s.N} {
				for key, slots := range side {
					for slot, n := range slots {
						id := fmt.Sprint(member, i, key, slot)
						if n < seen[id] {
							return fmt.Errorf("%s's count of slot %s for %q went back from %d to %d", member, slot, key, seen[id], n)
						}
						seen[id] = n
					}
				}
			}
		}
		return nil
	}
}

// simConfig is the scale simulator's run for the examples: 30 nodes, 1%
// of frames lost and 1% duplicated, anti-entropy every 20 rounds, and a
// partition phase.
var simConfig = proptest.TypeSimConfig{Nodes: 30, Ops: 600, PerRound: 10, SyncEvery: 20, PartitionOps: 50, Seed: 1, Loss: 0.01, Dup: 0.01}

// TestSimulateTypes runs the scale simulator over both examples: their
// nodes agree, after the writes and after the partition, on a state
// their model accepts, and a configuration gives the same result every
// time.
func TestSimulateTypes(t *testing.T) {
	for name, spec := range map[string]proptest.Spec{
		"counter": {New: NewCounter, Ops: CounterOps(), Model: NewCounterModel},
		"set":     {New: NewSet, Ops: SetOps(), Model: NewSetModel},
	} {
		t.Run(name, func(t *testing.T) {
			first, err := proptest.SimulateType(spec, simConfig)
			if err != nil {
				t.Fatal(err)
			}
			again, err := proptest.SimulateType(spec, simConfig)
			if err != nil {
				t.Fatal(err)
			}
			if first != again {
				t.Fatalf("one configuration, two results: %+v and %+v", first, again)
			}
			if first.Frames == 0 || first.RepairRounds == 0 || first.RepairBytes == 0 {
				t.Fatalf("a run that sent nothing or repaired nothing: %+v", first)
			}
			t.Logf("%+v", first)
		})
	}
}

// TestSimulateTypeChecksItsConfig: a configuration it cannot run, or an
// incomplete Spec, is an error that says what is wrong, not a panic.
func TestSimulateTypeChecksItsConfig(t *testing.T) {
	counter := proptest.Spec{New: NewCounter, Ops: CounterOps(), Model: NewCounterModel}
	for name, tc := range map[string]struct {
		spec proptest.Spec
		cfg  proptest.TypeSimConfig
	}{
		"one node":     {counter, proptest.TypeSimConfig{Nodes: 1, Ops: 1, PerRound: 1}},
		"1,001 nodes":  {counter, proptest.TypeSimConfig{Nodes: 1001, Ops: 1, PerRound: 1}},
		"no operation": {counter, proptest.TypeSimConfig{Nodes: 2, PerRound: 1}},
		"all lost":     {counter, proptest.TypeSimConfig{Nodes: 2, Ops: 1, PerRound: 1, Loss: 1}},
		"no model":     {proptest.Spec{New: NewCounter, Ops: CounterOps()}, simConfig},
		"every operation weighs 0": {proptest.Spec{New: NewCounter, Ops: CounterOps(), Model: NewCounterModel,
			Weights: map[string]int{"inc": 0, "dec": 0, "read": 0}}, simConfig},
	} {
		if _, err := proptest.SimulateType(tc.spec, tc.cfg); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestSimulateTypeCatchesBrokenCounters: a counter that adds what it
// receives to what it holds (a duplicate or an exchange counts twice)
// fails in the simulator too: its nodes never agree, or agree on counts
// the model refuses.
func TestSimulateTypeCatchesBrokenCounters(t *testing.T) {
	cfg := simConfig
	cfg.MaxRounds = 500
	if res, err := proptest.SimulateType(counterSpec(func(held, received int64) int64 { return held + received }), cfg); err == nil {
		t.Fatalf("the simulator passed a counter that sums what it receives: %+v", res)
	} else {
		t.Log(err)
	}
}

// BenchmarkSimulateTypes prints what the scale simulator measures of both
// examples at 10, 100 and 300 nodes: 1,000 operations at 10 a round, 1%
// of frames lost and 1% duplicated, an exchange every 50 rounds, and 100
// operations during a partition. Its timings are the runs' (one each).
//
//	go test ./proptest/examples -run '^$' -bench SimulateTypes -benchtime 1x
func BenchmarkSimulateTypes(b *testing.B) {
	for b.Loop() {
		fmt.Println("| type | nodes | rounds | after the last operation | bytes sent | repair rounds | repair bytes | time |")
		fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, n := range []int{10, 100, 300} {
			for _, tc := range []struct {
				name string
				spec proptest.Spec
			}{
				{"counter", proptest.Spec{New: NewCounter, Ops: CounterOps(), Model: NewCounterModel}},
				{"set", proptest.Spec{New: NewSet, Ops: SetOps(), Model: NewSetModel}},
			} {
				cfg := proptest.TypeSimConfig{Nodes: n, Ops: 1000, PerRound: 10, SyncEvery: 50, PartitionOps: 100, Seed: 1, Loss: 0.01, Dup: 0.01}
				start := time.Now()
				r, err := proptest.SimulateType(tc.spec, cfg)
				if err != nil {
					b.Fatal(err)
				}
				fmt.Printf("| %s | %d | %d | %d | %d | %d | %d | %.2f s |\n", tc.name, n, r.OpRounds, r.DrainRounds, r.Bytes, r.RepairRounds, r.RepairBytes, time.Since(start).Seconds())
			}
		}
	}
}

// TestSpecIsValidated: a Spec or exploration bounds that make no sense are
// refused with an error naming them; each panicked inside rapid or in
// Exploration (found by review).
func TestSpecIsValidated(t *testing.T) {
	silent := counterSpec(nil)
	silent.Weights = map[string]int{}
	for _, o := range silent.Ops {
		silent.Weights[o.Name] = 0
	}
	for _, a := range proptest.TypeActions() {
		silent.Weights[a] = 0
	}
	negative := counterSpec(nil)
	negative.MinNodes, negative.MaxNodes = -2, 2
	for name, tc := range map[string]struct {
		spec proptest.Spec
		want string
	}{
		"every weight 0":    {silent, "weight 0"},
		"negative MinNodes": {negative, "MinNodes -2"},
	} {
		failure := proptest.Counterexample(t, proptest.TypeProperty(tc.spec))
		if !strings.Contains(failure, "proptest: ") || !strings.Contains(failure, tc.want) {
			t.Errorf("%s: %q, want a proptest error naming %s", name, failure, tc.want)
		}
	}
	if _, err := proptest.Exploration(counterSpec(nil), nil, proptest.Explore{Members: -1}); err == nil || !strings.Contains(err.Error(), "Members") {
		t.Errorf("Exploration with Members -1: %v, want an error naming Members", err)
	}
}

// zeroReadCounter is a PN-counter whose read always answers 0: every
// value it serves is wrong once anything was counted.
type zeroReadCounter struct{ *Counter }

func (c zeroReadCounter) Do(op proptest.Op) (any, []transport.Envelope) {
	if op.Name == "read" {
		return int64(0), nil
	}
	return c.Counter.Do(op)
}

func zeroReadSpec() proptest.Spec {
	return proptest.Spec{
		New: func(name string, inc int, _ func() int64) (proptest.Object, error) {
			return zeroReadCounter{newCounter(name, inc, larger)}, nil
		},
		Ops: CounterOps(), Model: NewCounterModel,
	}
}

// TestCounterWhoseReadIsAlwaysZeroIsCaught: the counter's model judges
// reads by what the member surely holds; it judged none, and this counter
// passed (found by review).
func TestCounterWhoseReadIsAlwaysZeroIsCaught(t *testing.T) {
	if !fails(t, proptest.TypeProperty(zeroReadSpec())) {
		t.Error("CheckType passed a counter whose read always returns 0")
	}
	script := []proptest.Scripted{
		{Member: 0, Op: proptest.Op{Name: "inc", Key: "a", Arg: int64(5)}},
		{Member: 0, Op: proptest.Op{Name: "read", Key: "a"}},
	}
	if n, err := proptest.Exploration(zeroReadSpec(), script, proptest.Explore{}); err == nil {
		t.Errorf("ExploreType passed a counter whose read returns 0 right after its own inc 5 (%d runs)", n)
	}
}

// containsIgnoresRemoves is an add-wins set whose contains ignores
// removes: a key once added is in the set forever.
type containsIgnoresRemoves struct{ *Set }

func (s containsIgnoresRemoves) Do(op proptest.Op) (any, []transport.Envelope) {
	if op.Name == "contains" {
		return len(s.state.Tags[op.Key]) > 0, nil
	}
	return s.Set.Do(op)
}

// TestSetWhoseContainsIgnoresRemovesIsCaught: a set whose removes never
// take effect on reads passed both searches (found by review): the set's
// model takes a key in the set only by an add the member's removes have
// not seen.
func TestSetWhoseContainsIgnoresRemovesIsCaught(t *testing.T) {
	spec := proptest.Spec{
		New: func(name string, inc int, _ func() int64) (proptest.Object, error) {
			return containsIgnoresRemoves{newSet(name, inc)}, nil
		},
		Ops: SetOps(), Model: NewSetModel,
	}
	if !fails(t, proptest.TypeProperty(spec)) {
		t.Error("CheckType passed a set whose contains ignores every remove")
	}
	script := []proptest.Scripted{
		{Member: 0, Op: proptest.Op{Name: "add", Key: "a"}},
		{Member: 0, Op: proptest.Op{Name: "remove", Key: "a"}},
		{Member: 0, Op: proptest.Op{Name: "contains", Key: "a"}},
	}
	if n, err := proptest.Exploration(spec, script, proptest.Explore{}); err == nil {
		t.Errorf("ExploreType passed: a member adds a, removes a, and contains a is true (%d runs)", n)
	}
}

// reusedTagSet is an OR-set whose add makes one tag per member and key
// rather than one per add: an add after a remove of the key (its own or
// one concurrent, received) reuses a removed tag and is lost.
type reusedTagSet struct{ *Set }

func (s reusedTagSet) Do(op proptest.Op) (any, []transport.Envelope) {
	if op.Name == "add" {
		tag := fmt.Sprintf("%s.%s", s.prefix, op.Key)
		s.merge(setMessage{Tags: map[string][]string{op.Key: {tag}}})
		return tag, s.broadcast(setMessage{Tags: map[string][]string{op.Key: {tag}}})
	}
	return s.Set.Do(op)
}

func reusedTagSpec() proptest.Spec {
	return proptest.Spec{
		New: func(name string, inc int, _ func() int64) (proptest.Object, error) {
			return reusedTagSet{newSet(name, inc)}, nil
		},
		Ops: SetOps(), Model: NewSetModel,
	}
}

// TestSetThatLosesReAddsIsCaught: a set that loses every add after a
// remove passed both searches: the model trusted the tag an add returns
// to be new (found by review).
func TestSetThatLosesReAddsIsCaught(t *testing.T) {
	if !fails(t, proptest.TypeProperty(reusedTagSpec())) {
		t.Error("CheckType passed an OR-set whose adds after a remove are lost")
	}
	script := []proptest.Scripted{
		{Member: 0, Op: proptest.Op{Name: "add", Key: "a"}},
		{Member: 0, Op: proptest.Op{Name: "remove", Key: "a"}},
		{Member: 0, Op: proptest.Op{Name: "add", Key: "a"}},
		{Member: 0, Op: proptest.Op{Name: "contains", Key: "a"}},
	}
	// Directly: the re-add is lost on the member that made it.
	s := reusedTagSet{newSet("n0", 0)}
	for _, st := range script[:3] {
		s.Do(st.Op)
	}
	if has, _ := s.Do(script[3].Op); has != false {
		t.Fatalf("the broken set is not broken: %v", has)
	}
	if n, err := proptest.Exploration(reusedTagSpec(), script, proptest.Explore{}); err == nil {
		t.Errorf("ExploreType passed: add a, remove a, add a, then contains a is false on the same member (%d runs)", n)
	}
}

// fails reports whether the harness finds a counterexample to prop, as a
// researcher's test of a broken variant would ask (proptest.Counterexample).
func fails(t *testing.T, prop func(*rapid.T)) bool {
	t.Helper()
	return proptest.Counterexample(t, prop) != ""
}

// TestLossAndDuplicationAreRatesOfASpec: a Spec's Loss and Duplication are
// the shares of the frames delivered that are lost and doubled, as a
// Config's are, and counted in Coverage.Fates. A fate drawn from rapid
// per frame, biased towards the ends of its range, lost two thirds of the
// frames at a Loss of 0.05, and Fates stayed zero (found by review).
func TestLossAndDuplicationAreRatesOfASpec(t *testing.T) {
	cov := &proptest.Coverage{}
	spec := counterSpec(larger)
	spec.Loss, spec.Duplication, spec.Coverage = 0.3, 0.2, cov
	spec.Weights = map[string]int{"deliver": 8, "inc": 8, "dec": 8, "read": 1, "drop": 0, "duplicate": 0, "crash": 0, "partition": 0}
	setFlags(t, "rapid.seed", "1", "rapid.checks", "200") // a sample the same on every run
	rapid.Check(t, proptest.TypeProperty(spec))
	n := cov.Fates[0] + cov.Fates[1] + cov.Fates[2]
	if n < 400 {
		t.Fatalf("%d frames given a fate: too few to tell (%v)", n, cov)
	}
	// Four standard deviations at 400 frames.
	for i, want := range map[int]float64{1: 0.3, 2: 0.2} {
		if got := float64(cov.Fates[i]) / float64(n); got < want-0.09 || got > want+0.09 {
			t.Errorf("%s %.3f of %d frames, want %.1f: %v", []string{"", "lost", "doubled"}[i], got, n, want, cov)
		}
	}
}

// TestOperationsOfEqualWeightAreDrawnInTheirOrder: of operations of equal
// weight, the first declared is drawn most (rapid draws the first of a
// list most); they were sorted by name, and a register declared {put,
// get} mostly read (found by review).
func TestOperationsOfEqualWeightAreDrawnInTheirOrder(t *testing.T) {
	cov := &proptest.Coverage{}
	spec := counterSpec(larger)
	spec.Ops = []proptest.OpKind{CounterOps()[2], CounterOps()[0], CounterOps()[1]} // read, inc, dec
	spec.Coverage = cov
	setFlags(t, "rapid.seed", "1", "rapid.checks", "200") // a sample the same on every run
	rapid.Check(t, proptest.TypeProperty(spec))
	if a := cov.Actions; !(a["read"] > a["inc"] && a["inc"] > a["dec"]) {
		t.Fatalf("read %d, inc %d, dec %d times: want the order declared", a["read"], a["inc"], a["dec"])
	}
}

// strayCounter sends its increments to a member that is not in the run
// as well.
type strayCounter struct{ *Counter }

func (c strayCounter) Do(op proptest.Op) (any, []transport.Envelope) {
	v, out := c.Counter.Do(op)
	if len(out) > 0 {
		out = append(out, transport.Envelope{To: "nowhere", Payload: out[0].Payload})
	}
	return v, out
}

// TestAFrameToNoMemberFails: a replica that sends a frame to a name no
// member of the run has fails the run, saying so; it was lost without a
// word, traced as a frame to a member down (found by review).
func TestAFrameToNoMemberFails(t *testing.T) {
	spec := counterSpec(larger)
	spec.New = func(name string, inc int, _ func() int64) (proptest.Object, error) {
		return strayCounter{newCounter(name, inc, larger)}, nil
	}
	if got := proptest.Counterexample(t, proptest.TypeProperty(spec)); !strings.Contains(got, `frame to "nowhere", which is no member`) {
		t.Fatalf("a frame to no member: %q", got)
	}
}
