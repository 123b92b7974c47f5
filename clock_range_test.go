package bcache

import (
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestAClockPastTheStampableTimesDoesNotWrap: Config.Clock read through
// time.Time.UnixNano, which wraps outside 1678-2262. A clock that jumps
// forward by centuries (a bad RTC) read as 1715: a value written in 2026
// with a TTL of an hour was served still, its expiry centuries past.
func TestAClockPastTheStampableTimesDoesNotWrap(t *testing.T) {
	var now atomic.Pointer[time.Time]
	set := func(tm time.Time) { now.Store(&tm) }
	set(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tr, err := memnet.NewNetwork(1).NewTransport("a")
	if err != nil {
		t.Fatal(err)
	}
	c := newCache(t, Config{NodeName: "a", Network: tr, Timings: FastTimings(), GCInterval: time.Hour,
		Clock: func() time.Time { return *now.Load() }})
	if err := c.Set("k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	set(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC))
	if got := c.phys(); got != math.MaxInt64 {
		t.Errorf("the clock in 2300 read as %v, want the last time there is", time.Unix(0, got).UTC())
	}
	if _, ok := c.Get("k"); ok {
		t.Fatal("a value with a TTL of an hour, written in 2026, is served in 2300")
	}
	set(time.Time{}) // the zero time, year 1
	if got := c.phys(); got != math.MinInt64 {
		t.Errorf("the zero time read as %v, want the first time there is", time.Unix(0, got).UTC())
	}
}
