package bcache

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestAPulledRecordBelowAWatermarkIsCounted: a record asked of a peer (a
// fill's answer, a GetAfter pull) that this member refuses because it is
// older than a delete collected here is a record received and not
// applied, as the protocol's are: bcache_records_rejected_total{reason=
// "watermark"} counts it, as {reason="clock_drift"} counts those refused
// for their clock. It was counted nowhere.
func TestAPulledRecordBelowAWatermarkIsCounted(t *testing.T) {
	c := newCache(t, Config{BindAddr: "127.0.0.1:0", MaxDeadRecords: 1})
	for i := range 4 {
		c.Delete(fmt.Sprint("d", i))
	}
	c.collect() // a founder alone, past MaxDeadRecords: the oldest deletes go, their buckets' watermarks rise
	if c.Stats().CollectedByBound == 0 {
		t.Fatal("nothing collected under MaxDeadRecords")
	}
	before := c.Stats().Replication.Protocol.WatermarkRejects
	// A peer's copy of d0 older than its collected delete.
	old := crdt.Record{Key: "d0", Value: []byte("old"), Time: crdt.Timestamp{Wall: 1, Node: 7}}
	if o := c.store.Apply(old, false, c.phys()); o != crdt.Rejected {
		t.Fatalf("the store took a record below the watermark: %v", o)
	}
	member{c}.Receive(old)
	st := c.Stats()
	if got := st.Replication.Protocol.WatermarkRejects - before; got != 1 {
		t.Errorf("a pulled record refused below a watermark: WatermarkRejects rose by %d, want 1 (Pulled %d)", got, st.Pulled)
	}
}
