package bcache

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// clockedCache starts a lone member whose clock reads now, set to the
// process's clock first.
func clockedCache(t *testing.T, now *atomic.Int64) *Cache {
	t.Helper()
	now.Store(time.Now().UnixNano())
	cfg := testConfig("solo")
	cfg.Clock = func() time.Time { return time.Unix(0, now.Load()) }
	return newCache(t, cfg)
}

// steppedCache starts a lone member on an in-memory network whose clock
// the test moves, with collections left to the test.
func steppedCache(t *testing.T, now *atomic.Int64) *Cache {
	t.Helper()
	tr, err := memnet.NewNetwork(1).NewTransport("a")
	if err != nil {
		t.Fatal(err)
	}
	return newCache(t, Config{NodeName: "a", Network: tr, Timings: FastTimings(), GCInterval: time.Hour,
		Clock: func() time.Time { return time.Unix(0, now.Load()) }})
}

// TestTTLAfterAStepBackRunsOnTheMembersClock: a write made after the
// member's clock stepped back by d got its expiry from the HLC's wall
// (stuck d ahead of the clock), not from the clock: a 10 s TTL was
// served by the member for d + 10 s of its own clock (an hour and ten
// seconds after a step of an hour).
func TestTTLAfterAStepBackRunsOnTheMembersClock(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	c := steppedCache(t, &now)
	if err := c.Set("warm", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	now.Add(-int64(time.Hour)) // the clock steps back an hour
	if err := c.Set("k", []byte("v"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("k"); !ok {
		t.Fatal("miss before the TTL")
	}
	now.Add(int64(10 * time.Second))
	if _, ok := c.Get("k"); ok {
		t.Fatalf("hit 10 s after a Set with a 10 s TTL, by this member's own clock")
	}
}

// TestTTLAfterAPeersClockDragsTheHLCRunsOnTheMembersClock: within the
// documented bounds. A peer's clock 20 s ahead (MaxClockDrift 30 s) moves
// this member's HLC past its clock as its records arrive; a Set with a
// 5 s TTL made then expired from the HLC's wall, and was served here for
// 25 s of this member's clock.
func TestTTLAfterAPeersClockDragsTheHLCRunsOnTheMembersClock(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	c := steppedCache(t, &now)
	// A record of a peer 20 s ahead arrives (transport's receiveRecord
	// moves the clock past it before it applies it).
	if err := c.clock.Update(crdt.Timestamp{Wall: now.Load() + int64(20*time.Second), Node: 7}); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("k", []byte("v"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(5 * time.Second))
	if _, ok := c.Get("k"); ok {
		t.Fatalf("hit 5 s after a Set with a 5 s TTL, by this member's own clock")
	}
}

// TestTTLEndingAtTheEpochExpires: an expiry that falls on the Unix epoch
// itself (a clock before 1970) must not read as 0, "never".
func TestTTLEndingAtTheEpochExpires(t *testing.T) {
	var now atomic.Int64
	now.Store(-int64(5 * time.Second))
	c := steppedCache(t, &now)
	if err := c.Set("k", []byte("v"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	now.Store(int64(time.Second))
	if _, ok := c.Get("k"); ok {
		t.Fatal("hit after the TTL: the expiry read as none")
	}
}

// TestWritesAtTheLastTimestampAreRefused: outside every bound, a clock at
// the end of Unix nanosecond time (year 2262; a bad RTC, or a peer's
// stamp there within MaxClockDrift). The HLC stops at its last
// timestamp and issues it again; each later Set or Delete of a key got
// the stamp it held already, was taken as a copy (Stale) and dropped,
// and returned nil: an acknowledged write silently lost.
func TestWritesAtTheLastTimestampAreRefused(t *testing.T) {
	var now atomic.Int64
	now.Store(math.MaxInt64 - int64(time.Second))
	c := steppedCache(t, &now)
	if err := c.Set("k", []byte("v1"), 0); err != nil {
		t.Fatal(err)
	}
	// A peer's record at the last timestamp there is (within the drift).
	if err := c.clock.Update(crdt.Timestamp{Wall: math.MaxInt64, Logical: math.MaxUint32, Node: 7}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v2", "v3"} {
		err := c.Set("k", []byte(v), 0)
		if got, _ := c.Get("k"); err == nil && string(got) != v {
			t.Fatalf("Set of %s returned nil and Get returns %q: the write was dropped unseen", v, got)
		}
		if err != nil && !errors.Is(err, ErrEndOfTime) {
			t.Fatalf("Set of %s: %v, want ErrEndOfTime", v, err)
		}
	}
	err := c.Delete("k")
	if _, ok := c.Get("k"); err == nil && ok {
		t.Fatal("Delete returned nil and Get still hits")
	}
	if err != nil && !errors.Is(err, ErrEndOfTime) {
		t.Fatalf("Delete: %v, want ErrEndOfTime", err)
	}
}

// TestFillTTLAfterAStepBackIsBoundedByTheDrift: the fill's expiry (from
// the HLC, for its askers) lasts at most MaxClockDrift past the TTL on the
// member's clock after a step back of an hour.
func TestFillTTLAfterAStepBackIsBoundedByTheDrift(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	c := steppedCache(t, &now)
	if err := c.Set("warm", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	now.Add(-int64(time.Hour))
	const ttl = 10 * time.Second
	if _, err := c.GetWithFiller(context.Background(), "k", func(context.Context, string) ([]byte, error) { return []byte("v"), nil }, ttl); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(ttl + c.cfg.MaxClockDrift))
	if _, ok := c.Get("k"); ok {
		t.Fatalf("a filled value with a %v TTL served %v after a step back of an hour", ttl, ttl+c.cfg.MaxClockDrift)
	}
}

// TestFillTTLAfterAPeersClockDragsTheHLCRunsOnTheMembersClock (review 62):
// a value GetWithFiller fills, for this member's own callers and asked for
// by no peer, has its TTL run on the member's clock as a Set's does. Since
// b659bba it ran from the HLC, which any peer's record or session cut
// drags to that peer's clock (here 20 s ahead, within MaxClockDrift): a
// 5 s TTL was served for 25 s, 8d3e833's fault back for fills.
func TestFillTTLAfterAPeersClockDragsTheHLCRunsOnTheMembersClock(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	c := steppedCache(t, &now)
	if err := c.clock.Update(crdt.Timestamp{Wall: now.Load() + int64(20*time.Second), Node: 7}); err != nil {
		t.Fatal(err)
	}
	const ttl = 5 * time.Second
	if _, err := c.GetWithFiller(context.Background(), "k", func(context.Context, string) ([]byte, error) { return []byte("v"), nil }, ttl); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(ttl))
	if _, ok := c.Get("k"); ok {
		t.Fatalf("hit %v after GetWithFiller filled with a %v TTL, by this member's own clock (a peer's clock 20 s ahead)", ttl, ttl)
	}
}
