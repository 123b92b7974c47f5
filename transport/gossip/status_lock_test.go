package gossip

import (
	"sync"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// TestStatusDoesNotWaitForTheProtocolsLock: Status reads the node's
// part (first sync, each peer's last exchange, writes queued) from the
// copy made at the end of the last section under the node's lock. It
// took that lock, held while a whole frame (up to 20 MiB) is applied, so
// a /readyz waited behind a large repair. The copy stays current: each
// exchange's time shows once it completes.
func TestStatusDoesNotWaitForTheProtocolsLock(t *testing.T) {
	a := startNode(t, "a", nil)
	b := startNode(t, "b", []string{a.r.Addr()})
	waitMembers(t, 2, a, b)
	waitSynced(t, b)
	lastSync := func() time.Time {
		if st := b.r.Status(); len(st.Members) == 1 {
			return st.Members[0].LastSync
		}
		return time.Time{}
	}
	await.Until(t, 10*time.Second, func() bool { return !lastSync().IsZero() }, "b's status never showed an exchange with a")
	first := lastSync()
	await.Until(t, 10*time.Second, func() bool { return lastSync().After(first) }, "b's status kept a's exchange of %v", first)

	b.r.nodeMu.Lock() // a frame being applied
	unlock := sync.OnceFunc(b.r.nodeMu.Unlock)
	t.Cleanup(unlock)
	got := make(chan Status, 1)
	go func() { got <- b.r.Status() }()
	select {
	case st := <-got:
		if st.FirstSync.IsZero() || st.FirstSyncWith != "a" || len(st.Members) != 1 || st.Members[0].LastSync.IsZero() {
			t.Errorf("b's status while its protocol is busy: %+v, want synced with a", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Status waited for the protocol's lock")
	}
	unlock()
}
