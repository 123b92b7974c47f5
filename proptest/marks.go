package proptest

import (
	"slices"
	"time"

	"github.com/bcache-go/bcache/internal/clusterfill"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport"
)

// A StoreReplica asks for its peers' watermarks as a Cache does (the
// root package's marks.go): once it has made its first sync, it asks the
// peer of that sync with a MarksRequest call, then each peer it has
// completed an exchange with in turn, until one answers with marks it
// says are complete (or maxIncompleteMarks answers were not), and offers
// what it gets to its store, which adopts it at its collections within
// its stable bound. The Cache asks at its collections; the replica at
// its ticks, which the harness runs as often.

// maxIncompleteMarks is the Cache's.
const maxIncompleteMarks = 8

// marksWait is how long the replica waits for a peer's answer before it
// asks the next (the Cache's call gives up after 10 s; the harness's
// network delivers within its latency, or never).
const marksWait = int64(2 * time.Second)

// marksState is a StoreReplica's ask for its peers' watermarks.
type marksState struct {
	taken      bool
	incomplete int
	id         uint64 // the call waiting for its answer, 0 if none
	peer       string
	asked      int64
	tried      map[string]bool
	after      int64 // no ask before it: a Cache's backoff after an answer not complete
}

// marksBackoff is the Cache's, with its default collection interval.
func marksBackoff(n int) int64 {
	return int64(min(time.Second<<min(n-1, 16), time.Minute))
}

// marksComplete says whether the replica's marks are complete, as its
// answer says (see the Cache's).
func (r *StoreReplica) marksComplete() bool {
	return r.marks.taken && r.marks.incomplete < maxIncompleteMarks || r.founder
}

// tickMarks asks a peer for its watermarks if the replica should (see
// above), and gives up on an ask unanswered for marksWait.
func (r *StoreReplica) tickMarks() []transport.Envelope {
	m := &r.marks
	now := r.phys()
	if m.id != 0 && now-m.asked >= marksWait {
		m.tried[m.peer] = true
		m.id = 0
	}
	if m.taken || m.id != 0 || r.noMarks || r.node.FirstSync() == 0 || now < m.after {
		return nil
	}
	peer := r.marksPeer()
	if peer == "" {
		return nil
	}
	r.fills.nextID++
	m.id, m.peer, m.asked = r.fills.nextID, peer, now
	return []transport.Envelope{{To: peer, Payload: callFrame(callRequest, m.id, clusterfill.Request(clusterfill.MarksRequest, ""))}}
}

// marksPeer returns the peer to ask, as the Cache's does: the peer of the
// first sync, else one the replica completed an exchange with, not tried
// since the list was cleared (when every one was).
func (r *StoreReplica) marksPeer() string {
	first, _ := r.node.FirstSyncWith()
	synced := r.node.LastSyncs()
	if r.marks.tried == nil {
		r.marks.tried = map[string]bool{}
	}
	view := slices.Sorted(slices.Values(r.fills.view))
	for range 2 {
		if slices.Contains(view, first) && first != r.name && !r.marks.tried[first] {
			return first
		}
		for _, name := range view {
			if _, ok := synced[name]; ok && name != r.name && !r.marks.tried[name] {
				return name
			}
		}
		clear(r.marks.tried)
	}
	return ""
}

// marksAnswer takes a peer's answer to the replica's ask, if it is one:
// it reports whether it was.
func (r *StoreReplica) marksAnswer(from string, id uint64, payload []byte) bool {
	m := &r.marks
	if m.id == 0 || id != m.id || from != m.peer {
		return false
	}
	m.id = 0
	ms, complete, ok := clusterfill.Marks(payload, r.s.Leaves())
	switch {
	case ok && r.marksWhole:
		r.s.Restore(&store.Snapshot{Marks: r.marksRule(ms)}, r.clock, r.phys())
	case ok:
		r.s.OfferMarks(r.marksRule(ms), r.phys())
	}
	switch {
	case ok && complete:
		m.taken = true
		return true
	case !ok && clusterfill.MarksMalformed(payload, r.s.Leaves()):
	default:
		if m.incomplete++; m.incomplete >= maxIncompleteMarks {
			m.taken = true
			return true
		}
		m.after = r.phys() + marksBackoff(m.incomplete)
	}
	m.tried[from] = true
	return true
}

// marksRule is what the replica offers its store of a peer's marks:
// themselves, or StoreConfig.Marks's.
func (r *StoreReplica) marksRule(ms []store.Mark) []store.Mark {
	if r.marksVariant != nil {
		return r.marksVariant(ms, r.phys())
	}
	return ms
}
