package gossip

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/bcache-go/bcache/crdt"
)

// writeQueue hands local writes from any goroutine to the loop. Writers
// append to a stripe of the queue under its short lock, one stripe per
// processor (see near); the loop takes everything queued at once, so
// under load it handles thousands of writes per wake-up instead of one per
// channel receive. It is bounded: a write that finds it full is refused.
//
// One lock for every writer was the busiest lock of a write: 16 writers
// on 2 cores spent 6-12 s blocked on it per 2,000,000 writes
// (BenchmarkSyncPolicies' mutex profile), in convoys that left a core
// idle. Writes on one processor keep their order; writes from different
// processors have none to keep (the loop coalesces a key's writes by
// their versions).
//
// Writes are kept in fixed-size chunks that the loop hands back once it
// has handled them, so a busy queue neither allocates nor copies as it
// fills: a single growing slice would reallocate (and the collector scan)
// megabytes of records per wake-up. Up to spareChunks spare chunks are
// kept, or as many as the last wake-up used, so a burst's chunks are let go
// once it is over.
type writeQueue struct {
	stripes []queueStripe
	// near hands out the stripes per processor, as a sync.Pool keeps its
	// items: a stripe put back is the one the next push on that processor
	// gets, until a collection empties the pool; then next deals them out.
	near sync.Pool
	next atomic.Uint32
	n    atomic.Int64 // writes queued
	max  int64
	wake chan struct{} // signalled when the queue goes from empty to not

	mu   sync.Mutex      // guards free
	free [][]crdt.Record // empty chunks for reuse
}

// queueStripe is one processor's part of the queue.
type queueStripe struct {
	mu     sync.Mutex
	chunks [][]crdt.Record // only the last chunk has room
	_      [64 - 8 - 24]byte
}

const (
	// chunkLen is the number of writes per chunk: about 20 KiB of records.
	chunkLen = 256
	// spareChunks is how many empty chunks are always kept once allocated.
	// A busy writer fills one chunk while the loop ships another, and the
	// loop often takes a chunk only partly filled.
	spareChunks = 8
	// maxQueueStripes bounds the stripes: one per processor, up to it.
	maxQueueStripes = 16
)

func newWriteQueue(max int) *writeQueue {
	return newStripedQueue(max, min(runtime.GOMAXPROCS(0), maxQueueStripes))
}

func newStripedQueue(max, stripes int) *writeQueue {
	return &writeQueue{max: int64(max), wake: make(chan struct{}, 1), stripes: make([]queueStripe, stripes)}
}

// push queues r and reports whether there was room. The bound is checked
// before r is queued and r counted after, so that a counted write is
// always in a stripe or taken (see take); concurrent pushes may pass it by
// one each.
func (q *writeQueue) push(r crdt.Record) bool {
	if q.n.Load() >= q.max {
		return false
	}
	s, _ := q.near.Get().(*queueStripe)
	if s == nil {
		s = &q.stripes[q.next.Add(1)%uint32(len(q.stripes))]
	}
	s.mu.Lock()
	last := len(s.chunks) - 1
	if last < 0 || len(s.chunks[last]) == chunkLen {
		s.chunks = append(s.chunks, q.chunk())
		last++
	}
	s.chunks[last] = append(s.chunks[last], r)
	s.mu.Unlock()
	q.near.Put(s)
	n := q.n.Add(1)
	if n == 1 {
		q.signal()
	}
	if n >= q.max/2 {
		// Let the loop catch up. With one P (GOMAXPROCS=1) a busy writer
		// would otherwise keep it from running until the writer is
		// preempted, and fill the queue meanwhile.
		runtime.Gosched()
	}
	return true
}

func (q *writeQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// chunk returns an empty chunk, reused when one is free.
func (q *writeQueue) chunk() []crdt.Record {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := len(q.free); n > 0 {
		c := q.free[n-1]
		q.free[n-1] = nil
		q.free = q.free[:n-1]
		return c
	}
	return make([]crdt.Record, 0, chunkLen)
}

// take returns every queued write as chunks (each stripe's in order),
// appended to spare. Hand the chunks back with recycle once done.
func (q *writeQueue) take(spare [][]crdt.Record) [][]crdt.Record {
	chunks, taken := spare[:0], 0
	for i := range q.stripes {
		s := &q.stripes[i]
		s.mu.Lock()
		for _, c := range s.chunks {
			taken += len(c)
		}
		chunks = append(chunks, s.chunks...)
		clear(s.chunks)
		s.chunks = s.chunks[:0]
		s.mu.Unlock()
	}
	// The count may stay above zero: writes queued after this pass over
	// their stripe (counted after they were queued, so they are there).
	// Their pushes saw a count above zero and did not wake the loop.
	if q.n.Add(-int64(taken)) > 0 {
		q.signal()
	}
	return chunks
}

// recycle empties chunks that take returned, keeps spareChunks of them, or
// as many as this wake-up needed, for reuse, and returns the emptied outer
// slice for the next take.
func (q *writeQueue) recycle(chunks [][]crdt.Record) [][]crdt.Record {
	for i, c := range chunks {
		clear(c) // drop references to values already shipped
		chunks[i] = c[:0]
	}
	q.mu.Lock()
	keep := max(len(chunks), spareChunks)
	for _, c := range chunks {
		if len(q.free) >= keep {
			break
		}
		q.free = append(q.free, c)
	}
	if len(q.free) > keep {
		clear(q.free[keep:])
		q.free = q.free[:keep]
	}
	q.mu.Unlock()
	clear(chunks)
	return chunks[:0]
}

// len returns the number of writes queued.
func (q *writeQueue) len() int { return int(max(q.n.Load(), 0)) }
