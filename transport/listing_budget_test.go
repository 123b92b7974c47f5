package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// gatherCount is a Replica that counts the versions and records the node
// gathers from it: the work of listing its leaves.
type gatherCount struct {
	*memReplica
	gathered int
}

func (g *gatherCount) AppendVersions(dst []crdt.Version, leaf uint32) []crdt.Version {
	n := len(dst)
	dst = g.memReplica.AppendVersions(dst, leaf)
	g.gathered += len(dst) - n
	return dst
}

func (g *gatherCount) AppendRecords(dst []crdt.Record, leaf uint32) []crdt.Record {
	n := len(dst)
	dst = g.memReplica.AppendRecords(dst, leaf)
	g.gathered += len(dst) - n
	return dst
}

// newCountedNet is newTestNet with b's replica counted.
func newCountedNet(t *testing.T, bits int, cfg Config) (*testNet, *gatherCount) {
	n := newTestNet(t, bits, cfg, "a", "b")
	g := &gatherCount{memReplica: n.reps["b"]}
	c := cfg
	c.Name, c.Replica, c.Clock = "b", g, crdt.NewHLC(2, n.now.Now, 0)
	b, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	b.SetMembers([]string{"a", "b"}, n.now.Now())
	n.nodes["b"] = b
	return n, g
}

// TestAHostilePeersListingsOfACrowdedLeafAreBudgeted: a peer with a
// session sends a small Versions naming a leaf it filled (10,000 keys)
// every 10 ms for 10 seconds, each drawing the whole leaf's versions and
// records from the responder. They are answered within the peer's budget
// of listing work (listingRate a second, a second's worth ahead), the
// rest left unanswered and counted in ListingsRefused: without it, each
// frame cost the whole leaf, 1,000 of them 20 million versions and
// records gathered, as many as the peer cared to send.
func TestAHostilePeersListingsOfACrowdedLeafAreBudgeted(t *testing.T) {
	const bits, leaf, size = 4, 11, 10_000
	n, g := newCountedNet(t, bits, Config{})
	for _, k := range keysOfLeaf("filled:", leaf, bits, size) {
		n.reps["b"].recs[k] = crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: 100, Node: 1}}
	}
	a, b := n.nodes["a"], n.nodes["b"]
	var sess wire.Session
	n.drop = func(from string, e Envelope) bool { // a's first Versions, kept for its session and token
		if from == "a" && e.Kind == wire.KindVersions && sess.ID == 0 {
			sess = decodeFrame(t, e.Payload).(*wire.Versions).Session
		}
		return sess.ID != 0
	}
	n.pump("a", a.StartSession("b", n.now.Now()))
	if sess.ID == 0 {
		t.Fatal("a listed no versions")
	}
	first, last := leafHashes(leaf, bits)
	g.gathered = 0
	before := b.Stats()
	const every, span = 10 * time.Millisecond, 10 * time.Second
	answered := 0
	for i := range int(span / every) {
		n.now.Advance(every)
		sess.Step++
		m := &wire.Versions{Session: sess, Leaves: []uint32{leaf}, Counts: []uint32{0}, Part: &wire.KeyRange{From: first, Through: last}}
		out, err := b.Receive("a", encode(t, m), n.now.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(out) > 0 {
			answered++
		}
		if i%50 == 0 {
			b.Tick(n.now.Now())
		}
	}
	st := b.Stats()
	perListing := 2 * size // the leaf's versions, then its records
	bound := listingRate*int(span/time.Second) + listingRate + perListing
	t.Logf("%d of %d answered, %d refused, %d gathered (bound %d)", answered, int(span/every), st.ListingsRefused-before.ListingsRefused, g.gathered, bound)
	if g.gathered > bound {
		t.Errorf("the peer's listings gathered %d versions and records in %v, over the budget's %d", g.gathered, span, bound)
	}
	if answered == 0 {
		t.Errorf("no listing answered: the budget refuses everything")
	}
	if got := st.ListingsRefused - before.ListingsRefused; got != uint64(int(span/every)-answered) {
		t.Errorf("%d listings refused, want the %d unanswered", got, int(span/every)-answered)
	}
}

// TestAnHonestRepairOfACrowdedLeafCompletesWithinTheBudget: a session
// that lists a crowded leaf in parts (20,000 keys, each part's listing
// drawing 40,000 versions and records from the responder, past the
// budget's burst within a few parts) completes and repairs the leaf both
// ways, its steps refused while the budget is in debt sent again and
// answered: with the session timeout's default, once the rate has paid
// the debt; with a short one (400 ms), once listingPause has passed,
// shorter than the debt (a listing past the rate over the pause), which
// is what lets the initiator's retries reach the responder before its
// timeout.
func TestAnHonestRepairOfACrowdedLeafCompletesWithinTheBudget(t *testing.T) {
	const bits, leaf, size = 4, 5, 20_000
	keys := keysOfLeaf("honest:", leaf, bits, size+100)
	for _, timeout := range []time.Duration{0, 400 * time.Millisecond} {
		cfg := Config{Limits: wire.Limits{MaxFrame: 64 << 10}, SessionTimeout: timeout, AntiEntropyInterval: time.Hour}
		n, _ := newCountedNet(t, bits, cfg)
		a, b := n.nodes["a"], n.nodes["b"]
		if 2*size < int(listingWork(b.listingPause())) && timeout != 0 {
			t.Fatalf("a listing of %d costs less than the pause's %d: the pause is not tested", 2*size, listingWork(b.listingPause()))
		}
		want := map[string]crdt.Record{}
		for i, k := range keys {
			r := crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: 100, Node: 1}}
			switch {
			case i >= size+50: // b's alone
				n.reps["b"].recs[k] = r
			case i >= size: // a's alone
				n.reps["a"].recs[k] = r
			default: // both, a quarter newer on b, a quarter on a
				n.reps["a"].recs[k] = r
				if i%4 == 0 {
					r.Time.Wall++
				} else if i%4 == 1 {
					r.Time.Wall--
				}
				n.reps["b"].recs[k] = r
				if i%4 == 1 {
					r.Time.Wall++
				}
			}
			want[k] = r
		}
		before, bBefore, st, bst := sessionToEnd(n, a, b, 2000)
		t.Logf("timeout %v: %d listings refused, %d steps sent again", timeout, bst.ListingsRefused-bBefore.ListingsRefused, st.StepsRetried-before.StepsRetried)
		if st.SessionsCompleted != before.SessionsCompleted+1 || st.SessionsTimedOut != before.SessionsTimedOut {
			t.Errorf("timeout %v: the session did not complete (%d timed out)", timeout, st.SessionsTimedOut-before.SessionsTimedOut)
		}
		if bst.ListingsRefused == bBefore.ListingsRefused {
			t.Errorf("timeout %v: no listing refused: the budget was not reached", timeout)
		}
		for _, name := range []string{"a", "b"} {
			missing := 0
			for k, w := range want {
				if n.reps[name].recs[k].Time != w.Time {
					missing++
				}
			}
			if missing > 0 {
				t.Errorf("timeout %v: %s lacks %d of %d records", timeout, name, missing, len(want))
			}
		}
	}
}

// sessionToEnd runs a session of a's with b, ticking a every 10 ms, until
// it ends or ticks have passed, and returns a's and b's stats before and
// after it.
func sessionToEnd(n *testNet, a, b *Node, ticks int) (before, bBefore, after, bAfter Stats) {
	before, bBefore = a.Stats(), b.Stats()
	n.pump("a", a.StartSession("b", n.now.Now()))
	for tick := 0; tick < ticks && a.ae.active; tick++ {
		n.now.Advance(10 * time.Millisecond)
		n.pump("a", a.Tick(n.now.Now()))
	}
	return before, bBefore, a.Stats(), b.Stats()
}
