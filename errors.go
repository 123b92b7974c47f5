package bcache

import (
	"errors"

	"github.com/bcache-go/bcache/internal/store"
)

// Errors returned by the Cache, wrapped once with "bcache:", the
// operation's name and its key where there is one (`bcache: set "k": key
// too large (70000 bytes, limit 65536)`); test them with errors.Is.
var (
	// ErrClosed is returned by every call on a closed Cache.
	ErrClosed = errors.New("cache closed")
	// ErrConfig is returned by New for an invalid Config.
	ErrConfig = errors.New("invalid config")
	// ErrInvalidTTL is returned for a negative TTL.
	ErrInvalidTTL = errors.New("negative ttl")
	// ErrKeyTooLarge is returned for a key longer than Config.MaxKeySize.
	ErrKeyTooLarge = errors.New("key too large")
	// ErrValueTooLarge is returned for a value longer than
	// Config.MaxValueSize.
	ErrValueTooLarge = errors.New("value too large")
	// ErrNilFiller is returned by GetWithFiller without a filler.
	ErrNilFiller = errors.New("nil filler")
	// ErrSnapshot is returned by New for a snapshot file (SnapshotPath)
	// that is damaged, truncated or of another format. Nothing of it is
	// restored; remove the file to start empty.
	ErrSnapshot = store.ErrSnapshot
	// ErrFillerPanic wraps a panic raised by a Filler.
	ErrFillerPanic = errors.New("filler panicked")
)
