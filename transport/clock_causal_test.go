package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// clockCheckingReplica fails t if a record is applied before the clock
// has moved past it.
type clockCheckingReplica struct {
	*memReplica
	clock *crdt.HLC
	t     *testing.T
}

func (c clockCheckingReplica) Apply(r crdt.Record, delta bool, now int64) crdt.Outcome {
	if l := c.clock.Last(); l.Wall < r.Time.Wall || l.Wall == r.Time.Wall && l.Logical < r.Time.Logical {
		c.t.Errorf("%q applied at %v with the clock at %v", r.Key, r.Time, l)
	}
	return c.memReplica.Apply(r, delta, now)
}

// TestReceivedRecordsApplyAfterTheClockPassedThem: a frame's records are
// applied only once the clock has moved past them (one move for the
// frame, crdt.HLC.UpdateAll), so that a write made here after one of them
// is visible is stamped after it; the record past the drift is refused and
// moves nothing, and the clock ends at the newest taken, counter
// included.
func TestReceivedRecordsApplyAfterTheClockPassedThem(t *testing.T) {
	now := crdt.NewManualTime(1_000_000_000)
	clock := crdt.NewHLC(2, now.Now, 0)
	node, err := New(Config{Name: "b", Replica: clockCheckingReplica{newMemReplica(8), clock, t}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	node.SetMembers([]string{"a", "b"}, now.Now())
	base := now.Now()
	recs := []crdt.Record{
		{Key: "old", Value: []byte("v"), Time: crdt.Timestamp{Wall: base - 5, Logical: 9, Node: 1}},
		{Key: "future", Value: []byte("v"), Time: crdt.Timestamp{Wall: base + int64(time.Hour), Node: 1}},
		{Key: "tie", Value: []byte("v"), Time: crdt.Timestamp{Wall: base + 3, Logical: 4, Node: 1}},
		{Key: "newest", Value: []byte("v"), Time: crdt.Timestamp{Wall: base + 3, Logical: 7, Node: 1}},
	}
	frame, err := wire.NewCodec(wire.Limits{}).Encode(nil, &wire.Direct{OriginID: 1, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Receive("", frame, now.Now()); err != nil {
		t.Fatal(err)
	}
	if st := node.Stats(); st.ClockDriftRejects != 1 || st.RecordsApplied != 3 {
		t.Fatalf("%d refused for drift, %d applied; want 1 and 3", st.ClockDriftRejects, st.RecordsApplied)
	}
	if l := clock.Last(); l.Wall != base+3 || l.Logical != 7 {
		t.Fatalf("clock at %v, want the newest record taken's stamp", l)
	}
	if ts := clock.Now(); ts.Wall != base+3 || ts.Logical != 8 {
		t.Fatalf("next local stamp %v", ts)
	}
}
