package bcache

import (
	"fmt"
	"strings"
)

// SyncPolicy says when a member's own writes reach its disk between
// snapshots (Config.Sync). Whatever the policy, a write is applied and
// sent to the peers first: on a crash, a write its member lost comes back
// from any peer that received it.
type SyncPolicy uint8

const (
	// SyncNone keeps writes in memory until the next snapshot: a crash
	// (kill -9, a power cut, the out-of-memory killer) loses the writes
	// made since it, up to SnapshotInterval's worth. The default.
	SyncNone SyncPolicy = iota
	// SyncInterval appends every write to the write log and syncs the
	// log every SyncEvery: a crash loses at most the writes of the last
	// SyncEvery and of the sync under way, or, while syncs fail, the
	// writes since the last that succeeded (Set returns ErrNotDurable
	// then; their records are written with the next sync that succeeds,
	// up to 32 MiB of them: past it the older wait for the next snapshot,
	// as do those of writes made while the log could start no new
	// segment, and Set returns ErrNotDurable until it is written). Set
	// costs a copy of the record.
	// On Linux the log writes with direct I/O where the file system takes
	// it, bypassing the page cache, through a buffer of 4 MiB
	// (Stats.LogDirect).
	SyncInterval
	// SyncWrite makes every write durable before Set or Delete returns:
	// a crash loses no write that returned nil. Writers that arrive while
	// the log is syncing share the next sync (group commit); a lone write
	// waits for one sync (about half a millisecond on an SSD).
	SyncWrite
)

var syncNames = []string{"none", "interval", "write"}

// String returns "none", "interval" or "write".
func (p SyncPolicy) String() string {
	if int(p) < len(syncNames) {
		return syncNames[p]
	}
	return fmt.Sprintf("SyncPolicy(%d)", p)
}

// MarshalText returns the policy's name, and an error for a value that
// has none (it would not read back).
func (p SyncPolicy) MarshalText() ([]byte, error) {
	return marshalName(uint8(p), syncNames, "sync policy")
}

// UnmarshalText sets the policy from its name ("none", "interval",
// "write"), for flags (flag.TextVar) and configuration files.
func (p *SyncPolicy) UnmarshalText(b []byte) error {
	return parseName(string(b), syncNames, "sync policy", (*uint8)(p))
}

// DamagePolicy says what New does with a snapshot, write log or members
// file that is damaged: read, and not decoding (a checksum, a format, a
// version, a file cut short other than a torn end of the log), or that
// the device cannot read back (EIO; on Linux, the file system's report
// of a corruption too, EUCLEAN and EBADMSG; Windows: ERROR_CRC,
// ERROR_IO_DEVICE). New reads the members file, and then the snapshot
// with its log, again after an I/O error, each four times with 1.35 s of
// pauses: a start that meets lasting errors in both pauses 2.7 s, beside
// the reads themselves (on a network file system, each may last its
// timeout). Another I/O error that lasts (ESTALE, ETIMEDOUT, EINTR,
// EAGAIN, ENOMEM, EMFILE, EACCES, EPERM and the like) is not damage,
// whatever the policy: New fails with an error naming the file and
// saying nothing was moved aside, and leaves every file where it is.
type DamagePolicy uint8

const (
	// DamageFail makes New return an error wrapping ErrSnapshot or
	// ErrWriteLog, or ErrAheadOfClock for records stamped too far ahead
	// of the clock; nothing is restored. The default: a person decides
	// (or the clock is set, and the member started again).
	DamageFail DamagePolicy = iota
	// DamageReset moves the snapshot and every segment of the log aside
	// (renamed with ".damaged-" and the time), logs it, counts it in
	// Stats.DamageResets, and starts empty, for unattended devices: the
	// member then catches up from its peers like a new one; a damaged
	// members file it moves aside alone. The files one start moves aside
	// share the time: a set. It keeps the 3 newest sets (the one it moves
	// aside and the 2 before) and removes older ones, so that a device
	// that resets again and again does not fill its disk. Records too
	// far ahead of the clock it skips (Stats.RestoreDrifted), restoring
	// the rest. A file that cannot be read for a reason other than the
	// device's (see DamagePolicy: a network file system away, a shortage
	// of memory or files, permissions) is not damage: New fails, as with
	// DamageFail, and moves nothing aside; it fails so at every start
	// until the file reads (or a person moves it aside). A snapshot in a
	// format this release cannot read (a later release's, the binary
	// rolled back) is damage to it: moved aside whole, where the later
	// release can read it again.
	DamageReset
)

var damageNames = []string{"fail", "reset"}

// String returns "fail" or "reset".
func (p DamagePolicy) String() string {
	if int(p) < len(damageNames) {
		return damageNames[p]
	}
	return fmt.Sprintf("DamagePolicy(%d)", p)
}

// MarshalText returns the policy's name, and an error for a value that
// has none (it would not read back).
func (p DamagePolicy) MarshalText() ([]byte, error) {
	return marshalName(uint8(p), damageNames, "damage policy")
}

// UnmarshalText sets the policy from its name ("fail", "reset").
func (p *DamagePolicy) UnmarshalText(b []byte) error {
	return parseName(string(b), damageNames, "damage policy", (*uint8)(p))
}

// marshalName returns names[v], or an error naming what v is of if it is
// out of range: MarshalText wrote "SyncPolicy(7)", which UnmarshalText
// refused (found by review).
func marshalName(v uint8, names []string, what string) ([]byte, error) {
	if int(v) >= len(names) {
		return nil, fmt.Errorf("bcache: %s %d has no name, want %s", what, v, strings.Join(names, ", "))
	}
	return []byte(names[v]), nil
}

// parseName sets *v to the index of name in names.
func parseName(name string, names []string, what string, v *uint8) error {
	for i, n := range names {
		if n == name {
			*v = uint8(i)
			return nil
		}
	}
	return fmt.Errorf("unknown %s %q, want %s", what, name, strings.Join(names, ", "))
}
