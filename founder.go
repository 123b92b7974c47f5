package bcache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/journal"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport"
)

// A member whose lookup of its peers finds only itself founds its
// cluster (see Status.Founder) only if what it holds is all the cluster
// has: it has met no other member since its state began. A member
// restarted from state it built with others must not (it would serve
// without a sync, the others out of reach), and one whose state it built
// alone must be able to (the only member there ever was). So a member
// with a SnapshotPath keeps, beside its snapshot, a mark of its lineage
// (SnapshotPath and founderSuffix): written, "solo", before it writes any
// state of a lineage it begins (it restored nothing); "founded" once a
// lookup has made it a founder (restarted with a peer listed that never
// came, it is a founder at once); removed as soon as it meets another
// member. The mark holds the member's NodeName after its state byte, or
// nothing when New drew the name (a drawn name is another at each
// start): it counts for the member of its name alone, so that files
// copied to a member of another set name make no founder.
//
// Inferring "met others" from "holds state" (the first versions of this)
// took a founder that wrote a snapshot before its first lookup settled for
// a member that had met others, for good; a mark inside the snapshot made
// snapshots unreadable to the releases before it (both found by review).
const founderSuffix = ".founder"

// The lineage a mark says.
const (
	markSolo    = 'S' // met no other member
	markFounded = 'F' // and founded its cluster
	// markGiven is a mark an operator writes, the member stopped: it
	// holds all its cluster has, whatever its state says (state of a
	// release before the mark, a member met that never came back). It
	// counts as markFounded, and stays as it is until the member meets
	// another (written over as 'F', the next start judged it by the state
	// it was given for, and removed it: found by review).
	markGiven = 'O'
)

// readFounderMark reads the lineage mark at New, with what restore
// found: snap the snapshot (nil: none), logged the write log's records.
// A mark of this member's name is taken unless the state holds a record
// another member wrote (received, or a peer's answer): then it is stale
// (the member met others, and crashed before it removed the mark, or ran
// a release that keeps no mark: a rollback, then forward again), and is
// removed before a snapshot covers the evidence. With no mark and nothing
// restored, the member begins a lineage alone, and says so before it
// writes any state, unless met, the members kept beside the snapshot
// (knownSuffix), names another member: its state was moved aside
// (DamageReset) or removed, not its past, and a lookup that finds only
// itself must not make it a founder, ready with none of its cluster's
// data and its empty marks complete for a newcomer, any more than one that
// restored its state (it founded: found by review,
// TestAMemberResetAfterMeetingOthersDoesNotFound); a founder that crashed before its first snapshot (or
// whose files DamageReset moved aside) keeps its 'F' (its 'S' written
// over it, it never founded again: found by review). A mark of another
// name counts for nothing: left as it is beside state, taken over by a
// new lineage. A mark taken is not written before New has succeeded (an
// operator's, rewritten, was lost to a New that failed). Failing to write the
// mark is no reason to fail New (an unattended member must start): it is
// logged, and tried again with the mark's other writes.
// maxMarkBytes bounds the lineage mark read: a mark byte, a name of at
// most 255 bytes, and what an editor adds.
const maxMarkBytes = 1 << 10

func (c *Cache) readFounderMark(snap *store.Snapshot, logged []journal.Entry, met []transport.Known) {
	path := c.cfg.SnapshotPath + founderSuffix
	if _, err := store.RemoveTemps(path); err != nil {
		c.log.Warn().Err(err).Msg("removing the temporary files of a lineage mark cut short")
	}
	b, err := readAtMost(path, maxMarkBytes) // a mark is a byte and a name: a larger file is not one
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			c.log.Warn().Err(err).Msg("reading the lineage mark: taken as none")
		}
		b = nil
	}
	const blank = " \t\r\n"
	mark := strings.TrimRight(string(b), blank) // as an editor or echo leaves it
	// The name trimmed as the mark is: a NodeName ending in whitespace
	// (a trailing newline from a file or a variable) never matched its
	// own mark, and its founder restarted unready (found by review).
	ours := len(mark) > 0 && (mark[0] == markSolo || mark[0] == markFounded || mark[0] == markGiven) && mark[1:] == strings.TrimRight(c.markName(), blank)
	restored := snap != nil || len(logged) > 0
	switch {
	case ours && mark[0] != markGiven && othersIn(snap, logged):
		c.log.Warn().Str("mark", mark).Msg("the lineage mark is stale (the state holds another member's records): removed")
		c.markOnDisk.Store(int32(mark[0])) // to be removed
	case ours:
		c.solo.Store(true)
		c.founded.Store(mark[0] != markSolo)
		c.given = mark[0] == markGiven
		c.markOnDisk.Store(int32(mark[0]))
		return // as it is: no write before New has succeeded
	case len(mark) > 0 && restored:
		c.log.Warn().Str("mark", mark).Str("name", c.markName()).Msg("a lineage mark not of this member's name: it counts for nothing, and is left as it is")
		return
	case !restored && len(met) > 0:
		c.log.Warn().Int("members", len(met)).Msg("nothing restored, and the members kept beside the snapshot say this member met others: it is no founder, and waits for a peer")
		return
	case !restored:
		c.solo.Store(true) // a new lineage: it takes over any mark there is
	}
	if want := c.markAtStart(); int32(want) != c.markOnDisk.Load() {
		if err := c.writeMark(want); err != nil {
			c.log.Error().Err(err).Msg("writing the lineage mark failed; trying again")
			c.onFounder() // keepFounderMark tries again
		}
	}
}

// founderMark is the mark of a founder: markGiven if an operator gave
// it, else markFounded.
func (c *Cache) founderMark() byte {
	if c.given {
		return markGiven
	}
	return markFounded
}

// markAtStart is the lineage mark New starts with: markNow before
// replication starts.
func (c *Cache) markAtStart() byte {
	switch {
	case c.founded.Load():
		return c.founderMark()
	case c.solo.Load():
		return markSolo
	}
	return 0
}

// othersIn reports whether the state restored holds a record that none of
// this member's processes wrote: received from another member, or a
// peer's answer (stamped by no process). A lineage of more than 64
// processes has forgotten its oldest (store.Snapshot.Own): theirs count as
// others'.
func othersIn(snap *store.Snapshot, logged []journal.Entry) bool {
	own := map[crdt.NodeID]bool{}
	for _, e := range logged {
		if e.Received {
			return true
		}
		own[e.Time.Node] = true
	}
	if snap == nil {
		return false
	}
	for _, id := range snap.Own {
		own[id] = true
	}
	for _, r := range snap.Records {
		if !own[r.Time.Node] {
			return true
		}
	}
	return false
}

// markName is the name a lineage mark holds.
func (c *Cache) markName() string {
	if c.drawnName {
		return ""
	}
	return c.cfg.NodeName
}

// markNow is the lineage mark this member should have on disk now: 0 for
// none.
func (c *Cache) markNow() byte {
	if c.repl == nil {
		return c.markAtStart()
	}
	switch {
	case c.repl.Founder():
		return c.founderMark()
	case c.solo.Load() && !c.repl.MetAny():
		return markSolo
	}
	return 0
}

// syncMark writes the lineage mark as markNow says, if it is not so on
// disk already.
func (c *Cache) syncMark() error {
	c.markMu.Lock()
	defer c.markMu.Unlock()
	for {
		want := c.markNow()
		if int32(want) == c.markOnDisk.Load() {
			return nil
		}
		if err := c.writeMark(want); err != nil {
			return err
		}
	}
}

// writeMark writes the lineage mark (0: removes it), durably, and
// records what is on disk. Called with markMu held, or before the Cache
// runs.
func (c *Cache) writeMark(mark byte) error {
	if err := c.ourFiles(); err != nil {
		return err
	}
	path := c.cfg.SnapshotPath + founderSuffix
	if mark != 0 {
		if err := store.WriteFileAtomic(path, func(w io.Writer) error {
			_, err := io.WriteString(w, string(mark)+c.markName())
			return err
		}); err != nil {
			return err
		}
	} else {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := store.SyncDir(filepath.Dir(path)); err != nil {
			return err
		}
	}
	c.markOnDisk.Store(int32(mark))
	return nil
}

// onFounder is called when this member becomes a founder or stops being
// one (gossip's OnFounder).
func (c *Cache) onFounder() {
	select {
	case c.founderChanged <- struct{}{}:
	default:
	}
}

// keepFounderMark keeps the lineage mark as markNow says, from the moment
// it changes: "founded" as soon as the member founds its cluster (crashed
// before, it restarted as a member that must sync, and with its listed
// peer never come, stayed unready), removed as soon as it meets another
// member (restarted with that member out of reach, it would take itself
// for the whole cluster and serve without a sync). A failed write is
// tried again, every second up to a minute apart, until it succeeds or
// Close, which writes the mark as it stands.
func (c *Cache) keepFounderMark() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.founderChanged:
		}
		for wait := time.Second; ; wait = min(2*wait, time.Minute) {
			err := c.syncMark()
			if err == nil {
				break
			}
			c.log.Error().Err(fmt.Errorf("bcache: lineage mark: %w", err)).Msg("writing the lineage mark failed; trying again")
			select {
			case <-c.done:
				return
			case <-time.After(wait):
			}
		}
	}
}
