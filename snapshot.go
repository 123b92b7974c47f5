package bcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/journal"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport"
)

// restore loads Config.SnapshotPath into the store, if there is one, then
// replays the write log beside it, and opens the log if Config.Sync asks
// for one. A missing snapshot starts empty; a damaged or unreadable
// snapshot or log is an error wrapping ErrSnapshot or ErrWriteLog, or,
// with DamageReset, moved aside.
func (c *Cache) restore() (err error) {
	path := c.cfg.SnapshotPath
	if path == "" {
		return nil
	}
	// One member a path: a second, started by mistake or while the first
	// was still shutting down, would write its snapshot over the first's
	// and remove the segments the first was writing its acknowledged
	// writes to (found by review).
	unlock, held, err := lockFile(path + ".lock")
	switch {
	case errors.Is(err, errLocked):
		return fmt.Errorf("bcache: new: %w", configError("SnapshotPath", "%s is in use by another member (it holds %s.lock)", path, path))
	case err != nil:
		// Not ErrSnapshot, which says the file is damaged (a read-only
		// directory is not: found by review).
		return fmt.Errorf("bcache: new: lock %s.lock: %w", path, err)
	}
	c.unlock, c.lockHeld = unlock, held
	defer func() {
		if err != nil {
			c.release()
		}
	}()
	if _, err := store.RemoveTemps(path + knownSuffix); err != nil { // the members file's, cut short
		c.log.Warn().Err(err).Msg("removing the temporary files of a members file cut short")
	}
	if n, err := store.RemoveTemps(path); err != nil {
		c.log.Warn().Err(err).Msg("removing the temporary files of snapshots cut short")
	} else if n > 0 {
		c.log.Info().Int("files", n).Msg("removed the temporary files of snapshots cut short")
	}
	floor, err := c.readFloor()
	if err != nil {
		return fmt.Errorf("bcache: new: %w", err)
	}
	kf, kerr := readAgain(c, path+knownSuffix, func() (knownFile, error) { return readKnownFile(path + knownSuffix) })
	if kerr == nil {
		c.kf = kf
		c.lastWritten = kf.latest()
	}
	if kerr != nil && notDamage(kerr) {
		// Refused before a damaged snapshot or log is moved aside: New
		// fails for the members file all the same, and nothing is moved
		// for an error that is not damage (see notDamage).
		_, err := c.readKnown(kf, kerr, false, "")
		return fmt.Errorf("bcache: new: %w", err)
	}
	type loaded struct {
		snap   *store.Snapshot
		logged []journal.Entry
		lst    journal.ReadStats
	}
	l, err := readAgain(c, path+" or its write log", func() (loaded, error) {
		snap, logged, lst, err := c.load(kf, kerr)
		return loaded{snap, logged, lst}, err
	})
	snap, logged, lst := l.snap, l.logged, l.lst
	reset := false // moved aside, the members file saying a snapshot or log
	// The files a reset moves aside, the snapshot, its log and its members
	// file, share one suffix: a set, of which pruneAside keeps the newest.
	aside := asideSuffix + time.Now().UTC().Format(asideTime)
	if err != nil {
		if notDamage(err) {
			return fmt.Errorf("bcache: new: %w", notMoved(err, path+" or its write log"))
		}
		if c.cfg.OnDamage != DamageReset {
			return fmt.Errorf("bcache: new: %w", err)
		}
		moved, merr := journal.MoveAside(path, aside)
		if merr != nil {
			return fmt.Errorf("bcache: new: %w (and moving the files aside: %v)", err, merr)
		}
		c.stats.damageResets.Add(1)
		c.log.Error().Err(err).Strs("moved_to", moved).Msg("snapshot or write log damaged: moved aside, starting empty")
		c.pruneAside(aside)
		snap, logged, lst = nil, nil, journal.ReadStats{}
		reset = kerr == nil && (kf.LogFrom != 0 || kf.Log || kf.Snapshot != 0 || len(kf.Pending) > 0)
	}
	now := c.phys()
	ahead := 0                // records skipped for being too far ahead of the clock
	aheadMarks := 0           // watermarks lowered for the same reason
	var met []transport.Known // the members file's, as read: none if it is damaged
	if kerr == nil {
		met = kf.Members
	}
	c.readFounderMark(snap, logged, met)
	if c.known, err = c.readKnown(kf, kerr, snap != nil || lst.Segments > 0, aside); err != nil {
		return fmt.Errorf("bcache: new: %w", err)
	}
	if reset {
		// The members stay, as read with nothing held (their cuts were
		// of the state moved aside: kept, a crash before the next
		// snapshot had the log's replay take them for held, found by
		// review); what the file says of a snapshot and log moved aside
		// goes, or the next start would take their absence for damage
		// again. A failure to write it is logged (writeKnown) and no
		// reason to fail New (the file is removed, below). The file as it
		// should be is kept in memory all the same: the next snapshot
		// writes it again before it is written, naming it, and from the
		// file as read it said the log_from of the log moved aside, a
		// crash before that snapshot took it for lost whole, and a reset
		// moved aside the new log with the writes acknowledged in it
		// (found by review); New writes it again too, saying a log runs.
		c.kf = knownFile{Version: 1, Members: c.known}
		if werr := c.writeKnown(c.known, 0, false); werr != nil {
			// Not written (a full disk), the file as read stays on disk
			// until a write succeeds, naming the files moved aside: a
			// crash before then took the new log, acknowledged writes in
			// it, for damage (found by review). Removed, it reads as a
			// release before this one's, with no file: the log whole.
			// Neither written nor removed, the reset cannot be made to
			// last, and a member with a log would acknowledge writes its
			// next start discards: New fails. Without a log (SyncNone)
			// nothing is acknowledged as durable between snapshots, and
			// each snapshot rewrites the file first (knownBefore): the
			// member starts, and the next start after a crash resets
			// again, as empty (it failed New at every start while the
			// file could not be removed: found by review).
			kp := path + knownSuffix
			rerr := removeFile(kp)
			if errors.Is(rerr, fs.ErrNotExist) {
				rerr = nil
			}
			if rerr == nil {
				if serr := store.SyncDir(filepath.Dir(kp)); serr != nil {
					rerr = fmt.Errorf("syncing its directory: %w", serr)
				}
			}
			switch {
			case rerr == nil:
			case c.cfg.Sync != SyncNone:
				return fmt.Errorf("bcache: new: %w: after moving the files aside, the members file naming them could be neither written (%v) nor removed: %v", ErrSnapshot, werr, rerr)
			default:
				c.log.Error().Err(rerr).Msg("the members file naming the files moved aside could be neither written nor removed: the next start after a crash resets again, as empty")
			}
		}
	}
	if snap != nil && kerr == nil {
		c.logFrom = kf.LogFrom
	}
	if snap != nil {
		c.snapWritten = snap.Written
		// The last snapshot's size, against which the log's length is
		// weighed (snapshotIfLogLong): taken for 0 after a restart, a
		// large store was rewritten whole after the floor's worth of log.
		if info, err := os.Stat(path); err == nil {
			c.snapSize.Store(info.Size())
		}
		c.lastWritten = max(c.lastWritten, snap.Written)
		st := c.store.Restore(snap, c.clock, now)
		ahead += st.Drifted
		aheadMarks += st.Lowered
		c.stats.restored.Add(uint64(st.Applied))
		c.stats.restoreDrifted.Add(uint64(st.Drifted))
		c.stats.restoreLowered.Add(uint64(st.Lowered))
		ev := c.log.Info()
		if st.Drifted > 0 {
			ev = c.log.Warn().Int("skipped_ahead_of_clock", st.Drifted)
		}
		ev.Int("records", st.Applied).Str("path", path).
			Str("age", time.Duration(crdt.SubSat(now, snap.Written)).String()).Msg("restored snapshot")
	}
	if lst.Segments > 0 {
		for _, e := range logged {
			if !e.Received { // written by an earlier process of this member
				c.store.MarkOwn(e.Time.Node)
			}
		}
		// A batch at a time: copied whole, the log's records took their
		// size in memory once more (found by review).
		applied, drifted := 0, 0
		recs := make([]crdt.Record, 0, min(len(logged), replayBatch))
		for rest := logged; len(rest) > 0; {
			recs = recs[:0]
			for len(rest) > 0 && len(recs) < cap(recs) {
				recs = append(recs, rest[0].Record)
				rest = rest[1:]
			}
			a, d := c.store.Replay(recs, c.clock, now)
			applied, drifted = applied+a, drifted+d
		}
		clear(recs)
		ahead += drifted
		c.stats.replayed.Add(uint64(applied))
		c.stats.restoreDrifted.Add(uint64(drifted))
		ev := c.log.Info()
		if drifted > 0 || lst.Torn > 0 {
			ev = c.log.Warn().Int("skipped_ahead_of_clock", drifted)
		}
		ev.Int("records", lst.Records).Int("applied", applied).Int("segments", lst.Segments).
			Int64("torn_end_bytes", lst.Torn).Msg("replayed write log")
	}
	// Records stamped ahead of the clock by more than MaxClockDrift: the
	// clock is behind (a device that booted before its clock was set),
	// or was ahead when they were written. Skipped, and gone for good
	// with the next snapshot, which replaces the files that held them
	// (acknowledged writes, found by review): New refuses, unless the
	// member is to start unattended whatever it loses (DamageReset).
	// Watermarks ahead of it too (a snapshot whose recent records were all
	// deleted and collected holds those alone): lowered, and saved so by
	// the next snapshot, they let a delete's older value back in once the
	// clock is set (found by review).
	// The clock starts past the floor its last life kept (clockfloor.go),
	// unless that is more than MaxClockDrift ahead of it: then as records
	// that far ahead are (under DamageReset, at the drift's edge, as near
	// the floor as peers take stamps).
	if floor > 0 && c.clock.Update(store.PastFloor(floor)) != nil {
		if c.cfg.OnDamage != DamageReset {
			return fmt.Errorf("bcache: new: %w: the clock floor kept beside %s, %s, is more than %v ahead of this clock (set the clock, or start with OnDamage: DamageReset to start below it)",
				ErrAheadOfClock, path, time.Unix(0, floor).UTC().Format(time.RFC3339Nano), c.cfg.MaxClockDrift)
		}
		_ = c.clock.Update(crdt.Timestamp{Wall: crdt.AddSat(c.phys(), int64(c.cfg.MaxClockDrift))}) // at the bound: taken
		c.log.Error().Str("floor", time.Unix(0, floor).UTC().Format(time.RFC3339Nano)).
			Msg("the clock floor is ahead of this clock by more than MaxClockDrift (OnDamage: reset): the clock starts below it, and writes stamped below the cuts of this member's last life may be refused by its peers")
	}
	c.floor.Store(floor)
	if ahead+aheadMarks > 0 && c.cfg.OnDamage != DamageReset {
		return fmt.Errorf("bcache: new: %w: %d records and %d watermarks of %s and its write log are more than %v ahead of this clock (set the clock, or start with OnDamage: DamageReset to skip them)",
			ErrAheadOfClock, ahead, aheadMarks, path, c.cfg.MaxClockDrift)
	}
	if ahead+aheadMarks > 0 {
		c.log.Error().Int("records", ahead).Int("watermarks", aheadMarks).
			Msg("records stamped ahead of this clock skipped, watermarks lowered (OnDamage: reset): the next snapshot drops them")
	}
	if c.cfg.Sync == SyncNone {
		if lst.Segments == 0 {
			return nil
		}
		// A log left by a run that kept one: a snapshot covers it now.
		// Its numbers are not taken again (see logFrom): the members file
		// says so before the log goes (kept in memory alone, a crash
		// before the next snapshot left the file of the last run, and a
		// later log numbered as the removed one; found by review).
		if err := c.writeSnapshot(); err != nil { // its error says "bcache: snapshot: ": once is enough
			return fmt.Errorf("bcache: new: covering the write log: %w", retold{strings.TrimPrefix(err.Error(), "bcache: "), err})
		}
		c.logFrom = max(c.logFrom, lst.Newest.N+1)
		if err := c.writeKnown(c.known, c.logFrom, false); err != nil {
			return nil // logged; the log stays, covered again at the next start
		}
		if err := journal.RemoveAll(path); err != nil { // said bare, it read as the snapshot's
			return fmt.Errorf("bcache: new: removing the write log a snapshot covers (Sync: SyncNone): %w", err)
		}
		return nil
	}
	if lst.Segments > 0 && lst.Newest.N < c.logFrom {
		// Segments numbered below log_from, replayed above: left by a
		// removal cut short (a Close killed as it removed its log, the
		// snapshot holding them), or numbered so by a release before
		// this one, which went on from them (writes the snapshot lacks).
		// A snapshot covers them now, and the log goes on from log_from:
		// numbered on from them, it took again the numbers of segments
		// removed, and a backup of the snapshot put back beside the newer
		// log read as whole (found by review; removed unread, they lost
		// the older release's writes: found by review of that). If the
		// snapshot or the members file cannot be written, they stay, and
		// the log numbers on from them, as before: New goes on (it failed,
		// where the release before started: found by review).
		if err := c.writeSnapshot(); err != nil {
			c.log.Warn().Err(err).Msg("covering the write log's segments below log_from failed: they stay, and the log numbers on from them")
		} else if from := max(c.logFrom, lst.Newest.N+1); c.writeKnown(c.known, from, false) == nil {
			if err := journal.RemoveAll(path); err != nil {
				return fmt.Errorf("bcache: new: removing the write log's segments a snapshot covers: %w", err)
			}
			c.logFrom, lst = from, journal.ReadStats{}
		}
	}
	mode := journal.EveryWrite
	if c.cfg.Sync == SyncInterval {
		mode = journal.Interval
	}
	var errLog sync.Mutex
	var logged1 time.Time
	c.journal, err = journal.Open(journal.Options{Path: path, Mode: mode, Interval: c.cfg.SyncEvery, Snapshot: snap != nil, From: c.logFrom, Ours: c.ourFiles,
		OnError: func(err error) {
			c.stats.logErrors.Add(1)
			errLog.Lock()
			defer errLog.Unlock()
			if time.Since(logged1) >= time.Second { // a failing disk fails every frame
				logged1 = time.Now()
				c.log.Error().Err(err).Msg("write log failed: writes since the last sync may not survive a crash")
			}
		}}, lst)
	if err != nil {
		return fmt.Errorf("bcache: new: write log: %w", err)
	}
	// The segments a crash left, replayed above, stay until a snapshot
	// covers them: they count toward the log's length (snapshotIfLogLong),
	// which counted this process's writes alone, and a member that
	// crashed each time before its log reached the floor grew the log,
	// and what each start replays, without bound (found by review).
	var left int64
	if segs, err := journal.Segments(path); err == nil {
		for _, s := range segs {
			if info, err := os.Stat(s.Path); err == nil {
				left += info.Size()
			}
		}
	}
	c.logMark.Store(-left)
	// Once New has succeeded (a failed one removes the segment it
	// started), the members file says a log runs, so that one lost whole
	// is found: after a clean Close, which removes the log, it said none
	// until the next snapshot; and from a first start on, with no
	// snapshot (log_from 0, which the check of a snapshot lost whole
	// passes, a release before this one too), it said nothing until the
	// first snapshot (found by review).
	// (A members file that could not be read was moved aside, or New
	// failed above: none is there now, and none said a log runs until the
	// next snapshot, found by review.)
	c.markLog = !c.kf.Log
	if c.cfg.LogReceived {
		c.feed.watchAlso(c.store, c.logReceived)
	}
	return nil
}

// replayBatch is the records of the write log restore replays at a time.
const replayBatch = 4096

// logReceived appends a record received from a peer to the write log
// (Config.LogReceived). The store calls it with a shard's lock held; it
// waits only while the log holds 64 MiB not yet written.
func (c *Cache) logReceived(ev *store.Event) {
	if ev.Here || ev.Kind == store.EventExpire || ev.Refill { // local writes are logged by write; a refill's version is held already
		return
	}
	c.journal.Append(&ev.Record, true) // an error is the log's, counted there
}

// ioError reports whether err is the file system's: a file that could not
// be opened, stated, mapped or read (EIO, ESTALE, ETIMEDOUT, EINTR,
// EAGAIN, ENOMEM, EMFILE, EACCES, EPERM and the like), as opposed to a
// file that was read and does not decode (a checksum, a format, a
// length, a version, a truncation that is not a torn last record), whose
// errors carry no system error. New reads the files again after one
// (readAgain).
func ioError(err error) bool {
	var (
		errno syscall.Errno
		pe    *fs.PathError
		le    *os.LinkError
		se    *os.SyscallError
	)
	return errors.As(err, &errno) || errors.As(err, &pe) || errors.As(err, &le) || errors.As(err, &se) ||
		errors.Is(err, fs.ErrPermission)
}

// notDamage reports whether err, reading the files, says they cannot be
// read now, not that they are damaged: an I/O error (ioError) other than
// the device's report that it lost the data (lostData), once the reads
// again have failed too. Such errors pass (a flaky network file system,
// a shortage of memory or files) or are a person's to fix (permissions
// changed by a deployment): DamageReset does not move the files aside
// for them, and New fails under either policy. (A list of the errors
// that may pass, EMFILE, ENOMEM and permissions, let every other through
// as damage: an ESTALE or ETIMEDOUT of a network file system moved good
// files aside and started empty, losing acknowledged writes; found by
// review.) A device's error for data it cannot read back (EIO), still
// there after the reads again, is the file's damage: an unattended
// device with a bad block under its snapshot would otherwise never start.
func notDamage(err error) bool { return ioError(err) && !lostData(err) }

// lostData reports whether err is the device's report that it could not
// read the data back (lostDataErrors: EIO, Linux's EUCLEAN and EBADMSG,
// and Windows's ERROR_CRC and ERROR_IO_DEVICE).
func lostData(err error) bool {
	for _, e := range lostDataErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// readAgain calls read, and again after each of ioRetryPauses while it
// fails with an I/O error (ioError): a passing error of a network file
// system (ESTALE, ETIMEDOUT, EIO on a soft mount) is not taken for the
// files' state, to fail New or, with DamageReset, to move good files
// aside. Each failure is logged.
func readAgain[T any](c *Cache, what string, read func() (T, error)) (T, error) {
	v, err := read()
	for _, pause := range ioRetryPauses {
		if err == nil || !ioError(err) {
			break
		}
		c.log.Warn().Err(err).Str("file", what).Dur("again_in", pause).Msg("an I/O error reading the files kept across restarts: reading them again")
		time.Sleep(pause)
		v, err = read()
	}
	return v, err
}

// ioRetryPauses are readAgain's pauses: each of its calls, the members
// file's and the snapshot's with its log, reads four times with 1.35 s
// of pauses before an I/O error counts, 2.7 s in all if both fail (a
// variable: tests shorten them).
var ioRetryPauses = []time.Duration{50 * time.Millisecond, 300 * time.Millisecond, time.Second}

// notMoved wraps err, an error reading file that is not damage (see
// notDamage), saying the files were left where they are.
func notMoved(err error, file string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path != "" {
		file = pe.Path
	}
	return fmt.Errorf("%w (an I/O error reading %s, read again for a second and more, and not damage: nothing was moved aside, whatever OnDamage says; start again once it reads)", err, file)
}

// loadSnapshot and readLog read the files, saveSnapshot writes one
// (variables: tests make them fail).
var (
	removeFile   = os.Remove // the members file's removal after a reset (tests make it fail)
	loadSnapshot = store.LoadSnapshot
	readLog      = journal.Read
	saveSnapshot = (*store.Store).SaveSnapshot
)

// load reads the snapshot and the write log beside it; kf and kerr are
// the members file beside the snapshot, as readKnownFile read it.
func (c *Cache) load(kf knownFile, kerr error) (*store.Snapshot, []journal.Entry, journal.ReadStats, error) {
	snap, err := loadSnapshot(c.cfg.SnapshotPath, c.store.DigestBits())
	switch {
	case errors.Is(err, store.ErrNoSnapshot):
		snap = nil
	case err != nil:
		return nil, nil, journal.ReadStats{}, err // wraps ErrSnapshot
	}
	logged, lst, err := readLog(c.cfg.SnapshotPath)
	if err != nil && !errors.Is(err, journal.ErrDamaged) {
		err = fmt.Errorf("%w: %w", journal.ErrDamaged, err) // unreadable
	}
	if err == nil && snap != nil && kerr == nil { // an unreadable members file: readKnown deals with it
		err = errors.Join(notNamed(snap, kf, c.cfg.SnapshotPath), logGap(lst, kf.LogFrom), logLost(lst, kf, c.cfg.SnapshotPath))
	}
	if err == nil && snap == nil && kerr == nil && kf.LogFrom == 0 && kf.Snapshot == 0 {
		// A log lost whole before the member's first snapshot: the file
		// says a log runs from its first start on (see markLog). A file
		// that says a snapshot was written is that snapshot's damage,
		// below, whatever became of its log (taken for a log lost beside
		// its snapshot, ErrWriteLog alone, it advised starting from the
		// snapshot, which is not there: found by review).
		err = logLost(lst, kf, c.cfg.SnapshotPath)
	}
	if err == nil && snap == nil && lst.FollowsSnapshot {
		// The segments before the oldest were removed once a snapshot
		// held their records: without it, they are lost (a snapshot
		// moved aside alone, by hand or by a reset cut short: found by
		// review).
		err = fmt.Errorf("%w: its oldest segment follows what a snapshot held, and there is no snapshot at %s (remove %s.log.* too to start empty)", journal.ErrDamaged, c.cfg.SnapshotPath, c.cfg.SnapshotPath)
	}
	if err == nil && snap == nil && kerr == nil && (kf.LogFrom != 0 || kf.Snapshot != 0) {
		// The members file is written beside a snapshot, after it, and
		// says where the log went on from: the snapshot was there, and
		// the writes it held (acknowledged, their segments removed) are
		// in no file (a snapshot lost whole read as a first start, found
		// by review).
		at := ""
		if kf.Snapshot != 0 {
			at = " at " + unixNano(kf.Snapshot) + ","
		}
		err = fmt.Errorf("%w: the members file beside %s says a snapshot was written there (%s the write log going on from segment %d), and there is none (remove %s%s too to start empty)",
			ErrSnapshot, c.cfg.SnapshotPath, at, kf.LogFrom, c.cfg.SnapshotPath, knownSuffix)
	}
	return snap, logged, lst, err
}

// notNamed returns the damage of a snapshot that the members file beside
// it does not name (knownFile.Snapshot): not the one this member wrote
// last, but an older one put back (as from a backup: its writes since are
// in no file, and the log's check cannot tell, for the file's log_from is
// the newer snapshot's), or another member's.
func notNamed(snap *store.Snapshot, kf knownFile, path string) error {
	if kf.names(snap.Written) {
		return nil
	}
	return fmt.Errorf("%w: %s was written at %s, and the members file beside it names the snapshot written at %s: it is not the snapshot this member wrote last (an older one put back, or another member's?); to start from it all the same, remove %s%s",
		ErrSnapshot, path, unixNano(snap.Written), unixNano(kf.latest()), path, knownSuffix)
}

// unixNano formats t, Unix ns, for an error.
func unixNano(t int64) string {
	return time.Unix(0, t).UTC().Format(time.RFC3339Nano)
}

// A write log longer than twice the last snapshot, and than
// logSnapshotFloor, is covered by a snapshot at once, rather than at the
// next SnapshotInterval: a restart replays the whole log, holding it in
// memory, and a member bounded to a few MiB that wrote at full speed for
// the interval replayed 64 MiB of log into 126 MiB of heap (found by
// review). The length is looked at every logCheckEvery. (Variables: tests
// lower them.)
var (
	logSnapshotFloor int64 = 4 << 20
	logCheckEvery          = time.Second
)

// snapshotIfLogLong writes a snapshot if the write log has grown past
// twice the last snapshot's size and logSnapshotFloor since it. After a
// failure it waits, twice as long each time up to a minute: retried every
// check, a failing snapshot (a full disk) rewrote the store and started
// a log segment every second (found by review). Only the goroutine of
// its timer calls it.
func (c *Cache) snapshotIfLogLong() {
	long := int64(c.journal.Stats().Bytes) - c.logMark.Load()
	if long <= max(c.logFloor, 2*c.snapSize.Load()) || time.Now().Before(c.logSnapRetry) {
		return
	}
	c.stats.logSnapshots.Add(1)
	if err := c.writeSnapshot(); err != nil {
		c.logSnapWait = min(max(2*c.logSnapWait, logCheckEvery), time.Minute)
		c.logSnapRetry = time.Now().Add(c.logSnapWait)
		c.log.Error().Err(err).Int64("log_bytes", long).Dur("retry_in", c.logSnapWait).Msg("snapshot of a long write log failed")
		return
	}
	c.logSnapWait, c.logSnapRetry = 0, time.Time{}
}

// retold is err told as msg (its own prefix cut off), wrapping it still.
type retold struct {
	msg string
	err error
}

func (e retold) Error() string { return e.msg }
func (e retold) Unwrap() error { return e.err }

// errLocked: another member holds the lock of this SnapshotPath.
var errLocked = errors.New("locked")

// release lets another member use the SnapshotPath.
func (c *Cache) release() {
	if c.unlock != nil {
		if err := c.unlock(); err != nil {
			c.log.Warn().Err(err).Msg("releasing the snapshot path's lock")
		}
		c.unlock = nil
	}
}

// ourFiles returns an error if the lock file at SnapshotPath is no longer
// the one this member holds: its directory was moved or renamed (a new
// one made at the old name), or the lock file removed, since New. Every
// file beside the snapshot is reached by name, and another member may
// hold that name's lock now: a member writing on was found writing its
// snapshot into, and removing the write log of, a member started on the
// directory made in the place of its own, acknowledged writes in it
// (found by review, TestAMemberWritesNoFileWhereItsLockIsNoLonger). So
// the member writes no snapshot, floor or mark and cuts no log from
// then on; its write log goes on in the file it has open (in the
// directory moved), and Close reports the snapshot it could not write.
// Checked before each of those writes: a move between the check and the
// write is not caught.
func (c *Cache) ourFiles() error {
	if c.lockHeld == nil { // no lock where none is at hand (lock_other.go)
		return nil
	}
	p := c.cfg.SnapshotPath + ".lock"
	info, err := os.Stat(p)
	if err == nil && os.SameFile(info, c.lockHeld) {
		return nil
	}
	if err == nil {
		err = errors.New("another file is there")
	}
	return fmt.Errorf("%s is no longer the lock file this member holds (its directory was moved, or the file removed, since New: %w); it writes no file there, lest it write over another member's", p, err)
}

// writeSnapshot saves the member's state to Config.SnapshotPath, and
// removes the write log's segments it covers: it starts a new segment
// first, so that every record in the older ones is in the snapshot.
func (c *Cache) writeSnapshot() error {
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	if err := c.ourFiles(); err != nil {
		c.stats.snapshotErrors.Add(1)
		return fmt.Errorf("bcache: snapshot: %w", err)
	}
	// A mark that should be gone goes before a snapshot of state built
	// with others is written beside it: while its removal failed, such
	// snapshots were written, and a crash then restarted the member as a
	// founder (found by review). Not at Close: its snapshot holds the
	// writes acknowledged (Close reports the mark's failure).
	if c.repl != nil && !c.closed.Load() && c.markNow() == 0 {
		if err := c.syncMark(); err != nil {
			c.stats.snapshotErrors.Add(1)
			return fmt.Errorf("bcache: snapshot: the lineage mark stays, so no snapshot is written: %w", err)
		}
	}
	var next uint64
	mark := int64(0)
	if c.journal != nil {
		mark = int64(c.journal.Stats().Bytes)
		n, err := c.journal.Rotate()
		if err != nil {
			c.stats.logErrors.Add(1)
			c.log.Error().Err(err).Msg("write log: starting a new segment failed; the old ones stay until a snapshot covers them")
		}
		next = n
	}
	// The members counted as they stand before the snapshot: a session
	// that completes while it is written raises a cut the snapshot may
	// not hold the records of (found by review).
	known := c.knownNow()
	// Named before it is written (see knownFile.Snapshot), by a time no
	// snapshot of this path had.
	written := max(c.phys(), crdt.AddSat(c.lastWritten, 1)) // saturating: a members file may say MaxInt64
	if err := c.knownBefore(written); err != nil {
		c.stats.snapshotErrors.Add(1)
		return fmt.Errorf("bcache: snapshot: naming it in the members file: %w", err)
	}
	c.lastWritten = written
	records, err := saveSnapshot(c.store, c.cfg.SnapshotPath, written)
	if errors.Is(err, store.ErrRenamed) {
		// In place, and the one before may come back with a power cut:
		// both stay named. (Every other failure leaves the one before,
		// named: kept for each, a run of them pushed the snapshot in
		// place out of the names, found by review.)
		c.unsure = nil
		if c.snapWritten != 0 {
			c.unsure = []int64{c.snapWritten}
		}
		c.snapWritten = written
	}
	if err != nil {
		c.stats.snapshotErrors.Add(1)
		return fmt.Errorf("bcache: snapshot: %w", err)
	}
	c.snapWritten, c.unsure = written, nil
	c.stats.snapshots.Add(1)
	// Removed only once the members file says where the snapshot ends:
	// a file of an older snapshot, beside a log whose segments were
	// removed up to this one, reads as a gap (see logGap).
	from := next
	if from == 0 { // no log now, or no segment started: the last file's stands
		from = c.logFrom
	}
	kept := false
	if c.repl != nil { // else New's, before the member runs: the last run's file stays
		// With a log running, its segments from `from` on exist (Rotate
		// started the one after the snapshot, or the ones before stay);
		// not at Close, which removes them once the snapshot is written.
		kept = c.writeKnown(known, from, c.journal != nil && !c.closed.Load()) == nil
		if !kept {
			// The snapshot stands, named by the file written before it,
			// but the log it covers cannot be cut, nor the members
			// kept: counted, as a snapshot's other failures (logged
			// alone, a member whose log was never cut showed no error:
			// found by review).
			c.stats.snapshotErrors.Add(1)
		}
	}
	if kept {
		c.logFrom = from
	}
	// Every segment is covered once the members file names the one
	// started above (Close removes them all then: with the file of an
	// earlier snapshot, the next run's log was numbered as this one's,
	// found by review).
	c.logCovered = kept && next > 0
	c.logMark.Store(mark)
	if info, err := os.Stat(c.cfg.SnapshotPath); err == nil {
		c.snapSize.Store(info.Size())
	}
	if next > 0 && kept {
		if err := c.journal.RemoveBefore(next); err != nil {
			c.stats.logErrors.Add(1)
			c.log.Warn().Err(err).Msg("write log: removing segments the snapshot covers")
		}
	}
	c.log.Debug().Int("records", records).Str("path", c.cfg.SnapshotPath).Msg("snapshot written")
	return nil
}

// logWrite appends a local write, applied, to the write log, and waits
// for it to be durable with SyncWrite, until until is closed (nil: for as
// long as the sync takes): then it returns errSyncPending, the write
// still to be synced.
func (c *Cache) logWrite(rec *crdt.Record, until <-chan struct{}) error {
	b, err := c.journal.Append(rec, false)
	switch {
	case errors.Is(err, journal.ErrClosed) && c.closeSnapshot.Load():
		// Close sealed the store after this write was applied: the
		// snapshot Close wrote holds it.
		return nil
	case errors.Is(err, journal.ErrClosed):
		return fmt.Errorf("the write log closed, and the snapshot written at Close failed: %w", err)
	case err != nil:
		return err
	case c.cfg.Sync == SyncWrite:
		ok, err := b.WaitUntil(until)
		if !ok {
			return errSyncPending
		}
		return err
	}
	return nil
}

// errSyncPending is logWrite's error for a write whose sync it stopped
// waiting for: a fill's, at its fill timeout (a filled value need not be
// durable, see fill).
var errSyncPending = errors.New("its sync not ended by the fill timeout")

// ownersOf returns the snapshot paths of which path is one of the files
// kept beside them: their members file, lineage mark, lock, write log
// segments, a temporary file of any of them (RemoveTemps removes those),
// or a file a reset moved aside (pruneAside removes those); none for a
// path that is no such file.
func ownersOf(path string) []string {
	dir, name := filepath.Split(path)
	var owners []string
	var walk func(name string)
	walk = func(name string) {
		add := func(owner string) {
			if owner != "" && !slices.Contains(owners, dir+owner) {
				owners = append(owners, dir+owner)
				walk(owner)
			}
		}
		for _, suffix := range []string{knownSuffix, founderSuffix, floorSuffix, ".lock"} {
			if owner, ok := strings.CutSuffix(name, suffix); ok {
				add(owner)
			}
		}
		if i := strings.LastIndex(name, ".log."); i >= 0 {
			if _, err := strconv.ParseUint(name[i+len(".log."):], 10, 64); err == nil {
				add(name[:i])
			}
		}
		// A file a reset moved aside, which the member on the owner
		// removes once it is older than the sets it keeps (pruneAside):
		// a member on such a name lost its snapshot at the owner's
		// resets (found by review).
		for i := strings.Index(name, asideSuffix); i > 0; {
			owner := name[:i]
			if o, ok := strings.CutSuffix(owner, knownSuffix); ok {
				owner = o
			} else if j := strings.LastIndex(owner, ".log."); j > 0 && digits(owner[j+len(".log."):]) {
				owner = owner[:j]
			}
			for _, o := range []string{name[:i], owner} {
				if _, ok := asideSet(o, name); ok {
					add(o)
				}
			}
			j := strings.Index(name[i+1:], asideSuffix)
			if j < 0 {
				break
			}
			i += 1 + j
		}
		for rest, at := name, 0; ; {
			i := strings.Index(rest, ".tmp-")
			if i < 0 {
				break
			}
			add(name[:at+i])
			at += i + 1
			rest = rest[i+1:]
		}
	}
	walk(name)
	return owners
}
