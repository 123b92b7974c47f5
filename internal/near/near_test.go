package near

import "testing"

// With nothing put back, Get hands out every slot in turn, and only
// slots of the slice it is given.
func TestGetHandsOutEverySlotInTurn(t *testing.T) {
	all := make([]int, 5)
	var s Slots[int]
	seen := map[*int]bool{}
	for range len(all) {
		p := s.Get(all)
		if p == nil {
			t.Fatal("Get returned nil")
		}
		seen[p] = true
	}
	if len(seen) != len(all) {
		t.Fatalf("%d calls handed out %d distinct slots, want %d", len(all), len(seen), len(all))
	}
	for i := range all {
		if !seen[&all[i]] {
			t.Fatalf("slot %d never handed out", i)
		}
	}
}
