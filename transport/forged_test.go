package transport

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// holding puts n records of the named member's in its replica.
func (n *testNet) holding(name string, node crdt.NodeID, count int) {
	for i := range count {
		r := crdt.Record{Key: fmt.Sprintf("%s-%d", name, i), Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(i + 1), Node: node}}
		n.reps[name].recs[r.Key] = r
	}
}

// TestForgedOpeningCompletesNothing: an opening carries no token, and
// anyone with the key who is in step with a member knows its root: an
// opening naming b whose hashes match a's own is answered, but does not
// complete an exchange on a (which marked a synced, took the opening's cut
// for b's and moved its stable bound from nothing to now less the margin,
// though a held none of b's records: found by review). A real session in
// step completes on both sides, the initiator's empty digest carrying the
// token back.
func TestForgedOpeningCompletesNothing(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b", "c")
	n.holding("b", 2, 50)
	a := n.nodes["a"]
	now := n.now.Now()
	root := n.reps["a"].AppendHashes(nil, 0, nil)
	for i, name := range []string{"b", "c"} {
		forged := &wire.Digest{Session: wire.Session{ID: uint64(100 + i), Step: 1}, Hashes: root,
			Cut: crdt.Timestamp{Wall: now, Node: crdt.NodeID(i + 2)}, Coverage: now}
		if _, err := a.Receive(name, encode(t, forged), now); err != nil {
			t.Fatal(err)
		}
	}
	if st, syncs := a.Stable(now), a.LastSyncs(); st != NoStable || len(syncs) != 0 || n.reps["a"].synced != 0 || a.Stats().SessionsResponded != 0 {
		t.Fatalf("forged openings naming b and c: a's stable bound %d, last syncs %v, synced at %d, %d sessions responded; want none",
			st, syncs, n.reps["a"].synced, a.Stats().SessionsResponded)
	}

	// a and c, in step, sync for real: both complete.
	n.pump("a", a.StartSession("c", n.now.Now()))
	if sa, sc := a.Stats(), n.nodes["c"].Stats(); sa.SessionsCompleted != 1 || sc.SessionsResponded != 1 || n.reps["c"].synced == 0 {
		t.Fatalf("a session in step: a completed %d, c responded %d (synced at %d); want 1, 1", sa.SessionsCompleted, sc.SessionsResponded, n.reps["c"].synced)
	}
}

// TestForgedOpeningLeavesALiveSession: an opening under b's name that
// overtakes the second step of b's real session with a leaves that
// session alone: b's steps, with the token a drew for it, are answered,
// and it completes, a holding all of b's records. The forged opening
// replaced a's state for the session, every later step of b's was stray,
// and b's session timed out (found by review).
func TestForgedOpeningLeavesALiveSession(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	n.holding("a", 1, 50)
	n.holding("b", 2, 50)
	forged := false
	see := func(from string, e Envelope) (string, []Envelope) {
		if forged || from != "a" || e.To != "b" {
			return "", nil
		}
		forged = true // a's first reply to b is on its way: the forged opening overtakes b's next step
		f := &wire.Digest{Session: wire.Session{ID: 777, Step: 1}, Level: 1, Parents: []uint32{0}, Hashes: n.reps["a"].AppendHashes(nil, 1, []uint32{0}),
			Cut: crdt.Timestamp{Wall: n.now.Now(), Node: 9}}
		return "b", []Envelope{{To: "a", Kind: wire.KindDigest, Payload: encode(t, f)}}
	}
	b := n.nodes["b"]
	n.pumpEach("b", b.StartSession("a", n.now.Now()), see)
	if !forged {
		t.Fatal("no reply of a's to forge an opening after")
	}
	if sb := b.Stats(); sb.SessionsCompleted != 1 || sb.SessionsTimedOut != 0 || len(n.reps["a"].recs) != 100 || len(n.reps["b"].recs) != 100 {
		t.Fatalf("b's session: %d completed, %d timed out; a holds %d records, b %d; want 1, 0, 100, 100",
			sb.SessionsCompleted, sb.SessionsTimedOut, len(n.reps["a"].recs), len(n.reps["b"].recs))
	}
}

// TestAbandonedSessionsAreCounted: a session ended because a reply broke
// the protocol (a Digest answering a Versions, here) is counted with the
// timed out, so that Started is Completed plus TimedOut: three such
// endings were counted nowhere (found by review).
func TestAbandonedSessionsAreCounted(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	n.holding("b", 2, 20)
	done := false
	see := func(from string, e Envelope) (string, []Envelope) {
		if done || e.Kind != wire.KindVersions {
			return "", nil
		}
		done = true
		v := decodeFrame(t, e.Payload).(*wire.Versions)
		return "b", []Envelope{{To: "a", Kind: wire.KindDigest, Payload: encode(t, &wire.Digest{Session: v.Session, Level: 3})}}
	}
	a := n.nodes["a"]
	n.pumpEach("a", a.StartSession("b", n.now.Now()), see)
	if s := a.Stats(); !done || a.ae.active || s.SessionsStarted != s.SessionsCompleted+s.SessionsTimedOut {
		t.Fatalf("abandoned (%v, active %v): started %d, completed %d, timed out %d", done, a.ae.active, s.SessionsStarted, s.SessionsCompleted, s.SessionsTimedOut)
	}
}

// TestPromotionKeepsANewerOpening: when a session's closing digest comes
// after the peer's next opening, the session it closes is promoted and
// completes, and the newer opening stays, to be answered: promotion
// dropped every other opening, and the newer session waited for its
// timeout with nothing moved (found by review).
func TestPromotionKeepsANewerOpening(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	a, b := n.nodes["a"], n.nodes["b"]
	now := n.now.Now()
	// b's first session, in step with a: a answers; b's closing digest
	// is held back.
	var closing []Envelope
	type hop struct {
		from string
		e    Envelope
	}
	var queue []hop
	for _, e := range b.StartSession("a", now) {
		queue = append(queue, hop{"b", e})
	}
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		if h.from == "b" && h.e.Kind == wire.KindDigest && decodeFrame(t, h.e.Payload).(*wire.Digest).Token != 0 {
			closing = append(closing, h.e)
			continue
		}
		out, err := n.nodes[h.e.To].Receive(h.from, h.e.Payload, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out {
			queue = append(queue, hop{h.e.To, e})
		}
	}
	if len(closing) != 1 || a.Stats().SessionsResponded != 0 || b.Stats().SessionsCompleted != 1 {
		t.Fatalf("%d closing digests from b held, a responded %d, b completed %d; want 1, 0, 1", len(closing), a.Stats().SessionsResponded, b.Stats().SessionsCompleted)
	}
	// b's next session, after a write of b's, opens before the closing
	// digest arrives.
	n.holding("b", 2, 5)
	next := b.StartSession("a", now)
	for _, e := range next {
		if _, err := a.Receive("b", e.Payload, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Receive("b", closing[0].Payload, now); err != nil {
		t.Fatal(err)
	}
	if got := len(a.ae.opening["b"]); got != 1 || a.Stats().SessionsResponded != 1 {
		t.Fatalf("after the late closing digest: %d openings of b's kept, %d sessions responded; want 1, 1", got, a.Stats().SessionsResponded)
	}
}
