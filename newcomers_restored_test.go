package bcache

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestNewcomersAreNotSyncedByEachOtherBesideARestoredMember: a member
// restarted from its snapshot (restored: its lineage is no founder's),
// with no peers to join, is ready at once and serves what it restored,
// all its cluster holds. Two newcomers that join it at once must not take
// their exchange with each other, both empty, for their first sync: the
// member they joined holds the cluster's state. It said in its metadata
// that it held none (it has completed no exchange and founded nothing),
// and the newcomers, seeing no holder in their view, were synced holding
// none of its keys.
func TestNewcomersAreNotSyncedByEachOtherBesideARestoredMember(t *testing.T) {
	net := memnet.NewNetwork(1)
	path := filepath.Join(t.TempDir(), "a.snap")
	first := onMemnetWithSnapshot(t, net, "a", "a1", path)
	const keys = 100
	for i := range keys {
		if err := first.Set(fmt.Sprint("k", i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// A snapshot whose lineage met other members (or of the release
	// before the lineage mark): no mark.
	if err := os.Remove(path + founderSuffix); err != nil {
		t.Fatal(err)
	}
	a := onMemnetWithSnapshot(t, net, "a", "a2", path)
	if s := a.Status(); !s.Ready() || a.Len() != keys {
		t.Fatalf("restored a: ready %v, %d keys; want ready with %d", s.Ready(), a.Len(), keys)
	}
	net.SetLoss("a2", "*", 1) // a's datagrams: no exchange with it completes
	// b and c probe a with slow probes: see TestNewcomersAreNotSyncedByEachOther.
	c := onMemnetSlowProbes(t, net, "c", a.Addr())
	b := onMemnetSlowProbes(t, net, "b", a.Addr())
	await.Until(t, 10*time.Second, func() bool { return len(b.Members()) == 3 && len(c.Members()) == 3 }, "never met")
	await.Until(t, 10*time.Second, func() bool { return exchangedWith(b, "c") && exchangedWith(c, "b") }, "b and c never exchanged")
	for _, m := range []*Cache{b, c} {
		if s := m.Status(); s.Synced || s.Ready() {
			t.Errorf("%s: synced %v (ready %v) holding %d of the %d keys of a, live in its view and ready: peers %+v",
				m.Name(), s.Synced, s.Ready(), m.Len(), keys, s.Peers)
		}
	}
}

func exchangedWith(m *Cache, peer string) bool {
	for _, p := range m.Status().Peers {
		if p.Name == peer && !p.LastSync.IsZero() {
			return true
		}
	}
	return false
}
