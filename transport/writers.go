package transport

import (
	"maps"
	"sync"

	"github.com/bcache-go/bcache/crdt"
)

// writers maps the clock ids of the members whose deltas came here to
// their names, one id a name, for the members in the view alone (pruned
// at SetMembers): a read-your-writes token names its writer by its clock
// id, a random NodeID, and a reader that knows the name asks the writer
// among the first of its peers (see Writer). It has a lock of its own,
// so that Writer, which a reader calls, never waits for a frame.
type writers struct {
	mu    sync.Mutex
	names map[crdt.NodeID]string
	ids   map[string]crdt.NodeID
}

// note records that name writes under id: its delta batch came here (a
// relayed one names its writer, a direct one is sent by it). A name's
// new id (a restart) replaces its old one; an id another name claimed is
// the last claimant's. Names not in the view are left out: a delta whose
// origin no member knows is taken, but names no one (and keeps nothing).
func (n *Node) noteWriter(name string, id crdt.NodeID) {
	if name == "" || name == n.cfg.Name {
		return
	}
	if _, ok := n.ring.pos[name]; !ok {
		return
	}
	w := &n.writers
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.ids[name]; ok {
		if old == id {
			return
		}
		delete(w.names, old)
	}
	if w.names == nil {
		w.names, w.ids = make(map[crdt.NodeID]string), make(map[string]crdt.NodeID)
	}
	if prev, ok := w.names[id]; ok {
		delete(w.ids, prev)
	}
	w.names[id], w.ids[name] = name, id
}

// pruneWriters forgets the writers no longer in the view.
func (n *Node) pruneWriters() {
	w := &n.writers
	w.mu.Lock()
	defer w.mu.Unlock()
	maps.DeleteFunc(w.ids, func(name string, id crdt.NodeID) bool {
		if _, ok := n.ring.pos[name]; ok {
			return false
		}
		delete(w.names, id)
		return true
	})
}

// Writer returns the name of the member in the view whose clock id is id,
// as its delta batches here said, if one did. A member holding the
// cluster's key can claim another's id: the name is a hint of whom to ask
// first, never a reason to trust an answer. Safe for concurrent use with
// the node's other methods.
func (n *Node) Writer(id crdt.NodeID) (string, bool) {
	w := &n.writers
	w.mu.Lock()
	defer w.mu.Unlock()
	name, ok := w.names[id]
	return name, ok
}
