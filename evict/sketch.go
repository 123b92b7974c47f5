package evict

import "math/bits"

// sketch is a count-min sketch of 4-bit counters in four rows of four
// counters per entry of capacity (8 bytes an entry), for keys given as
// hashes. Every ten capacities of additions it halves every counter, so
// that it counts recent events and forgets old ones.
type sketch struct {
	rows       [4][]uint64 // 16 counters a word
	mask       uint64      // counters per row, less one
	added      int
	resetAfter int
}

// counterShare is the counters per row for each entry of capacity, and
// resetShare the additions between halvings, in capacities.
const (
	counterShare = 4
	resetShare   = 10
	minCapacity  = 1024 // below it, a few hundred keys would fill the counters with noise
)

// init sizes the sketch for a capacity of entries, emptying it.
func (s *sketch) init(capacity int) {
	capacity = max(capacity, minCapacity)
	n := 1 << bits.Len(uint(counterShare*capacity-1)) // a power of two
	for i := range s.rows {
		s.rows[i] = make([]uint64, n/16)
	}
	s.mask = uint64(n - 1)
	s.added, s.resetAfter = 0, resetShare*capacity
}

// capacity returns the capacity the sketch was sized for.
func (s *sketch) capacity() int { return s.resetAfter / resetShare }

// index returns the counter of row i for hash h: the row's own offset,
// then a mix in which every bit of the result depends on every bit of
// both. (A different multiplier per row kept the rows' low bits in step:
// two keys sharing a counter in one row shared one in every row about
// 3,000 times as often as rows drawn independently would, and the sketch
// counted as if it had one row; found by review.)
func (s *sketch) index(h uint64, i int) uint64 {
	h += uint64(i+1) * 0x9e3779b97f4a7c15
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h & s.mask
}

// add counts n events of hash h. It raises only the counters that hold
// the estimate (a conservative update): counters shared with other keys
// grow less, so estimates stay closer to the truth.
func (s *sketch) add(h uint64, n uint32) {
	for range n {
		est := s.estimate(h)
		if est == 15 {
			return
		}
		for i := range s.rows {
			c := s.index(h, i)
			if w, shift := &s.rows[i][c/16], c%16*4; *w>>shift&15 == uint64(est) {
				*w += 1 << shift
			}
		}
		if s.added++; s.added >= s.resetAfter {
			s.halve()
		}
	}
}

// estimate returns how often hash h was counted, at least.
func (s *sketch) estimate(h uint64) uint32 {
	est := uint64(15)
	for i := range s.rows {
		c := s.index(h, i)
		est = min(est, s.rows[i][c/16]>>(c%16*4)&15)
	}
	return uint32(est)
}

// halve halves every counter.
func (s *sketch) halve() {
	const keep = 0x7777777777777777 // each counter's low three bits, after the shift
	for _, row := range s.rows {
		for j := range row {
			row[j] = row[j] >> 1 & keep
		}
	}
	s.added /= 2
}
