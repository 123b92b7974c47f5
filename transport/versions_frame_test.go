package transport

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestVersionsOfManyLeavesFitTheFrame: a chunk of leaves holding one
// version each is cut by the room its versions take, but each leaf also
// takes 8 bytes of leaves and counts; with a frame small enough (any
// below about 88 KB, which a digest of 8 or 12 bits allows) a chunk of
// LeavesPerStep leaves overflowed it, the Versions failed to encode at
// every retry, and the session never completed.
func TestVersionsOfManyLeavesFitTheFrame(t *testing.T) {
	const bits = 8
	cfg := Config{Limits: wire.Limits{MaxFrame: 4096}}
	n := newTestNet(t, bits, cfg, "a", "b")
	for leaf := range uint32(1 << bits) {
		ka := keysOfLeaf(fmt.Sprintf("a%d:", leaf), leaf, bits, 1)[0]
		kb := keysOfLeaf(fmt.Sprintf("b%d:", leaf), leaf, bits, 1)[0]
		n.reps["a"].recs[ka] = crdt.Record{Key: ka, Value: []byte("x"), Time: crdt.Timestamp{Wall: 100, Node: 1}}
		n.reps["b"].recs[kb] = crdt.Record{Key: kb, Value: []byte("y"), Time: crdt.Timestamp{Wall: 100, Node: 2}}
	}
	before := n.nodes["a"].Stats()
	n.pump("a", n.nodes["a"].StartSession("b", n.now.Now()))
	st := n.nodes["a"].Stats()
	if st.EncodeErrors != before.EncodeErrors {
		t.Errorf("%d messages failed to encode", st.EncodeErrors-before.EncodeErrors)
	}
	if st.SessionsCompleted != before.SessionsCompleted+1 {
		t.Errorf("the session did not complete")
	}
	if len(n.reps["a"].recs) != 512 || len(n.reps["b"].recs) != 512 {
		t.Errorf("a holds %d records, b %d, want 512 each", len(n.reps["a"].recs), len(n.reps["b"].recs))
	}
}
