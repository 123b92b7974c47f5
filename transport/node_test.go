package transport

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// memReplica is a minimal Replica for protocol tests: last writer wins, no
// collection, digest recomputed on demand.
type memReplica struct {
	bits     int
	recs     map[string]crdt.Record
	synced   int64
	wm       int64  // if set, a watermark (rule 3): unheld keys at or below it are rejected
	onAppend func() // called when the node asks for hashes or versions
}

func (m *memReplica) asked() {
	if m.onAppend != nil {
		m.onAppend()
	}
}

func newMemReplica(bits int) *memReplica {
	return &memReplica{bits: bits, recs: map[string]crdt.Record{}}
}

func (m *memReplica) leaf(key string) uint32 { return crdt.LeafIndex(crdt.HashKey(key), 0, m.bits) }

func (m *memReplica) tree() *crdt.Tree {
	t, _ := crdt.NewTree(m.bits)
	for _, r := range m.recs {
		t.Add(m.leaf(r.Key), r.Hash())
	}
	return t
}

func (m *memReplica) DigestBits() int { return m.bits }

func (m *memReplica) AppendHashes(dst []uint64, level int, parents []uint32) []uint64 {
	m.asked()
	t := m.tree()
	if level == 0 {
		return append(dst, t.Root().Hash())
	}
	for _, p := range parents {
		for _, c := range t.Children(level-1, p) {
			dst = append(dst, c.Hash())
		}
	}
	return dst
}

func (m *memReplica) AppendVersions(dst []crdt.Version, leaf uint32) []crdt.Version {
	m.asked()
	for _, r := range m.recs {
		if m.leaf(r.Key) == leaf {
			dst = append(dst, r.Version())
		}
	}
	return dst
}

func (m *memReplica) AppendRecords(dst []crdt.Record, leaf uint32) []crdt.Record {
	for _, r := range m.recs {
		if m.leaf(r.Key) == leaf {
			dst = append(dst, r)
		}
	}
	return dst
}

func (m *memReplica) Apply(r crdt.Record, delta bool, now int64) crdt.Outcome {
	if _, held := m.recs[r.Key]; m.wm != 0 && !held && r.Time.Wall <= m.wm {
		return crdt.Rejected
	}
	if cur, ok := m.recs[r.Key]; ok && !cur.Time.Less(r.Time) {
		return crdt.Stale
	}
	m.recs[r.Key] = r
	return crdt.Applied
}

func (m *memReplica) Lookup(key string) (crdt.Record, bool) {
	r, ok := m.recs[key]
	return r, ok
}

// Tombstone answers a rejection: above the watermark, if one is set.
func (m *memReplica) Tombstone(key string) crdt.Record {
	if m.wm != 0 {
		return crdt.Record{Key: key, Tombstone: true, Time: crdt.Timestamp{Wall: m.wm + 1}}
	}
	return crdt.Record{Key: key, Tombstone: true, Time: crdt.Timestamp{Wall: 1}}
}

func (m *memReplica) MarkSynced(at int64) { m.synced = max(m.synced, at) }

func (m *memReplica) StepBack(d int64) { m.synced -= d }

// testNet wires nodes together and pumps frames between them.
type testNet struct {
	t     *testing.T
	now   *crdt.ManualTime
	nodes map[string]*Node
	reps  map[string]*memReplica
	bytes int
	// drop, if set, says which frames pump loses instead of delivering.
	drop func(from string, e Envelope) bool
}

func newTestNet(t *testing.T, bits int, cfg Config, names ...string) *testNet {
	n := &testNet{t: t, now: crdt.NewManualTime(1_000_000_000), nodes: map[string]*Node{}, reps: map[string]*memReplica{}}
	for i, name := range names {
		c := cfg
		n.reps[name] = newMemReplica(bits)
		c.Name, c.Replica, c.Clock = name, n.reps[name], crdt.NewHLC(crdt.NodeID(i+1), n.now.Now, 0)
		node, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		node.SetMembers(names, n.now.Now())
		n.nodes[name] = node
	}
	return n
}

// pump delivers envelopes, and everything they cause, until quiet.
func (n *testNet) pump(from string, envs []Envelope) { n.pumpEach(from, envs, nil) }

// pumpEach is pump calling see, if set, before it delivers each frame:
// see may put more frames in flight, sent by the member it names.
func (n *testNet) pumpEach(from string, envs []Envelope, see func(from string, e Envelope) (string, []Envelope)) {
	type hop struct {
		from string
		e    Envelope
	}
	var queue []hop
	add := func(from string, envs []Envelope) {
		for _, e := range envs {
			queue = append(queue, hop{from, e})
		}
	}
	add(from, envs)
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		if n.drop != nil && n.drop(h.from, h.e) {
			continue
		}
		if see != nil {
			add(see(h.from, h.e))
		}
		n.bytes += len(h.e.Payload)
		out, err := n.nodes[h.e.To].Receive(h.from, h.e.Payload, n.now.Now())
		if err != nil {
			n.t.Fatal(err)
		}
		add(h.e.To, out)
	}
}

func (n *testNet) write(name, key, value string) []Envelope {
	c := n.nodes[name].cfg.Clock
	r := crdt.Record{Key: key, Value: []byte(value), Time: c.Now()}
	n.reps[name].Apply(r, false, 0)
	return n.nodes[name].Write(r, n.now.Now())
}

func TestNewValidates(t *testing.T) {
	rep := newMemReplica(8)
	clock := crdt.NewHLC(1, crdt.NewManualTime(0).Now, 0)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no name", Config{Replica: rep, Clock: clock}},
		{"no replica", Config{Name: "a", Clock: clock}},
		{"no clock", Config{Name: "a", Replica: rep}},
		{"bad digest width", Config{Name: "a", Replica: newMemReplica(6), Clock: clock}},
		{"negative interval", Config{Name: "a", Replica: rep, Clock: clock, FlushInterval: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); !errors.Is(err, ErrConfig) {
				t.Fatalf("New: error %v, want ErrConfig", err)
			}
		})
	}
}

// TestWriteSendsAtOnceWhenIdleAndBatchesWhenBusy: the first write after a
// quiet period leaves at once; writes within the flush interval wait for
// the deadline, coalesced per key.
func TestWriteSendsAtOnceWhenIdleAndBatchesWhenBusy(t *testing.T) {
	n := newTestNet(t, 8, Config{FlushInterval: time.Millisecond, AntiEntropyInterval: time.Hour}, "a", "b")
	n.nodes["a"].Tick(n.now.Now()) // starts the first session; the next is an hour away
	if out := n.write("a", "k", "1"); len(out) != 1 || out[0].To != "b" {
		t.Fatalf("idle write sent %v, want one frame to b", out)
	}
	n.now.Advance(100 * time.Microsecond)
	for i, v := range []string{"2", "3"} {
		if out := n.write("a", "k", v); len(out) != 0 {
			t.Fatalf("busy write %d sent %d frames at once", i, len(out))
		}
	}
	n.write("a", "other", "x")
	node := n.nodes["a"]
	due := node.NextDeadline()
	if want := n.now.Now() - int64(100*time.Microsecond) + int64(time.Millisecond); due != want {
		t.Fatalf("NextDeadline = %d, want %d (one flush interval after the last flush)", due, want)
	}
	if out := node.Tick(due - 1); len(out) != 0 {
		t.Fatalf("Tick before the deadline sent %d frames", len(out))
	}
	n.now.Set(due)
	out := node.Tick(due)
	if len(out) != 1 {
		t.Fatalf("Tick at the deadline sent %d frames, want 1", len(out))
	}
	m, err := wire.NewCodec(wire.Limits{}).Decode(out[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	d := m.(*wire.Delta)
	if len(d.Records) != 2 || string(d.Records[0].Value) != "3" || d.Records[1].Key != "other" {
		t.Fatalf("batch = %+v, want k=3 and other", d.Records)
	}
	if s := node.Stats(); s.DeltasCoalesced != 1 || s.DeltaBatchesSent != 2 {
		t.Fatalf("coalesced %d, batches %d; want 1 and 2", s.DeltasCoalesced, s.DeltaBatchesSent)
	}
}

// TestFullPacketFlushesAtOnce: a busy node still sends as soon as a
// packet's worth is queued, and no batch exceeds the budget.
func TestFullPacketFlushesAtOnce(t *testing.T) {
	n := newTestNet(t, 8, Config{PacketBudget: 600}, "a", "b")
	n.write("a", "first", "x")
	var frames []Envelope
	for i := 0; len(frames) == 0; i++ {
		if i > 100 {
			t.Fatal("no flush after 100 writes of 100 bytes with a 600-byte budget")
		}
		frames = n.write("a", fmt.Sprintf("key-%02d", i), string(make([]byte, 100)))
	}
	for _, f := range frames {
		if len(f.Payload) > 600 {
			t.Fatalf("frame of %d bytes, budget 600", len(f.Payload))
		}
	}
}

func TestFullBufferDropsAndCounts(t *testing.T) {
	n := newTestNet(t, 8, Config{MaxPending: 2, FlushInterval: time.Millisecond}, "a", "b")
	n.write("a", "k0", "v") // sent at once: the buffer is empty again
	for i := 1; i <= 3; i++ {
		n.write("a", fmt.Sprintf("k%d", i), "v")
	}
	if s := n.nodes["a"].Stats(); s.DeltasDropped != 1 {
		t.Fatalf("dropped %d, want 1", s.DeltasDropped)
	}
}

// TestWriteGroupLeavesAtOnce: without a FlushInterval nothing waits for
// a timer: a group of writes leaves as one batch per member, at once, and
// so does a lone write that follows it at the same instant.
func TestWriteGroupLeavesAtOnce(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b", "c")
	a := n.nodes["a"]
	var group []crdt.Record
	for i := range 5 {
		r := crdt.Record{Key: fmt.Sprint("k", i), Value: []byte("v"), Time: a.cfg.Clock.Now()}
		n.reps["a"].Apply(r, false, 0)
		group = append(group, r)
	}
	out := a.WriteGroup(group, n.now.Now())
	if len(out) != 2 || a.Stats().DeltaBatchesSent != 1 || a.Stats().DeltaRecordsSent != 5 {
		t.Fatalf("a group of 5 writes: %d frames, %d batches of %d records; want one batch of 5 to each of 2 members",
			len(out), a.Stats().DeltaBatchesSent, a.Stats().DeltaRecordsSent)
	}
	n.pump("a", out)
	if out = n.write("a", "lone", "v"); len(out) != 2 {
		t.Fatalf("a lone write right after a group: %d frames, want 2 (none waits for a flush)", len(out))
	}
	if len(a.out.recs) != 0 {
		t.Fatalf("%d writes still queued", len(a.out.recs))
	}
	n.pump("a", out)
	if _, ok := n.reps["c"].Lookup("lone"); !ok {
		t.Fatal("c did not get the lone write")
	}
}

func TestDuplicateDeltaIsNotForwardedTwice(t *testing.T) {
	n := newTestNet(t, 8, Config{Fanout: 1}, "a", "b", "c")
	out := n.write("a", "k", "v")
	if len(out) != 1 {
		t.Fatalf("fanout 1: %d frames, want 1", len(out))
	}
	relay := out[0].To
	fwd, err := n.nodes[relay].Receive("a", out[0].Payload, n.now.Now())
	if err != nil || len(fwd) != 1 {
		t.Fatalf("relay forwarded %d frames (%v), want 1", len(fwd), err)
	}
	again, err := n.nodes[relay].Receive("a", out[0].Payload, n.now.Now())
	if err != nil || len(again) != 0 {
		t.Fatalf("duplicate forwarded %d frames (%v)", len(again), err)
	}
	if s := n.nodes[relay].Stats(); s.DuplicateDeltas != 1 || s.DeltasForwarded != 1 {
		t.Fatalf("duplicates %d, forwarded %d; want 1 and 1", s.DuplicateDeltas, s.DeltasForwarded)
	}
}

func TestRecordFromTheFutureIsRefused(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	future := crdt.Record{Key: "k", Value: []byte("v"), Time: crdt.Timestamp{Wall: n.now.Now() + int64(time.Hour), Node: 9}}
	frame, err := wire.NewCodec(wire.Limits{}).Encode(nil, &wire.Delta{Origin: "a", OriginID: 9, Seq: 1, Records: []crdt.Record{future}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.nodes["b"].Receive("a", frame, n.now.Now()); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.reps["b"].recs["k"]; ok {
		t.Fatal("a record an hour ahead was applied")
	}
	if s := n.nodes["b"].Stats(); s.ClockDriftRejects != 1 {
		t.Fatalf("clock drift rejects = %d, want 1", s.ClockDriftRejects)
	}
	if last := n.nodes["b"].cfg.Clock.Last(); last.Wall >= future.Time.Wall {
		t.Fatalf("the refused record moved the clock to %v", last)
	}
}

func TestBadFramesAreCountedNotApplied(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	good, err := wire.NewCodec(wire.Limits{}).Encode(nil, &wire.Delta{Origin: "a", OriginID: 1, Seq: 1, Records: []crdt.Record{{Key: "k", Time: crdt.Timestamp{Wall: 1, Node: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	badVersion := append([]byte{99}, good[1:]...)
	for _, frame := range [][]byte{nil, {1}, good[:len(good)-1], badVersion, []byte("garbage that is not a frame")} {
		if _, err := n.nodes["b"].Receive("a", frame, n.now.Now()); err == nil {
			t.Fatalf("frame %x accepted", frame)
		}
	}
	s := n.nodes["b"].Stats()
	if s.RejectedFrames() != 5 || s.RejectedVersion == 0 || len(n.reps["b"].recs) != 0 {
		t.Fatalf("rejected %d (version %d), records %d; want 5 rejected, none applied", s.RejectedFrames(), s.RejectedVersion, len(n.reps["b"].recs))
	}
}

// TestOnlyDirectDeltasComeWithoutASender: a host may leave the sender's
// name out of a direct delta (Envelope.Anonymous), and only out of that:
// a write's envelopes to the members of a one-hop tree are marked, a
// direct delta without a sender is applied, and a relayed delta or an
// anti-entropy frame without one is refused and counted, applying nothing.
func TestOnlyDirectDeltasComeWithoutASender(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b", "c")
	envs := n.write("a", "k", "v")
	if len(envs) != 2 || !envs[0].Anonymous || !envs[1].Anonymous {
		t.Fatalf("a write's envelopes in a cluster of three: %+v, want two, marked anonymous", envs)
	}
	if _, err := n.nodes["b"].Receive("", envs[0].Payload, n.now.Now()); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.reps["b"].recs["k"]; !ok {
		t.Fatal("a direct delta without a sender was not applied")
	}
	rec := crdt.Record{Key: "relayed", Value: []byte("v"), Time: crdt.Timestamp{Wall: n.now.Now(), Node: 1}}
	codec := wire.NewCodec(wire.Limits{})
	relayed, err := codec.Encode(nil, &wire.Delta{Origin: "a", OriginID: 1, Seq: 1, Records: []crdt.Record{rec}})
	if err != nil {
		t.Fatal(err)
	}
	digest, err := codec.Encode(nil, &wire.Digest{Session: wire.Session{ID: 1}, Hashes: []uint64{1}, Cut: crdt.Timestamp{Wall: 1, Node: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, frame := range [][]byte{relayed, digest} {
		if out, err := n.nodes["c"].Receive("", frame, n.now.Now()); err == nil || len(out) != 0 {
			t.Fatalf("frame %x without a sender: error %v, %d answers; want refused", frame, err, len(out))
		}
	}
	if s := n.nodes["c"].Stats(); s.RejectedMalformed != 2 || s.FramesSent+s.DeltaBatchesReceived != 0 || len(n.reps["c"].recs) != 0 {
		t.Fatalf("c: %d malformed, %d frames sent, %d batches, %d records; want 2 refused and nothing done",
			s.RejectedMalformed, s.FramesSent, s.DeltaBatchesReceived, len(n.reps["c"].recs))
	}
}

// TestDirectDeltasTakeTheirShortFormWhenAllowed: a node sends its direct
// deltas as wire.Direct while its host says every member takes them, as
// Deltas otherwise, and applies either; a relayed delta (a tree deeper
// than one hop) stays a Delta.
func TestDirectDeltasTakeTheirShortFormWhenAllowed(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	for _, use := range []bool{false, true} {
		n.nodes["a"].UseDirect(use)
		key := fmt.Sprint("k-", use)
		envs := n.write("a", key, "v")
		want := wire.KindDelta
		if use {
			want = wire.KindDirect
		}
		if len(envs) != 1 || envs[0].Kind != want || wire.Kind(envs[0].Payload[1]) != want {
			t.Fatalf("UseDirect(%v): envelopes %+v, want one of kind %s", use, envs, want)
		}
		n.pump("a", envs)
		if _, ok := n.reps["b"].recs[key]; !ok {
			t.Fatalf("UseDirect(%v): b did not apply the %s", use, want)
		}
	}
	wide := newTestNet(t, 8, Config{Fanout: 2}, "a", "b", "c", "d", "e")
	wide.nodes["a"].UseDirect(true)
	for _, e := range wide.write("a", "k", "v") {
		if e.Kind != wire.KindDelta || e.Anonymous {
			t.Fatalf("a relayed batch went as %s (anonymous %v), want a named Delta", e.Kind, e.Anonymous)
		}
	}
}

// TestConvergedExchangeIsSmall: a session between replicas that agree
// costs a few hundred bytes, whatever the number of keys.
func TestConvergedExchangeIsSmall(t *testing.T) {
	n := newTestNet(t, 16, Config{}, "a", "b")
	for i := range 10_000 {
		r := crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}}
		n.reps["a"].recs[r.Key] = r
		n.reps["b"].recs[r.Key] = r
	}
	n.pump("a", n.nodes["a"].StartSession("b", n.now.Now()))
	if n.bytes > 512 {
		t.Fatalf("converged session moved %d bytes, want at most 512", n.bytes)
	}
	if s := n.nodes["a"].Stats(); s.SessionsCompleted != 1 {
		t.Fatalf("sessions completed = %d, want 1", s.SessionsCompleted)
	}
	// The initiator is synced; the responder, to which an opening, with
	// no token, proves nothing, only counts it (TestForgedOpeningCompletesNothing).
	if n.reps["a"].synced == 0 || n.reps["b"].synced != 0 || n.nodes["b"].Stats().SessionsResponded != 1 {
		t.Fatalf("a converged session: a synced at %d, b at %d, b responded %d; want a alone synced, b's count 1",
			n.reps["a"].synced, n.reps["b"].synced, n.nodes["b"].Stats().SessionsResponded)
	}
}

// TestSessionsOpenWithTheRoot: with OpenWithRoot, a session between
// replicas that agree opens with the root alone and costs well under half
// of one opened at level 1, at every digest depth; one between replicas
// that differ repairs both ways, at an even depth (the responder answers
// with its root, and the initiator goes on from level 1) as at an odd
// one; and a session a reader hurried opens at the level of the tree's
// parity, as without.
func TestSessionsOpenWithTheRoot(t *testing.T) {
	session := func(bits int, root bool, differ bool) (bytes int, n *testNet) {
		n = newTestNet(t, bits, Config{LeavesPerStep: 3}, "a", "b")
		for _, name := range []string{"a", "b"} {
			n.nodes[name].OpenWithRoot(root)
		}
		for i := range 200 {
			r := crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}}
			n.reps["a"].recs[r.Key] = r
			if !differ || i%3 != 0 {
				n.reps["b"].recs[r.Key] = r
			}
		}
		if differ {
			r := crdt.Record{Key: "only-b", Value: []byte("v"), Time: crdt.Timestamp{Wall: 7, Node: 2}}
			n.reps["b"].recs[r.Key] = r
		}
		n.pump("a", n.nodes["a"].StartSession("b", n.now.Now()))
		return n.bytes, n
	}
	for _, bits := range []int{8, 12, 16} {
		level1, _ := session(bits, false, false)
		root, _ := session(bits, true, false)
		if 2*root > level1 && bits != 12 { // at 12 bits the opening is the root already
			t.Errorf("%d-bit digest: a converged session moved %d bytes opening with the root, %d at level 1", bits, root, level1)
		}
		_, n := session(bits, true, true)
		if len(n.reps["a"].recs) != 201 || len(n.reps["b"].recs) != 201 {
			t.Errorf("%d-bit digest, opened with the root: a holds %d records, b %d, want 201 each", bits, len(n.reps["a"].recs), len(n.reps["b"].recs))
		}
		if s := n.nodes["a"].Stats(); s.SessionsCompleted != 1 || s.Stray != 0 || n.nodes["b"].Stats().Stray != 0 {
			t.Errorf("%d-bit digest: %d sessions completed, stray %d and %d", bits, s.SessionsCompleted, s.Stray, n.nodes["b"].Stats().Stray)
		}
		t.Logf("%d-bit digest: a converged session %d bytes opening with the root, %d at level 1", bits, root, level1)
	}
	n := newTestNet(t, 16, Config{}, "a", "b")
	n.nodes["a"].OpenWithRoot(true)
	n.pump("a", n.nodes["a"].Tick(n.now.Now())) // the session with b, an arrival
	if s := n.nodes["a"].Stats(); s.SessionsCompleted != 1 {
		t.Fatalf("%d sessions completed with the arrival, want 1", s.SessionsCompleted)
	}
	n.nodes["a"].Hurry(n.now.Now())
	envs := n.nodes["a"].Tick(n.now.Now())
	if len(envs) != 1 {
		t.Fatalf("a hurried tick sent %d frames, want 1", len(envs))
	}
	m, err := wire.NewCodec(wire.Limits{}).Decode(envs[0].Payload)
	if d, ok := m.(*wire.Digest); err != nil || !ok || d.Level != 1 {
		t.Fatalf("a hurried session opened with %+v (%v), want a digest of level 1", m, err)
	}
}

// TestLateOpeningWaitsForTheSessionUnderWay: a member that holds every
// record has a session with an empty one under way, past its digests, when
// the empty one opens a session of its own (its first opening was lost or
// late): the holder leaves it unanswered, so that every record moves once,
// and the joiner's opening, sent again once the holder's session has
// ended, completes with nothing left to move.
func TestLateOpeningWaitsForTheSessionUnderWay(t *testing.T) {
	const records = 500
	n := newTestNet(t, 8, Config{LeavesPerStep: 4, MaxRepairBytes: 2000}, "holder", "joiner")
	for i := range records {
		r := crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: make([]byte, 20), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}}
		n.reps["holder"].recs[r.Key] = r
	}
	opened := false
	n.pumpEach("holder", n.nodes["holder"].StartSession("joiner", n.now.Now()), func(string, Envelope) (string, []Envelope) {
		if opened || n.nodes["holder"].ae.s.differing == 0 {
			return "", nil
		}
		opened = true
		return "joiner", n.nodes["joiner"].StartSession("holder", n.now.Now())
	})
	if !opened || len(n.reps["joiner"].recs) != records {
		t.Fatalf("the joiner holds %d records, want %d (the holder's session found what differs: %v)", len(n.reps["joiner"].recs), records, opened)
	}
	if got := n.nodes["joiner"].Stats().RepairRecordsReceived; got != records {
		t.Fatalf("the joiner received %d repair records for %d keys, want each once", got, records)
	}
	if got := n.nodes["holder"].Stats().OpeningsDeferred; got != 1 {
		t.Fatalf("the holder deferred %d openings, want 1", got)
	}
	n.now.Advance(time.Second) // past the joiner's first retry
	n.pump("joiner", n.nodes["joiner"].Tick(n.now.Now()))
	if s := n.nodes["joiner"].Stats(); s.SessionsCompleted != 1 || s.RepairRecordsReceived != records {
		t.Fatalf("the joiner's session, opened again: %d completed, %d records received; want 1 and still %d", s.SessionsCompleted, s.RepairRecordsReceived, records)
	}
}

// TestSessionRepairsBothWays: differences on both sides, including more
// differing leaves than one step carries and repairs cut at the size limit,
// are all repaired in one session.
//
// 2,000 keys over 256 leaves: every leaf holds keys of both sides, so the
// comparison within a leaf must send both ways. With 40, keys rarely
// shared a leaf, and a session that repaired one way only within a leaf
// passed (found by review).
func TestSessionRepairsBothWays(t *testing.T) {
	const keys = 2000
	n := newTestNet(t, 8, Config{LeavesPerStep: 3, MaxRepairBytes: 200}, "a", "b")
	for i := range keys {
		side := []string{"a", "b"}[i%2]
		r := crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: make([]byte, 50), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}}
		n.reps[side].recs[r.Key] = r
	}
	n.pump("a", n.nodes["a"].StartSession("b", n.now.Now()))
	if len(n.reps["a"].recs) != keys || len(n.reps["b"].recs) != keys {
		t.Fatalf("after one session a holds %d, b holds %d records; want %d each", len(n.reps["a"].recs), len(n.reps["b"].recs), keys)
	}
	if s := n.nodes["a"].Stats(); s.SessionsCompleted != 1 || n.reps["b"].synced == 0 {
		t.Fatalf("sessions completed %d, b synced at %d", s.SessionsCompleted, n.reps["b"].synced)
	}
}

// TestSessionTimesOut: a session whose peer never answers sends its
// request again at its retries (arrivalRetry for a member that arrived,
// else an eighth of the timeout; then doubling, up to an eighth for a
// digest step) and ends at its timeout, however many retries it made.
func TestSessionTimesOut(t *testing.T) {
	n := newTestNet(t, 8, Config{SessionTimeout: time.Second, AntiEntropyInterval: time.Hour}, "a", "b")
	node := n.nodes["a"]
	start := n.now.Now()
	if out := node.Tick(start); len(out) != 1 || out[0].Kind != wire.KindDigest {
		t.Fatalf("first Tick sent %v, want a digest", out)
	}
	now := start
	for i := 0; i < 10 && node.Stats().SessionsTimedOut == 0; i++ {
		next := node.NextDeadline()
		if next <= now {
			t.Fatalf("NextDeadline %d at %d: a host waiting for it would spin", next, now)
		}
		now = next
		node.Tick(now)
	}
	if now != start+int64(time.Second) {
		t.Fatalf("the session ended at %d, want its timeout %d", now, start+int64(time.Second))
	}
	// The first session is with a member that arrived (every member
	// did, at the start): its first retry comes after arrivalRetry, the
	// next 100 ms later, then every eighth of the timeout (a digest step).
	if s := node.Stats(); s.SessionsTimedOut != 1 || s.StepsRetried != 8 || s.SessionsStarted != 1 {
		t.Fatalf("timed out %d, retried %d, started %d; want 1, 8 (at 50, 150, 275, 400, 525, 650, 775 and 900 ms), 1", s.SessionsTimedOut, s.StepsRetried, s.SessionsStarted)
	}
}

// TestLostRepliesAreRetried: a session survives lost datagrams: a step
// whose reply does not come is sent again as a new step, and the session
// completes.
func TestLostRepliesAreRetried(t *testing.T) {
	n := newTestNet(t, 8, Config{SessionTimeout: time.Second, AntiEntropyInterval: time.Hour}, "a", "b")
	n.reps["b"].recs["k"] = crdt.Record{Key: "k", Value: []byte("v"), Time: crdt.Timestamp{Wall: 1, Node: 2}}
	a := n.nodes["a"]
	out := a.Tick(n.now.Now())
	for range 20 { // drop every first reply of a step
		if len(out) == 0 {
			break
		}
		replies, err := n.nodes["b"].Receive("a", out[0].Payload, n.now.Now())
		if err != nil {
			t.Fatal(err)
		}
		_ = replies // lost
		n.now.Set(a.NextDeadline())
		out = a.Tick(n.now.Now()) // the retry
		if len(out) == 0 {
			break
		}
		n.pump("a", out) // delivered, with every reply
		out = nil
	}
	if s := a.Stats(); s.SessionsCompleted != 1 || s.StepsRetried == 0 {
		t.Fatalf("completed %d, retried %d; want a completed session with retries", s.SessionsCompleted, s.StepsRetried)
	}
	if _, ok := n.reps["a"].recs["k"]; !ok {
		t.Fatal("the record was not repaired")
	}
}

// TestNextDeadlineWhileASessionLasts: while a session outlasts the
// interval between sessions, the next deadline is its next retry or its
// timeout, not the start of the next session, which has passed: a host
// waiting for it would otherwise spin.
func TestNextDeadlineWhileASessionLasts(t *testing.T) {
	n := newTestNet(t, 8, Config{AntiEntropyInterval: 100 * time.Millisecond, SessionTimeout: time.Second}, "a", "b")
	node := n.nodes["a"]
	start := n.now.Now()
	node.Tick(start) // starts a session b never answers
	later := start + int64(500*time.Millisecond)
	node.Tick(later)
	if got := node.NextDeadline(); got <= later || got > start+int64(time.Second) {
		t.Fatalf("NextDeadline %d at %d, want a retry or the timeout %d", got, later, start+int64(time.Second))
	}
}

// TestArrivingMembersGetASessionAtOnce: a member new to the view (joined,
// restarted, back from a partition) gets a session at once, before the
// next interval, and the node then goes back to its round; one that left
// the view before its turn is skipped.
func TestArrivingMembersGetASessionAtOnce(t *testing.T) {
	n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Hour}, "a", "b", "c", "d")
	a := n.nodes["a"]
	a.SetMembers([]string{"a"}, n.now.Now())
	n.pump("a", a.Tick(n.now.Now())) // alone: nothing to do until the interval
	a.SetMembers([]string{"a", "b", "c", "d"}, n.now.Now())
	if d := a.NextDeadline(); d > n.now.Now() {
		t.Fatalf("NextDeadline %d after members arrived, want now (%d) or before", d, n.now.Now())
	}
	a.SetMembers([]string{"a", "b", "d"}, n.now.Now()) // c leaves before its turn
	var peers []string
	for range 3 {
		out := a.Tick(n.now.Now())
		if len(out) == 0 {
			break
		}
		peers = append(peers, out[0].To)
		n.pump("a", out) // the session completes
	}
	if !slices.Equal(peers, []string{"b", "d"}) {
		t.Fatalf("sessions at once with %v, want b then d", peers)
	}
	if d := a.NextDeadline(); d < n.now.Now()+int64(time.Hour)/2 {
		t.Fatalf("NextDeadline %d after the arrivals were served, want the interval", d)
	}
}

// TestSyncsAreRecorded: a completed exchange sets both sides' first sync
// and last sync with the other; a member that leaves the view is
// forgotten.
func TestSyncsAreRecorded(t *testing.T) {
	n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Hour}, "a", "b", "c")
	a, b := n.nodes["a"], n.nodes["b"]
	if a.FirstSync() != 0 || len(a.LastSyncs()) != 0 {
		t.Fatalf("before any exchange: first sync %d, last syncs %v", a.FirstSync(), a.LastSyncs())
	}
	n.reps["b"].recs["k"] = crdt.Record{Key: "k", Value: []byte("v"), Time: crdt.Timestamp{Wall: 1, Node: 2}}
	n.now.Advance(time.Second)
	n.pump("a", a.StartSession("b", n.now.Now()))
	want := n.now.Now()
	if a.FirstSync() != want || b.FirstSync() != want {
		t.Fatalf("first syncs %d and %d, want %d on both sides", a.FirstSync(), b.FirstSync(), want)
	}
	if got := a.LastSyncs(); len(got) != 1 || got["b"] != want {
		t.Fatalf("a's last syncs %v, want b at %d", got, want)
	}
	if got := b.LastSyncs(); len(got) != 1 || got["a"] != want {
		t.Fatalf("b's last syncs %v, want a at %d", got, want)
	}
	a.SetMembers([]string{"a", "c"}, n.now.Now())
	if got := a.LastSyncs(); len(got) != 0 || a.FirstSync() != want {
		t.Fatalf("after b left the view: last syncs %v, first sync %d", got, a.FirstSync())
	}
}

// TestAnExchangeOfNewcomersIsNoFirstSync: an exchange between two
// members that say they hold none of their cluster's state yet
// (SetNewcomers) is no first sync while a member that holds it is in the
// view; one with that member is; and with every member a newcomer (a
// cluster starting empty), any exchange is.
func TestAnExchangeOfNewcomersIsNoFirstSync(t *testing.T) {
	n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Hour}, "a", "b", "c")
	a, b, c := n.nodes["a"], n.nodes["b"], n.nodes["c"]
	n.reps["a"].recs["k"] = crdt.Record{Key: "k", Value: []byte("v"), Time: crdt.Timestamp{Wall: 1, Node: 1}} // the cluster's state
	b.SetNewcomers([]string{"c"})
	c.SetNewcomers([]string{"b"})
	n.now.Advance(time.Second)
	n.pump("b", b.StartSession("c", n.now.Now()))
	if b.FirstSync() != 0 || c.FirstSync() != 0 || b.LastSyncs()["c"] == 0 {
		t.Fatalf("newcomers b and c exchanged (b's last syncs %v): first syncs %d and %d, want none while a holds the state", b.LastSyncs(), b.FirstSync(), c.FirstSync())
	}
	n.now.Advance(time.Second)
	n.pump("b", b.StartSession("a", n.now.Now()))
	if want := n.now.Now(); b.FirstSync() != want || a.FirstSync() != want {
		t.Fatalf("b exchanged with a: first syncs %d and %d, want %d", b.FirstSync(), a.FirstSync(), want)
	}
	// Every member a newcomer: the exchange is the first sync.
	m := newTestNet(t, 8, Config{AntiEntropyInterval: time.Hour}, "x", "y")
	x, y := m.nodes["x"], m.nodes["y"]
	m.reps["x"].recs["k"] = crdt.Record{Key: "k", Value: []byte("v"), Time: crdt.Timestamp{Wall: 1, Node: 1}} // written since they started
	x.SetNewcomers([]string{"y"})
	y.SetNewcomers([]string{"x"})
	m.now.Advance(time.Second)
	m.pump("x", x.StartSession("y", m.now.Now()))
	if want := m.now.Now(); x.FirstSync() != want || y.FirstSync() != want {
		t.Fatalf("a cluster of newcomers alone: first syncs %d and %d, want %d", x.FirstSync(), y.FirstSync(), want)
	}
}

// TestFarBehindSessionKeepsTwoStepsInFlight: a member with nothing asks
// about the next chunk of leaves before the records of the last one come,
// so that the responder gathers them while it applies; and the session
// still repairs every record (chunks cut short by MaxRepairBytes asked
// about again).
func TestFarBehindSessionKeepsTwoStepsInFlight(t *testing.T) {
	n := newTestNet(t, 8, Config{LeavesPerStep: 4, MaxRepairBytes: 300}, "a", "b")
	for i := range 200 {
		r := crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: make([]byte, 50), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}}
		n.reps["a"].recs[r.Key] = r
	}
	most := 0 // the most Versions b had in flight
	inFlight := 0
	n.pumpEach("b", n.nodes["b"].StartSession("a", n.now.Now()), func(from string, e Envelope) (string, []Envelope) {
		switch {
		case from == "b" && e.Kind == wire.KindVersions:
			inFlight++
			most = max(most, inFlight)
		case from == "a" && e.Kind == wire.KindRepair:
			inFlight--
		}
		return "", nil
	})
	if most < 2 {
		t.Fatalf("at most %d Versions in flight, want 2 or more", most)
	}
	if len(n.reps["b"].recs) != 200 || n.nodes["b"].Stats().SessionsCompleted != 1 {
		t.Fatalf("b holds %d of 200 records, sessions completed %d", len(n.reps["b"].recs), n.nodes["b"].Stats().SessionsCompleted)
	}
}

// TestArrivalSessionIsRetriedSoon: the opening message of a session with
// a member that just arrived (which may drop it, not seeing the sender in
// its view yet) is sent again after arrivalRetry; a periodic session's
// after firstRetry.
func TestArrivalSessionIsRetriedSoon(t *testing.T) {
	timeout := 4 * time.Second // firstRetry: 500 ms
	for _, arrival := range []bool{true, false} {
		n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Hour, SessionTimeout: timeout}, "a", "b")
		a := n.nodes["a"]
		start := n.now.Now()
		if arrival {
			a.SetMembers([]string{"a"}, start)
			a.SetMembers([]string{"a", "b"}, start)
		} else {
			a.StartSession("b", start) // as a periodic one does
		}
		if out := a.Tick(start); arrival && len(out) != 1 {
			t.Fatalf("the arrival's session sent %d messages", len(out))
		} // dropped by b
		want := start + int64(arrivalRetry)
		if !arrival {
			want = start + firstRetry(timeout)
		}
		if d := a.NextDeadline(); d != want {
			t.Fatalf("arrival %v: next deadline %v after the start, want %v", arrival, time.Duration(d-start), time.Duration(want-start))
		}
		if out := a.Tick(want); len(out) != 1 || out[0].Kind != wire.KindDigest {
			t.Fatalf("arrival %v: the retry sent %v, want the opening digest again", arrival, out)
		}
	}
}

// pumpBoth delivers what a and b send, and everything it causes, one
// frame at a time in the order sent, both ways at once: their openings
// cross.
func (n *testNet) pumpBoth(envs map[string][]Envelope) {
	type hop struct {
		from string
		e    Envelope
	}
	var queue []hop
	for from, es := range envs {
		for _, e := range es {
			queue = append(queue, hop{from, e})
		}
	}
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		out, err := n.nodes[h.e.To].Receive(h.from, h.e.Payload, n.now.Now())
		if err != nil {
			n.t.Fatal(err)
		}
		for _, e := range out {
			queue = append(queue, hop{h.e.To, e})
		}
	}
}

// TestEmptyMemberIsCaughtUpOnce: a member that holds nothing and one that
// holds 200 records see each other arrive and both start a session; the
// one that holds records yields to the empty one's, so every record moves
// once. The broken variant (never yield) moves them twice.
func TestEmptyMemberIsCaughtUpOnce(t *testing.T) {
	for _, broken := range []bool{false, true} {
		n := newTestNet(t, 8, Config{}, "a", "b")
		for i := range 200 {
			r := crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: make([]byte, 20), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}}
			n.reps["a"].recs[r.Key] = r
		}
		now := n.now.Now()
		for _, node := range n.nodes {
			node.noYield = broken
			node.SetMembers(nil, now)
			node.SetMembers([]string{"a", "b"}, now) // the other arrives
		}
		n.pumpBoth(map[string][]Envelope{"a": n.nodes["a"].Tick(now), "b": n.nodes["b"].Tick(now)})
		a, b := n.nodes["a"].Stats(), n.nodes["b"].Stats()
		if len(n.reps["b"].recs) != 200 {
			t.Fatalf("broken=%v: b holds %d of 200 records", broken, len(n.reps["b"].recs))
		}
		switch {
		case !broken && (b.RepairRecordsReceived != 200 || a.SessionsYielded != 1 || b.SessionsYielded != 0):
			t.Fatalf("b received %d repair records for 200 keys; a yielded %d, b %d", b.RepairRecordsReceived, a.SessionsYielded, b.SessionsYielded)
		case broken && b.RepairRecordsReceived <= 200:
			t.Fatalf("broken variant: b received %d repair records for 200 keys, want more", b.RepairRecordsReceived)
		}
	}
}

// TestSortRecordsOrdersByTimeThenKey: sortRecords gives the order of a
// plain sort by timestamp then key, for short lists and long ones (sorted
// by index), with many ties in each part of the timestamp.
func TestSortRecordsOrdersByTimeThenKey(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a").nodes["a"]
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 255, 256, 5000} {
		for range 3 {
			recs := make([]crdt.Record, size)
			for i := range recs {
				recs[i] = crdt.Record{Key: fmt.Sprintf("k%d", rng.IntN(50)), Value: []byte{byte(i)},
					Time: crdt.Timestamp{Wall: rng.Int64N(8), Logical: uint32(rng.IntN(3)), Node: crdt.NodeID(rng.IntN(3))}}
			}
			want := slices.Clone(recs)
			slices.SortStableFunc(want, func(a, b crdt.Record) int { return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.Key, b.Key)) })
			recs = n.sortRecords(recs)
			for i := range recs {
				if recs[i].Time != want[i].Time || recs[i].Key != want[i].Key {
					t.Fatalf("size %d: record %d is %v %q, want %v %q", size, i, recs[i].Time, recs[i].Key, want[i].Time, want[i].Key)
				}
			}
		}
	}
}

// TestHeadroomLeavesRoomBeforeEachFrame: with Headroom, every envelope's
// Frame is Headroom bytes and then its Payload, in one buffer (a delta,
// a relayed delta, a session's messages); without, Frame is nil.
func TestHeadroomLeavesRoomBeforeEachFrame(t *testing.T) {
	for _, h := range []int{0, 7} {
		n := newTestNet(t, 8, Config{Headroom: h, Fanout: 1}, "a", "b", "c")
		check := func(what string, envs []Envelope) {
			t.Helper()
			if len(envs) == 0 {
				t.Fatalf("headroom %d: %s sent nothing", h, what)
			}
			for _, e := range envs {
				switch {
				case h == 0 && e.Frame != nil:
					t.Fatalf("headroom 0: %s has a Frame", what)
				case h > 0 && (len(e.Frame) != h+len(e.Payload) || &e.Frame[h] != &e.Payload[0]):
					t.Fatalf("headroom %d: %s's Frame is %d bytes around a %d-byte payload elsewhere", h, what, len(e.Frame), len(e.Payload))
				}
			}
		}
		now := n.now.Now()
		delta := n.write("a", "k", "v")
		delta = append(delta, n.nodes["a"].Tick(now)...)
		check("a delta", delta)
		var relayed []Envelope
		for _, e := range delta {
			out, err := n.nodes[e.To].Receive("a", e.Payload, now)
			if err != nil {
				t.Fatal(err)
			}
			relayed = append(relayed, out...)
		}
		check("a relayed delta", relayed)
		check("a session's opening", n.nodes["b"].StartSession("c", now))
	}
}

// TestNoSessionWithAnEmptyMemberCatchingUp: a member that sees an empty
// member arrive while that member's session with it is in progress starts
// none of its own; the broken variant starts one.
func TestNoSessionWithAnEmptyMemberCatchingUp(t *testing.T) {
	for _, broken := range []bool{false, true} {
		n := newTestNet(t, 8, Config{}, "a", "b")
		for i := range 50 {
			r := crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}}
			n.reps["a"].recs[r.Key] = r
		}
		now := n.now.Now()
		a, b := n.nodes["a"], n.nodes["b"]
		a.noYield = broken
		a.SetMembers(nil, now)
		a.SetMembers([]string{"a", "b"}, now) // a sees b arrive
		opening := b.StartSession("a", now)
		replies, err := a.Receive("b", opening[0].Payload, now) // b's session reaches a before a's tick
		if err != nil || len(replies) != 1 {
			t.Fatalf("a answered b's opening with %d messages, %v", len(replies), err)
		}
		started := a.Tick(now)
		switch {
		case !broken && (len(started) != 0 || a.Stats().SessionsYielded != 1):
			t.Fatalf("a sent %d messages on seeing b arrive, yielded %d times; want none, once", len(started), a.Stats().SessionsYielded)
		case broken && len(started) == 0:
			t.Fatal("broken variant: a started no session of its own")
		}
		n.pump("a", replies)
		if len(n.reps["b"].recs) != 50 || b.Stats().RepairRecordsReceived != 50 {
			t.Fatalf("broken=%v: b holds %d of 50 records, received %d", broken, len(n.reps["b"].recs), b.Stats().RepairRecordsReceived)
		}
	}
}

// TestLateReplyToAStepSentAgainIsAccepted: a step sent again (its reply
// was slow) still takes the reply to its first sending: a busy responder's
// answer is not thrown away for the one it is asked to work out again.
// The reply to the second sending, coming after, is stray.
func TestLateReplyToAStepSentAgainIsAccepted(t *testing.T) {
	n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Hour, SessionTimeout: 4 * time.Second}, "a", "b")
	for i := range 20 {
		r := crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}}
		n.reps["a"].recs[r.Key] = r
	}
	a, b := n.nodes["a"], n.nodes["b"]
	now := n.now.Now()
	// b walks a's digest down to the leaves and sends its Versions.
	queue := b.StartSession("a", now)
	var versions Envelope
	for len(queue) > 0 && versions.Payload == nil {
		e := queue[0]
		queue = queue[1:]
		if e.Kind == wire.KindVersions {
			versions = e
			break
		}
		from := map[string]string{"a": "b", "b": "a"}[e.To]
		out, err := n.nodes[e.To].Receive(from, e.Payload, now)
		if err != nil {
			t.Fatal(err)
		}
		queue = append(queue, out...)
	}
	if versions.Payload == nil {
		t.Fatal("b sent no Versions")
	}
	first, err := a.Receive("b", versions.Payload, now) // a answers; the answer is slow to come back
	if err != nil || len(first) != 1 {
		t.Fatalf("a answered with %d messages, %v", len(first), err)
	}
	n.now.Advance(time.Second) // past the first retry (500 ms)
	again := b.Tick(n.now.Now())
	if len(again) != 1 || again[0].Kind != wire.KindVersions {
		t.Fatalf("b's retry sent %d messages", len(again))
	}
	second, err := a.Receive("b", again[0].Payload, n.now.Now())
	if err != nil || len(second) != 1 {
		t.Fatalf("a answered the retry with %d messages, %v", len(second), err)
	}
	stray := b.Stats().Stray
	if _, err := b.Receive("a", first[0].Payload, n.now.Now()); err != nil {
		t.Fatal(err)
	}
	if b.Stats().Stray != stray || len(n.reps["b"].recs) != 20 || b.Stats().SessionsCompleted != 1 {
		t.Fatalf("the first answer: stray %d -> %d, b holds %d of 20 records, sessions completed %d",
			stray, b.Stats().Stray, len(n.reps["b"].recs), b.Stats().SessionsCompleted)
	}
	if _, err := b.Receive("a", second[0].Payload, n.now.Now()); err != nil {
		t.Fatal(err)
	}
	if b.Stats().Stray != stray+1 {
		t.Fatalf("the answer to the retry, after the first: stray %d -> %d, want one more", stray, b.Stats().Stray)
	}
}

// TestDeltaFramesAllocateLittle: a group of writes leaves in a frame
// encoded into one buffer of about its size (grown from nothing, a batch
// of eight 100-byte writes took seven buffers: twelve allocations in all),
// and a received delta costs its records' keys and values and the message,
// its records decoded into the codec's reused slice.
func TestDeltaFramesAllocateLittle(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b", "c")
	a, b := n.nodes["a"], n.nodes["b"]
	var group []crdt.Record
	for i := range 8 {
		group = append(group, crdt.Record{Key: fmt.Sprintf("k%015d", i), Value: make([]byte, 100), Time: a.cfg.Clock.Now()})
	}
	out := a.WriteGroup(group, n.now.Now())
	if len(out) != 2 || cap(out[0].Payload) > len(out[0].Payload)+len(out[0].Payload)/4 {
		t.Fatalf("%d frames, the first %d bytes in a buffer of %d", len(out), len(out[0].Payload), cap(out[0].Payload))
	}
	if allocs := testing.AllocsPerRun(100, func() { a.WriteGroup(group, n.now.Now()) }); allocs > 6 {
		t.Fatalf("sending a group of %d writes to 2 members: %.0f allocations, want at most 6", len(group), allocs)
	}
	if allocs := testing.AllocsPerRun(100, func() { b.Receive("a", out[0].Payload, n.now.Now()) }); allocs > float64(2*len(group)+1) {
		t.Fatalf("receiving a delta of %d records: %.0f allocations, want at most %d", len(group), allocs, 2*len(group)+1)
	}
}

// TestDirectWithoutExpiryAfterOneWithIt is a regression test: with a
// delta's records decoded into a reused slice, a record of a Direct that
// left out its expiry (none) took the expiry of the record decoded at its
// place in the frame before, so a member expired a key its writer gave no
// TTL, and anti-entropy (whose versions and digests leave expiry out)
// never repaired it.
func TestDirectWithoutExpiryAfterOneWithIt(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	a := n.nodes["a"]
	a.UseDirect(true)
	for i, expires := range []int64{n.now.Now() + int64(time.Minute), 0} {
		r := crdt.Record{Key: fmt.Sprint("k", i), Value: []byte("v"), Time: a.cfg.Clock.Now(), Expires: expires}
		n.reps["a"].Apply(r, false, 0)
		n.pump("a", a.Write(r, n.now.Now()))
		if got := n.reps["b"].recs[r.Key]; got.Expires != expires {
			t.Fatalf("b holds %s expiring at %d, want %d", r.Key, got.Expires, expires)
		}
	}
}

// valueWatcher is a memReplica that refuses every record and keeps a weak
// pointer to the last value it was offered.
type valueWatcher struct {
	*memReplica
	last weak.Pointer[byte]
}

func (r *valueWatcher) Apply(rec crdt.Record, delta bool, now int64) crdt.Outcome {
	if len(rec.Value) > 0 {
		r.last = weak.Make(&rec.Value[0])
	}
	return crdt.Stale
}

// TestReceiveKeepsNoValueOfAFrame: once Receive returns, the node holds
// no value of the delta it handled (its codec reuses the records' slice,
// which held the last delta's values until the next; frames of other
// kinds, and empty deltas, did not clear it): a value the replica refused
// is garbage at once.
func TestReceiveKeepsNoValueOfAFrame(t *testing.T) {
	now := crdt.NewManualTime(1_000_000_000)
	rep := &valueWatcher{memReplica: newMemReplica(8)}
	b, err := New(Config{Name: "b", Replica: rep, Clock: crdt.NewHLC(2, now.Now, 0)})
	if err != nil {
		t.Fatal(err)
	}
	b.SetMembers([]string{"a", "b"}, now.Now())
	frame, err := wire.NewCodec(wire.Limits{}).Encode(nil, &wire.Direct{OriginID: 1,
		Records: []crdt.Record{{Key: "k", Value: make([]byte, 1<<20), Time: crdt.Timestamp{Wall: now.Now(), Node: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Receive("", frame, now.Now()); err != nil {
		t.Fatal(err)
	}
	if rep.last == (weak.Pointer[byte]{}) {
		t.Fatal("the replica was not offered the value")
	}
	runtime.GC()
	runtime.GC()
	held := rep.last.Value() != nil
	runtime.KeepAlive(b)
	if held {
		t.Fatal("a refused delta's 1 MiB value is still reachable from the node after Receive returned")
	}
}

// TestHurryIsBounded: a reader's Hurry starts a session at the next Tick,
// but not more often than every quarter of the interval (unbounded,
// readers waiting for a write no member has had a member start one every
// 20 ms each, found by review).
func TestHurryIsBounded(t *testing.T) {
	n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Second}, "a", "b")
	n.pump("a", n.nodes["a"].Tick(n.now.Now())) // the session with b, an arrival
	hurried := func() bool {
		n.nodes["a"].Hurry(n.now.Now())
		envs := n.nodes["a"].Tick(n.now.Now())
		n.pump("a", envs)
		return len(envs) > 0
	}
	if !hurried() {
		t.Fatal("a first Hurry started no session")
	}
	if hurried() {
		t.Fatal("a Hurry at once after the last started a session")
	}
	n.now.Advance(250 * time.Millisecond)
	if !hurried() {
		t.Fatal("a Hurry a quarter interval after the last started no session")
	}
}

// TestHugeIntervalsSaturate: a session timeout or interval as long as a
// Duration goes (a "never" in a config) saturates where it is added to
// the time: it wrapped negative, and every session timed out at once.
func TestHugeIntervalsSaturate(t *testing.T) {
	n := newTestNet(t, 8, Config{SessionTimeout: math.MaxInt64, AntiEntropyInterval: math.MaxInt64}, "a", "b")
	a := n.nodes["a"]
	a.StartSession("b", n.now.Now()) // its frames dropped: b never answers
	n.now.Advance(time.Hour)
	a.Tick(n.now.Now())
	if s := a.Stats(); s.SessionsTimedOut != 0 {
		t.Fatalf("a session with a timeout of %v timed out within an hour", time.Duration(math.MaxInt64))
	}
}

// TestIsolatedWritesAllocateTheirFrameAlone: a write sent on its own (the
// group commit's usual group under moderate load), its envelopes appended
// to a slice the host reuses, allocates its frame and nothing else, to
// four members, in either form of a direct send (Delta, Direct). It
// allocated the children's list, the message and three growths of the
// envelopes' slice too: at 10,000 writes a second to four members, 29%
// of the bytes the writer's process allocated (the collector's pace).
func TestIsolatedWritesAllocateTheirFrameAlone(t *testing.T) {
	for _, direct := range []bool{false, true} {
		n := newTestNet(t, 8, Config{}, "a", "b", "c", "d", "e")
		a := n.nodes["a"]
		a.UseDirect(direct)
		rec := crdt.Record{Key: "k", Value: make([]byte, 100)}
		var dst []Envelope
		write := func() {
			rec.Time = a.cfg.Clock.Now()
			dst = a.AppendWriteGroups(dst[:0], [][]crdt.Record{{rec}}, n.now.Now())
		}
		write()
		if len(dst) != 4 {
			t.Fatalf("direct=%v: %d envelopes, want 4", direct, len(dst))
		}
		group := [][]crdt.Record{{rec}}
		if allocs := testing.AllocsPerRun(100, func() {
			group[0][0].Time = a.cfg.Clock.Now()
			dst = a.AppendWriteGroups(dst[:0], group, n.now.Now())
		}); allocs != 1 {
			t.Errorf("direct=%v: an isolated write to 4 members: %.0f allocations, want 1 (its frame)", direct, allocs)
		}
	}
}
