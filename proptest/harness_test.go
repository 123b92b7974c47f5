package proptest

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestConvergence runs the harness over bcache's own replica with every
// action enabled.
func TestConvergence(t *testing.T) {
	Check(t, Config{})
}

// TestEarlyCollectionInABusyBucket runs the harness over keys that all
// share one digest bucket, with a horizon long next to the ticks and no
// absences: every early collection raises the watermark that every other
// key's writes meet, and a rejection of a write in flight comes long
// before any horizon could excuse it. (TestHarnessCatchesBrokenStores
// shows that, on this configuration, the harness catches a store that
// collects early without knowing the cluster holds the records.)
func TestEarlyCollectionInABusyBucket(t *testing.T) {
	Check(t, busyBucket(DefaultStoreConfig()))
}

// busyBucket is the harness on twelve keys of one bucket, a ten-minute
// horizon and no absences, over stores configured as cfg otherwise.
func busyBucket(cfg StoreConfig) Config {
	cfg.Horizon, cfg.Transport.FailedTimeout = 10*time.Minute, 10*time.Minute
	return Config{Factory: StoreFactory(cfg), Keys: bucketKeys(12), Horizon: cfg.Horizon, Disable: []string{"absence"}}
}

// bucketKeys returns n keys that share a bucket of DefaultStoreConfig's
// digest.
func bucketKeys(n int) []string {
	var keys []string
	bucket := crdt.HashKey("a") >> 56
	for i := 0; len(keys) < n; i++ {
		if k := fmt.Sprint("k", i); crdt.HashKey(k)>>56 == bucket {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestBoundedDeadRecordsResurrectNothing runs the harness over stores that
// keep at most one dead record each: they collect at once, raising
// watermarks over writes still in flight, and lose some of those (the
// price of the bound), but converge and bring back no deleted key.
func TestBoundedDeadRecordsResurrectNothing(t *testing.T) {
	cfg := DefaultStoreConfig()
	cfg.MaxDead = 1
	Check(t, Config{Factory: StoreFactory(cfg), MayDrop: true})
}
