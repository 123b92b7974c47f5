package proptest

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/rapidfail"
	"github.com/bcache-go/bcache/transport/wire"
	"pgregory.net/rapid"
)

// aheadOfTheDriftBound is the property of the clock rule on the production
// replica (the store synchronized by a transport.Node, as factory makes
// it): a record a peer sends stamped further ahead of the member's
// physical clock than MaxClockDrift is refused, counted
// (ClockDriftRejects) and leaves the member's clock where it was, so that
// the member's next write of the key wins over it: one member with a bad
// clock cannot pin a key. A record within the bound is taken, moves the
// clock, and the member's next write still wins over it.
//
// The harness passes members whose clock takes twice the drift (with the
// broken variants' seed and budget): its adversary sends records just
// beyond the bound, but a member that takes them holds the adversary's
// writes, which the model allows, and members that all take them
// converge on them.
func aheadOfTheDriftBound(factory Factory, drift time.Duration) func(*rapid.T) {
	return func(t *rapid.T) {
		now := start
		r, err := factory("n0", 1, func() int64 { return now })
		if err != nil {
			t.Fatal(err)
		}
		r.SetMembers([]string{"n0", adversaryName})
		store := r.(*StoreReplica)
		d := int64(drift)
		ahead := rapid.OneOf(
			rapid.SampledFrom([]int64{d - 1, d, d + 1, d + int64(time.Millisecond), 2 * d, math.MaxInt64 - now}),
			rapid.Int64Range(-2*d, 3*d),
		).Draw(t, "ahead")
		key := rapid.SampledFrom([]string{"a", "b"}).Draw(t, "key")
		if rapid.Bool().Draw(t, "held before") {
			now += rapid.Int64Range(0, int64(time.Second)).Draw(t, "before")
			r.Set(key, []byte("old"), 0)
		}
		rec := crdt.Record{Key: key, Value: []byte("pinned"),
			Time: crdt.Timestamp{Wall: crdt.AddSat(now, ahead), Logical: uint32(rapid.IntRange(0, 3).Draw(t, "logical")), Node: adversaryID}}
		frame, err := wire.NewCodec(wire.Limits{}).Encode(nil, &wire.Delta{Origin: adversaryName, OriginID: adversaryID, Seq: 1, Records: []crdt.Record{rec}})
		if err != nil {
			t.Fatal(err)
		}
		rejects := store.Node().Stats().ClockDriftRejects
		r.Receive(adversaryName, frame)
		held, _ := store.s.Lookup(key)
		took := held.Time == rec.Time
		kept := !held.Time.Less(rec.Time) // it, or a newer version the member held already
		refused := store.Node().Stats().ClockDriftRejects - rejects
		switch beyond := ahead > d; {
		case beyond && took:
			t.Fatalf("took a record %v ahead of its clock, MaxClockDrift %v", time.Duration(ahead), drift)
		case beyond && refused != 1:
			t.Fatalf("refused a record %v ahead of its clock and counted %d refusals, want 1", time.Duration(ahead), refused)
		case !beyond && !kept:
			t.Fatalf("refused a record %v ahead of its clock, within MaxClockDrift %v (held %+v)", time.Duration(ahead), drift, held)
		case !beyond && refused != 0:
			t.Fatalf("counted %d clock-drift refusals of a record it took", refused)
		}
		// The member writes the key again: its write wins, on its own
		// member at once, whichever way the record went.
		mine, _ := r.Set(key, []byte("mine"), 0)
		if !rec.Time.Less(mine.Time) && took {
			t.Fatalf("a write after taking %v is stamped %v: its clock did not move past what it received", rec.Time, mine.Time)
		}
		if v, ok := r.Get(key); !ok || string(v) != "mine" {
			t.Fatalf("after its own write the member serves %q (%v), want its write: a record %v ahead pinned the key", v, ok, time.Duration(ahead))
		}
	}
}

// TestARecordAheadOfTheDriftBoundIsRefused runs the property on the
// production replica as the harness runs it by default.
func TestARecordAheadOfTheDriftBoundIsRefused(t *testing.T) {
	rapid.Check(t, aheadOfTheDriftBound(StoreFactory(DefaultStoreConfig()), crdt.DefaultMaxClockDrift))
}

// TestARecordAheadOfTheDriftBoundCatchesALaxClock: the property must catch
// a member whose clock takes twice the drift it should (and one that
// takes any), which the harness passes.
func TestARecordAheadOfTheDriftBoundCatchesALaxClock(t *testing.T) {
	for name, lax := range map[string]time.Duration{"twice the drift": 2 * crdt.DefaultMaxClockDrift, "any drift": math.MaxInt64} {
		t.Run(name, func(t *testing.T) {
			switch failure := rapidfail.Failure(t, "BrokenReplica_drift_"+name, aheadOfTheDriftBound(laxClocks(lax), crdt.DefaultMaxClockDrift)); {
			case failure == "":
				t.Fatalf("the property passed members whose clock takes records up to %v ahead", lax)
			case !strings.Contains(failure, "took a record"):
				t.Fatalf("the property caught members whose clock takes records up to %v ahead, but not by the drift check: %s", lax, failure)
			}
		})
	}
}

// laxClocks returns a Factory of production replicas whose node's clock
// takes records up to drift ahead of it.
func laxClocks(drift time.Duration) Factory {
	return wrapStores(func(r *StoreReplica) Replica {
		r.clock = crdt.NewHLC(r.clock.Node(), r.phys, drift)
		r.tc.Clock = r.clock
		if err := r.newNode(nil); err != nil {
			panic(err)
		}
		r.s.Overtaken(func(t crdt.Timestamp) bool { return r.node.Overtaken(t) }, r.clock.Now)
		return r
	})
}
