package store

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestOwnWritesOfTheLast64ProcessesAreSuperseded pins the bound that
// Change.Superseded documents: with every process writing, restored
// through each one's snapshot, a write made 63 restarts back (the 64th
// process, counting the current one) is reported superseded when a
// peer's newer write replaces it; one made 64 restarts back is not. The
// feed's doc said "as far back as 64 restarts" (found by review); the
// bound is the snapshot's too, whose readers refuse more than 64 ids.
func TestOwnWritesOfTheLast64ProcessesAreSuperseded(t *testing.T) {
	for back, want := range map[int]bool{63: true, 64: false} {
		s := mustStore(t, Config{})
		s.Write(crdt.Record{Key: "first", Value: []byte("1"), Time: crdt.Timestamp{Wall: testNow, Node: 1}})
		for i := 1; i <= back; i++ { // restart i: process i+1, which writes
			r := mustStore(t, Config{})
			r.Restore(saveAndLoad(t, s), crdt.NewHLC(crdt.NodeID(i+1), func() int64 { return testNow }, 0), testNow)
			r.Write(crdt.Record{Key: fmt.Sprint("k", i), Value: []byte("1"), Time: crdt.Timestamp{Wall: testNow + int64(i), Node: crdt.NodeID(i + 1)}})
			s = r
		}
		superseded := false
		s.Watch(func(ev *Event) { superseded = ev.Superseded })
		s.Apply(crdt.Record{Key: "first", Value: []byte("2"), Time: crdt.Timestamp{Wall: testNow + 1000, Node: 999}}, false, testNow)
		if superseded != want {
			t.Errorf("a write made %d restarts back: superseded %v, want %v", back, superseded, want)
		}
	}
}
