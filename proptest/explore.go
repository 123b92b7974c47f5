package proptest

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/sim"
)

// A Scripted operation is one step of the script ExploreType runs: an
// operation on member Member (0 to Explore.Members-1).
type Scripted struct {
	Member int
	Op     Op
}

// Explore bounds an exhaustive exploration (see ExploreType).
type Explore struct {
	// Members is the number of members. Default: 2; at most 100.
	Members int
	// MaxLoss and MaxDuplicate bound how many frames a run may lose and
	// duplicate. Default: 1 each; -1 for none.
	MaxLoss, MaxDuplicate int
	// MaxTicks bounds how many times time passes in a run before its end
	// (a second: every member's Tick runs, and what it sends joins the
	// frames in flight), at any point: without, the frames a data type
	// sends from Tick (a batching one's) are never delivered late, lost
	// or duplicated (a counter that counts a duplicated delta twice,
	// sending from Tick alone, passed: found by review). Default: 1, which
	// multiplies a search's runs by about the length of a run (41,160 to
	// 409,920 for the examples' four operations); -1 for none, for a data
	// type that sends nothing from Tick but what the end's exchanges
	// cover.
	MaxTicks int
	// MaxRuns stops the search after that many runs, failing the test
	// (the scope is then too large to be exhaustive). Default: 1,000,000.
	MaxRuns int
	// SameOutcome checks that every run converges to the same state
	// (reflect.DeepEqual), for a data type whose operations are blind:
	// each one's effect does not depend on the state it runs on (a
	// counter's increment, a grow-only set's add, a join with the
	// operation's argument). Every run then applies the same effects,
	// and a convergent type converges to their join, whatever the order
	// its members merged them in. Without it, a merge that is
	// commutative and idempotent but not associative (a rock, paper,
	// scissors register) passes, each run converging, to different
	// states (found by review). It is not for a type whose operations
	// read the state or a clock (an add-wins set's remove, which removes
	// the adds it saw; a register stamped by a hybrid logical clock):
	// their effects differ with what each operation saw, and so do a
	// correct type's converged states (found by review of it).
	SameOutcome bool
}

// ExploreType checks the data type of spec on every run a small scope
// allows, rather than on random ones: each member performs its
// operations of script in the script's order, and the runs differ in how
// those interleave with each other and with every delivery of every
// frame in flight, up to MaxLoss frames lost and MaxDuplicate delivered
// twice, in every order. Each run ends as a CheckType run does (every
// pair syncs until nothing changes; equal states; the model's Check),
// and the model judges every operation's result on the way. A failure
// shows the run's events in order. It returns the number of runs.
//
// The search re-runs the script from the start for every run (the
// replicas need not be copied), so its cost is the number of runs times
// their length: a handful of operations on two members is thousands of
// runs; more grows fast.
func ExploreType(t *testing.T, spec Spec, script []Scripted, bounds Explore) int {
	t.Helper()
	runs, err := Exploration(spec, script, bounds)
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// Exploration is ExploreType without a test: it returns the number of
// runs, and the first failing run's error with its events.
func Exploration(spec Spec, script []Scripted, bounds Explore) (int, error) {
	if err := spec.fill(); err != nil {
		return 0, err
	}
	if bounds.Members == 0 {
		bounds.Members = 2
	}
	if bounds.Members < 1 || bounds.Members > maxMembers || bounds.MaxLoss < -1 || bounds.MaxDuplicate < -1 || bounds.MaxTicks < -1 || bounds.MaxRuns < 0 {
		return 0, fmt.Errorf("proptest: Explore %+v: want Members 1 to %d, MaxLoss, MaxDuplicate and MaxTicks -1 or more, MaxRuns 0 or more", bounds, maxMembers)
	}

	if bounds.MaxLoss == 0 {
		bounds.MaxLoss = 1
	}
	if bounds.MaxDuplicate == 0 {
		bounds.MaxDuplicate = 1
	}
	if bounds.MaxTicks == 0 {
		bounds.MaxTicks = 1
	}
	if bounds.MaxRuns == 0 {
		bounds.MaxRuns = 1_000_000
	}
	for _, s := range script {
		if s.Member < 0 || s.Member >= bounds.Members {
			return 0, fmt.Errorf("proptest: script step %v on member %d of %d", s.Op, s.Member, bounds.Members)
		}
		// An operation the spec does not name reached its object, which
		// may panic on it (found by review).
		if !slices.ContainsFunc(spec.Ops, func(k OpKind) bool { return k.Name == s.Op.Name }) {
			return 0, fmt.Errorf("proptest: script step %v: the spec has no operation %q", s.Op, s.Op.Name)
		}
	}
	var path choices
	var first any // the first run's converged state, with SameOutcome
	var firstTrace []string
	for runs := 1; ; runs++ {
		if runs > bounds.MaxRuns {
			return runs - 1, fmt.Errorf("proptest: more than %d runs: the scope is too large to explore", bounds.MaxRuns)
		}
		trace, final, err := exploreRun(spec, script, bounds, &path)
		if err != nil {
			return runs, fmt.Errorf("run %d: %w\nevents:\n  %s", runs, err, strings.Join(trace, "\n  "))
		}
		switch {
		case !bounds.SameOutcome:
		case runs == 1:
			first, firstTrace = final, trace
		case !reflect.DeepEqual(final, first):
			return runs, fmt.Errorf("run %d converged to %v, run 1 to %v: the state depends on the order of the merges (is the merge associative and commutative?)\nevents of run %d:\n  %s\nevents of run 1:\n  %s",
				runs, shown(final), shown(first), runs, strings.Join(trace, "\n  "), strings.Join(firstTrace, "\n  "))
		}
		if !path.next() {
			return runs, nil
		}
	}
}

// choices enumerates the runs as an odometer: each run makes its
// decisions from taken (the decision's index, 0 when past its end) and
// records how many options each had; next advances the last decision
// that has an option left and drops those after it.
type choices struct {
	taken, options []int
	sigs           []uint64 // what the options were, to tell a replay that went another way
	at             int
}

// errNondeterministic: a run replayed along the same decisions offered
// other options than it had.
// strayFrame is a frame a member sent to a name no member of the run has:
// the run fails (a typo's frames were lost without a word, found by
// review).
type strayFrame struct{ from, to string }

func (e strayFrame) Error() string {
	return fmt.Sprintf("%s sent a frame to %q, which is no member of the run", e.from, e.to)
}

var errNondeterministic = errors.New("proptest: the run went another way on the same decisions: the objects are not deterministic (frames sent in a map's order?); exploring needs the same outputs for the same inputs")

// choose returns the option to take among n, whose signature is sig, or
// an error if a replay meets options other than the run it replays.
func (c *choices) choose(n int, sig uint64) (int, error) {
	if c.at == len(c.taken) {
		c.taken = append(c.taken, 0)
		c.options = append(c.options, n)
		c.sigs = append(c.sigs, sig)
	} else if c.options[c.at] != n || c.sigs[c.at] != sig {
		// A replay that went another way: unnoticed, it panicked on an
		// index past the options, or explored some orders twice and
		// others never (found by review).
		return 0, errNondeterministic
	}
	i := c.taken[c.at]
	c.at++
	return i, nil
}

func (c *choices) next() bool {
	c.at = 0
	for k := len(c.taken) - 1; k >= 0; k-- {
		if c.taken[k]+1 < c.options[k] {
			c.taken[k]++
			c.taken, c.options, c.sigs = c.taken[:k+1], c.options[:k+1], c.sigs[:k+1]
			return true
		}
	}
	return false
}

// exploreRun runs the script once along the decisions of path. A panic
// of the data type's code is the run's failure, with its events so far
// (it ended the test binary: found by review).
func exploreRun(spec Spec, script []Scripted, b Explore, path *choices) (trace []string, final any, err error) {
	defer func() {
		if p := recover(); p != nil {
			if e, ok := p.(strayFrame); ok {
				err = e
				return
			}
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	now := start
	net := sim.New()
	model := spec.Model()
	if model == nil {
		return nil, nil, errNilModel
	}
	objs := make([]Object, b.Members)
	names := make([]string, b.Members)
	for i := range objs {
		names[i] = fmt.Sprintf("n%d", i)
		if objs[i], err = spec.newObject(names[i], 0, func() int64 { return now }); err != nil {
			return nil, nil, err
		}
	}
	for _, o := range objs {
		o.SetMembers(names)
	}
	index := map[string]int{}
	for i, n := range names {
		index[n] = i
	}
	describe := func(p sim.Packet) string {
		s := fmt.Sprintf("frame #%d %s -> %s", p.ID, p.From, p.To)
		if spec.Describe != nil {
			if d := spec.Describe(p.Payload); d != "" {
				s += ": " + d
			}
		}
		return s
	}
	deliver := func(p sim.Packet) {
		to, ok := index[p.To]
		if !ok { // addressed to no member: the run fails, as under CheckType
			panic(strayFrame{p.From, p.To})
		}
		net.Send(p.To, objs[to].Receive(p.Sender(), bytes.Clone(p.Payload))) // its own bytes, as under CheckType
	}
	var check func(map[string]any) error
	if spec.Invariant != nil {
		check = spec.Invariant()
	}
	invariant := func() error {
		if check == nil {
			return nil
		}
		m := map[string]any{}
		for i, o := range objs {
			m[names[i]] = o.State()
		}
		if err := check(m); err != nil {
			return fmt.Errorf("invariant: %w", err)
		}
		return nil
	}
	next := make([]int, b.Members) // per member: its next step in script
	pending := func(m int) (Scripted, bool) {
		for i := next[m]; i < len(script); i++ {
			if script[i].Member == m {
				return script[i], true
			}
		}
		return Scripted{}, false
	}
	lost, doubled, ticked := 0, 0, 0
	for steps := 0; ; steps++ {
		if steps == budget {
			// A type that answers every frame never ran out of options:
			// the run went on, its trace and path growing, for good
			// (found by review). Its events are cut to both ends.
			trace = append(append(trace[:20:20], "..."), trace[len(trace)-20:]...)
			return trace, nil, fmt.Errorf("%w: still busy after %d steps of one run", ErrLivelock, budget)
		}
		// The options: each member's next operation, time passing, then
		// each frame in flight delivered, lost or duplicated.
		type option struct {
			member, packet int
			what           string
		}
		var opts []option
		for m := range objs {
			if _, ok := pending(m); ok {
				opts = append(opts, option{member: m, what: "op"})
			}
		}
		if ticked < b.MaxTicks {
			opts = append(opts, option{member: -1, what: "tick"})
		}
		for p := range net.Len() {
			opts = append(opts, option{member: -1, packet: p, what: "deliver"})
			if lost < b.MaxLoss {
				opts = append(opts, option{member: -1, packet: p, what: "lose"})
			}
			if doubled < b.MaxDuplicate {
				opts = append(opts, option{member: -1, packet: p, what: "duplicate"})
			}
		}
		if len(opts) == 0 {
			if path.at < len(path.taken) { // a replay that ended where its run went on
				return trace, nil, errNondeterministic
			}
			break
		}
		// The options are the members with an operation left and the
		// frames in flight, as they are: what a receiver is handed, its
		// sender (none for an anonymous frame) included (found by review).
		sig := fnv.New64a()
		for _, o := range opts {
			if o.what == "op" || o.what == "tick" {
				fmt.Fprint(sig, o.what, o.member, ";")
			}
		}
		for _, p := range net.InFlight() {
			fmt.Fprintf(sig, "%q>%q %d %v %d:", p.From, p.To, p.Kind, p.Anonymous, len(p.Payload))
			sig.Write(p.Payload)
		}
		k, err := path.choose(len(opts), sig.Sum64())
		if err != nil {
			return trace, nil, err
		}
		o := opts[k]
		switch o.what {
		case "op":
			s, _ := pending(o.member)
			for i := next[o.member]; i < len(script); i++ {
				if script[i].Member == o.member {
					next[o.member] = i + 1
					break
				}
			}
			result, out, err := perform(model, objs[o.member], names[o.member], 0, s.Op)
			trace = append(trace, fmt.Sprintf("%s: %v -> %v", names[o.member], s.Op, result))
			if err != nil {
				return trace, nil, err
			}
			net.Send(names[o.member], out)
		case "tick":
			now += int64(time.Second)
			ticked++
			trace = append(trace, "a second passes: every member ticks")
			for i, o := range objs {
				net.Send(names[i], o.Tick())
			}
		case "deliver":
			p, _, _ := net.Take(o.packet)
			trace = append(trace, "deliver "+describe(p))
			deliver(p)
		case "lose":
			trace = append(trace, "lose "+describe(net.InFlight()[o.packet]))
			net.Drop(o.packet)
			lost++
		case "duplicate":
			trace = append(trace, "duplicate "+describe(net.InFlight()[o.packet]))
			net.Duplicate(o.packet)
			doubled++
		}
		if b := net.Bytes(); b > maxTypeInFlight {
			return trace, nil, fmt.Errorf("%w: %d B in flight, more than %d", ErrLivelock, b, maxTypeInFlight)
		}
		if err := invariant(); err != nil {
			return trace, nil, err
		}
	}
	trace = append(trace, "the end: every pair syncs until nothing changes")
	now += int64(time.Second)
	for i, o := range objs {
		net.Send(names[i], o.Tick())
	}
	drain := func() error {
		for n := 0; net.Len() > 0; n++ {
			if n == budget {
				return fmt.Errorf("%w: still busy after %d deliveries", ErrLivelock, budget)
			}
			p, _, _ := net.Take(0)
			deliver(p)
			if b := net.Bytes(); b > maxTypeInFlight {
				return fmt.Errorf("%w: %d B in flight, more than %d", ErrLivelock, b, maxTypeInFlight)
			}
		}
		return nil
	}
	states := func() []any {
		s := make([]any, len(objs))
		for i, o := range objs {
			s[i] = o.State()
		}
		return s
	}
	var before []any
	for round := 0; ; round++ {
		if round == 8 {
			return trace, nil, fmt.Errorf("%w after 8 rounds: the states before the last were %v, after it %v", ErrNoFixpoint, shown(before), shown(states()))
		}
		before = states()
		for i, a := range objs {
			for j := range objs {
				if i != j {
					net.Send(names[i], a.Sync(names[j]))
					if err := drain(); err != nil {
						return trace, nil, err
					}
				}
			}
		}
		if reflect.DeepEqual(before, states()) {
			break
		}
	}
	ends := states()
	for i := 1; i < len(ends); i++ {
		if !reflect.DeepEqual(ends[i], ends[0]) {
			return trace, nil, fmt.Errorf("not converged: %s holds %v, %s holds %v", names[i], shown(ends[i]), names[0], shown(ends[0]))
		}
	}
	if err := model.Check(ends[0]); err != nil {
		return trace, nil, fmt.Errorf("converged to %v: %w", shown(ends[0]), err)
	}
	if err := invariant(); err != nil {
		return trace, nil, err
	}
	return trace, ends[0], nil
}
