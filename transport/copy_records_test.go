package transport

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestACopyOfABatchCountsNoRecordReceived: a relayed batch received
// again (a copy: nothing new here) is counted as a duplicate, and its
// records are not counted received again: DeltaRecordsReceived counts
// records "once, however many copies arrive" (and the metric
// bcache_delta_records_received_total "once each"). They were counted at
// each copy, before the copy was told apart; and a direct send's copies
// (no origin: a write's datagram to a peer, repeated) were counted at
// each until a review found it.
func TestACopyOfABatchCountsNoRecordReceived(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) { copyCountsNoRecordReceived(t, direct) })
	}
}

func copyCountsNoRecordReceived(t *testing.T, direct bool) {
	names := []string{"a", "b", "c", "d", "e"}
	n := newTestNet(t, 8, Config{Fanout: 1, AntiEntropyInterval: time.Hour}, names...)
	aID := n.nodes["a"].cfg.Clock.Node()
	m := &wire.Delta{Origin: "a", OriginID: aID, Seq: 1, Records: []crdt.Record{
		{Key: "x", Value: []byte("v"), Time: n.nodes["a"].cfg.Clock.Now()},
		{Key: "y", Value: []byte("v"), Time: n.nodes["a"].cfg.Clock.Now()},
	}}
	if direct {
		m.Origin, m.Seq = "", 0
	}
	batch := encode(t, m)
	nd := n.nodes["b"]
	before := nd.Stats()
	if _, err := nd.Receive("a", batch, n.now.Now()); err != nil {
		t.Fatal(err)
	}
	mid := nd.Stats()
	if mid.DeltaRecordsReceived != before.DeltaRecordsReceived+2 {
		t.Fatalf("first arrival: records received %d -> %d, want +2", before.DeltaRecordsReceived, mid.DeltaRecordsReceived)
	}
	for range 3 {
		if _, err := nd.Receive("a", batch, n.now.Now()); err != nil {
			t.Fatal(err)
		}
	}
	after := nd.Stats()
	if after.DuplicateDeltas != mid.DuplicateDeltas+3 {
		t.Fatalf("copies: duplicates %d -> %d, want +3", mid.DuplicateDeltas, after.DuplicateDeltas)
	}
	if after.DeltaRecordsReceived != mid.DeltaRecordsReceived {
		t.Errorf("3 copies of a batch of 2 records: records received %d -> %d, want unchanged (counted once, however many copies arrive)",
			mid.DeltaRecordsReceived, after.DeltaRecordsReceived)
	}
}
