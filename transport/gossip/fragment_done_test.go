package gossip

import (
	"fmt"
	"testing"
	"time"
)

// sendWhole sends every fragment of a frame of parts from from under id to a
// at at, and returns how many times the frame came whole.
func sendWhole(a *reassembly, from string, id uint64, parts [][]byte, at time.Time) (n int) {
	for i, p := range parts {
		if f, _, _ := a.add(from, id, i, len(parts), p, at); f != nil {
			n++
		}
	}
	return n
}

// TestAWholeFrameIsNotMadeAgain: every fragment of a frame made whole
// that comes again (a network that duplicates, the sender's second round
// delayed) is ignored, also after partialTTL and after more than
// maxPartial frames of other senders. The whole frame was kept among the
// partial frames, for partialTTL and only while it was not pushed out:
// its copies then made it again, and the protocol received it twice
// (found by review).
func TestAWholeFrameIsNotMadeAgain(t *testing.T) {
	now := time.Unix(1000, 0)
	parts := [][]byte{[]byte("ab"), []byte("cd"), []byte("e")}
	for name, between := range map[string]func(a *reassembly) time.Time{
		"after partialTTL": func(*reassembly) time.Time { return now.Add(partialTTL + time.Second) },
		"after a minute":   func(*reassembly) time.Time { return now.Add(time.Minute) },
		"after other senders' frames": func(a *reassembly) time.Time {
			for i := range maxPartial {
				a.add(fmt.Sprint("peer", i), 1, 0, 2, []byte("x"), now)
			}
			return now
		},
		"after another sender's whole frames": func(a *reassembly) time.Time {
			for i := range 10 * maxPartial {
				a.add("flooder", uint64(i), 0, 1, []byte("x"), now)
			}
			return now
		},
	} {
		t.Run(name, func(t *testing.T) {
			var a reassembly
			if n := sendWhole(&a, "p", 7, parts, now); n != 1 {
				t.Fatalf("the frame came whole %d times, want 1", n)
			}
			at := between(&a)
			if n := sendWhole(&a, "p", 7, parts, at); n != 0 {
				t.Fatalf("its copies made the frame again (%d times)", n)
			}
			if n := sendWhole(&a, "p", 8, parts, at); n != 1 {
				t.Fatalf("the sender's next frame came whole %d times, want 1", n)
			}
		})
	}
}

// TestWholeFramesRememberedAreBounded: the frames made whole are
// remembered for at most doneSenders senders, doneEach of each, whatever
// senders send (a member holding the key may send fragments of
// one-fragment frames under every member's name); a sender's last ones
// are remembered, and a frame of a sender pushed out still comes whole
// once.
func TestWholeFramesRememberedAreBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	var a reassembly
	for s := range 2 * doneSenders {
		for id := range uint64(2 * doneEach) {
			if f, _, _ := a.add(fmt.Sprint("peer", s), id, 0, 1, []byte("x"), now); f == nil {
				t.Fatalf("peer%d's frame %d did not come whole", s, id)
			}
		}
		now = now.Add(time.Millisecond)
	}
	if len(a.done) > doneSenders {
		t.Fatalf("whole frames remembered of %d senders, bound %d", len(a.done), doneSenders)
	}
	last := fmt.Sprint("peer", 2*doneSenders-1)
	for id := uint64(doneEach); id < 2*doneEach; id++ {
		if f, _, _ := a.add(last, id, 0, 1, []byte("x"), now); f != nil {
			t.Fatalf("%s's frame %d, one of its last %d, came whole again", last, id, doneEach)
		}
	}
	if f, _, _ := a.add(last, doneEach-1, 0, 1, []byte("x"), now); f == nil {
		t.Fatalf("%s's frame %d, before its last %d, did not come whole again", last, doneEach-1, doneEach)
	}
	if f, _, _ := a.add("peer0", 2*doneEach-1, 0, 1, []byte("x"), now); f == nil {
		t.Fatal("a frame of a sender no longer remembered did not come whole")
	}
	if len(a.partials) != 0 || a.bytes != 0 {
		t.Fatalf("%d partial frames, %d bytes held after whole frames alone", len(a.partials), a.bytes)
	}
}
