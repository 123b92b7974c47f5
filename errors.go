package bcache

import "errors"

// Errors returned by the Cache, wrapped with the operation's name; test them
// with errors.Is.
var (
	// ErrClosed is returned by every call on a closed Cache.
	ErrClosed = errors.New("bcache: cache closed")
	// ErrConfig is returned by New for an invalid Config.
	ErrConfig = errors.New("bcache: invalid config")
	// ErrInvalidTTL is returned for a negative TTL.
	ErrInvalidTTL = errors.New("bcache: negative ttl")
	// ErrKeyTooLarge is returned for a key longer than Config.MaxKeySize.
	ErrKeyTooLarge = errors.New("bcache: key too large")
	// ErrValueTooLarge is returned for a value longer than
	// Config.MaxValueSize.
	ErrValueTooLarge = errors.New("bcache: value too large")
	// ErrNilFiller is returned by GetWithFiller without a filler.
	ErrNilFiller = errors.New("bcache: nil filler")
	// ErrSnapshot is returned by New for a snapshot file (SnapshotPath)
	// that is damaged, truncated or of another format. Nothing of it is
	// restored; remove the file to start empty.
	ErrSnapshot = errors.New("bcache: bad snapshot")
	// ErrFillerPanic wraps a panic raised by a Filler.
	ErrFillerPanic = errors.New("bcache: filler panicked")
)
