package proptest

import (
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/rapidfail"
)

// TestFirstSyncCatchesAMissingWriteBelowACrashedOne: n0 writes a key,
// every member takes it; n0 writes it again cut off, crashes and restarts
// empty, and makes its first sync with n1, which has held the first write
// since long before. A first sync that lacks it is a broken one (WaitSynced
// returned before the member held the cluster's state). The check let a
// member lack any version no newer than the newest a crash took of its key
// (model.lost), even one every live member held, so it passed; and
// without the crash (crashed false) it is caught.
func TestFirstSyncCatchesAMissingWriteBelowACrashedOne(t *testing.T) {
	key := bucket[0]
	var gone bool
	play := func(crashed bool) func(s script) {
		return func(s script) {
			gone = false
			s.begin()
			s.set(0, key, "first")
			s.round()
			s.h.c.Advance(2 * time.Second) // n1 holds the first write since before n0's first sync
			s.h.check(s.t)
			s.h.c.Partition([]string{"n0"}, []string{"n1", "n2"})
			if crashed {
				s.set(0, key, "second") // its deltas are cut
			}
			s.crash(0)
			s.h.c.Heal()
			s.restart(0)
			gone = true // n0's first sync misses the key
			s.h.c.StartSession(0, 1)
			s.h.deliverAll(s.t, "first session")
			s.h.check(s.t)
			gone = false
		}
	}
	forgets := func(sc StoreConfig) Factory {
		return func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
			r, err := NewStoreReplica(name, id, phys, sc)
			if name != "n0" {
				return r, err
			}
			return hides{r, key, &gone}, err
		}
	}
	for _, crashed := range []bool{false, true} {
		failure := rapidfail.Failure(t, "FirstSyncMisses", scripted(forgets, play(crashed)))
		if !strings.Contains(failure, "made its first sync") {
			t.Errorf("crash took a newer write %v: the harness passed a first sync without a write its peer held: %q", crashed, failure)
		}
	}
}
