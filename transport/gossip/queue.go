package gossip

import (
	"runtime"
	"sync"

	"github.com/bcache-go/bcache/crdt"
)

// writeQueue hands local writes from any goroutine to the loop. Writers
// append under a short lock; the loop takes everything queued at once, so
// under load it handles thousands of writes per wake-up instead of one per
// channel receive. It is bounded: a write that finds it full is refused.
//
// Writes are kept in fixed-size chunks that the loop hands back once it
// has handled them, so a busy queue neither allocates nor copies as it
// fills: a single growing slice would reallocate (and the collector scan)
// megabytes of records per wake-up. Up to spareChunks spare chunks are
// kept, or as many as the last wake-up used, so a burst's chunks are let go
// once it is over.
type writeQueue struct {
	mu     sync.Mutex
	chunks [][]crdt.Record // queued writes; only the last chunk has room
	n      int             // writes queued
	max    int
	free   [][]crdt.Record // empty chunks for reuse
	wake   chan struct{}   // signalled when the queue goes from empty to not
}

const (
	// chunkLen is the number of writes per chunk: about 20 KiB of records.
	chunkLen = 256
	// spareChunks is how many empty chunks are always kept once allocated.
	// A busy writer fills one chunk while the loop ships another, and the
	// loop often takes a chunk only partly filled.
	spareChunks = 8
)

func newWriteQueue(max int) *writeQueue {
	return &writeQueue{max: max, wake: make(chan struct{}, 1)}
}

// push queues r and reports whether there was room.
func (q *writeQueue) push(r crdt.Record) bool {
	q.mu.Lock()
	if q.n >= q.max {
		q.mu.Unlock()
		return false
	}
	last := len(q.chunks) - 1
	if last < 0 || len(q.chunks[last]) == chunkLen {
		q.chunks = append(q.chunks, q.chunk())
		last++
	}
	q.chunks[last] = append(q.chunks[last], r)
	q.n++
	first, crowded := q.n == 1, q.n >= q.max/2
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	if crowded {
		// Let the loop catch up. With one P (GOMAXPROCS=1) a busy writer
		// would otherwise keep it from running until the writer is
		// preempted, and fill the queue meanwhile.
		runtime.Gosched()
	}
	return true
}

// chunk returns an empty chunk, reused when one is free. Called with q.mu
// held.
func (q *writeQueue) chunk() []crdt.Record {
	if n := len(q.free); n > 0 {
		c := q.free[n-1]
		q.free[n-1] = nil
		q.free = q.free[:n-1]
		return c
	}
	return make([]crdt.Record, 0, chunkLen)
}

// take returns every queued write, in order, as chunks, and leaves spare
// (emptied) in their place. Hand the chunks back with recycle once done.
func (q *writeQueue) take(spare [][]crdt.Record) [][]crdt.Record {
	q.mu.Lock()
	chunks := q.chunks
	q.chunks, q.n = spare[:0], 0
	q.mu.Unlock()
	return chunks
}

// recycle empties chunks that take returned, keeps spareChunks of them, or
// as many as this wake-up needed, for reuse, and returns the emptied outer slice for the
// next take.
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
func (q *writeQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}
