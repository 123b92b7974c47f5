package proptest

import (
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

// endReader is the production replica, counting the reads it serves: with
// the actions that read ("get", the fills) left out, the only reads are
// the end's, of every key on every member up.
type endReader struct {
	*StoreReplica
	reads *int
}

func (r endReader) Get(key string) ([]byte, bool) {
	*r.reads++
	return r.StoreReplica.Get(key)
}

// TestEveryRunEndsWithAMemberUp: the end of a run (convergence, the
// model's check that no newest write was lost, the reads of every key)
// checks the members up, and only them. Crash and leave take any live
// member, the last one too: about one run in twenty ended with every
// member down, and checked nothing at its end (found by review). The end
// now brings one back (revive) first.
func TestEveryRunEndsWithAMemberUp(t *testing.T) {
	endsWithAMemberUp(t)
}

// TestEveryRunEndsWithAMemberUpWithoutRestarts: with the action restart
// left out, the end cannot bring a member back empty, and a run with no
// snapshot held could end with every member down, checking nothing: the
// last member up is not taken down then.
func TestEveryRunEndsWithAMemberUpWithoutRestarts(t *testing.T) {
	endsWithAMemberUp(t, "restart")
}

// TestEveryRunEndsWithAMemberUpWithoutRestartsOrRestores: so too with
// restore left out as well (as the tests of first syncs run, with no
// newcomers).
func TestEveryRunEndsWithAMemberUpWithoutRestartsOrRestores(t *testing.T) {
	endsWithAMemberUp(t, "restart", "restore")
}

// endsWithAMemberUp fails t if a run of the harness, with the actions
// disable also left out, ends with every member down.
func endsWithAMemberUp(t *testing.T, disable ...string) {
	runs, empty, reads := 0, 0, 0
	cov := &Coverage{}
	ended := func() int { return cov.Rounds[0] + cov.Rounds[1] + cov.Rounds[2] + cov.Rounds[3] }
	endedBefore := 0 // the runs that reached their end, as the last began
	// lastEmpty reports whether the run that ran last reached its end
	// and read nothing there.
	lastEmpty := func() bool { return ended() > endedBefore && reads == 0 }
	base := StoreFactory(DefaultStoreConfig())
	factory := func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
		r, err := base(name, id, phys)
		if err != nil {
			return nil, err
		}
		if name == "n0" && phys() == start { // a run's first member: a new run
			if lastEmpty() {
				empty++
			}
			runs++
			reads, endedBefore = 0, ended()
		}
		return endReader{r.(*StoreReplica), &reads}, nil
	}
	setRapidFlags(t, map[string]string{"rapid.checks": "300", "rapid.nofailfile": "true"})
	rapid.Check(t, Property(Config{Factory: factory, Coverage: cov, Disable: append([]string{"get", "fill", "slow fill", "outage"}, disable...)}))
	if lastEmpty() {
		empty++
	}
	if empty > 0 {
		t.Fatalf("%d of %d runs that reached their end ended with every member down: their end checked nothing", empty, ended())
	}
}
