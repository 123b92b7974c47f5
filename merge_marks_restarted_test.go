package bcache

import (
	"context"
	"fmt"
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
// own, where it deletes k0 and collects the delete. The partition heals
// and w1 meets a again: a member it knows (Status.MetHolders listed
// members first seen only), restarted, holding another cluster's state.
// w1 must ask it for its marks, as it asks a member of a merged cluster
// first seen holding; it never did, and a value of k0 older than a's
// delete, from a member still holding it, came back on w1.
func TestAMemberRefusesWhatARestartedMemberCollectedInAClusterOfItsOwn(t *testing.T) {
	restartedFounder(t, 1)
}

// TestAMemberRefusesWhatAMemberItAskedBeforeCollectedInAClusterOfItsOwn:
// as TestAMemberRefusesWhatARestartedMemberCollectedInAClusterOfItsOwn,
// twice. The first time w1 lists a in MetHolders and asks it for its
// marks (its count of asks of a goes to maxHolderAsks). The second time a,
// restarted under its name again and founding alone again, collects
// another delete; w1 relists it (it stays among the last 16), but its ask
// of a counted as made, it never asked again, and an older value of the
// second key came back on w1.
func TestAMemberRefusesWhatAMemberItAskedBeforeCollectedInAClusterOfItsOwn(t *testing.T) {
	restartedFounder(t, 2)
}

// restartedFounder is the scene of the two tests above, rounds times: a
// cut off, restarted alone under its name, founding, deleting a key and
// collecting the delete, then healed; w1 must refuse the key's value at
// the stamp a deleted.
func restartedFounder(t *testing.T, rounds int) {
	net := memnet.NewNetwork(1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
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
	a := member("a", w.Addr()) // joins after w1 synced: first seen holding nothing
	if err := a.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if hs := w1.repl.Status().MetHolders; len(hs) > 0 {
		t.Fatalf("w1 saw %v first holding, a newcomer of its own cluster", hs)
	}
	has := func(c *Cache, name string) bool {
		return slices.ContainsFunc(c.repl.Status().Members, func(m gossip.PeerStatus) bool { return m.Name == name })
	}
	for round := range rounds {
		key := fmt.Sprintf("k%d", round)
		net.Partition([]string{"a"})
		if err := a.Close(); err != nil {
			t.Log(err)
		}
		await.Until(t, 20*time.Second, func() bool { return !has(w1, "a") }, "round %d: w1 never saw a fail", round)

		a = member("a") // restarted, alone: founds
		await.Until(t, 10*time.Second, a.repl.Founder, "round %d: a, restarted alone, never founded", round)
		if err := a.Set(key, []byte("old"), 0); err != nil {
			t.Fatal(err)
		}
		held, _ := a.store.Lookup(key)
		if err := a.Delete(key); err != nil {
			t.Fatal(err)
		}
		awaitCollected(t, key, a)

		healed := time.Now()
		net.Heal()
		await.Until(t, 20*time.Second, func() bool { return has(w1, "a") }, "round %d: w1 never met a again", round)
		awaitExchangeAfter(t, w1, "a", healed)
		if !within(15*time.Second, func() bool { return w1.store.Refuses(key, held.Time) }) {
			t.Fatalf("round %d: w1 does not refuse %s stamped %v, whose delete a collected in its own cluster before they met again (MetHolders %v)",
				round, key, held.Time, w1.repl.Status().MetHolders)
		}
	}
}
