package proptest

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/sim"
	"github.com/bcache-go/bcache/transport/wire"
	"pgregory.net/rapid"
)

// Config shapes a harness run. The zero Config runs the replica bcache
// ships ([StoreReplica] with [DefaultStoreConfig]) on 2 to 4 members and
// the keys of [DefaultKeys].
type Config struct {
	// Factory builds the replicas under test; nil selects bcache's own.
	Factory Factory
	// MinNodes and MaxNodes bound the cluster size drawn per run; members
	// join up to MaxNodes. At most 100: for scale, Simulate.
	MinNodes, MaxNodes int
	// Keys is the alphabet keys are drawn from; keep it small so that
	// writes conflict. Default: DefaultKeys(). bcache's store (a
	// StoreReplica) takes keys of up to 64 KiB, as a Cache does: a
	// longer one fails the run.
	Keys []string
	// Horizon is the replicas' GC horizon: long absences last longer, and
	// TTLs are drawn up to twice as long. Default: bcache's store's with
	// no Factory, else one minute (a Factory's replicas must then use
	// the same). The model judges losses and late deliveries by it: a
	// run whose Factory builds bcache's replicas (MapReplica,
	// StoreReplica) with another horizon fails at once, saying so.
	Horizon time.Duration
	// MaxSkew bounds how far a member's clock is set from the others.
	// Default: 5 s.
	MaxSkew time.Duration
	// MaxDrift is the replicas' MaxClockDrift: how far ahead of a member's
	// clock a timestamp it accepts may be. Default:
	// crdt.DefaultMaxClockDrift.
	MaxDrift time.Duration
	// FailedTimeout is how long the replicas wait for a member that left
	// their view without saying so before they stop counting it for early
	// collection (transport.Config.FailedTimeout): what an incarnation
	// missing from some view for longer wrote may be rejected, and so
	// lost, at any age. Default: Horizon, as bcache runs it.
	FailedTimeout time.Duration
	// LateFrames is how long after an incarnation ended (a leave, a
	// restart in place, or a crash once a restart took its name: until
	// then the members count it failed, for FailedTimeout, and every
	// frame of it must be kept) a frame it sent, still in flight, must
	// be kept by the live member it reaches: a write only that
	// incarnation held, delivered later, may be refused, and lost (the
	// harness's network holds a frame for as long as the draws say).
	// Default: 20 s: a production node keeps counting an incarnation for
	// transport.Config.EndedFor (30 s) after it learns of its end, which
	// is no sooner than the end, less twice MaxSkew for the clocks its
	// bound is read on.
	LateFrames time.Duration
	// MayDrop says the replicas may lose live writes of any age (for
	// example under a bound on dead records, package lww rule 7): the
	// harness then checks everything but that no write is lost.
	MayDrop bool
	// Disable names actions to leave out (see Actions).
	Disable []string
	// Weights sets how often actions are drawn relative to each other
	// (see Actions for the names): an action not named weighs 1 (but
	// "bounce", a restart in place, which weighs 0 unless named), and 0
	// leaves it out as Disable does. Default: DefaultWeights(). The
	// heavier actions come first in the draw, which rapid biases towards
	// the first and shrinks towards.
	Weights map[string]int
	// Loss and Duplication, from 0 to 1, are the shares of the frames the
	// deliver and deliver-all actions take from the network that are lost
	// instead, or delivered twice: each frame's fate is drawn from a
	// generator of the run's own, seeded by one rapid draw (a fate drawn
	// from rapid itself, which biases its draws towards the ends of their
	// ranges, lost most frames at any Loss above 0 and doubled few: found
	// by review). The end of a run, which checks convergence, delivers
	// everything. These come on top of the drop and duplicate actions,
	// which pick one frame each.
	Loss, Duplication float64
	// Coverage, if set, accumulates what the runs did: actions run by
	// name, frames, convergence rounds. Check prints it at the end (go
	// test -v shows it), so that a shallow run is visible.
	Coverage *Coverage
	// Describe summarizes a frame's payload for the run's trace (see
	// DescribeFrame, the default, for bcache's frames); "" leaves it at
	// kind and size.
	Describe func(payload []byte) string
	// TraceFile, if set, receives the trace of a failing run, one event a
	// line, and the failure: after shrinking, the counterexample's. The
	// events are those rapid logs, formatted as it logs them (the
	// counterexample it replays to the test's log at the end); a passing
	// run formats none.
	TraceFile string
	// OneWaySessions says a replica's anti-entropy session repairs one
	// side only (a pull, say). Without it, the end of every run checks
	// that one session between two members, once the network is quiet,
	// leaves both holding the same records (see Replica), and every
	// check that a member's first sync holds what its peer held (see
	// Noder): one side of a one-way session holds nothing more for it.
	OneWaySessions bool
}

// Actions returns the names of every action the harness draws from,
// sorted: the names Config.Disable takes.
func Actions() []string {
	names := slices.Collect(maps.Keys((&harness{}).actions()))
	slices.Sort(names)
	return names
}

// adversarial are the actions of the adversary (see adversary.go); with
// all of them disabled, it is not in the cluster at all.
var adversarial = []string{"forge", "attack", "capture", "replay"}

// DefaultMapConfig is the configuration of bcache's replica under the
// harness: the production protocol timings, with a small digest and a
// one-minute horizon so that runs exercise collection, small repair steps
// so that sessions take several, a broadcast fan-out of 2 so that
// clusters of 4 relay deltas while smaller ones send them directly, and
// the stable margin and failed timeout of DefaultStoreConfig.
func DefaultMapConfig() MapConfig {
	return MapConfig{
		Map: lww.Config{DigestBits: 8, Horizon: time.Minute},
		Transport: transport.Config{
			LeavesPerStep: 4, MaxRepairBytes: 512, Fanout: 2,
			StableMargin: 11 * time.Second, FailedTimeout: time.Minute,
		},
	}
}

func (cfg *Config) fill() {
	if cfg.Factory == nil {
		// The default store runs the horizon the model checks against: a
		// Horizon given with no Factory judged a one-minute store by
		// another horizon (found by review).
		store := DefaultStoreConfig()
		if cfg.Horizon > 0 {
			store.Horizon = cfg.Horizon
		}
		cfg.Factory = StoreFactory(store)
		if cfg.Horizon == 0 {
			cfg.Horizon = store.Horizon
		}
	}
	if cfg.Weights == nil {
		cfg.Weights = DefaultWeights()
	}
	if cfg.Describe == nil {
		cfg.Describe = DescribeFrame
	}
	if cfg.MinNodes == 0 {
		cfg.MinNodes = 2
	}
	if cfg.MaxNodes == 0 {
		cfg.MaxNodes = max(4, cfg.MinNodes)
	}
	if len(cfg.Keys) == 0 {
		cfg.Keys = DefaultKeys()
	}
	if cfg.Horizon == 0 {
		cfg.Horizon = time.Minute
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = 5 * time.Second
	}
	if cfg.MaxDrift == 0 {
		cfg.MaxDrift = crdt.DefaultMaxClockDrift
	}
	if cfg.FailedTimeout == 0 {
		cfg.FailedTimeout = cfg.Horizon
	}
	if cfg.LateFrames == 0 {
		cfg.LateFrames = 20 * time.Second
	}
}

// Check runs the harness as a rapid property test: rapid's flags
// (-rapid.checks, -rapid.steps, -rapid.seed) apply.
func Check(t *testing.T, cfg Config) {
	t.Helper()
	if cfg.Coverage == nil {
		cfg.Coverage = &Coverage{}
	}
	rapid.Check(t, Property(cfg))
	t.Log(cfg.Coverage)
}

// Property returns the harness as a rapid property, to run with rapid.Check
// or to combine with other properties.
func Property(cfg Config) func(*rapid.T) {
	cfg.fill()
	err := cfg.validate()
	return func(t *rapid.T) {
		if err != nil {
			t.Fatal(err)
		}
		passed := false
		defer traceTo(t, cfg.TraceFile, &passed)()
		h := newHarness(t, cfg)
		if cfg.Loss > 0 || cfg.Duplication > 0 {
			// The frames' fates come from a generator of the run's own,
			// seeded by one draw: rapid biases its draws towards the ends
			// of their ranges, and a fate drawn from it per frame lost most
			// frames at any Loss and doubled few at any Duplication (found
			// by review). A run replays from its seed as any; shrinking
			// moves the seed, not the fates one by one.
			seed := rapid.Uint64().Draw(t, "fates")
			h.fates = rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
		}
		h.traced(t)
		if c := cfg.Coverage; c != nil {
			c.Runs++
			c.cluster = true
			if c.Actions == nil {
				c.Actions = map[string]int{}
			}
		}
		var weighted []string // each action's name, as often as its weight
		actions := map[string]func(*rapid.T){"": h.check}
		for name, act := range h.actions() {
			w := cfg.weight(name)
			if w == 0 {
				continue
			}
			actions[name] = func(t *rapid.T) {
				act(t) // a skipped action does not return
				if cfg.Coverage != nil {
					cfg.Coverage.Actions[name]++
				}
			}
			for range w {
				weighted = append(weighted, name)
			}
		}
		if !h.adversaryOff() {
			h.adv = newAdversary(h)
		}
		slices.SortFunc(weighted, func(a, b string) int { // heaviest first, then by name
			return cmp.Or(cfg.weight(b)-cfg.weight(a), strings.Compare(a, b))
		})
		pick := rapid.SampledFrom(weighted)
		t.Repeat(map[string]func(*rapid.T){"": h.check, "step": func(t *rapid.T) {
			actions[pick.Draw(t, "action")](t)
		}})
		h.converge(t)
		passed = true
	}
}

// DefaultWeights returns the weights the harness draws actions with by
// default: writes, reads, time and deliveries several times as often as
// each fault, so that a run of rapid's default 30 or so steps writes
// several times, and faults still come in every run.
func DefaultWeights() map[string]int {
	return map[string]int{"set": 4, "delete": 2, "get": 2, "fill": 2, "tick": 3, "deliver": 3, "deliver all": 2, "stall": 0, "stall past deletes": 0, "slow fill": 0}
}

// maxWeight bounds a weight: each run builds its draw with every action
// as many times as its weight, and the simulator of a Spec its
// operations so, once (weights of millions took seconds and hundreds of
// megabytes a run: found by review).
const maxWeight = 10_000

// validate checks the action names and rates.
func (cfg *Config) validate() error {
	known := Actions()
	for _, name := range cfg.Disable {
		if !slices.Contains(known, name) {
			return fmt.Errorf("proptest: Disable names %q, which is no action (see Actions)", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Weights)) {
		w := cfg.Weights[name]
		if !slices.Contains(known, name) {
			return fmt.Errorf("proptest: Weights names %q, which is no action (see Actions)", name)
		}
		if w < 0 || w > maxWeight {
			return fmt.Errorf("proptest: weight %d for %q, want 0 to %d (weights are ratios: the draw holds each action as many times as its weight)", w, name, maxWeight)
		}
	}
	if !(cfg.Loss >= 0 && cfg.Duplication >= 0 && cfg.Loss+cfg.Duplication <= 1) {
		return fmt.Errorf("proptest: Loss %v and Duplication %v, want each from 0 and their sum at most 1", cfg.Loss, cfg.Duplication)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Horizon", cfg.Horizon}, {"MaxSkew", cfg.MaxSkew}, {"MaxDrift", cfg.MaxDrift}, {"FailedTimeout", cfg.FailedTimeout}, {"LateFrames", cfg.LateFrames}} {
		if d.v < 0 {
			return fmt.Errorf("proptest: %s %v, want 0 (the default) or more", d.name, d.v)
		}
	}
	// The model excuses the loss of a write at least a horizon old, less
	// the drift and skew a watermark may come within: with no room left,
	// it would excuse every loss (found by review).
	if int64(cfg.Horizon) <= crdt.AddSat(int64(cfg.MaxDrift), crdt.AddSat(int64(cfg.MaxSkew), int64(cfg.MaxSkew))) { // saturated: a huge MaxSkew wrapped the sum below Horizon, and passed
		return fmt.Errorf("proptest: Horizon %v must be longer than MaxDrift %v and twice MaxSkew %v: the model could tell no loss from one the rules allow", cfg.Horizon, cfg.MaxDrift, cfg.MaxSkew)
	}
	if cfg.MinNodes < 1 || cfg.MaxNodes < cfg.MinNodes || cfg.MaxNodes > maxMembers {
		return fmt.Errorf("proptest: MinNodes %d and MaxNodes %d, want 1 <= MinNodes <= MaxNodes <= %d (Simulate runs a cluster at scale)", cfg.MinNodes, cfg.MaxNodes, maxMembers)
	}
	if !slices.ContainsFunc(Actions(), func(name string) bool { return cfg.weight(name) > 0 }) {
		return fmt.Errorf("proptest: every action has weight 0 or is disabled: a run would do nothing")
	}
	return nil
}

// weight returns how many times name is in the draw: 0 if disabled.
func (cfg *Config) weight(name string) int {
	if slices.Contains(cfg.Disable, name) {
		return 0
	}
	if w, ok := cfg.Weights[name]; ok {
		return w
	}
	if slices.Contains(optIn, name) {
		return 0
	}
	return 1
}

// optIn are the actions drawn only when Weights names them: those added
// after counterexamples were pinned by their draws (testdata) and the
// broken variants' budgets were set, which an action drawn in every run
// would change.
var optIn = []string{"bounce", "bounce from snapshot", "hand over", "join apart", "restart behind"}

// start is the harness's epoch: a fixed, realistic wall time.
const start = int64(1_750_000_000_000_000_000)

// budget bounds deliveries when draining the network.
const budget = 200_000

type harness struct {
	untold []restartNews // restarts in place the peers are told of at the next tick
	cfg    Config
	c      *Cluster
	adv    *adversary // nil when its actions are all disabled
	model  model
	lastTS []crdt.Timestamp            // per member: newest timestamp it issued
	held   []map[string]crdt.Timestamp // per member: newest version held per key
	// per member: records it was delivered in deltas and did not refuse
	// since the last check (see received), and the versions it rejected
	// since then; arriving is the last frame's, until it is known not
	// refused
	recv     []map[crdt.Version]bool
	rejSince []map[crdt.Version]bool
	arriving struct {
		i    int
		id   uint64
		recs []crdt.Version
	}
	last   []map[string]crdt.Version   // per member: the versions it held at the last check
	reaped []map[string]crdt.Timestamp // per member: newest dead record collected
	// syncFailure is the first failure of a first sync found as a frame
	// was delivered (see syncedSoFar), reported at the next check.
	syncFailure string
	// collections is, per member, every dead record it collected and
	// when (the cluster's time), as its state holds them: restored from
	// a snapshot with reaped (see checkFirstSync).
	collections [][]collection
	snaps       []*saved // per member: its last snapshot, if any
	// cluster fills: the calls not ended, the Source's outages by key
	calls                  map[int]*fillCall
	nextCall               int
	outages                map[string]int
	outageN, loads         int
	lastLoad               []byte // the value the Source gave last
	fillValues, fillErrors int
	slowFills              [2]int      // held open: stored, not
	gathered               [2]int      // dead records collected early (less than a horizon after their write), and later
	ended                  []endedCall // not checked yet
	// refused describes the members' own frames a member refused.
	refused []string
	// fates draws whether a frame delivered is lost or doubled (see
	// Config.Loss); nil without Loss and Duplication.
	fates *rand.Rand
	// copies are the frames a fate doubled: delivered as they are, not
	// given a fate of their own (at Duplication 1, deliver all doubled
	// every copy again and never drained: found by review).
	copies map[uint64]bool
	// syncs are the members' first-sync checks (firstsync.go); started
	// says the cluster's first members have been added.
	syncs   []*syncWatch
	started bool
	marked  map[string]bool // the members the nodes were last told are newcomers
	// openings are, per session opening seen (its sender and session id),
	// the cluster's time of the last check before it was sent: a
	// responder's first sync holds what its peer held then (see
	// firstsync.go); checked is the cluster's time of the last check.
	openings    map[openingKey]int64
	checkedAt   int64
	openingWire *wire.Codec
	// blindGC is, per member (by index, whatever its incarnation: a
	// restore brings back the watermarks its snapshot held) and per
	// incarnation, the cluster's time of the member's last collection
	// while it did not count that incarnation (collectedBlind).
	blindGC map[int]map[crdt.NodeID]int64
}

// saved is a member's snapshot and what the harness knew of the member
// when it was taken.
type saved struct {
	state   any
	records []crdt.Record
	held    map[string]crdt.Timestamp
	reaped  map[string]crdt.Timestamp
	// collections are the member's, then.
	collections []collection
}

// collection is a dead record a member collected, and when.
type collection struct {
	key string
	v   crdt.Timestamp
	at  int64
}

func newHarness(t *rapid.T, cfg Config) *harness {
	n := rapid.IntRange(cfg.MinNodes, cfg.MaxNodes).Draw(t, "members")
	c, err := NewCluster(n, horizonChecked(cfg.Factory, cfg.Horizon), start)
	if err != nil {
		t.Fatal(err)
	}
	// bcache's store takes a key its wire cannot carry, which a Cache
	// refuses (ErrKeyTooLarge): the write stayed on its member, and the
	// harness reported a failure of replication no Cache could run
	// (found by review: TestKeysBcacheRefusesAreRefused).
	if _, ok := c.Replica(0).(*StoreReplica); ok {
		if i := slices.IndexFunc(cfg.Keys, func(k string) bool { return len(k) > wire.DefaultLimits().MaxKey }); i >= 0 {
			t.Fatalf("proptest: Keys[%d] is %d bytes, more than the %d of a key bcache carries (a Cache refuses it: MaxKeySize)", i, len(cfg.Keys[i]), wire.DefaultLimits().MaxKey)
		}
	}
	return harnessOver(cfg, c)
}

// harnessOver returns a harness over cluster c, which nothing has used yet.
func harnessOver(cfg Config, c *Cluster) *harness {
	n := c.Size()
	h := &harness{cfg: cfg, c: c, model: newModel(), calls: map[int]*fillCall{}, outages: map[string]int{}}
	c.SetSource(h.source)
	c.Refused = func(p sim.Packet) {
		if h.arriving.recs != nil && h.arriving.id == p.ID {
			h.arriving.recs = nil // refused whole: nothing in it was taken
		}
		if !h.adv.sentFrame(p) {
			h.refused = append(h.refused, packet{p, h.cfg.Describe}.String())
		}
	}
	c.Delivered = func(p sim.Packet, received bool) {
		h.syncedSoFar() // what the frame before it did
		if received {
			h.arrivedAt(p)
		}
	}
	for range n {
		h.added()
	}
	h.started = true
	h.checkedAt = c.Now()
	return h
}

// arrivedAt notes, for the model, a frame delivered to a live member
// (see model.arrived).
func (h *harness) arrivedAt(p sim.Packet) {
	h.foldArriving()
	if i, ok := h.c.byName[p.To]; ok && !h.c.Down(i) {
		h.watchKept(i) // before it takes the frame
		h.model.arrived(h, i, p)
		h.arriving.i, h.arriving.id, h.arriving.recs = i, p.ID, h.model.taken(h, i, p)
		h.openingCame(i, p)
	}
}

// added makes room for the state of a member added to the cluster.
func (h *harness) added() {
	h.lastTS = append(h.lastTS, crdt.Timestamp{})
	h.snaps = append(h.snaps, nil)
	h.held = append(h.held, map[string]crdt.Timestamp{})
	h.recv = append(h.recv, map[crdt.Version]bool{})
	h.rejSince = append(h.rejSince, map[crdt.Version]bool{})
	h.last = append(h.last, map[string]crdt.Version{})
	h.reaped = append(h.reaped, map[string]crdt.Timestamp{})
	h.collections = append(h.collections, nil)
	h.watchSync()
}

// join adds a member that was never in the cluster, up to MaxNodes.
func (h *harness) join(t *rapid.T) {
	if h.c.Size() >= h.cfg.MaxNodes {
		t.Skip("the cluster is full")
	}
	i, err := h.c.Join()
	h.must(t, err)
	event(t, "%s joins", h.c.Name(i))
	h.added()
}

// joinApart plays a member that writes before the others know it and
// leaves keeping its state before any session with it completed (off by
// default, weight 0: set its weight to draw it): a new member joins cut
// off from every other, writes, and saves a snapshot; the others delete
// (keys drawn, of the writes' bucket when the keys share one) while time
// moves on; the network heals, so the others have it in their views, and
// it leaves at once, keeping its state; the others run a round of
// sessions past the stable margin and collect; and it comes back from its
// snapshot and syncs. Its writes are seconds old: a member that saw it
// must have waited for it (transport's roster), and one rejected on its
// return is a loss the model does not excuse (see model.unknownTo).
// Each part is drawn, so that shrinking can leave out what a failure
// does not need.
func (h *harness) joinApart(t *rapid.T) {
	if h.c.Size() >= h.cfg.MaxNodes {
		t.Skip("the cluster is full")
	}
	if !slices.ContainsFunc(h.c.members, func(m *member) bool { return !m.down }) {
		t.Skip("every member is down")
	}
	if _, ok := h.c.Replica(0).(Snapshotter); !ok {
		t.Skip("the replicas cannot snapshot: a leaver keeps nothing")
	}
	i, err := h.c.JoinApart()
	h.must(t, err)
	h.added()
	event(t, "%s joins cut off from every other member", h.c.Name(i))
	for range rapid.IntRange(1, 3).Draw(t, "writes") {
		key := h.key(t)
		value := fmt.Appendf(nil, "%s=%d", key, len(h.model.writes))
		prior, ok := h.newestHeld(i, key)
		rec, out := h.c.Replica(i).Set(key, value, 0)
		h.wroteOver(t, i, rec, crdt.Record{Key: key, Value: value}, prior, ok)
		h.c.send(i, out)
	}
	h.check(t)
	if rapid.Bool().Draw(t, "snapshot") {
		h.snapshot(t, i)
	}
	dt := rapid.SampledFrom([]time.Duration{0, 100 * time.Millisecond, time.Second}).Draw(t, "before the deletes")
	h.c.Advance(dt)
	event(t, "time moves on %v", dt)
	for range rapid.IntRange(0, 2).Draw(t, "deletes") {
		j := h.live(t, "deleter")
		if j == i {
			continue
		}
		h.delete(t, j, h.key(t))
	}
	h.deliverAll(t, "deliver the deletes")
	h.check(t)
	dt = rapid.SampledFrom([]time.Duration{time.Second, 5 * time.Second, 12 * time.Second, 20 * time.Second}).Draw(t, "apart")
	h.c.Advance(dt)
	event(t, "time moves on %v; the network heals", dt)
	h.c.Heal()
	h.check(t)
	if rapid.Bool().Draw(t, "leaves at once") {
		event(t, "%s leaves", h.c.Name(i))
		h.model.crashed(h, i)
		h.forgetCalls(i)
		h.c.Leave(i)
	}
	h.check(t)
	dt = rapid.SampledFrom([]time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second}).Draw(t, "before the round")
	h.c.Advance(dt)
	event(t, "time moves on %v", dt)
	h.round(t)
	h.check(t)
	h.collectAll(t)
	h.check(t)
	if h.c.Down(i) && h.snaps[i] != nil && rapid.Bool().Draw(t, "comes back") {
		h.restoreFrom(t, i)
		h.check(t)
		h.round(t)
	}
}

// live draws a member that is up.
func (h *harness) live(t *rapid.T, label string) int {
	var up []int
	for i := range h.c.Size() {
		if !h.c.Down(i) {
			up = append(up, i)
		}
	}
	if len(up) == 0 {
		t.Skip("every member is down")
	}
	return rapid.SampledFrom(up).Draw(t, label)
}

// packet draws the index of a packet in flight.
func (h *harness) packet(t *rapid.T) int {
	if h.c.Net.Len() == 0 {
		t.Skip("nothing in flight")
	}
	return rapid.IntRange(0, h.c.Net.Len()-1).Draw(t, "packet")
}

// wrote checks that the record member i returned for a write is the one
// asked for (want: its key, value, expiry and kind), stamped with the
// member's incarnation, and goes on as issued. The model takes the
// returned record as the write: without this, a Delete that wrote an empty
// value, or a Set that left the expiry out, would be what the model
// expects of every member.
func (h *harness) wrote(t fataler, i int, rec, want crdt.Record) {
	h.asked(t, i, rec, want)
	h.issued(t, i, rec)
}

// wroteOver is wrote for a write of member i that held the version
// stamped prior of the key before it (if ok): the write must be newer.
func (h *harness) wroteOver(t fataler, i int, rec, want crdt.Record, prior crdt.Timestamp, ok bool) {
	h.asked(t, i, rec, want)
	// A write is stamped by a hybrid logical clock, which has seen every
	// version its member holds: stamped older than one (by a clock that
	// ignores what it receives), it lost on its own member at once, a
	// Get after it served the older value, and the model, which orders
	// writes by the stamps the replica returns, agreed with it by
	// construction (found by review:
	// TestHarnessCatchesAClockThatIgnoresWhatItReceived).
	if ok && !prior.Less(rec.Time) {
		t.Fatalf("%s wrote %q at %v, older than %v it held of the key: its clock did not see what it holds", h.c.Name(i), want.Key, rec.Time, prior)
	}
	h.issued(t, i, rec)
}

// newestHeld returns the timestamp of the newest record of key member i
// holds, if any.
func (h *harness) newestHeld(i int, key string) (ts crdt.Timestamp, ok bool) {
	for _, rec := range h.c.Replica(i).Records() {
		if rec.Key == key && (!ok || ts.Less(rec.Time)) {
			ts, ok = rec.Time, true
		}
	}
	return ts, ok
}

// asked fails the run unless member i wrote want as rec.
func (h *harness) asked(t fataler, i int, rec, want crdt.Record) {
	if rec.Key != want.Key || !bytes.Equal(rec.Value, want.Value) || rec.Expires != want.Expires ||
		rec.Tombstone != want.Tombstone || rec.Evicted || rec.Time.Node != h.c.members[i].id {
		want.Time.Node = h.c.members[i].id
		t.Fatalf("%s was asked to write %v and wrote %v", h.c.Name(i), want, rec)
	}
}

// issued checks that member i's clock issued a newer timestamp than before.
func (h *harness) issued(t fataler, i int, rec crdt.Record) {
	if !h.lastTS[i].Less(rec.Time) {
		t.Fatalf("%s issued %v after %v", h.c.Name(i), rec.Time, h.lastTS[i])
	}
	h.applied(t, i, rec)
}

// applied records a write of member i that it applied now, whose
// timestamp it may have issued before others it issued since (a stalled
// write).
func (h *harness) applied(t fataler, i int, rec crdt.Record) {
	if h.lastTS[i].Less(rec.Time) {
		h.lastTS[i] = rec.Time
	}
	h.model.write(rec)
	h.model.writtenAt[rec.Version()] = h.c.Now()
	logEvent(t, "%s writes %v", h.c.Name(i), rec)
}

func (h *harness) must(t *rapid.T, err error) {
	if err != nil {
		t.Fatal(err)
	}
}

func (h *harness) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"set":                h.set,
		"stall":              h.stall,
		"stall past deletes": h.stallPastDeletes,
		"delete": func(t *rapid.T) {
			i := h.live(t, "member")
			h.delete(t, i, h.key(t))
		},
		"tick":        h.tick,
		"deliver":     h.deliver,
		"deliver all": func(t *rapid.T) { h.deliverAll(t, "deliver all") },
		"drop": func(t *rapid.T) {
			p := h.packet(t)
			event(t, "drop %v", h.describe(p))
			h.must(t, h.c.Net.Drop(p))
		},
		"duplicate": func(t *rapid.T) {
			p := h.packet(t)
			event(t, "duplicate %v", h.describe(p))
			h.must(t, h.c.Net.Duplicate(p))
		},
		"reorder": func(t *rapid.T) {
			p, q := h.packet(t), h.packet(t)
			event(t, "move %v to the place of %v", h.describe(p), h.describe(q)) // sim.Reorder moves, it does not swap
			h.must(t, h.c.Net.Reorder(p, q))
		},
		"partition": h.partition,
		"heal":      func(t *rapid.T) { event(t, "heal the network"); h.c.Heal() },
		"skew": func(t *rapid.T) {
			d := rapid.Int64Range(-int64(h.cfg.MaxSkew), int64(h.cfg.MaxSkew)).Draw(t, "skew")
			i := rapid.IntRange(0, h.c.Size()-1).Draw(t, "member")
			event(t, "%s's clock set %v from the cluster's", h.c.Name(i), time.Duration(d))
			h.c.SetSkew(i, time.Duration(d))
		},
		"crash":                h.crash,
		"leave":                h.leave,
		"hand over":            h.handOver,
		"join":                 h.join,
		"join apart":           h.joinApart,
		"restart":              h.restart,
		"restart behind":       h.restartBehind,
		"bounce":               h.bounce,
		"bounce from snapshot": h.bounceFromSnapshot,
		"absence":              h.absence,
		"get":                  func(t *rapid.T) { h.read(t, h.live(t, "member"), h.key(t)) },
		"gc":                   func(t *rapid.T) { i := h.live(t, "member"); h.collect(t, i) },
		"evict": func(t *rapid.T) {
			i, key := h.live(t, "member"), h.key(t)
			event(t, "%s evicts %q", h.c.Name(i), key)
			h.c.Replica(i).Evict(key)
		},
		"antientropy": h.antientropy,
		"round":       h.round,
		"fill":        h.fill,
		"slow fill":   h.slowFill,
		"outage":      h.outage,
		"snapshot":    func(t *rapid.T) { h.snapshot(t, h.live(t, "member")) },
		"restore":     h.restore,
		"forge":       func(t *rapid.T) { h.adv.forge(t) },
		"attack":      func(t *rapid.T) { h.adv.attack(t) },
		"capture":     func(t *rapid.T) { h.adv.capture(t) },
		"replay":      func(t *rapid.T) { h.adv.replay(t) },
	}
}

// adversaryOff reports whether every adversarial action is disabled.
func (h *harness) adversaryOff() bool {
	for _, name := range adversarial {
		if h.cfg.weight(name) > 0 {
			return false
		}
	}
	return true
}

// DefaultKeys returns the harness's default key alphabet: "a" to "f", the
// empty key, and two keys that share "a"'s bucket in an 8-bit digest
// (DefaultStoreConfig's), so that a bucket often holds several keys.
func DefaultKeys() []string {
	keys := []string{"a", "b", "c", "d", "e", "f", ""}
	bucket := crdt.HashKey("a") >> 56
	for i := 0; len(keys) < 9; i++ {
		if k := fmt.Sprint("a", i); crdt.HashKey(k)>>56 == bucket {
			keys = append(keys, k)
		}
	}
	return keys
}

func (h *harness) key(t *rapid.T) string { return rapid.SampledFrom(h.cfg.Keys).Draw(t, "key") }

// delete deletes key on member i.
func (h *harness) delete(t *rapid.T, i int, key string) {
	prior, ok := h.newestHeld(i, key)
	rec, out := h.c.Replica(i).Delete(key)
	h.wroteOver(t, i, rec, crdt.Record{Key: key, Tombstone: true}, prior, ok)
	h.c.send(i, out)
}

// set writes a value on a live member: usually a few bytes, sometimes none
// or more than some members hold; with no expiry, an expiry within two
// horizons, or one at the extremes of the int64 range (an expiry before
// the write, the largest a TTL can saturate to, the smallest).
func (h *harness) set(t *rapid.T) {
	i := h.live(t, "member")
	key := h.key(t)
	var expires int64
	switch rapid.IntRange(0, 3).Draw(t, "ttl") {
	case 1:
		expires = h.c.Phys(i) + rapid.Int64Range(1, 2*int64(h.cfg.Horizon)).Draw(t, "ttl ns")
	case 2:
		expires = rapid.SampledFrom([]int64{1, h.c.Phys(i) - 1, math.MaxInt64, math.MinInt64}).Draw(t, "extreme expiry")
	}
	value := fmt.Appendf(nil, "%s=%d", key, len(h.model.writes))
	switch rapid.IntRange(0, 5).Draw(t, "value size") {
	case 0:
		value = nil
	case 1:
		value = append(value, "-padded-to-be-long"...)
	}
	prior, ok := h.newestHeld(i, key)
	rec, out := h.c.Replica(i).Set(key, value, expires)
	h.wroteOver(t, i, rec, crdt.Record{Key: key, Value: value, Expires: expires}, prior, ok)
	h.c.send(i, out)
}

// stall stamps a write on a live member and applies it only after time
// has moved on (past the stable margin, mostly) while every live member
// ran a round of sessions and collected garbage: a writer descheduled
// between its clock and its store (replicas that implement
// StalledWriter). Off by default (weight 0): set its weight to draw it.
func (h *harness) stall(t *rapid.T) {
	h.stalled(t, func(int, string) {
		h.c.Tick()
		h.round(t)
	})
}

// stallPastDeletes is stall with, instead of the round, deletes of other
// keys made meanwhile (on any live members, the writer too) and
// delivered: no session cuts past the write (none starts), but under a
// bound on dead records the collection that follows takes the older of
// the deletes at once, and those stamped after the write raise the
// watermark of its bucket past it (package lww, rule 7). The write must
// then be held by its member (see kept). Off by default (weight 0).
func (h *harness) stallPastDeletes(t *rapid.T) {
	if len(h.cfg.Keys) < 3 {
		t.Skip("no two other keys to delete")
	}
	i, rec := h.stalled(t, func(i int, key string) {
		others := slices.DeleteFunc(slices.Clone(h.cfg.Keys), func(k string) bool { return k == key })
		// Distinct keys: two deletes of one key are one dead record,
		// which the bound leaves (rapid draws the first key most).
		for _, k := range rapid.SliceOfNDistinct(rapid.SampledFrom(others), 2, 3, rapid.ID[string]).Draw(t, "deleted") {
			h.delete(t, h.live(t, "deleter"), k)
		}
		h.deliverAll(t, "deliver the deletes")
	})
	h.kept(t, i, rec)
}

// stalled stamps a write of a key on a live member, moves time on, runs
// meanwhile, has every live member collect garbage and applies the write.
// It returns the member and the record its write returned.
func (h *harness) stalled(t *rapid.T, meanwhile func(i int, key string)) (int, crdt.Record) {
	i := h.live(t, "member")
	w, ok := h.c.Replica(i).(StalledWriter)
	if !ok {
		t.Skip("the replica cannot stall a write")
	}
	key := h.key(t)
	value := fmt.Appendf(nil, "%s=%d", key, len(h.model.writes))
	apply := w.StampSet(key, value, 0)
	dt := rapid.SampledFrom([]time.Duration{time.Second, 5 * time.Second, 17 * time.Second}).Draw(t, "stall") // not a fill TTL: see the note on exact expiries
	event(t, "%s stamps a write of %q and stalls for %v", h.c.Name(i), key, dt)
	h.c.Advance(dt)
	meanwhile(i, key)
	h.check(t) // the rejections of what ran meanwhile, before a collection takes their answers
	h.collectAll(t)
	rec, out := apply()
	h.asked(t, i, rec, crdt.Record{Key: key, Value: value})
	h.applied(t, i, rec) // stamped before what the member issued since
	h.c.send(i, out)
	return i, rec
}

// kept fails the run unless member i, which returned rec for a write of
// it, holds rec or a newer version of its key, or collected one: a write
// merged below a watermark raised past it meanwhile was rejected unseen,
// and its Set returned nil for a write no member kept (a Get after it
// missed, and the answer to it deleted it where its delta went).
func (h *harness) kept(t fataler, i int, rec crdt.Record) {
	if h.collected(i, rec.Version()) {
		return
	}
	for _, x := range h.c.Replica(i).Records() {
		if x.Key == rec.Key && !x.Time.Less(rec.Time) {
			return
		}
	}
	t.Fatalf("%s returned %v for a write of %q and holds no version of it as new: the write was rejected unseen", h.c.Name(i), rec.Time, rec.Key)
}

// collectAll has every live member collect garbage.
func (h *harness) collectAll(t *rapid.T) {
	for j := range h.c.Size() {
		if !h.c.Down(j) {
			h.collect(t, j)
		}
	}
}

// tick moves time on, mostly by less than a flush or an anti-entropy
// interval, and runs every member's timers.
func (h *harness) tick(t *rapid.T) {
	dt := rapid.SampledFrom([]time.Duration{time.Millisecond, 50 * time.Millisecond, time.Second, 5 * time.Second}).Draw(t, "dt")
	h.c.Advance(dt)
	event(t, "time moves on %v", dt)
	for _, n := range h.untold {
		if m := h.c.members[n.member]; !m.down && m.id == n.id {
			event(t, "%s's peers are told it restarted", m.name)
			h.c.tellRestarted(n.member)
		}
	}
	h.untold = h.untold[:0]
	h.c.Tick()
}

func (h *harness) partition(t *rapid.T) {
	groups := make([][]string, 3)
	names := h.c.Names()
	if h.adv != nil {
		names = append(names, adversaryName)
	}
	for _, name := range names {
		g := rapid.IntRange(0, 2).Draw(t, "group")
		groups[g] = append(groups[g], name)
	}
	event(t, "partition the network into %v", groups)
	h.c.Partition(groups...)
}

func (h *harness) crash(t *rapid.T) {
	i := h.live(t, "member")
	h.keepLastUp(t, i)
	event(t, "%s crashes", h.c.Name(i))
	h.model.crashed(h, i)
	h.forgetCalls(i)
	h.c.Crash(i)
}

// leave takes a live member out of the cluster on purpose. What it wrote
// and did not ship is lost, as in a crash.
func (h *harness) leave(t *rapid.T) {
	i := h.live(t, "member")
	h.keepLastUp(t, i)
	event(t, "%s leaves", h.c.Name(i))
	h.model.crashed(h, i)
	h.forgetCalls(i)
	h.c.Leave(i)
}

// handOver takes a live member out of the cluster as a Cache's Close
// does (transport/gossip, leaving.go): a live peer it reaches pulls from
// it first (Puller), a session carried by delivering the frames between
// the two alone, each subject to Config.Loss and Duplication. Once that
// session has completed, every record the member holds must be held by
// a live member, or a newer version of its key: what it wrote is not lost
// with it. A pull that does not complete (a frame lost, the frames of the
// two used up) leaves it as leave does.
func (h *harness) handOver(t *rapid.T) {
	i := h.live(t, "member")
	var peers []int
	for j := range h.c.Size() {
		if j != i && !h.c.Down(j) && h.c.Net.Connected(h.c.Name(i), h.c.Name(j)) {
			peers = append(peers, j)
		}
	}
	if len(peers) == 0 {
		t.Skip("no live member reaches the one that leaves")
	}
	h.keepLastUp(t, i)
	j := rapid.SampledFrom(peers).Draw(t, "puller")
	seq, ok := h.c.Pull(j, i)
	if !ok {
		t.Skip("the replicas do not pull")
	}
	from, to := h.c.Name(i), h.c.Name(j)
	event(t, "%s leaves, %s pulling from it first", from, to)
	puller := h.c.Replica(j).(Puller)
	pulled := puller.Pulled(from, seq)
	for n := 0; !pulled; n++ {
		k := slices.IndexFunc(h.c.Net.InFlight(), func(p sim.Packet) bool {
			return (p.From == from && p.To == to || p.From == to && p.To == from) && sessionKinds[p.Kind]
		})
		if k < 0 {
			break // a frame lost: the session stalls
		}
		if n == budget {
			t.Fatalf("%v: %s's pull from %s still busy after %d deliveries", ErrLivelock, to, from, budget)
		}
		h.deliverOne(t, k)
		pulled = puller.Pulled(from, seq)
	}
	if pulled {
		// What the puller rejected during the pull (a write of the
		// member's below a watermark it holds: made during a separation
		// in a bucket where it collected) is excused as check would
		// excuse it after the step (found by a campaign).
		h.handedOver(t, i, j, h.takeRejections(t)[j])
	} else {
		event(t, "%s's pull from %s did not complete: %s leaves as it is", to, from, from)
	}
	h.model.crashed(h, i)
	h.forgetCalls(i)
	h.c.Leave(i)
}

// sessionKinds are the frames of anti-entropy sessions: a pull delivers
// those alone. A Cache seals its store before it tells its peers it
// leaves, and writes nothing after (no fill, no call's answer): a call's
// answer delivered to the member during the pull had it write a filled
// value after its cut (found by a campaign).
var sessionKinds = map[wire.Kind]bool{wire.KindDigest: true, wire.KindVersions: true, wire.KindRepair: true, wire.KindReject: true}

// takeRejections checks the records every live member rejected since
// the last look, and notes the losses they excuse. It returns them, by
// member.
func (h *harness) takeRejections(t *rapid.T) map[int][]Rejection {
	taken := map[int][]Rejection{}
	for i := range h.c.Size() {
		if rl, ok := h.c.Replica(i).(Rejecter); ok && !h.c.Down(i) {
			rs := rl.Rejected()
			h.noteRejected(i, rs)
			for _, r := range rs {
				h.rejSince[i][r.Version] = true
			}
			h.model.rejected(t, h, i, rs)
			taken[i] = rs
		}
	}
	return taken
}

// handedOver checks, once member j has pulled from member i, that every
// record i holds that a member wrote (a value, a delete, an expiry, an
// evicted value's version) is held by a live member other than i, or a
// newer version of its key is (or was, and was collected), unless the
// model lets it be lost (a member dropped it, or a newer version, under
// the rules; a crash before took it). Not checked: a dead record the
// puller refused in the pull (refused), below a watermark it holds; a
// tombstone no member wrote (node 0: one a Reject made at such a
// watermark); the adversary's records, stamped for one member's clock to
// take and another's to refuse; and a write of i's stamped after one of
// them, past the puller's drift bound, which the puller refuses until
// its clock has caught up; and a write older than the newest of its key,
// which the model does not hold to survive (each found by a campaign). A
// check that
// skipped every dead record let a pull that drops deletes pass (found by
// review).
func (h *harness) handedOver(t *rapid.T, i, j int, refused []Rejection) {
	for _, rec := range h.c.Replica(i).Records() {
		_, written := h.model.known[rec.Version()]
		ahead := rec.Time.Wall > crdt.AddSat(h.c.Phys(j), int64(h.cfg.MaxDrift))
		// A dead record is excused only if the puller refused it (below
		// its watermark): a delete, or a value that expired, the leaver
		// alone held is a write like any other (dropped, the older value
		// it replaced is served again).
		dead := rec.Tombstone || rec.Expired(h.c.Phys(i))
		refusedByPuller := slices.ContainsFunc(refused, func(r Rejection) bool { return r.Version == rec.Version() })
		// The model holds the newest write of each key to survive: an
		// older one may go once a newer exists (a peer's watermark above
		// it, adopted, not collected there, refused it: found by a
		// campaign).
		n, ok := h.model.newest[rec.Key]
		older := ok && rec.Version().Compare(n.Version()) < 0
		if !written || rec.Time.Node == 0 || rec.Time.Node == adversaryID || dead && refusedByPuller || ahead || older {
			continue
		}
		safe := h.model.mayBeLost(rec)
		for j := range h.c.Size() {
			theirs, ok := h.newestKnown(j, rec.Key)
			safe = safe || j != i && !h.c.Down(j) && ok && theirs.Compare(rec.Version()) >= 0
		}
		if !safe {
			t.Fatalf("%s left after a pull completed, and no live member holds %v or newer: lost with it", h.c.Name(i), rec.Version())
		}
	}
}

// newestKnown returns the newest version of key member j holds or
// collected.
func (h *harness) newestKnown(j int, key string) (newest crdt.Version, ok bool) {
	if ts, reaped := h.reaped[j][key]; reaped {
		newest, ok = crdt.Version{Key: key, Time: ts, Tombstone: true}, true
	}
	for _, rec := range h.c.Replica(j).Records() {
		if rec.Key == key && (!ok || newest.Compare(rec.Version()) < 0) {
			newest, ok = rec.Version(), true
		}
	}
	return newest, ok
}

// bounce restarts a live member in place (Cluster.Bounce), its peers told
// or not. What it wrote and did not ship is lost, as in a crash.
func (h *harness) bounce(t *rapid.T) {
	i := h.live(t, "member")
	now, later := h.whenTold(t, i, "restarts in place")
	h.model.crashed(h, i)
	h.forgetCalls(i)
	h.must(t, h.c.Bounce(i, now))
	h.forgetState(i)
	h.tellLater(i, later)
}

// whenTold draws when the peers of member i, restarting in place, are
// told of it (Restarter): at once, at the next tick (after the frames
// and sessions of the steps between: memberlist may tell a Cache late),
// or never.
func (h *harness) whenTold(t *rapid.T, i int, what string) (now, later bool) {
	when := rapid.SampledFrom([]string{"at once", "at the next tick", "never"}).Draw(t, "told")
	event(t, "%s %s, its peers told %s", h.c.Name(i), what, when)
	return when == "at once", when == "at the next tick"
}

// tellLater, if later, has the peers of member i told at the next tick
// that its current incarnation restarted in place (unless it is gone by
// then).
func (h *harness) tellLater(i int, later bool) {
	if later {
		h.untold = append(h.untold, restartNews{i, h.c.members[i].id})
	}
}

// restartNews is a restart in place the peers are yet to be told of.
type restartNews struct {
	member int
	id     crdt.NodeID
}

// bounceFromSnapshot restarts a live member in place from its last
// snapshot, however old (a Cache with a snapshot file restarted quicker
// than failure detection), its peers told or not.
func (h *harness) bounceFromSnapshot(t *rapid.T) {
	i := h.live(t, "member")
	if h.snaps[i] == nil {
		t.Skip("member has no snapshot")
	}
	now, later := h.whenTold(t, i, fmt.Sprintf("restarts in place from its snapshot of %d records", len(h.snaps[i].records)))
	h.model.crashed(h, i)
	h.forgetCalls(i)
	h.restored(t, i, func() error { return h.c.BounceFrom(i, h.snaps[i].state, now) })
	h.tellLater(i, later)
}

func (h *harness) restart(t *rapid.T) {
	i := rapid.IntRange(0, h.c.Size()-1).Draw(t, "member")
	if !h.c.Down(i) {
		t.Skip("member is up")
	}
	h.restartEmpty(t, i)
}

// revive brings a member back for the end of a run that left every
// member down (about one run in twenty: its end, with none up, checked
// nothing, found by review, TestEveryRunEndsWithAMemberUp): the first
// with a snapshot from it, or else the first empty, as the actions
// restore and restart would, if they are enabled (with neither possible,
// the last member up does not go down: keepLastUp). A run can still take
// the whole cluster down and bring it back from its snapshots on the way.
func (h *harness) revive(t *rapid.T) {
	for i := range h.c.Size() {
		if !h.c.Down(i) {
			return
		}
	}
	if h.cfg.weight("restore") > 0 {
		for i := range h.c.Size() {
			if h.snaps[i] != nil {
				event(t, "every member is down: %s comes back for the end", h.c.Name(i))
				h.restoreFrom(t, i)
				return
			}
		}
	}
	if h.cfg.weight("restart") > 0 {
		event(t, "every member is down: %s comes back for the end", h.c.Name(0))
		h.restartEmpty(t, 0)
	}
}

// keepLastUp skips taking member i down (a crash, a leave) when it is
// the last member up and revive could bring none back for the end: with
// restart left out, and no snapshot held or restore left out too (a run
// that ended so checked nothing at its end: with restart disabled, 4
// runs in 300, and with restore too, 29, found by review,
// TestEveryRunEndsWithAMemberUpWithoutRestarts). Snapshots go only with
// an empty restart, so one held now is held at the end.
func (h *harness) keepLastUp(t *rapid.T, i int) {
	for j := range h.c.Size() {
		if j != i && !h.c.Down(j) {
			return
		}
	}
	if h.cfg.weight("restart") > 0 ||
		h.cfg.weight("restore") > 0 && slices.ContainsFunc(h.snaps, func(s *saved) bool { return s != nil }) {
		return
	}
	t.Skip("the last member up: nothing would bring one back for the end")
}

// restartEmpty restarts the crashed member i with an empty state.
func (h *harness) restartEmpty(t *rapid.T, i int) {
	event(t, "%s restarts empty", h.c.Name(i))
	h.must(t, h.c.Restart(i))
	h.forgetState(i)
}

// forgetState forgets what member i held, restarted empty.
func (h *harness) forgetState(i int) {
	// Its snapshot goes with its state: a member that starts empty found
	// none to restore (a Cache restores the file at its path, and writes
	// its own there next), so a later restore of the older one is a file
	// put back by hand. The harness restored it, and failed the writes
	// the cluster had collected past since, which such a file may lose
	// (found at -rapid.seed=87192701 of TestStalledWritesLoseNothing).
	h.snaps[i] = nil
	h.lastTS[i] = crdt.Timestamp{}
	h.foldArriving()
	h.held[i] = map[string]crdt.Timestamp{}
	h.recv[i] = map[crdt.Version]bool{}
	h.reaped[i] = map[string]crdt.Timestamp{}
	h.collections[i] = nil
	h.last[i] = map[string]crdt.Version{}
}

// snapshot saves a live member's state, when its replica can.
func (h *harness) snapshot(t *rapid.T, i int) {
	if _, ok := h.c.Replica(i).(Snapshotter); !ok {
		t.Skip("the replica cannot snapshot")
	}
	if f, ok := h.c.Replica(i).(FileKeeper); ok && !f.KeepsFiles() {
		t.Skip("the member keeps no files")
	}
	event(t, "%s saves a snapshot", h.c.Name(i))
	state, err := h.c.Snapshot(i)
	h.must(t, err)
	h.snaps[i] = &saved{state: state, records: h.c.Replica(i).Records(), held: maps.Clone(h.held[i]), reaped: maps.Clone(h.reaped[i]), collections: slices.Clone(h.collections[i])}
}

// restore restarts a crashed member from its last snapshot, however old.
// Its clock must then issue timestamps newer than every record it
// restored: a write after a restart beats what the member held before.
// And the member must never go back on a version it held, or collected,
// when the snapshot was taken: the snapshot keeps its GC watermarks. Only
// records it could not restore (too far ahead of its clock) are exempt.
func (h *harness) restore(t *rapid.T) {
	i := rapid.IntRange(0, h.c.Size()-1).Draw(t, "member")
	if !h.c.Down(i) || h.snaps[i] == nil {
		t.Skip("member is up or has no snapshot")
	}
	h.restoreFrom(t, i)
}

// restoreFrom restarts the crashed member i from its last snapshot.
func (h *harness) restoreFrom(t *rapid.T, i int) {
	if h.floorAhead(i) {
		// Its clock pushed ahead by a stamp within the drift bound (the
		// adversary's), its floor followed, and a skew since set its clock
		// back: a Cache refuses to start from its files (ErrAheadOfClock),
		// and the operator starts it without them. Restored, the replica
		// failed the run (found by review,
		// TestARestoreAfterTheClockWasPushedAheadTakesItsFiles).
		event(t, "%s's clock floor is more than MaxClockDrift ahead of its clock: it would not start from its files, and starts with none", h.c.Name(i))
		h.restartEmpty(t, i)
		return
	}
	event(t, "%s restarts from its snapshot of %d records", h.c.Name(i), len(h.snaps[i].records))
	h.restored(t, i, func() error { return h.c.RestartFrom(i, h.snaps[i].state) })
}

// floorAhead reports whether member i's snapshot keeps a clock floor
// (StoreSnapshot.Floor) more than MaxDrift ahead of its clock now.
func (h *harness) floorAhead(i int) bool {
	state := h.snaps[i].state
	if sv, ok := state.(Saved); ok {
		state = sv.State
	}
	st, ok := state.(StoreSnapshot)
	return ok && st.Floor != nil && st.Floor.Wall() > crdt.AddSat(h.c.Phys(i), int64(h.cfg.MaxDrift))
}

// restored brings member i back from its last snapshot with restart, and
// checks what it holds against the snapshot (see restore).
func (h *harness) restored(t *rapid.T, i int, restart func() error) {
	snap := h.snaps[i]
	h.must(t, restart())
	h.lastTS[i] = crdt.Timestamp{}
	restored := map[string]crdt.Timestamp{}
	for _, rec := range h.c.Replica(i).Records() {
		restored[rec.Key] = rec.Time
		if h.lastTS[i].Less(rec.Time) {
			h.lastTS[i] = rec.Time
		}
	}
	h.foldArriving()
	h.held[i], h.reaped[i] = maps.Clone(snap.held), maps.Clone(snap.reaped)
	h.collections[i] = slices.Clone(snap.collections)
	h.recv[i] = map[crdt.Version]bool{}
	h.last[i] = map[string]crdt.Version{}
	for _, rec := range snap.records {
		switch {
		case restored[rec.Key] == rec.Time:
		case crdt.NewHLC(1, func() int64 { return h.c.Phys(i) }, h.cfg.MaxDrift).CheckDrift(rec.Time) != nil:
			delete(h.held[i], rec.Key) // too far ahead of the member's clock now: refused
		default:
			t.Fatalf("%s restarted from its snapshot without %q at %v, which the snapshot holds", h.c.Name(i), rec.Key, rec.Time)
		}
	}
}

// absence cuts a member off while the rest of the cluster runs, syncs and
// collects garbage for longer than the horizon. The member stays cut off
// until a heal.
func (h *harness) absence(t *rapid.T) {
	i := h.live(t, "member")
	h.c.Partition([]string{h.c.Name(i)})
	steps := rapid.IntRange(5, 12).Draw(t, "quarter horizons")
	event(t, "%s is cut off for %d quarters of the horizon (%v)", h.c.Name(i), steps, time.Duration(steps)*h.cfg.Horizon/4)
	for q := range steps {
		h.c.Advance(h.cfg.Horizon / 4)
		event(t, "quarter %d: time moves on %v", q+1, h.cfg.Horizon/4)
		h.c.Tick()
		h.deliverAll(t, fmt.Sprintf("quarter %d: deliver all", q+1))
		h.collectAll(t)
	}
}

// collectedBlind notes, for every incarnation member i does not count
// for its stable bound (Cluster.Counts), that i ran a collection now:
// one that may raise a bucket's watermark, by collecting early or by
// adopting a peer's marks within its bound, past what that incarnation
// wrote and i has not received (see model.unknownTo). Per member: a
// watermark reaches a member only by its own collections (a peer's
// marks are adopted there, within its own bound), so another member's
// blind collection excuses nothing it rejects (kept per writer, one by a
// member that never saw the writer excused the rejection by one that
// waited for it: found by review).
func (h *harness) collectedBlind(i int) {
	if h.blindGC == nil {
		h.blindGC = map[int]map[crdt.NodeID]int64{}
	}
	if h.blindGC[i] == nil {
		h.blindGC[i] = map[crdt.NodeID]int64{}
	}
	for w := range h.c.seenBy { // every incarnation
		if !h.c.Counts(i, w, h.cfg.FailedTimeout-2*h.cfg.MaxSkew) {
			h.blindGC[i][w] = h.c.Now()
		}
	}
}

// collect runs member i's garbage collection and notes what it collected.
// A record a member accepted and collected between two checks (the
// adversary's, or an answer to a rejection) is adopted all the same, as a
// dead one: a tombstone, or a value past its expiry.
func (h *harness) collect(t fataler, i int) {
	h.filled(t, i) // what its fills wrote is known before it is collected
	gone := h.c.Replica(i).GC()
	h.collectedBlind(i)
	if b, ok := h.c.Replica(i).(DeadBounded); ok {
		if dead, maxDead, keyBytes, maxKeyBytes, bound := b.DeadBounds(); bound && (maxDead > 0 && dead > maxDead || maxKeyBytes > 0 && keyBytes > maxKeyBytes) {
			t.Fatalf("%s holds %d dead records with %d bytes of keys once it collected, over its bounds of %d records, %d bytes", h.c.Name(i), dead, keyBytes, maxDead, maxKeyBytes)
		}
	}
	if len(gone) > 0 {
		logEvent(t, "%s collects %v", h.c.Name(i), gone)
	}
	for _, v := range gone {
		if v.Time.Wall > h.c.Now()-int64(h.cfg.Horizon) {
			h.gathered[0]++
		} else {
			h.gathered[1]++
		}
		if cur, ok := h.reaped[i][v.Key]; !ok || cur.Less(v.Time) {
			h.reaped[i][v.Key] = v.Time
		}
		h.collections[i] = append(h.collections[i], collection{key: v.Key, v: v.Time, at: h.c.Now()})
		_, known := h.model.known[v]
		switch {
		case known:
		case h.adv != nil && v.Time.Node == adversaryID:
			// The adversary may have made this version more than once,
			// live and dead (another expiry): what was collected was a
			// dead copy, whichever it made first. The first, live,
			// became the key's newest write, which no member ever held,
			// and the end failed the run: "lost its newest write ...@bad"
			// (TestACollectedForgeryIsAdoptedAsTheCopyCollected).
			copies := h.adv.copies[v]
			dead := slices.IndexFunc(copies, func(c crdt.Record) bool { return c.Tombstone || c.Expired(h.c.Phys(i)) })
			if dead < 0 {
				t.Fatalf("%s collected %v, which the adversary never sent dead (it sent %+v)", h.c.Name(i), v, copies)
			}
			h.model.write(copies[dead])
		default:
			dead := crdt.Record{Key: v.Key, Time: v.Time, Tombstone: v.Tombstone}
			if !v.Tombstone {
				dead.Expires = math.MinInt64
			}
			h.model.adopt(t, h, h.c.Name(i), dead)
		}
	}
}

func (h *harness) antientropy(t *rapid.T) {
	a, b := h.live(t, "from"), h.live(t, "to")
	if a == b {
		t.Skip("same member")
	}
	event(t, "%s starts anti-entropy with %s", h.c.Name(a), h.c.Name(b))
	h.c.StartSession(a, b)
}

// round runs anti-entropy from every live member to every other in turn,
// delivering what is in flight after each session (what the partitions
// let through). Cuts travel with completed sessions, so a round followed
// by time past the stable margin is what early collection (package lww,
// rule 6) needs: a run of single sessions rarely gets there.
func (h *harness) round(t *rapid.T) {
	for i := range h.c.Size() {
		for j := range h.c.Size() {
			if i == j || h.c.Down(i) || h.c.Down(j) {
				continue
			}
			h.c.StartSession(i, j)
			h.deliverAll(t, fmt.Sprintf("%s starts anti-entropy with %s (a round)", h.c.Name(i), h.c.Name(j)))
		}
	}
}

// check holds after every step: no live member holds a version of a key
// older than one it held before since its last restart (so none serves
// one), none holds a version nobody wrote, and a newest write a member
// dropped (because a peer rejected it, or it vanished between two checks
// without being collected) is one the rules allow it to drop.
func (h *harness) check(t *rapid.T) {
	h.c.noteUnknown() // before the next step changes the network
	for i := range h.c.Size() {
		if !h.c.Down(i) {
			h.filled(t, i)
		}
	}
	h.checkCalls(t)
	event(t, "state: %v", lwwStates{h})
	// Every member's rejections first: one excused there excuses the loss
	// its answer brings to any member (see model.rejected).
	h.takeRejections(t)
	h.foldArriving()
	for i := range h.c.Size() {
		recv, rej := h.recv[i], h.rejSince[i]
		h.recv[i], h.rejSince[i] = map[crdt.Version]bool{}, map[crdt.Version]bool{}
		if h.c.Down(i) {
			h.last[i] = map[string]crdt.Version{}
			continue
		}
		h.received(t, i, recv, rej)
		r := h.c.Replica(i)
		if b, ok := r.(Bounded); ok {
			if values, maxValues, bytes, maxBytes := b.Bounds(); maxValues > 0 && values > maxValues || maxBytes > 0 && bytes > maxBytes {
				t.Fatalf("%s holds %d values of %d bytes, over its bounds of %d values, %d bytes", h.c.Name(i), values, bytes, maxValues, maxBytes)
			}
		}
		h.model.dropped(t, h, i, r.Drops())
		now := map[string]crdt.Version{}
		// By key: a replica's records in its own order (a map's) made
		// the first failure found, and the report, differ between
		// replays of one seed.
		for _, rec := range slices.SortedFunc(slices.Values(r.Records()), byKey) {
			if rec.Evicted && rec.Time.Node != adversaryID && !h.evicts() {
				t.Fatalf("%s holds %v as evicted, but no member evicts", h.c.Name(i), rec)
			}
			h.model.adopt(t, h, h.c.Name(i), rec)
			if prev, ok := h.held[i][rec.Key]; ok && rec.Time.Less(prev) {
				t.Fatalf("%s went back on %q from %v to %v", h.c.Name(i), rec.Key, prev, rec.Time)
			}
			// As the end checks it (verify), at every step: a value older
			// than a dead record the member collected came back, whether
			// or not it held that record at a check (collected in the step
			// that delivered it), and whether or not it is still up at the
			// end (a crash since excused it there).
			if d, ok := h.reaped[i][rec.Key]; ok && !rec.Tombstone && rec.Time.Less(d) {
				t.Fatalf("%q came back at %v on %s after it collected a record at %v", rec.Key, rec.Time, h.c.Name(i), d)
			}
			h.held[i][rec.Key] = rec.Time
			now[rec.Key] = rec.Version()
		}
		for _, key := range slices.Sorted(maps.Keys(h.last[i])) { // in order: a failure says the same at each replay
			v := h.last[i][key]
			if _, ok := now[key]; !ok && !h.collected(i, v) {
				h.model.vanished(t, h, i, v)
			}
		}
		h.last[i] = now
	}
	h.judgeDeferred(t)
	for i := range h.c.Size() {
		h.watchKept(i)
	}
	h.checkFirstSyncs(t)
	h.newcomers()
}

// evicts reports whether a member may hold a record as evicted: the evict
// action runs, or a replica may evict on its own (see Evictor).
func (h *harness) evicts() bool {
	if h.cfg.weight("evict") > 0 {
		return true
	}
	for i := range h.c.Size() {
		if e, ok := h.c.Replica(i).(Evictor); !ok || e.MayEvict() {
			return true
		}
	}
	return false
}

// collected reports whether member i collected version v (or a newer
// record of its key).
func (h *harness) collected(i int, v crdt.Version) bool {
	ts, ok := h.reaped[i][v.Key]
	return ok && !ts.Less(v.Time)
}

// read checks what member i serves for key against the record of key it
// holds (Records): a value only from a live record (not deleted, expired
// or evicted at the member's time), and that record's value; a miss only
// without one. With the check that no member goes back on a version it
// held, reads on a member never go back either; after convergence they
// agree with the model everywhere.
func (h *harness) read(t fataler, i int, key string) {
	r := h.c.Replica(i)
	got, served := r.Get(key)
	if served {
		logEvent(t, "%s reads %q: %q", h.c.Name(i), key, got)
	} else {
		logEvent(t, "%s reads %q: nothing", h.c.Name(i), key)
	}
	var rec crdt.Record
	held := false
	for _, x := range r.Records() {
		if x.Key == key {
			rec, held = x, true
			break
		}
	}
	live := held && rec.Live(h.c.Phys(i))
	switch {
	case served && !held:
		t.Fatalf("%s served %q for %q and holds no record of it", h.c.Name(i), got, key)
	case served && !live:
		t.Fatalf("%s served %q for %q while holding %v (%s)", h.c.Name(i), got, key, rec, lifetime(rec, h.c.Phys(i)))
	case served && !bytes.Equal(got, rec.Value):
		t.Fatalf("%s served %q for %q while holding %v", h.c.Name(i), got, key, rec)
	case !served && live:
		t.Fatalf("%s served nothing for %q while holding %v (%s)", h.c.Name(i), key, rec, lifetime(rec, h.c.Phys(i)))
	}
}

// describe returns packet p in flight, for the log.
func (h *harness) describe(p int) packet {
	return packet{h.c.Net.InFlight()[p], h.cfg.Describe}
}

// deliver hands one frame in flight to its destination (the trace logs
// it: see traced), or, by Config.Loss and Duplication, loses it or
// delivers it twice.
func (h *harness) deliver(t *rapid.T) {
	h.deliverOne(t, h.packet(t))
}

// Fates of a frame delivered (drawFate).
const (
	fateDelivered = iota
	fateLost
	fateDoubled
)

// drawFate draws the fate of a frame a deliver action takes from fates,
// by loss and dup, and counts it in cov (if not nil).
func drawFate(fates *rand.Rand, loss, dup float64, cov *Coverage) int {
	fate := fateDelivered
	switch roll := fates.Float64(); {
	case roll < loss:
		fate = fateLost
	case roll < loss+dup:
		fate = fateDoubled
	}
	if cov != nil {
		cov.Fates[fate]++
	}
	return fate
}

func (h *harness) deliverOne(t *rapid.T, p int) {
	if id := h.c.Net.InFlight()[p].ID; h.copies[id] {
		delete(h.copies, id)
	} else if h.fates != nil {
		switch drawFate(h.fates, h.cfg.Loss, h.cfg.Duplication, h.cfg.Coverage) {
		case fateLost:
			event(t, "lose %v", h.describe(p))
			h.must(t, h.c.Net.Drop(p))
			return
		case fateDoubled:
			event(t, "duplicate %v", h.describe(p))
			h.must(t, h.c.Net.Duplicate(p))
			if h.copies == nil {
				h.copies = map[uint64]bool{}
			}
			h.copies[h.c.Net.InFlight()[h.c.Net.Len()-1].ID] = true
		}
	}
	_, err := h.c.Deliver(p)
	h.must(t, err)
	h.must(t, h.c.bytesBound()) // as DeliverAll: frames that grow at every hop
}

// traced has the cluster log every frame it delivers to t, with the
// frames each delivery causes to be sent.
func (h *harness) traced(t *rapid.T) {
	h.c.Sent = func(from string, inFlight []sim.Packet, cut int) {
		for _, p := range inFlight {
			event(t, "  send %v", packet{p, h.cfg.Describe})
		}
		if cut > 0 {
			event(t, "  %s sends %d frames that a partition cuts", from, cut)
		}
	}
	h.c.Net.OnCut = func(p sim.Packet) {
		event(t, "lost %v: cut in flight by a partition", packet{p, h.cfg.Describe})
	}
	arrived := h.c.Delivered
	h.c.Delivered = func(p sim.Packet, received bool) {
		arrived(p, received)
		if received {
			event(t, "deliver %v", packet{p, h.cfg.Describe})
		} else {
			event(t, "lost %v: its destination is down", packet{p, h.cfg.Describe})
		}
	}
}

// deliverAll delivers everything in flight and what it causes, oldest
// first, each frame subject to Config.Loss and Duplication.
func (h *harness) deliverAll(t *rapid.T, what string) {
	before := h.c.Stats().Delivered
	event(t, "%s", what)
	if h.cfg.Loss == 0 && h.cfg.Duplication == 0 {
		h.must(t, h.c.DeliverAll(budget))
	} else {
		for n := 0; h.c.Net.Len() > 0; n++ {
			if n == budget {
				t.Fatalf("%v: still busy after %d deliveries", ErrLivelock, budget)
			}
			h.deliverOne(t, 0)
		}
	}
	event(t, "%s: %d frames delivered", what, h.c.Stats().Delivered-before)
}

// converge brings the cluster to quiescence and checks convergence against
// the model.
func (h *harness) converge(t *rapid.T) {
	h.revive(t)
	h.c.Advance(time.Second)
	if h.adv != nil {
		// Records the adversary stamped just inside one member's drift are
		// accepted everywhere once time has caught up with them.
		h.c.Advance(h.cfg.MaxDrift + 2*h.cfg.MaxSkew)
	}
	event(t, "the end: time moves on to %v, the network heals, everything is delivered, anti-entropy runs between every pair until a round changes nothing",
		time.Duration(h.c.Now()-start))
	if len(h.calls) > 0 {
		h.c.Heal()
		h.endCalls(t)
	}
	h.oneSession(t)
	sent := h.c.Stats().Sent
	rounds, err := h.c.Converge(8, budget)
	if err != nil {
		t.Fatalf("after %d rounds: %v", rounds, err)
	}
	event(t, "quiet after %d rounds of anti-entropy that changed records, %d frames", rounds, h.c.Stats().Sent-sent)
	if c := h.cfg.Coverage; c != nil {
		c.Rounds[min(rounds, len(c.Rounds)-1)]++
		st := h.c.Stats()
		c.Frames.Sent += st.Sent
		c.Frames.Delivered += st.Delivered
		c.Frames.Dropped += st.Dropped
		c.Frames.Duplicated += st.Duplicated
		c.Frames.Cut += st.Cut
		c.Outlived[0] += h.c.outlived[0]
		c.Outlived[1] += h.c.outlived[1]
	}
	defer func() {
		if c := h.cfg.Coverage; c != nil {
			c.Fills[0] += h.fillValues
			c.SlowFills[0] += h.slowFills[0]
			c.SlowFills[1] += h.slowFills[1]
			c.Fills[1] += h.fillErrors
			c.Collected[0] += h.gathered[0]
			c.Collected[1] += h.gathered[1]
		}
	}()
	h.check(t)
	h.model.verify(t, h)
	if len(h.refused) > 0 { // the adversary's frames may be refused, the members' may not
		t.Fatalf("%d of the members' frames were refused, the first %s", len(h.refused), h.refused[0])
	}
	for i := range h.c.Size() {
		if !h.c.Down(i) {
			for _, key := range h.cfg.Keys {
				h.read(t, i, key)
			}
		}
	}
}

// oneSession checks that a single anti-entropy session repairs both ways:
// once the network has healed and everything in flight is delivered, one
// session between two members, carried to its end with nothing else
// running, completes on both sides and leaves both holding the same
// records (replicas synchronized by a transport.Node, which say so; the
// responder may leave the opening for a session of its own with the
// initiator, or the initiator give way to one of the responder's). Converge alone hides a session that repairs one side only
// (the other side's sessions repair the rest), as a member with a flaw in
// its responder would be repaired by its own sessions.
// Config.OneWaySessions leaves the check out.
func (h *harness) oneSession(t *rapid.T) {
	if h.cfg.OneWaySessions {
		return
	}
	var up []int
	for i := range h.c.Size() {
		if !h.c.Down(i) {
			up = append(up, i)
		}
	}
	if len(up) < 2 {
		return
	}
	deliver := func(what string) { // all of it: the end of a run loses nothing
		before := h.c.Stats().Delivered
		h.must(t, h.c.DeliverAll(budget))
		event(t, "%s: %d frames delivered", what, h.c.Stats().Delivered-before)
	}
	h.c.Heal()
	h.c.Tick()
	deliver("the network heals, every member's timers run, everything in flight is delivered")
	a := rapid.IntRange(0, len(up)-1).Draw(t, "session from")
	b := rapid.IntRange(0, len(up)-2).Draw(t, "session to")
	if b >= a {
		b++
	}
	a, b = up[a], up[b]
	na, okA := h.c.Replica(a).(SessionCounter)
	nb, okB := h.c.Replica(b).(SessionCounter)
	if !okA || !okB {
		// No word of whether the session completed: it must have
		// repaired both sides, as Replica's contract says (the check ran
		// for the replicas with a transport.Node alone, and a
		// researcher's whose responder answered nothing passed: found
		// by review).
		h.c.StartSession(a, b)
		deliver(fmt.Sprintf("%s starts anti-entropy with %s, alone", h.c.Name(a), h.c.Name(b)))
		h.sameAfterOne(t, a, b, " (a replica that is no SessionCounter must complete every session: see Replica's contract on sessions; Config.OneWaySessions if they repair one side only)")
		return
	}
	sa, sb := na.Sessions(), nb.Sessions()
	h.c.StartSession(a, b)
	deliver(fmt.Sprintf("%s starts anti-entropy with %s, alone", h.c.Name(a), h.c.Name(b)))
	ea, eb := na.Sessions(), nb.Sessions()
	if ea.Completed == sa.Completed || eb.Responded == sb.Responded {
		// Nothing was lost: the session may go unfinished only if b left
		// the opening for its own session with a (deferred), or a gave
		// way to one of b's, which the rounds below complete. Skipped
		// otherwise, a responder that applied nothing passed (found by
		// review).
		if eb.Deferred == sb.Deferred && ea.Yielded == sa.Yielded {
			t.Fatalf("one session from %s to %s, nothing lost, deferred or given way to, did not complete on both sides (%s: %d completed; %s: %d responded)",
				h.c.Name(a), h.c.Name(b), h.c.Name(a), ea.Completed-sa.Completed, h.c.Name(b), eb.Responded-sb.Responded)
		}
		event(t, "the session did not complete on both sides: deferred or given way to")
		if c := h.cfg.Coverage; c != nil {
			c.OneSession[1]++
		}
		return
	}
	h.sameAfterOne(t, a, b, "")
}

// sameAfterOne checks that members a and b, after one session alone, hold
// the same records, and counts the check (Coverage.OneSession).
func (h *harness) sameAfterOne(t *rapid.T, a, b int, hint string) {
	if c := h.cfg.Coverage; c != nil {
		c.OneSession[0]++
	}
	va, vb := Versions(h.c.Replica(a)), Versions(h.c.Replica(b))
	va, vb = withoutAnswers(va, vb), withoutAnswers(vb, va)
	if !slices.Equal(va, vb) {
		t.Fatalf("one session left %s and %s apart: %s holds %v, %s holds %v%s",
			h.c.Name(a), h.c.Name(b), h.c.Name(a), va, h.c.Name(b), vb, hint)
	}
}

// withoutAnswers returns vs without the tombstones written by no replica
// (a rejection's answer, package lww rule 3) of keys other holds no record
// of: the member that rejected a record collected its key, and the answer
// reaches it only in a later session, from the member it answered.
func withoutAnswers(vs, other []crdt.Version) []crdt.Version {
	return slices.DeleteFunc(slices.Clone(vs), func(v crdt.Version) bool {
		return v.Tombstone && v.Time.Node == 0 &&
			!slices.ContainsFunc(other, func(o crdt.Version) bool { return o.Key == v.Key })
	})
}

// lwwStates prints every member's records compactly, for the trace:
// n0 {a="a=3"@15:06:40.000000000+1@1 b deleted@...}, or down.
type lwwStates struct{ h *harness }

func (s lwwStates) String() string {
	var b strings.Builder
	for i := range s.h.c.Size() {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s.h.c.Name(i))
		if s.h.c.Down(i) {
			b.WriteString(" down")
			continue
		}
		recs := s.h.c.Replica(i).Records()
		slices.SortFunc(recs, func(a, b crdt.Record) int { return strings.Compare(a.Key, b.Key) })
		b.WriteString(" {")
		for j, r := range recs {
			if j > 0 {
				b.WriteByte(' ')
			}
			switch {
			case r.Tombstone:
				fmt.Fprintf(&b, "%q deleted", r.Key)
			case r.Evicted:
				fmt.Fprintf(&b, "%q evicted", r.Key)
			default:
				fmt.Fprintf(&b, "%q=%q", r.Key, r.Value)
			}
			fmt.Fprintf(&b, "@%v", r.Time)
		}
		b.WriteString("}")
	}
	return b.String()
}

// byKey orders records by key.
func byKey(a, b crdt.Record) int { return strings.Compare(a.Key, b.Key) }

// foldArriving notes the records of the last frame delivered, which its
// member did not refuse, as received (see received).
func (h *harness) foldArriving() {
	if a := h.arriving; a.recs != nil && a.i < len(h.recv) {
		for _, v := range a.recs {
			h.recv[a.i][v] = true
		}
	}
	h.arriving.recs = nil
}

// received checks that member i, delivered the records recv in deltas
// since the last check (young, within its drift bound, from incarnations
// that had not ended long before: see model.taken) and rejecting none of
// them below a watermark, holds each, or a newer version of its key, or
// collected it. A replica takes such a record, is already past it, or
// rejects it; one that let a delete or a value it was sent go without a
// word (a delete of a key it held no record of, forgotten) served an
// older version of the key it took next, which the check that no member
// goes back on a version passed: it had never held the one it lost.
func (h *harness) received(t fataler, i int, recv, rejected map[crdt.Version]bool) {
	if len(recv) == 0 {
		return
	}
	holds := map[string]crdt.Timestamp{}
	for _, rec := range h.c.Replica(i).Records() {
		holds[rec.Key] = rec.Time
	}
	for _, v := range slices.SortedFunc(maps.Keys(recv), crdt.Version.Compare) { // in order: a failure says the same at each replay
		if rejected[v] || h.collected(i, v) {
			continue
		}
		if ts, ok := holds[v.Key]; !ok || ts.Less(v.Time) {
			t.Fatalf("%s was delivered %v in a delta, rejected nothing of it, and holds %v of %q", h.c.Name(i), v, heldOrNone{ts, ok}, v.Key)
		}
	}
}

type heldOrNone struct {
	ts crdt.Timestamp
	ok bool
}

func (x heldOrNone) String() string {
	if !x.ok {
		return "no record"
	}
	return fmt.Sprintf("only the version at %v", x.ts)
}
