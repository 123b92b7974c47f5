package store

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/evict"
	"github.com/bcache-go/bcache/lww"
)

// Defaults of [Config].
const (
	DefaultShards     = 256
	DefaultDigestBits = lww.DefaultDigestBits
)

// ErrConfig is returned (wrapped) by [New] for an invalid [Config].
var ErrConfig = errors.New("store: invalid config")

// ErrSealed is returned (wrapped) by [Store.Write] once [Store.Seal] has
// been called.
var ErrSealed = errors.New("store: sealed")

// Config shapes a [Store]. The zero Config is valid: 256 shards over a
// 16-bit digest, no bounds.
type Config struct {
	// Shards is the number of shards, 1, 16 or 256 (a power of the digest
	// fan-out, so that each shard holds a subtree of the digest). 0 selects
	// DefaultShards.
	Shards int
	// DigestBits is the leaf-index width of the whole store's digest; every
	// replica of a cluster must agree on it. 0 selects DefaultDigestBits.
	// Each shard's own tree has DigestBits minus log2(Shards) bits, at
	// least crdt.MinTreeBits.
	DigestBits int
	// Horizon is how long dead records are kept at most before they are
	// collected (package lww); 0 selects lww's default. MaxClockDrift is
	// how far the members' clocks may differ: a watermark restored from a
	// snapshot is lowered to now - MaxClockDrift at most; 0 selects
	// crdt.DefaultMaxClockDrift.
	Horizon, MaxClockDrift time.Duration
	// MaxClockSkew is how far the members' clocks are expected to differ
	// (bcache's Config.MaxClockSkew): past MaxDead, Collect takes the
	// values that expired less than this long ago last, since members
	// whose clocks are behind may still serve them.
	MaxClockSkew time.Duration
	// MaxKeys and MaxBytes bound the resident values (count, and key plus
	// value bytes); past them values are evicted, their versions kept. 0
	// means unbounded. MaxKeys is at most MaxBoundedKeys, which also bounds
	// a store bounded in bytes alone.
	MaxKeys  int
	MaxBytes int64
	// MaxValueSize is the largest value this member holds. A record
	// received or restored with a larger value (from a member with a
	// higher limit, or a snapshot written before the limit was lowered) is
	// kept as an evicted version: a miss here, but it still shadows older
	// writes and matches the peer's digest, so nothing is sent again and
	// the other records of its frame are applied. 0 means no limit of its
	// own (the wire's hard limit). It is never above MaxBytes: a value
	// that can never be held is kept as its version alone, too.
	MaxValueSize int
	// MaxDead bounds the dead records held (tombstones and values past
	// their expiry that the rules of package lww do not let Collect take
	// yet; not tombstones stamped after now, which it cannot take): past
	// it, Collect takes the oldest of them at once (lww rule 7).
	// 0 means unbounded.
	MaxDead int
	// MaxDeadBytes bounds the bytes of the keys of those dead records, as
	// MaxDead bounds their number: a peer's keys may be long (up to the
	// wire's limit, whatever this member's own), and a tombstone holds its
	// key whole. Past it, Collect takes the oldest at once, as past
	// MaxDead, until both hold. 0 means unbounded.
	MaxDeadBytes int64
	// Founder says the member was started with no peers to join: while it
	// is alone it stands for the whole cluster, and collects what has been
	// dead for the horizon, but nothing early until it has synced with a
	// peer (see Store.Collect).
	Founder bool
}

// Store is a member's replicated state: the records of every key, sharded,
// with a digest of the whole and a lock-free index of the resident values
// for readers. It is safe for concurrent use. It starts no goroutine, does
// no I/O except in the snapshot functions, and reads no clock: time comes
// in as an argument.
type Store struct {
	shardBits  int
	digestBits int
	shards     []shard
	// policy is the eviction ring of resident items, nil when the store is
	// unbounded. Its lock nests inside a shard's, never the other way.
	policy  *evict.Policy[*item]
	evictMu sync.Mutex
	// pendingKeys and pendingBytes are the victims chosen and not dropped
	// yet (see enforceBounds), added to under evictMu; victims are those
	// victims, with the size each counts for, under evictMu.
	pendingKeys, pendingBytes atomic.Int64
	victims                   []pendingVictim
	maxKeys                   int64
	maxBytes                  int64
	maxValue                  int
	maxDead                   int
	maxDeadBytes              int64
	resident                  atomic.Int64 // resident values
	bytes                     atomic.Int64 // their key and value bytes
	sealed                    atomic.Bool
	founder                   atomic.Bool
	drift                     int64        // MaxClockDrift
	skew                      int64        // MaxClockSkew
	seed                      maphash.Seed // of the policy's hash: this store's own
	// everSynced is set by the first MarkSynced: the member has completed
	// an exchange with a peer since it started.
	everSynced atomic.Bool
	marks      offeredMarks // peers' watermarks offered, not adopted yet (marks.go)
	// collecting is held by a collection (Collect) from its start to its
	// end: a shard's walk is in steps, and the counts of dead records a
	// map keeps for MaxDead are the walk's under way (lww.Map.GCStep).
	collecting sync.Mutex
	stats      counters
	reads      readCounts // Get's
	_          [64]byte   // the last stripe's counts off the line of watcher and own, read by every write
	// watcher is called with every change to the values (see Watch);
	// own holds this member's node ids, from its writes and restores.
	watcher atomic.Pointer[func(*Event)]
	own     ownIDs
	// overtaken, if set, says a write's stamp is below a cut reported
	// since (see Overtaken); restamp gives the new stamp.
	overtaken func(crdt.Timestamp) bool
	restamp   func() crdt.Timestamp
	// self is this process's clock's node id, and started, if set, gives
	// this process's start on the clock of the peers it heard from;
	// again stamps what it keeps (see KeepAnswered).
	self    crdt.NodeID
	started func() int64
	again   func() crdt.Timestamp
	// beforeDrop, if set (tests), is called with a victim's key once it
	// is chosen and counted pending, before its shard is locked to drop
	// it, with no lock held.
	beforeDrop func(key string)
	// broken, if set (tests), breaks one of the store's rules: a
	// deliberately broken variant that a property must catch.
	broken brokenRule
}

// brokenRule is a rule of the store's that a test breaks (Store.broken),
// to show that a property catches its breach.
type brokenRule uint8

const (
	intact brokenRule = iota
	// evictUncounted: an eviction leaves the counts of resident values
	// (Len, and their bytes) as they were.
	evictUncounted
	// refillAnyVersion: a refill puts its value on a stub of another
	// version (its time and expiry taken for the stub's).
	refillAnyVersion
	// boundUnreported: the bounds' collections (MaxDead, MaxDeadBytes)
	// take expired values without unpublishing them: no event, counts
	// as they were.
	boundUnreported
)

// Overtaken makes Write stamp a local write again, under its shard's lock
// and before it merges it, when overtaken(its stamp) says a session's cut
// was reported above the stamp since it was made (a writer descheduled
// between its clock and the store: the peer that took the cut, with hashes
// that lacked the write, may collect early past the stamp and reject it),
// and its key holds nothing newer: it gets restamp's stamp. So does a
// write of a key the store holds no record of whose stamp its bucket's
// watermark has passed since (a delete of another key, stamped after it
// and received meanwhile, collected under MaxDead): merged, it was
// rejected, and Write returned nil for a write held nowhere. Applied once,
// with one stamp, the write stays linearizable (a reader cannot see the
// old stamp's value first). Set it before the store takes writes.
func (s *Store) Overtaken(overtaken func(crdt.Timestamp) bool, restamp func() crdt.Timestamp) {
	s.overtaken, s.restamp = overtaken, restamp
}

// KeepAnswered makes Apply keep a live value written by this process
// (its clock's node id self) that a peer's answer (package lww, rule 3)
// would replace, when the answer's watermark is below started(): the
// process's start, on the clock of the peers it has heard from, less
// the clocks' error. The record whose collection raised that watermark
// was then written before this process started, so before the value:
// the value is refused only because this process's clock was behind
// (a restart under the same name with the clock stepped back past
// MaxClockSkew and no clock floor kept: its new clock starts below the
// cut its peers hold of its last life, and collect under). The value is
// written again with restamp's stamp, past the answer, as Write does
// for a write overtaken (counted in Stats.Restamped, reported to the
// watcher as a write here), and the answer is taken as stale;
// anti-entropy carries the new stamp to the peers. A value evicted
// before the answer came is not held, and is lost. The rewrite is in no
// write log: bcache sets this only for a member without files. Set it
// before the store takes records from peers.
func (s *Store) KeepAnswered(self crdt.NodeID, started func() int64, restamp func() crdt.Timestamp) {
	s.self, s.started, s.again = self, started, restamp
}

// answeredOwn returns the write again of the value at holds, when rec is
// an answer that KeepAnswered says must not replace it. Called with at's
// shard locked.
func (s *Store) answeredOwn(at *lww.Entry, rec *crdt.Record, now int64) (crdt.Record, bool) {
	if s.started == nil || !rec.Tombstone || rec.Time.Node != 0 || at == nil || !at.HoldsValue() {
		return crdt.Record{}, false
	}
	// The answer's watermark is the timestamp just below it (lww's
	// above): at the wall before, its last counter, for an answer at
	// counter 0. Its wall taken for the watermark's, an answer over a
	// mark at the last counter of the nanosecond before the start (an
	// adopted mark at its ceiling) deleted the value (found by review).
	mark := rec.Time.Wall
	if rec.Time.Logical == 0 {
		mark = crdt.SubSat(mark, 1)
	}
	if t := at.Time(); t.Node != s.self || !t.Less(rec.Time) || mark >= s.started() {
		return crdt.Record{}, false
	}
	again := at.Record()
	if again.Expires != 0 && now >= again.Expires {
		return crdt.Record{}, false // dead by now in any case
	}
	again.Value = bytes.Clone(again.Value)
	if again.Value == nil {
		again.Value = []byte{}
	}
	again.Time = s.again()
	return again, true
}

type counters struct {
	evictions, expirations, oversized, byBound, restamped atomic.Uint64
	marksAdopted                                          atomic.Uint64
}

// New returns an empty store shaped by cfg.
func New(cfg Config) (*Store, error) {
	if cfg.Shards == 0 {
		cfg.Shards = DefaultShards
	}
	if cfg.DigestBits == 0 {
		cfg.DigestBits = DefaultDigestBits
	}
	if cfg.MaxClockDrift == 0 {
		cfg.MaxClockDrift = crdt.DefaultMaxClockDrift
	}
	shardBits := 0
	switch cfg.Shards {
	case 1, 16, 256:
		for 1<<shardBits < cfg.Shards {
			shardBits += 4
		}
	default:
		return nil, fmt.Errorf("%w: Shards %d, want 1, 16 or 256", ErrConfig, cfg.Shards)
	}
	if err := crdt.CheckTreeBits(cfg.DigestBits); err != nil { // past 24 bits the leaves' count wrapped (the transport refuses them too)
		return nil, fmt.Errorf("%w: DigestBits: %v", ErrConfig, err)
	}
	if cfg.DigestBits-shardBits < crdt.MinTreeBits {
		// lww.Config takes 0 bits for its default: the shards' maps had
		// 16-bit trees under a digest that read their leaf 0 alone.
		return nil, fmt.Errorf("%w: DigestBits %d with %d shards leaves each shard's tree %d bits, want at least %d",
			ErrConfig, cfg.DigestBits, cfg.Shards, cfg.DigestBits-shardBits, crdt.MinTreeBits)
	}
	if cfg.MaxKeys < 0 || cfg.MaxBytes < 0 || cfg.MaxValueSize < 0 || cfg.MaxDead < 0 || cfg.MaxDeadBytes < 0 {
		return nil, fmt.Errorf("%w: negative MaxKeys %d, MaxBytes %d, MaxValueSize %d, MaxDead %d or MaxDeadBytes %d",
			ErrConfig, cfg.MaxKeys, cfg.MaxBytes, cfg.MaxValueSize, cfg.MaxDead, cfg.MaxDeadBytes)
	}
	if cfg.MaxKeys > MaxBoundedKeys {
		return nil, fmt.Errorf("%w: MaxKeys %d, at most %d", ErrConfig, cfg.MaxKeys, MaxBoundedKeys)
	}

	s := &Store{shardBits: shardBits, digestBits: cfg.DigestBits, shards: make([]shard, cfg.Shards),
		maxKeys: int64(cfg.MaxKeys), maxBytes: cfg.MaxBytes, maxValue: valueLimit(cfg), maxDead: cfg.MaxDead,
		maxDeadBytes: cfg.MaxDeadBytes,
		seed:         maphash.MakeSeed(), drift: int64(cfg.MaxClockDrift), skew: int64(cfg.MaxClockSkew)}
	s.founder.Store(cfg.Founder)
	for i := range s.shards {
		sh := &s.shards[i]
		m, err := lww.New(lww.Config{
			DigestBits: cfg.DigestBits - shardBits, PrefixBits: shardBits, Horizon: cfg.Horizon, Alloc: newEntry,
			Finder: &sh.find, Dropped: func(e *lww.Entry) { sh.dropped = append(sh.dropped, itemOf(e)) },
		})
		if err != nil {
			return nil, fmt.Errorf("%w: DigestBits %d with %d shards: %w", ErrConfig, cfg.DigestBits, cfg.Shards, err)
		}
		sh.m, sh.id = m, uint8(i)
	}
	if cfg.MaxKeys > 0 || cfg.MaxBytes > 0 {
		s.policy = new(evict.Policy[*item])
		s.policy.Init(cfg.MaxKeys)
	}
	if cfg.MaxKeys == 0 && cfg.MaxBytes > 0 {
		// Bounded in bytes alone: in keys too, by what the policy can
		// place (tiny values under a large MaxBytes would pass it).
		s.maxKeys = MaxBoundedKeys
	}
	return s, nil
}

// MaxBoundedKeys is the most values a bounded store holds (MaxKeys, and
// the bound in keys of one bounded in bytes alone): an entry's place in
// the eviction policy is a 32-bit word holding its index in a queue that
// may grow to twice its entries before it is compacted, with two bits to
// spare (past 2^29 places it wrapped negative, and the policy would index
// with it: found by review). At 2^27, about 134 million values, the
// queues stay under a quarter of that.
const MaxBoundedKeys = 1 << 27

// shardOf returns the shard of a key hash: its top bits.
func (s *Store) shardOf(hash uint64) int {
	if s.shardBits == 0 {
		return 0
	}
	return int(hash >> (64 - s.shardBits))
}

// policyHash is the hash the eviction policy counts a key by (its sketch
// and ghost): seeded at random per store, so that nobody can choose keys
// that collide in them.
func (s *Store) policyHash(key string) uint32 { return uint32(maphash.String(s.seed, key)) }

// locate returns key's shard and the policy's hash of it.
func (s *Store) locate(key string) (*shard, uint32) {
	return &s.shards[s.shardOf(crdt.HashKey(key))], s.policyHash(key)
}

// Get returns the value of key if the store holds a live value for it at
// the time now returns: not deleted, not expired, not evicted. now is read
// only for a value with an expiry (reading a clock costs as much as the
// rest of a hit). The returned slice is shared: do not modify it. Get
// takes no lock.
func (s *Store) Get(key string, now func() int64) ([]byte, bool) {
	sh := &s.shards[s.shardOf(crdt.HashKey(key))]
	e := sh.find.Find(key)
	if e == nil || !e.HoldsValue() { // none, a tombstone or an evicted stub
		s.reads.stripe().misses.Add(1)
		return nil, false
	}
	it := itemOf(e) // every entry holding a value is an item
	value, expires := it.load()
	if expires != 0 && now() >= expires {
		s.reads.stripe().misses.Add(1)
		return nil, false
	}
	evict.Touch(&it.use)
	s.reads.stripe().hits.Add(1)
	return value, true
}

// Stub reports whether the store holds key as an evicted stub that a
// value of its version may be put back on (Refill) at the time now
// returns: not past its expiry, which Refill refuses (now is read only
// for a stub with an expiry). Without a lock.
func (s *Store) Stub(key string, now func() int64) bool {
	e := s.shards[s.shardOf(crdt.HashKey(key))].find.Find(key)
	if e == nil || !e.Refillable() {
		return false
	}
	_, _, expires := e.LoadParts()
	return expires == 0 || now() < expires
}

// HasRoom reports whether the store has room for one more value (always,
// with no bounds): fewer values than MaxKeys, and, under MaxBytes, room
// for a value of the average size of those held. (Bytes below MaxBytes
// alone held after every eviction, by less than a value: a member full
// of values asked its peers for values it could only drop: found by
// review.)
func (s *Store) HasRoom() bool {
	n := s.resident.Load()
	if s.maxKeys != 0 && n >= s.maxKeys {
		return false
	}
	if s.maxBytes == 0 {
		return true
	}
	b := s.bytes.Load()
	return b+b/max(n, 1) < s.maxBytes
}

// Fits reports whether rec's value fits beside the values the store
// holds without evicting one (always, with no bounds).
func (s *Store) Fits(rec crdt.Record) bool { return s.RoomFor(int64(len(rec.Key) + len(rec.Value))) }

// RoomFor reports whether a value of n key and value bytes fits beside the
// values the store holds without evicting one (always, with no bounds).
func (s *Store) RoomFor(n int64) bool {
	return (s.maxKeys == 0 || s.resident.Load() < s.maxKeys) &&
		(s.maxBytes == 0 || s.bytes.Load()+n <= s.maxBytes)
}

// Missed counts a read that found no value, made without Get (a read
// that knew the key's value is dead without looking it up).
func (s *Store) Missed() { s.reads.stripe().misses.Add(1) }

// Refuses reports whether a record of key stamped t is at or below its
// bucket's watermark (lww.Map.Refuses): written that long ago, it is dead
// or lost to this member.
func (s *Store) Refuses(key string, t crdt.Timestamp) bool {
	sh := &s.shards[s.shardOf(crdt.HashKey(key))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m.Refuses(key, t)
}

// Gone returns, for a key this store holds no record of whose bucket has
// a watermark, the answer Tombstone gives (a tombstone of node 0 just
// above the watermark): every write of key at or below it is dead or lost
// here, and would be refused and answered so (package lww, rules 1 and
// 3). False if the store holds a record of key, or nothing was collected
// from its bucket.
func (s *Store) Gone(key string) (crdt.Record, bool) {
	sh := &s.shards[s.shardOf(crdt.HashKey(key))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	// Refuses of the least timestamp: no record of key held, and a
	// watermark, which is above it.
	if !sh.m.Refuses(key, crdt.Timestamp{Wall: math.MinInt64}) {
		return crdt.Record{}, false
	}
	return sh.m.Tombstone(key), true
}

// Lookup returns the record the store holds for key, whatever its state
// (tombstone, expired, evicted). Its Value is shared: do not modify it.
func (s *Store) Lookup(key string) (crdt.Record, bool) {
	sh := &s.shards[s.shardOf(crdt.HashKey(key))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m.Lookup(key)
}

// Len returns the number of resident values: live keys, not counting
// deleted or evicted ones. Values past their TTL count until they are
// collected.
func (s *Store) Len() int { return int(s.resident.Load()) }

// Write applies a record written locally and returns it as stored, with a
// key string that the store owns (the caller's may share a larger buffer):
// hand that one to replication. rec.Value must not be modified afterwards.
// After [Store.Seal], Write changes nothing and returns an error wrapping
// ErrSealed: a write either returns nil and is in every snapshot saved
// after Seal, or fails.
func (s *Store) Write(rec crdt.Record) (crdt.Record, error) {
	rec, _, err := s.write(rec, nil)
	return rec, err
}

// FillWatch notes the writes of one key applied while a fill of it runs
// (Store.WatchFill): a fill reads the source behind the cache, and must
// not store what it read over what was written meanwhile.
type FillWatch struct {
	sh   *shard
	key  string
	w    *fillWatch
	seen uint64 // w.applied when the watch began
}

// fillWatch counts the records of a key being filled that its shard
// applied, for every fill of the key under way (usually one: a member
// runs one fill of a key at a time).
type fillWatch struct {
	applied uint64
	fills   int
}

// WatchFill starts to note the records of key applied from now on, made
// here or received, whatever their stamps: call it before the fill takes
// its stamp, and EndFill when it is done.
func (s *Store) WatchFill(key string) FillWatch {
	sh := &s.shards[s.shardOf(crdt.HashKey(key))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.fills == nil {
		sh.fills = make(map[string]*fillWatch)
	}
	w := sh.fills[key]
	if w == nil {
		w = &fillWatch{}
		sh.fills[key] = w
	}
	w.fills++
	return FillWatch{sh: sh, key: key, w: w, seen: w.applied}
}

// Filling reports whether a fill of key is under way here: between its
// WatchFill and its EndFill.
func (s *Store) Filling(key string) bool {
	sh := &s.shards[s.shardOf(crdt.HashKey(key))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.fills[key] != nil
}

// Changed reports whether a record of the key f watches was applied
// since the watch began, made here or received (WriteIfUnchanged's first
// test alone).
func (s *Store) Changed(f FillWatch) bool {
	f.sh.mu.Lock()
	defer f.sh.mu.Unlock()
	return f.w.applied != f.seen
}

// EndFill ends a watch WatchFill began.
func (s *Store) EndFill(f FillWatch) {
	f.sh.mu.Lock()
	defer f.sh.mu.Unlock()
	if f.w.fills--; f.w.fills == 0 {
		delete(f.sh.fills, f.key)
	}
}

// WriteIfUnchanged writes rec, a fill's value of the key f watches,
// stamped when the fill began (after WatchFill), as Write does, unless
// the key changed meanwhile: a record of it was applied since the watch
// began (a write or a delete made here, or received from a peer, also one
// stamped by a clock behind, and also one collected since), or the store
// holds a record of it stamped at or after rec (a peer's clock ahead), or
// holds none and would refuse rec (its bucket's watermark passed it: a
// delete of another key collected may have raised it). It reports
// whether it wrote. Stamped when it began, the fill's value also loses,
// on every member, to every write made after it began by a clock not
// behind, however late it arrives (stamped when the filler returned, it
// beat them; and a peer's delete stamped by a clock behind and received
// while the fill ran lost to it: found by review).
func (s *Store) WriteIfUnchanged(rec crdt.Record, f FillWatch) (crdt.Record, bool, error) {
	return s.write(rec, &f)
}

// changed reports whether the key of f changed while its fill ran, as
// WriteIfUnchanged says, rec being the fill's record and at the key's
// entry (nil: none). Called with sh.mu held.
func (sh *shard) changed(at *lww.Entry, rec *crdt.Record, f *FillWatch) bool {
	switch {
	case f.w.applied != f.seen:
		return true
	case at == nil:
		return sh.m.Refuses(rec.Key, rec.Time)
	}
	return !at.Time().Less(rec.Time)
}

func (s *Store) write(rec crdt.Record, f *FillWatch) (crdt.Record, bool, error) {
	sh, ih := s.locate(rec.Key)
	sh.mu.Lock()
	if s.sealed.Load() {
		sh.mu.Unlock()
		return rec, false, ErrSealed
	}
	// The key the store keeps must be its own (the caller's may share a
	// larger buffer): the map's copy of a key it holds, the item's of a
	// new key short enough, else a copy.
	at := sh.m.Entry(rec.Key)
	if f != nil && (f.key != rec.Key || sh.changed(at, &rec, f)) {
		sh.mu.Unlock()
		return rec, false, nil
	}
	switch {
	case at != nil:
		rec.Key = at.Key()
	case rec.Tombstone || rec.Evicted || len(rec.Key) > inlineKey || len(rec.Value) > lww.MaxValueLen:
		rec.Key = strings.Clone(rec.Key) // a plain entry's, or a long key's
	}
	stamp := rec.Time
	if f != nil {
		// A fill is stamped when its filler began, to lose to what is
		// written after: it is stamped again only once a cut passed it
		// by the stable margin (MaxClockSkew). Peers' stable bounds,
		// below which alone they collect early and reject, lie that far
		// behind the cuts they took; stamped again at every cut (twice
		// a second), most fills beat the deletes made while their
		// fillers ran (found by review).
		stamp.Wall = crdt.AddSat(stamp.Wall, s.skew)
	}
	overtaken := s.overtaken != nil && s.overtaken(stamp) && (at == nil || at.Time().Less(rec.Time))
	// Or a watermark passed it: a delete of another key of its bucket,
	// stamped after it and received while the writer was on its way,
	// collected under MaxDead (lww rule 7). Merged, it was rejected, and
	// Write returned nil for a write that was nowhere (found by review).
	// A fill's (f) was refused by changed already.
	refused := f == nil && at == nil && s.restamp != nil && sh.m.Refuses(rec.Key, rec.Time)
	if overtaken || refused {
		rec.Time = s.restamp()
		s.stats.restamped.Add(1)
	}
	if !s.own.newest(rec.Time.Node) {
		s.own.add(rec.Time.Node)
	}
	ch := sh.apply(rec, ih, merge{}, rec.Time.Wall, at)
	if ch.added != nil {
		rec.Key = ch.added.Key() // held in the item
	}
	s.track(ch, false)
	s.account(ch)
	if watch := s.watching(); watch != nil && ch.outcome == crdt.Applied {
		sh.applied(watch, &rec, appliedEvent{here: true})
	}
	sh.mu.Unlock()
	s.settle(ch)
	return rec, true, nil
}

// Seal makes every later Write fail with ErrSealed. A write that returned
// nil before is in the shards, so a snapshot saved after Seal holds every
// write acknowledged. Received records are still applied.
func (s *Store) Seal() { s.sealed.Store(true) }

// Apply merges a record received from a peer, as a delta or an
// anti-entropy repair: it implements transport.Replica. A value over
// MaxValueSize is kept as an evicted version (see Config.MaxValueSize).
func (s *Store) Apply(rec crdt.Record, delta bool, now int64) crdt.Outcome {
	return s.apply(rec, delta, false, now)
}

// Refill puts the value of rec, a peer's answer to an ask for its key,
// back on the key's evicted stub if the stub is of rec's very version and
// the value has not expired at now, within the store's bounds, and says
// so (crdt.Applied; else crdt.Stale, nothing changed): Apply takes no
// record of a version held, and a member that evicted a key ran the
// filler again for it, though the owner had answered with the value
// (found by review). Reported to the watcher as a set received
// (Event.Refill), whoever wrote the value, and tracked as the readers'
// demand.
func (s *Store) Refill(rec crdt.Record, now int64) crdt.Outcome {
	if rec.Expired(now) { // no one's demand: served by none
		return crdt.Stale
	}
	return s.apply(rec, false, true, now)
}

// Oversized reports whether rec is a value over the store's bounds
// (MaxValueSize, MaxBytes), which Apply keeps as an evicted version.
func (s *Store) Oversized(rec crdt.Record) bool {
	return !rec.Tombstone && !rec.Evicted && s.oversized(rec.Key, rec.Value)
}

func (s *Store) oversized(key string, value []byte) bool {
	return s.maxValue > 0 && len(value) > s.maxValue || s.maxBytes > 0 && int64(len(key)+len(value)) > s.maxBytes
}

func (s *Store) apply(rec crdt.Record, delta, refill bool, now int64) crdt.Outcome {
	oversized := false
	holds := !rec.Tombstone && !rec.Evicted // a key with a value, empty or not, to count in MaxBytes
	if !holds {
		rec.Value = nil // none is held: not reported to the watcher either
	}
	if s.maxValue > 0 && len(rec.Value) > s.maxValue || holds && s.oversized(rec.Key, rec.Value) {
		rec.Value, rec.Evicted, oversized = nil, true, true
	}
	sh, ih := s.locate(rec.Key)
	sh.mu.Lock()
	at := sh.m.Entry(rec.Key)
	if again, ok := s.answeredOwn(at, &rec, now); ok {
		ch := sh.apply(again, ih, merge{}, again.Time.Wall, at)
		s.track(ch, false)
		s.account(ch)
		if watch := s.watching(); watch != nil && ch.outcome == crdt.Applied {
			sh.applied(watch, &again, appliedEvent{here: true}) // a write of this member's, as Write reports it
		}
		sh.mu.Unlock()
		s.settle(ch)
		s.stats.restamped.Add(1)
		return crdt.Stale // this member holds a newer write of the key
	}
	if refill && s.broken == refillAnyVersion && at != nil && !at.HoldsValue() && !at.Tombstone() {
		held := at.Record()
		rec.Time, rec.Expires = held.Time, held.Expires
	}
	ch := sh.apply(rec, ih, merge{delta: delta, refill: refill, prior: true, tooLong: oversized}, now, at)
	// The watcher is read once the change is made, as Write reads it:
	// read before, a watcher set in between (a Subscribe) missed a change
	// that no reader could see yet when it was set (found by review).
	watch := s.watching()
	if oversized && ch.outcome == crdt.Applied { // a version kept: not a duplicate or a stale copy (found by review)
		s.stats.oversized.Add(1)
	}
	// A refill is this member's readers' demand, not a peer's write: the
	// policy took it for one, its first victim at the bound, and it was
	// evicted again at once, the next read asking the owner again (found
	// by review).
	s.track(ch, !refill)
	s.account(ch)
	// A peer's answer (package lww, rule 3) over a delete changes nothing a
	// reader sees: reported as unseen. Two members bouncing a dead key
	// between them (one collects it, the other sends it back before it
	// does) reported a drop of it to every subscriber twice a second
	// (found by review). Reported all the same: it may settle a GetAfter
	// waiting for a write below it, which, with no event, was not woken
	// (found by review: TestGetAfterWakesWhenAnAnswerBuriesATombstoneHere).
	if answer := rec.Tombstone && rec.Time.Node == 0; watch != nil && ch.outcome == crdt.Applied {
		// Superseded: a peer's write over one of this member's, not one of
		// this member's own coming back (a write of an earlier process,
		// newer than the snapshot this one restored, found by review).
		// An answer for a key with no record here (anti-entropy passes
		// answers on to every member) drops nothing: reported as unseen
		// (it was a drop, to every subscriber, of a key this member never
		// held: found by review).
		sh.applied(watch, &rec, appliedEvent{superseded: s.own.has(ch.prior.Node) && !s.own.has(rec.Time.Node), oversized: oversized, refill: refill, unseen: answer && (at == nil || ch.priorDead)})
	}
	sh.mu.Unlock()
	s.settle(ch)
	return ch.outcome
}

// valueLimit is the largest value the store holds: MaxValueSize, and no
// more than MaxBytes (a value that can never be held, received, evicted
// nearly every other value before itself; found by review).
func valueLimit(cfg Config) int {
	if cfg.MaxBytes > 0 && (cfg.MaxValueSize == 0 || int64(cfg.MaxValueSize) > cfg.MaxBytes) {
		return int(min(cfg.MaxBytes, math.MaxInt32))
	}
	return cfg.MaxValueSize
}

// Tombstone returns the answer to a record of key that Apply rejected as
// below its bucket's watermark (package lww, rule 3): a tombstone just
// above the watermark, for the sender to merge. It implements
// transport.Replica.
func (s *Store) Tombstone(key string) crdt.Record {
	sh := &s.shards[s.shardOf(crdt.HashKey(key))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m.Tombstone(key)
}

// Evict drops the value of key to free memory, keeping its version, and
// reports whether there was a resident value to drop. The store evicts by
// itself past its bounds; this is for tools and tests.
func (s *Store) Evict(key string) bool {
	sh := &s.shards[s.shardOf(crdt.HashKey(key))]
	sh.mu.Lock()
	it := sh.resident(key)
	var ch change
	evicted := false
	if it != nil {
		ch, evicted = sh.evict(it)
		s.track(ch, false)
		if evicted && s.broken != evictUncounted {
			s.account(ch)
		}
		s.evicted(sh, it, evicted)
	}
	sh.mu.Unlock()
	if evicted {
		s.stats.evictions.Add(1)
	}
	return evicted
}

// evicted reports an eviction of it, if done, to the watcher. Called with
// it's shard, sh, locked.
func (s *Store) evicted(sh *shard, it *item, done bool) {
	if watch := s.watching(); watch != nil && done {
		r := it.Record()
		sh.report(watch, Event{Kind: EventEvict, Here: true, Record: crdt.Record{Key: r.Key, Time: r.Time, Evicted: true}})
	}
}

// Range calls fn with every record held, shard by shard, until fn returns
// false. It holds one shard's lock at a time while it copies that shard's
// records, and calls fn without any lock held: fn may call the store.
// Values are shared: do not modify them.
func (s *Store) Range(fn func(crdt.Record) bool) {
	var recs []crdt.Record
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		recs = recs[:0]
		sh.m.Range(func(r crdt.Record) bool {
			recs = append(recs, r)
			return true
		})
		sh.mu.Unlock()
		for _, r := range recs {
			if !fn(r) {
				return
			}
		}
	}
}
