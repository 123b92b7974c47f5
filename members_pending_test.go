package bcache

import (
	"runtime"
	"strings"
	"testing"
)

// TestMembersFilePendingIsCountedAsItIsDecoded: the pending snapshots of
// a members file are bounded (maxPending) as the members are, counted as
// they are decoded: a file within its size limit holding millions of
// pending times ("0,") was decoded whole, hundreds of MiB, before its
// count was checked.
func TestMembersFilePendingIsCountedAsItIsDecoded(t *testing.T) {
	pending := func(n int) []byte {
		return []byte(`{"version":1,"members":[],"pending":[` + strings.TrimSuffix(strings.Repeat("0,", n), ",") + "]}")
	}
	if f, err := decodeKnown(pending(maxPending)); err != nil || len(f.Pending) != maxPending {
		t.Fatalf("%d pending: %d, %v", maxPending, len(f.Pending), err)
	}
	if _, err := decodeKnown(pending(maxPending + 1)); err == nil {
		t.Fatalf("%d pending taken", maxPending+1)
	}
	huge := pending((maxKnownBytes - 60) / 2)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := decodeKnown(huge)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a file of millions of pending snapshots taken")
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Fatalf("refusing %d bytes of pending snapshots allocated %d MiB", len(huge), got>>20)
	}
	for _, in := range []string{`{"version":1,"pending":null}`, `{"version":1,"pending":[1,2]}`, `{"version":1,"pending":[]}`} {
		if _, err := decodeKnown([]byte(in)); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
	}
	for _, in := range []string{`{"version":1,"pending":{}}`, `{"version":1,"pending":["a"]}`, `{"version":1,"pending":[1,}`, `{"version":1,"pending":1}`} {
		if _, err := decodeKnown([]byte(in)); err == nil {
			t.Fatalf("%s taken", in)
		}
	}
}
