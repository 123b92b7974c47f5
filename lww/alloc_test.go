package lww

import (
	"testing"
	"unsafe"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/rapidfail"
	"pgregory.net/rapid"
)

// boxed is what a caller of Config.Alloc keeps per key: the entry first,
// its own fields after.
type boxed struct {
	Entry
	own    [4]uint64
	keyBuf [8]byte // the key, held in the entry's allocation
}

// TestAllocatedEntriesHoldValues: with Config.Alloc, every entry that
// holds a value is one of Alloc's and every other entry is not; a key
// that gains or loses its value moves to a new entry and the entry it
// left is never written again (its caller may still be reading it); and
// the map holds what a map without Alloc holds, digest included.
func TestAllocatedEntriesHoldValues(t *testing.T) {
	rapid.Check(t, allocProperty(false))
}

// TestAllocatedEntriesCatchesWritesInPlace: a map that writes a tombstone
// or an eviction into an entry of Alloc's, instead of moving the key,
// fails the property.
func TestAllocatedEntriesCatchesWritesInPlace(t *testing.T) {
	if !rapidfail.Fails(t, "AllocWithoutMove", allocProperty(true)) {
		t.Fatal("the property passed a map that writes entries in place")
	}
}

func allocProperty(noMove bool) func(*rapid.T) {
	return func(t *rapid.T) {
		u := universe{}
		allocated := map[*Entry]bool{}
		m := newMap(t, Config{DigestBits: 4, Horizon: 5, Alloc: func(key string) (*Entry, string) {
			b := &boxed{}
			allocated[&b.Entry] = true
			n := copy(b.keyBuf[:], key) // keys of the alphabet are one byte
			return &b.Entry, unsafe.String(&b.keyBuf[0], n)
		}})
		m.noMove = noMove
		plain := newMap(t, Config{DigestBits: 4, Horizon: 5})
		left := map[*Entry]crdt.Record{} // entries the map no longer holds, as they were then
		for i := range rapid.IntRange(0, 60).Draw(t, "steps") {
			before := heldEntries(m)
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0, 1:
				r := u.draw(t, "record")
				o, e := m.Merge(clone(r), false, 0, nil)
				apply(plain, clone(r))
				if o == crdt.Applied && (e == nil || m.entries.get(r.Key) != e) {
					t.Fatalf("step %d: Merge applied %s and returned %p, not the key's entry", i, r.Key, e)
				}
			case 2:
				k := rapid.SampledFrom(keys).Draw(t, "evict")
				m.Evict(k)
				plain.Evict(k)
			case 3:
				now := rapid.Int64Range(0, 60).Draw(t, "gc now")
				m.GC(nil, now, NoStable)
				plain.GC(nil, now, NoStable)
			}
			after := heldEntries(m)
			for e, r := range before {
				if _, ok := after[e]; !ok {
					left[e] = r
				}
			}
			for e, r := range left {
				if got := e.Record(); !sameRecord(got, r) || (len(r.Value) > 0 && &got.Value[0] != &r.Value[0]) {
					t.Fatalf("step %d: entry of %s written after the map let it go: %+v, was %+v", i, r.Key, got, r)
				}
			}
			for e := range after {
				if !e.HoldsValue() && len(e.key) > 0 && inBox(e.key, allocated) {
					t.Fatalf("step %d: the stub of %s holds its key in an entry of Alloc's", i, e.key)
				}
				if e.HoldsValue() != allocated[e] {
					t.Fatalf("step %d: %s holds a value: %v, made by Alloc: %v", i, e.key, e.HoldsValue(), allocated[e])
				}
				if m.entries.get(e.key) != e {
					t.Fatalf("step %d: the table's entry of %s is not its bucket's", i, e.key)
				}
			}
			if len(after) != m.Records() {
				t.Fatalf("step %d: %d entries in buckets, %d in the table", i, len(after), m.Records())
			}
			assertSameState(t, "with and without Alloc", m, plain)
		}
	}
}

// inBox reports whether key's bytes lie in one of the boxes made.
func inBox(key string, allocated map[*Entry]bool) bool {
	p := uintptr(unsafe.Pointer(unsafe.StringData(key)))
	for e := range allocated {
		b := uintptr(unsafe.Pointer(e))
		if p >= b && p < b+unsafe.Sizeof(boxed{}) {
			return true
		}
	}
	return false
}

// heldEntries returns every entry in m's buckets, with its record.
func heldEntries(m *Map) map[*Entry]crdt.Record {
	held := map[*Entry]crdt.Record{}
	for _, e := range m.heads {
		for ; e != nil; e = e.next {
			held[e] = e.Record()
		}
	}
	return held
}
