package crdt

import (
	"math"
	"math/big"
	"testing"

	"pgregory.net/rapid"
)

func clamp(v *big.Int) int64 {
	switch {
	case v.Cmp(big.NewInt(math.MaxInt64)) > 0:
		return math.MaxInt64
	case v.Cmp(big.NewInt(math.MinInt64)) < 0:
		return math.MinInt64
	}
	return v.Int64()
}

// TestSaturatingArithmetic checks AddSat and SubSat against exact
// arithmetic, with the int64 extremes drawn often.
func TestSaturatingArithmetic(t *testing.T) {
	edge := rapid.SampledFrom([]int64{math.MinInt64, math.MinInt64 + 1, -1, 0, 1, math.MaxInt64 - 1, math.MaxInt64})
	num := rapid.OneOf(edge, rapid.Int64())
	rapid.Check(t, func(t *rapid.T) {
		a, b := num.Draw(t, "a"), num.Draw(t, "b")
		if got, want := AddSat(a, b), clamp(new(big.Int).Add(big.NewInt(a), big.NewInt(b))); got != want {
			t.Fatalf("AddSat(%d, %d) = %d, want %d", a, b, got, want)
		}
		if got, want := SubSat(a, b), clamp(new(big.Int).Sub(big.NewInt(a), big.NewInt(b))); got != want {
			t.Fatalf("SubSat(%d, %d) = %d, want %d", a, b, got, want)
		}
	})
}
