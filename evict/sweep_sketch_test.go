package evict

import (
	"fmt"
	"testing"
)

// TestForcedMainVictimsReadsReachTheSketch: a victim search that sends
// maxSweep values round takes the value at the front whatever its reads;
// those reads, not yet folded into the sketch (each value's are folded
// as it passes the front), must be folded all the same, as every other
// value's reads are once the search passes it: else a hot key taken that
// way comes back unknown to the sketch (a returning key is admitted to
// the main queue on its count), and a returning key competing with it
// in Add sees it as never read.
func TestForcedMainVictimsReadsReachTheSketch(t *testing.T) {
	const n, reads = maxSweep + 10, 6
	p, es := readMainQueue(n, n, reads, -1)
	v, ok := p.mainVictim()
	if !ok || v != es[maxSweep] {
		t.Fatalf("victim %v, want %s", v, es[maxSweep].name)
	}
	if got := p.sketch.estimate(uint64(v.Hash())); got < reads {
		t.Fatalf("the victim taken whatever its reads: sketch estimate %d, want %d or more", got, reads)
	}
	// Its reads are folded once: a second search, which sends it round
	// now, does not count them again.
	before := p.sketch.estimate(uint64(v.Hash()))
	p.mainVictim()
	if got := p.sketch.estimate(uint64(v.Hash())); got != before {
		t.Fatalf("folded again: estimate %d, was %d", got, before)
	}
	if freq(v.Use().Load()) != maxFreq-1 {
		t.Fatalf("the victim's credit %d after going round once, want %d", freq(v.Use().Load()), maxFreq-1)
	}
}

// TestForcedMainVictimDoomedByAReturningKeyGoes: a value taken from the
// main queue's front whatever its reads (maxSweep), whose place a
// returning key wins in Add, is doomed: the next Victim evicts it. (The
// doomed values read since they were chosen go back to the small queue;
// a forced victim's reads from before it was chosen, which the search
// left it, read as such a read, and it stayed while the key took its
// place: the main queue over its share, and the eviction elsewhere.)
func TestForcedMainVictimDoomedByAReturningKeyGoes(t *testing.T) {
	const n = maxSweep + 10
	p, es := readMainQueue(n+3, n, maxFreq, -1)
	for i := range 2 { // the small queue holds more than one: Add competes
		p.small.push(newEntry(fmt.Sprint("s", i)))
	}
	r := newEntry("returning")
	p.sketch.add(uint64(r.Hash()), 12) // seen far more often than the victim
	p.Add(r, Returned)
	if r.Slot()&queueMask != mainQueue {
		t.Fatalf("the returning key did not win the forced victim's place (slot %d)", r.Slot())
	}
	doomed := es[maxSweep]
	if doomed.Slot()&queueMask != doomedQueue || doomed.Slot() == 0 {
		t.Fatalf("the forced victim is not doomed (slot %d)", doomed.Slot())
	}
	v, ok := p.Victim(0)
	if !ok || v != doomed {
		t.Fatalf("victim %v, want the doomed %s (now in queue %d)", v, doomed.name, doomed.Slot()&queueMask)
	}
}
