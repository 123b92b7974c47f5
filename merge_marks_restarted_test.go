package bcache

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestAMemberRefusesWhatARestartedMemberCollectedInAClusterOfItsOwn: w
// founds a cluster that w1, then a, join; cut off, a crashes (its leave
// reaches no one) and restarts under its name, founding a cluster of its
// own, where it deletes k and collects the delete. The partition heals
// and w1 meets a again: a member it knows (Status.MetHolders lists
// members first seen only), restarted, holding another cluster's state.
// w1 must ask it for its marks, as it asks a member of a merged cluster
// first seen holding; it never did, and a value of k older than a's
// delete, from a member still holding it, came back on w1.
func TestAMemberRefusesWhatARestartedMemberCollectedInAClusterOfItsOwn(t *testing.T) {
	net := memnet.NewNetwork(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	member := func(name string, peers ...string) *Cache {
		return newCache(t, shortHorizonConfig(t, net, name, 50*time.Millisecond, peers...))
	}
	w := member("w")
	await.Until(t, 10*time.Second, w.repl.Founder, "w, alone with no peers, never founded")
	w1 := member("w1", w.Addr())
	if err := w1.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, w1.marks.taken.Load, "w1 never took w's marks")
	a0 := member("a", w.Addr()) // joins after w1 synced: first seen holding nothing
	if err := a0.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if hs := w1.repl.Status().MetHolders; len(hs) > 0 {
		t.Fatalf("w1 saw %v first holding, a newcomer of its own cluster", hs)
	}

	net.Partition([]string{"a"})
	if err := a0.Close(); err != nil {
		t.Log(err)
	}
	has := func(c *Cache, name string) bool {
		return slices.ContainsFunc(c.repl.Status().Members, func(m gossip.PeerStatus) bool { return m.Name == name })
	}
	await.Until(t, 20*time.Second, func() bool { return !has(w1, "a") }, "w1 never saw a fail")

	a := member("a") // restarted, alone: founds
	await.Until(t, 10*time.Second, a.repl.Founder, "a, restarted alone, never founded")
	if err := a.Set("k", []byte("old"), 0); err != nil {
		t.Fatal(err)
	}
	held, _ := a.store.Lookup("k")
	if err := a.Delete("k"); err != nil {
		t.Fatal(err)
	}
	awaitCollected(t, "k", a)

	healed := time.Now()
	net.Heal()
	await.Until(t, 20*time.Second, func() bool { return has(w1, "a") }, "w1 never met a again")
	awaitExchangeAfter(t, w1, "a", healed)
	if !within(15*time.Second, func() bool { return w1.store.Refuses("k", held.Time) }) {
		t.Errorf("w1 does not refuse k stamped %v, whose delete a collected in its own cluster before they met again (MetHolders %v)",
			held.Time, w1.repl.Status().MetHolders)
	}
}
