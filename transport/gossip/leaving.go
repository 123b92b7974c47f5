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
	"github.com/bcache-go/bcache/transport"
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
// The notice also hands over what the member wrote. A write reaches the
// others in a delta, once (a datagram, which may be lost, or dropped by
// a receiver's full socket under load), and anti-entropy repairs what was
// lost; but a member that leaves takes with it what its deltas lost and
// no session has repaired yet, the writes of its last moments above all
// (those Close itself sends, and a Set racing Close, which the store
// took before it was sealed and the member never sent), and one that keeps
// nothing (no snapshot, or a name drawn at New) loses them for good,
// though each Set returned nil. So leavePullers of the notices (to peers
// that are neither leaving nor new, as far as their metadata says, or,
// with none, to newcomers; one that declines, leaving too, is replaced
// by another) ask their peer to
// pull: it starts an anti-entropy session with the member at once, one
// pull at a time (pullTurn: a session started abandons the one in
// flight), again if one ends without completing, and answers once one
// has completed (transport.Node.Pull), saying so.
// Once one has, a live member holds every write this one acknowledged
// (the session's cut is later than the store's seal). The member answers
// the session as any other until it shuts memberlist down.
//
// A peer of a release before this call counts it a bad frame and answers
// nothing: Close waits for it until its wait ends (at most the longer of
// two probe intervals and a second), and that peer goes on reading the
// leaving metadata as before.
const callLeaving = 5

// leaveNoticeLen is a notice's payload: the sender's start number (the
// first 8 bytes of its metadata) and its flags, noticeKeeps and
// noticePull (no other bit).
const leaveNoticeLen = 9

const (
	noticeKeeps = 1 << iota // the member keeps its state
	noticePull              // pull from it, then answer
)

// leavePullers is how many peers a member that leaves asks to pull from
// it: one that answers is enough, a second in case the first is slow or
// cut off.
const leavePullers = 2

// leaveNotice is a notice noted: who sent it, of which process, and
// whether it keeps its state; and the pull it asked for, if it did.
type leaveNotice struct {
	start [8]byte
	keeps bool
	at    time.Time // when noted
	// pull is the state of the pull the notice asked for: none asked,
	// under way (the answer goes when it ends), or ended, pulled or not
	// (a copy of the notice gets that answer again).
	pull pullState
	// pullID is the notice (call id) whose pull pull is: the answer of
	// an ended pull is that notice's alone, its copies'. Another notice
	// of the process asking a pull (the member's leave, after one forged
	// in its name by a holder of the key) has a pull of its own: answered
	// "pulled" from the forged one's, ended before the member's last
	// writes, the leaver asked no other peer and they were lost (found by
	// review, TestAPullEndedForAForgedNoticeIsNotTheLeaversPull). One
	// pull at a time still: a notice that comes while one runs is
	// answered by none, and its next copy, once the pull has ended,
	// starts its own.
	pullID uint64
}

type pullState uint8

const (
	pullNone pullState = iota
	pullRunning
	pullDone
	pullFailed
)

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

// leaveReport is what came of the leave notices: how many peers
// answered, how many did not, how many were asked to pull, and how many
// did.
type leaveReport struct{ told, untold, asked, pulled int }

// sayLeaving sends every live peer this member's leave notice, asking
// up to leavePullers of them to pull from it, and waits until each has
// answered, or is no longer alive here, or wait has passed.
func (r *Replicator) sayLeaving(wait time.Duration) leaveReport {
	if r.quietLeave.notice {
		return leaveReport{}
	}
	r.mu.Lock()
	peers := make([]string, 0, len(r.alive))
	var pullers, spare, newcomers []string
	for name, n := range r.alive {
		switch {
		case name == r.cfg.Name:
		case len(pullers) < leavePullers && canPull(n.Meta):
			pullers = append(pullers, name) // alive is a map: a peer drawn at random
		case !canPull(n.Meta) && !leavingMetaOf(n.Meta):
			newcomers = append(newcomers, name)
		default:
			peers = append(peers, name)
			if canPull(n.Meta) {
				// A puller leaving too (its metadata says so only after
				// its notices) declines: another is asked in its place
				// (members closing together drew only each other, and
				// the live one was never asked).
				spare = append(spare, name)
			}
		}
	}
	r.mu.Unlock()
	// Newcomers pull last, when no member holding the state is there to
	// (this member the only one, or the others leaving too): a newcomer
	// that pulls holds what this one wrote; none asked, the writes whose
	// deltas were lost went with this member, though each Set returned
	// nil, and a newcomer not synced yet, its first session with this
	// member cut short, kept nothing of the cluster's (found by review,
	// TestALeaverWithOnlyNewcomersLeftHasOneOfThemPull).
	if len(pullers) == 0 {
		k := min(leavePullers, len(newcomers))
		pullers, newcomers = newcomers[:k], newcomers[k:]
	}
	peers = append(peers, newcomers...)
	spare = append(spare, newcomers...)
	notice := append(bytes.Clone(r.meta[0][:8]), 0)
	if r.cfg.KeepsState {
		notice[8] |= noticeKeeps
	}
	pull := bytes.Clone(notice)
	pull[8] |= noticePull
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var answered, pulls, asked atomic.Int64
	asked.Store(int64(len(pullers)))
	var spareMu sync.Mutex
	nextSpare := func() (string, bool) {
		spareMu.Lock()
		defer spareMu.Unlock()
		if len(spare) == 0 || ctx.Err() != nil {
			return "", false
		}
		p := spare[0]
		spare = spare[1:]
		asked.Add(1)
		return p, true
	}
	var wg sync.WaitGroup
	for i, p := range append(pullers, peers...) {
		puller := i < len(pullers)
		payload := notice
		if puller {
			payload = pull
		}
		wg.Go(func() {
			ok, did := r.tellLeaving(ctx, p, payload)
			if ok {
				answered.Add(1)
			}
			for puller && !did { // declined, or gone: a spare in its place (told already, asked again)
				var more bool
				if p, more = nextSpare(); !more {
					break
				}
				_, did = r.tellLeaving(ctx, p, pull)
			}
			if did {
				pulls.Add(1)
			}
		})
	}
	wg.Wait()
	told := int(answered.Load())
	return leaveReport{told: told, untold: len(pullers) + len(peers) - told, asked: int(asked.Load()), pulled: int(pulls.Load())}
}

// canPull reports whether a member whose metadata is meta can pull from
// one that leaves: it is not leaving itself, and holds its cluster's
// state (a newcomer's first sessions are with others).
func canPull(meta []byte) bool {
	if leavingMetaOf(meta) {
		return false
	}
	_, holds, said := withoutHolding(meta)
	return holds || !said
}

// leavingMetaOf reports whether meta is a leaving member's.
func leavingMetaOf(meta []byte) bool {
	return bytes.Equal(meta, leavingMeta) || bytes.Equal(meta, leavingKeepsMeta)
}

// tellLeaving sends peer the leave notice payload until it answers, or is
// gone from the live members, or ctx ends; it reports whether peer
// answered, and whether it said it pulled.
func (r *Replicator) tellLeaving(ctx context.Context, peer string, payload []byte) (answered, pulled bool) {
	ch := make(chan []byte, 1)
	node, id, err := r.register(pendingCall{peer: peer, reply: ch})
	if err != nil {
		return false, false
	}
	defer r.forget(id)
	frame := appendCall(nil, r.cfg.Name, callLeaving, id, payload)
	tick := time.NewTicker(leaveNoticeResend)
	defer tick.Stop()
	for {
		_ = r.sendCall(node, frame, nil) // a datagram: one lost goes again
		select {
		case b := <-ch: // a status byte, then what the peer did
			return true, len(b) == 2 && b[0] == 0 && b[1] == 1
		case <-ctx.Done():
			return false, false
		case <-tick.C:
			if r.lookup(peer) == nil { // left or failed meanwhile: nobody to tell
				return false, false
			}
		}
	}
}

// receivedLeaving notes the leave notice payload of from (call id), if
// from is a live member and the payload is a notice, and answers it.
func (r *Replicator) receivedLeaving(from string, id uint64, payload []byte) {
	if from == r.cfg.Name || len(payload) != leaveNoticeLen || payload[8]&^(noticeKeeps|noticePull) != 0 {
		r.counters.badFrames.Add(1)
		return
	}
	start, flags := [8]byte(payload[:8]), payload[8]
	r.mu.Lock()
	node, alive := r.alive[from]
	state := pullNone
	if alive {
		if r.leaveNotices == nil {
			r.leaveNotices = map[string]leaveNotice{}
		}
		// One a member at most (only a live member's is noted): a copy
		// changes nothing (sent on, copies would keep a forged one good
		// for ever: see leaveNoticeFor; and the pull is started once),
		// another process's replaces it. Only a notice of the member's own process has it pull
		// (its start number, in its metadata): forged ones of made-up
		// numbers would start a session each.
		note := leaveNotice{start: start, keeps: flags&noticeKeeps != 0, at: time.Now()}
		own := len(node.Meta) >= 8 && [8]byte(node.Meta[:8]) == start
		// Nor does another process's replace the note of a pull the
		// member's own asked for: alternated with copies of the member's,
		// forged ones of another number restarted the pull at each pair.
		if old, ok := r.leaveNotices[from]; ok && (old.start == start || !own && old.pull != pullNone) {
			note = old
		}
		if flags&noticePull != 0 && own && (note.pull == pullDone || note.pull == pullFailed) && note.pullID != id {
			note.pull = pullNone // another notice's pull, ended: this one has its own
		}
		if flags&noticePull != 0 && note.pull == pullNone && own {
			note.pullID = id
			// A member leaving too has no use for the records: it says it
			// did not pull.
			note.pull = pullFailed
			if !r.leaving.Load() && !r.closed.Load() && !r.pullsEnded {
				note.pull = pullRunning
				r.pulls.Add(1) // under mu, before stop's Wait
				go r.pullFrom(from, node, id)
			}
		}
		if state = note.pull; !own {
			state = pullNone // no pull was asked of this one
		}
		r.leaveNotices[from] = note
	}
	r.mu.Unlock()
	if !alive {
		// Not a member here (a made-up name, or one gone already): no
		// answer, which would go nowhere.
		r.counters.badFrames.Add(1)
		return
	}
	if state != pullRunning { // else pullFrom answers
		r.answerNotice(node, id, state == pullDone)
	}
}

// answerNotice answers the notice id of node, saying whether this member
// pulled from it. Answered even while this member closes (sendFrame sends
// nothing then): members closing together each waited their whole wait
// for the others (found by review).
func (r *Replicator) answerNotice(node *memberlist.Node, id uint64, pulled bool) {
	did := byte(0)
	if pulled {
		did = 1
	}
	_ = r.sendCall(node, r.replyFrame(id, []byte{did}, nil), nil)
}

// pullFrom starts an anti-entropy session with from, a member that leaves
// and asked for it (notice id), waits until the session has completed, or
// from has gone, or the longest the member waits for its answer has
// passed, and answers the notice saying which.
func (r *Replicator) pullFrom(from string, node *memberlist.Node, id uint64) {
	defer r.pulls.Done()
	deadline := time.Now().Add(max(twice(r.cfg.Timings.ProbeInterval), minLeaveWait))
	pulled := false
	// One pull at a time (pullTurn): Pull abandons the session in flight,
	// and members leaving together, asking this one, had their pulls
	// abandon each other: none but the last completed.
	turn := time.NewTimer(time.Until(deadline))
	select {
	case r.pullTurn <- struct{}{}:
		turn.Stop()
		pulled = r.pullTurnHeld(from, deadline)
		<-r.pullTurn
	case <-r.done:
		turn.Stop()
		r.counters.leavePullsFailed.Add(1)
		return
	case <-turn.C:
	}
	if pulled {
		r.counters.leavePulls.Add(1)
	} else {
		r.counters.leavePullsFailed.Add(1)
	}
	r.mu.Lock()
	if note, ok := r.leaveNotices[from]; ok && note.pull == pullRunning {
		note.pull = pullFailed
		if pulled {
			note.pull = pullDone
		}
		r.leaveNotices[from] = note
	}
	r.mu.Unlock()
	r.answerNotice(node, id, pulled)
}

// pullTurnHeld is pullFrom's pull, pullTurn held: it starts a session
// with from, and another if that one ends without completing (yielded,
// abandoned), until one has completed, or from has gone, or deadline.
func (r *Replicator) pullTurnHeld(from string, deadline time.Time) bool {
	var seq uint64
	var started time.Time
	pull := func() {
		started = time.Now()
		r.locked(func() []transport.Envelope {
			out, n := r.node.Pull(from, r.now())
			seq = n
			return out
		})
	}
	if r.lookup(from) == nil { // gone while this pull waited for its turn
		return false
	}
	pull()
	poll := time.NewTicker(pullPoll)
	defer poll.Stop()
	for time.Now().Before(deadline) && r.lookup(from) != nil {
		select {
		case <-r.done:
			return false
		case <-poll.C:
		}
		r.nodeMu.Lock()
		pulled := r.node.Pulled(from, seq)
		again := !pulled && !r.node.Pulling(from, seq)
		r.nodeMu.Unlock()
		switch {
		case pulled:
			return true
		case again && time.Since(started) >= leaveNoticeResend:
			pull()
		}
	}
	return false
}

// pullPoll is how often pullFrom looks whether its session has completed.
const pullPoll = 5 * time.Millisecond

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
