package store

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/bcache-go/bcache/crdt"
)

// maxOwn is how many of its incarnations (the node ids of its clocks, one
// per process) a store remembers as its own.
const maxOwn = 64

// ownIDs is the node ids whose writes this member made: the current
// clock's first, then those of the processes before it whose writes it
// restored (from a snapshot, or from the write log), newest first. A
// peer's write that replaces one of them is reported as superseding a
// write made here (Event.Superseded), also after restarts.
type ownIDs struct {
	mu  sync.Mutex // serializes changes; readers load ids
	ids atomic.Pointer[[]crdt.NodeID]
}

// add makes id the newest of the own ids.
func (o *ownIDs) add(id crdt.NodeID) {
	if id == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var ids []crdt.NodeID
	if p := o.ids.Load(); p != nil {
		ids = *p
	}
	next := make([]crdt.NodeID, 0, min(len(ids)+1, maxOwn))
	next = append(next, id)
	for _, x := range ids {
		if x != id && len(next) < maxOwn {
			next = append(next, x)
		}
	}
	o.ids.Store(&next)
}

// newest reports whether id is the newest own id (the fast path of a
// write).
func (o *ownIDs) newest(id crdt.NodeID) bool {
	p := o.ids.Load()
	return p != nil && (*p)[0] == id
}

// has reports whether id is one of the own ids.
func (o *ownIDs) has(id crdt.NodeID) bool {
	p := o.ids.Load()
	return id != 0 && p != nil && slices.Contains(*p, id)
}

// list returns the own ids, newest first.
func (o *ownIDs) list() []crdt.NodeID {
	if p := o.ids.Load(); p != nil {
		return *p
	}
	return nil
}

// MarkOwn records id as the node id of a process before this one whose
// writes the member restored (from its write log, which holds only its
// own writes), unless it is already known.
func (s *Store) MarkOwn(id crdt.NodeID) {
	if !s.own.has(id) {
		s.own.add(id)
	}
}

// Owns reports whether id is one of this member's node ids (its
// current clock's, or a restored earlier process's).
func (s *Store) Owns(id crdt.NodeID) bool { return s.own.has(id) }
