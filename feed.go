package bcache

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// Cause is why a key changed on a member.
type Cause uint8

const (
	// CauseSet: a value was written, here or by a peer (Change.Here).
	CauseSet Cause = iota + 1
	// CauseDelete: the key was deleted, here or by a peer.
	CauseDelete
	// CauseExpire: the value was past its TTL and has been collected (a
	// read misses it from its expiry on, before this change comes). A
	// value past its TTL that a drop replaces before its collection ends
	// with the drop's change (CauseDrop), not one of its own.
	CauseExpire
	// CauseEvict: the value was dropped here to free memory (MaxKeys,
	// MaxBytes) or was over MaxValueSize, or a peer sent a newer version
	// of the key whose value it had dropped itself (anti-entropy sends
	// such versions): this member holds no value of the key, some other
	// members may.
	CauseEvict
	// CauseDrop: the member's record was dropped because the cluster had
	// forgotten it: it came back from an absence longer than
	// TombstoneHorizon holding it (see Guarantees in the README).
	CauseDrop
	// CauseOverflow: the subscriber fell behind and changes were missed
	// between the one before and the one after; re-read what matters.
	// Its Key is the first missed change's; changes to any other key may
	// have been missed too.
	CauseOverflow
)

func (c Cause) String() string {
	switch c {
	case CauseSet:
		return "set"
	case CauseDelete:
		return "delete"
	case CauseExpire:
		return "expire"
	case CauseEvict:
		return "evict"
	case CauseDrop:
		return "drop"
	case CauseOverflow:
		return "overflow"
	}
	return fmt.Sprintf("cause(%d)", uint8(c))
}

// A Change is one change to a key's value on a member, as Subscribe
// delivers it.
type Change struct {
	Key   string
	Cause Cause
	// Here says the change was made on this member (a Set or Delete
	// called here, an eviction by its bounds or Evict, a collection);
	// false for a peer's write, for a peer's version received here
	// without its value (CauseEvict: over MaxValueSize, or evicted by
	// the peer), and for a value put back on a key evicted here (a
	// CauseSet of the version it held, from a peer's answer to this
	// member's ask, whoever wrote it: see Stats.StubAsks).
	Here bool
	// Version is the write's timestamp (CauseSet, CauseDelete) or that
	// of the version that lost its value (CauseExpire, CauseEvict); its
	// Node is the writing member's incarnation. For CauseDrop it is the
	// peer's answer, just above its watermark, whose Node is 0; for
	// CauseOverflow, zero.
	Version crdt.Timestamp
	// Value and Expires are the value written and its expiry (zero: none)
	// for CauseSet. Value is shared: do not modify it.
	Value   []byte
	Expires time.Time
	// Superseded says a peer's write replaced one made on this member:
	// the local write lost to a newer one elsewhere. That holds for the
	// writes of this member's earlier processes too, restored from its
	// snapshot or write log (an edge member's offline writes, lost once
	// it rejoins), from its last 64 processes that wrote, this one
	// included: as far back as 63 restarts once this process has written
	// (the doc said 64 restarts; a write of 64 restarts back is then not
	// reported, found by review). A local write that a newer one already
	// held here beats as it is applied (a peer's, applied between the
	// write's stamp and its merge) changes nothing and is reported
	// nowhere.
	Superseded bool
}

// DefaultSubscriptionBuffer is the number of changes a subscriber may lag
// behind before it gets CauseOverflow.
const DefaultSubscriptionBuffer = 1024

// MaxSubscriptionBytes was the bound of Config.SubscriptionBytes before
// it could be set; it is its default.
//
// Deprecated: use Config.SubscriptionBytes and DefaultSubscriptionBytes.
const MaxSubscriptionBytes = DefaultSubscriptionBytes

// A Subscription delivers the changes to keys with its prefix on C, each
// once, in the order they were applied (per key; changes to different
// keys in the order the member applied them), in batches: a batch holds
// every change queued when the subscription's goroutine took them (the
// changes made while a batch waits for the reader come in the next), so
// that a busy member pays one channel handoff per batch, not per change.
// The goroutine takes the changes when woken, by a write, a received
// frame or a collection that changed something a millisecond or more
// after the last such wake-up, or by the change that makes half the
// buffer (in changes or bytes) wait; else at the next tick of a
// millisecond ticker, which runs while changes keep coming. So a lone
// change goes at once, and a busy member wakes the goroutine about once
// a millisecond, not once per frame or write (each was a system call,
// and cost the member applying peers' writes about a tenth of its time).
// Close it when done.
type Subscription struct {
	// C delivers the changes, in order, a batch at a time:
	//
	//	for batch := range sub.C {
	//		for _, ch := range batch { ... }
	//	}
	//
	// A batch is valid until the next receive from C, which reuses its
	// memory (so that a feed allocates nothing as it runs): copy what must
	// outlive it. The Values are the Cache's, as Get's are: do not modify
	// them. C is closed after Close, or the Cache's Close, once the batch
	// on its way is delivered or abandoned.
	C <-chan []Change

	ch       chan []Change
	prefix   string
	buffer   int
	maxBytes int // Config.SubscriptionBytes
	// f is the Cache's feed until the goroutine ends: nil then, so that
	// a closed subscription its owner keeps holds nothing of the Cache
	// (the feed is the Cache's field: a closed Cache, dropped, stayed
	// with every value its store held; found by review).
	f       atomic.Pointer[feed]
	wake    chan struct{} // the delivery goroutine has changes to send
	ticker  *time.Ticker  // while changes come often: the goroutine takes them at its ticks
	done    chan struct{} // closed by Close
	stopped chan struct{} // closed by run as it returns, after C
	// Guarded by f.mu: changes published and not yet taken by the
	// delivery goroutine, and whether changes are being dropped.
	pending      []store.Event // Kind 0: the overflow notice
	pendingBytes int           // their keys' and values' bytes
	overflowed   bool
	lastWake     time.Time // when flush last woke the goroutine
	ticking      bool      // the ticker runs
}

// coalesce is how long after waking a subscription's goroutine flush
// holds the next wake-up back, for the goroutine's ticker to take the
// changes (see Subscription).
const coalesce = time.Millisecond

// Subscribe starts delivering every change to keys with prefix ("" for
// all) made on or applied at this member from now on. buffer bounds how
// far the subscriber may fall behind (0: DefaultSubscriptionBuffer; up
// to twice that many changes may be on their way), and so does
// Config.SubscriptionBytes of their keys and values (see it for what the
// batches on their way add): past either, changes are dropped and the
// subscriber gets one Change with CauseOverflow before the next one
// delivered, never a silent gap. Replaying the changes in order
// onto the values held when it subscribed gives the values the member
// holds. A writer of this member pays a lock and an append per change for
// each subscriber whose prefix it matches; a goroutine per subscription
// does the sending. On a closed Cache, or one whose Close runs as it
// subscribes, it returns ErrClosed.
func (c *Cache) Subscribe(prefix string, buffer int) (*Subscription, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("bcache: subscribe: %w", ErrClosed)
	}
	if buffer < 0 {
		return nil, fmt.Errorf("bcache: subscribe: %w: buffer %d, want 0 or more", ErrConfig, buffer)
	}
	if buffer == 0 {
		buffer = DefaultSubscriptionBuffer
	}
	s := &Subscription{ch: make(chan []Change), prefix: prefix, buffer: buffer, maxBytes: c.cfg.SubscriptionBytes,
		wake: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{}), ticker: time.NewTicker(coalesce)}
	s.f.Store(&c.feed)
	s.ticker.Stop() // until changes come often
	s.C = s.ch
	go s.run()
	c.feed.add(s, c.store)
	subscribedHook()
	if c.closed.Load() {
		// Close ran while we added it: it may have missed it, and the
		// caller would get a subscription whose C closes at once, with no
		// error (found by review).
		s.Close()
		<-s.stopped
		return nil, fmt.Errorf("bcache: subscribe: %w", ErrClosed)
	}
	return s, nil
}

// subscribedHook runs in Subscribe between adding the subscription and
// checking for a Close that ran meanwhile; tests replace it.
var subscribedHook = func() {}

// Close stops delivery; C is closed soon after. It is idempotent.
func (s *Subscription) Close() {
	if f := s.f.Load(); f != nil { // else its goroutine has ended: closed already
		f.remove(s)
	}
}

// run sends the published changes on C, a batch at a time, until Close.
func (s *Subscription) run() {
	f := s.f.Load()
	defer func() {
		f.mu.Lock()
		delete(f.live, s)
		// Out of subs since Close: nothing is queued any more. Let go of
		// what waited, which a Subscription its owner keeps held alive.
		clear(s.pending)
		s.pending, s.pendingBytes = nil, 0
		close(s.stopped) // under the lock: a Close that no longer finds it in live finds it stopped
		s.f.Store(nil)
		f.mu.Unlock()
	}()
	defer close(s.ch)
	defer s.ticker.Stop()
	var events []store.Event
	var bufs [2][]Change // the batch the reader holds, and the next
	next := 0
	for {
		select {
		case <-s.wake:
		case <-s.ticker.C:
		case <-s.done:
			return
		}
		f.mu.Lock()
		select {
		case <-s.done:
			// Closed (under this lock): no batch is taken after Close.
			// Woken as Close ran, the goroutine could choose the wake-up
			// at random, take the changes queued and send them after the
			// batch on its way, to a reader receiving as Close ran (a
			// review's reading; the window is two random choices of
			// select with a reader arriving as Close runs, which no test
			// here makes happen at will).
			f.mu.Unlock()
			return
		default:
		}
		events, s.pending, s.pendingBytes = s.pending, events[:0], 0
		if len(events) == 0 && s.ticking { // a tick with nothing new: the burst is over
			s.ticking = false
			s.ticker.Stop()
		}
		f.mu.Unlock()
		if len(events) == 0 {
			continue
		}
		batch := bufs[next][:0]
		for _, ev := range events {
			batch = append(batch, changeOf(ev))
		}
		bufs[next], next = batch, 1-next
		clear(events)
		select {
		case s.ch <- batch:
		case <-s.done:
			return
		}
		// The reader is done with the batch before this one: let go of
		// its keys and values (left there, a large batch kept them alive
		// while smaller ones came after: found by review).
		clear(bufs[next][:cap(bufs[next])])
	}
}

// feed fans the store's events out to the subscriptions, and wakes the
// readers waiting for a key to change (GetAfter). The store's watcher is
// set while there is either.
type feed struct {
	mu   sync.Mutex
	subs []*Subscription
	// live are the subscriptions whose goroutine runs, closed or not:
	// Close waits for them all (one closed by its reader just before
	// had left subs, and was not waited for: found by review).
	live    map[*Subscription]struct{}
	active  atomic.Int32                          // len(subs), read without the lock by flush
	waiters map[string]map[chan struct{}]struct{} // a set per key: cancel is O(1) with many readers of one key
	waiting int
	store   *store.Store
	// also, if set, sees every event too, whether or not anyone
	// subscribes (the write log's, for received records).
	also func(*store.Event)
	// now, if set, is the clock flush coalesces by (tests); else
	// time.Now.
	now func() time.Time
}

// watch sets the store's watcher: publish (and also) while there are
// subscriptions or waiters, else also alone, or none. Called with f.mu
// held.
func (f *feed) watch(st *store.Store) {
	f.store = st
	switch also := f.also; {
	case len(f.subs)+f.waiting > 0 && also != nil:
		st.Watch(func(ev *store.Event) { also(ev); f.publish(ev) })
	case len(f.subs)+f.waiting > 0:
		st.Watch(f.publish)
	default:
		st.Watch(also) // nil if none
	}
}

// watchAlso makes fn see every event from now on.
func (f *feed) watchAlso(st *store.Store, fn func(*store.Event)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.also = fn
	f.watch(st)
}

func (f *feed) add(s *Subscription, st *store.Store) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs = append(f.subs, s)
	if f.live == nil {
		f.live = map[*Subscription]struct{}{}
	}
	f.live[s] = struct{}{}
	f.active.Store(int32(len(f.subs)))
	f.watch(st)
}

func (f *feed) remove(s *Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.Index(f.subs, s)
	if i < 0 {
		return
	}
	f.subs = slices.Delete(f.subs, i, i+1)
	f.active.Store(int32(len(f.subs)))
	close(s.done)
	f.watch(f.store)
}

// await returns a channel closed at the next change of key.
func (f *feed) await(key string, st *store.Store) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.waiters == nil {
		f.waiters = map[string]map[chan struct{}]struct{}{}
	}
	ch := make(chan struct{})
	ws := f.waiters[key]
	if ws == nil {
		ws = map[chan struct{}]struct{}{}
		f.waiters[key] = ws
	}
	ws[ch] = struct{}{}
	f.waiting++
	f.watch(st)
	return ch
}

// cancel forgets a waiter that gave up (or was woken: then it is gone
// already).
func (f *feed) cancel(key string, ch chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ws := f.waiters[key]
	if _, ok := ws[ch]; ok {
		delete(ws, ch)
		if len(ws) == 0 {
			delete(f.waiters, key)
		}
		f.waiting--
		f.watch(f.store)
	}
}

// wakeWaiters wakes every reader waiting for a key to change (GetAfter):
// a collection raised watermarks, which may settle a wait with no change
// of its key (the token's write now below its bucket's watermark, as
// another key's collection left it): such a reader learned it at its
// next pull, up to an anti-entropy interval later (found by review).
// Each looks again, and waits again if it must.
func (f *feed) wakeWaiters() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.waiting == 0 {
		return
	}
	for key, ws := range f.waiters {
		for w := range ws {
			close(w)
		}
		delete(f.waiters, key)
	}
	f.waiting = 0
	f.watch(f.store)
}

// wake wakes the readers waiting for key (GetAfter): something they
// wait for was learnt without a change of the key (a peer's answer that
// it collected the key's writes).
func (f *feed) wake(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ws, ok := f.waiters[key]
	if !ok {
		return
	}
	for w := range ws {
		close(w)
	}
	delete(f.waiters, key)
	f.waiting -= len(ws)
	f.watch(f.store)
}

// closeAll ends every subscription, and waits for their goroutines (the
// Cache's Close waits for every goroutine it started): C is closed when
// it returns.
func (f *feed) closeAll() {
	f.mu.Lock()
	subs := slices.Clone(f.subs)
	live := slices.Collect(maps.Keys(f.live))
	f.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
	for _, s := range live {
		<-s.stopped
	}
}

// publish queues one store event for every subscription whose prefix it
// matches. The store calls it with a shard's lock held: it never blocks,
// and leaves the rest of the work to the delivery goroutines.
func (f *feed) publish(ev *store.Event) {
	f.mu.Lock()
	if f.waiting == 0 {
		// No reader waits for a key (GetAfter): no lookup by key.
	} else if ws, ok := f.waiters[ev.Record.Key]; ok {
		for w := range ws {
			close(w)
		}
		delete(f.waiters, ev.Record.Key)
		f.waiting -= len(ws)
		if f.waiting+len(f.subs) == 0 {
			f.watch(f.store)
		}
	}
	if ev.Unseen {
		// A drop of nothing (a peer's answer for a key with no record
		// here): no change a subscriber could see.
		f.mu.Unlock()
		return
	}
	for _, s := range f.subs {
		if strings.HasPrefix(ev.Record.Key, s.prefix) {
			s.deliver(ev)
		}
	}
	f.mu.Unlock()
}

// flush wakes the delivery goroutines of the subscriptions with changes
// queued. The Cache calls it once per local write, per frame received and
// per collection, not per change: a frame's records go to a subscriber
// together, with one wake-up. Within coalesce of the last wake-up it
// starts the goroutine's ticker instead, and leaves the changes to its
// ticks, unless half the subscriber's buffer (in changes or bytes) waits.
func (f *feed) flush() {
	if f.active.Load() == 0 {
		return
	}
	f.mu.Lock()
	var now time.Time
	for _, s := range f.subs {
		if len(s.pending) == 0 {
			continue
		}
		if !s.urgent() {
			if s.ticking {
				continue // the next tick takes them
			}
			if now.IsZero() {
				now = f.clock()
			}
			if now.Sub(s.lastWake) < coalesce {
				s.ticking = true
				s.ticker.Reset(coalesce)
				continue
			}
			s.lastWake = now
		}
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	f.mu.Unlock()
}

func (f *feed) clock() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

// changeOf is the Change a store event reports.
func changeOf(ev store.Event) Change {
	ch := Change{Key: ev.Record.Key, Here: ev.Here, Version: ev.Record.Time, Superseded: ev.Superseded}
	switch ev.Kind {
	case 0:
		return Change{Key: ev.Record.Key, Cause: CauseOverflow}
	case store.EventSet:
		ch.Cause, ch.Value = CauseSet, ev.Record.Value
		if ev.Record.Expires != 0 {
			ch.Expires = time.Unix(0, ev.Record.Expires)
		}
	case store.EventDelete:
		ch.Cause = CauseDelete
	case store.EventEvict:
		ch.Cause = CauseEvict
	case store.EventExpire:
		ch.Cause = CauseExpire
	case store.EventDrop:
		ch.Cause = CauseDrop
	}
	return ch
}

// deliver queues ev for the delivery goroutine, with the feed's lock
// held. Past the buffer, changes are dropped (a change alone, whatever its
// size, is not: a subscriber with nothing waiting would otherwise never
// see a value larger than its bound in bytes), and an overflow notice is
// queued in their place once, until the goroutine has taken the queue.
// From half the buffer on (in changes or bytes) it wakes the goroutine
// itself, in the middle of a frame: left to flush, a large frame
// arriving while the changes before it waited for a tick overflowed a
// reader that kept up (found by review). That makes no room for a frame
// of more than the bound, applied faster than the goroutine runs: see
// Config.SubscriptionBytes.
func (s *Subscription) deliver(ev *store.Event) {
	size := len(ev.Record.Key) + len(ev.Record.Value)
	if len(s.pending) >= s.buffer || len(s.pending) > 0 && s.pendingBytes+size > s.maxBytes {
		if !s.overflowed {
			// The notice holds a key, counted with the changes: changes
			// taking turns past and within the bound each queued one,
			// counted nowhere (found by review).
			s.overflowed = true
			s.pending = append(s.pending, store.Event{Record: crdt.Record{Key: ev.Record.Key}})
			s.pendingBytes += len(ev.Record.Key)
		}
		return
	}
	s.overflowed = false
	s.pending = append(s.pending, *ev)
	s.pendingBytes += size
	if s.urgent() {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// urgent says half the buffer waits, in changes or bytes: the goroutine
// must take them without waiting for a tick. Called with the feed's lock
// held.
func (s *Subscription) urgent() bool {
	return len(s.pending) >= s.buffer/2 || s.pendingBytes >= s.maxBytes/2
}
