package crdt

import (
	"testing"

	"github.com/bcache-go/bcache/internal/wallclock"
)

// BenchmarkClockNow measures one HLC tick over the production physical
// source (see internal/wallclock).
func BenchmarkClockNow(b *testing.B) {
	c := NewHLC(1, wallclock.New().Now, 0)
	for b.Loop() {
		c.Now()
	}
}

// BenchmarkClockNowManual measures the HLC logic alone over a clock that
// stands still: every tick takes the logical-counter path.
func BenchmarkClockNowManual(b *testing.B) {
	c := NewHLC(1, NewManualTime(1).Now, 0)
	for b.Loop() {
		c.Now()
	}
}

// BenchmarkClockNowContended measures ticks from every P at once.
func BenchmarkClockNowContended(b *testing.B) {
	c := NewHLC(1, wallclock.New().Now, 0)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Now()
		}
	})
}

func BenchmarkHashKey16(b *testing.B) {
	k := "user:00000000042"
	var sink uint64
	for b.Loop() {
		sink += HashKey(k)
	}
	_ = sink
}
