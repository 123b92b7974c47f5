// Package near hands out one of a fixed set of slots so that goroutines
// running on one processor keep to one slot: its lock and its buffer stay
// in that processor's cache, and writers on different processors seldom
// share a lock.
//
// It rests on sync.Pool, which keeps a private item per processor (P): a
// slot put back is the one the next Get on that processor returns. The
// pool lets go of what it holds over garbage collections (an item left
// unused through two is dropped); until each processor has its slot
// again, Get hands out the slots in turn.
package near

import (
	"sync"
	"sync/atomic"
)

// Slots hands out pointers into a slice of slots, one per processor as
// far as it can. The zero value is ready to use; Get and Put are safe for
// concurrent use.
type Slots[T any] struct {
	pool sync.Pool
	next atomic.Uint32
}

// Get returns a slot of all (which must not be empty, and must be the same
// slice at every call), the one last Put on this processor if the pool
// still holds it. Give it back with Put.
func (s *Slots[T]) Get(all []T) *T {
	if p, _ := s.pool.Get().(*T); p != nil {
		return p
	}
	return &all[s.next.Add(1)%uint32(len(all))]
}

// Put gives back a slot that Get returned.
func (s *Slots[T]) Put(p *T) { s.pool.Put(p) }
