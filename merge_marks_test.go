package bcache

import (
	"context"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestAMemberOfAMergedClusterRefusesTheOthersCollectedDelete: a founds a
// cluster with b; r (a name drawn at New, so not waited for) takes k
// from a and closes, its snapshot holding k; a deletes k, and a and b
// collect it. Apart, w founds a cluster of its own and w1 joins it,
// taking w's marks for complete. Then the two clusters merge (j joins
// both); nothing of k reaches w's side (collected), and the merge
// brings no watermark. Cut off from a, b and j, w1 meets r, restored from
// its old snapshot: w1 must not serve k, whose delete the cluster it
// merged with collected before the merge; nor may m, a newcomer whose
// first sync is with w1, take w1's marks for complete. Writes made in
// each cluster before the merge reach every member.
func TestAMemberOfAMergedClusterRefusesTheOthersCollectedDelete(t *testing.T) {
	net := memnet.NewNetwork(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	member := func(name, path string, peers ...string) *Cache {
		cfg := shortHorizonConfig(t, net, name, 50*time.Millisecond, peers...)
		if path != "" {
			cfg.NodeName, cfg.SnapshotPath = "", path // drawn at New
		}
		return newCache(t, cfg)
	}
	a := member("a", "")
	b := member("b", "", a.Addr())
	r := member("r", dir+"/r.snap", a.Addr())
	for _, c := range []*Cache{b, r} {
		if err := c.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Set("k", []byte("old"), 0); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { _, ok := r.Get("k"); return ok }, "r never got k")
	held, _ := r.store.Lookup("k")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete("k"); err != nil {
		t.Fatal(err)
	}
	awaitCollected(t, "k", a, b)

	w := member("w", "")
	await.Until(t, 10*time.Second, w.repl.Founder, "w, alone with no peers, never founded")
	w1 := member("w1", "", w.Addr())
	if err := w1.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, w1.marks.taken.Load, "w1 never took w's marks")

	// A write in each cluster before the merge, after a's collection
	// (so above its watermark): both reach every member.
	if err := b.Set("xb", []byte("b"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w1.Set("xw", []byte("w"), 0); err != nil {
		t.Fatal(err)
	}

	met := time.Now()
	j := member("j", "", w.Addr(), a.Addr()) // the merge
	await.Until(t, 10*time.Second, func() bool { return len(w1.Members()) >= 4 }, "w1 never met a, b and j")
	awaitExchangeAfter(t, w1, "a", met)
	awaitExchangeAfter(t, w1, "b", met)
	for _, c := range []*Cache{a, b, j, w, w1} {
		for _, key := range []string{"xb", "xw"} {
			await.Until(t, 10*time.Second, func() bool { _, ok := c.Get(key); return ok }, "%s never got %s after the merge", c.Name(), key)
		}
	}
	awaitRefused(t, w1, "k", held.Time)

	net.Partition([]string{"a", "b", "j"}) // w, w1, r2 and m one side
	r2 := member("r2", dir+"/r.snap", w1.Addr())
	if st := r2.Stats(); st.Restored != 1 {
		t.Fatalf("r2 restored %d records from r's snapshot, want k", st.Restored)
	}
	m := member("m", "", w1.Addr())
	if err := m.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	awaitRefused(t, m, "k", held.Time)
	if within(3*time.Second, func() bool { _, ok := w1.Get("k"); return ok }) {
		t.Errorf("w1 served r's old k (stamped %v), whose delete a and b collected before the merge (w1 refuses it: %v)",
			held.Time, w1.store.Refuses("k", held.Time))
	}
	if _, ok := m.Get("k"); ok {
		t.Errorf("m served r's old k, taking w1's marks for complete: %v", m.marks.taken.Load())
	}
	net.Heal()
	for _, c := range []*Cache{a, b, j, w, w1, r2, m} {
		await.Until(t, 20*time.Second, func() bool { _, ok := c.Get("k"); return !ok }, "k stays on %s after the heal", c.Name())
	}
}
