package bcache

import (
	"context"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// TestAMemberBackFromALongAbsenceDoesNotPassOnStaleMarksAsComplete: p
// took a's complete marks, then was cut off for longer than the horizon
// . Meanwhile s got k and was cut off in turn, and a
// deletes k, and a and b collect it. p comes back to a and b (it never
// held k: nothing of k reaches it), and then p, s and a newcomer m end
// up on one side. m's first sync is with p, and m asks p for its marks:
// p answered them complete, though they lacked every collection of its
// absence, and m took them and never asked again, then took s's k and
// served it. Back from such an absence, p asks again, and until it has
// an answer it says its marks are not complete.
func TestAMemberBackFromALongAbsenceDoesNotPassOnStaleMarksAsComplete(t *testing.T) {
	net, member := shortHorizonMembers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := member("a")
	b := member("b", a.Addr())
	p := member("p", a.Addr())
	s := member("s", a.Addr())
	for _, c := range []*Cache{b, p, s} {
		if err := c.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	await.Until(t, 10*time.Second, func() bool { return p.marks.taken.Load() && p.marksComplete() }, "p never took complete marks")

	net.Partition([]string{"p"}) // p alone
	cut := time.Now()
	if err := a.Set("k", []byte("old"), 0); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { _, ok := s.Get("k"); return ok }, "s never got k")
	// s's k, which must not come back on m.
	held, _ := s.store.Lookup("k")
	net.Partition([]string{"p"}, []string{"s"}) // p and s each alone
	if err := a.Delete("k"); err != nil {
		t.Fatal(err)
	}
	awaitCollected(t, "k", a, b)
	if _, held := p.store.Lookup("k"); held {
		t.Fatal("p holds k: it was to miss it")
	}
	time.Sleep(time.Until(cut.Add(3 * time.Second))) // p away for longer than the horizon: time itself is what the test waits for

	net.Partition([]string{"s"}) // p back with a and b
	back := time.Now()
	awaitExchangeAfter(t, p, "a", back)
	// p, back, has asked again and taken a's marks, which hold the
	// collection of its absence (cut off from a first, it answered m
	// "not complete" up to eight times, and m then took its marks as
	// they were: the ask's bound, not this fault).
	await.Until(t, 10*time.Second, func() bool {
		p.marks.mu.Lock()
		back := p.marks.backAt
		p.marks.mu.Unlock()
		return !back.IsZero() && p.marksComplete()
	}, "p never asked again for marks after its absence, and took them")

	net.Partition([]string{"a", "b"}, []string{"s"}) // p and m one side, s still away
	m := member("m", p.Addr())
	if err := m.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if with := m.repl.Status().FirstSyncWith; with != "p" {
		t.Fatalf("m first synced with %q, not p", with)
	}
	// m's marks, through p, hold the collection of p's absence (p's
	// stale marks, taken for complete, never did): then s comes to
	// their side.
	awaitRefused(t, m, "k", held.Time)
	net.Partition([]string{"a", "b"}) // p, s and m one side
	await.Until(t, 10*time.Second, func() bool { return len(m.Members()) == 3 }, "s never reached m")
	if within(3*time.Second, func() bool { _, ok := m.Get("k"); return ok }) {
		t.Fatalf("m served s's k, whose delete a and b collected (m took p's marks, complete: %v, stale by p's absence)", m.marks.taken.Load())
	}
}
