package gossip

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
)

// TestAPullEndedForAForgedNoticeIsNotTheLeaversPull: a holder of the key
// sends a, in b's name, a notice of b's own process asking a pull; a
// pulls from b once. Later b writes a record whose delta is lost, and
// leaves, asking a to pull: a must pull again, not answer "pulled" from
// the note of the forged notice's pull, which ended before b's write
// (b, told it was pulled, asks no other peer, and its write is lost).
func TestAPullEndedForAForgedNoticeIsNotTheLeaversPull(t *testing.T) {
	a, b := quietPair(t)
	pull := append(slices.Clone(b.r.meta[0][:8]), noticePull)
	a.r.received(appendCall(nil, "b", callLeaving, 7, pull)) // forged: b is not leaving
	await.Until(t, 10*time.Second, func() bool {
		a.r.mu.Lock()
		defer a.r.mu.Unlock()
		return a.r.leaveNotices["b"].pull == pullDone
	}, "a's pull for the forged notice never completed")

	// b's write, its delta lost: only a pull brings it to a.
	b.rep.mu.Lock()
	rec := crdt.Record{Key: "late", Value: []byte("v"), Time: b.rep.clock.Now()}
	b.rep.m.Merge(rec, false, 0, nil)
	b.rep.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answered, pulled := b.r.tellLeaving(ctx, "a", pull)
	if !answered || !pulled {
		t.Fatalf("a, asked to pull by b's leave, answered %v, pulled %v; want both", answered, pulled)
	}
	if _, ok := a.rep.get("late"); !ok {
		t.Fatal("a answered b's leave notice \"pulled\" without b's last write: the answer was the forged notice's pull's")
	}
}
