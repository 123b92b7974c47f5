package bcache

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// ErrBadToken is returned (wrapped) by GetAfter for a token that is not
// one SetWithToken or DeleteWithToken returned for that key.
var ErrBadToken = errors.New("bad token")

// A Token names one write of one key: its version. Carry it from the
// member that took the write to another one, and GetAfter there reads
// nothing older. It is opaque, compact (at most MaxTokenLen characters,
// 31 to 35 as a rule) and safe in an HTTP header or a URL.
type Token string

// MaxTokenLen is the longest a Token is: three varints of a version (the
// clock's wall reading, counter and node id) and four bytes of the key's
// hash, in unpadded base64. (The documented 32 was short of what a busy
// member's counter or a node id with its top bit set makes, found by
// review.)
const MaxTokenLen = 39

// PullAfter is how long GetAfter waits, at most, for a write's delta
// before it pulls the write from its peers.
const PullAfter = 20 * time.Millisecond

// timerGrain is how early GetAfter arms its pull timer. Go's runtime,
// when it has nothing to run, waits for its next timer in epoll_wait,
// whose timeout is in whole milliseconds: a timer due in 19.9 ms wakes it
// after 19 ms, and the rest, under a millisecond, costs a whole one. So a
// 20 ms timer fires up to a millisecond late (0.77 ms at the median on
// this project's test machine, more than the pull's round trip on
// 127.0.0.1); armed a millisecond early, the pull starts by the bound.
const timerGrain = time.Millisecond

// pullTimer returns how long to arm the pull timer for a bound of d.
func pullTimer(d time.Duration) time.Duration {
	if d > 2*timerGrain {
		return d - timerGrain
	}
	return d
}

// tokenKeyBytes is how much of the key's hash a token carries: enough to
// catch a token used with another key.
const tokenKeyBytes = 4

func newToken(rec crdt.Record) Token {
	b := make([]byte, 0, 3*binary.MaxVarintLen64+tokenKeyBytes)
	b = binary.AppendVarint(b, rec.Time.Wall)
	b = binary.AppendUvarint(b, uint64(rec.Time.Logical))
	b = binary.AppendUvarint(b, uint64(rec.Time.Node))
	b = binary.LittleEndian.AppendUint32(b, uint32(crdt.HashKey(rec.Key)))
	return Token(base64.RawURLEncoding.EncodeToString(b))
}

// badToken is the error of t, given for key, that is no token at all.
func badToken(key string, t Token) error {
	return fmt.Errorf("bcache: get after %q: %w: %q (want what SetWithToken or DeleteWithToken returned, at most %d characters)",
		clip(key), ErrBadToken, clip(string(t)), MaxTokenLen)
}

// parse returns the version a token names, checking it was made for key.
func (t Token) parse(key string) (crdt.Timestamp, error) {
	if len(t) > MaxTokenLen { // before it is decoded: the caller's header may be of any length
		return crdt.Timestamp{}, badToken(key, t)
	}
	b, err := base64.RawURLEncoding.DecodeString(string(t))
	if err != nil {
		return crdt.Timestamp{}, badToken(key, t)
	}
	var ts crdt.Timestamp
	var n int
	ts.Wall, n = binary.Varint(b)
	if n <= 0 {
		return ts, badToken(key, t)
	}
	b = b[n:]
	logical, n := binary.Uvarint(b)
	if n <= 0 || logical > 1<<32-1 {
		return ts, badToken(key, t)
	}
	b = b[n:]
	node, n := binary.Uvarint(b)
	if n <= 0 || len(b[n:]) != tokenKeyBytes {
		return ts, badToken(key, t)
	}
	if binary.LittleEndian.Uint32(b[n:]) != uint32(crdt.HashKey(key)) {
		return ts, fmt.Errorf("bcache: get after %q: %w: %q was not made for this key", clip(key), ErrBadToken, t)
	}
	ts.Logical, ts.Node = uint32(logical), crdt.NodeID(node)
	// As newToken spells it, and no other way: the decoder takes line
	// breaks anywhere, bits past the last byte and varints padded with
	// continuation bytes, and many strings named one write (found by
	// review: TestTokenParseIsStrict).
	if newToken(crdt.Record{Key: key, Time: ts}) != t {
		return ts, badToken(key, t)
	}
	return ts, nil
}

// SetWithToken is Set, returning the write's token: also with an error
// wrapping ErrNotDurable (the write was applied and sent to the peers).
func (c *Cache) SetWithToken(key string, value []byte, ttl time.Duration) (Token, error) {
	rec, err := c.set(key, value, ttl)
	return tokenOf(rec, err), err
}

// DeleteWithToken is Delete, returning the delete's token, as
// SetWithToken does.
func (c *Cache) DeleteWithToken(key string) (Token, error) {
	rec, err := c.del(key)
	return tokenOf(rec, err), err
}

// tokenOf is the token a write returns with err: none if it failed, and
// the write's if it was applied but not made durable (ErrNotDurable: its
// readers elsewhere may still ask for it; an HTTP node answered such a
// write without its token, found by review).
func tokenOf(rec crdt.Record, err error) Token {
	if err != nil && !errors.Is(err, ErrNotDurable) {
		return ""
	}
	return newToken(rec)
}

// GetAfter reads key as Get does, once this member holds the write token
// names or a newer one of key: it never returns what the key held before
// that write. A member that does not hold it yet waits for the delta; if
// it has not come within PullAfter, the member asks a few live peers for
// the key's record (one round trip: the key's owner and others drawn at
// random, pullFirstPeers; every peer, should they all answer without the
// write, and at each later pull), and starts an anti-entropy exchange
// with a peer at once, rather than waiting for the next interval (both
// again, twice as late each time, up to the anti-entropy interval; a
// member hurries exchanges at most every quarter interval); it returns
// an error wrapping ctx's error when ctx ends first, never older data. On the member that took the write it answers
// at once. Once the write is dead and collected here (a delete, an
// expired value), or was refused as older than what this member has
// collected, it answers a miss at once (and where a peer, asked, answers
// that it has: so a member that joined after the collection, which never
// held the key, does not wait for its context); so it does, as Get does, where it
// holds the write, or a newer one, with its value evicted here. The token must come from
// SetWithToken or DeleteWithToken for the same key; one naming a write
// further ahead of this member's clock (the later of Config.Clock and
// the newest time it has stamped or taken) than MaxClockDrift is refused
// (ErrBadToken), as no member can have made it. A key over 64 KiB
// (DefaultMaxKeySize, the protocol's limit) is refused (ErrKeyTooLarge),
// as no member can have written it: it was taken, and sent to every peer
// at each pull for as long as the caller waited (found by review). One
// over this member's MaxKeySize alone is read, as Get reads it: a peer
// with a larger MaxKeySize may have written it (it was refused: found by
// review).
func (c *Cache) GetAfter(ctx context.Context, key string, token Token) ([]byte, bool, error) {
	if err := c.checkRead("get after", key); err != nil {
		return nil, false, err
	}
	want, err := token.parse(key)
	if err != nil {
		return nil, false, err
	}
	// Measured from this member's clock as its writes read it (its HLC,
	// ahead of the physical clock after the clock stepped back, or after
	// it took a peer's write ahead of it): measured from the physical
	// clock alone, the tokens of this member's own writes, which it holds,
	// were refused for as long as a step back of more than MaxClockDrift
	// lasted (found by review).
	if now := max(c.phys(), c.clock.Last().Wall); want.Wall > crdt.AddSat(now, int64(c.cfg.MaxClockDrift)) {
		// No member can have written it yet: a forged token, or one of
		// another cluster, would pull from every peer until ctx ends.
		return nil, false, fmt.Errorf("bcache: get after %q: %w: %q names a write %v ahead of this member's clock", clip(key), ErrBadToken, clip(string(token)),
			time.Duration(crdt.SubSat(want.Wall, now)))
	}
	var asked []func() // the last pull's requests
	var pulled uint64  // the last pull's number (recentPulls)
	// A first pull asks a few peers (pullFirstPeers); settled closes once
	// they have all answered, and if none brought the write the reader
	// asks the rest, rest, at once (escalate): only the writer may hold
	// it, and a token does not say which member that is.
	var settled <-chan struct{}
	var rest []string
	first := true
	defer func() {
		for _, cancel := range asked {
			cancel()
		}
		// Its answer, if it has not come, is dropped with the asks: the
		// key's other readers, which left this pull to it, pull at their
		// next turn (a caller that left each read just after its pull,
		// every PullAfter, had the others skip every turn: found by
		// review).
		if len(asked) > 0 {
			c.pulls.release(key, pulled)
		}
	}()
	// The pulls come further and further apart, twice as far each time
	// up to the anti-entropy interval: a write no member has (a token of
	// another cluster, or forged, dated in the past) had every peer asked
	// every 20 ms for as long as the caller waited (found by review).
	wait := c.pullAfter
	// One timer across the key's changes: a timer started afresh at each
	// change of the key (a write older than the token, as a writer whose
	// clock a peer dragged ahead makes them) never reached the pull while
	// the key changed more often than PullAfter (found by review).
	pull := time.NewTimer(pullTimer(c.pullAfter))
	defer pull.Stop()
	for {
		if c.closed.Load() {
			return nil, false, fmt.Errorf("bcache: get after %q: %w", clip(key), ErrClosed)
		}
		if v, ok, done := c.reached(key, want); done {
			return v, ok, nil
		}
		changed := c.feed.await(key, c.store)
		if v, ok, done := c.reached(key, want); done { // it came while we registered
			c.feed.cancel(key, changed)
			return v, ok, nil
		}
		select {
		case <-changed:
		case <-pull.C:
			c.feed.cancel(key, changed)
			if n, ok := c.pulls.take(key, c.pullAfter); ok {
				// The key from a few peers at first, from every one later:
				// one round trip.
				asked, settled, rest = c.pull(key, want.Node, asked, first)
				pulled = n
			} // else another reader pulled it just now: its answer wakes this one too
			first = false // a turn skipped too: the next is a later pull
			if !c.fetchOnly {
				c.repl.Hurry() // and an exchange, should no peer's answer come
			}
			wait = min(2*wait, max(c.pullAfter, c.cfg.AntiEntropyInterval))
			pull.Reset(pullTimer(wait))
		case <-settled:
			// The first pull's peers have all answered (each answer
			// applied before), or one has not within
			// PullAfter/pullEscalateAfter: without the write, the others
			// are asked.
			c.feed.cancel(key, changed)
			settled = nil
			if v, ok, done := c.reached(key, want); done {
				return v, ok, nil
			}
			asked, rest = c.escalate(key, asked, rest), nil
		case <-ctx.Done():
			c.feed.cancel(key, changed)
			return nil, false, fmt.Errorf("bcache: get after %q: %w", clip(key), ctx.Err())
		case <-c.done:
			c.feed.cancel(key, changed)
			return nil, false, fmt.Errorf("bcache: get after %q: %w", clip(key), ErrClosed)
		}
	}
}

// recentPulls remembers when each key was last pulled, so that the
// readers of one key share its pulls: a reader whose turn comes within
// PullAfter of another's pull of the key leaves it to that one, whose
// answer wakes it too (each pulled on its own, and 200 readers of one key
// pulled it 200 times as often as one: found by review). Each reader
// keeps its own backoff: shared, a reader of a forged token kept a key's
// pulls an anti-entropy interval apart for every honest reader of it.
// Should the reader that pulled leave first, cancelling its asks, the
// others pull at their next turn (it forgets its pull: release). Keys
// are kept as their hashes under a seed of the process's (a key a caller
// chose, of up to 64 KiB, kept whole, held memory after its readers had
// gone: found by review), on the process's monotonic clock
// (Config.Clock may stand still). Past maxRecentPulls keys it forgets
// them all.
type recentPulls struct {
	mu                  sync.Mutex
	keyHashes[pullNote] // the last pull of each key
	pulls               uint64
}

// pullNote is a pull noted by recentPulls: when (since pullsEpoch), and
// which (its number).
type pullNote struct {
	at time.Duration
	n  uint64
}

const maxRecentPulls = 4096

// keyHashes maps keys, by their hashes under a seed of the process's, to
// a V each; past maxRecentPulls keys it forgets them all. Its user
// guards it.
type keyHashes[V any] struct {
	seed maphash.Seed
	at   map[uint64]V
}

// slot returns key's hash, the map made (or emptied, when full) to take
// it.
func (k *keyHashes[V]) slot(key string) uint64 {
	if k.at == nil || len(k.at) >= maxRecentPulls {
		if k.at == nil {
			k.seed = maphash.MakeSeed()
		}
		k.at = map[uint64]V{}
	}
	return maphash.String(k.seed, key)
}

// pullsEpoch is what recentPulls measures time from.
var pullsEpoch = time.Now()

// take reports whether key may be pulled now, none having been within
// the last within, and notes the pull, at the time it returns.
func (p *recentPulls) take(key string, within time.Duration) (uint64, bool) {
	now := time.Since(pullsEpoch)
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.slot(key)
	if t, ok := p.at[h]; ok && now-t.at < within {
		return 0, false
	}
	p.pulls++
	p.at[h] = pullNote{at: now, n: p.pulls}
	return p.pulls, true
}

// release forgets the pull of key that take numbered n, if it is still
// the last: its reader left, and its answer will not wake the others.
func (p *recentPulls) release(key string, n uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.at == nil {
		return
	}
	if h := maphash.String(p.seed, key); p.at[h].n == n {
		delete(p.at, h)
	}
}

// goneMarks remembers, of the keys GetAfter pulled, what a peer answered
// it holds nothing of and has collected (Store.Gone): every write of such
// a key below the mark is dead or lost there, and so, by package lww's
// rule 3, everywhere it goes (a member without files that wrote it below
// a watermark from before its start writes its value again, with a new
// stamp, store.KeepAnswered: a new write, which the token does not name,
// and GetAfter of the old one is a miss). A member that never held such a key (one
// that joined after it was collected) has no watermark of its own to
// tell. Kept as recentPulls keeps its keys, and forgotten as it forgets
// them (a reader then learns it again at its next pull).
type goneMarks struct {
	mu sync.Mutex
	keyHashes[crdt.Timestamp]
}

// note notes that every write of key below t is dead or lost to a peer.
func (g *goneMarks) note(key string, t crdt.Timestamp) {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.slot(key)
	if old, ok := g.at[h]; !ok || old.Less(t) {
		g.at[h] = t
	}
}

// covers reports whether a peer said the write of key stamped want is
// dead or lost there.
func (g *goneMarks) covers(key string, want crdt.Timestamp) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.at == nil {
		return false
	}
	t, ok := g.at[maphash.String(g.seed, key)]
	return ok && want.Less(t)
}

// reached reports whether this member holds the write named want, or one
// newer, of key, and what Get returns then; or whether the write is dead
// or lost here (below its bucket's watermark: a delete or an expired
// value collected, or a write refused), which is a miss: the member may
// hold an older value of the key, which a read after want must not see.
func (c *Cache) reached(key string, want crdt.Timestamp) (value []byte, ok, done bool) {
	if rec, held := c.store.Lookup(key); held && !rec.Time.Less(want) {
		value, ok = c.Get(key)
		// A miss of a Get that Close ran into is not the key's: the
		// caller gets ErrClosed, not a miss that says the write is
		// dead here (found by review).
		return value, ok, ok || !c.closed.Load()
	}
	if c.store.Refuses(key, want) || c.gone.covers(key, want) {
		// A miss, counted as Get counts one: read while the key's record
		// was held, the same read counted one (found by review).
		c.store.Missed()
		return nil, false, true
	}
	return nil, false, false
}
