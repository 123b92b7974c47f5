package bcache

import (
	"math"
	"testing"
	"time"
)

// TestFloorEveryOfAForeverInterval: the clock floor is written at most
// every five anti-entropy intervals, from half a second to a minute. An
// interval of 2^61 ns or more (a century, a "forever") made five of them
// wrap below zero, and the floor was written every half second, a
// hundred and twenty times as often as with an interval of an hour.
func TestFloorEveryOfAForeverInterval(t *testing.T) {
	for _, aei := range []time.Duration{time.Hour, 100 * 365 * 24 * time.Hour, 1 << 61, time.Duration(math.MaxInt64)} {
		c := &Cache{cfg: Config{AntiEntropyInterval: aei}}
		if got := c.floorEvery(); got != time.Minute {
			t.Errorf("AntiEntropyInterval %v: the floor is written every %v, want a minute", aei, got)
		}
	}
}
