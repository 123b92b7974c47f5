package near

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

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

// Get and Put from many goroutines, while GOMAXPROCS changes and
// collections empty the pool, hand out slots of the slice alone.
func TestGetUnderChurnHandsOutSlotsOfTheSlice(t *testing.T) {
	all := make([]int64, 6)
	var s Slots[int64]
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			runtime.GOMAXPROCS(1 + i%5)
			runtime.GC()
		}
	}()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20000 {
				p := s.Get(all)
				i := (uintptr(unsafe.Pointer(p)) - uintptr(unsafe.Pointer(&all[0]))) / unsafe.Sizeof(all[0])
				if i >= uintptr(len(all)) || p != &all[i] {
					t.Error("Get returned a pointer outside the slice")
					return
				}
				atomic.AddInt64(p, 1)
				s.Put(p)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-done
}
