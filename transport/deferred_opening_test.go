package transport

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestDeferredOpeningHoldsTheSlotAtMostASessionTimeout: a holder's
// session with a joiner is past its digests, moving records, when the
// joiner's own opening comes: the holder leaves it unanswered (see
// receiveDigest), and the joiner's session, its only one, waits for its
// retries to find the holder done. How long the joiner can start no
// session with anyone else, against how long the holder's session took:
// never past SessionTimeout from the opening.
func TestDeferredOpeningHoldsTheSlotAtMostASessionTimeout(t *testing.T) {
	const timeout = 4 * time.Second
	for _, perFrame := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond} {
		n := newTestNet(t, 8, Config{LeavesPerStep: 4, MaxRepairBytes: 2000, SessionTimeout: timeout, AntiEntropyInterval: time.Second}, "holder", "joiner", "c")
		for i := range 500 {
			r := crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: make([]byte, 20), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}}
			n.reps["holder"].recs[r.Key] = r
		}
		h, j := n.nodes["holder"], n.nodes["joiner"]
		var opened, freed int64
		ended := func() uint64 { s := j.Stats(); return s.SessionsCompleted + s.SessionsTimedOut }
		var before uint64
		tick := func() []Envelope { // the joiner's timers, its first session's end noted
			out := j.Tick(n.now.Now())
			if opened != 0 && freed == 0 && ended() != before {
				freed = n.now.Now()
			}
			return out
		}
		start := n.now.Now()
		n.pumpEach("holder", h.StartSession("joiner", n.now.Now()), func(string, Envelope) (string, []Envelope) {
			n.now.Advance(perFrame) // each frame takes that long to arrive
			if opened == 0 && h.ae.s.differing > 0 {
				opened, before = n.now.Now(), ended()
				return "joiner", j.StartSession("holder", n.now.Now())
			}
			if opened != 0 && freed == 0 && j.NextDeadline() <= n.now.Now() {
				return "joiner", tick()
			}
			return "", nil
		})
		if h.Stats().OpeningsDeferred == 0 {
			t.Fatalf("the holder deferred %d openings, want some", h.Stats().OpeningsDeferred)
		}
		took := n.now.Now() - start
		for freed == 0 {
			next := j.NextDeadline()
			if next > opened+int64(10*timeout) {
				t.Fatalf("the joiner's session still in flight %v after its opening", time.Duration(next-opened))
			}
			n.now.Advance(time.Duration(max(next-n.now.Now(), 0)))
			n.pump("joiner", tick())
		}
		held := freed - opened
		s := j.Stats()
		t.Logf("%v a frame: the holder's session took %v; the joiner's slot held %v after its opening (completed %d, timed out %d), %d records received",
			perFrame, time.Duration(took), time.Duration(held), s.SessionsCompleted, s.SessionsTimedOut, s.RepairRecordsReceived)
		if held > int64(timeout) {
			t.Fatalf("the joiner's slot was held %v, past SessionTimeout %v", time.Duration(held), timeout)
		}
	}
}
