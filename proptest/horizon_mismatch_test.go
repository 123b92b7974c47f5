package proptest

import (
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/rapidfail"
)

// embedsStore is a researcher's wrapper of bcache's store: it says the
// store's horizon, as it says the rest.
type embedsStore struct{ *StoreReplica }

// TestAMismatchedHorizonIsRefused: the model judges the records a late
// frame delivers, and the losses it excuses, by Config.Horizon, and the
// replicas collect and reject by their own: a Config.Horizon longer than
// the stores' failed bcache's correct store (a write a frame delivered
// more than the stores' horizon after it was stamped, or lost then, was
// reported), and a shorter one excused losses the stores' rules do not
// allow. A run whose Factory builds bcache's replicas with another
// horizon than Config.Horizon, for every member or for one (Vary),
// fails at once, saying so; with the same, it runs.
func TestAMismatchedHorizonIsRefused(t *testing.T) {
	tenMinutes := DefaultStoreConfig()
	tenMinutes.Horizon = 10 * time.Minute
	unset := DefaultStoreConfig()
	unset.Horizon = 0 // the store's default, lww.DefaultHorizon (an hour)
	oneApart := DefaultStoreConfig()
	oneApart.Vary = func(name string, cfg *StoreConfig) {
		if name == "n1" {
			cfg.Horizon = 2 * time.Minute
		}
	}
	embedded := func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
		r, err := NewStoreReplica(name, id, phys, DefaultStoreConfig())
		return embedsStore{r}, err
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"store of 1m under 10m", Config{Factory: StoreFactory(DefaultStoreConfig()), Horizon: 10 * time.Minute}},
		{"store of 10m under 1m", Config{Factory: StoreFactory(tenMinutes), Horizon: time.Minute}},
		{"store of 10m under the default", Config{Factory: StoreFactory(tenMinutes)}},
		{"store of the default under the default", Config{Factory: StoreFactory(unset)}},
		{"one store of 2m among 1m", Config{Factory: StoreFactory(oneApart), MinNodes: 2, MaxNodes: 2}},
		{"map of 1m under 10m", Config{Factory: MapFactory(DefaultMapConfig()), Horizon: 10 * time.Minute}},
		{"embedded store of 1m under 10m", Config{Factory: embedded, Horizon: 10 * time.Minute}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			failure := rapidfail.Unshrunk(t, "MismatchedHorizon_"+strings.ReplaceAll(tc.name, " ", "_"), Property(tc.cfg))
			if !strings.Contains(failure, "but Config.Horizon is") {
				t.Fatalf("Property(%s): %q, want the mismatch refused", tc.name, failure)
			}
		})
	}
	// The same horizons pass the check: the default store, given none or
	// its own, and a Factory's replicas built with Config.Horizon.
	for _, tc := range []struct {
		name    string
		factory Factory
		horizon time.Duration
	}{
		{"store of 1m", StoreFactory(DefaultStoreConfig()), time.Minute},
		{"store of 10m", StoreFactory(tenMinutes), 10 * time.Minute},
		{"store of the default", StoreFactory(unset), time.Hour},
		{"map of 1m", MapFactory(DefaultMapConfig()), time.Minute},
		{"embedded store of 1m", embedded, time.Minute},
	} {
		for _, name := range []string{"n0", "n1", "n2", "n3"} {
			if _, err := horizonChecked(tc.factory, tc.horizon)(name, 1, func() int64 { return start }); err != nil {
				t.Errorf("%s %s under %v: %v", tc.name, name, tc.horizon, err)
			}
		}
	}
	for _, horizon := range []time.Duration{0, 5 * time.Minute} { // no Factory: the default store runs the horizon given
		cfg := Config{Horizon: horizon}
		cfg.fill()
		if _, err := horizonChecked(cfg.Factory, cfg.Horizon)("n1", 1, func() int64 { return start }); err != nil {
			t.Errorf("no Factory, Horizon %v: %v", horizon, err)
		}
	}
}
