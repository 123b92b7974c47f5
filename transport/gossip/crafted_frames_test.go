package gossip

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// TestCraftedCallAndFragmentFramesAreBounded: call and fragment frames a
// member holding the key could craft (any kind, id, fragment index and
// count, payload; under a live member's name, its own, or one made up),
// thrown at the receiving entry point, never panic, and what the member
// holds for them stays within its bounds: partial frames, their bytes,
// the frames made whole it remembers, the calls served and the answers kept.
func TestCraftedCallAndFragmentFramesAreBounded(t *testing.T) {
	a := startNode(t, "a", nil, func(c *Config) {
		c.OnCall = func(string, []byte) []byte { return []byte("answer") }
	})
	b := startNode(t, "b", []string{a.r.Addr()})
	waitMembers(t, 2, a, b)
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"b", "a", "nobody", ""}
	for range 20000 {
		name := names[rng.IntN(len(names))]
		frame := []byte{callMarker, byte(len(name))}
		frame = append(frame, name...)
		frame = append(frame, byte(rng.IntN(7)))
		frame = binary.LittleEndian.AppendUint64(frame, rng.Uint64N(64))
		switch rng.IntN(3) {
		case 0: // a fragment, its index and count anything
			frame = append(frame, byte(rng.IntN(20)), byte(rng.IntN(20)))
		case 1:
			frame = append(frame, byte(rng.IntN(3)))
		}
		payload := make([]byte, rng.IntN(3000))
		for i := range payload {
			payload[i] = byte(rng.IntN(4))
		}
		frame = append(frame, payload...)
		if rng.IntN(10) == 0 {
			frame = frame[:rng.IntN(len(frame)+1)]
		}
		a.r.received(frame)
	}
	a.r.frags.mu.Lock()
	partials, held, done := len(a.r.frags.partials), a.r.frags.bytes, len(a.r.frags.done)
	a.r.frags.mu.Unlock()
	if partials > maxPartial || held > maxPartialBytes || held < 0 || done > doneSenders {
		t.Fatalf("%d partial frames, %d bytes held, whole frames of %d senders remembered; bounds %d, %d and %d", partials, held, done, maxPartial, maxPartialBytes, doneSenders)
	}
	a.r.calls.mu.Lock()
	answered, size := len(a.r.calls.answered), a.r.calls.answeredSize
	a.r.calls.mu.Unlock()
	if answered > answeredCalls || size > answeredBytes || size < 0 {
		t.Fatalf("%d answers kept, %d bytes; bounds %d and %d", answered, size, answeredCalls, answeredBytes)
	}
	if st := a.r.Stats(); st.BadFrames == 0 || st.CallRepeats == 0 {
		t.Fatalf("refusals not counted: %+v", st)
	}
	await.Until(t, 10*time.Second, func() bool { return a.r.calls.serving.Load() == 0 }, "calls still served")
	await.Until(t, 10*time.Second, func() bool { return !a.r.frags.holding() }, "partial frames held past their time")
}
