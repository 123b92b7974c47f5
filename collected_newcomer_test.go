package bcache

import (
	"context"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// A member that joins receives its peers' records, not their watermarks:
// a value whose delete the cluster collected before it joined can come
// back on it from a member that still holds the value (back from an
// absence past the horizon, or restarted from an old snapshot under a
// name drawn at New), while the two are cut off from every member that
// collected the delete (found by review). The README says so; these
// tests hold the bound it gives: the value goes, from both, once they
// meet a member that collected the delete.

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

// TestACollectedDeleteOnANewcomerReturnsOnlyUntilItMeetsACollector: r
// holds k and is cut off for longer than the horizon; a deletes k, and a
// and b collect the delete. m joins a and b, then r and m end up on one
// side: m may serve r's k there; once the partition heals, k is gone
// from every member.
func TestACollectedDeleteOnANewcomerReturnsOnlyUntilItMeetsACollector(t *testing.T) {
	net := memnet.NewNetwork(1)
	member := func(name string, peers ...string) *Cache {
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		return newCache(t, Config{NodeName: name, Network: tr, Peers: peers, Timings: FastTimings(),
			AntiEntropyInterval: 50 * time.Millisecond, GCInterval: 50 * time.Millisecond,
			MaxClockSkew: 10 * time.Millisecond, MaxClockDrift: 500 * time.Millisecond,
			TombstoneHorizon: 2 * time.Second})
	}
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

	net.Partition([]string{"r"})
	await.Until(t, 10*time.Second, func() bool { return len(a.Members()) == 2 && len(b.Members()) == 2 }, "a and b still see r")
	if err := a.Delete("k"); err != nil {
		t.Fatal(err)
	}
	awaitCollected(t, "k", a, b)

	m := member("m", a.Addr(), r.Addr())
	if err := m.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Get("k"); ok {
		t.Fatalf("m read k = %q right after it joined a and b", v)
	}
	net.Partition([]string{"a", "b"}) // r and m one side, a and b the other
	served := within(3*time.Second, func() bool { _, ok := m.Get("k"); return ok })
	t.Logf("m served r's k while cut off with it: %v", served)
	net.Heal()
	for _, c := range []*Cache{a, b, r, m} {
		await.Until(t, 20*time.Second, func() bool { _, ok := c.Get("k"); return !ok }, "k stays on %s after the heal", c.Name())
	}
}

// TestAnOldSnapshotsValueOnANewcomerGoesWhenItMeetsACollector: r, with a
// snapshot and a name drawn at New (so not waited for), holds k and
// closes; a deletes k and a and b collect it within a second. m joins
// after that, and r restarts from its snapshot on m's side of a
// partition: m may serve k there; once the partition heals, k is gone
// from every member.
func TestAnOldSnapshotsValueOnANewcomerGoesWhenItMeetsACollector(t *testing.T) {
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
	net.Partition([]string{"a", "b"})
	r2 := member("r2", path, m.Addr())
	if _, ok := r2.Get("k"); !ok {
		t.Fatal("r did not restore k from its snapshot")
	}
	served := within(3*time.Second, func() bool { _, ok := m.Get("k"); return ok })
	t.Logf("m served k from r's old snapshot while cut off with it: %v", served)
	net.Heal()
	for _, c := range []*Cache{a, b, r2, m} {
		await.Until(t, 20*time.Second, func() bool { _, ok := c.Get("k"); return !ok }, "k stays on %s after the heal", c.Name())
	}
}
