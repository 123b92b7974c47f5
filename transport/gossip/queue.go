package gossip

import (
	"sync"

	"github.com/bcache-go/bcache/crdt"
)

// writeQueue hands local writes from any goroutine to the loop. Writers
// append under a short lock; the loop swaps the whole slice out at once, so
// under load it takes thousands of writes per wake-up instead of one per
// channel receive. It is bounded: a write that finds it full is refused.
type writeQueue struct {
	mu   sync.Mutex
	recs []crdt.Record
	max  int
	wake chan struct{} // signalled when the queue goes from empty to not
}

func newWriteQueue(max int) *writeQueue {
	return &writeQueue{max: max, wake: make(chan struct{}, 1)}
}

// push queues r and reports whether there was room.
func (q *writeQueue) push(r crdt.Record) bool {
	q.mu.Lock()
	if len(q.recs) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.recs = append(q.recs, r)
	first := len(q.recs) == 1
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// keepCap bounds the capacity of a slice the queue keeps for reuse, so that
// a burst does not leave megabytes of idle buffer behind.
const keepCap = 1024

// take returns every queued write and leaves spare (emptied) in its place,
// so that two slices alternate and the queue does not allocate when busy.
func (q *writeQueue) take(spare []crdt.Record) []crdt.Record {
	clear(spare) // drop references to values already shipped
	if cap(spare) > keepCap {
		spare = nil
	}
	q.mu.Lock()
	recs := q.recs
	q.recs = spare[:0]
	q.mu.Unlock()
	return recs
}
