package bcache

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/wallclock"
	"github.com/bcache-go/bcache/lru"
	"github.com/bcache-go/bcache/lww"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/gossip"
	"github.com/bcache-go/bcache/transport/wire"
)

// Member is a live member of the cluster.
type Member struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
}

// Cache is one member of a replicated cache. It is safe for concurrent use.
type Cache struct {
	cfg    Config
	log    zerolog.Logger
	phys   func() int64
	clock  *crdt.Clock
	shards [shardCount]shard
	repl   *gossip.Replicator
	fills  singleflight.Group

	// policy is the CLOCK ring of resident items, nil when the cache is
	// unbounded. Its lock nests inside a shard's, never the other way.
	policy   *lru.Clock[*item]
	evictMu  sync.Mutex
	resident atomic.Int64 // resident values
	bytes    atomic.Int64 // their key and value bytes
	peered   atomic.Bool  // some other member has been seen

	snapMu sync.Mutex // one snapshot written at a time

	closed atomic.Bool
	close  sync.Once
	done   chan struct{}
	wg     sync.WaitGroup
	stats  counters
}

// New starts a member: it listens on BindAddr, joins Peers in the
// background, and is ready for reads and writes when New returns.
func New(cfg Config) (*Cache, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	c := &Cache{cfg: cfg, log: cfg.Logger.With().Str("node", cfg.NodeName).Logger(), done: make(chan struct{})}
	c.phys = wallclock.New().Now
	if cfg.Clock != nil {
		c.phys = func() int64 { return cfg.Clock().UnixNano() }
	}
	c.clock = crdt.NewClock(newNodeID(), c.phys, cfg.MaxClockDrift)
	for i := range c.shards {
		m, err := lww.New(lww.Config{DigestBits: digestBits - shardBits, PrefixBits: shardBits, Horizon: cfg.TombstoneHorizon})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		c.shards[i].m = m
		c.shards[i].idx.init()
	}
	if cfg.MaxKeys > 0 || cfg.MaxBytes > 0 {
		c.policy = new(lru.Clock[*item])
	}
	if cfg.SnapshotPath != "" {
		snap, err := loadSnapshot(cfg.SnapshotPath, c.codec())
		switch {
		case err == nil:
			c.restore(snap)
		case !errors.Is(err, errNoSnapshot):
			return nil, fmt.Errorf("bcache: new: %w", err)
		}
	}
	repl, err := gossip.Start(gossip.Config{
		Name: cfg.NodeName, BindAddr: cfg.BindAddr, AdvertiseAddr: cfg.AdvertiseAddr, Peers: cfg.Peers,
		SecretKey: cfg.SecretKey, Label: cfg.Label, Timings: cfg.Timings, Transport: cfg.Network,
		Replica: replica{c}, Clock: c.clock, Logger: cfg.Logger,
		Protocol: transport.Config{
			FlushInterval: cfg.FlushInterval, AntiEntropyInterval: cfg.AntiEntropyInterval,
			Limits: wire.Limits{MaxKey: cfg.MaxKeySize, MaxValue: cfg.MaxValueSize},
			OnDrop: c.dropped,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("bcache: new: %w", err)
	}
	c.repl = repl
	c.every(cfg.GCInterval, c.collect)
	if cfg.SnapshotPath != "" && cfg.SnapshotInterval > 0 {
		c.every(cfg.SnapshotInterval, func() {
			if err := c.writeSnapshot(); err != nil {
				c.log.Error().Err(err).Msg("snapshot failed")
			}
		})
	}
	c.log.Info().Str("addr", repl.Addr()).Strs("peers", cfg.Peers).Msg("started")
	return c, nil
}

// newNodeID draws the incarnation id of this process's clock: random, never
// zero, so that a restarted member never reissues an old timestamp.
func newNodeID() crdt.NodeID {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		if id := crdt.NodeID(uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56); id != 0 {
			return id
		}
	}
}

// Name returns this member's name.
func (c *Cache) Name() string { return c.cfg.NodeName }

// Config returns the configuration the Cache runs with, defaults filled in.
func (c *Cache) Config() Config { return c.cfg }

// Addr returns the address other members reach this one at (with the port
// actually bound when BindAddr asked for port 0).
func (c *Cache) Addr() string { return c.repl.Addr() }

// Members returns the live members, this one included, sorted by name; nil
// after Close.
func (c *Cache) Members() []Member {
	if c.closed.Load() {
		return nil
	}
	ms := c.repl.Members()
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = Member{Name: m.Name, Addr: m.Addr}
	}
	return out
}

// Len returns the number of values this member holds: live keys, not
// counting deleted or evicted ones. Values past their TTL count until they
// are collected.
func (c *Cache) Len() int { return int(c.resident.Load()) }

// Get returns the value of key, or false if this member holds no live value
// for it (never written, deleted, expired, or evicted here). The returned
// slice is shared: do not modify it. Get takes no lock.
func (c *Cache) Get(key string) ([]byte, bool) {
	h := crdt.HashKey(key)
	s := &c.shards[shardOf(h)]
	it := s.idx.get(key, h)
	if it == nil {
		s.stats.misses.Add(1)
		return nil, false
	}
	value, expires := it.load()
	if (expires != 0 && c.phys() >= expires) || c.closed.Load() {
		s.stats.misses.Add(1)
		return nil, false
	}
	if !it.ref.Load() {
		it.ref.Store(true)
	}
	s.stats.hits.Add(1)
	return value, true
}

// Set writes value under key on every member. ttl 0 means no expiry; the
// expiry is absolute and travels with the write, so every member agrees on
// it. The value is copied: the caller may reuse its buffer.
func (c *Cache) Set(key string, value []byte, ttl time.Duration) error {
	if err := c.check("set", key, len(value), ttl); err != nil {
		return err
	}
	h := crdt.HashKey(key)
	rec := crdt.Record{Key: c.ownKey(key, h), Value: bytes.Clone(value), Time: c.clock.Now()}
	if ttl > 0 {
		rec.Expires = rec.Time.Wall + int64(ttl)
	}
	c.write(rec, h)
	return nil
}

// ownKey returns a key string the cache may keep: the caller's string may
// share the backing array of a larger buffer. A key already resident is
// not copied, as the map keeps its own copy when a key is written again.
func (c *Cache) ownKey(key string, h uint64) string {
	if c.shards[shardOf(h)].idx.get(key, h) != nil {
		return key
	}
	return strings.Clone(key)
}

// Delete removes key on every member: its tombstone beats every older
// write, also on members that never held the key or evicted it.
func (c *Cache) Delete(key string) error {
	if err := c.check("delete", key, 0, 0); err != nil {
		return err
	}
	h := crdt.HashKey(key)
	c.write(crdt.Record{Key: c.ownKey(key, h), Time: c.clock.Now(), Tombstone: true}, h)
	return nil
}

func (c *Cache) check(op, key string, valueLen int, ttl time.Duration) error {
	switch {
	case c.closed.Load():
		return fmt.Errorf("bcache: %s: %w", op, ErrClosed)
	case ttl < 0:
		return fmt.Errorf("bcache: %s %q: %w (%v)", op, key, ErrInvalidTTL, ttl)
	case len(key) > c.cfg.MaxKeySize:
		return fmt.Errorf("bcache: %s: %w (%d bytes, limit %d)", op, ErrKeyTooLarge, len(key), c.cfg.MaxKeySize)
	case valueLen > c.cfg.MaxValueSize:
		return fmt.Errorf("bcache: %s %q: %w (%d bytes, limit %d)", op, key, ErrValueTooLarge, valueLen, c.cfg.MaxValueSize)
	}
	return nil
}

// write applies a local record and hands it to the protocol.
func (c *Cache) write(rec crdt.Record, h uint64) {
	c.applyHashed(rec, h, false, rec.Time.Wall)
	c.repl.Write(rec) // a full queue drops the delta (counted); anti-entropy carries the write
}

// apply merges a record into its shard, keeps the eviction policy and the
// counters in step, and evicts past the bounds.
func (c *Cache) apply(rec crdt.Record, delta bool, now int64) crdt.Outcome {
	return c.applyHashed(rec, crdt.HashKey(rec.Key), delta, now)
}

func (c *Cache) applyHashed(rec crdt.Record, h uint64, delta bool, now int64) crdt.Outcome {
	s := &c.shards[shardOf(h)]
	s.mu.Lock()
	ch := s.apply(rec, h, delta, now)
	c.track(ch)
	s.mu.Unlock()
	c.account(ch)
	if ch.bytes > 0 || ch.added != nil {
		c.enforceBounds()
	}
	return ch.outcome
}

// account updates the resident counts after a change.
func (c *Cache) account(ch change) {
	switch {
	case ch.added != nil:
		c.resident.Add(1)
	case ch.removed != nil:
		c.resident.Add(-1)
	}
	if ch.bytes != 0 {
		c.bytes.Add(ch.bytes)
	}
}

// over reports whether the resident values exceed a bound.
func (c *Cache) over() bool {
	return (c.cfg.MaxKeys > 0 && c.resident.Load() > int64(c.cfg.MaxKeys)) ||
		(c.cfg.MaxBytes > 0 && c.bytes.Load() > c.cfg.MaxBytes)
}

// track keeps the eviction ring in step with a change of resident items.
// Called with the shard's lock held.
func (c *Cache) track(ch change) {
	if c.policy == nil || (ch.added == nil && ch.removed == nil) {
		return
	}
	c.evictMu.Lock()
	if ch.added != nil {
		c.policy.Add(ch.added)
	} else {
		c.policy.Remove(ch.removed)
	}
	c.evictMu.Unlock()
}

// enforceBounds evicts least recently used values until the bounds hold.
// It takes the ring's lock, then the victim's shard's lock, one after the
// other: a victim replaced in between is skipped.
func (c *Cache) enforceBounds() {
	for c.policy != nil && c.over() {
		c.evictMu.Lock()
		victim, ok := c.policy.Victim()
		c.evictMu.Unlock()
		if !ok {
			return
		}
		s := &c.shards[victim.shard]
		s.mu.Lock()
		ch, evicted := s.evict(victim)
		s.mu.Unlock()
		if evicted {
			c.account(ch)
			c.stats.evictions.Add(1)
		}
	}
}

// forget drops a version a peer rejected (see package lww, rule 3).
func (c *Cache) forget(v crdt.Version) (crdt.Record, bool) {
	h := crdt.HashKey(v.Key)
	s := &c.shards[shardOf(h)]
	s.mu.Lock()
	r, ch, ok := s.forget(v, h)
	c.track(ch)
	s.mu.Unlock()
	c.account(ch)
	return r, ok
}

// dropped reports a live value forgotten after a long absence.
func (c *Cache) dropped(v crdt.Version) {
	c.log.Warn().Str("key", v.Key).Msg("dropped a value the cluster no longer holds (back from a long absence)")
	if c.cfg.OnDrop != nil {
		c.cfg.OnDrop(v.Key)
	}
}

// every starts a goroutine that calls f every d until Close.
func (c *Cache) every(d time.Duration, f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-c.done:
				return
			case <-t.C:
				f()
			}
		}
	}()
}

// collect runs garbage collection (every GCInterval). A member that has
// never had a peer and was given none to join is its whole cluster: it
// counts as synced, so that its own deletes are collected too.
func (c *Cache) collect() {
	now := c.phys()
	if len(c.repl.Members()) > 1 {
		c.peered.Store(true)
	}
	alone := len(c.cfg.Peers) == 0 && !c.peered.Load()
	var removed []change
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		if alone {
			s.m.MarkSynced(now)
		}
		expired, gone := s.gc(now)
		for _, ch := range gone {
			c.track(ch)
		}
		s.mu.Unlock()
		c.stats.expirations.Add(uint64(expired))
		removed = append(removed, gone...)
	}
	for _, ch := range removed {
		c.account(ch)
	}
}

// Close leaves the cluster, stops every goroutine the Cache started and
// waits for them, then writes the snapshot if there is a SnapshotPath. It
// is idempotent; afterwards every call returns ErrClosed (Get misses,
// Members and Len are empty).
func (c *Cache) Close() error {
	var err error
	c.close.Do(func() {
		c.closed.Store(true)
		err = c.repl.Close()
		close(c.done)
		c.wg.Wait()
		if c.cfg.SnapshotPath != "" {
			err = errors.Join(err, c.writeSnapshot())
		}
		c.resident.Store(0)
		c.log.Info().Msg("closed")
	})
	return err
}
