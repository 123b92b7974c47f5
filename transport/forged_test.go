package transport

import (
	"fmt"
	"slices"
	"testing"
	"time"

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
// opening naming b whose hashes match a's own is answered, and counted,
// but does not mark a synced, take its cut for b's or count as an
// exchange with b (it did all three, moving a's stable bound from nothing
// to now less the margin, though a held none of b's records: found by
// review). A real session in step completes on the initiator, which marks
// itself synced; the responder counts it.
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
	if st, syncs := a.Stable(now), a.LastSyncs(); st != NoStable || len(syncs) != 0 || n.reps["a"].synced != 0 {
		t.Fatalf("forged openings naming b and c: a's stable bound %d, last syncs %v, synced at %d; want none", st, syncs, n.reps["a"].synced)
	}

	// a and c, in step, sync for real.
	n.pump("a", a.StartSession("c", n.now.Now()))
	if sa, sc := a.Stats(), n.nodes["c"].Stats(); sa.SessionsCompleted != 1 || sc.SessionsResponded != 1 || n.reps["a"].synced == 0 {
		t.Fatalf("a session in step: a completed %d (synced at %d), c responded %d; want 1, 1", sa.SessionsCompleted, n.reps["a"].synced, sc.SessionsResponded)
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

// TestPromotionKeepsANewerOpening: a late step of a session the peer gave
// up on, overtaken by the peer's next opening, promotes that session and
// leaves the newer opening in place, to be answered: promotion dropped
// every other opening, and the newer session waited for its timeout with
// nothing moved (found by review).
func TestPromotionKeepsANewerOpening(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	n.holding("b", 2, 20)
	a, b := n.nodes["a"], n.nodes["b"]
	now := n.now.Now()
	deliver := func(from string, envs []Envelope) []Envelope {
		var out []Envelope
		for _, e := range envs {
			o, err := n.nodes[e.To].Receive(from, e.Payload, now)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, o...)
		}
		return out
	}
	// b's first session: its opening, a's answer, and b's next step (with
	// a's token), held back.
	late := deliver("a", deliver("b", b.StartSession("a", now)))
	if len(late) == 0 {
		t.Fatal("b sent no step after a's answer")
	}
	// b gives that session up and opens another, which reaches a first.
	deliver("b", b.StartSession("a", now))
	if got := len(a.ae.opening["b"]); got != 2 {
		t.Fatalf("%d openings of b's held, want 2", got)
	}
	first, second := a.ae.opening["b"][0], a.ae.opening["b"][1]
	if answered := deliver("b", late); len(answered) == 0 {
		t.Fatal("the late step of b's first session was not answered")
	}
	if r, kept := a.ae.resp["b"], a.ae.opening["b"]; r != first || len(kept) != 1 || kept[0] != second {
		t.Fatalf("after the late step of b's first session: its session promoted %v, openings kept %d (the newer %v); want the first promoted, the second kept",
			r == first, len(kept), len(kept) == 1 && kept[0] == second)
	}
}

// TestForgedEmptyOpeningsStopNothingPastArrival: an opening that shows its
// sender empty, before its token has come back, makes a member yield to
// that sender only within arrivalYield of its coming into the view (an
// empty member is one that just came): past it, forged under a peer's
// name, one per peer and session timeout stopped every session the
// member started, and froze its stable bound and the others' (found by
// review).
func TestForgedEmptyOpeningsStopNothingPastArrival(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	n.holding("a", 1, 20)
	a := n.nodes["a"]
	empty := make([]uint64, crdt.Fanout)
	for i := range empty {
		empty[i] = emptyLeaf
	}
	forge := func(id uint64) {
		f := &wire.Digest{Session: wire.Session{ID: id, Step: 1}, Level: 1, Parents: []uint32{0}, Hashes: empty,
			Cut: crdt.Timestamp{Wall: n.now.Now(), Node: 9}}
		if _, err := a.Receive("b", encode(t, f), n.now.Now()); err != nil {
			t.Fatal(err)
		}
	}
	forge(1)
	if !a.yields("b", n.now.Now()) {
		t.Fatal("a member just come that shows itself empty: not yielded to")
	}
	n.now.Advance(time.Duration(arrivalYield))
	forge(2)
	if a.yields("b", n.now.Now()) {
		t.Fatalf("an empty opening %v after b came, with no token back: yielded to", time.Duration(arrivalYield))
	}
	before := a.Stats().SessionsStarted
	n.pump("a", a.StartSession("b", n.now.Now()))
	if a.Stats().SessionsStarted != before+1 {
		t.Fatal("a started no session with b")
	}
}

// TestRestartedMemberIsYieldedTo: a member restarted under its name, which
// the view never saw leave, is new to it again (Restarted): its opening
// showing it empty is yielded to, however long its name has been in the
// view, and a session goes to it at once. Only names new to the view
// counted, and an empty member restarted in place was caught up twice
// (found by review).
func TestRestartedMemberIsYieldedTo(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	n.holding("a", 1, 20)
	a := n.nodes["a"]
	n.now.Advance(time.Minute)
	a.Restarted("b", n.now.Now())
	empty := make([]uint64, crdt.Fanout)
	for i := range empty {
		empty[i] = emptyLeaf
	}
	f := &wire.Digest{Session: wire.Session{ID: 1, Step: 1}, Level: 1, Parents: []uint32{0}, Hashes: empty,
		Cut: crdt.Timestamp{Wall: n.now.Now(), Node: 9}}
	if _, err := a.Receive("b", encode(t, f), n.now.Now()); err != nil {
		t.Fatal(err)
	}
	if !a.yields("b", n.now.Now()) || !slices.Contains(a.ae.arrived, "b") {
		t.Fatalf("b restarted a minute after it came: yielded to %v, among the arrivals %v", a.yields("b", n.now.Now()), a.ae.arrived)
	}
}

// TestRestartedMemberEndsTheSessionWithTheOldProcess: a session in
// flight with a member that restarted was with the old process, which
// answers none of its steps: the session to the new process, an arrival
// due at once, waited until it timed out (SessionTimeout), and a member
// killed and started again mid-session was caught up that much later
// (a suspicion a review left, shown here).
func TestRestartedMemberEndsTheSessionWithTheOldProcess(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	n.holding("a", 1, 20)
	a := n.nodes["a"]
	_ = a.StartSession("b", n.now.Now()) // its opening is lost with the old b
	started, timedOut := a.Stats().SessionsStarted, a.Stats().SessionsTimedOut
	n.now.Advance(10 * time.Millisecond)
	a.Restarted("b", n.now.Now())
	out := a.Tick(n.now.Now())
	if a.Stats().SessionsStarted != started+1 || a.Stats().SessionsTimedOut != timedOut+1 {
		t.Fatalf("b restarted mid-session: sessions started %d (want %d), ended unfinished %d (want %d)",
			a.Stats().SessionsStarted, started+1, a.Stats().SessionsTimedOut, timedOut+1)
	}
	n.pump("a", out)
	if a.LastSyncs()["b"] != n.now.Now() {
		t.Fatalf("the session to the new process did not complete: last sync %d, want %d", a.LastSyncs()["b"], n.now.Now())
	}
}

// TestRestartedMemberHasNoLastSync: a member restarted under its name has
// completed no exchange with this node: LastSyncs (and so Status's last
// sync with it, and its exchange age metric) showed the old process's.
func TestRestartedMemberHasNoLastSync(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	n.holding("a", 1, 20)
	a := n.nodes["a"]
	n.pump("a", a.StartSession("b", n.now.Now()))
	if a.LastSyncs()["b"] == 0 {
		t.Fatal("setup: a completed no exchange with b")
	}
	n.now.Advance(time.Minute)
	a.Restarted("b", n.now.Now())
	if at, ok := a.LastSyncs()["b"]; ok {
		t.Fatalf("b restarted: a's last sync with it is still the old process's, at %d", at)
	}
	n.pump("a", a.StartSession("b", n.now.Now()))
	if a.LastSyncs()["b"] != n.now.Now() {
		t.Fatalf("after an exchange with the new process: last sync %d, want %d", a.LastSyncs()["b"], n.now.Now())
	}
}

// TestRestartedEndsNoSessionWithoutAnother: Restarted ends the session
// in flight with the member, taking it for one with the old process. The host calls Restarted when its loop gets to the view
// change, after memberlist already routes the name to the new process: a
// session started in between (a Tick, or the opening's retry, which
// starts a new session) is with the new process, and answered. For a
// member past arrivalNeighbours on the ring, nothing takes its place: the
// new process, empty, was not caught up by this member until the next
// interval, and an exchange that was going fine was counted timed out
// (found by review of that change). A session goes to it at once now.
func TestRestartedEndsNoSessionWithoutAnother(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Minute}, names...)
	a := n.nodes["a"]
	far := ""
	for _, name := range names {
		if a.ring.distance(name, "a") > arrivalNeighbours {
			far = name
			break
		}
	}
	if far == "" {
		t.Fatal("setup: no member past arrivalNeighbours")
	}
	for len(a.ae.arrived) > 0 || a.ae.active { // the set-up's arrivals: a's neighbours
		n.pump("a", a.Tick(n.now.Now()))
		n.now.Advance(time.Millisecond)
	}
	n.holding("a", 1, 20)
	start := n.now.Now()
	out := a.StartSession(far, start) // memberlist routes far to its new process already
	n.now.Advance(10 * time.Millisecond)
	a.Restarted(far, n.now.Now()) // the loop gets to the view change
	out = append(out, a.Tick(n.now.Now())...)
	n.pump("a", out)
	for range 3 {
		n.now.Advance(time.Second)
		n.pump("a", a.Tick(n.now.Now()))
	}
	if _, ok := a.LastSyncs()[far]; !ok {
		t.Fatalf("restarted member %s (distance %d) was not synced with: its answered session ended, and none replaced it (timed out %d) stats %+v",
			far, a.ring.distance(far, "a"), a.Stats().SessionsTimedOut, a.Stats())
	}
}
