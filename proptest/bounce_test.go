package proptest

import (
	"slices"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// bouncing are weights that restart members in place often (the bounce
// action), among writes, deletes, collections and sessions: a new
// incarnation, empty, answers under a name the others still count.
func bouncing() map[string]int {
	w := DefaultWeights()
	for name, n := range map[string]int{"bounce": 2, "gc": 2, "antientropy": 2} {
		w[name] = n
	}
	return w
}

// TestRestartsInPlace runs the harness over the production store with
// members restarting in place, their peers told or not.
func TestRestartsInPlace(t *testing.T) {
	Check(t, Config{Weights: bouncing()})
}

// TestRestartsInPlaceInABusyBucket is TestEarlyCollectionInABusyBucket
// with restarts in place: a peer counts a name whose new incarnation holds
// nothing, while it collects early.
func TestRestartsInPlaceInABusyBucket(t *testing.T) {
	cfg := busyBucket(DefaultStoreConfig())
	for name, n := range bouncing() {
		cfg.Weights[name] = max(cfg.Weights[name], n)
	}
	Check(t, cfg)
}

// watched is the production store, noting the views it is given and the
// members it is told restarted.
type watched struct {
	*StoreReplica
	views     [][]string
	restarted []string
}

func (w *watched) SetMembers(names []string) {
	w.views = append(w.views, slices.Clone(names))
	w.StoreReplica.SetMembers(names)
}

func (w *watched) Restarted(name string) {
	w.restarted = append(w.restarted, name)
	w.StoreReplica.Restarted(name)
}

// TestBounceRestartsInPlace: Cluster.Bounce gives a member a new, empty
// incarnation, to which the frames to the member still in flight go,
// while the others' views never drop it; told, the others hear of the
// restart, and not told, they do not; either way the new incarnation is
// caught up by its sessions.
func TestBounceRestartsInPlace(t *testing.T) {
	for _, tell := range []bool{true, false} {
		store := StoreFactory(DefaultStoreConfig())
		c, err := NewCluster(3, func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
			r, err := store(name, id, phys)
			if err != nil {
				return nil, err
			}
			return &watched{StoreReplica: r.(*StoreReplica)}, nil
		}, start)
		if err != nil {
			t.Fatal(err)
		}
		c.Set(0, "a", []byte("1"), 0)
		if err := c.DeliverAll(1000); err != nil {
			t.Fatal(err)
		}
		c.Set(0, "b", []byte("2"), 0) // n0's deltas to n1 and n2, in flight
		others := []*watched{c.Replica(0).(*watched), c.Replica(2).(*watched)}
		views := []int{len(others[0].views), len(others[1].views)}
		before := c.members[1].id
		if err := c.Bounce(1, tell); err != nil {
			t.Fatal(err)
		}
		n1 := c.Replica(1).(*watched)
		if c.members[1].id == before || len(n1.Records()) != 0 {
			t.Fatalf("tell %v: n1 bounced as incarnation %d (was %d) holding %v: want a new one, empty", tell, c.members[1].id, before, n1.Records())
		}
		for j, o := range others {
			for _, v := range o.views[views[j]:] {
				if !slices.Contains(v, "n1") {
					t.Fatalf("tell %v: a view without n1 given across its restart in place: %v", tell, v)
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tell]; len(o.restarted) != want || want == 1 && o.restarted[0] != "n1" {
				t.Fatalf("tell %v: a member was told %v restarted, want n1 %d times", tell, o.restarted, want)
			}
		}
		if c.Net.Len() != 2 {
			t.Fatalf("tell %v: %d frames in flight, want n0's two deltas", tell, c.Net.Len())
		}
		if err := c.DeliverAll(1000); err != nil {
			t.Fatal(err)
		}
		if v, ok := n1.Get("b"); !ok || string(v) != "2" {
			t.Fatalf("tell %v: n1: Get(b) = %q, %v: the delta sent before its restart did not reach the new incarnation", tell, v, ok)
		}
		c.Tick() // sessions: n1's to the others, theirs to it
		if err := c.DeliverAll(10_000); err != nil {
			t.Fatal(err)
		}
		if v, ok := n1.Get("a"); !ok || string(v) != "1" {
			t.Fatalf("tell %v: n1: Get(a) = %q, %v: a session did not catch the new incarnation up", tell, v, ok)
		}
	}
}

// bouncingFromSnapshots are weights that save snapshots and restart
// members in place from them often: a Cache with a snapshot file,
// restarted quicker than failure detection.
func bouncingFromSnapshots() map[string]int {
	w := bouncing()
	w["snapshot"], w["bounce from snapshot"] = 2, 3
	return w
}

// TestRestartsInPlaceFromSnapshots runs the harness over the production
// store with members restarting in place from their snapshots, however
// old, their peers told or not.
func TestRestartsInPlaceFromSnapshots(t *testing.T) {
	Check(t, Config{Weights: bouncingFromSnapshots()})
}

// TestRestartsInPlaceFromSnapshotsInABusyBucket is
// TestEarlyCollectionInABusyBucket with restarts in place from snapshots.
func TestRestartsInPlaceFromSnapshotsInABusyBucket(t *testing.T) {
	cfg := busyBucket(DefaultStoreConfig())
	for name, n := range bouncingFromSnapshots() {
		cfg.Weights[name] = max(cfg.Weights[name], n)
	}
	Check(t, cfg)
}

// TestHarnessCatchesARestartInPlaceThatLosesRecords: with restores left
// out, the restarts in place from snapshots alone catch members whose
// restores read nothing (forgetful), as restores do.
func TestHarnessCatchesARestartInPlaceThatLosesRecords(t *testing.T) {
	factory := wrapStores(func(r *StoreReplica) Replica { return forgetful{r} })
	caught(t, "restarts in place that lose records", Config{Factory: factory, Weights: bouncingFromSnapshots(), Disable: []string{"restore"}},
		"restarted from its snapshot without", "members whose restores in place read nothing")
}
