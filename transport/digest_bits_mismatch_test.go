package transport

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestAPeerOfMoreDigestBitsMarksNothingSynced: members must agree on
// DigestBits, and nothing checks it before they meet. A node's hashes at
// a level do not depend on the tree's depth (sums of record hashes), so a
// member of fewer bits took the peer's internal level for its leaf level
// and listed its leaves, which the peer read as its own leaves of the
// same index (other key ranges): the session completed on both sides,
// each marked synced, the member of fewer bits holding 213 of the 400
// records after ten sessions (found by review). The peer answers a
// Versions only once it has sent its own leaf level in the session.
func TestAPeerOfMoreDigestBitsMarksNothingSynced(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	n.reps["b"] = newMemReplica(12)
	c := n.nodes["a"].cfg
	c.Name, c.Replica, c.Clock = "b", n.reps["b"], crdt.NewHLC(2, n.now.Now, 0)
	b, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	b.SetMembers([]string{"a", "b"}, n.now.Now())
	n.nodes["b"] = b
	for i := range 200 {
		for j, name := range []string{"a", "b"} {
			r := crdt.Record{Key: fmt.Sprintf("%s%d", name, i), Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(i + 1), Node: crdt.NodeID(j + 1)}}
			n.reps[name].recs[r.Key] = r
		}
	}
	a := n.nodes["a"]
	for range 10 {
		n.pump("a", a.StartSession("b", n.now.Now()))
		n.now.Advance(time.Second)
		n.pump("a", a.Tick(n.now.Now()))
		n.pump("b", b.Tick(n.now.Now()))
	}
	if sa, sb := a.Stats(), b.Stats(); sa.SessionsCompleted != 0 || sb.SessionsResponded != 0 || n.reps["a"].synced != 0 || n.reps["b"].synced != 0 {
		t.Fatalf("a (8 bits) completed %d sessions with b (12 bits), b responded %d; a synced at %d holding %d of b's 200 records, b at %d; want none synced",
			sa.SessionsCompleted, sb.SessionsResponded, n.reps["a"].synced, len(n.reps["a"].recs)-200, n.reps["b"].synced)
	}
}
