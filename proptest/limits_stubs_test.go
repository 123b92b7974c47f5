package proptest

import (
	"slices"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// limitsOnly is the harness on the production replicas whose members
// disagree about their bounds (DefaultStoreConfig: n1 holds at most 2
// values, n2 12 bytes of them, n3 no value over 4 bytes), with the evict
// action left out, so that every evicted record is one a bound made: one
// member evicts what another keeps, and they must still repair each other
// and converge. The one-session check is left out too, so that
// convergence alone must catch a variant. wrap, if set, stands
// between each store and the protocol.
func limitsOnly(wrap func(Store) transport.Replica) Config {
	cfg := DefaultStoreConfig()
	cfg.Wrap = wrap
	return Config{Factory: StoreFactory(cfg), Disable: []string{"evict"}, OneWaySessions: true}
}

// TestHarnessPassesMembersOfDifferentLimits is the control of
// TestHarnessCatchesBoundedMembersThatDoNotRepair: with the broken
// variants' seed and budget, the harness finds nothing wrong in the
// production replicas under limitsOnly.
func TestHarnessPassesMembersOfDifferentLimits(t *testing.T) {
	t.Parallel() // rapidfail alone: two at once on two cores (see rapidfail.setFlags)
	if failure := harnessFailure(t, "control limits only", limitsOnly(nil)); failure != "" {
		t.Fatalf("the harness fails the production replicas of different bounds with the broken variants' seed and budget (-rapid.seed=1 -rapid.checks=1000 -rapid.steps=100): %s", failure)
	}
}

// TestHarnessCatchesBoundedMembersThatDoNotRepair: members of different
// bounds that break how a bounded member repairs, and is repaired by,
// members that keep more. Without a broken variant no test showed that the
// harness's runs on members of different bounds could fail (found by an
// audit). Each must be caught by convergence:
//
//   - repairs ship no evicted record (noStubs), as if what a bound evicted
//     were absent: a bounded member that wrote a key, its delta lost, and
//     then evicted the value to stay within its bound holds the newest
//     version of the key as a stub alone, and never repairs its peers
//     onto it, which serve the older value for ever;
//   - a full member refuses a received value of a key it holds no value
//     of (fullRefuses) instead of taking it and evicting another: n1,
//     at its 2 values, never holds the keys its peers hold.
func TestHarnessCatchesBoundedMembersThatDoNotRepair(t *testing.T) {
	for name, factory := range map[string]Factory{
		"repairs_ship_no_stubs": limitsOnly(func(s Store) transport.Replica { return noStubs{s} }).Factory,
		"a_full_member_refuses_values": wrapStoresOfLimits(func(r *StoreReplica) {
			r.rejects.Replica = fullRefuses{Store: r.rejects.Replica.(Store), r: r}
		}),
	} {
		t.Run(name, func(t *testing.T) {
			cfg := limitsOnly(nil)
			cfg.Factory = factory
			failure := harnessFailure(t, "bounded members "+name, cfg)
			switch {
			case failure == "":
				t.Fatalf("the harness passed members of different bounds whose %s", strings.ReplaceAll(name, "_", " "))
			case !strings.Contains(failure, "not converged") && !strings.Contains(failure, "converged to"):
				t.Fatalf("the harness caught members of different bounds whose %s, but not by convergence: %s", strings.ReplaceAll(name, "_", " "), failure)
			}
		})
	}
}

// wrapStoresOfLimits returns a Factory of production replicas as
// limitsOnly makes them, which wrap breaks.
func wrapStoresOfLimits(wrap func(*StoreReplica)) Factory {
	store := limitsOnly(nil).Factory
	return func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
		r, err := store(name, id, phys)
		if err != nil {
			return nil, err
		}
		wrap(r.(*StoreReplica))
		return r, nil
	}
}

// noStubs is a production store whose repairs leave its evicted records
// out.
type noStubs struct{ Store }

func (n noStubs) AppendRecords(dst []crdt.Record, leaf uint32) []crdt.Record {
	start := len(dst)
	dst = n.Store.AppendRecords(dst, leaf)
	return append(dst[:start], slices.DeleteFunc(dst[start:], func(r crdt.Record) bool { return r.Evicted })...)
}

// fullRefuses is the production store of replica r that, holding as many
// values as r's MaxKeys, takes for stale a received value of a key it
// holds no value of.
type fullRefuses struct {
	Store
	r *StoreReplica
}

func (f fullRefuses) Apply(rec crdt.Record, delta bool, now int64) crdt.Outcome {
	if !rec.Tombstone && !rec.Evicted && f.r.maxKeys > 0 && f.r.s.Stats().Keys >= f.r.maxKeys {
		if cur, ok := f.Lookup(rec.Key); !ok || cur.Tombstone || cur.Evicted {
			return crdt.Stale
		}
	}
	return f.Store.Apply(rec, delta, now)
}
