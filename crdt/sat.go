package crdt

import "math"

// AddSat returns a+b, clamped to the int64 range instead of wrapping: time
// sums (a wall time plus a TTL, a horizon subtracted from a mark) must
// never wrap around, whatever a caller or a peer passes in.
func AddSat(a, b int64) int64 {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
}

// SubSat returns a-b, clamped to the int64 range instead of wrapping.
func SubSat(a, b int64) int64 {
	if b == math.MinInt64 {
		if a >= 0 {
			return math.MaxInt64
		}
		return a - b // a < 0: a - MinInt64 = a + 2^63 fits
	}
	return AddSat(a, -b)
}
