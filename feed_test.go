package bcache

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/store"
)

// reader reads a subscription change by change.
type reader struct {
	sub  *Subscription
	left []Change
}

// next waits for the next change.
func (r *reader) next(t *testing.T) Change {
	t.Helper()
	for len(r.left) == 0 {
		select {
		case batch, ok := <-r.sub.C:
			if !ok {
				t.Fatal("the subscription ended")
			}
			if len(batch) == 0 {
				t.Fatal("an empty batch")
			}
			r.left = batch
		case <-time.After(10 * time.Second):
			t.Fatal("no change within 10 s")
		}
	}
	ch := r.left[0]
	r.left = r.left[1:]
	return ch
}

// TestSubscribeDeliversChanges: a subscriber sees the changes to its
// prefix made here and by peers, with their cause, in order, and a
// local write that a peer's newer one replaced is marked superseded.
func TestSubscribeDeliversChanges(t *testing.T) {
	b, a := syncedPair(t) // b joined a, and synced
	sub, err := b.Subscribe("user:", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	r := &reader{sub: sub}
	if err := b.Set("user:1", []byte("mine"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if ch := r.next(t); ch.Cause != CauseSet || !ch.Here || ch.Key != "user:1" || string(ch.Value) != "mine" || ch.Expires.IsZero() {
		t.Fatalf("local set: %+v", ch)
	}
	waitValue(t, "user:1", []byte("mine"), a)
	if err := a.Set("other", []byte("x"), 0); err != nil { // not under the prefix
		t.Fatal(err)
	}
	if err := a.Set("user:1", []byte("theirs"), 0); err != nil {
		t.Fatal(err)
	}
	if ch := r.next(t); ch.Cause != CauseSet || ch.Here || string(ch.Value) != "theirs" || !ch.Superseded {
		t.Fatalf("a peer's newer write over a local one: %+v", ch)
	}
	if err := a.Delete("user:1"); err != nil {
		t.Fatal(err)
	}
	if ch := r.next(t); ch.Cause != CauseDelete || ch.Here || ch.Key != "user:1" || ch.Superseded {
		t.Fatalf("a peer's delete: %+v", ch)
	}
	b.Close()
	for range sub.C { // closed once the delivery goroutine sees Close
	}
}

// TestSubscriptionOverflowIsExplicit: a subscriber that falls behind gets
// what fits in its buffer, then one overflow notice, and, once it has
// made room, the changes that come after; evictions are changes too.
func TestSubscriptionOverflowIsExplicit(t *testing.T) {
	c := newCache(t, testConfig("solo"))
	sub, err := c.Subscribe("", 2)
	if err != nil {
		t.Fatal(err)
	}
	r := &reader{sub: sub}
	for i := range 5 {
		if err := c.Set(fmt.Sprint("k", i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	sets := 0 // before the notice: the buffer's worth, and up to as many the delivery goroutine took already
	for ch := r.next(t); ch.Cause != CauseOverflow; ch = r.next(t) {
		if ch.Cause != CauseSet || ch.Key != fmt.Sprint("k", sets) {
			t.Fatalf("change %d: %+v, want k%d's set", sets, ch, sets)
		}
		sets++
	}
	if sets < 2 || sets > 4 {
		t.Fatalf("%d sets before the overflow notice, with a buffer of 2", sets)
	}
	if err := c.Delete("k0"); err != nil {
		t.Fatal(err)
	}
	// The delivery goroutine may have taken the notice before the last
	// sets were published: those that found room again come after it, in
	// order, then the delete. If they filled the buffer again, what found
	// none (a set, or the delete) is covered by a second notice, which
	// names the first change it stands for.
	next := sets + 1 // the set that overflowed is gone
	ch := r.next(t)
	for ; ch.Cause != CauseDelete; ch = r.next(t) {
		if ch.Cause == CauseOverflow && ch.Key == "k0" {
			break // the delete found the buffer full: explicit, not lost silently
		}
		if ch.Cause != CauseSet && ch.Cause != CauseOverflow || ch.Key < fmt.Sprint("k", next) || ch.Key > "k4" {
			t.Fatalf("after the overflow: %+v, want a later set (or a notice for one) or k0's delete", ch)
		}
		next = int(ch.Key[1]-'0') + 1
	}
	if ch.Key != "k0" {
		t.Fatalf("after the overflow: %+v, want k0's delete", ch)
	}
	sub.Close()
	sub.Close()
	for range sub.C { // C is closed once the delivery goroutine sees Close
	}

	bounded := newCache(t, Config{NodeName: "bounded", BindAddr: "127.0.0.1:0", MaxKeys: 1})
	sub, err = bounded.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	r = &reader{sub: sub}
	bounded.Set("a", []byte("1"), 0)
	bounded.Set("b", []byte("2"), 0)
	var causes []Cause
	for range 3 {
		causes = append(causes, r.next(t).Cause)
	}
	if fmt.Sprint(causes) != fmt.Sprint([]Cause{CauseSet, CauseSet, CauseEvict}) {
		t.Fatalf("two sets under MaxKeys 1: %v, want set, set, evict", causes)
	}
}

// stall writes a first change of value, which sub's goroutine takes and
// then waits for the reader to take: every later change waits in
// pending.
func stall(t *testing.T, c *Cache, sub *Subscription, value []byte) {
	t.Helper()
	if err := c.Set("first", value, 0); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool {
		c.feed.mu.Lock()
		defer c.feed.mu.Unlock()
		return len(sub.pending) == 0
	}, "the subscription's goroutine never took the first change")
}

// TestStalledSubscriberHoldsBoundedMemory: a subscriber that stops
// reading holds at most Config.SubscriptionBytes of waiting keys and
// values (and a batch on its way), whatever its buffer: a count alone let
// one stalled subscriber of 1,024 changes hold 1,024 values of any size.
// It gets an overflow once it reads again. The default bound is 64 MiB;
// the HTTP node sets a lower one (before it could, 64 stalled watch
// streams could hold 12 GiB).
func TestStalledSubscriberHoldsBoundedMemory(t *testing.T) {
	for _, bound := range []int{0, 4 << 20} {
		t.Run(fmt.Sprint("bound=", bound), func(t *testing.T) {
			cfg := testConfig("solo")
			cfg.SubscriptionBytes = bound
			c := newCache(t, cfg)
			want := cmp.Or(bound, DefaultSubscriptionBytes)
			sub, err := c.Subscribe("", 0)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			value := make([]byte, 1<<20)
			stall(t, c, sub, value)
			for i := range want>>20 + 2 { // past the bound, within the 1,024 changes the buffer counts
				if err := c.Set(fmt.Sprint("k", i), value, 0); err != nil {
					t.Fatal(err)
				}
			}
			c.feed.mu.Lock()
			held, overflowed := sub.pendingBytes, sub.overflowed
			c.feed.mu.Unlock()
			if next := len("k00") + len(value); held > want || held+next <= want || !overflowed {
				t.Fatalf("a stalled subscriber holds %d bytes of changes (overflowed: %v), want at most %d and no room for one more", held, overflowed, want)
			}
			for overflow := false; !overflow; {
				select {
				case batch := <-sub.C:
					for _, ch := range batch {
						overflow = overflow || ch.Cause == CauseOverflow
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the changes past the bound came with no overflow")
				}
			}
		})
	}
}

// TestManyReadersOfOneKey: readers waiting for one key (GetAfter) that
// give up are forgotten one by one, and a change of the key wakes every
// reader still waiting and no other. The waiters were a list that every
// reader giving up copied (every pull round): a thousand readers of one
// key cost a core.
func TestManyReadersOfOneKey(t *testing.T) {
	c := newCache(t, testConfig("solo"))
	var kept, gone []chan struct{}
	for i := range 1000 {
		ch := c.feed.await("k", c.store)
		if i%2 == 0 {
			c.feed.cancel("k", ch)
			gone = append(gone, ch)
		} else {
			kept = append(kept, ch)
		}
	}
	other := c.feed.await("other", c.store)
	if err := c.Set("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	for _, ch := range kept {
		<-ch // else the test times out: a reader was not woken
	}
	for _, ch := range append(gone, other) {
		select {
		case <-ch:
			t.Fatal("a reader that gave up, or of another key, was woken")
		default:
		}
	}
	c.feed.cancel("other", other)
	c.feed.mu.Lock()
	defer c.feed.mu.Unlock()
	if c.feed.waiting != 0 || len(c.feed.waiters) != 0 {
		t.Fatalf("%d readers still counted, %d keys", c.feed.waiting, len(c.feed.waiters))
	}
}

// BenchmarkReadersOfOneKeyGivingUp: a reader of a key many others wait
// for gives up and waits again, as GetAfter does every pull round.
func BenchmarkReadersOfOneKeyGivingUp(b *testing.B) {
	c := newCache(b, testConfig("solo"))
	for range 1000 {
		c.feed.await("k", c.store)
	}
	for b.Loop() {
		c.feed.cancel("k", c.feed.await("k", c.store))
	}
}

// TestFeedLetsGoOfDeliveredValues: a subscription keeps no value alive
// once the reader has taken the batch after the one that carried it. Its
// two reused batches kept the changes past a smaller batch's length: a
// large batch of Sets kept their values alive, deleted since, while
// smaller batches came after (found by review).
func TestFeedLetsGoOfDeliveredValues(t *testing.T) {
	c := newCache(t, testConfig("solo"))
	sub, err := c.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	const n = 20
	var values []weak.Pointer[byte]
	for i := range n {
		if err := c.Set(fmt.Sprint("k", i), make([]byte, 1<<20), 0); err != nil {
			t.Fatal(err)
		}
		held, _ := c.store.Lookup(fmt.Sprint("k", i)) // the Cache's copy
		values = append(values, weak.Make(&held.Value[0]))
	}
	for got := 0; got < n; { // in a batch or two: the reader came late
		got += len(<-sub.C)
	}
	for i := range n { // one change a batch
		if err := c.Delete(fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
		if b := <-sub.C; len(b) != 1 {
			t.Fatalf("a batch of %d changes, want 1", len(b))
		}
	}
	await.Until(t, 10*time.Second, func() bool {
		runtime.GC()
		return !slices.ContainsFunc(values, func(p weak.Pointer[byte]) bool { return p.Value() != nil })
	}, "deleted values delivered in a batch two batches back are still reachable")
}

// TestChangeOverTheByteBound: a change larger than the subscription's
// bound in bytes is delivered when nothing waits (else a subscriber would
// never see such a value, however fast it read), and dropped, with an
// overflow notice, behind a change that waits.
func TestChangeOverTheByteBound(t *testing.T) {
	cfg := testConfig("solo")
	cfg.SubscriptionBytes = 1 << 10
	c := newCache(t, cfg)
	sub, err := c.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	r := &reader{sub: sub}
	big := make([]byte, 4<<10)
	if err := c.Set("big", big, 0); err != nil {
		t.Fatal(err)
	}
	if ch := r.next(t); ch.Cause != CauseSet || ch.Key != "big" || len(ch.Value) != len(big) {
		t.Fatalf("a change over the bound with nothing waiting came as %v %q (%d bytes)", ch.Cause, ch.Key, len(ch.Value))
	}

	s := &Subscription{buffer: 8, maxBytes: 1 << 10, wake: make(chan struct{}, 1)}
	set := func(key string, size int) {
		s.deliver(&store.Event{Kind: store.EventSet, Record: crdt.Record{Key: key, Value: make([]byte, size)}})
	}
	set("small", 10)
	set("big", 4<<10)
	set("after", 10)
	var got []string
	for _, ev := range s.pending {
		got = append(got, fmt.Sprint(ev.Kind, ev.Record.Key))
	}
	if want := []string{fmt.Sprint(store.EventSet, "small"), fmt.Sprint(0, "big"), fmt.Sprint(store.EventSet, "after")}; !slices.Equal(got, want) {
		t.Fatalf("queued %q, want %q (the large change dropped behind the small one, an overflow in its place)", got, want)
	}
}

// TestFlushCoalescesWakeUps: within a millisecond of the last wake-up,
// flush leaves the changes to the subscription's ticker; after that long,
// it wakes the goroutine at once; and the change that makes half the
// buffer (in changes or bytes) wakes it at once, in the middle of a
// frame, before flush (left to flush, a frame of 10 changes after 7 left
// to the ticker overflowed a buffer of 16 that its reader kept empty:
// found by review). The subscription here has no goroutine: the test
// reads what was decided.
func TestFlushCoalescesWakeUps(t *testing.T) {
	s := &Subscription{buffer: 8, maxBytes: DefaultSubscriptionBytes, wake: make(chan struct{}, 1), ticker: time.NewTicker(time.Hour)}
	s.ticker.Stop()
	defer s.ticker.Stop()
	now := time.Now()
	f := &feed{subs: []*Subscription{s}, now: func() time.Time { return now }}
	f.active.Store(1)
	s.f.Store(f)
	queue := func(n, size int) {
		for range n {
			s.deliver(&store.Event{Kind: store.EventSet, Record: crdt.Record{Key: "k", Value: make([]byte, size)}})
		}
	}
	woken := func() bool {
		select {
		case <-s.wake:
			return true
		default:
			return false
		}
	}
	take := func() { s.pending, s.pendingBytes = s.pending[:0], 0 }

	queue(1, 1)
	f.flush()
	if !woken() || s.ticking {
		t.Fatal("a change after a quiet spell did not wake the goroutine at once")
	}
	take()
	queue(1, 1)
	f.flush()
	if woken() || !s.ticking {
		t.Fatal("a change right after a wake-up woke the goroutine, not left to its ticker")
	}
	queue(2, 1) // 3 of 8 waiting, ticking
	f.flush()
	if woken() {
		t.Fatal("woken while ticking with less than half the buffer waiting")
	}
	queue(1, 1) // 4 of 8, within a frame
	if !woken() {
		t.Fatal("half the buffer waiting did not wake the goroutine")
	}
	f.flush()
	if !woken() {
		t.Fatal("flush with half the buffer waiting did not wake the goroutine")
	}
	take()
	queue(1, DefaultSubscriptionBytes/2)
	if !woken() {
		t.Fatal("half the byte bound waiting did not wake the goroutine")
	}
	take()
	s.ticking, now = false, now.Add(coalesce)
	queue(1, 1)
	f.flush()
	if !woken() || s.ticking {
		t.Fatal("a change a millisecond after the last wake-up was left to the ticker")
	}
	take()
	s.maxBytes, s.ticking = 1<<10, true // a bound set lower (Config.SubscriptionBytes)
	queue(1, 600)
	if !woken() {
		t.Fatal("half of a bound set lower waiting did not wake the goroutine")
	}
}

// TestBurstEndsDelivered: a change made right after a wake-up (left to
// the ticker) arrives with no write after it, and the ticker stops once a
// tick finds nothing new (an idle member does not tick).
func TestBurstEndsDelivered(t *testing.T) {
	c := newCache(t, testConfig("a"))
	sub, err := c.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	r := &reader{sub: sub}
	for round := range 3 {
		// The first write wakes the goroutine; the next, made as soon as
		// the first has arrived, is within a millisecond of that (unless
		// the machine stalls: then it wakes it too).
		for i := range 20 {
			c.Set(fmt.Sprintf("k%d", i), []byte{byte(round)}, 0)
			if ch := r.next(t); ch.Key != fmt.Sprintf("k%d", i) || ch.Value[0] != byte(round) {
				t.Fatalf("round %d: change %d is %s=%v", round, i, ch.Key, ch.Value)
			}
		}
		await.Until(t, 10*time.Second, func() bool {
			c.feed.mu.Lock()
			defer c.feed.mu.Unlock()
			return !sub.ticking
		}, "the ticker still runs after the burst was delivered")
	}
}

// TestPeersEvictedVersionSupersedesAWriteHere: a peer's newer version
// whose value it evicted (anti-entropy sends such versions) replaces a
// value written here: the change is an eviction here, and the local write
// lost to a newer one elsewhere, which Superseded says (it did not, and
// before that the change was a set of an empty value this member does not
// serve: both found by review).
func TestPeersEvictedVersionSupersedesAWriteHere(t *testing.T) {
	c := newCache(t, testConfig("solo"))
	sub, err := c.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	r := &reader{sub: sub}
	if err := c.Set("k", []byte("mine"), 0); err != nil {
		t.Fatal(err)
	}
	if ch := r.next(t); ch.Cause != CauseSet || !ch.Here {
		t.Fatalf("local set: %+v", ch)
	}
	now := c.clock.Now()
	theirs := crdt.Record{Key: "k", Evicted: true, Time: crdt.Timestamp{Wall: now.Wall + 1, Node: now.Node + 1}}
	if o := c.store.Apply(theirs, false, c.phys()); o != crdt.Applied {
		t.Fatalf("the peer's version: %v", o)
	}
	c.feed.flush()
	if ch := r.next(t); ch.Cause != CauseEvict || ch.Here || ch.Value != nil || !ch.Superseded || ch.Version != theirs.Time {
		t.Fatalf("a peer's evicted version over a local write: %+v", ch)
	}
	if v, ok := c.Get("k"); ok {
		t.Fatalf("Get serves %q after a newer version without its value", v)
	}
}

// TestSubscriptionGoroutineEndsBeforeCloseReturns: the Cache's Close
// waits for every goroutine the Cache started; a subscription's delivery
// goroutine is one, so C is closed by the time Close returns. Close only
// signalled it, and C was still open after Close returned (found by
// review).
func TestSubscriptionGoroutineEndsBeforeCloseReturns(t *testing.T) {
	for i := range 50 {
		c := newCache(t, testConfig(fmt.Sprint("solo", i)))
		sub, err := c.Subscribe("", 0)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		select {
		case _, ok := <-sub.C:
			if ok {
				t.Fatal("a batch after Close")
			}
		default:
			t.Fatalf("round %d: C still open (its goroutine still running) after the Cache's Close returned", i)
		}
	}
	// A subscription its reader closed just before: its goroutine is the
	// Cache's all the same, though it has left the subscriptions.
	for i := range 50 {
		c := newCache(t, testConfig(fmt.Sprint("solo", i)))
		sub, err := c.Subscribe("", 0)
		if err != nil {
			t.Fatal(err)
		}
		sub.Close()
		c.Close()
		select {
		case <-sub.C:
		default:
			t.Fatalf("round %d: C of a subscription closed before the Cache still open after the Cache's Close returned", i)
		}
	}
}

// TestOverflowNoticesCountInTheByteBound: the overflow notices waiting for
// a stalled subscriber are held in the byte bound with the changes, each
// with the key of the first change it stands for. Changes that take turns
// past and within the bound (a large value, then a small one, each under
// a long key) queued a notice at each turn, counted nowhere: 200 of them
// held 12.7 MiB of keys past a bound of 1 MiB.
func TestOverflowNoticesCountInTheByteBound(t *testing.T) {
	const bound = 1 << 20
	cfg := testConfig("solo")
	cfg.SubscriptionBytes = bound
	c := newCache(t, cfg)
	sub, err := c.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	stall(t, c, sub, []byte("v"))
	if err := c.Set("fill", make([]byte, bound-(64<<10)), 0); err != nil { // the bound less a long key's room
		t.Fatal(err)
	}
	key := strings.Repeat("k", 60<<10)
	for i := range 200 {
		if err := c.Set(fmt.Sprint(key, "large", i), make([]byte, 64<<10), 0); err != nil { // past the bound
			t.Fatal(err)
		}
		if err := c.Set(fmt.Sprint("small", i), nil, 0); err != nil { // within it
			t.Fatal(err)
		}
	}
	c.feed.mu.Lock()
	held := 0
	for _, ev := range sub.pending {
		held += len(ev.Record.Key) + len(ev.Record.Value)
	}
	c.feed.mu.Unlock()
	if held > bound+len(key)+16 {
		t.Fatalf("a stalled subscriber holds %d bytes of changes and notices, want at most the bound %d and one key", held, bound)
	}
}

// TestADropOverAnExpiredValueIsADrop: a value past its TTL that a drop
// replaces before its collection ends with the drop's change (CauseDrop),
// as CauseExpire's doc says (it said with none: found by review), and
// with no expiry of its own after.
func TestADropOverAnExpiredValueIsADrop(t *testing.T) {
	clock := new(offsetClock)
	cfg := testConfig("solo")
	cfg.Clock = clock.now
	cfg.GCInterval = time.Hour
	c := newCache(t, cfg)
	if err := c.Set("k", []byte("v"), time.Second); err != nil {
		t.Fatal(err)
	}
	clock.advance(2 * time.Second)
	sub, err := c.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if o := c.store.Apply(crdt.Record{Key: "k", Tombstone: true, Time: crdt.Timestamp{Wall: c.phys()}}, false, c.phys()); o != crdt.Applied {
		t.Fatalf("the drop: %v", o)
	}
	c.collect()
	if err := c.Set("marker", nil, 0); err != nil {
		t.Fatal(err)
	}
	var causes []Cause
	for done := false; !done; {
		for _, ch := range <-sub.C {
			if ch.Key == "k" {
				causes = append(causes, ch.Cause)
			}
			done = done || ch.Key == "marker"
		}
	}
	if !slices.Equal(causes, []Cause{CauseDrop}) {
		t.Fatalf("a drop over an expired value, then a collection, delivered %v; want [drop]", causes)
	}
}

// TestClosedSubscriptionLetsGoOfPendingValues: a subscription closed while
// changes wait for its reader keeps none of their values alive, though
// its owner still holds it: Close releases everything. The changes
// queued for the goroutine stayed in the Subscription after Close (up to
// Config.SubscriptionBytes of values, 64 MiB by default).
func TestClosedSubscriptionLetsGoOfPendingValues(t *testing.T) {
	c := newCache(t, testConfig("solo"))
	sub, err := c.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	stall(t, c, sub, []byte("v"))
	const n = 8
	var values []weak.Pointer[byte]
	for i := range n {
		if err := c.Set(fmt.Sprint("k", i), make([]byte, 1<<20), 0); err != nil {
			t.Fatal(err)
		}
		held, _ := c.store.Lookup(fmt.Sprint("k", i))
		values = append(values, weak.Make(&held.Value[0]))
	}
	sub.Close()
	for range sub.C { // closed once its goroutine has ended
	}
	for i := range n {
		if err := c.Delete(fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	await.Until(t, 10*time.Second, func() bool {
		runtime.GC()
		return !slices.ContainsFunc(values, func(p weak.Pointer[byte]) bool { return p.Value() != nil })
	}, "values queued for a subscription closed since are still reachable through it")
	runtime.KeepAlive(sub)
}

// TestSubscribeRacingCloseFails: a Close that runs while Subscribe adds
// its subscription makes Subscribe fail with ErrClosed. It returned the
// subscription, closed, and no error: the caller read a C that closed
// at once and could not tell why.
func TestSubscribeRacingCloseFails(t *testing.T) {
	c := newCache(t, testConfig("solo"))
	defer func(h func()) { subscribedHook = h }(subscribedHook)
	subscribedHook = func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
	sub, err := c.Subscribe("", 0)
	if !errors.Is(err, ErrClosed) || sub != nil {
		t.Fatalf("Subscribe racing Close returned %v, %v; want nil and ErrClosed", sub, err)
	}
}
