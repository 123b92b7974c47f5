package bcache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bcache-go/bcache/internal/clusterfill"
	"github.com/bcache-go/bcache/internal/store"
)

// A member that joins receives its peers' records, not what they
// collected: a value whose delete the cluster collected before it joined
// could come back on it from a member that still holds the value (one
// back from an absence past the horizon, or restored from an old snapshot
// under a name drawn at New) while the two are cut off from every member
// that collected the delete. So a member, once synced (it started, or
// restarted), asks the peer of its first sync for its watermarks (a call,
// as a fill's), and its store adopts them at its next collections within
// its own stable bound (store.OfferMarks says why that is safe). A peer
// that does not answer, or answers that it cannot (a release before),
// is followed by the next peer it has completed an exchange with, one at
// a time, once per collection, until one answers.

// marksTimeout bounds an ask for a peer's watermarks (the answer may be
// a megabyte, over a stream).
const marksTimeout = 10 * time.Second

// marksAsk is a member's ask for its peers' watermarks.
type marksAsk struct {
	taken  atomic.Bool // a peer answered
	asking atomic.Bool // an ask is under way
	mu     sync.Mutex
	tried  map[string]bool // peers that failed to answer, since the list was last cleared
}

// askMarks starts the ask for a peer's watermarks (see above), unless
// one answered, or one is under way, or the member has not synced.
// Called from collect.
func (c *Cache) askMarks() {
	if c.noMarks.Load() || c.marks.taken.Load() || !c.marks.asking.CompareAndSwap(false, true) {
		return
	}
	peer := c.marksPeer()
	if peer == "" {
		c.marks.asking.Store(false)
		return
	}
	c.wg.Add(1) // collect runs on a goroutine of c.wg: Close waits for this one too
	go func() {
		defer c.wg.Done()
		defer c.marks.asking.Store(false)
		ctx, cancel := context.WithTimeout(c.life, marksTimeout) // Close cancels it
		defer cancel()
		b, err := c.repl.Call(ctx, peer, clusterfill.Request(clusterfill.MarksRequest, ""))
		ms, ok := clusterfill.Marks(b, c.store.Leaves())
		if err != nil || !ok {
			if err == nil && clusterfill.MarksMalformed(b, c.store.Leaves()) {
				c.stats.fillAnswersBad.Add(1)
			}
			c.marks.mu.Lock()
			c.marks.tried[peer] = true
			c.marks.mu.Unlock()
			return
		}
		c.store.OfferMarks(ms)
		c.marks.taken.Store(true)
	}()
}

// marksPeer returns the peer to ask for its watermarks: the peer of the
// first sync, else one the member has completed an exchange with, not
// tried since the list was last cleared (cleared when every one was);
// "" before the first sync.
func (c *Cache) marksPeer() string {
	rs := c.repl.Status()
	if rs.FirstSync.IsZero() {
		return ""
	}
	c.marks.mu.Lock()
	defer c.marks.mu.Unlock()
	if c.marks.tried == nil {
		c.marks.tried = make(map[string]bool)
	}
	for range 2 {
		for _, m := range rs.Members {
			if m.Name == rs.FirstSyncWith && !c.marks.tried[m.Name] {
				return m.Name
			}
		}
		for _, m := range rs.Members {
			if !m.LastSync.IsZero() && !c.marks.tried[m.Name] {
				return m.Name
			}
		}
		clear(c.marks.tried)
	}
	return ""
}

// Marks implements the fill rules' marker: a peer's MarksRequest is
// answered with this member's watermarks.
func (m member) Marks() []store.Mark { return m.c.store.Marks() }
