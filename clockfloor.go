package bcache

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// A member's peers collect deletes early below the cuts it reported (its
// clock's readings: package transport), trusting that it never stamps a
// write below one. A restarted process starts a new clock, from its
// physical time and past the newest stamp it restored. With the physical
// clock stepped back since (NTP, a board without a battery, a VM moved)
// by more than MaxClockSkew, that start was below the cuts its last life
// reported: its new writes, stamped below its peers' watermarks, were
// refused and answered with tombstones, and lost on every member (found
// by review, TestARestartWithTheClockBehindLosesNoWrite).
//
// So a member with a SnapshotPath keeps a floor of its clock beside its
// snapshot (SnapshotPath and floorSuffix): a reading of its clock, which
// no cut it reports passes (transport.Config.CutCeiling), and past which
// a restart starts its clock. A cut past the floor is reported at the
// floor, and asks for the floor to be raised to it: written at once, and
// then at most every floorEvery, while cuts are reported (a member alone
// reports none, and writes none; one given peers to join writes one at
// its start: startFloor; a floor far behind is written before the cut
// goes: raiseFloorNow). It is never ahead of the clock: a
// restart is never stamped ahead of its peers for it; the price is cuts
// that lag the clock by up to about two floorEvery and a round (early
// collection, on the peers, by as much), and, while the floor cannot be
// written, by as long as that lasts. This is CockroachDB's persisted clock bound
// without the wait: a restart there waits for its clock to pass the
// bound, which was written ahead of it.
//
// A member with no SnapshotPath keeps no floor: it keeps, instead, a
// value of its own that a peer's answer from before its start would
// delete (store.KeepAnswered).
const floorSuffix = ".clock"

// maxFloorBytes bounds the floor file read: a number and its checksum.
const maxFloorBytes = 64

// floorEvery is how often the floor is written while the clock moves:
// five anti-entropy rounds, from half a second to a minute.
func (c *Cache) floorEvery() time.Duration {
	// The interval capped before it is multiplied: five of one of 2^61 ns
	// or more (a "forever") wrapped below zero, and the floor was written
	// every half second.
	return min(max(5*min(c.cfg.AntiEntropyInterval, time.Minute), 500*time.Millisecond), time.Minute)
}

// cutCeiling is transport.Config.CutCeiling: now, the clock's reading for
// a cut, held to MaxClockSkew past the physical clock (store.CutNear),
// unless it passes the floor kept on disk; then the floor, and
// keepFloor is asked to raise it to now. A floor far behind is written
// first, within floorWait (raiseFloorNow).
func (c *Cache) cutCeiling(now crdt.Timestamp) crdt.Timestamp {
	now = store.CutNear(now, c.phys(), c.cfg.MaxClockSkew) // see CutNear: a floor ahead fails the next start
	kept := c.floor.Load()
	if now.Wall > kept && crdt.SubSat(now.Wall, kept) > int64(2*c.floorEvery()) {
		c.raiseFloorNow(min(now.Wall, c.clock.Last().Wall)) // never past the clock
		kept = c.floor.Load()
	}
	cut, past := store.FloorCut(now, kept)
	if !past {
		return cut
	}
	for want := c.floorWant.Load(); want < now.Wall && !c.floorWant.CompareAndSwap(want, now.Wall); want = c.floorWant.Load() {
	}
	select {
	case c.floorWanted <- struct{}{}:
	default:
	}
	return cut
}

// readFloor reads the floor kept beside the snapshot at New (0: none). A
// damaged file is under the damage policy: DamageFail fails New, and
// DamageReset removes it, counted; a file that cannot be read (not
// damage, once read again: readAgain) fails New either way.
func (c *Cache) readFloor() (int64, error) {
	path := c.cfg.SnapshotPath + floorSuffix
	if _, err := store.RemoveTemps(path); err != nil {
		c.log.Warn().Err(err).Msg("removing the temporary files of a clock floor cut short")
	}
	// Read again after an I/O error, as the other files are (readAgain):
	// read once, a passing error of a network file system failed New, and
	// a passing EIO (a soft mount) was taken for damage, and DamageReset
	// removed a good floor (found by review,
	// TestAClockFloorReadFailingOnceIsReadAgain).
	missing := false
	b, err := readAgain(c, path, func() ([]byte, error) {
		b, err := readFloorBytes(path, maxFloorBytes)
		if missing = errors.Is(err, os.ErrNotExist); missing {
			return nil, nil // none: not an error to read again
		}
		return b, err
	})
	switch {
	case missing:
		return 0, nil
	case err != nil && notDamage(err):
		return 0, notMoved(fmt.Errorf("%w: the clock floor kept beside it, %s: %w", ErrSnapshot, path, err), path)
	case err == nil:
		var floor int64
		if floor, err = parseFloor(b); err == nil {
			return floor, nil
		}
	}
	err = fmt.Errorf("%w: the clock floor kept beside it, %s: %w", ErrSnapshot, path, err)
	if c.cfg.OnDamage != DamageReset {
		return 0, err
	}
	if rerr := os.Remove(path); rerr != nil {
		return 0, fmt.Errorf("%w (and removing it: %v)", err, rerr)
	}
	// Synced as a members file moved aside is (readKnown): undone by a
	// power cut, the next start removed it and counted it again (found
	// by review, TestADamagedClockFloorRemovedIsSynced).
	if serr := syncDir(filepath.Dir(path)); serr != nil {
		return 0, fmt.Errorf("%w (removed, and syncing its directory: %v)", err, serr)
	}
	c.stats.damageResets.Add(1)
	c.log.Error().Err(err).Msg("the clock floor kept beside the snapshot is damaged: removed; this start's clock may begin below what its last life reported")
	return 0, nil
}

// The floor file is the floor in decimal, a space, the CRC-32C of those
// digits as 8 hex digits, and a newline.
func formatFloor(floor int64) []byte {
	n := strconv.FormatInt(floor, 10)
	return fmt.Appendf(nil, "%s %08x\n", n, crc32.Checksum([]byte(n), castagnoli))
}

func parseFloor(b []byte) (int64, error) {
	n, sum, ok := strings.Cut(strings.TrimSuffix(string(b), "\n"), " ")
	if !ok || len(sum) != 8 {
		return 0, errors.New("not a clock floor")
	}
	if fmt.Sprintf("%08x", crc32.Checksum([]byte(n), castagnoli)) != sum {
		return 0, errors.New("checksum mismatch (file corrupt or truncated)")
	}
	floor, err := strconv.ParseInt(n, 10, 64)
	if err != nil || floor < 0 {
		return 0, fmt.Errorf("not a clock floor: %q", n)
	}
	return floor, nil
}

// raiseFloor writes want, a reading of the clock, as the floor, if it is
// past the floor kept, and keeps it once it is on disk, one call at a
// time (startFloor, keepFloor, raiseFloorNow).
func (c *Cache) raiseFloor(want int64) error {
	c.floorMu.Lock() // one write at a time: a slower one of a lower floor renamed last put it back
	defer c.floorMu.Unlock()
	return c.raiseFloorLocked(want)
}

// raiseFloorLocked is raiseFloor with floorMu held.
func (c *Cache) raiseFloorLocked(want int64) error {
	if want <= c.floor.Load() {
		return nil
	}
	if err := c.ourFiles(); err != nil {
		c.stats.floorErrors.Add(1)
		return err
	}
	if err := writeFloorFile(c.cfg.SnapshotPath+floorSuffix, func(w io.Writer) error {
		_, err := w.Write(formatFloor(want))
		return err
	}); err != nil {
		c.stats.floorErrors.Add(1)
		return err
	}
	c.floor.Store(want)
	return nil
}

// startFloor writes the clock's reading at New, past the floor its last
// life kept (restore started the clock past it), as the floor, before
// the first cut is reported. Kept at the last life's floor (none for a
// first start) until keepFloor raised it, the first cuts lagged the
// clock by the time the member was down: its peers held a cut of that
// age, and one it failed to after a single session held it for
// FailedTimeout, with their stable bound, their early collections and
// the watermarks a newcomer adopts from them (found by
// TestANewcomerAsksAgainAFounderThatMetARestoredMember: a newcomer
// adopted a collected delete's watermark only up to a restarted
// member's old floor, below the value, and served it). Only for a
// member given peers to join: one alone writes none, lest a clock
// stepped ahead meanwhile leave a floor that refuses the next start
// with the clock set right, though it wrote nothing
// (TestSnapshotWrittenAheadAloneStarts). A failed write is logged, and
// the cuts wait for keepFloor, as before.
func (c *Cache) startFloor() {
	if err := c.raiseFloor(c.clock.Now().Wall); err != nil {
		c.log.Error().Err(err).Msg("writing the clock floor at the start failed: the cuts this member reports stay at the floor its last life kept until a write succeeds")
	}
}

// floorWait is the longest a cut waits for the floor written for it (see
// raiseFloorNow).
const floorWait = 100 * time.Millisecond

// raiseFloorNow writes want as the floor before a cut is reported, when
// the floor is far behind the clock: a member given no peers, whose first
// peer came later (startFloor wrote nothing), or whose last writes
// failed. Its cut at the floor was as old as the member's last floor (0 on
// a first start), and a peer that held it held its stable bound there,
// with the watermarks a newcomer adopts (see startFloor). It waits for
// the write at most floorWait, on the protocol's goroutine: past it (a
// disk that hangs), or if another write is under way or fails, the cut
// is reported at the floor, and keepFloor goes on.
func (c *Cache) raiseFloorNow(want int64) {
	if !c.floorMu.TryLock() {
		return // a write under way, which may hang: none piles up behind it
	}
	if !c.track() {
		c.floorMu.Unlock()
		return
	}
	done := make(chan error, 1)
	go func() {
		defer c.wg.Done()
		defer c.floorMu.Unlock()
		done <- c.raiseFloorLocked(want)
	}()
	t := time.NewTimer(floorWait)
	defer t.Stop()
	select {
	case <-done: // failed, it is logged by keepFloor's next write
	case <-t.C:
	}
}

// writeFloorFile writes the floor file, and readFloorBytes reads it
// (variables: tests make them fail).
var (
	writeFloorFile = store.WriteFileAtomic
	readFloorBytes = readAtMost
)

// keepFloor raises the floor to the cuts asked for (cutCeiling), at once
// and then at most every floorEvery, until Close. A failed write is
// logged at most once a minute, and tried again at the next cut; the
// cuts stay at the floor kept, and early collection on the peers waits,
// until one succeeds (an unattended member goes on).
func (c *Cache) keepFloor() {
	defer c.wg.Done()
	var logged time.Time
	for {
		select {
		case <-c.done:
			return
		case <-c.floorWanted:
		}
		if err := c.raiseFloor(c.floorWant.Load()); err != nil && time.Since(logged) >= time.Minute {
			logged = time.Now()
			c.log.Error().Err(err).Msg("writing the clock floor failed: the cuts this member reports stay where they are, and early collection waits")
		}
		every := time.NewTimer(c.floorEvery())
		select {
		case <-c.done:
			every.Stop()
			return
		case <-every.C:
		}
	}
}
