package gossip

import (
	"strconv"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// TestABurstsEnvelopesAreLetGo: the slice the loop reuses for the
// envelopes of the writes' groups does not stay at the size a burst's
// group took once a small group follows: the frames were let go
// (cleared), the slice of one envelope a batch and a child was kept for
// good.
func TestABurstsEnvelopesAreLetGo(t *testing.T) {
	a := startNode(t, "a", nil)
	b := startNode(t, "b", []string{a.r.Addr()})
	waitMembers(t, 2, a, b)
	await.Until(t, 10*time.Second, func() bool { return a.r.peered.Load() }, "a has no peer")
	waitProtocolMembers(t, 2, a)

	const burst = 2000 // each its own batch: a value of most of a packet
	value := make([]byte, 1000)
	a.r.nodeMu.Lock() // the loop waits for the lock, the writes pile up
	for i := range burst {
		a.rep.write(a.r, "burst"+strconv.Itoa(i), value, false)
	}
	a.r.nodeMu.Unlock()
	await.Until(t, 20*time.Second, func() bool {
		a.r.nodeMu.Lock()
		defer a.r.nodeMu.Unlock()
		return a.r.writes.len() == 0 && a.r.node.Pending() == 0
	}, "writes still queued")
	a.rep.write(a.r, "after", []byte("x"), false)
	waitValue(t, 10*time.Second, "after", []byte("x"), b)
	if err := a.r.Close(); err != nil { // the loop has returned: r.envs is the test's to read
		t.Fatal(err)
	}
	if c := cap(a.r.envs); c > 4*keptEnvelopes {
		t.Fatalf("after a burst of %d writes and one write, the loop keeps a slice of %d envelopes", burst, c)
	}
}
