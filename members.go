package bcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport"
)

// A member with a SnapshotPath keeps, beside each snapshot, the members it
// counts for early collection (transport.Node.Known): those alive, those
// lost and not yet given up on, and incarnations that ended and still
// count. Restarted, it counts them again: each as lost, from when it was
// lost (from the restart for one alive then), until it is seen again or
// the horizon has passed. Without them, a member absent while every member
// that had seen it restarted (a rolling redeploy while an edge member is
// cut off) was counted by none: they collected early, and its writes made
// meanwhile were rejected on its return (found by review). The list is as
// of the last snapshot: a member lost after it and before a crash is not
// in it (a Close writes one).
const knownSuffix = ".members"

// maxKnown bounds the members read back.
const maxKnown = 1 << 14

type knownFile struct {
	Version int               `json:"version"`
	Members []transport.Known `json:"members"`
}

// readKnown returns the members kept beside the snapshot, or none (a
// damaged file is logged and ignored: early collection then counts only
// the members this run sees).
func (c *Cache) readKnown() []transport.Known {
	b, err := os.ReadFile(c.cfg.SnapshotPath + knownSuffix)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var f knownFile
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err == nil && (f.Version != 1 || len(f.Members) > maxKnown) {
		err = fmt.Errorf("version %d with %d members, want version 1 with at most %d", f.Version, len(f.Members), maxKnown)
	}
	if err != nil {
		c.log.Warn().Err(err).Str("path", c.cfg.SnapshotPath+knownSuffix).
			Msg("the members kept beside the snapshot are unreadable: early collection counts only the members this run sees")
		return nil
	}
	return f.Members
}

// writeKnown writes the members this member counts beside the snapshot.
// A failure is logged: the file of the last snapshot stays.
func (c *Cache) writeKnown() {
	if c.repl == nil { // a snapshot New writes before the member runs
		return
	}
	f := knownFile{Version: 1, Members: c.repl.Known()}
	if err := store.WriteFileAtomic(c.cfg.SnapshotPath+knownSuffix, func(w io.Writer) error {
		return json.NewEncoder(w).Encode(f)
	}); err != nil {
		c.log.Warn().Err(err).Msg("writing the members kept beside the snapshot failed: those of the last snapshot stay")
	}
}
