package proptest

import (
	"runtime"
	"testing"
)

// TestALargeVersionsFrameLeavesNoScratch: after one Versions frame as
// large as a stream frame holds (700,000 versions in one leaf, 20 MB,
// each compared with the leaf's own: the costliest frame there is, which
// allocates about 67 MB), the production member of 100,000 keys keeps
// less than a MiB of the heap, after a collection, than before it: none
// of the buffers, slices or maps decoding and comparing it grew (the
// decoded versions alone take 28 MB, the wants 5.6 MB) is kept for a
// later frame. TestHostileFrameCosts measures the same frame only after
// a warm-up frame of its kind, so that scratch kept from frame to frame,
// grown by the first, would not show there. Measured: a few KiB (a
// review's note took the frame's 67 MB of allocations for memory kept).
//
// Broken variants caught (each tried, then undone): receiveVersions
// keeping its wants as the node's scratch, grown to the frame's 700,000
// (5.6 MB retained); the node keeping the last Versions it decoded.
func TestALargeVersionsFrameLeavesNoScratch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a member of 100,000 keys and a 20 MB frame")
	}
	r, frames := hostileMember(t)
	var big, small func() []byte
	for _, f := range frames {
		switch f.name {
		case "versions-one-leaf-full-frame":
			big = f.frame
		case "versions-max-leaves":
			small = f.frame
		}
	}
	// A frame of the common size first: what it leaves (its session's
	// state) is no part of the large one's.
	r.node.Receive(adversaryName, small(), start)
	frame := big() // its session opened, the frame built before the measure
	heap := func() int64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	before := heap()
	out, err := r.node.Receive(adversaryName, frame, start)
	if err != nil || len(out) == 0 {
		t.Fatalf("the frame was not answered (%d envelopes): %v", len(out), err)
	}
	out = nil
	retained := heap() - before
	runtime.KeepAlive(frame)
	runtime.KeepAlive(r)
	t.Logf("a Versions frame of %d bytes: %d bytes of the heap retained after a collection", len(frame), retained)
	if bound := int64(1 << 20); retained > bound {
		t.Errorf("the member kept %d bytes after a Versions frame of %d bytes, over %d", retained, len(frame), bound)
	}
}
