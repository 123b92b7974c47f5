package examples_test

// A researcher's own CRDT under the harness, written from the docs alone:
// an LWW register per key, stamped (phys, counter) with the writer's id
// as the tie-break.

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/proptest"
	"github.com/bcache-go/bcache/transport"
	"pgregory.net/rapid"
)

type lwwEntry struct {
	Val   int64
	Stamp int64
	ID    string
}

func (a lwwEntry) newer(b lwwEntry) bool {
	if a.Stamp != b.Stamp {
		return a.Stamp > b.Stamp
	}
	return a.ID > b.ID
}

type lwwReg struct {
	name, id string
	members  []string
	phys     func() int64
	last     int64
	state    map[string]lwwEntry
	// bugs
	tieKeepsHeld bool // on equal stamps keep what is held, whoever wrote it
}

type regVariant struct {
	tieKeepsHeld bool
	idWithoutInc bool // a new incarnation reuses the old one's id
}

func newReg(v regVariant) func(name string, inc int, phys func() int64) (proptest.Object, error) {
	return func(name string, inc int, phys func() int64) (proptest.Object, error) {
		id := fmt.Sprintf("%s#%d", name, inc)
		if v.idWithoutInc {
			id = name
		}
		return &lwwReg{name: name, id: id, phys: phys, state: map[string]lwwEntry{}, tieKeepsHeld: v.tieKeepsHeld}, nil
	}
}

func (r *lwwReg) stamp() int64 {
	r.last = max(r.phys(), r.last+1)
	return r.last
}

func (r *lwwReg) Do(op proptest.Op) (any, []transport.Envelope) {
	switch op.Name {
	case "read":
		e, ok := r.state[op.Key]
		if !ok {
			return nil, nil
		}
		return e.Val, nil
	case "write":
		e := lwwEntry{Val: op.Arg.(int64), Stamp: r.stamp(), ID: r.id}
		r.state[op.Key] = e
		return e, r.bcast(map[string]lwwEntry{op.Key: e})
	}
	panic("no op " + op.Name)
}

func (r *lwwReg) bcast(m map[string]lwwEntry) []transport.Envelope {
	b, _ := json.Marshal(m)
	var out []transport.Envelope
	for _, n := range r.members {
		if n != r.name {
			out = append(out, transport.Envelope{To: n, Payload: b})
		}
	}
	return out
}

func (r *lwwReg) Receive(_ string, p []byte) []transport.Envelope {
	var m map[string]lwwEntry
	if json.Unmarshal(p, &m) != nil {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		got := m[k]
		r.last = max(r.last, got.Stamp)
		held, ok := r.state[k]
		switch {
		case !ok:
			r.state[k] = got
		case r.tieKeepsHeld && got.Stamp == held.Stamp:
		case got.newer(held):
			r.state[k] = got
		}
	}
	return nil
}

func (r *lwwReg) Tick() []transport.Envelope { return nil }
func (r *lwwReg) Sync(peer string) []transport.Envelope {
	b, _ := json.Marshal(r.state)
	return []transport.Envelope{{To: peer, Payload: b}}
}
func (r *lwwReg) SetMembers(n []string) { r.members = slices.Clone(n) }
func (r *lwwReg) State() any            { return maps.Clone(r.state) }

// regModel: the converged value of a key is a write of it, no older than
// any write of a live incarnation; a read serves a written value.
type regModel struct {
	writes  map[string][]lwwEntry
	by      map[lwwEntry]string // write -> incarnation
	crashed map[string]bool
}

func newRegModel() proptest.Model {
	return &regModel{writes: map[string][]lwwEntry{}, by: map[lwwEntry]string{}, crashed: map[string]bool{}}
}

func (m *regModel) Did(member string, inc int, op proptest.Op, result any) error {
	switch op.Name {
	case "write":
		e := result.(lwwEntry)
		m.writes[op.Key] = append(m.writes[op.Key], e)
		m.by[e] = fmt.Sprintf("%s#%d", member, inc)
	case "read":
		if result == nil {
			return nil
		}
		if !slices.ContainsFunc(m.writes[op.Key], func(e lwwEntry) bool { return e.Val == result.(int64) }) {
			return fmt.Errorf("read %v of %q, never written", result, op.Key)
		}
	}
	return nil
}
func (m *regModel) Crashed(member string, inc int) {
	m.crashed[fmt.Sprintf("%s#%d", member, inc)] = true
}
func (m *regModel) Check(state any) error {
	s := state.(map[string]lwwEntry)
	for _, k := range slices.Sorted(maps.Keys(m.writes)) {
		got, ok := s[k]
		for _, w := range m.writes[k] {
			if m.crashed[m.by[w]] {
				continue
			}
			if !ok {
				return fmt.Errorf("%q lost: live write %v", k, w)
			}
			if w.newer(got) {
				return fmt.Errorf("%q holds %v, older than live write %v", k, got, w)
			}
		}
		if ok && !slices.Contains(m.writes[k], got) {
			return fmt.Errorf("%q holds %v, never written", k, got)
		}
	}
	return nil
}

func regSpec(v regVariant) proptest.Spec {
	return proptest.Spec{
		New: newReg(v),
		Ops: []proptest.OpKind{
			{Name: "write", Arg: func(t *rapid.T) any { return rapid.Int64Range(1, 9).Draw(t, "v") }},
			{Name: "read"},
		},
		Model:    newRegModel,
		Describe: func(b []byte) string { return string(b) },
	}
}

func TestResearcherRegister(t *testing.T) {
	proptest.CheckType(t, regSpec(regVariant{}))
}

func TestResearcherRegisterBroken(t *testing.T) {
	for name, v := range map[string]regVariant{
		"tie keeps held": {tieKeepsHeld: true},
		"id without inc": {idWithoutInc: true},
	} {
		t.Run(name, func(t *testing.T) {
			r := proptest.Counterexample(t, proptest.TypeProperty(regSpec(v)))
			t.Logf("report: %.2000s", r)
			if r == "" {
				t.Fatalf("passed the broken register %s", name)
			}
		})
	}
}

// TestTheEndNarratesItsSyncs: the end of a run syncs every pair of live
// members, and each sync's frames must read as that sync's, not as an
// answer to the frame delivered just before (the end's syncs had no line,
// so "deliver frame #4 n1 -> n0" was followed by "  send frame #5 n0 ->
// n1", the sync's frame, which reads as n0 answering #4).
func TestTheEndNarratesItsSyncs(t *testing.T) {
	spec := regSpec(regVariant{tieKeepsHeld: true})
	spec.TraceFile = t.TempDir() + "/trace"
	r := proptest.Counterexample(t, proptest.TypeProperty(spec))
	if !strings.Contains(r, "not converged") {
		t.Fatalf("the register that keeps what it holds on a tie: %q, want not converged", r)
	}
	b, err := os.ReadFile(spec.TraceFile)
	if err != nil {
		t.Fatal(err)
	}
	_, end, ok := strings.Cut(string(b), "the end:")
	if !ok {
		t.Fatalf("no end in the trace:\n%s", b)
	}
	if !strings.Contains(end, "syncs with") {
		t.Fatalf("the end's syncs are not narrated: its frames read as answers to the deliveries before them:\n%s", end)
	}
}

// TestSimulateTypeSaysWhoDisagrees: SimulateType's failure to agree names
// two nodes that disagree and what they hold, as CheckType's "not
// converged" does; it said only "not agreed 200 rounds after the last
// operation".
func TestSimulateTypeSaysWhoDisagrees(t *testing.T) {
	_, err := proptest.SimulateType(regSpec(regVariant{tieKeepsHeld: true}),
		proptest.TypeSimConfig{Nodes: 5, Ops: 100, PerRound: 5, SyncEvery: 5, Seed: 1, MaxRounds: 200})
	if err == nil {
		t.Fatal("SimulateType passed the register that keeps what it holds on a tie")
	}
	if !strings.Contains(err.Error(), "holds") {
		t.Fatalf("SimulateType's failure says not who disagrees, nor on what: %v", err)
	}
	t.Log(err)
}

// bagSet is a researcher's buggy grow-only set: its elements a list (a
// byte each), its merge an append (not a union), and its sync push-pull: a
// member that receives a state it did not hold answers with its own. Each
// answer doubles what the two hold.
type bagSet struct {
	name    string
	members []string
	elems   []byte
}

func (s *bagSet) Do(op proptest.Op) (any, []transport.Envelope) {
	if op.Name == "add" {
		s.elems = append(s.elems, op.Key[0])
		var out []transport.Envelope
		for _, m := range s.members {
			if m != s.name {
				out = append(out, transport.Envelope{To: m, Payload: slices.Clone(s.elems)})
			}
		}
		return nil, out
	}
	return slices.Contains(s.elems, op.Key[0]), nil
}
func (s *bagSet) Receive(from string, p []byte) []transport.Envelope {
	if slices.Equal(p, s.elems) {
		return nil
	}
	s.elems = append(s.elems, p...)
	if len(s.elems) > 1<<27 {
		panic(fmt.Sprintf("bagSet: %d elements: the harness let its frames grow", len(s.elems)))
	}
	return []transport.Envelope{{To: from, Payload: slices.Clone(s.elems)}}
}
func (s *bagSet) Tick() []transport.Envelope { return nil }
func (s *bagSet) Sync(peer string) []transport.Envelope {
	return []transport.Envelope{{To: peer, Payload: slices.Clone(s.elems)}}
}
func (s *bagSet) SetMembers(n []string) { s.members = slices.Clone(n) }
func (s *bagSet) State() any            { return len(s.elems) }

type anyModel struct{}

func (anyModel) Did(string, int, proptest.Op, any) error { return nil }
func (anyModel) Crashed(string, int)                     {}
func (anyModel) Check(any) error                         { return nil }

var bagSpec = proptest.Spec{
	New: func(name string, _ int, _ func() int64) (proptest.Object, error) {
		return &bagSet{name: name}, nil
	},
	Ops:   []proptest.OpKind{{Name: "add"}, {Name: "contains"}},
	Model: func() proptest.Model { return anyModel{} },
}

// TestFramesThatGrowFailTheRun: a researcher's set whose merge appends
// and whose sync answers what it did not hold doubles its frames at every
// hop. The harness must fail the run (it bounds the frames in flight by
// number, and now by bytes), not the machine's memory: the test binary
// died "fatal error: out of memory", no counterexample, no trace. The bag
// gives up itself (a panic, so that this test fails rather than the
// machine) past 1<<27 elements, beyond the harness's bound.
func TestFramesThatGrowFailTheRun(t *testing.T) {
	start := time.Now()
	r := proptest.Counterexample(t, proptest.TypeProperty(bagSpec))
	t.Logf("CheckType: %v", time.Since(start))
	if !strings.Contains(r, "in flight") {
		t.Fatalf("CheckType of a set whose frames double at every hop: %.300q, want the harness's bound on bytes in flight", r)
	}
	_, err := proptest.Exploration(bagSpec, []proptest.Scripted{
		{Member: 0, Op: proptest.Op{Name: "add", Key: "a"}},
		{Member: 1, Op: proptest.Op{Name: "add", Key: "b"}},
	}, proptest.Explore{MaxTicks: -1})
	if err == nil || !strings.Contains(err.Error(), "in flight") {
		t.Fatalf("Exploration of a set whose frames double at every hop: %.300v", err)
	}
	t.Logf("Exploration: %v", time.Since(start))
	_, err = proptest.SimulateType(bagSpec, proptest.TypeSimConfig{Nodes: 4, Ops: 10, PerRound: 1, SyncEvery: 1, Seed: 1})
	if err == nil || !strings.Contains(err.Error(), "in flight") {
		t.Fatalf("SimulateType of a set whose frames double at every hop: %.300v", err)
	}
}

// pullCounter is a researcher's grow-only counter synced by pulls: Sync
// asks the peer for what changed since the peer's version it last pulled,
// and the answer moves that mark on. Its bug: the answer does not say
// which incarnation asked, so an answer meant for an incarnation that
// crashed, arriving at its successor, moves the successor's mark past
// what it never received, and it never pulls it again.
type pullCounter struct {
	name, slot string
	slots      map[string]int64
	changed    map[string]int64 // slot -> this replica's version when it last changed
	version    int64
	pulled     map[string]int64 // peer incarnation (its slot) -> its version last pulled
}

type pullMsg struct {
	Since map[string]int64 `json:"since,omitempty"` // the asker's marks, by incarnation
	Req   bool             `json:"req,omitempty"`
	From  string           `json:"from,omitempty"` // the answering incarnation
	Slots map[string]int64 `json:"slots,omitempty"`
	Ver   int64            `json:"ver,omitempty"`
}

func (c *pullCounter) set(slot string, n int64) {
	if n > c.slots[slot] {
		c.slots[slot] = n
		c.version++
		c.changed[slot] = c.version
	}
}

func (c *pullCounter) Do(op proptest.Op) (any, []transport.Envelope) {
	if op.Name == "inc" {
		c.set(c.slot, c.slots[c.slot]+1)
		return nil, nil
	}
	var v int64
	for _, n := range c.slots {
		v += n
	}
	return v, nil
}

func (c *pullCounter) Receive(from string, p []byte) []transport.Envelope {
	var m pullMsg
	if json.Unmarshal(p, &m) != nil {
		return nil
	}
	if m.Req {
		ans := pullMsg{Slots: map[string]int64{}, Ver: c.version, From: c.slot}
		for s, v := range c.changed {
			if v > m.Since[c.slot] {
				ans.Slots[s] = c.slots[s]
			}
		}
		b, _ := json.Marshal(ans)
		return []transport.Envelope{{To: from, Payload: b}}
	}
	for _, s := range slices.Sorted(maps.Keys(m.Slots)) {
		c.set(s, m.Slots[s])
	}
	c.pulled[m.From] = max(c.pulled[m.From], m.Ver)
	return nil
}

func (c *pullCounter) Tick() []transport.Envelope { return nil }
func (c *pullCounter) Sync(peer string) []transport.Envelope {
	since := map[string]int64{}
	for s, v := range c.pulled {
		if strings.HasPrefix(s, peer+"#") {
			since[s] = v
		}
	}
	b, _ := json.Marshal(pullMsg{Req: true, Since: since})
	return []transport.Envelope{{To: peer, Payload: b}}
}
func (c *pullCounter) SetMembers([]string) {}
func (c *pullCounter) State() any          { return maps.Clone(c.slots) }

// pullModel: every live incarnation's increments are all counted, a
// crashed one's at most as many as it made.
type pullModel struct {
	made    map[string]int64
	crashed map[string]bool
}

func (m *pullModel) Did(member string, inc int, op proptest.Op, _ any) error {
	if op.Name == "inc" {
		m.made[fmt.Sprintf("%s#%d", member, inc)]++
	}
	return nil
}
func (m *pullModel) Crashed(member string, inc int) {
	m.crashed[fmt.Sprintf("%s#%d", member, inc)] = true
}
func (m *pullModel) Check(state any) error {
	s := state.(map[string]int64)
	for _, slot := range slices.Sorted(maps.Keys(m.made)) {
		if n := s[slot]; n > m.made[slot] || !m.crashed[slot] && n != m.made[slot] {
			return fmt.Errorf("slot %s counts %d, made %d", slot, n, m.made[slot])
		}
	}
	return nil
}

var pullSpec = proptest.Spec{
	New: func(name string, inc int, _ func() int64) (proptest.Object, error) {
		return &pullCounter{name: name, slot: fmt.Sprintf("%s#%d", name, inc), slots: map[string]int64{},
			changed: map[string]int64{}, pulled: map[string]int64{}}, nil
	},
	Ops:      []proptest.OpKind{{Name: "inc"}, {Name: "read"}},
	Model:    func() proptest.Model { return &pullModel{made: map[string]int64{}, crashed: map[string]bool{}} },
	Describe: func(b []byte) string { return string(b) },
}

// TestAnswersOutliveTheIncarnationThatAsked: a frame in flight to a
// member that crashes may reach the incarnation that restarts in its
// place, as a datagram to its address does; the harness cut every frame
// to and from a member as it crashed, so a type that takes an answer
// meant for its predecessor for its own passed every run.
func TestAnswersOutliveTheIncarnationThatAsked(t *testing.T) {
	spec := pullSpec
	spec.MaxNodes = 2 // a third member relays what the answer missed
	spec.Weights = map[string]int{"sync": 4, "deliver": 4, "crash": 2, "restart": 2,
		"read": 0, "partition": 0, "heal": 0, "tick": 0, "drop": 0, "duplicate": 0, "reorder": 0}
	if r := proptest.Counterexample(t, proptest.TypeProperty(spec)); r == "" {
		t.Fatal("CheckType passed a counter that takes an answer meant for the incarnation before it for its own")
	} else {
		t.Log(r)
	}
}
