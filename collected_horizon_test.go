package bcache

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestCollectionsAtTheHorizonAreCounted: a delete and an expired value
// collected once dead for the horizon show in Stats.CollectedAtHorizon,
// not in CollectedEarly or CollectedByBound. Such collections, the most
// common kind on a member whose peers come and go, were counted nowhere
// (bcache_collected_total had early and bound alone).
func TestCollectionsAtTheHorizonAreCounted(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	cfg := testConfig("alone")
	cfg.GCInterval = time.Hour
	cfg.Clock = func() time.Time { return time.Unix(0, now.Load()) }
	c := newCache(t, cfg)
	if err := c.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("short", []byte("v"), time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("kept", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(2 * c.cfg.TombstoneHorizon))
	c.collect()
	st := c.Stats()
	if st.CollectedAtHorizon != 2 || st.CollectedEarly != 0 || st.CollectedByBound != 0 || st.Records != 1 {
		t.Fatalf("a delete and an expired value collected past the horizon: at horizon %d, early %d, by bound %d, records left %d; want 2, 0, 0, 1",
			st.CollectedAtHorizon, st.CollectedEarly, st.CollectedByBound, st.Records)
	}
}
