package proptest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/sim"
	"github.com/bcache-go/bcache/transport/wire"
)

// firstIncarnation is the production store miswired as a member that
// takes a restarted peer's new incarnation for its old one: the cut of
// every Digest it receives is rewritten to the first node id it saw under
// the sender's name, so that its roster never ends the old incarnation.
type firstIncarnation struct {
	*StoreReplica
	codec *wire.Codec
	first map[string]uint64
}

func (r *firstIncarnation) Receive(from string, payload []byte) []transport.Envelope {
	if len(payload) > 0 && payload[0] != callMarker {
		if m, err := r.codec.Decode(payload); err == nil {
			if d, ok := m.(*wire.Digest); ok && d.Cut.Node != 0 {
				if id, seen := r.first[from]; !seen {
					r.first[from] = uint64(d.Cut.Node)
				} else if uint64(d.Cut.Node) != id {
					d.Cut.Node = crdt.NodeID(id)
					if b, err := r.codec.Encode(nil, d); err == nil {
						payload = b
					}
				}
			}
		}
	}
	return r.StoreReplica.Receive(from, payload)
}

// lateDelta is a run of lateDeltaOfABouncedMember: miswired builds every
// member as firstIncarnation; tell tells n0 and n2 of the restart;
// crash has n1 crash and restart at once instead of restarting in place,
// and down crash and stay down; tracked puts k and k2 among the harness's
// keys (see below); endedFor and failedFor are the members'
// transport.Config.EndedFor and FailedTimeout, and lateFrames and horizon
// the harness's Config.LateFrames and Horizon (0: the defaults); late is
// when n2 receives the held delta.
type lateDelta struct {
	miswired, tell, crash, down, tracked     bool
	endedFor, failedFor, lateFrames, horizon time.Duration
	late                                     int
}

// lateDeltaOfABouncedMember plays this: n1 writes k, its delta to n0
// lost and the one to n2 held in flight, and restarts in place (its peers
// told or not; or crashes, see lateDelta); n0 deletes k2, a key of k's bucket, just after. n1's new
// incarnation syncs with n2 at once but reaches n0 only 20 s later. After
// late more rounds of sessions and collections on every member, n2
// receives the held delta; then the cluster converges. It returns the
// model's verdict on the converged cluster ("" when it passes).
func lateDeltaOfABouncedMember(t *testing.T, o lateDelta) string {
	t.Helper()
	miswired, tell, crash, tracked, late := o.miswired, o.tell, o.crash, o.tracked, o.late
	k, k2 := "k", sameBucket("k")
	cfg := DefaultStoreConfig()
	cfg.Vary = nil
	cfg.Transport.EndedFor = o.endedFor
	if o.failedFor != 0 {
		cfg.Transport.FailedTimeout = o.failedFor
	}
	store := StoreFactory(cfg)
	c, err := NewCluster(3, func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
		r, err := store(name, id, phys)
		if err != nil || !miswired {
			return r, err
		}
		return &firstIncarnation{StoreReplica: r.(*StoreReplica), codec: wire.NewCodec(wire.Limits{}), first: map[string]uint64{}}, nil
	}, start)
	if err != nil {
		t.Fatal(err)
	}
	// Untracked, k and k2 are not among the harness's keys, which the
	// model's excuses for a crash look at: it reports any loss of k, even
	// one a crash would excuse (a frame of the old process delivered
	// later than Config.LateFrames after it ended).
	hcfg := Config{LateFrames: o.lateFrames, Horizon: o.horizon}
	if tracked {
		hcfg.Keys = []string{k, k2}
	}
	hcfg.fill()
	h := harnessOver(hcfg, c)
	cutOff := true // n0 and n1 do not reach each other
	sc := &scenario{t: t, c: c, drop: func(p sim.Packet) bool {
		return cutOff && (p.From == "n0" && p.To == "n1" || p.From == "n1" && p.To == "n0")
	}}
	h.model.write(c.Set(0, k2, []byte("x"), 0))
	cutOff = false
	sc.rounds(15)
	cutOff = true
	c.Advance(time.Millisecond)
	w := c.Set(1, k, []byte("written before the restart"), 0)
	h.model.write(w)
	sc.holdDelta("n1", "n2")
	h.model.crashed(h, 1) // as the harness's bounce and crash do
	switch {
	case o.down:
		c.Crash(1)
	case crash:
		c.Crash(1)
		err = c.Restart(1)
	default:
		err = c.Bounce(1, tell)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Millisecond)
	h.model.write(c.Delete(0, k2))
	sc.rounds(20)
	cutOff = false
	sc.rounds(late)
	sc.deliverHeld() // the late delta reaches n2
	if holds := slices.ContainsFunc(c.Replica(2).Records(), func(r crdt.Record) bool { return r.Version() == w.Version() }); !holds {
		t.Logf("miswired %v, told %v, crash %v, late %d: n2 rejected k's late delta", miswired, tell, crash, late)
	}
	return sc.verdict(h)
}

// TestAWriteOfABouncedMemberHeldElsewhereSurvivesItsRestart: in
// lateDeltaOfABouncedMember, n2 receives k 3 s after n1's new
// incarnation first synced with n0, and neither n0 nor n2 may have
// collected k2's delete by then: n0's roster holds the old incarnation's
// cut until every member synced with it EndedFor after it learned of the
// end (roster.completed ends it on a cut of another node id), and n2's
// bound waits for n0's coverage. Members that take the new incarnation for its old one
// (firstIncarnation: the miswiring the bounce tests did not catch) count
// its cut at once: n0's coverage jumps past k2's delete as soon as n1's
// new incarnation syncs with it, n2 collects k2 and rejects k's delta,
// and a write a live member received is lost. The coverage reports do not
// cover it: a frame in flight is held by no member at its cut.
func TestAWriteOfABouncedMemberHeldElsewhereSurvivesItsRestart(t *testing.T) {
	for _, tell := range []bool{false, true} {
		if f := lateDeltaOfABouncedMember(t, lateDelta{tell: tell, late: 3}); f != "" {
			t.Errorf("told %v: %s", tell, f)
		}
		if f := lateDeltaOfABouncedMember(t, lateDelta{miswired: true, tell: tell, late: 3}); !strings.Contains(f, "lost its newest write") {
			t.Errorf("told %v: members that take n1's new incarnation for its old one lost nothing the model sees: %q", tell, f)
		}
	}
}

// TestALateDeltaOfAnEndedIncarnationIsKept: lateDeltaOfABouncedMember
// with the held delta delivered 6 s and 20 s after n1's new incarnation
// first synced with n0 (26 s and 40 s after the restart), and the same
// with n1 crashing and restarting at once instead of in place: n0 counts
// the old incarnation for EndedFor (30 s) after it learned of its end, so
// neither it nor n2 has collected past k, and n2 keeps it. With n0
// counting it a SessionTimeout (4 s), as it did, n0 had retired it, every
// bound had passed k2's delete, and k was lost: at 6 s n2 took it and
// n0's answer to it removed it, at 20 s n2 refused the delta (found by
// review). 70 s after the restart, past EndedFor, the delta may be
// refused: the model, with k among its keys, excuses that (here by the
// horizon's rule already, a minute; Config.LateFrames at work:
// TestALateDeltaOfACrashedMemberStillCountedFailedIsChecked).
func TestALateDeltaOfAnEndedIncarnationIsKept(t *testing.T) {
	for _, crash := range []bool{false, true} {
		for _, late := range []int{6, 20} {
			if f := lateDeltaOfABouncedMember(t, lateDelta{crash: crash, late: late}); f != "" {
				t.Errorf("crash %v, delivered %d s after: %s", crash, late, f)
			}
			// Counted a SessionTimeout, as before (its lower bound).
			if f := lateDeltaOfABouncedMember(t, lateDelta{crash: crash, late: late, endedFor: time.Millisecond}); !strings.Contains(f, "lost its newest write") {
				t.Errorf("crash %v, delivered %d s after, an ended incarnation counted a SessionTimeout: k kept (%q): the test shows nothing", crash, late, f)
			}
		}
		if f := lateDeltaOfABouncedMember(t, lateDelta{crash: crash, tracked: true, late: 50}); f != "" {
			t.Errorf("crash %v, delivered 50 s after, k among the harness's keys: the model did not excuse it: %s", crash, f)
		}
	}
}

// leaveOnRestart is the production store miswired as a member told of a
// restart in place as of a leave (node.Left(name, false, now)).
type leaveOnRestart struct{ *StoreReplica }

func (r *leaveOnRestart) Restarted(name string) { r.node.Left(name, false, r.phys()) }

// toldOfABounce bounces n1 of a synced cluster, its peers told, and
// returns the replicas of n0 and n2 as built by wrap.
func toldOfABounce(t *testing.T, wrap func(*StoreReplica) Replica) []*StoreReplica {
	t.Helper()
	store := StoreFactory(DefaultStoreConfig())
	var stores []*StoreReplica
	c, err := NewCluster(3, func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
		r, err := store(name, id, phys)
		if err != nil {
			return nil, err
		}
		stores = append(stores, r.(*StoreReplica))
		return wrap(r.(*StoreReplica)), nil
	}, start)
	if err != nil {
		t.Fatal(err)
	}
	c.Set(0, "a", []byte("1"), 0)
	for range 3 {
		c.Advance(time.Second)
		c.Tick()
		if err := c.DeliverAll(budget); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range []int{0, 2} {
		if _, ok := stores[j].node.LastSyncs()["n1"]; !ok {
			t.Fatalf("n%d has completed no exchange with n1 before its restart: the scenario shows nothing", j)
		}
	}
	if err := c.Bounce(1, true); err != nil {
		t.Fatal(err)
	}
	return []*StoreReplica{stores[0], stores[2]}
}

// TestAPeerToldOfARestartInPlaceTakesTheNewProcessForAnArrival: told
// that n1 restarted in place (Restarted), n0 and n2 have completed no
// exchange with its new process (LastSyncs) and start a session with it
// at once (NextDeadline 0), as with a member that joined. Wired as a
// leave (leaveOnRestart, which the bounce tests did not catch: the
// harness checks safety, and a leave of an incarnation the roster ends
// anyway is safe), they show the old process's last exchange as the new
// one's and wait for their next round.
func TestAPeerToldOfARestartInPlaceTakesTheNewProcessForAnArrival(t *testing.T) {
	check := func(rs []*StoreReplica) string {
		for _, r := range rs {
			if at, ok := r.node.LastSyncs()["n1"]; ok {
				return fmt.Sprintf("%s: the restarted n1's last exchange at %d, before it started", r.name, at)
			}
			if d := r.node.NextDeadline(); d != 0 {
				return fmt.Sprintf("%s: next deadline %d, want a session to n1 at once (0)", r.name, d)
			}
		}
		return ""
	}
	if f := check(toldOfABounce(t, func(r *StoreReplica) Replica { return r })); f != "" {
		t.Fatal(f)
	}
	if f := check(toldOfABounce(t, func(r *StoreReplica) Replica { return &leaveOnRestart{r} })); f == "" {
		t.Fatal("a member that takes a restart in place for a leave passed")
	}
}
