package store

import (
	"fmt"
	"sync"
	"testing"
	"unsafe"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// testItem returns the item a shard's map makes for key and value.
func testItem(key, value string) *item {
	m, err := lww.New(lww.Config{DigestBits: 4, Alloc: newEntry})
	if err != nil {
		panic(err)
	}
	_, e := m.Merge(crdt.Record{Key: key, Value: []byte(value), Time: crdt.Timestamp{Wall: 1, Node: 1}}, false, 0, nil)
	it := itemOf(e)
	it.hash = uint32(crdt.HashKey(key))
	return it
}

// TestItemReadersSeeWholeWrites has readers load an item while a writer
// merges new values of changing lengths into it, in place, as a shard
// does; run with -race. Every load must return a value and an expiry
// written together.
func TestItemReadersSeeWholeWrites(t *testing.T) {
	s := mustStore(t, Config{Shards: 1})
	sh, ih := s.locate("k")
	write := func(i int) {
		exp := int64(i) * 977 // lengths vary from 1 to 9 digits
		sh.mu.Lock()
		sh.apply(crdt.Record{Key: "k", Value: []byte(fmt.Sprint(exp)), Expires: exp, Time: crdt.Timestamp{Wall: int64(i) + 1, Node: 1}}, ih, merge{}, 0, sh.m.Entry("k"))
		sh.mu.Unlock()
	}
	write(0)
	it := sh.resident("k")
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				v, exp := it.load()
				if want := fmt.Sprint(exp); string(v) != want {
					t.Errorf("loaded value %q with expiry %d: torn write", v, exp)
					return
				}
				if cap(v) != len(v) {
					t.Errorf("loaded value has capacity %d past its length %d", cap(v), len(v))
					return
				}
			}
		}()
	}
	for i := range 200_000 {
		write(i + 1)
	}
	close(done)
	wg.Wait()
	if sh.resident("k") != it {
		t.Fatal("a value written over a value moved the key to a new item")
	}
}

func TestItemEmptyValueIsNotNil(t *testing.T) {
	it := testItem("k", "")
	if v, _ := it.load(); v == nil || len(v) != 0 {
		t.Fatalf("empty value loads as %#v, want an empty non-nil slice", v)
	}
}

// TestItemSize pins the item, the one allocation of a resident key but
// its value, to the allocator's 96-byte size class: the entry's 64, the
// index's and the policy's fields, and a short key's bytes. Past 96 the
// next class is 112.
func TestItemSize(t *testing.T) {
	if got := unsafe.Sizeof(item{}); got != 96 && unsafe.Sizeof(uintptr(0)) == 8 { // the size of 64-bit platforms (88 bytes where pointers have 32 bits)
		t.Fatalf("item is %d bytes, want 96", got)
	}
}

// A short key's bytes live in its item; a longer key's do not, and a key
// that loses its value keeps its own copy, not the item's.
func TestItemHoldsShortKeys(t *testing.T) {
	s := mustStore(t, Config{Shards: 1})
	inItem := func(key string) bool {
		sh, _ := s.locate(key)
		it := sh.resident(key)
		if it == nil {
			t.Fatalf("%s is not resident", key)
		}
		p, base := uintptr(unsafe.Pointer(unsafe.StringData(it.Key()))), uintptr(unsafe.Pointer(it))
		return p >= base && p < base+unsafe.Sizeof(item{})
	}
	buf := []byte("0123456789abcdef-and-more")
	short, long := string(buf[:16]), string(buf)
	for i, key := range []string{short, long} {
		if _, err := s.Write(crdt.Record{Key: key, Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(i) + 1, Node: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if !inItem(short) || inItem(long) {
		t.Fatalf("16-byte key held in its item: %v, 25-byte key: %v; want true, false", inItem(short), inItem(long))
	}
	if _, err := s.Write(crdt.Record{Key: short, Time: crdt.Timestamp{Wall: 3, Node: 1}, Tombstone: true}); err != nil {
		t.Fatal(err)
	}
	r, ok := s.Lookup(short)
	if !ok || !r.Tombstone || r.Key != short {
		t.Fatalf("after the delete: %+v, %v", r, ok)
	}
}
