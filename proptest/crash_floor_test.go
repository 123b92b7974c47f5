package proptest

import (
	"slices"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/rapidfail"
	"pgregory.net/rapid"
)

// hides is the production store on a member that, once *gone is set,
// silently no longer holds key: its records and reads lose it.
type hides struct {
	*StoreReplica
	key  string
	gone *bool
}

func (r hides) Records() []crdt.Record {
	return slices.DeleteFunc(r.StoreReplica.Records(), func(rec crdt.Record) bool { return *r.gone && rec.Key == r.key })
}

func (r hides) Get(key string) ([]byte, bool) {
	if *r.gone && key == r.key {
		return nil, false
	}
	return r.StoreReplica.Get(key)
}

// TestModelCatchesALossOfAWriteTheLiveMembersHeldBelowACrashedOne: n0
// writes a key, every member takes it, n0 writes it again cut off and
// crashes. The crash may take the second write, which n0 alone held, but
// not the first, which the live members held: they must converge to it.
// The model excused every write of the key up to the newest version the
// crashed member held, so a store whose live members silently forgot the
// first write (no record of the key left anywhere) passed.
func TestModelCatchesALossOfAWriteTheLiveMembersHeldBelowACrashedOne(t *testing.T) {
	lossBelowACrashIsCaught(t, "ForgetsBelowACrash", func(s script, key string) { s.set(0, key, "second") })
}

// TestModelCatchesALossExcusedByADeleteOnlyTheCrashedMemberKnew: the same
// with a delete in place of the second write. At the end, a key whose
// newest write a crash may have taken may lack its survivor if a newer
// dead version may have replaced it and been collected (deadAbove); that
// took any dead version the model knew, also one only the crashed member
// ever held, so live members that silently forgot the first write passed
// (found by review).
func TestModelCatchesALossExcusedByADeleteOnlyTheCrashedMemberKnew(t *testing.T) {
	lossBelowACrashIsCaught(t, "ForgetsBelowACrashedDelete", func(s script, key string) { s.del(0, key) })
}

// lossBelowACrashIsCaught runs the script of the two tests above, with
// cut as what n0 does to the key cut off before it crashes: the
// production store passes it, and live members that silently forget the
// first write fail it.
func lossBelowACrashIsCaught(t *testing.T, name string, cut func(s script, key string)) {
	key := bucket[0]
	play := func(gone *bool) func(s script) {
		return func(s script) {
			*gone = false
			s.begin()
			s.set(0, key, "first")
			s.round()
			s.h.c.Partition([]string{"n0"}, []string{"n1", "n2"})
			cut(s, key) // its deltas are cut
			s.crash(0)
			s.h.c.Heal()
			*gone = true
			s.h.check(s.t)
		}
	}
	// The production store: the first write survives, and the model
	// must pass it.
	var never bool
	rapid.Check(t, scripted(StoreFactory, play(&never)))
	var gone bool
	forgets := func(sc StoreConfig) Factory {
		return func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
			r, err := NewStoreReplica(name, id, phys, sc)
			if name == "n0" {
				return r, err
			}
			return hides{r, key, &gone}, err
		}
	}
	failure := rapidfail.Failure(t, name, scripted(forgets, play(&gone)))
	if !strings.Contains(failure, "lost its newest write") {
		t.Fatalf("the model passed live members that silently lost a write they held, below what a crash took: %q", failure)
	}
}
