package bcache

import (
	"errors"

	"github.com/bcache-go/bcache/internal/journal"
	"github.com/bcache-go/bcache/internal/store"
)

// Errors returned by the Cache, wrapped once with "bcache:", the
// operation's name and its key where there is one (`bcache: set "k": key
// too large (70000 bytes, limit 65536)`; a fill's errors, which every
// caller waiting for it shares, name the operation "fill"), as is a
// context's error a call returns; test them with errors.Is.
var (
	// ErrClosed is returned by every call on a closed Cache.
	ErrClosed = errors.New("cache closed")
	// ErrConfig is returned by New for an invalid Config (and by
	// Subscribe for a negative buffer).
	ErrConfig = errors.New("invalid config")
	// ErrInvalidTTL is returned for a negative TTL.
	ErrInvalidTTL = errors.New("negative ttl")
	// ErrKeyTooLarge is returned for a key longer than Config.MaxKeySize.
	ErrKeyTooLarge = errors.New("key too large")
	// ErrValueTooLarge is returned for a value longer than
	// Config.MaxValueSize, or one whose key and value together are longer
	// than Config.MaxBytes (it could never be held).
	ErrValueTooLarge = errors.New("value too large")
	// ErrNilFiller is returned by GetWithFiller without a filler, and by
	// GetOrFill on a miss without Config.Filler.
	ErrNilFiller = errors.New("nil filler")
	// ErrSnapshot is returned by New for a snapshot file (SnapshotPath)
	// that is damaged, truncated or of another format, or for its members
	// file, and for one that could not be read (an I/O error, which the
	// error wraps, found with errors.Is; nothing is moved aside for it,
	// whatever OnDamage says, but for the device's EIO: see
	// DamagePolicy). Nothing of it is
	// restored; to start empty, remove the file and its write log
	// (SnapshotPath + ".log.*": a log that follows a snapshot is damage
	// without it), or start with OnDamage: DamageReset, which moves
	// damaged ones aside.
	ErrSnapshot = store.ErrSnapshot
	// ErrWriteLog is returned by New for a write log (Config.Sync) that
	// is damaged or unreadable (a torn end, left by a crash in the middle
	// of a write, is not damage: it is ignored), or that follows a
	// snapshot that is not there. Nothing is restored. An unreadable one
	// (an I/O error, wrapped) is not moved aside, whatever OnDamage says,
	// but for the device's EIO (see DamagePolicy).
	ErrWriteLog = journal.ErrDamaged
	// ErrAheadOfClock is returned by New when the snapshot or the write
	// log holds records stamped more than MaxClockDrift ahead of the
	// clock, or the snapshot holds watermarks that far ahead, or the
	// clock floor kept beside the snapshot is: the clock is behind (a
	// device that booted before its clock was set; start again once it
	// is), or was ahead when they were written. With OnDamage:
	// DamageReset, New skips the records and lowers the watermarks
	// instead, and the next snapshot drops them; its clock starts at
	// MaxClockDrift ahead of itself, short of the floor.
	ErrAheadOfClock = errors.New("records ahead of the clock")
	// ErrEndOfTime is returned by Set and Delete (their WithToken forms
	// too, and fills, which write what they fill) once this member's
	// clock has reached the last timestamp there is (the year 2262: a
	// clock, or a peer's, that far ahead): every later write would be
	// stamped with it again, and taken for a copy of the last.
	ErrEndOfTime = errors.New("clock at the end of time")
	// ErrNotDurable is returned by Set and Delete when the write log
	// failed to take the write (Config.Sync), or, with SyncInterval,
	// while its last sync failed and none has succeeded since: the write
	// is applied here and sent to the peers, but a crash of this member
	// may lose it.
	ErrNotDurable = errors.New("write not durable")
	// ErrFillCycle is returned by GetWithFiller and GetOrFill called,
	// with a filler's context or one derived from it, for the key that
	// filler is filling, or that a fill it runs within is (the fill of
	// whose filler asked for it with its context), while that fill runs:
	// waiting, it could wait for itself until FillTimeout. GetOrFill
	// returns it whoever owns the key, for a cycle among this member's
	// fills; a cycle through another member's fill (x's filler on its
	// owner asks for y, whose filler on its owner asks for x) is not
	// seen: a request to an owner carries no chain, and such a cycle
	// waits for FillTimeout. The chain is the context's: a
	// filler that drops its context waits so; a fill joined by several
	// callers runs within the first caller's chain only (a cycle through
	// a later caller waits for FillTimeout); and a context handed to
	// work that does not hold the fill up (a prefetch in a goroutine of
	// its own) still carries the fill: give such work a fresh context.
	ErrFillCycle = errors.New("a filler asked for the key it is filling")
	// ErrFillerPanic wraps a panic raised by a Filler.
	ErrFillerPanic = errors.New("filler panicked")
	// ErrOwnerFill is returned by GetOrFill when the key's owner, asked
	// to fill it, ran Config.Filler and it returned an error: the error
	// says the owner's error's text (its value cannot cross the network;
	// a fill here returns the filler's error itself). A fill of the owner
	// that timed out or panicked returns ErrFillTimeout or
	// ErrFillerPanic, as here; one that gave a value too large for the
	// owner is filled again here (see GetOrFill), and ErrValueTooLarge
	// is this member's. An owner of the release before answers that too
	// large, which returns ErrValueTooLarge.
	ErrOwnerFill = errors.New("the owner's filler failed")
)
