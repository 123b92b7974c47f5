package transport

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport/wire"
)

// storeCluster is Nodes over the production store, driven by hand; a
// member restarted keeps its store (restored from its snapshot) under a
// new incarnation.
type storeCluster struct {
	t      testing.TB
	now    *crdt.ManualTime
	cfg    Config
	nodes  map[string]*Node
	stores map[string]*store.Store
	clocks map[string]*crdt.HLC
	ids    crdt.NodeID
}

func newStoreCluster(t testing.TB, cfg Config, scfg store.Config, names ...string) *storeCluster {
	c := &storeCluster{t: t, now: crdt.NewManualTime(int64(1000 * time.Second)), cfg: cfg, nodes: map[string]*Node{},
		stores: map[string]*store.Store{}, clocks: map[string]*crdt.HLC{}}
	for _, name := range names {
		st, err := store.New(scfg)
		if err != nil {
			t.Fatal(err)
		}
		c.stores[name] = st
		c.start(name)
	}
	for _, name := range names {
		c.nodes[name].SetMembers(names, c.now.Now())
	}
	return c
}

// start (re)starts name over its store with a new incarnation; known, if
// given, are the members it counted before (kept beside its snapshot).
func (c *storeCluster) start(name string, known ...Known) {
	c.ids++
	c.clocks[name] = crdt.NewHLC(c.ids, c.now.Now, 0)
	cfg := c.cfg
	cfg.Name, cfg.Replica, cfg.Clock, cfg.Known = name, c.stores[name], c.clocks[name], known
	nd, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[name] = nd
}

func (c *storeCluster) write(name string, r crdt.Record) crdt.Record {
	r.Time = c.clocks[name].Now()
	got, err := c.stores[name].Write(r)
	if err != nil {
		c.t.Fatal(err)
	}
	return got
}

// hop is a frame in flight.
type hop struct {
	from string
	e    Envelope
}

// run delivers frames FIFO until none is left (a frame to a member not
// running is lost); hold, if set, may take a frame out of the queue (it is
// then the test's to deliver), and after is called after each delivery
// with the frame delivered, and may return frames to deliver next.
func (c *storeCluster) run(from string, envs []Envelope, hold func(h hop, m wire.Message) bool, after func(h hop, m wire.Message) []hop) {
	var q []hop
	for _, e := range envs {
		q = append(q, hop{from, e})
	}
	for len(q) > 0 {
		h := q[0]
		q = q[1:]
		m := decodeFrame(c.t, h.e.Payload)
		if hold != nil && hold(h, m) {
			continue
		}
		nd := c.nodes[h.e.To]
		if nd == nil {
			continue
		}
		out, err := nd.Receive(h.from, h.e.Payload, c.now.Now())
		if err != nil {
			c.t.Fatal(err)
		}
		for _, e := range out {
			q = append(q, hop{h.e.To, e})
		}
		if after != nil {
			q = append(after(h, m), q...)
		}
	}
}

func (c *storeCluster) session(from, to string) {
	c.run(from, c.nodes[from].StartSession(to, c.now.Now()), nil, nil)
}

// sameBucket returns n keys of one digest leaf.
func sameBucket(bits, n int) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprintf("key%d", i)
		if crdt.LeafIndex(crdt.HashKey(k), 0, bits) == 7 {
			keys = append(keys, k)
		}
	}
	return keys
}

// leaveAndReturn plays name leaving on purpose, keeping its store (the
// snapshot Close writes), while the others sync for 8 s and collect at
// their bound, then coming back under its name from that store: it must
// still hold its live write of key, live, whatever the others collected
// (a delete in key's bucket, tomb, among what they may).
func leaveAndReturn(t *testing.T, c *storeCluster, name string, others []string, key string, live, tomb crdt.Record) {
	t.Helper()
	for _, n := range others {
		c.nodes[n].SetMembers(others, c.now.Now())
		c.nodes[n].Left(name, true, c.now.Now())
	}
	delete(c.nodes, name)
	for range 8 {
		c.now.Advance(time.Second)
		c.session(others[0], others[1])
		c.session(others[1], others[0])
	}
	stable := c.nodes[others[0]].Stable(c.now.Now())
	got := c.stores[others[0]].Collect(c.now.Now(), false, stable)
	t.Logf("%s's bound %v after %s left; %s written at %v, tombstone at %v; collected %v",
		others[0], time.Duration(stable), name, key, live.Time, tomb.Time, got)
	c.now.Advance(2 * time.Second)
	c.start(name)
	all := append([]string{name}, others...)
	for _, n := range all {
		c.nodes[n].SetMembers(all, c.now.Now())
	}
	c.session(name, others[0])
	c.session(others[0], name)
	if r, _ := c.stores[name].Lookup(key); !r.Live(c.now.Now()) {
		t.Fatalf("%s lost its live write of %q, %v old (horizon 1h): now %v; dropped %v",
			name, key, time.Duration(c.now.Now()-live.Time.Wall), r, c.nodes[name].Dropped())
	}
}

// TestLeaverRestartedFromItsSnapshotLosesNoLiveWrite: b writes k (its
// delta lost), leaves on purpose (Close: Left) and restarts under its
// name from its snapshot seconds later. a retired b's ended incarnation
// once c had synced with it, though k had reached neither; its stable
// bound passed k, it collected a tombstone of k's bucket early, and
// rejected k when b came back: a live write seconds old lost.
func TestLeaverRestartedFromItsSnapshotLosesNoLiveWrite(t *testing.T) {
	c := newStoreCluster(t, Config{}, store.Config{Shards: 16, DigestBits: 8, Horizon: time.Hour}, "a", "b", "c")
	keys := sameBucket(8, 2)
	for _, p := range [][2]string{{"a", "b"}, {"a", "c"}, {"b", "c"}} {
		c.session(p[0], p[1])
	}
	c.now.Advance(time.Second)
	live := c.write("b", crdt.Record{Key: keys[0], Value: []byte("v")}) // its delta lost
	c.now.Advance(100 * time.Millisecond)
	tomb := c.write("a", crdt.Record{Key: keys[1], Tombstone: true}) // a delete in k's bucket, after it
	c.now.Advance(100 * time.Millisecond)
	// b closes: it leaves, its store kept (the snapshot Close writes).
	leaveAndReturn(t, c, "b", []string{"a", "c"}, keys[0], live, tomb)
	// b back and synced: the bound moves past its leave again, once the
	// ended incarnation has counted for EndedFor.
	for range 3 + int(DefaultEndedFor/time.Second) {
		c.now.Advance(time.Second)
		for _, p := range [][2]string{{"a", "b"}, {"a", "c"}, {"b", "c"}, {"b", "a"}, {"c", "a"}, {"c", "b"}} {
			c.session(p[0], p[1])
		}
	}
	if st := c.nodes["a"].Stable(c.now.Now()); st <= tomb.Time.Wall {
		t.Fatalf("b back and synced: a's bound %v, still below the delete at %v", time.Duration(st), tomb.Time)
	}
}

// TestRollingRestartKeepsTheAbsentMember: a is cut off and writes k; b,
// then c, restart under their names from their snapshots (a rolling
// restart), each with the members it counted (kept beside its snapshot).
// Without them neither restarted member counted a (nothing of what a
// member knows of the others was in its snapshot), they collected a
// tombstone of k's bucket early, and k was rejected when a came back
// (found by review).
func TestRollingRestartKeepsTheAbsentMember(t *testing.T) {
	for _, keep := range []bool{true, false} {
		c := newStoreCluster(t, Config{}, store.Config{Shards: 16, DigestBits: 8, Horizon: time.Hour}, "a", "b", "c")
		keys := sameBucket(8, 2)
		for _, p := range [][2]string{{"a", "b"}, {"a", "c"}, {"b", "c"}} {
			c.session(p[0], p[1])
		}
		c.now.Advance(time.Second)
		c.nodes["a"].SetMembers([]string{"a"}, c.now.Now()) // a cut off
		for _, n := range []string{"b", "c"} {
			c.nodes[n].SetMembers([]string{"b", "c"}, c.now.Now())
		}
		live := c.write("a", crdt.Record{Key: keys[0], Value: []byte("v")})
		for _, n := range []string{"b", "c"} {
			c.now.Advance(2 * time.Second)
			var known []Known
			if keep {
				known = c.nodes[n].Known(c.now.Now())
			}
			c.start(n, known...)
			for _, m := range []string{"b", "c"} {
				c.nodes[m].SetMembers([]string{"b", "c"}, c.now.Now())
			}
			c.session("b", "c")
			c.session("c", "b")
		}
		c.write("b", crdt.Record{Key: keys[1], Tombstone: true})
		for range 8 + int(DefaultEndedFor/time.Second) { // past the restarted incarnations' EndedFor
			c.now.Advance(time.Second)
			c.session("b", "c")
			c.session("c", "b")
		}
		c.stores["b"].Collect(c.now.Now(), false, c.nodes["b"].Stable(c.now.Now()))
		for _, n := range []string{"a", "b", "c"} { // healed
			c.nodes[n].SetMembers([]string{"a", "b", "c"}, c.now.Now())
		}
		c.session("a", "b")
		r, _ := c.stores["a"].Lookup(keys[0])
		switch lost := !r.Live(c.now.Now()); {
		case keep && lost:
			t.Fatalf("a lost its live write of %q, %v old, though b and c restarted with the members they counted",
				keys[0], time.Duration(c.now.Now()-live.Time.Wall))
		case !keep && !lost:
			t.Fatal("restarted without the members they counted, b and c still waited for a: the test shows nothing")
		}
	}
}
