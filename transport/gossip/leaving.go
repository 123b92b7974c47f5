package gossip

import (
	"bytes"
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/bcache-go/bcache/crdt"
)

// A member that closes tells the others it leaves, so that they take its
// end for a leave, not a failure: a failed member may be alive beyond a
// partition, with writes the others lack, and they hold back early
// collection for FailedTimeout waiting for it (an hour by default), and
// try to join it meanwhile. memberlist's notice of a leave and of a
// failure look the same, so the leaving metadata (NodeMeta) said which
// it was; but memberlist's leave invalidates the metadata's broadcast,
// and that broadcast is done once sent a few times to any members,
// piggybacked on pings to one peer as well: a member that got none of
// them, and then the leave, took the leave for a failure (found red in
// CI: of three members, one saw "left", the other "failed", and never
// collected a delete). So Close first sends every live peer a call of
// its own kind, callLeaving, and waits for their answers (until its wait
// for the leave): a peer answers once it has noted the notice, so its
// note is there before memberlist's leave, sent after, can come. A
// failure of a member whose notice this member noted, from the process
// that sent it (the start number in its metadata), is taken for a leave.
//
// A peer of a release before this call counts it a bad frame and answers
// nothing: Close waits for it until its wait ends (at most the longer of
// two probe intervals and a second), and that peer goes on reading the
// leaving metadata as before.
const callLeaving = 5

// leaveNoticeLen is a notice's payload: the sender's start number (the
// first 8 bytes of its metadata) and whether it keeps its state (1) or
// not (0).
const leaveNoticeLen = 9

// leaveNotice is a notice noted: who sent it, of which process, and
// whether it keeps its state.
type leaveNotice struct {
	start [8]byte
	keeps bool
	at    time.Time // when noted
}

// leaveNoticeFor is how long a notice noted stays good: its sender's leave
// follows within its UpdateNode's and its Leave's waits, and, the leave
// lost here, its end within memberlist's longest suspicion. A real
// notice's process never lives on past it; an older note is of a member
// still alive (a notice forged in its name by anyone with the key: its
// start number is in its metadata), and taken for a leave its next
// failure, a partition perhaps long after, stopped counting for early
// collection after EndedFor, not FailedTimeout (found by review). Past
// it a failure is a failure, as without a notice. Called with r.mu held.
func (r *Replicator) leaveNoticeFor() time.Duration {
	t := r.cfg.Timings
	wait := max(twice(t.ProbeInterval), minLeaveWait)
	// memberlist's suspicionTimeout, times its SuspicionMaxTimeoutMult (6).
	suspicion := time.Duration(6 * float64(t.SuspicionMult) * max(1, math.Log10(float64(len(r.alive)+1))) * float64(t.ProbeInterval))
	// And a wait more, for the probes that start the suspicion.
	return time.Duration(crdt.AddSat(int64(4*wait), int64(suspicion)))
}

// leaveNoticeResend is how often a notice goes again to a peer that has
// not answered: a datagram of a few dozen bytes, at most ten times in a
// second.
const leaveNoticeResend = 100 * time.Millisecond

// sayLeaving sends every live peer this member's leave notice and waits
// until each has answered, or is no longer alive here, or wait has
// passed. It returns how many answered and how many did not.
func (r *Replicator) sayLeaving(wait time.Duration) (told, untold int) {
	if r.quietLeave.notice {
		return 0, 0
	}
	r.mu.Lock()
	peers := make([]string, 0, len(r.alive))
	for name := range r.alive {
		if name != r.cfg.Name {
			peers = append(peers, name)
		}
	}
	r.mu.Unlock()
	payload := append(bytes.Clone(r.meta[0][:8]), 0)
	if r.cfg.KeepsState {
		payload[8] = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var answered atomic.Int64
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			if r.tellLeaving(ctx, p, payload) {
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	return int(answered.Load()), len(peers) - int(answered.Load())
}

// tellLeaving sends peer the leave notice payload until it answers (true),
// or is gone from the live members, or ctx ends.
func (r *Replicator) tellLeaving(ctx context.Context, peer string, payload []byte) bool {
	ch := make(chan []byte, 1)
	node, id, err := r.register(pendingCall{peer: peer, reply: ch})
	if err != nil {
		return false
	}
	defer r.forget(id)
	frame := appendCall(nil, r.cfg.Name, callLeaving, id, payload)
	tick := time.NewTicker(leaveNoticeResend)
	defer tick.Stop()
	for {
		_ = r.sendCall(node, frame, nil) // a datagram: one lost goes again
		select {
		case <-ch:
			return true
		case <-ctx.Done():
			return false
		case <-tick.C:
			if r.lookup(peer) == nil { // left or failed meanwhile: nobody to tell
				return false
			}
		}
	}
}

// receivedLeaving notes the leave notice payload of from (call id), if
// from is a live member and the payload is a notice, and answers it.
func (r *Replicator) receivedLeaving(from string, id uint64, payload []byte) {
	if from == r.cfg.Name || len(payload) != leaveNoticeLen || payload[8] > 1 {
		r.counters.badFrames.Add(1)
		return
	}
	r.mu.Lock()
	node, alive := r.alive[from]
	if alive {
		if r.leaveNotices == nil {
			r.leaveNotices = map[string]leaveNotice{}
		}
		// One a member at most (only a live member's is noted): a copy
		// again replaces it.
		r.leaveNotices[from] = leaveNotice{start: [8]byte(payload[:8]), keeps: payload[8] == 1, at: time.Now()}
	}
	r.mu.Unlock()
	if !alive {
		// Not a member here (a made-up name, or one gone already): no
		// answer, which would go nowhere.
		r.counters.badFrames.Add(1)
		return
	}
	// Answered even while this member closes (sendFrame sends nothing
	// then): members closing together each waited their whole wait for
	// the others (found by review).
	_ = r.sendCall(node, r.replyFrame(id, nil, nil), nil)
}

// saidLeaving reports whether the member whose end memberlist notices as
// n (its last metadata) told this one it was leaving, from the process
// the metadata is of, and whether it keeps its state; the notice is
// dropped either way. Called with r.mu held.
func (r *Replicator) saidLeaving(n *memberlist.Node) (said, keeps bool) {
	note, ok := r.leaveNotices[n.Name]
	if !ok {
		return false, false
	}
	delete(r.leaveNotices, n.Name)
	return len(n.Meta) >= 8 && [8]byte(n.Meta[:8]) == note.start && time.Since(note.at) <= r.leaveNoticeFor(), note.keeps
}
