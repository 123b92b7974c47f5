package bcache

import (
	"testing"
	"time"
)

// TestAReaderThatLeavesReleasesItsPull: a key's readers share its pulls
// (recentPulls): one whose turn comes within PullAfter of another's pull
// leaves it to that one. A reader that leaves drops its pull's answer
// with its asks, so it forgets the pull (release): the next reader pulls
// at once. Not kept, a caller that left each read just after its pull
// had the key's other readers skip every turn (found by review). A
// release of a pull that is no longer the last changes nothing.
func TestAReaderThatLeavesReleasesItsPull(t *testing.T) {
	var p recentPulls
	const within = time.Hour
	first, ok := p.take("k", within)
	if !ok {
		t.Fatal("the first pull of k was refused")
	}
	if _, ok := p.take("k", within); ok {
		t.Fatal("a second pull within the window was taken")
	}
	p.release("k", first)
	second, ok := p.take("k", within)
	if !ok {
		t.Fatal("a pull after the first reader left was refused")
	}
	p.release("k", first) // the first reader's again: not the last pull
	if _, ok := p.take("k", within); ok {
		t.Fatal("a stale release forgot the second reader's pull")
	}
	p.release("k", second)
	if _, ok := p.take("k", within); !ok {
		t.Fatal("a pull after the second reader left was refused")
	}
	var empty recentPulls
	empty.release("k", 0) // nothing noted: no panic
}
