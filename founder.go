package bcache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/bcache-go/bcache/internal/journal"
	"github.com/bcache-go/bcache/internal/store"
)

// A founder's mark is a file beside the snapshot, SnapshotPath and
// founderSuffix, that says this member founded its cluster and has met no
// other member since (see Status.Founder): restarted, it is a founder at
// once. It holds the member's NodeName, or nothing when New drew the name
// (a drawn name is another at each start, and the mark counts for the
// member of the name it holds, so that a snapshot copied to another
// member makes no founder). It is a file of its own, not a part of the
// snapshot: snapshots stay readable by the releases before it (a section
// of the snapshot made every founder's unreadable to them: found by
// review), and meeting a member removes a file, rather than writing a
// snapshot. A member configured without peers writes none: it is a
// founder by its config.
const founderSuffix = ".founder"

// readFounderMark reads the founder's mark at New, with what restore
// found: restored says a snapshot was, logged the write log's records. A
// mark beside a log that holds records received from peers (LogReceived)
// is stale: the member met them, and crashed before it removed the mark.
// Restored state without the mark keeps a lookup from making this member
// a founder (gossip's Config.Restored: it may hold a cluster's data, the
// others out of reach).
func (c *Cache) readFounderMark(restored bool, logged []journal.Entry) {
	c.restored = restored || len(logged) > 0
	b, err := os.ReadFile(c.cfg.SnapshotPath + founderSuffix)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return
	case err != nil:
		c.log.Warn().Err(err).Msg("reading the founder's mark: taken as none")
		return
	}
	name := c.cfg.NodeName
	if c.drawnName {
		name = ""
	}
	if string(b) != name {
		return
	}
	for _, e := range logged {
		if e.Received {
			return
		}
	}
	c.founderOnDisk.Store(true)
}

// founderMarked reports whether this member's founder's mark should be
// on disk now.
func (c *Cache) founderMarked() bool {
	return c.repl.Founder() && (len(c.cfg.Peers) > 0 || c.cfg.PeerSource != nil)
}

// setFounderMark writes (on) or removes the founder's mark, durably.
func (c *Cache) setFounderMark(on bool) error {
	path := c.cfg.SnapshotPath + founderSuffix
	if on {
		name := c.cfg.NodeName
		if c.drawnName {
			name = ""
		}
		return store.WriteFileAtomic(path, func(w io.Writer) error {
			_, err := io.WriteString(w, name)
			return err
		})
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// onFounder is called when this member becomes a founder or stops being
// one (gossip's OnFounder).
func (c *Cache) onFounder() {
	select {
	case c.founderChanged <- struct{}{}:
	default:
	}
}

// keepFounderMark keeps the founder's mark as founderMarked says, from
// the moment it changes: written as soon as the member founds its
// cluster (crashed before, it restarted as a member that must sync, and
// with its listed peer never come, stayed unready), removed as soon as it
// meets another member (restarted with that member out of reach, it
// would take itself for the whole cluster and serve without a sync). A
// failed write is tried again, every second up to a minute apart, until
// it succeeds or Close.
func (c *Cache) keepFounderMark() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.founderChanged:
		}
		for wait := time.Second; ; wait = min(2*wait, time.Minute) {
			want := c.founderMarked()
			if want == c.founderOnDisk.Load() {
				break
			}
			err := c.setFounderMark(want)
			if err == nil {
				c.founderOnDisk.Store(want)
				continue // it may have changed meanwhile
			}
			c.log.Error().Err(fmt.Errorf("bcache: founder's mark: %w", err)).Msg("writing the founder's mark failed; trying again")
			select {
			case <-c.done:
				return
			case <-time.After(wait):
			}
		}
	}
}
