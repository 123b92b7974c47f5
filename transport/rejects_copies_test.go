package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestRejectsCountEachArrival: the rejected-record counters
// (bcache_records_rejected_total) count arrivals, as their help and
// Stats say: a batch delivered twice counts its rejected records twice,
// while DeltaRecordsReceived counts nothing of either copy (nothing of
// it was new). The node keeps nothing that tells a rejected record's
// copy from its first arrival; the help said "records received", which
// an operator read as distinct records.
func TestRejectsCountEachArrival(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	n.reps["b"].wm = n.now.Now() - int64(time.Minute)
	below := crdt.Record{Key: "dead", Value: []byte("v"), Time: crdt.Timestamp{Wall: n.reps["b"].wm - 1, Node: 9}}
	ahead := crdt.Record{Key: "ahead", Value: []byte("v"), Time: crdt.Timestamp{Wall: n.now.Now() + int64(time.Hour), Node: 9}}
	frame := encode(t, &wire.Delta{Origin: "a", OriginID: 9, Seq: 1, Records: []crdt.Record{below, ahead}})
	for range 2 {
		if _, err := n.nodes["b"].Receive("a", frame, n.now.Now()); err != nil {
			t.Fatal(err)
		}
	}
	s := n.nodes["b"].Stats()
	if s.WatermarkRejects != 2 || s.ClockDriftRejects != 2 {
		t.Errorf("a batch delivered twice: watermark rejects %d, clock drift rejects %d; want 2 and 2 (each arrival)", s.WatermarkRejects, s.ClockDriftRejects)
	}
	if s.DeltaRecordsReceived != 2 || s.DuplicateDeltas != 1 {
		t.Errorf("delta records received %d, duplicates %d; want 2 (the first copy, relayed for its refused record) and 1", s.DeltaRecordsReceived, s.DuplicateDeltas)
	}
}
