//go:build linux

package evict

import (
	"fmt"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"
)

// TestHotValueReadsStoreNothing: a value read many times stores nothing
// more on a hit, whatever marks its use word carries (readers on many
// processors would pass its line between them at every read). A cache of
// 2,000 entries, not full yet, its values written first and read after:
// all but the newest share-half were marked halfway (markHalfway), and
// stay in the small queue while the cache does not fill. The word of one
// read 1,000 times is copied to a read-only page: a Touch of it that
// stores faults.
func TestHotValueReadsStoreNothing(t *testing.T) {
	const n = 2000
	var p Policy[*entry]
	p.Init(n)
	es := make([]*entry, n)
	for i := range es {
		es[i] = newEntry(fmt.Sprint("k", i))
		p.Add(es[i], New)
	}
	for range 1000 {
		Touch(es[0].Use())
	}
	v := es[0].use.Load()
	page, err := syscall.Mmap(-1, 0, os.Getpagesize(), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skip(err)
	}
	defer syscall.Munmap(page)
	w := (*atomic.Uint32)(unsafe.Pointer(&page[0]))
	w.Store(v)
	if err := syscall.Mprotect(page, syscall.PROT_READ); err != nil {
		t.Skip(err)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("a hit on a value read 1,000 times (use word %#x) stored: %v", v, r)
		}
	}()
	Touch(w)
}
