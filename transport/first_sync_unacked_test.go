package transport

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestFirstSyncUnackedSaysSo: a, restored from an old snapshot, pushes
// values whose deletes b collected in its first session. With b's
// acknowledgement, its first sync is taken acknowledged, the values gone
// (FirstSyncUnacked false); with every Reject of b's lost, it is taken at
// the session's deadline, the values still held, and FirstSyncUnacked
// says so: what the harness needs to tell a first sync that must hold no
// value older than a collected delete from one that may.
func TestFirstSyncUnackedSaysSo(t *testing.T) {
	for _, lose := range []bool{false, true} {
		t.Run(fmt.Sprint("rejects lost ", lose), func(t *testing.T) {
			n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Hour}, "a", "b")
			for i := range 5 {
				k := fmt.Sprint("k", i)
				n.reps["a"].recs[k] = crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(100 + i), Node: 1}}
			}
			n.reps["b"].wm = 1_000_000 // b collected their deletes
			n.drop = func(from string, e Envelope) bool {
				_, reject := decodeFrame(t, e.Payload).(*wire.Reject)
				return lose && from == "b" && reject
			}
			a := n.nodes["a"]
			n.pump("a", a.StartSession("b", n.now.Now()))
			if lose {
				if a.FirstSync() != 0 {
					t.Fatalf("first sync taken at %d with no acknowledgement, before the deadline", a.FirstSync())
				}
				n.now.Advance(a.cfg.SessionTimeout + 1)
				n.pump("a", a.Tick(n.now.Now()))
			}
			live := 0
			for _, r := range n.reps["a"].recs {
				if !r.Tombstone {
					live++
				}
			}
			switch {
			case a.FirstSync() == 0:
				t.Fatal("no first sync")
			case a.FirstSyncUnacked() != lose:
				t.Fatalf("FirstSyncUnacked %v with %d values live, want %v", a.FirstSyncUnacked(), live, lose)
			case lose != (live > 0):
				t.Fatalf("%d values live after a first sync, unacked %v", live, lose)
			}
		})
	}
}
