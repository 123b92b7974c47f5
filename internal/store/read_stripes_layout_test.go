package store

import (
	"reflect"
	"testing"
	"unsafe"
)

// TestReadStripesKeepLinesOfTheirOwn: wherever a Store lies (aligned to
// 8 bytes only), no 64-byte line holds the counts of two stripes, or a
// stripe's counts and a field of the store around them: the field before
// (stats) and the one after (watcher, own: read by every write).
func TestReadStripesKeepLinesOfTheirOwn(t *testing.T) {
	st := reflect.TypeFor[Store]()
	f, ok := st.FieldByName("reads")
	if !ok {
		t.Fatal("no reads field")
	}
	var prevEnd, nextStart uintptr = 0, st.Size()
	for i := range st.NumField() {
		g := st.Field(i)
		if g.Name == "_" {
			continue // padding
		}
		if g.Offset < f.Offset {
			prevEnd = max(prevEnd, g.Offset+g.Type.Size())
		} else if g.Offset > f.Offset {
			nextStart = min(nextStart, g.Offset)
		}
	}
	var rs readStripe
	for base := uintptr(0); base < 64; base += 8 {
		line := func(off uintptr) uintptr { return (base + off) / 64 }
		last, lastEnd := line(prevEnd-1), prevEnd
		for i := range readStripes {
			first := f.Offset + uintptr(i)*unsafe.Sizeof(rs) + unsafe.Offsetof(rs.hits)
			end := f.Offset + uintptr(i)*unsafe.Sizeof(rs) + unsafe.Offsetof(rs.misses) + unsafe.Sizeof(rs.misses)
			if line(first) <= last {
				t.Fatalf("store at %d mod 64: stripe %d's counts share a line with what comes before them", base, i)
			}
			last, lastEnd = line(end-1), end
		}
		if last >= line(nextStart) {
			t.Fatalf("store at %d mod 64: the last stripe's counts (ending at %d) share a line with the field at %d", base, lastEnd, nextStart)
		}
	}
}

// TestStatsSumsEveryStripe: a count in any stripe is in Stats (the
// readers of TestReadCountsAreExactAcrossReaders use a few stripes only).
func TestStatsSumsEveryStripe(t *testing.T) {
	s := mustStore(t, Config{})
	for i := range s.reads {
		s.reads[i].hits.Add(1)
		s.reads[i].misses.Add(2)
	}
	if st := s.Stats(); st.Hits != readStripes || st.Misses != 2*readStripes {
		t.Fatalf("%d hits and %d misses, want %d and %d", st.Hits, st.Misses, readStripes, 2*readStripes)
	}
}
