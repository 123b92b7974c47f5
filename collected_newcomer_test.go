package bcache

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// A member that joins receives its peers' records, not their watermarks:
// a value whose delete the cluster collected before it joined came back
// on it from a member that still held the value (back from an absence
// past the horizon, or restarted from an old snapshot under a name drawn
// at New), while the two were cut off from every member that collected
// the delete (found by review). A member now asks the peer of its first
// sync for its watermarks and adopts them within its stable bound
// (marks.go): once it has, it refuses the value, and answers its holder
// with the tombstone that removes it there. Before it has (a window of a
// few anti-entropy intervals after its first sync), the value may come
// back, and goes once they meet a member that collected the delete.

// within says whether cond held at some moment within d (polled: what it
// looks for may come and go).
func within(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

// awaitRefused waits until m refuses a record of key stamped at: it holds
// no record of key, and key's bucket has a watermark at or above at (m
// never held key: it adopted a peer's). A watermark alone (Store.Gone)
// is not enough: one adopted in part, below at, refuses older writes of
// key but takes the one that must not come back.
func awaitRefused(t *testing.T, m *Cache, key string, at crdt.Timestamp) {
	t.Helper()
	await.Until(t, 20*time.Second, func() bool { return m.store.Refuses(key, at) },
		"%s never refused %q stamped %v (a watermark: %v; adopted %d, %d pending)", m.Name(), key, at,
		func() any { _, gone := m.store.Gone(key); return gone },
		func() any { return m.store.Stats().WatermarksAdopted }, func() any { return m.store.PendingMarks() })
}

// awaitCollected waits until every one of members has collected key's
// record.
func awaitCollected(t *testing.T, key string, members ...*Cache) {
	t.Helper()
	await.Until(t, 20*time.Second, func() bool {
		for _, c := range members {
			if _, held := c.store.Lookup(key); held {
				return false
			}
		}
		return true
	}, "%q was never collected on every member", key)
}

// TestACollectedDeleteDoesNotReturnOnANewcomer: r holds k and is cut off
// for longer than the horizon; a deletes k, and a and b collect the
// delete. m joins a and b and adopts their watermarks; then r and m end
// up on one side: m never serves k, and r loses k there, answered by m.
// Once the partition heals, k is gone from every member.
func TestACollectedDeleteDoesNotReturnOnANewcomer(t *testing.T) {
	newcomerMeetsAbsentee(t, true)
}

// TestANewcomerWithoutMarksServesACollectedDelete is the broken variant
// of TestACollectedDeleteDoesNotReturnOnANewcomer: m asks no peer for
// its watermarks, and serves r's k while cut off with it (the fault
// before them); the value goes after the heal all the same.
func TestANewcomerWithoutMarksServesACollectedDelete(t *testing.T) {
	newcomerMeetsAbsentee(t, false)
}

// shortHorizonMembers returns a network and a function that starts a
// member on it, joining peers, that collects every 50 ms under a
// horizon of 2 s.
func shortHorizonMembers(t *testing.T) (*memnet.Network, func(name string, peers ...string) *Cache) {
	net := memnet.NewNetwork(1)
	return net, func(name string, peers ...string) *Cache {
		return newCache(t, shortHorizonConfig(t, net, name, 50*time.Millisecond, peers...))
	}
}

// shortHorizonConfig is a member on net, joining peers, with anti-entropy
// every 50 ms, collections every gc, under a horizon of 2 s.
func shortHorizonConfig(t *testing.T, net *memnet.Network, name string, gc time.Duration, peers ...string) Config {
	t.Helper()
	tr, err := net.NewTransport(name)
	if err != nil {
		t.Fatal(err)
	}
	return Config{NodeName: name, Network: tr, Peers: peers, Timings: FastTimings(),
		AntiEntropyInterval: 50 * time.Millisecond, GCInterval: gc,
		MaxClockSkew: 10 * time.Millisecond, MaxClockDrift: 500 * time.Millisecond,
		TombstoneHorizon: 2 * time.Second}
}

// awaitExchangeAfter waits until c has completed an exchange with peer
// after the time given.
func awaitExchangeAfter(t *testing.T, c *Cache, peer string, after time.Time) {
	t.Helper()
	await.Until(t, 10*time.Second, func() bool {
		return slices.ContainsFunc(c.repl.Status().Members, func(m gossip.PeerStatus) bool { return m.Name == peer && m.LastSync.After(after) })
	}, "%s never synced with %s again", c.Name(), peer)
}

func newcomerMeetsAbsentee(t *testing.T, marks bool) {
	net, member := shortHorizonMembers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := member("a")
	b := member("b", a.Addr())
	r := member("r", a.Addr())
	for _, c := range []*Cache{b, r} {
		if err := c.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Set("k", []byte("old"), 0); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { _, ok := r.Get("k"); return ok }, "r never got k")
	held, _ := r.store.Lookup("k") // r's k, which must not come back on m

	net.Partition([]string{"r"})
	await.Until(t, 10*time.Second, func() bool { return len(a.Members()) == 2 && len(b.Members()) == 2 }, "a and b still see r")
	if err := a.Delete("k"); err != nil {
		t.Fatal(err)
	}
	awaitCollected(t, "k", a, b)

	m := member("m", a.Addr(), r.Addr())
	m.noMarks.Store(!marks) // before its first sync, which its first ask waits for
	if err := m.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Get("k"); ok {
		t.Fatalf("m read k = %q right after it joined a and b", v)
	}
	if marks {
		awaitRefused(t, m, "k", held.Time)
		// A collection counts the watermark it raised after raising it,
		// and may raise it (from the marks offered) before the ask that
		// offered them has marked them taken: both awaited, not read at
		// once.
		await.Until(t, 10*time.Second, func() bool { return m.Stats().WatermarksAdopted > 0 },
			"m refuses k, and counted no watermark adopted")
		await.Until(t, 10*time.Second, m.marks.taken.Load, "m refuses k, and never took the marks it was offered (%d answers not complete)",
			func() any { return m.marks.incomplete.Load() })
		// Its first answer was complete: a founded the cluster, and b
		// took a's complete answer long before m came.
		if !m.marks.taken.Load() || m.marks.incomplete.Load() != 0 {
			t.Fatalf("m's ask: taken %v after %d answers not complete; want taken after none",
				m.marks.taken.Load(), m.marks.incomplete.Load())
		}
	}
	net.Partition([]string{"a", "b"}) // r and m one side, a and b the other
	if marks {
		if within(3*time.Second, func() bool { _, ok := m.Get("k"); return ok }) {
			t.Fatal("m served r's k, whose delete a and b collected before m joined")
		}
		await.Until(t, 10*time.Second, func() bool { _, ok := r.Get("k"); return !ok }, "r still holds k, cut off with m")
	} else {
		await.Until(t, 10*time.Second, func() bool { _, ok := m.Get("k"); return ok }, "m, without marks, never served r's k")
	}
	net.Heal()
	for _, c := range []*Cache{a, b, r, m} {
		await.Until(t, 20*time.Second, func() bool { _, ok := c.Get("k"); return !ok }, "k stays on %s after the heal", c.Name())
	}
}

// TestAnOldSnapshotsValueDoesNotReturnOnANewcomer: r, with a snapshot and
// a name drawn at New (so not waited for), holds k and closes; a deletes
// k and a and b collect it within a second. m joins after that and adopts
// their watermarks, and r restarts from its snapshot on m's side of a
// partition: m never serves k, and r loses it there; once the partition
// heals, k is gone from every member.
func TestAnOldSnapshotsValueDoesNotReturnOnANewcomer(t *testing.T) {
	net := memnet.NewNetwork(1)
	member := func(name, path string, peers ...string) *Cache {
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		// No NodeName: one drawn at New, so that a and b do not wait
		// for r once it has left.
		return newCache(t, Config{Network: tr, Peers: peers, Timings: FastTimings(), SnapshotPath: path,
			AntiEntropyInterval: 50 * time.Millisecond, GCInterval: 50 * time.Millisecond, MaxClockSkew: 10 * time.Millisecond})
	}
	path := t.TempDir() + "/r.snap"
	a := member("a", "")
	b := member("b", "", a.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	r := member("r", path, a.Addr())
	if err := r.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Set("k", []byte("old"), 0); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { _, ok := r.Get("k"); return ok }, "r never got k")
	held, _ := r.store.Lookup("k") // r's k, as its snapshot holds it
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete("k"); err != nil {
		t.Fatal(err)
	}
	awaitCollected(t, "k", a, b)
	m := member("m", "", a.Addr())
	if err := m.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	awaitRefused(t, m, "k", held.Time)
	net.Partition([]string{"a", "b"})
	r2 := member("r2", path, m.Addr())
	// Restored, not Get: r2's first session with m may have run, and m's
	// answer removed k there, before the Get (found red in CI, under
	// the race detector beside a review's tests).
	if st := r2.Stats(); st.Restored != 1 {
		t.Fatalf("r2 restored %d records from r's snapshot, want k", st.Restored)
	}
	if within(3*time.Second, func() bool { _, ok := m.Get("k"); return ok }) {
		t.Fatal("m served k from r's old snapshot, whose delete a and b collected before m joined")
	}
	await.Until(t, 10*time.Second, func() bool { _, ok := r2.Get("k"); return !ok }, "r2 still holds k, cut off with m")
	net.Heal()
	for _, c := range []*Cache{a, b, r2, m} {
		await.Until(t, 20*time.Second, func() bool { _, ok := c.Get("k"); return !ok }, "k stays on %s after the heal", c.Name())
	}
}

// collectorsOfK starts a and b on net, the members that member starts
// (with a collection interval of its own), writes k on a, deletes it once
// b holds it, and returns once both have collected the delete, with the
// value of k written (the record a newcomer must refuse).
func collectorsOfK(t *testing.T, net *memnet.Network) (member func(name string, gc time.Duration, peers ...string) *Cache, a *Cache, written crdt.Record) {
	t.Helper()
	member = func(name string, gc time.Duration, peers ...string) *Cache {
		return newCache(t, shortHorizonConfig(t, net, name, gc, peers...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a = member("a", 50*time.Millisecond)
	b := member("b", 50*time.Millisecond, a.Addr())
	if err := b.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Set("k", []byte("old"), 0); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { _, ok := b.Get("k"); return ok }, "b never got k")
	written, _ = a.store.Lookup("k")
	if err := a.Delete("k"); err != nil {
		t.Fatal(err)
	}
	awaitCollected(t, "k", a, b)
	return member, a, written
}

// TestANewcomerLearnsMarksItsFirstPeerHasNotAdoptedYet: p joined after a
// and b collected k's delete, and asked them for their watermarks, but
// has not adopted them yet (its stable bound has not passed them: a
// member joining it holds that bound still). m then joins with p alone in
// reach, so p is the peer of its first sync and the one it asks: it
// learns what a and b collected all the same, and refuses k.
func TestANewcomerLearnsMarksItsFirstPeerHasNotAdoptedYet(t *testing.T) {
	newcomerAsksANewcomer(t, false)
}

// TestANewcomerAsksAgainAPeerWhoseMarksWereIncomplete: as
// TestANewcomerLearnsMarksItsFirstPeerHasNotAdoptedYet, but p has had no
// answer to its own ask when m asks it: p says its marks are incomplete,
// and m asks again, and learns them once p has (found by review: m took
// p's first answer, of none of them, for its peers' marks, and never
// asked again).
func TestANewcomerAsksAgainAPeerWhoseMarksWereIncomplete(t *testing.T) {
	newcomerAsksANewcomer(t, true)
}

func newcomerAsksANewcomer(t *testing.T, late bool) {
	net := memnet.NewNetwork(1)
	member, a, written := collectorsOfK(t, net)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// p collects (so asks, and adopts) only once an hour: the marks it
	// holds are those the test offers it, as its ask would, not adopted.
	p := member("p", time.Hour, a.Addr())
	if err := p.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if !late {
		p.store.OfferMarks(a.store.Marks(), p.phys())
	}
	net.Partition([]string{"a", "b"}) // p and m one side
	m := member("m", 50*time.Millisecond, p.Addr())
	if err := m.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if with := m.repl.Status().FirstSyncWith; with != "p" {
		t.Fatalf("m first synced with %q, not p", with)
	}
	if late {
		await.Until(t, 10*time.Second, func() bool { return m.marks.incomplete.Load() > 0 }, "p never answered m's ask")
		if _, gone := m.store.Gone("k"); gone {
			t.Fatal("m refuses k before p holds a's marks")
		}
		p.store.OfferMarks(a.store.Marks(), p.phys())
	}
	awaitRefused(t, m, "k", written.Time)
}

// TestANewcomerAsksAgainAMemberThatFoundedWrongly: w, started with no
// peers and no state while a and b run, founds a cluster of its own, then
// meets a and b (a member bridges them): it was a founder, but its marks
// are none of what a and b collected. It has not had its own answer (it
// collects, so asks, once an hour). m then joins with w alone in reach:
// w must not say its empty marks are complete, and m, asking again, must
// learn a's once w has them.
func TestANewcomerAsksAgainAMemberThatFoundedWrongly(t *testing.T) {
	net := memnet.NewNetwork(1)
	member, a, written := collectorsOfK(t, net)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	w := member("w", time.Hour)
	await.Until(t, 10*time.Second, w.repl.Founder, "w, alone with no peers, never founded")
	j := member("j", 50*time.Millisecond, w.Addr(), a.Addr()) // the bridge
	await.Until(t, 10*time.Second, func() bool { return len(w.Members()) >= 3 }, "w never met a and b")
	if err := w.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	_ = j
	net.Partition([]string{"a", "b", "j"}) // w and m one side
	m := member("m", 50*time.Millisecond, w.Addr())
	if err := m.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if with := m.repl.Status().FirstSyncWith; with != "w" {
		t.Fatalf("m first synced with %q, not w", with)
	}
	await.Until(t, 10*time.Second, func() bool { return m.marks.taken.Load() || m.marks.incomplete.Load() > 0 }, "w never answered m's ask")
	if m.marks.taken.Load() {
		t.Fatalf("m took w's marks (%d) for complete: w founded wrongly, and met a and b before m came", len(w.store.Marks()))
	}
	w.store.OfferMarks(a.store.Marks(), w.phys()) // as w's own ask would
	awaitRefused(t, m, "k", written.Time)
}

// TestANewcomerAsksAgainAFounderThatMetARestoredMember: a founds, d (a
// name drawn at New, so not waited for) joins it, takes k and closes,
// its snapshot holding k; a deletes k, collects it, and closes, its
// snapshot holding the watermark. b, empty, founds a cluster of its own
// (its lookup, stale, finds only itself) and never collects (so never
// asks); a, restored, joins b, saying what every member not synced says:
// it holds nothing yet. Then, a cut off, c joins with b alone in reach, and
// d comes back from its old snapshot beside c. b founded wrongly: its
// marks, none of a's, must not be complete for c, which, asking again,
// learns a's once b has them, and never serves k (found by review: b
// kept saying it founded, c took its empty marks for complete, never
// asked again, and served d's k, whose delete a had collected).
func TestANewcomerAsksAgainAFounderThatMetARestoredMember(t *testing.T) {
	net := memnet.NewNetwork(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	// config is a member on transport, named name ("": drawn at New),
	// with its snapshot at path ("": none).
	config := func(transport, name, path string, gc time.Duration, peers ...string) Config {
		cfg := shortHorizonConfig(t, net, transport, gc, peers...)
		cfg.NodeName, cfg.SnapshotPath = name, path
		return cfg
	}
	member := func(cfg Config) *Cache { return newCache(t, cfg) }
	a := member(config("a", "a", dir+"/a.snap", 50*time.Millisecond))
	d := member(config("d", "", dir+"/d.snap", 50*time.Millisecond, a.Addr()))
	if err := d.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Set("k", []byte("old"), 0); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { _, ok := d.Get("k"); return ok }, "d never got k")
	held, _ := d.store.Lookup("k") // d's k, as its snapshot holds it
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete("k"); err != nil {
		t.Fatal(err)
	}
	awaitCollected(t, "k", a)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// b's lookup finds only itself: a stale one, a's cluster out of reach.
	bcfg := config("b", "b", "", time.Hour)
	var self atomic.Pointer[string]
	bcfg.PeerSource = func(context.Context) ([]string, error) {
		if p := self.Load(); p != nil {
			return []string{*p}, nil
		}
		return nil, nil
	}
	b := member(bcfg)
	addr := b.Addr()
	self.Store(&addr)
	await.Until(t, 10*time.Second, b.repl.Founder, "b, its lookup finding only itself, never founded")

	a = member(config("a", "a", dir+"/a.snap", 50*time.Millisecond, b.Addr()))
	if _, gone := a.store.Gone("k"); !gone {
		t.Fatal("a, restored, does not refuse k: its snapshot lost the watermark")
	}
	if err := a.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { return !b.repl.Founder() }, "b never met a")
	net.Partition([]string{"a"}) // b, c and d one side

	c := member(config("c", "c", "", 50*time.Millisecond, b.Addr()))
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if with := c.repl.Status().FirstSyncWith; with != "b" {
		t.Fatalf("c first synced with %q, not b", with)
	}
	await.Until(t, 10*time.Second, func() bool { return c.marks.taken.Load() || c.marks.incomplete.Load() > 0 }, "b never answered c's ask")
	took := c.marks.taken.Load()
	if took {
		t.Errorf("c took b's marks (%d) for complete: b founded wrongly, and met a, restored from its cluster's snapshot, before c came", len(b.store.Marks()))
	}
	b.store.OfferMarks(a.store.Marks(), b.phys()) // as b's own ask would
	if !took {
		await.Until(t, 20*time.Second, func() bool { _, gone := c.store.Gone("k"); return gone },
			"c never adopted a watermark for k (adopted %d)", func() any { return c.store.Stats().WatermarksAdopted })
		// Gone says k's leaf has a watermark: adopted within c's stable
		// bound, which holds b's cut of a, from a's restart, past the
		// delete. So c refuses d's k itself. a's first cut reported
		// at the floor of its last life held the bound there, below d's
		// k, and c served it (once in CI; see
		// TestARestartsFirstCutIsNotItsLastLifesFloor).
		if !c.store.Refuses("k", held.Time) {
			t.Fatalf("c adopted a watermark for k (%d pending) below d's k, stamped %v: its stable bound (%d) was held below it",
				c.store.PendingMarks(), held.Time, c.repl.Stable())
		}
	}
	d = member(config("d", "", dir+"/d.snap", 50*time.Millisecond, c.Addr()))
	if st := d.Stats(); st.Restored != 1 {
		t.Fatalf("d restored %d records from its snapshot, want k", st.Restored)
	}
	if within(3*time.Second, func() bool { _, ok := c.Get("k"); return ok }) {
		t.Fatal("c served k from d's old snapshot, whose delete a collected before b and c met it")
	}
	net.Heal()
	for _, m := range []*Cache{a, b, c, d} {
		await.Until(t, 20*time.Second, func() bool { _, ok := m.Get("k"); return !ok }, "k stays on %s after the heal", m.Name())
	}
}
