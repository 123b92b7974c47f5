package transport

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestBusyWritesLeaveInFullPackets: a group of writes larger than a
// packet leaves in packets each as full as the next write allows, not
// in pairs of a full packet and one of a single write. The queue was
// flushed once the write that took it past the budget was in it, and the
// flush, splitting exactly, sent that write alone in a frame of its own:
// twice the frames under load.
func TestBusyWritesLeaveInFullPackets(t *testing.T) {
	n := newTestNet(t, 8, Config{Fanout: 1}, "a", "b", "c") // a tree: Delta frames with the origin's name
	a := n.nodes["a"]
	var group []crdt.Record
	for i := range 200 {
		n.now.Advance(3 * time.Microsecond)
		r := crdt.Record{Key: fmt.Sprintf("key-%04d", i), Value: make([]byte, 100), Time: a.cfg.Clock.Now()}
		n.reps["a"].Apply(r, false, 0)
		group = append(group, r)
	}
	out := a.WriteGroup(group, n.now.Now())
	c := wire.NewCodec(wire.Limits{})
	sent := 0
	for i, e := range out {
		m, err := c.Decode(e.Payload)
		if err != nil {
			t.Fatal(err)
		}
		d := m.(*wire.Delta)
		sent += len(d.Records)
		// Records of about 120 bytes: 9 fit the budget of 1,200.
		if i < len(out)-1 && len(d.Records) < 9 {
			t.Fatalf("frame %d of %d: %d bytes, %d records, in a budget of %d: a packet part full under load",
				i, len(out), len(e.Payload), len(d.Records), a.cfg.PacketBudget)
		}
	}
	if sent != len(group) {
		t.Fatalf("%d records sent, want %d", sent, len(group))
	}
}

// TestAnOlderWriteQueuedLaterKeepsTheNewer: two writers racing on a key
// may hand the node their writes out of stamp order; the queue keeps the
// newer, whichever came first.
func TestAnOlderWriteQueuedLaterKeepsTheNewer(t *testing.T) {
	n := newTestNet(t, 8, Config{FlushInterval: time.Hour, AntiEntropyInterval: time.Hour}, "a", "b")
	a := n.nodes["a"]
	a.Tick(n.now.Now())
	n.write("a", "idle", "x") // sent at once: the next writes wait
	older := crdt.Record{Key: "k", Value: []byte("older"), Time: a.cfg.Clock.Now()}
	newer := crdt.Record{Key: "k", Value: []byte("newer"), Time: a.cfg.Clock.Now()}
	n.reps["a"].Apply(newer, false, 0)
	if out := a.WriteGroup([]crdt.Record{newer, older}, n.now.Now()); len(out) != 0 {
		t.Fatalf("busy writes sent %d frames at once", len(out))
	}
	out := a.Flush(n.now.Now())
	if len(out) != 1 {
		t.Fatalf("flush sent %d frames, want 1", len(out))
	}
	m, err := wire.NewCodec(wire.Limits{}).Decode(out[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	var recs []crdt.Record
	switch m := m.(type) {
	case *wire.Delta:
		recs = m.Records
	case *wire.Direct:
		recs = m.Records
	}
	if len(recs) != 1 || string(recs[0].Value) != "newer" || recs[0].Time != newer.Time {
		t.Fatalf("sent %+v, want only the newer write", recs)
	}
	if s := a.Stats(); s.DeltasCoalesced != 0 {
		t.Fatalf("coalesced %d: the older write replaced nothing, want 0", s.DeltasCoalesced)
	}
}
