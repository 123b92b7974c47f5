package evict

import (
	"fmt"
	"runtime"
	"testing"
)

// TestPeersWriteMovesFewNodes: a member receives every peer's writes, and
// its cache may hold mostly those. Their heap was one slice grown by
// append: the write that found it full copied every node, 24 bytes each
// (24 MB under the store's eviction lock at a million peers' writes), and
// a removal that left it a quarter full copied it again. No write
// allocates more than a block of nodes now. (Counted in bytes allocated
// by each write, not time.)
func TestPeersWriteMovesFewNodes(t *testing.T) {
	const from, to = 50_000, 70_000 // append grows a slice by 1.25 at least within
	p := new(Policy[*entry])
	p.Init(1 << 20) // the sketch and ghost sized at once: no write grows them
	es := make([]*entry, to)
	for i := range es {
		es[i] = newEntry(fmt.Sprint("k", i))
		es[i].written = int64(i)
	}
	for _, e := range es[:from] {
		p.Add(e, Received)
	}
	var before, after runtime.MemStats
	worst := uint64(0)
	for _, e := range es[from:] {
		runtime.ReadMemStats(&before)
		p.Add(e, Received)
		runtime.ReadMemStats(&after)
		worst = max(worst, after.TotalAlloc-before.TotalAlloc)
	}
	if limit := uint64(64 << 10); worst > limit {
		t.Fatalf("a peer's write allocated %d bytes at %d to %d held, want %d at most", worst, from, to, limit)
	}
}
