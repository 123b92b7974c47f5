package bcache

import (
	"math"
	"testing"
	"time"
)

// A Timings field of time.Duration(math.MaxInt64), a common "forever", is
// a valid Config (Timings refuses only negative fields and those under a
// millisecond): a member starts with it, and closes. TCPTimeout was
// doubled without saturating into the protocol's EndedFor, which wrapped
// negative, and New failed with "gossip: transport: invalid config:
// negative duration or size", an error that named no field the caller
// set and did not wrap ErrConfig.
func TestForeverTimingsStart(t *testing.T) {
	forever := time.Duration(math.MaxInt64)
	for _, tc := range []struct {
		name string
		set  func(*Timings)
	}{
		{"TCPTimeout", func(tm *Timings) { tm.TCPTimeout = forever }},
		{"TCPTimeout 2^62", func(tm *Timings) { tm.TCPTimeout = 1 << 62 }},
		{"ProbeInterval", func(tm *Timings) { tm.ProbeInterval = forever }},
		{"RejoinInterval", func(tm *Timings) { tm.RejoinInterval = forever }},
	} {
		tm := FastTimings()
		tc.set(&tm)
		c, err := New(Config{BindAddr: "127.0.0.1:0", Timings: tm})
		if err != nil {
			t.Errorf("%s forever: New: %v", tc.name, err)
			continue
		}
		if err := c.Set("k", []byte("v"), 0); err != nil {
			t.Errorf("%s forever: Set: %v", tc.name, err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s forever: Close: %v", tc.name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s forever: Close hangs", tc.name)
		}
	}
}
