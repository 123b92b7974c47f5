package gossip

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// noPeriodic leaves a member's periodic sessions an hour apart: only the
// pulls start sessions.
func noPeriodic(c *Config) { c.Protocol.AntiEntropyInterval = time.Hour }

// TestTwoLeaversPullFromOnePeerBothPulled: l1 and l2 close at once (a
// rolling restart two at a time) and both ask a to pull. a's pull from
// l2 must not abandon its pull from l1, whose answers are slow (l1 busy:
// its replica's lock held a moment): each leaver hears it was pulled.
// With Pull abandoning the session in flight, a's session with l1 is
// dropped, a answers l1 "not pulled" once its wait ended, and what l1's
// deltas lost goes with it.
func TestTwoLeaversPullFromOnePeerBothPulled(t *testing.T) {
	// a's pull waits max(2 ProbeIntervals, minLeaveWait) for its session:
	// 1 s with the fast timings, and l1's lock is held until the test has
	// seen the pull start, its session start and l2's notice arrive; a
	// test goroutine a second late on a loaded machine had a's pull from
	// l1 give up, reported as one pull abandoning the other. 5 s here.
	slowProbes := func(c *Config) { c.Timings.ProbeInterval = 2500 * time.Millisecond }
	a := startNode(t, "a", nil, noPeriodic, slowProbes)
	l1 := startNode(t, "l1", []string{a.r.Addr()}, noPeriodic)
	l2 := startNode(t, "l2", []string{a.r.Addr()}, noPeriodic)
	waitMembers(t, 3, a, l1, l2)
	for _, n := range []*node{a, l1, l2} {
		waitSynced(t, n)
		awaitNoSession(t, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	l1.rep.mu.Lock() // l1 busy: it answers a's session only once released
	// Released before the members close if the test fails first (they
	// would wait for the lock for good).
	unlock := sync.OnceFunc(l1.rep.mu.Unlock)
	t.Cleanup(unlock)
	type result struct{ answered, pulled bool }
	r1 := make(chan result, 1)
	// Counted before l1's notice goes: a's pull may start its session
	// before this goroutine runs again.
	started := sessionsStarted(a)
	go func() {
		ok, did := l1.r.tellLeaving(ctx, "a", append(slices.Clone(l1.r.meta[0][:8]), noticePull))
		r1 <- result{ok, did}
	}()
	await.Until(t, 5*time.Second, func() bool {
		a.r.mu.Lock()
		defer a.r.mu.Unlock()
		return a.r.leaveNotices["l1"].pull == pullRunning
	}, "a never began pulling from l1")
	await.Until(t, 5*time.Second, func() bool { return sessionsStarted(a) > started }, "a's pull from l1 started no session")
	r2 := make(chan result, 1)
	go func() {
		ok, did := l2.r.tellLeaving(ctx, "a", append(slices.Clone(l2.r.meta[0][:8]), noticePull))
		r2 <- result{ok, did}
	}()
	await.Until(t, 5*time.Second, func() bool {
		a.r.mu.Lock()
		defer a.r.mu.Unlock()
		_, ok := a.r.leaveNotices["l2"]
		return ok
	}, "l2's notice never reached a")
	unlock()
	for i, ch := range []chan result{r1, r2} {
		if got := <-ch; !got.answered || !got.pulled {
			t.Errorf("a, asked to pull by l1 and l2 at once, answered l%d %v, pulled %v: one pull abandoned the other's session", i+1, got.answered, got.pulled)
		}
	}
	if st := a.r.Stats(); st.LeavePulls != 2 || st.LeavePullsFailed != 0 {
		t.Errorf("a counts %d pulls for leavers, %d failed; want 2, 0", st.LeavePulls, st.LeavePullsFailed)
	}
}

// TestForgedNoticesStartOnePull: a holder of the key sends a, in b's
// name, notices of b's own process asking a pull, each after one of
// another start number. Each notice of another number replaced the note,
// so the next of b's own started another pull: a session and a goroutine
// polling for a second or more each, and the session in flight
// abandoned, as many as the forger sends. One process of b is pulled
// from once.
func TestForgedNoticesStartOnePull(t *testing.T) {
	a, b := quietPair(t)
	before := sessionsStarted(a)
	own := append(slices.Clone(b.r.meta[0][:8]), noticePull)
	other := slices.Clone(own)
	other[0]++
	const forged = 20
	for i := range forged {
		a.r.received(appendCall(nil, "b", callLeaving, uint64(100+2*i), own))
		a.r.received(appendCall(nil, "b", callLeaving, uint64(101+2*i), other))
	}
	a.r.received(appendCall(nil, "b", callLeaving, 99, own)) // the last of b's own: its pull, if any, is the note's
	await.Until(t, 10*time.Second, func() bool {
		a.r.mu.Lock()
		defer a.r.mu.Unlock()
		return a.r.leaveNotices["b"].pull != pullRunning
	}, "a's pull from b never ended")
	if started := sessionsStarted(a) - before; started > 1 {
		t.Fatalf("%d forged notices of b's process had a start %d sessions with b, want 1", forged, started)
	}
}

// sessionsStarted returns the sessions n's node has started.
func sessionsStarted(n *node) uint64 {
	n.r.nodeMu.Lock()
	defer n.r.nodeMu.Unlock()
	return n.r.node.Stats().SessionsStarted
}

// awaitNoSession waits until n's node has no session of its own in
// flight (every one it started completed, timed out or yielded).
func awaitNoSession(t *testing.T, n *node) {
	t.Helper()
	await.Until(t, 10*time.Second, func() bool {
		n.r.nodeMu.Lock()
		defer n.r.nodeMu.Unlock()
		st := n.r.node.Stats()
		return st.SessionsStarted == st.SessionsCompleted+st.SessionsTimedOut+st.SessionsYielded
	}, "%s's sessions never ended", n.r.cfg.Name)
}

func waitSynced(t *testing.T, n *node) {
	t.Helper()
	select {
	case <-n.r.Synced():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s never synced", n.r.cfg.Name)
	}
}

// quietPair starts members a and b, without periodic exchanges, and
// returns them once each has synced and no session runs.
func quietPair(t *testing.T) (a, b *node) {
	t.Helper()
	a = startNode(t, "a", nil, noPeriodic)
	b = startNode(t, "b", []string{a.r.Addr()}, noPeriodic)
	waitMembers(t, 2, a, b)
	for _, n := range []*node{a, b} {
		waitSynced(t, n)
		awaitNoSession(t, n)
	}
	return a, b
}
