package proptest

import (
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/rapidfail"
	"github.com/bcache-go/bcache/internal/store"
	"pgregory.net/rapid"
)

// marksForgotten is the production store on a member that, restored from
// its snapshot, takes the snapshot's records and none of its watermarks:
// a delete it collected under MaxDead (at once, its watermark raised to
// it) no longer keeps an older value of the key out.
type marksForgotten struct{ *StoreReplica }

func (m marksForgotten) Restore(state any) error {
	return m.restoreWith(state, func(snap *store.Snapshot) { snap.Marks = nil }) // the broken part
}

// TestModelCatchesAResurrectionItsCollectorTookDown: n0 writes a key and
// is cut off; n1 deletes it and another key of its bucket, and n2,
// keeping one dead record (MaxDead), receives both deletes and collects
// the first in the same step: it never held it at a check. n2 saves a
// snapshot and is restored from it, n1 restarts empty, and n0's value
// comes back to n2. The store keeps it out (its restored watermark); a
// store restored without its watermarks takes it, a resurrection on a
// member that collected the delete, and n2 then crashes. Its crash took
// the delete (no live member held or collected it), so that the end,
// under MayDrop or not, excuses the value everywhere, and n2 never held
// the delete at a check, so that it never went back: the model passed
// it. A value older than a record its member collected is now checked
// at every step, as the end checks it.
func TestModelCatchesAResurrectionItsCollectorTookDown(t *testing.T) {
	play := func(s script) {
		s.set(0, bucket[0], "v1")
		s.round()
		s.h.c.Advance(time.Second)
		s.h.c.Partition([]string{"n0"}, []string{"n1", "n2"})
		s.del(1, bucket[0])
		s.h.c.Advance(time.Millisecond)
		s.del(1, bucket[1])
		s.h.deliverAll(s.t, "deliver")
		s.h.collect(s.t, 2)
		s.h.check(s.t)
		s.snapshot(2)
		s.crash(2)
		s.restore(2)
		s.crash(1)
		s.restart(1)
		s.h.c.Heal()
		s.h.c.Advance(time.Second)
		s.round()
		s.crash(2)
	}
	boundedDead := func(wrap func(*StoreReplica) Replica) func(StoreConfig) Factory {
		return func(sc StoreConfig) Factory {
			sc.MaxDead = 1
			return func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
				r, err := NewStoreReplica(name, id, phys, sc)
				if err != nil {
					return nil, err
				}
				return wrap(r), nil
			}
		}
	}
	mayDrop := func(factory func(StoreConfig) Factory) func(*rapid.T) {
		sc := DefaultStoreConfig()
		sc.Horizon, sc.Transport.FailedTimeout = 10*time.Minute, time.Minute
		sc.Transport.StableMargin = 3 * time.Second
		sc.Vary = nil
		cfg := Config{Factory: factory(sc), Keys: append(bucketKeys(2), "before"), Horizon: sc.Horizon, FailedTimeout: sc.Transport.FailedTimeout, MayDrop: true}
		cfg.fill()
		return func(t *rapid.T) {
			c, err := NewCluster(3, cfg.Factory, start)
			if err != nil {
				t.Fatal(err)
			}
			h := harnessOver(cfg, c)
			play(script{h, t})
			h.converge(t)
		}
	}
	rapid.Check(t, mayDrop(boundedDead(func(r *StoreReplica) Replica { return r })))
	failure := rapidfail.Failure(t, "ResurrectionItsCollectorTookDown", mayDrop(boundedDead(func(r *StoreReplica) Replica { return marksForgotten{r} })))
	t.Logf("the variant: %s", failure)
	if !strings.Contains(failure, "came back") {
		t.Fatalf("the model passed a member that took back a value whose delete it collected, then crashed, or failed it for another reason: %q", failure)
	}
}
