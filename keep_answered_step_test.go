package bcache

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestAnAnswerFromAfterTheStartDeletesAfterAStepBack: a member without
// files keeps a value of its own against a peer's answer only when the
// answer's watermark is below the process's start on its peers' clock
// (store.KeepAnswered). That start was its start plus its hybrid
// clock's lead over its physical clock, read when the answer came: a
// step of the physical clock back after the start (NTP) read as a lead,
// and moved the start that far later. Here a writes k, its clock is
// stepped back 10 s, and the answer of a delete of k made 1 ms after
// the write (after the start on every clock: a peer that collected it
// under MaxDeadRecords, or past a's absence, before its delta reached
// a) comes: it was refused, and the value written again, undoing the
// delete on every member (found by review).
func TestAnAnswerFromAfterTheStartDeletesAfterAStepBack(t *testing.T) {
	clock := new(offsetClock)
	cfg := testConfig("a")
	cfg.Clock = clock.now
	a := newCache(t, cfg)
	rec, err := a.set("k", []byte("v"), 0)
	if err != nil {
		t.Fatal(err)
	}
	clock.advance(-10 * time.Second)
	answer := crdt.Record{Key: "k", Tombstone: true, Time: crdt.Timestamp{Wall: rec.Time.Wall + int64(time.Millisecond), Logical: 1}}
	if err := a.clock.Update(answer.Time); err != nil { // as the transport does before it applies a frame
		t.Fatal(err)
	}
	if o := a.store.Apply(answer, false, a.phys()); o != crdt.Applied {
		held, _ := a.store.Lookup("k")
		t.Fatalf("the answer of a delete made after the start: %v, holds %+v (restamped %d); want the delete applied", o, held, a.Stats().Restamped)
	}
}
