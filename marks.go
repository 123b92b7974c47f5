package bcache

import (
	"context"
	"slices"
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
// a time, once per collection, until one answers with marks it says are
// complete: it has taken such an answer itself, or it founded its
// cluster. An answer that is not (a peer that joined a moment before and
// has not had its own answer yet) is taken all the same, and the member
// asks again, later each time (marksBackoff), up to maxIncompleteMarks
// such answers, NotHeld (a release before) among them: members that all
// restarted at once have no complete marks to give, nor have members of
// the release before. An answer whose marks were capped at this clock's
// reach is asked again however many came before it (see askMarks).

// marksTimeout bounds an ask for a peer's watermarks (the answer may be
// a megabyte, over a stream).
const marksTimeout = 10 * time.Second

// maxIncompleteMarks bounds the answers not complete that a member
// takes before it stops asking.
const maxIncompleteMarks = 8

// marksAsk is a member's ask for its peers' watermarks.
type marksAsk struct {
	taken      atomic.Bool  // a peer answered with complete marks, or maxIncompleteMarks answered
	asking     atomic.Bool  // an ask is under way
	incomplete atomic.Int32 // answers that were not complete, NotHeld among them
	mu         sync.Mutex
	tried      map[string]bool // peers that failed to answer, or answered incomplete, since the list was last cleared
	after      time.Time       // no ask before it: see marksBackoff
	// stale says the member is, or came back from, an absence longer
	// than the horizon, and has not taken marks since: its own are not
	// complete (see askAgainAfterAbsence). awayFrom and backAt are the
	// last exchange before the absence and the return that reset the ask
	// last (each resets it once).
	stale            atomic.Bool
	awayFrom, backAt time.Time
	// holders counts the asks of each member first seen holding its
	// cluster's state (gossip's Status.MetHolders; see askHolder),
	// maxHolderAsks once one answered.
	holders map[string]int
	// holderSeq is the listing (gossip's Status.MetHoldersSeq) of each
	// member that holders counts: listed again (gone, and back holding:
	// it may have collected in a cluster of its own meanwhile), a member
	// asked before is asked again.
	holderSeq map[string]uint64
	// holderLast says the last ask was of a holder: the next is this
	// member's own, if it is still to be made (see askMarks).
	holderLast atomic.Bool
}

// maxHolderAsks bounds the asks of a member first seen holding its
// cluster's state that fail.
const maxHolderAsks = 3

// askAgainAfterAbsence starts the ask for marks over when this member
// comes back from an absence longer than the horizon: no exchange with any
// peer completed for that long. Its marks lack every collection the
// cluster made meanwhile; taken for complete still, they were passed on
// as such to a newcomer whose first sync was with it, which never asked
// another, and then took, from a member still holding it, a value whose
// delete the cluster collected during the absence (found by review:
// TestAMemberBackFromALongAbsenceDoesNotPassOnStaleMarksAsComplete).
// Until it has an answer again, it says its marks are not complete, a
// founder's too. It runs at each collection and before each answer to a
// peer's ask: a newcomer whose first sync was the exchange that ended the
// absence asks at once, maybe before the next collection, or before this
// member has recorded that exchange (found by review of the fix); so an
// absence is either the age of the last exchange, as of now, or an
// exchange that completed after none for longer than the horizon (the
// protocol's FailedTimeout: gossip's Status.Returned), however many
// came after it.
func (c *Cache) askAgainAfterAbsence() {
	st := c.repl.Status()
	last := st.LastExchange
	if last.IsZero() {
		return // none yet: nothing to be stale against (a founder alone)
	}
	away := time.Unix(0, c.phys()).Sub(last) > c.cfg.TombstoneHorizon
	c.marks.mu.Lock()
	defer c.marks.mu.Unlock()
	switch {
	case away && !c.marks.awayFrom.Equal(last):
		c.marks.awayFrom = last
	case !st.Returned.IsZero() && !c.marks.backAt.Equal(st.Returned):
		c.marks.backAt = st.Returned
	default:
		return
	}
	c.marks.stale.Store(true)
	c.marks.taken.Store(false)
	c.marks.incomplete.Store(0)
	c.marks.after = time.Time{}
	clear(c.marks.tried)
}

// marksBackoff returns how long a member waits after its n-th answer that
// was not complete before it asks again: a collection interval, twice as
// long after each, up to a minute. Eight answers so span about two
// minutes: asked once a collection interval, a peer that joined a moment
// before, whose own ask waits for a silent peer's timeout (10 s), answered
// incomplete eight times before it had its answer, and the member stopped
// asking (found by review).
// The interval is capped at the minute before it is doubled: a
// GCInterval of 39 hours or more, doubled sixteen times, wrapped.
func marksBackoff(n int32, interval time.Duration) time.Duration {
	return min(min(interval, time.Minute)<<min(max(n-1, 0), 16), time.Minute)
}

// marksComplete says whether this member's watermarks are complete, as
// its answer to a peer's ask says: it has taken a complete answer, or it
// founded its cluster in this process (gossip's Founded: a founder
// restarted from its snapshot says so too, though a delete collected
// while it was down is not in its marks); and it has not been absent
// longer than the horizon since (see askAgainAfterAbsence).
//
// Nor are they complete while a member first seen holding its cluster's
// state is still to be asked for its marks (holderToAsk): said complete
// from the merge of two clusters until this member's ask of the other's
// member answered (the next collection; three of marksTimeout, asking
// one that does not answer), they were taken for complete by a newcomer
// whose first sync was with it then, which lacked what the other cluster
// collected and never asked another (found by review:
// TestAMergedMemberSaysItsMarksIncompleteUntilItAskedTheHolders).
func (c *Cache) marksComplete() bool {
	return !c.marks.stale.Load() && (c.marks.taken.Load() && c.marks.incomplete.Load() < maxIncompleteMarks || c.repl.Founded()) &&
		(c.noMarks.Load() || c.holderToAsk() == "")
}

// askMarks starts the ask for a peer's watermarks (see above), unless
// one answered, or one is under way, or the member has not synced.
// Called from collect.
func (c *Cache) askMarks() {
	if !c.noMarks.Load() {
		c.askAgainAfterAbsence()
	}
	if c.noMarks.Load() {
		return
	}
	if !c.marks.asking.CompareAndSwap(false, true) {
		return
	}
	// A holder to ask is asked, but not twice in a row while this
	// member's own ask is still to be made: a holder that never answers
	// (three asks of marksTimeout), or one that keeps joining under new
	// names, each first seen holding, kept the peer of the first sync
	// from ever being asked (found by review:
	// TestASilentHolderDoesNotStarveTheAskOfTheFirstSyncPeer).
	h, seq := c.holderToAskSeq()
	peer := ""
	if !c.marks.taken.Load() && (h == "" || c.marks.holderLast.Load()) {
		c.marks.mu.Lock()
		early := time.Now().Before(c.marks.after)
		c.marks.mu.Unlock()
		if !early {
			peer = c.marksPeer()
		}
	}
	if peer == "" && h != "" {
		c.marks.holderLast.Store(true)
		c.wg.Add(1) // as below
		go c.askHolder(h, seq)
		return
	}
	c.marks.holderLast.Store(false)
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
		ms, complete, ok := clusterfill.Marks(b, c.store.Leaves())
		capped := ok && c.store.OfferMarks(ms, c.phys())
		if capped {
			// Marks past this clock's reach, taken at it: this clock is
			// behind (a device booted before its clock was set), or the
			// peer's ahead. Taken for complete, the marks above it were
			// never asked for again, and once the clock was set a value
			// whose delete the cluster collected came back (found by
			// review): asked again, as for an answer not complete.
			complete = false
		}
		switch {
		case ok && complete:
			c.marks.incomplete.Store(0) // capped answers may have counted past maxIncompleteMarks
			c.marks.taken.Store(true)
			c.marks.stale.Store(false)
			return
		case err != nil: // silent, gone, busy: asked again in turn
		case !ok && clusterfill.MarksMalformed(b, c.store.Leaves()):
			c.stats.fillAnswersBad.Add(1)
		default: // incomplete, or NotHeld (a release before), or an Error (an earlier one: see clusterfill.MarksMalformed)
			n := c.marks.incomplete.Add(1)
			// A capped answer is never the last: counted, the member
			// stopped asking at the eighth, and one whose clock was set
			// only after them kept the capped marks and served a value
			// whose delete the cluster collected (found by review:
			// TestAResetMemberLongBehindLearnsWhatWasCollectedOnceItsClockIsSet).
			// It asks again, once a minute at most, until an answer is
			// not capped.
			if n >= maxIncompleteMarks && !capped {
				c.marks.taken.Store(true)
				c.marks.stale.Store(false)
				return
			}
			c.marks.mu.Lock()
			c.marks.after = time.Now().Add(marksBackoff(n, c.cfg.GCInterval))
			c.marks.mu.Unlock()
		}
		c.marks.mu.Lock()
		c.marks.tried[peer] = true
		c.marks.mu.Unlock()
	}()
}

// Two clusters that formed apart (a partition at the start, a stale
// lookup) merge as their members meet, and no exchange carries what
// either collected: a member of one, its marks complete for its own
// cluster (it founded it, or took a complete answer there), never asked a
// member of the other, and a value whose delete the other had collected
// came back on it from a member still holding it, and on a newcomer that
// took its marks for complete (found by review:
// TestAMemberOfAMergedClusterRefusesTheOthersCollectedDelete). So a
// member, once synced, asks each member it sees for the first time
// holding its cluster's state already (gossip's Status.MetHolders: a
// member of its own cluster that joined since is first seen holding
// nothing), whatever its ask says, and adopts its marks as any peer's;
// its answer, complete or not, changes nothing else.

// holderToAsk returns a live member first seen holding its cluster's
// state that this member has not asked for its watermarks yet, or has
// asked fewer than maxHolderAsks times without an answer; "" if none, or
// before the first sync.
func (c *Cache) holderToAsk() string {
	name, _ := c.holderToAskSeq()
	return name
}

// holderToAskSeq is holderToAsk, with the member's listing (see
// marksAsk.holderSeq).
func (c *Cache) holderToAskSeq() (string, uint64) {
	rs := c.repl.Status()
	if rs.FirstSync.IsZero() || len(rs.MetHolders) == 0 {
		return "", 0
	}
	c.marks.mu.Lock()
	defer c.marks.mu.Unlock()
	for name := range c.marks.holders { // kept for those still listed only: names drawn at each start would grow it
		if !slices.Contains(rs.MetHolders, name) {
			delete(c.marks.holders, name)
			delete(c.marks.holderSeq, name)
		}
	}
	if c.marks.holderSeq == nil {
		c.marks.holderSeq = make(map[string]uint64)
	}
	for i, name := range rs.MetHolders {
		var seq uint64
		if i < len(rs.MetHoldersSeq) {
			seq = rs.MetHoldersSeq[i]
		}
		if c.marks.holderSeq[name] != seq { // listed again: its asks start over
			c.marks.holderSeq[name] = seq
			delete(c.marks.holders, name)
		}
		if c.marks.holders[name] >= maxHolderAsks {
			continue
		}
		for _, m := range rs.Members {
			if m.Name == name {
				return name, seq
			}
		}
	}
	return "", 0
}

// askHolder asks peer, a member first seen holding its cluster's state,
// for its watermarks, and offers them to the store (see holderToAsk).
func (c *Cache) askHolder(peer string, seq uint64) {
	defer c.wg.Done()
	defer c.marks.asking.Store(false)
	ctx, cancel := context.WithTimeout(c.life, marksTimeout) // Close cancels it
	defer cancel()
	b, err := c.repl.Call(ctx, peer, clusterfill.Request(clusterfill.MarksRequest, ""))
	ms, _, ok := clusterfill.Marks(b, c.store.Leaves())
	if ok {
		c.store.OfferMarks(ms, c.phys())
	}
	c.marks.mu.Lock()
	defer c.marks.mu.Unlock()
	if c.marks.holders == nil {
		c.marks.holders = make(map[string]int)
	}
	if c.marks.holderSeq[peer] != seq {
		return // listed again since: that listing is still to be asked
	}
	if ok || err == nil { // answered: with marks, or that it cannot (a release before)
		c.marks.holders[peer] = maxHolderAsks
	} else {
		c.marks.holders[peer]++
	}
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
// answered with this member's watermarks, and whether they are complete.
// Whether they are is read first: askMarks offers an answer's marks
// before it says it took one, so marks read after a "complete" hold
// them. Read after the marks, it said complete of marks read before the
// answer that made them so was offered, and the newcomer that asked
// took them for its peers' and never asked again (found by review:
// TestAMarksAnswerSaysCompleteOnlyWithTheMarksItTook).
func (m member) Marks() ([]store.Mark, bool) {
	if !m.c.noMarks.Load() {
		m.c.askAgainAfterAbsence() // an absence no collection has seen yet
	}
	complete := m.c.marksComplete()
	return m.c.store.Marks(), complete
}
