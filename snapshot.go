package bcache

import (
	"errors"
	"fmt"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// restore loads Config.SnapshotPath into the store, if there is one: a
// missing file starts empty, a damaged one is an error wrapping
// ErrSnapshot.
func (c *Cache) restore() error {
	if c.cfg.SnapshotPath == "" {
		return nil
	}
	snap, err := store.LoadSnapshot(c.cfg.SnapshotPath, c.store.DigestBits())
	switch {
	case errors.Is(err, store.ErrNoSnapshot):
		return nil
	case err != nil:
		return fmt.Errorf("bcache: new: %w", err) // wraps ErrSnapshot
	}
	now := c.phys()
	st := c.store.Restore(snap, c.clock, now)
	c.stats.restored.Add(uint64(st.Applied))
	c.stats.restoreDrifted.Add(uint64(st.Drifted))
	c.stats.restoreLowered.Add(uint64(st.Lowered))
	ev := c.log.Info()
	if st.Drifted > 0 {
		ev = c.log.Warn().Int("skipped_ahead_of_clock", st.Drifted)
	}
	ev.Int("records", st.Applied).Str("path", c.cfg.SnapshotPath).
		Str("age", time.Duration(crdt.SubSat(now, snap.Written)).String()).Msg("restored snapshot")
	return nil
}

// writeSnapshot saves the member's state to Config.SnapshotPath.
func (c *Cache) writeSnapshot() error {
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	records, err := c.store.SaveSnapshot(c.cfg.SnapshotPath, c.phys())
	if err != nil {
		c.stats.snapshotErrors.Add(1)
		return fmt.Errorf("bcache: snapshot: %w", err)
	}
	c.stats.snapshots.Add(1)
	c.log.Debug().Int("records", records).Str("path", c.cfg.SnapshotPath).Msg("snapshot written")
	return nil
}
