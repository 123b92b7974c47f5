package proptest

import (
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// TestHarnessCatchesAClockThatRepeatsItsLastTimestamp: a replica whose
// clock, asked again before its physical time has moved, issues the
// timestamp of its last write once more instead of one above it (a hybrid
// logical clock that forgets to bump its logical counter) stamps two
// writes of different keys alike. Each write is still newer than what its
// member held of its own key (the variant repeats only then), so the
// check that a write is newer than what its member held cannot see it,
// nor can convergence (versions of different keys never meet); the
// harness must check that every timestamp a member issues is above the
// last it issued (issued). No broken variant showed that check could
// fail (found by an audit).
func TestHarnessCatchesAClockThatRepeatsItsLastTimestamp(t *testing.T) {
	factory := repeatingClocks()
	// What it does: two writes on one member at one physical time share
	// their stamp.
	c, err := NewCluster(1, factory, start)
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Set(0, "a", []byte("1"), 0), c.Set(0, "b", []byte("2"), 0)
	if a.Time.Less(b.Time) {
		t.Fatalf("the variant stamped %v after %v: it breaks nothing", b.Time, a.Time)
	}
	caught(t, "clock that repeats its last timestamp", Config{Factory: factory}, " issued ", "a replica whose clock issues its last write's timestamp again")
}

// repeatingClocks returns a Factory of production replicas whose writes
// are stamped by a clock that repeats its last write's timestamp while
// the physical time has not moved (repeating).
func repeatingClocks() Factory {
	return wrapStores(func(r *StoreReplica) Replica { return &repeating{StoreReplica: r} })
}

// repeating is the production replica whose Set and Delete stamp a write
// with the timestamp of its last write again when the physical time has
// not moved since and the member holds no version of the key at or above
// that timestamp (so that the write wins on its own member, as a correct
// clock's would).
type repeating struct {
	*StoreReplica
	last     crdt.Timestamp
	lastPhys int64
	stamped  bool
}

func (r *repeating) stamp(key string) crdt.Timestamp {
	ts, phys := r.clock.Now(), r.phys()
	if r.stamped && phys == r.lastPhys {
		if cur, ok := r.s.Lookup(key); !ok || cur.Time.Less(r.last) {
			ts = r.last
		}
	}
	r.last, r.lastPhys, r.stamped = ts, phys, true
	return ts
}

func (r *repeating) Set(key string, value []byte, expires int64) (crdt.Record, []transport.Envelope) {
	return r.write(crdt.Record{Key: key, Value: value, Time: r.stamp(key), Expires: expires})
}

func (r *repeating) Delete(key string) (crdt.Record, []transport.Envelope) {
	return r.write(crdt.Record{Key: key, Time: r.stamp(key), Tombstone: true})
}
