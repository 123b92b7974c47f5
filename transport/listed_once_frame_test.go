package transport

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestALeafLeftOutOfAFullFrameIsListedOnce: as
// TestACrowdedLeafAfterOthersIsListedOnce, for leaves of a few keys each
// that a chunk leaves out when their versions would overflow its frame:
// listed for the chunk that left it out, each such leaf is kept for the
// next (session.listed), not listed again. A leaf is listed as many times
// as Versions naming it were sent.
func TestALeafLeftOutOfAFullFrameIsListedOnce(t *testing.T) {
	const bits, per = 8, 10
	cfg := Config{Limits: wire.Limits{MaxFrame: 4096}, AntiEntropyInterval: time.Hour}
	n := newTestNet(t, bits, cfg, "a", "b")
	l := &listCount{memReplica: n.reps["b"], listed: map[uint32]int{}}
	c := cfg
	c.Name, c.Replica, c.Clock = "b", l, crdt.NewHLC(2, n.now.Now, 0)
	b, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	b.SetMembers([]string{"a", "b"}, n.now.Now())
	n.nodes["b"] = b
	for leaf := range uint32(1 << bits) {
		for _, k := range keysOfLeaf(fmt.Sprintf("l%d:", leaf), leaf, bits, per) {
			n.reps["b"].recs[k] = crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: 100, Node: 2}}
		}
	}
	sent := map[uint32]int{}
	n.drop = func(from string, e Envelope) bool {
		if from == "b" && e.Kind == wire.KindVersions {
			for _, leaf := range decodeFrame(t, e.Payload).(*wire.Versions).Leaves {
				sent[leaf]++
			}
		}
		return false
	}
	n.pump("b", b.StartSession("a", n.now.Now()))
	for tick := 0; tick < 2000 && b.ae.active; tick++ {
		n.now.Advance(10 * time.Millisecond)
		n.pump("b", b.Tick(n.now.Now()))
	}
	if b.ae.active {
		t.Fatal("the session did not end")
	}
	twice := 0
	for leaf := range uint32(1 << bits) {
		if l.listed[leaf] != sent[leaf] {
			twice++
			if twice <= 3 {
				t.Errorf("leaf %d listed %d times, for %d Versions sent", leaf, l.listed[leaf], sent[leaf])
			}
		}
	}
	if twice > 0 {
		t.Errorf("%d leaves listed more often than sent", twice)
	}
	for k, r := range n.reps["b"].recs {
		if n.reps["a"].recs[k].Time != r.Time {
			t.Fatalf("a lacks %q after the session", k)
		}
	}
}
