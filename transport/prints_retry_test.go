package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestARetriedVersionsFollowsListPrints: a session's Versions step sent
// with prints, its answer lost, is sent again at its retry; if the host
// has since said that the peer takes no prints (ListPrintsTo without it:
// a member of a release before, under the peer's name), the copy must
// carry none (ListsPrints says what Versions to the peer carry). Sent as
// it was first built, the retry carried prints to a member that refuses
// them as malformed.
func TestARetriedVersionsFollowsListPrints(t *testing.T) {
	n := newTestNet(t, 8, Config{SessionTimeout: 4 * time.Second, AntiEntropyInterval: time.Hour}, "a", "b")
	a := n.nodes["a"]
	a.ListPrintsTo([]string{"b"})
	for i := range 20 { // keys both hold, b's newer: the leaves are listed, not moved whole
		k := string(rune('a' + i))
		n.reps["a"].recs[k] = crdt.Record{Key: k, Value: []byte("old"), Time: crdt.Timestamp{Wall: 10, Node: 1}}
		n.reps["b"].recs[k] = crdt.Record{Key: k, Value: []byte("new"), Time: crdt.Timestamp{Wall: 20, Node: 2}}
	}
	codec := wire.NewCodec(wire.Limits{})
	printed := func(e Envelope) (isVersions, prints bool) {
		m, err := codec.Decode(e.Payload)
		if err != nil {
			t.Fatal(err)
		}
		v, ok := m.(*wire.Versions)
		return ok, ok && v.Prints
	}
	sawVersions := false
	n.drop = func(from string, e Envelope) bool {
		if v, _ := printed(e); v && from == "a" {
			sawVersions = true
			return true // every Versions lost: the step is sent again
		}
		return false
	}
	n.pump("a", a.StartSession("b", n.now.Now()))
	n.drop = nil
	if !sawVersions || !a.ae.active || len(a.ae.s.awaits) == 0 {
		t.Fatalf("setup: a sent Versions %v, its session active %v awaiting %d steps", sawVersions, a.ae.active, len(a.ae.s.awaits))
	}
	a.ListPrintsTo(nil) // b takes no prints now
	n.now.Set(a.NextDeadline())
	out := a.Tick(n.now.Now())
	if a.Stats().StepsRetried == 0 {
		t.Fatal("setup: no step was sent again")
	}
	for _, e := range out {
		if v, p := printed(e); v && p && !a.ListsPrints(e.To) {
			t.Fatalf("a retried a Versions with prints to %s, to which it lists none", e.To)
		}
	}
}
