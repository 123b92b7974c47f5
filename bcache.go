package bcache

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/journal"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/internal/wallclock"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/gossip"
)

// Member is a live member of the cluster.
type Member struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
}

// Cache is one member of a replicated cache. It is safe for concurrent use.
//
// The Cache owns the goroutines (replication, collection, snapshots) and
// the clock; the records live in a store (package internal/store) that
// does neither, so that the property tests run the same store under a
// simulated network.
type Cache struct {
	cfg      Config
	log      zerolog.Logger
	phys     func() int64
	clock    *crdt.HLC
	store    *store.Store
	repl     *gossip.Replicator
	known    []transport.Known  // the members an earlier run counted (members.go), for New
	fills    singleflight.Group // fills run here, per key
	filling  sync.Map           // key -> store.FillWatch of the fill of it under way here (see supersededFill)
	forwards singleflight.Group // GetOrFill's per key: one ask of the owner at a time

	deltaLag  lagHistogram // records applied from deltas, by lag
	repairLag lagHistogram // and from anti-entropy repairs
	snapMu    sync.Mutex   // one snapshot written at a time
	// logMark is the write log's byte count when the last snapshot began
	// (the bytes after it are the log's length; before this process's
	// first, less the segments found on disk at start), snapSize that
	// snapshot's size (or the restored one's): see snapshotIfLogLong.
	logMark, snapSize atomic.Int64
	logSnapWait       time.Duration // after failed ones (snapshotIfLogLong's goroutine alone)
	logFloor          int64         // logSnapshotFloor as New found it: tests change the variable, a Cache of an earlier one still running
	logSnapRetry      time.Time
	journal           *journal.Log // the write log (Config.Sync), nil if none
	// logFrom is the members file's log_from as last written or read
	// with the snapshot restored (0: none): a log started with no
	// segment left is numbered from it, and a snapshot written with no
	// log records it again (snapMu, or New before the member runs).
	logFrom uint64
	// markLog says New must write the members file again, saying a log
	// runs (restore sets it: see there).
	markLog bool
	// logCovered says the last snapshot's members file names the segment
	// started before it: the log's older segments are covered (snapMu).
	logCovered bool
	// kf is the members file as last written or read (members.go), or,
	// after a reset whose rewrite of it failed, as it should be (restore:
	// the one on disk removed);
	// snapWritten names the snapshot on disk by its time (0: none, as far
	// as this member knows), lastWritten is the latest time a snapshot of
	// this path was or may have been written with, and unsure the times of
	// snapshots whose write failed, which may be on disk all the same
	// (snapMu, or New before the member runs).
	kf                       knownFile
	snapWritten, lastWritten int64
	unsure                   []int64
	unlock                   func() error // releases the SnapshotPath's lock, nil if none
	lockHeld                 os.FileInfo  // the lock file held (see ourFiles), nil if none
	// closeSnapshot says the snapshot Close wrote succeeded: it holds
	// every write applied before the store was sealed, also one whose
	// append to the closed write log was refused.
	closeSnapshot atomic.Bool
	oversized     uint64 // Stats.Oversized when last logged; collect's own
	// The lineage (founder.go): solo says this member's state is of a
	// lineage that met no other member (a lookup that finds only it may
	// make it a founder), founded that the lineage founded its cluster
	// (as restored); markOnDisk is the lineage mark on disk (0: none);
	// founderChanged is signalled when the member becomes a founder or
	// meets another member, to write that down (keepFounderMark).
	solo, founded  atomic.Bool
	markOnDisk     atomic.Int32
	markMu         sync.Mutex // one write of the mark at a time (syncMark)
	given          bool       // the lineage mark was an operator's (markGiven)
	founderChanged chan struct{}
	drawnName      bool        // New drew the NodeName
	drops          chan string // the keys for OnDrop (reportDrops)

	feed      feed          // the subscriptions
	pullAfter time.Duration // PullAfter; tests lengthen it
	pulls     recentPulls   // when each key was last pulled (GetAfter)
	stubs     stubAsks      // the keys held as stubs to ask peers the values of (see askForStubs)
	gone      goneMarks     // what peers said of keys pulled that they collected (GetAfter)
	fetchOnly bool          // GetAfter pulls without an exchange; for tests
	marks     marksAsk      // the ask for a peer's watermarks (marks.go)
	noMarks   atomic.Bool   // no ask for them; for tests

	closed  atomic.Bool
	serving atomic.Bool // New is done: peers' calls are answered
	// left is closed once Close has closed the replication: an answer
	// to a peer's call sent after it goes nowhere (see serveCall).
	left chan struct{}
	// beforeLeave, if set, is called by Close between cancelling the
	// fills and leaving the cluster; for tests.
	beforeLeave func()
	close       sync.Once
	closeErr    error // what Close returns, set once by the first call
	done        chan struct{}
	// life ends at Close (end): the fills running then are cancelled.
	life context.Context
	end  context.CancelFunc
	// fillGate is held (read) by a fill from its check of life to its
	// filler's start, and passed by Close after end: see fill.
	fillGate sync.RWMutex
	wg       sync.WaitGroup
	// floor is the clock floor on disk (clockfloor.go; 0: none),
	// floorWant the cut it is asked to rise to, and floorWanted wakes
	// keepFloor.
	floor, floorWant atomic.Int64
	floorWanted      chan struct{}
	floorMu          sync.Mutex // held by a write of the floor
	stats            counters
}

// gossipError says err of gossip's Start or Config.Check as New's: a
// rule gossip owns (an address's form) as ErrConfig, naming Config's
// fields: gossip's Name is NodeName here (a PacketSize too small for a
// long NodeName spoke of a "Name" Config has none of: found by review,
// TestPacketSizeTooSmallForTheNodeNameNamesNodeName).
func gossipError(err error) error {
	if errors.Is(err, gossip.ErrConfig) {
		msg := strings.TrimPrefix(err.Error(), gossip.ErrConfig.Error()+": ")
		msg = strings.ReplaceAll(msg, ") and Name (", ") and NodeName (")
		return fmt.Errorf("bcache: new: %w: %s", ErrConfig, msg)
	}
	return fmt.Errorf("bcache: new: %w", err)
}

// New starts a member: it listens on BindAddr, joins Peers in the
// background, and is ready for reads and writes when New returns.
func New(cfg Config) (*Cache, error) {
	cfg = cfg.clone()
	// New takes cfg.Network: the Cache's Close shuts it down, and so does
	// a New that fails (gossip.Start, once called, does it itself). A
	// failure before memberlist started left it open, one after shut it
	// down (found by review).
	giveBack := func(err error) (*Cache, error) {
		if cfg.Network != nil {
			if serr := cfg.Network.Shutdown(); serr != nil {
				err = errors.Join(err, fmt.Errorf("bcache: new: shutting down Config.Network: %w", serr))
			}
		}
		return nil, err
	}
	if err := cfg.fill(); err != nil {
		return giveBack(fmt.Errorf("bcache: new: %w", err))
	}
	drawn := cfg.NodeName == ""
	if drawn {
		cfg.NodeName = newNodeName()
	}
	c := &Cache{drawnName: drawn, cfg: cfg, log: cfg.Logger.With().Str("node", cfg.NodeName).Logger(), done: make(chan struct{}), left: make(chan struct{}), pullAfter: PullAfter,
		founderChanged: make(chan struct{}, 1), floorWanted: make(chan struct{}, 1), drops: make(chan string, 1024),
		stubs: stubAsks{keys: make(chan string, stubAskQueue)}}
	c.life, c.end = context.WithCancel(context.Background())
	c.phys = wallclock.New().Now
	if cfg.Clock != nil {
		c.phys = func() int64 { return unixNanoSat(cfg.Clock()) }
	}
	c.clock = crdt.NewHLC(newNodeID(), c.phys, cfg.MaxClockDrift)
	started, startedMono := c.phys(), time.Now() // the second with its monotonic reading
	var err error
	c.store, err = store.New(store.Config{
		Horizon: cfg.TombstoneHorizon, MaxClockDrift: cfg.MaxClockDrift, MaxClockSkew: cfg.MaxClockSkew,
		MaxKeys: cfg.MaxKeys, MaxBytes: cfg.MaxBytes, MaxValueSize: cfg.MaxValueSize, Founder: len(cfg.Peers) == 0 && cfg.PeerSource == nil,
		MaxDead: max(cfg.MaxDeadRecords, 0), MaxDeadBytes: max(cfg.MaxDeadBytes, 0),
	})
	if err != nil { // the fields it takes were checked by fill
		return giveBack(fmt.Errorf("bcache: new: %w: %v", ErrConfig, err))
	}
	// gossip's rules (an address's form, a key's length, the packet's
	// room) are checked before the files are read: a typo was reported
	// only after a restore, which takes seconds for a large snapshot,
	// and had already moved damaged files aside under OnDamage reset.
	gcfg := gossip.Config{
		Name: cfg.NodeName, BindAddr: cfg.BindAddr, AdvertiseAddr: cfg.AdvertiseAddr, Peers: cfg.Peers,
		PeerSource: cfg.PeerSource, Resolver: cfg.Resolver, OnCall: c.serveCall,
		SecretKey: cfg.SecretKey, AcceptKeys: cfg.AcceptKeys, Label: cfg.Label, PacketSize: cfg.PacketSize, Timings: cfg.Timings, Transport: cfg.Network,
		Replica: lagReplica{c.store, &c.deltaLag, &c.repairLag, c.stubArrived}, Clock: c.clock, Logger: cfg.Logger, OnDrop: c.dropped, AfterReceive: c.feed.flush,
		OnFounder:  c.onFounder,
		KeepsState: cfg.SnapshotPath != "" && !drawn,
		Protocol: transport.Config{
			FlushInterval: cfg.FlushInterval, AntiEntropyInterval: cfg.AntiEntropyInterval,
			FailedTimeout: cfg.TombstoneHorizon, StableMargin: cfg.MaxClockSkew,
		},
	}
	filled, err := gcfg.Filled()
	if err != nil {
		return giveBack(gossipError(err))
	}
	// Config() gives the configuration the member runs with, defaults
	// filled in: PacketSize read back as 0 (found by review).
	c.cfg.PacketSize = filled.PacketSize
	c.solo.Store(cfg.SnapshotPath == "") // without files, each start begins a lineage (restore says otherwise)
	if err := c.restore(); err != nil {
		return giveBack(err)
	}
	gcfg.Founder, gcfg.Restored, gcfg.Protocol.Known = c.founded.Load(), !c.solo.Load(), c.known // as restore found them
	if cfg.SnapshotPath != "" {
		if len(cfg.Peers) > 0 || cfg.PeerSource != nil { // one with no peers writes none until a peer reports to it
			c.startFloor()
		}
		gcfg.Protocol.CutCeiling = c.cutCeiling // at the floor kept until keepFloor raises it
	} else {
		c.store.KeepAnswered(c.clock.Node(), c.startedOnPeersClock(started, startedMono), c.clock.Now)
	}
	c.repl, err = gossip.Start(gcfg)
	if err != nil && c.journal != nil { // opened by restore, and used by no one
		if derr := c.journal.Discard(); derr != nil {
			c.log.Warn().Err(derr).Msg("write log: removing the unused segment")
		}
	}
	if err != nil {
		c.release()
	}
	if err != nil {
		return nil, gossipError(err)
	}
	c.store.Overtaken(c.repl.Overtaken, c.clock.Now)
	if c.markLog { // see restore; if this fails (it logs why), the next snapshot's file says so
		c.writeKnown(c.known, c.logFrom, true)
	}
	c.serving.Store(true) // after c.repl is set: peers' calls may use it
	if cfg.OnDrop != nil {
		go c.reportDrops()
	}
	c.every(cfg.GCInterval, c.collect)
	c.wg.Add(1)
	go c.askForStubs()
	if cfg.SnapshotPath != "" && cfg.SnapshotInterval > 0 {
		c.every(cfg.SnapshotInterval, func() {
			if err := c.writeSnapshot(); err != nil {
				c.log.Error().Err(err).Msg("snapshot failed")
			}
		})
	}
	if c.journal != nil {
		c.logFloor = logSnapshotFloor
		c.every(logCheckEvery, c.snapshotIfLogLong)
	}
	if cfg.SnapshotPath != "" {
		c.wg.Add(1)
		go c.keepFounderMark()
		c.wg.Add(1)
		go c.keepFloor()
	}
	c.log.Info().Str("addr", c.repl.Addr()).Strs("peers", cfg.Peers).Msg("started")
	return c, nil
}

// Unix nanoseconds' range as times: UnixNano wraps outside it.
var (
	firstNano = time.Unix(0, math.MinInt64)
	lastNano  = time.Unix(0, math.MaxInt64)
)

// unixNanoSat is t.UnixNano saturated at the ends of the int64 range (the
// years 1677 and 2262): UnixNano wraps there, and a Config.Clock that
// jumped past 2262 read as 1715, serving values centuries past their
// expiry (found by review, TestAClockPastTheStampableTimesDoesNotWrap).
func unixNanoSat(t time.Time) int64 {
	switch {
	case t.Before(firstNano):
		return math.MinInt64
	case t.After(lastNano):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// startedOnPeersClock returns a function that gives this process's start
// (started, on its physical clock; startedMono, the same instant with its
// monotonic reading) on the clock of the peers it has heard from, less
// MaxClockSkew (see store.KeepAnswered): its hybrid clock's lead over
// the time elapsed since the start, which every timestamp received (a
// session's cut) moves past the sender's clock, up to MaxClockDrift, is
// added to it. The time elapsed is the longer of the physical clock's
// and the monotonic clock's: a step of the physical clock back after the
// start read as a lead over it, and moved the start later by the step,
// and the answer of a delete made after the start, by a peer that
// collected it before it reached this member (MaxDeadRecords, or this
// member away past FailedTimeout), was refused, its value written again
// (found by review, TestAnAnswerFromAfterTheStartDeletesAfterAStepBack).
// A step forward after the start only makes the start earlier (fewer
// values kept). For a member without files, which keeps no clock floor.
func (c *Cache) startedOnPeersClock(started int64, startedMono time.Time) func() int64 {
	return store.StartedOnPeersClock(c.clock, started, func() time.Duration { return time.Since(startedMono) }, c.cfg.MaxClockDrift, c.cfg.MaxClockSkew)
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
// It is a copy: changing it changes nothing.
func (c *Cache) Config() Config { return c.cfg.clone() }

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
func (c *Cache) Len() int {
	if c.closed.Load() {
		return 0
	}
	return c.store.Len()
}

// Get returns the value of key, or false if this member holds no live value
// for it (never written, deleted, expired, or evicted here). The returned
// slice is shared: do not modify it. Get takes no lock.
func (c *Cache) Get(key string) ([]byte, bool) {
	if c.closed.Load() {
		return nil, false
	}
	if v, ok := c.store.Get(key, c.phys); ok {
		return v, true
	}
	c.missedStub(key)
	return nil, false
}

// Set writes value under key on every member. ttl 0 means no expiry; the
// expiry is absolute (ttl after now by this member's clock, which its
// reads use) and travels with the write, so every member agrees on it.
// A ttl whose expiry would fall past the largest Unix nanosecond time
// (the year 2262; time.Duration(math.MaxInt64) is a common "forever")
// is no expiry, as ttl 0. The value is copied: the caller may reuse
// its buffer.
func (c *Cache) Set(key string, value []byte, ttl time.Duration) error {
	_, err := c.set(key, value, ttl)
	return err
}

func (c *Cache) set(key string, value []byte, ttl time.Duration) (crdt.Record, error) {
	rec, err := c.record("set", key, value, ttl)
	if err != nil {
		return rec, err
	}
	return c.write("set", rec)
}

// record returns the record a Set of key writes, stamped now, or the
// error the Set returns, naming the operation op ("fill" for a fill: its
// errors named a Set its caller never made, found by review).
func (c *Cache) record(op, key string, value []byte, ttl time.Duration) (crdt.Record, error) {
	if err := c.check(op, key, len(value), ttl); err != nil {
		return crdt.Record{}, err
	}
	// MaxBytes counts keys and values: a pair over it could never be held,
	// and went in, emptying the cache before itself (found by review).
	if n := int64(len(key) + len(value)); c.cfg.MaxBytes > 0 && n > c.cfg.MaxBytes {
		return crdt.Record{}, fmt.Errorf("bcache: %s %q: %w (key and value %d bytes, over MaxBytes %d)", op, clip(key), ErrValueTooLarge, n, c.cfg.MaxBytes)
	}
	now, err := c.stamp(op, key)
	if err != nil {
		return crdt.Record{}, err
	}
	rec := crdt.Record{Key: key, Value: bytes.Clone(value), Time: now}
	if ttl > 0 {
		// The TTL runs on this member's clock, which Get reads: from the
		// stamp's wall it ran from the HLC, which a peer's clock ahead
		// (within MaxClockDrift) or a step back of this one leaves ahead
		// of it, and a value was served here that much past its TTL
		// (found by review).
		rec.Expires = expiry(min(rec.Time.Wall, c.phys()), ttl)
	}
	return rec, nil
}

// expiry is the expiry of a TTL ttl > 0 run from the Unix time from, 0
// (none) where it saturates at the end of time: a value that expires
// there never does, and one with an expiry keeps its digest leaf's
// records walked at every GCInterval (its whole shard's before
// collections skipped the leaves with none: found by review). Else
// never 0, which is "never" (a clock before 1970 gives -1).
func expiry(from int64, ttl time.Duration) int64 {
	switch e := crdt.AddSat(from, int64(ttl)); e {
	case math.MaxInt64:
		return 0
	case 0:
		return -1
	default:
		return e
	}
}

// Delete removes key on every member: its tombstone beats every older
// write, also on members that never held the key or evicted it. A key
// over MaxKeySize is refused (ErrKeyTooLarge) unless this member holds a
// record of it, which a peer with a larger MaxKeySize wrote.
func (c *Cache) Delete(key string) error {
	_, err := c.del(key)
	return err
}

func (c *Cache) del(key string) (crdt.Record, error) {
	if err := c.check("delete", key, 0, 0); err != nil && !c.deletable(key, err) {
		return crdt.Record{}, err
	}
	now, err := c.stamp("delete", key)
	if err != nil {
		return crdt.Record{}, err
	}
	return c.write("delete", crdt.Record{Key: key, Time: now, Tombstone: true})
}

// stamp returns the stamp of a write of key, or ErrEndOfTime once the
// clock is at the last timestamp there is: it issues that one again, and
// each later write of a key it held was taken for a copy (Stale) and
// dropped while Set and Delete returned nil (found by review).
func (c *Cache) stamp(op, key string) (crdt.Timestamp, error) {
	t := c.clock.Now()
	if t.Wall == math.MaxInt64 && t.Logical == math.MaxUint32 {
		return t, fmt.Errorf("bcache: %s %q: %w", op, clip(key), ErrEndOfTime)
	}
	return t, nil
}

func (c *Cache) check(op, key string, valueLen int, ttl time.Duration) error {
	switch {
	case c.closed.Load():
		return fmt.Errorf("bcache: %s %q: %w", op, clip(key), ErrClosed)
	case ttl < 0:
		return fmt.Errorf("bcache: %s %q: %w (%v)", op, clip(key), ErrInvalidTTL, ttl)
	case len(key) > c.cfg.MaxKeySize:
		// The key itself may be what is wrong: name its start only (every
		// message names a key so: one of 64 KiB made a 256 KiB error).
		return fmt.Errorf("bcache: %s %q: %w (%d bytes, limit %d)", op, clip(key), ErrKeyTooLarge, len(key), c.cfg.MaxKeySize)
	case valueLen > c.cfg.MaxValueSize:
		return fmt.Errorf("bcache: %s %q: %w (%d bytes, limit %d)", op, clip(key), ErrValueTooLarge, valueLen, c.cfg.MaxValueSize)
	}
	return nil
}

// checkRead is check for a read of key: MaxKeySize bounds the keys this
// member writes, and a peer with a larger one may have written a longer
// key, which Get serves; only a key over the protocol's limit, which no
// member can have written, is refused.
func (c *Cache) checkRead(op, key string) error {
	switch {
	case c.closed.Load():
		return fmt.Errorf("bcache: %s %q: %w", op, clip(key), ErrClosed)
	case len(key) > DefaultMaxKeySize:
		return fmt.Errorf("bcache: %s %q: %w (%d bytes, limit %d)", op, clip(key), ErrKeyTooLarge, len(key), DefaultMaxKeySize)
	}
	return nil
}

// deletable says a delete that check refused with err may go all the
// same: its key is over MaxKeySize alone, and this member holds a record
// of it (a peer with a larger MaxKeySize wrote it), so the tombstone adds
// no key that was not here (a key a peer wrote could be read and not
// deleted: found by review).
func (c *Cache) deletable(key string, err error) bool {
	if !errors.Is(err, ErrKeyTooLarge) || len(key) > DefaultMaxKeySize {
		return false
	}
	_, held := c.store.Lookup(key)
	return held
}

// checkFill is check for a fill of key: also a key that, alone, is over
// MaxBytes, which no value could be held under (the filler ran at every
// call, and its value was refused after: found by review).
func (c *Cache) checkFill(op, key string, ttl time.Duration) error {
	if err := c.check(op, key, 0, ttl); err != nil {
		return err
	}
	if c.cfg.MaxBytes > 0 && int64(len(key)) > c.cfg.MaxBytes {
		return fmt.Errorf("bcache: %s %q: %w (a key of %d bytes, over MaxBytes %d)", op, clip(key), ErrValueTooLarge, len(key), c.cfg.MaxBytes)
	}
	return nil
}

// checkHeld is checkFill before the key is looked up: a key over
// MaxKeySize that a peer wrote is served as Get serves it (the fills
// refused it: found by review), so only the protocol's limit on keys
// applies until a miss, and checkFill then.
func (c *Cache) checkHeld(op, key string, ttl time.Duration) error {
	if err := c.checkRead(op, key); err != nil {
		return err
	}
	if ttl < 0 {
		return fmt.Errorf("bcache: %s %q: %w (%v)", op, clip(key), ErrInvalidTTL, ttl)
	}
	return nil
}

// clip shortens a key for an error message.
func clip(key string) string {
	if len(key) > 32 {
		return key[:32] + "..."
	}
	return key
}

// write applies a local record, hands it to replication, and appends it
// to the write log if there is one. A write that returns nil is applied,
// and is in the snapshot Close writes; with SyncWrite it is on disk.
func (c *Cache) write(op string, rec crdt.Record) (crdt.Record, error) {
	rec, _, err := c.writeIf(op, rec, nil, nil)
	return rec, err
}

// writeIf is write, or, with a fill's watch, Store.WriteIfUnchanged: it
// reports whether it wrote. With SyncWrite it waits for the write's sync
// until until is closed (nil: however long it takes; see logWrite).
func (c *Cache) writeIf(op string, rec crdt.Record, fill *store.FillWatch, until <-chan struct{}) (crdt.Record, bool, error) {
	var err error
	wrote := true
	if fill == nil {
		rec, err = c.store.Write(rec) // stamped again if a session's cut overtook it (Store.Overtaken)
	} else {
		rec, wrote, err = c.store.WriteIfUnchanged(rec, *fill)
	}
	if err != nil {
		return rec, false, fmt.Errorf("bcache: %s %q: %w", op, clip(rec.Key), ErrClosed)
	}
	if !wrote {
		return rec, false, nil
	}
	c.feed.flush()
	c.repl.Write(rec) // a full queue drops the delta (counted); anti-entropy carries the write
	if c.journal != nil {
		if err := c.logWrite(&rec, until); errors.Is(err, errSyncPending) {
			return rec, true, err // a fill's, durable later (see fill)
		} else if err != nil {
			return rec, true, fmt.Errorf("bcache: %s %q: %w: %v", op, clip(rec.Key), ErrNotDurable, err)
		}
	}
	return rec, true, nil
}

// dropped reports a live value forgotten after a long absence.
func (c *Cache) dropped(v crdt.Version) {
	c.log.Warn().Str("key", clip(v.Key)).Msg("dropped a value the cluster no longer holds (back from a long absence)")
	if c.cfg.OnDrop != nil {
		select {
		case c.drops <- v.Key:
		case <-c.done:
		}
	}
}

// reportDrops calls Config.OnDrop with the keys dropped, until Close. It
// runs on a goroutine of its own, which Close does not wait for: called
// on the replication goroutine that dropped the key, an OnDrop that
// closed the Cache (we lost data: restart) waited for itself, for ever
// (found by review).
func (c *Cache) reportDrops() {
	for {
		select {
		case key := <-c.drops:
			// A key queued before Close, taken after it (the select
			// picks either at random), is not reported: up to the 1,024
			// queued were, after Close had returned (found by review).
			// Looked at behind the fills' gate, which Close passes after
			// end: at most the call decided as Close began runs after it.
			c.fillGate.RLock()
			if c.life.Err() != nil {
				c.fillGate.RUnlock()
				return
			}
			c.fillGate.RUnlock()
			c.cfg.OnDrop(key)
		case <-c.done:
			return
		}
	}
}

// track adds one to the goroutines Close waits for, unless Close has
// begun (it then returns false): for work started on a goroutine that is
// not the Cache's own (singleflight's). Close passes the fills' gate
// after ending the member's life, so no goroutine is added once it waits.
func (c *Cache) track() bool {
	c.fillGate.RLock()
	defer c.fillGate.RUnlock()
	if c.life.Err() != nil {
		return false
	}
	c.wg.Add(1)
	return true
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

// collect runs garbage collection (every GCInterval); see store.Collect
// for when a member alone may collect. It also reports, once per run,
// values received over this member's MaxValueSize.
func (c *Cache) collect() {
	// A member whose peers, looked up, are none but itself founds the
	// cluster as much as one given none.
	others, _ := c.peersConfigured()
	c.store.SetFounder(!others || c.repl.Founder())
	alone := len(c.repl.Members()) <= 1
	if c.closed.Load() {
		// Close began: the replication, closed, may list no member, and
		// the member would collect as if it were the cluster (found by
		// review). Looked at after Members: Close sets closed first.
		return
	}
	c.askMarks()
	adopted := c.store.WatermarksAdopted()
	if c.store.CollectCount(c.phys(), alone, c.repl.Stable()) > 0 || c.store.WatermarksAdopted() > adopted {
		c.feed.wakeWaiters() // watermarks rose
	}
	c.feed.flush()
	if n := c.store.Stats().Oversized; n > c.oversized {
		c.log.Warn().Uint64("records", n-c.oversized).Int("max_value_size", c.cfg.MaxValueSize).
			Msg("records received or restored with values over this member's MaxValueSize (or, with their keys, MaxBytes): kept their versions without the values")
		c.oversized = n
	}
}

// Close leaves the cluster, stops every goroutine the Cache started and
// waits for them (but for a Filler's and OnDrop's calls under way: a
// Filler's ctx is cancelled, and what it returns later is dropped), then
// writes the snapshot if there is a SnapshotPath. It is idempotent, and
// every call returns the first one's error; afterwards every call returns
// ErrClosed (Get misses, Members and Len are empty). Every write that
// returned nil is in that snapshot. The writes of every Set that returned
// before Close was called are sent to the members before it leaves, and
// a live peer asked to pull from it then holds every write that returned
// nil, those whose deltas were lost too, unless no peer answers within
// the leave's wait (the longer of two Timings.ProbeInterval and a
// second): a member cut off from every peer as it closes takes those
// with it, and logs so.
func (c *Cache) Close() error {
	c.close.Do(func() {
		var err error
		c.closed.Store(true)
		c.store.Seal()
		// The waiters (fills' callers, WaitSynced) and the fills go now,
		// not after the member has left the cluster, which takes up to a
		// couple of probe intervals (found by review).
		close(c.done)
		c.end()
		c.fillGate.Lock() // the fills past their check have started their fillers
		c.fillGate.Unlock()
		if c.beforeLeave != nil {
			c.beforeLeave()
		}
		err = c.repl.Close()
		close(c.left)
		c.wg.Wait()
		c.feed.closeAll()
		if c.cfg.SnapshotPath != "" {
			// The founder's mark as it stands: a Close right after the
			// member founded its cluster came before keepFounderMark
			// wrote it (found by the tests).
			if merr := c.syncMark(); merr != nil {
				err = errors.Join(err, fmt.Errorf("bcache: lineage mark: %w", merr))
			}
			serr := c.writeSnapshot()
			err = errors.Join(err, serr)
			c.closeSnapshot.Store(serr == nil) // before the log closes: see logWrite
			if c.journal != nil {              // with the snapshot written, the log holds nothing it lacks
				c.snapMu.Lock()
				covered := serr == nil && c.logCovered
				c.snapMu.Unlock()
				err = errors.Join(err, c.journal.Close(covered))
			}
			c.release()
		}
		c.log.Info().Msg("closed")
		c.closeErr = err
	})
	// Every call returns the first one's error: a second Close (a defer
	// beside a signal handler's) returned nil after the first failed to
	// write the snapshot, and hid the loss (found by review).
	return c.closeErr
}
