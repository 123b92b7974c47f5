package transport

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// listCount is a Replica that counts, by leaf, how often the node lists
// the leaf's versions.
type listCount struct {
	*memReplica
	listed map[uint32]int
}

func (l *listCount) AppendVersions(dst []crdt.Version, leaf uint32) []crdt.Version {
	l.listed[leaf]++
	return l.memReplica.AppendVersions(dst, leaf)
}

// TestACrowdedLeafAfterOthersIsListedOnce: b's session with a, which holds
// nothing, reaches leaves 3 and 12 of a few keys, each followed by a leaf
// listed in parts (11 and 13). sendVersions listed each crowded leaf while
// filling the chunk of the leaf before it, left it out (it goes alone in
// its step), and listed it again as its own step: twice the work, and
// twice the charge to the peer's budget, once per such leaf and chunk
// (found by review). Each listing is sent: a leaf is listed as many times
// as Versions naming it were sent, and the first call's charge is the
// crowded leaf's versions once.
func TestACrowdedLeafAfterOthersIsListedOnce(t *testing.T) {
	const bits = 4
	cfg := Config{Limits: wire.Limits{MaxFrame: 16 << 10}, AntiEntropyInterval: time.Hour}
	n := newTestNet(t, bits, cfg, "a", "b")
	l := &listCount{memReplica: n.reps["b"], listed: map[uint32]int{}}
	c := cfg
	c.Name, c.Replica, c.Clock = "b", l, crdt.NewHLC(2, n.now.Now, 0)
	b, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	b.SetMembers([]string{"a", "b"}, n.now.Now())
	n.nodes["b"] = b
	room := leafVersionsRoom(cfg.Limits.MaxFrame, false)
	sizes := map[uint32]int{3: 5, 11: 2*room + 10, 12: 5, 13: 2*room + 10}
	for leaf, size := range sizes {
		for _, k := range keysOfLeaf(fmt.Sprintf("l%d:", leaf), leaf, bits, size) {
			n.reps["b"].recs[k] = crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: 100, Node: 2}}
		}
	}
	sent := map[uint32]int{}
	var first []*wire.Versions // the Versions of b's first call of sendVersions
	n.drop = func(from string, e Envelope) bool {
		if from == "b" && e.Kind == wire.KindVersions {
			v := decodeFrame(t, e.Payload).(*wire.Versions)
			for _, leaf := range v.Leaves {
				sent[leaf]++
			}
		}
		return false
	}
	var firstWork int64
	see := func(from string, e Envelope) (string, []Envelope) {
		if from == "b" && e.Kind == wire.KindVersions && firstWork == 0 {
			first = append(first, decodeFrame(t, e.Payload).(*wire.Versions))
			if len(first) == 2 {
				firstWork = listingRate - b.ae.listing["a"].left
			}
		}
		return "", nil
	}
	n.pumpEach("b", b.StartSession("a", n.now.Now()), see)
	for tick := 0; tick < 2000 && b.ae.active; tick++ {
		n.now.Advance(10 * time.Millisecond)
		n.pump("b", b.Tick(n.now.Now()))
	}
	if b.ae.active {
		t.Fatal("the session did not end")
	}
	if len(first) < 2 || !slices.Equal(first[0].Leaves, []uint32{3}) || !slices.Equal(first[1].Leaves, []uint32{11}) {
		t.Fatalf("b's first steps were not leaf 3, then leaf 11 alone: %d steps", len(first))
	}
	if want := int64(sizes[11]); firstWork != want {
		t.Errorf("b's first steps charged a's budget %d, want leaf 11's %d versions once", firstWork, want)
	}
	for leaf := range sizes {
		if l.listed[leaf] != sent[leaf] {
			t.Errorf("leaf %d (%d keys) listed %d times, for %d Versions sent", leaf, sizes[leaf], l.listed[leaf], sent[leaf])
		}
	}
	for k, r := range n.reps["b"].recs {
		if n.reps["a"].recs[k].Time != r.Time {
			t.Fatalf("a lacks %q after the session", k)
		}
	}
}

// TestCollidedRecordsOfAnUncrowdedLeafAreBudgeted: as
// TestCollidedRecordsOfACrowdedLeafAreBudgeted, in a leaf under
// crowdedListing (1,000 keys, all held, all listed newer by the peer),
// the peer's records of other keys of those hashes below b's watermark
// (rejected, so the leaf stays uncrowded). Each made the responder gather
// the whole leaf's records (recordsOf), charged only for a crowded leaf:
// a thousand Repairs of a few dozen bytes drew a million records in a
// second, outside the budget.
func TestCollidedRecordsOfAnUncrowdedLeafAreBudgeted(t *testing.T) {
	const bits, leaf, held = 4, 11, 1000
	n, g := newCountedNet(t, bits, Config{})
	if held > n.nodes["b"].crowdedListing() {
		t.Fatalf("a leaf of %d is crowded (%d)", held, n.nodes["b"].crowdedListing())
	}
	n.reps["b"].wm = 60
	var keys []string
	for i := 0; len(keys) < held; i++ {
		k := fmt.Sprintf("held:%011d/tail", i)
		if hashPartner(k) == k || crdt.HashKey(hashPartner(k)) != crdt.HashKey(k) {
			t.Fatalf("no partner of %q", k)
		}
		if crdt.LeafIndex(crdt.HashKey(k), 0, bits) == leaf {
			keys = append(keys, k)
			n.reps["b"].recs[k] = crdt.Record{Key: k, Value: []byte("b"), Time: crdt.Timestamp{Wall: 100, Node: 1}}
		}
	}
	slices.SortFunc(keys, func(x, y string) int { return cmpHash(crdt.HashKey(x), crdt.HashKey(y)) })
	a, b := n.nodes["a"], n.nodes["b"]
	var sess wire.Session
	n.drop = func(from string, e Envelope) bool {
		if from == "a" && e.Kind == wire.KindVersions && sess.ID == 0 {
			sess = decodeFrame(t, e.Payload).(*wire.Versions).Session
		}
		return sess.ID != 0
	}
	n.pump("a", a.StartSession("b", n.now.Now()))
	if sess.ID == 0 {
		t.Fatal("a listed no versions")
	}
	sess.Step++
	v := &wire.Versions{Session: sess, Leaves: []uint32{leaf}, Counts: []uint32{held}}
	for _, k := range keys {
		v.Versions = append(v.Versions, wire.KeyVersion{KeyHash: crdt.HashKey(k), Time: crdt.Timestamp{Wall: 200, Node: 1}})
	}
	if _, err := b.Receive("a", encode(t, v), n.now.Now()); err != nil {
		t.Fatal(err)
	}
	g.gathered = 0
	const span = time.Second
	answered := 0
	for _, k := range keys {
		n.now.Advance(span / held)
		sess.Step++
		m := &wire.Repair{Session: sess, Records: []crdt.Record{{Key: hashPartner(k), Value: []byte("x"), Time: crdt.Timestamp{Wall: 50, Node: 1}}}}
		out, err := b.Receive("a", encode(t, m), n.now.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out {
			if r, ok := decodeFrame(t, e.Payload).(*wire.Reject); ok && slices.ContainsFunc(r.Records, func(r crdt.Record) bool { return r.Key == k }) {
				answered++
			}
		}
	}
	if len(n.reps["b"].recs) != held {
		t.Fatalf("b holds %d records, want its %d: the leaf grew", len(n.reps["b"].recs), held)
	}
	bound := listingRate*int(span/time.Second) + listingRate + 4*held
	t.Logf("%d records gathered for %d Repairs, %d answered with b's record (bound %d)", g.gathered, held, answered, bound)
	if g.gathered > bound {
		t.Errorf("the peer's Repairs gathered %d records in %v, over the listing budget's %d", g.gathered, span, bound)
	}
	if answered == 0 {
		t.Errorf("no collided record answered: the budget refuses everything")
	}
}
