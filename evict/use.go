package evict

import "sync/atomic"

// An entry's use word records its reads: the low two bits are the reads
// the queues give credit for (0 to 3), the six bits above them the reads
// not yet folded into the sketch (0 to maxPending); the top bit
// (filledMark) marks an unread value that filled the main queue's room
// (see Policy.Victim), and a read clears it; the bit below it
// (halfwayMark) marks a value of the small queue found unread halfway
// through it (see Policy.markHalfway), and a read keeps it.
const (
	freqBits    = 2
	maxFreq     = 1<<freqBits - 1
	maxPending  = 63
	saturated   = maxPending<<freqBits | maxFreq
	filledMark  = 1 << 31
	halfwayMark = 1 << 30
)

// Touch records a read of the entry whose use word is w: one atomic load,
// and one store unless the word is saturated (halfwayMark, which a read
// keeps, aside: a hot value of the small queue marked so stored at every
// hit). Concurrent readers may lose each other's increments; the policy
// needs no exact count.
func Touch(w *atomic.Uint32) {
	if v := w.Load(); v&^halfwayMark != saturated {
		w.Store(bump(v))
	}
}

// bump returns v with one more read.
func bump(v uint32) uint32 {
	freq, pending := v&maxFreq, v>>freqBits&maxPending
	return v&halfwayMark | min(pending+1, maxPending)<<freqBits | min(freq+1, maxFreq)
}

// freq returns the reads the queues give credit for.
func freq(v uint32) uint32 { return v & maxFreq }

// pending returns the reads not yet folded into the sketch.
func pending(v uint32) uint32 { return v >> freqBits & maxPending }
