package transport

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestAFirstSyncWaitsForTheRejectsOfEveryRepair: a, restored from an old
// snapshot, holds live values of keys whose deletes b collected (below
// b's watermark), over many leaves, so that its first session pushes
// them in several Repairs and b rejects each. The Reject of an earlier
// Repair is lost (or overtaken by the last); the last one, the
// acknowledgement, comes: a must not take its first sync while it still
// serves values b rejected.
func TestAFirstSyncWaitsForTheRejectsOfEveryRepair(t *testing.T) {
	n := newTestNet(t, 8, Config{LeavesPerStep: 2, AntiEntropyInterval: time.Hour}, "a", "b")
	const keys = 40
	for i := range keys {
		k := fmt.Sprint("k", i)
		n.reps["a"].recs[k] = crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(100 + i), Node: 1}}
	}
	n.reps["b"].wm = 1_000_000 // b collected their deletes
	rejects, dropped := 0, 0
	n.drop = func(from string, e Envelope) bool {
		if from != "b" {
			return false
		}
		if m, ok := decodeFrame(t, e.Payload).(*wire.Reject); ok && len(m.Records) > 0 {
			rejects++
			if rejects == 1 {
				dropped = len(m.Records)
				return true // the first lost
			}
		}
		return false
	}
	n.pump("a", n.nodes["a"].StartSession("b", n.now.Now()))
	if rejects < 2 {
		t.Fatalf("b sent %d Rejects with records, want several", rejects)
	}
	live := 0
	for _, r := range n.reps["a"].recs {
		if !r.Tombstone {
			live++
		}
	}
	if n.nodes["a"].FirstSync() == 0 {
		t.Fatalf("a took no first sync; %d values live", live)
	}
	if live > 0 {
		t.Fatalf("a synced (first sync at %d) serving %d values b rejected (%d in the Reject lost, of %d Rejects)",
			n.nodes["a"].FirstSync(), live, dropped, rejects)
	}
}
