package gossip

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/bcache-go/bcache/crdt"
)

// Calls are requests a member sends another and the answers, beside the
// sync protocol (a cluster-wide fill asks the key's owner to fill it). A
// call frame starts with a zero byte, which no protocol frame does (those
// start with the sender's name length), then the sender's name as in a
// protocol frame, a kind (callRequest, callReply), an id, and the payload.
// A frame that fits a datagram goes as one (sendPacket: one round trip
// for a call), a larger one to the peer's stream sender (streamQueue, as
// the protocol's large frames): no call frame is written to a stream on
// the goroutine that sends it, so neither a caller nor the goroutine that
// delivers datagrams waits for a peer's TCP (a dial and a write take up
// to TCPTimeout; found by review).
const (
	callMarker  = 0
	callRequest = 1
	callReply   = 2
	// callRepeat is a copy of a request that the peer does not serve: it
	// answers with the answer it kept, if any (see CallResendingFor).
	callRepeat = 4
	// maxCallsServed bounds the requests being served at once, and
	// maxCallsServedPeer those of one asker; past either a request is
	// answered at once with ErrBusy (Stats.CallsBusy). One member kept
	// every place busy with fills of keys nobody read, and the others'
	// requests were refused (found by review).
	maxCallsServed     = 256
	maxCallsServedPeer = 32
)

// maxCallBytesServed bounds the bytes of the requests being served at
// once (a request's payload is held while OnCall runs): past it a request
// is answered with ErrBusy, unless none is being served. The places
// alone let a member holding the cluster key have 256 requests of a
// stream frame's 20 MiB each held, 5 GiB (found by review). The Cache's
// requests are a key and a few numbers. A variable for tests.
var maxCallBytesServed = 64 << 20

// ErrBusy is the error of a call the peer had no room to serve, or that
// this member had no room to send (a request larger than a datagram,
// refused by the stream queue at its bounds: see Stats.CallsDropped; or,
// for CallResendingFor, still waiting in that queue past its queueFor,
// taken out unsent and counted nowhere). It may succeed later.
var ErrBusy = errors.New("gossip: peer busy")

// sendError is the error of a call whose request sendCall failed to send:
// the queue's refusal is ErrBusy too (a caller that takes only ErrBusy
// for a passing failure filled a key itself while its owner was there:
// found by review).
//
// Either way it wraps ErrNotSent: the request never left, and the peer
// never saw it (a fill's asker that took a datagram's failed send for an
// owner's silence filled the key itself at once, while the owner filled
// it: found by review, TestFillRequestThatFailsToSendIsSentAgain).
func sendError(what, peer string, err error) error {
	if errors.Is(err, errStreamsFull) || errors.Is(err, errPeerStreamsFull) {
		return fmt.Errorf("gossip: %s %s: %w: %w: %w", what, peer, ErrBusy, ErrNotSent, err)
	}
	return fmt.Errorf("gossip: %s %s: %w: %w", what, peer, ErrNotSent, err)
}

// ErrNotSent is wrapped by the error of a call or an ask whose request
// failed to send at once (a datagram's send failed, or the stream queue
// refused it): the peer never saw it, and it may be sent again.
var ErrNotSent = errors.New("request not sent")

// ErrNoPeer is the error of a call to a member not alive here.
var ErrNoPeer = errors.New("gossip: no such live member")

// calls tracks the calls in flight from this member, and those it
// serves.
type calls struct {
	mu      sync.Mutex
	waiting map[uint64]pendingCall
	serving atomic.Int32
	// served holds the requests being served, by asker and id, guarded by
	// mu: a request sent again while its first copy is served (a call
	// resends its datagram until the answer comes) is not served twice,
	// nor does it take another of the maxCallsServed places.
	served map[servedCall]struct{}
	// servedFor counts the requests in served by asker.
	servedFor map[string]int
	// servedBytes is the payloads' bytes of the requests in served.
	servedBytes int
	// answered keeps the answers sent lately (answeredFor, within
	// answeredBytes and answeredCalls), oldest first in answeredOrder, so
	// that a copy of a request that comes after its answer went (a resend
	// that crossed it, or one sent because the answer was lost) is not
	// served again (a fill ran twice: found by the tests, and a datagram
	// captured and replayed ran it again for as long as one liked), and
	// gets that answer again as keptAnswer says.
	answered      map[servedCall]*keptAnswer
	answeredOrder []answeredCall
	answeredSize  int
	// refused holds the requests refused for want of a place lately
	// (for refusedFor, by sent time in refusedOrder), so that a later
	// copy of one (sent before the refusal came back) is refused too,
	// never served once a place frees (the asker, told busy, had given it
	// up, and a fill ran twice: found by review). Apart from answered:
	// kept there, a burst of refusals pushed real answers out (found by
	// review). A refusal is never dropped before refusedFor (dropped at a
	// bound, one still needed was, and its call served: found by review):
	// an asker past maxRefusedPeer of them, or any once there are
	// maxRefused, has every request refused, unrecorded, until refusedFor
	// after the last such (refuseAll), so that none it sent then is served
	// late. refusedFor is set at start (see refusalWindow).
	refused      map[servedCall]time.Time
	refusedOrder []answeredCall
	refusedBy    map[string]int       // refusals kept, by asker
	refuseAll    map[string]time.Time // askers refused whatever they ask, until
	refusedFor   time.Duration
}

// maxRefused and maxRefusedPeer bound the refusals kept, in all and of
// one asker (an entry is about 100 bytes).
const (
	maxRefused     = 1 << 16
	maxRefusedPeer = 1 << 10
)

// refusalWindow is how long a refusal is kept: longer than a call's
// copies can come (within a second of its first; a stream's, written
// within TCPTimeout, and one queued behind it within as long again).
func refusalWindow(tcpTimeout time.Duration) time.Duration {
	return max(15*time.Second, time.Duration(crdt.AddSat(int64(twice(tcpTimeout)), int64(5*time.Second))))
}

// refuse notes that call was refused at now. Called with mu held.
func (c *calls) refuse(call servedCall, now time.Time) {
	drop := 0
	for _, r := range c.refusedOrder { // the expired go
		if now.Sub(r.at) < c.window() {
			break
		}
		if at, ok := c.refused[r.call]; ok && at.Equal(r.at) {
			delete(c.refused, r.call)
			if c.refusedBy[r.call.from]--; c.refusedBy[r.call.from] <= 0 {
				delete(c.refusedBy, r.call.from)
			}
		}
		drop++
	}
	c.refusedOrder = c.refusedOrder[drop:]
	if cap(c.refusedOrder) > 2*maxRefused && len(c.refusedOrder) < maxRefused/2 {
		c.refusedOrder = append([]answeredCall(nil), c.refusedOrder...)
	}
	for from, until := range c.refuseAll {
		if !now.Before(until) {
			delete(c.refuseAll, from)
		}
	}
	if len(c.refused) >= maxRefused || c.refusedBy[call.from] >= maxRefusedPeer {
		if c.refuseAll == nil {
			c.refuseAll = map[string]time.Time{}
		}
		c.refuseAll[call.from] = now.Add(c.window())
		return
	}
	if c.refused == nil {
		c.refused, c.refusedBy = map[servedCall]time.Time{}, map[string]int{}
	}
	c.refused[call] = now
	c.refusedBy[call.from]++
	c.refusedOrder = append(c.refusedOrder, answeredCall{call, now})
}

// wasRefused reports whether call was refused within refusedFor of now,
// or its asker is refused whatever it asks. Called with mu held.
func (c *calls) wasRefused(call servedCall, now time.Time) bool {
	if until, ok := c.refuseAll[call.from]; ok && now.Before(until) {
		// Kept as a refusal if there is room (its copies refused by it),
		// else the asker's refusal of all goes on for this one's copies.
		// Pushed back by every request, it never ended for an asker that
		// called more than once a window, its places free (found by
		// review).
		if at, ok := c.refused[call]; !ok || now.Sub(at) >= c.window() {
			c.refuse(call, now)
		}
		return true
	}
	at, ok := c.refused[call]
	return ok && now.Sub(at) < c.window()
}

// window returns refusedFor, or refusalWindow's least if unset.
func (c *calls) window() time.Duration {
	if c.refusedFor == 0 {
		return refusalWindow(0)
	}
	return c.refusedFor
}

// answeredCall is an answer kept in calls.answered, in the order sent.
type answeredCall struct {
	call servedCall
	at   time.Time
}

// keptAnswer is an answer kept: its reply frame, and when it was first
// sent. A frame that fits a datagram goes again for every repeat of its
// request: one datagram for one. A larger one goes to the peer's stream
// sender, one copy at a time: a repeat has it sent again only once the
// copy before has ended (inflight false), at least answerResendGap after
// that copy began, and, if that copy was written, answerResendGap after
// it ended (a copy whose send failed, or that the queue refused, may go
// again at the next repeat). So a caller whose answer was lost gets it
// again at its next repeat after the failure, for as long as the answer
// is kept (answeredFor), however long the owner's streams fail: three
// copies, a second apart whatever became of them, were spent by the
// caller's repeats within 3.5 s, while the first copy was still queued,
// and a copy the queue refused counted as sent (found by review). After
// each copy written the gap doubles (1, 2, 4, 8, then 16 s): a member
// replaying a request has a kept answer written at most 5 times in the
// 30 s it is kept (once a second, each time, made a replayed datagram
// of a few bytes worth a stream and up to 4 MiB a second: found by
// review), one copy at a time; the kept answers bound the bytes held
// for streams (answeredBytes).
type keptAnswer struct {
	frame []byte
	at    time.Time
	// For a frame larger than a datagram, guarded by calls.mu: whether a
	// copy is queued or being written; whether the last copy failed or
	// was refused; when the last copy was queued, and when it ended.
	inflight, failed bool
	started, ended   time.Time
	written          int // copies written
}

// resendDue reports whether a repeat of the request at now has the kept
// answer, larger than a datagram, sent again (see keptAnswer). Called with
// calls.mu held.
func (k *keptAnswer) resendDue(now time.Time) bool {
	return !k.inflight && now.Sub(k.started) >= answerResendGap && (k.failed || now.Sub(k.ended) >= answerResendGap<<min(max(k.written-1, 0), 4))
}

// The answers a member keeps: for answeredFor, at most answeredCalls of
// them and answeredBytes in all. A request that comes again after its
// answer is forgotten is served again.
const (
	answeredFor   = 30 * time.Second
	answeredCalls = 4096
	answeredBytes = 4 << 20
)

// answerResendGap is the least time between two copies of a kept answer
// larger than a datagram (see keptAnswer): a caller repeats its request
// at most a second apart. A repeat of a small request (one datagram,
// replayed by a member, or captured and replayed by anyone) had a large
// answer sent again for each copy.
var answerResendGap = time.Second // a variable: tests lengthen it

type servedCall struct {
	from string
	id   uint64
}

type pendingCall struct {
	peer  string
	reply chan []byte
	// answer, for an Ask, takes the reply instead, on the receiving
	// goroutine.
	answer func([]byte, error)
}

// appendCall appends a call frame to dst.
func appendCall(dst []byte, from string, kind byte, id uint64, payload []byte) []byte {
	dst = append(dst, callMarker, byte(len(from)))
	dst = append(dst, from...)
	dst = append(dst, kind)
	dst = binary.LittleEndian.AppendUint64(dst, id)
	return append(dst, payload...)
}

// parseCall splits a call frame (after its marker).
func parseCall(b []byte) (from string, kind byte, id uint64, payload []byte, err error) {
	if len(b) < 1 || b[0] == 0 || len(b) < 1+int(b[0])+9 {
		return "", 0, 0, nil, fmt.Errorf("%w: call of %d bytes", errFrame, len(b))
	}
	n := int(b[0])
	from, b = string(b[1:1+n]), b[1+n:]
	return from, b[0], binary.LittleEndian.Uint64(b[1:9]), b[9:], nil
}

// Call sends payload to the live member peer, whose Config.OnCall
// answers it, and returns the answer, or ctx's error, or ErrNoPeer. A
// call is not retried: the caller decides what a failure means. A
// request larger than a datagram is queued for the peer's stream sender
// and Call waits for the answer as for a small one: it returns at ctx's
// end and at Close whatever that stream does, and with the stream's error
// if its send fails; with ErrBusy if the stream queue refuses it (the
// frames queued for streams at their bounds).
func (r *Replicator) Call(ctx context.Context, peer string, payload []byte) ([]byte, error) {
	return r.CallResendingFor(ctx, peer, payload, 0, 0, nil)
}

// CallResendingFor is Call, which sends its request again only within
// resend of the first send (0: for as long as it waits), and calls
// onSent (if not nil) with the time each of those copies left: a
// datagram as it is sent, a request larger than one once its stream has
// written it (it may wait in the peer's queue, or for a dial, for up to
// TCPTimeout). After resend, copies go on, but as repeats the peer never
// starts to serve: it answers them with the answer it kept, if it has
// one (an answer lost is asked for again), and ignores them else. So the
// peer starts serving the request, if it ever does, by the last onSent
// and the time a copy takes, and a caller that bounds what the peer does
// with it (a fill timeout) knows by when its answer comes, if any. A
// request larger than a datagram whose first copy still waits in the
// stream queue queueFor after the call began (not yet taken by its
// stream, behind frames whose streams stall) is taken out, never sent,
// and the call returns ErrBusy (queueFor 0: it waits for its turn). A
// caller that bounds its wait (a fill's asker) is not held past it by the
// frames ahead of its request: a fill asked of its owner waited for
// minutes, past its fill timeout (found by review).
// (Peers of releases before the repeats ignore them: they count them as
// bad frames.)
func (r *Replicator) CallResendingFor(ctx context.Context, peer string, payload []byte, resend, queueFor time.Duration, onSent func(time.Time)) ([]byte, error) {
	first := time.Now()
	ch := make(chan []byte, 1)
	node, id, err := r.register(pendingCall{peer: peer, reply: ch})
	if err != nil {
		return nil, err
	}
	defer r.forget(id)
	req := appendCall(nil, r.cfg.Name, callRequest, id, payload)
	failed := make(chan error, 1) // its stream's send failed
	small := r.fitsDatagram(req)
	sent := func(err error) {
		switch {
		case err != nil:
			failed <- err
		case onSent != nil:
			onSent(time.Now())
		}
	}
	resent := func(err error) { // a copy that fails is no failure of the call: the first may have gone
		if err == nil && onSent != nil {
			onSent(time.Now())
		}
	}
	// The request's copy waiting in the peer's stream queue, if it is
	// larger than a datagram: while one waits, no other is queued behind
	// it (it would go after it, and add nothing), and the one waiting
	// when the call returns is taken out, not sent to a peer that no one
	// waits on (found by review: a stalled stream kept a copy a second).
	var queued *streamFrame
	defer func() {
		if queued != nil {
			r.streams.withdraw(node.Name, queued)
		}
	}()
	queued, err = r.queueCall(node, req, sent)
	if err != nil {
		return nil, sendError("call", peer, err)
	}
	if small && onSent != nil { // sent now; a stream's copy says when it was written
		onSent(time.Now())
	}
	var repeat []byte // a copy the peer does not serve: kind callRepeat
	// A request that fits a datagram goes as one, and again if no answer
	// comes (a datagram lost): the peer ignores a copy while it serves
	// the first, and sends the same answer again after (for answeredFor;
	// past it, a copy is served as a new call). A larger one goes again
	// once the wait has grown to its longest, a second, and every second
	// after: its answer, lost, was never asked for again (last notes'
	// item), and the call waited for its context's end. Past resend, the
	// copies are repeats: the call's id alone, in a datagram, which the
	// peer answers with the answer it kept, and never serves (a busy
	// refusal is kept too: see calls.refused).
	again := time.NewTimer(callResend)
	defer again.Stop()
	firstOnly := true // no copy but the first was queued
	for wait := callResend; ; {
		select {
		case b := <-ch:
			if len(b) == 0 || b[0] != 0 {
				return nil, fmt.Errorf("gossip: call %s: %w", peer, ErrBusy)
			}
			return b[1:], nil
		case err := <-failed:
			return nil, fmt.Errorf("gossip: call %s: %w", peer, err)
		case <-again.C:
			// A first copy still waiting in the stream queue past
			// queueFor has not left: taken out, the peer never sees it,
			// and the call is ErrBusy, as when the queue refuses it.
			if !small && firstOnly && queueFor > 0 && time.Since(first) > queueFor && queued != nil && r.streams.withdraw(node.Name, queued) {
				queued = nil
				return nil, fmt.Errorf("gossip: call %s: %w (its request waited %v in the stream queue)", peer, ErrBusy, time.Since(first).Round(time.Millisecond))
			}
			if small || wait == time.Second || resend > 0 && time.Since(first) > resend {
				switch {
				case resend == 0 || time.Since(first) <= resend:
					if queued != nil && r.streams.waiting(node.Name, queued) {
						break // the copy before still waits for the stream
					}
					f, err := r.queueCall(node, req, resent)
					if err == nil && small && onSent != nil {
						onSent(time.Now())
					}
					if f != nil {
						queued, firstOnly = f, false
					}
				default: // past resend: asks for the answer, serves nothing
					if repeat == nil { // the call's id alone: a datagram whatever the request
						repeat = appendCall(nil, r.cfg.Name, callRepeat, id, nil)
					}
					r.sendCall(node, repeat, nil)
				}
			}
			wait = min(2*wait, time.Second)
			again.Reset(wait)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-r.done:
			return nil, fmt.Errorf("gossip: call %s: closed", peer)
		}
	}
}

// Ask sends payload to the live member peer, whose Config.OnCall answers
// it, as one request that Call would send, and returns at once: a
// request larger than a datagram is queued for the peer's stream sender,
// not written here (ErrBusy if the queue has no room for it). The answer
// goes to answer, called at most once, from the goroutine that received
// it: it must be quick, and the slice is valid only during the call.
// ErrBusy if the peer had no room to serve it. Nothing is resent: a
// request or an answer lost (a datagram, or a stream that failed) is
// never answered. cancel forgets the request (a late answer is dropped,
// and a request still waiting for its stream is not sent; an answer
// whose delivery began as cancel ran may still be delivered, once, as
// or after cancel returns);
// a request not answered stays remembered until it is cancelled, so
// every Ask must be. Ask saves the caller the goroutines that Calls to
// several peers at once would need.
func (r *Replicator) Ask(peer string, payload []byte, answer func([]byte, error)) (cancel func(), err error) {
	node, id, err := r.register(pendingCall{peer: peer, answer: answer})
	if err != nil {
		return nil, err
	}
	queued, err := r.queueCall(node, appendCall(nil, r.cfg.Name, callRequest, id, payload), nil)
	if err != nil {
		r.forget(id)
		return nil, sendError("ask", peer, err)
	}
	return func() {
		r.forget(id)
		if queued != nil { // not sent yet: it never will be
			r.streams.withdraw(node.Name, queued)
		}
	}, nil
}

// register notes a call to p.peer, a live member, and returns that member
// and the call's id; ErrNoPeer if it is not alive here (or is this one).
func (r *Replicator) register(p pendingCall) (*memberlist.Node, uint64, error) {
	r.mu.Lock()
	node, ok := r.alive[p.peer]
	r.mu.Unlock()
	if !ok || p.peer == r.cfg.Name {
		return nil, 0, fmt.Errorf("%w: %q", ErrNoPeer, p.peer)
	}
	r.calls.mu.Lock()
	if r.calls.waiting == nil {
		r.calls.waiting = map[uint64]pendingCall{}
	}
	// Random, not counted: a member that learned one call's id must not
	// be able to answer this member's other calls in their peers' names.
	id := rand.Uint64()
	for _, taken := r.calls.waiting[id]; taken || id == 0; _, taken = r.calls.waiting[id] {
		id = rand.Uint64()
	}
	r.calls.waiting[id] = p
	r.calls.mu.Unlock()
	return node, id, nil
}

// forget drops the call id: an answer to it is dropped from now on.
func (r *Replicator) forget(id uint64) {
	r.calls.mu.Lock()
	delete(r.calls.waiting, id)
	r.calls.mu.Unlock()
}

// callResend is how long a call waits for its answer before it sends a
// datagram request again (then twice as long, up to a second).
const callResend = 100 * time.Millisecond

// fitsDatagram reports whether a frame goes as one datagram.
func (r *Replicator) fitsDatagram(frame []byte) bool {
	return len(frame) <= r.datagramRoom()
}

// sendCall sends a call frame as a datagram if it fits, else queues it
// for the peer's stream sender (streamQueue): it never waits for a
// stream. It returns a datagram's send error, or the queue's refusal
// (counted in CallsDropped, apart from the protocol's frames); done, if not nil, is called once a
// queued frame's send ended (see streamFrame), on the sender's
// goroutine: not when sendCall returns an error.
func (r *Replicator) sendCall(to *memberlist.Node, frame []byte, done func(error)) error {
	_, err := r.queueCall(to, frame, done)
	return err
}

// queueCall is sendCall, which also returns the frame it queued for the
// stream sender (nil for a datagram, or if it queued none), for the
// caller to withdraw.
func (r *Replicator) queueCall(to *memberlist.Node, frame []byte, done func(error)) (*streamFrame, error) {
	if r.fitsDatagram(frame) {
		// Counted here, for every call's datagram: counted by sendFrame
		// alone, a request (a fill's, a fetch's) that failed to go was
		// counted nowhere (found by review).
		err := r.sendPacket(to, frame)
		if err != nil {
			r.counters.sendErrors.Add(1)
		}
		return nil, err
	}
	f := &streamFrame{b: frame, done: done}
	err := r.streams.push(to.Name, f)
	if errors.Is(err, errStreamsFull) || errors.Is(err, errPeerStreamsFull) {
		r.counters.callsDropped.Add(1)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// receivedCall handles a call frame (after its marker).
func (r *Replicator) receivedCall(b []byte) {
	from, kind, id, payload, err := parseCall(b)
	if err != nil {
		r.counters.badFrames.Add(1)
		return
	}
	switch kind {
	case callReply:
		r.calls.mu.Lock()
		p, ok := r.calls.waiting[id]
		if ok && p.peer == from && p.answer != nil {
			delete(r.calls.waiting, id) // answered once
		}
		r.calls.mu.Unlock()
		switch {
		case !ok: // late: the answer to a resent request, or after the caller gave up
			return
		case p.peer != from: // not from whom it was asked
			r.counters.badFrames.Add(1)
			return
		case p.answer != nil:
			if len(payload) == 0 || payload[0] != 0 {
				p.answer(nil, fmt.Errorf("gossip: ask %s: %w", from, ErrBusy))
			} else {
				p.answer(payload[1:], nil)
			}
			return
		}
		select {
		case p.reply <- append([]byte(nil), payload...):
		default:
		}
	case callRequest, callRepeat:
		serve := r.cfg.OnCall
		if serve == nil || r.lookup(from) == nil || from == r.cfg.Name {
			// Only a member is served: its answer would go nowhere else
			// (reply drops it), and a made-up name took a serving place and
			// ran its work (a fill) for nothing (found by review). Nor is
			// this member's own name (it is alive here, but a member never
			// calls itself: a request in its name is forged, its answer
			// came back here and was dropped; found by review).
			r.counters.badFrames.Add(1)
			return
		}
		call := servedCall{from, id}
		r.calls.mu.Lock()
		if a, ok := r.calls.answered[call]; ok && a.frame == nil && time.Since(a.at) < answeredFor {
			// Answered, too large to keep: not served again (a request
			// replayed was served, and its answer streamed, every time:
			// found by review). The asker's call has had its answer, or
			// fails and falls back.
			r.calls.mu.Unlock()
			r.counters.callRepeats.Add(1)
			return
		}
		if a, ok := r.calls.answered[call]; ok && time.Since(a.at) < answeredFor { // answered already: that answer again
			// sendAnswer never waits for a stream (a large answer is
			// queued for its stream: written here, a repeat held every
			// datagram behind it for up to TCPTimeout; found by review),
			// and a large answer goes again only as keptAnswer says.
			now := time.Now()
			small := r.fitsDatagram(a.frame)
			again, started := small, a.started
			if !small && a.resendDue(now) {
				a.inflight, a.started, again = true, now, true
			}
			r.calls.mu.Unlock()
			if again {
				r.sendAnswer(from, a, started)
			}
			r.counters.callRepeats.Add(1)
			return
		}
		if _, ok := r.calls.served[call]; ok {
			// Being served: its first copy's answer will do, whatever the
			// asker's refusals since (looked at after them, a copy of a
			// call being served was told busy once its asker was refused
			// whatever it asked, and the asker gave the call up, and
			// filled itself, while the owner served it: found by review).
			r.calls.mu.Unlock()
			r.counters.callRepeats.Add(1)
			return
		}
		now := time.Now()
		if r.calls.wasRefused(call, now) { // refused once: refused again, never served
			r.calls.mu.Unlock()
			r.counters.callRepeats.Add(1)
			r.sendFrame(from, r.replyFrame(id, nil, ErrBusy), nil)
			return
		}
		if kind == callRepeat { // never served: its first copies were, or were never seen
			r.calls.mu.Unlock()
			r.counters.callRepeats.Add(1)
			return
		}
		admitted := r.calls.serving.Load() < maxCallsServed && r.calls.servedFor[from] < maxCallsServedPeer &&
			(len(r.calls.served) == 0 || r.calls.servedBytes+len(payload) <= maxCallBytesServed)
		if !admitted {
			r.calls.refuse(call, now) // in the hold that decided it (found by review)
		}
		if admitted {
			if r.calls.served == nil {
				r.calls.served, r.calls.servedFor = map[servedCall]struct{}{}, map[string]int{}
			}
			r.calls.served[call] = struct{}{}
			r.calls.servedFor[from]++
			r.calls.servedBytes += len(payload)
			r.calls.serving.Add(1)
		}
		r.calls.mu.Unlock()
		if !admitted { // kept in calls.refused, above
			r.counters.callsBusy.Add(1)
			r.sendFrame(from, r.replyFrame(id, nil, ErrBusy), nil)
			return
		}
		payload = append([]byte(nil), payload...) // memberlist reuses its buffer
		// Not waited for by Close: OnCall may take long (a fill); its
		// answer is dropped once the member is closed.
		go func() {
			defer func() {
				r.calls.mu.Lock()
				delete(r.calls.served, call)
				if r.calls.servedFor[from]--; r.calls.servedFor[from] == 0 {
					delete(r.calls.servedFor, from)
				}
				r.calls.servedBytes -= len(payload)
				r.calls.mu.Unlock()
				r.calls.serving.Add(-1)
			}()
			frame := r.replyFrame(id, serve(from, payload), nil)
			now := time.Now()
			r.calls.mu.Lock()
			a := r.calls.remember(call, frame, now)
			if a != nil && !r.fitsDatagram(frame) { // its first copy, sent below
				a.inflight, a.started = true, now
			}
			r.calls.mu.Unlock()
			if a == nil { // too large to keep: remembered as answered, without it
				// A copy that fails to go is forgotten, so that the
				// asker's next resend is served again (dropped, its call
				// waited for its timeout and it filled twice: found by
				// review).
				forget := func(err error) {
					if err == nil {
						return
					}
					r.calls.mu.Lock()
					if k, ok := r.calls.answered[call]; ok && k.frame == nil {
						delete(r.calls.answered, call)
					}
					r.calls.mu.Unlock()
				}
				if !r.sendFrame(from, frame, forget) {
					forget(ErrBusy)
				}
				return
			}
			r.sendAnswer(from, a, time.Time{})
		}()
	case callLeaving:
		r.receivedLeaving(from, id, payload)
	case callFragment:
		if r.lookup(from) == nil || from == r.cfg.Name { // a made-up name, or this member's own (it sends itself none), would push members' frames out of the bounded reassembly (found by review)
			r.counters.badFrames.Add(1)
			return
		}
		r.receivedFragment(from, id, payload)
	default:
		r.counters.badFrames.Add(1)
	}
}

// remember keeps frame as the reply frame to call, sent at now, and
// forgets the answers past answeredFor, answeredCalls or answeredBytes.
// It returns the answer kept, or nil if the frame is larger than
// answeredBytes: then only that the call was answered is kept (an entry
// without its frame). Called with calls.mu held.
func (c *calls) remember(call servedCall, frame []byte, now time.Time) *keptAnswer {
	if c.answered == nil {
		c.answered = map[servedCall]*keptAnswer{}
	}
	kept := &keptAnswer{frame: frame, at: now}
	if len(frame) > answeredBytes {
		kept.frame, frame = nil, nil
	}
	// A call answered again (its kept answer too old to use) replaces its
	// entry; the order's older entry for it is then skipped, not taken
	// for the new one (which it deleted, and whose bytes it left counted:
	// found by review).
	if old, ok := c.answered[call]; ok {
		c.answeredSize -= len(old.frame)
	}
	c.answered[call] = kept
	c.answeredOrder = append(c.answeredOrder, answeredCall{call, now})
	c.answeredSize += len(frame)
	drop := 0
	for _, a := range c.answeredOrder {
		kept, ok := c.answered[a.call]
		current := ok && kept.at.Equal(a.at)
		if current && now.Sub(a.at) < answeredFor && len(c.answered) <= answeredCalls && c.answeredSize <= answeredBytes {
			break
		}
		if current {
			c.answeredSize -= len(kept.frame)
			delete(c.answered, a.call)
		}
		drop++
	}
	c.answeredOrder = c.answeredOrder[drop:]
	if cap(c.answeredOrder) > 2*answeredCalls && len(c.answeredOrder) < answeredCalls/2 { // the slice's front, given back
		c.answeredOrder = append([]answeredCall(nil), c.answeredOrder...)
	}
	if kept.frame == nil {
		return nil
	}
	return kept
}

// replyFrame returns the reply frame to call id: the answer after a
// status byte, 0, or 1 without the answer if err (ErrBusy).
func (r *Replicator) replyFrame(id uint64, answer []byte, err error) []byte {
	status := byte(0)
	if err != nil {
		status, answer = 1, nil
	}
	frame := appendCall(make([]byte, 0, 2+len(r.cfg.Name)+1+8+1+len(answer)), r.cfg.Name, callReply, id, []byte{status})
	return append(frame, answer...)
}

// sendAnswer sends a's frame to peer: as a datagram, or, larger, as a copy
// queued for the peer's stream sender, claimed already (a.inflight, and
// a.started set to now; started is the start of the copy before). It
// notes in a how the copy ends: refused at once, a copy neither counts as
// sent nor starts answerResendGap (it found the queue full, or the peer
// gone), and a.started goes back to started.
func (r *Replicator) sendAnswer(peer string, a *keptAnswer, started time.Time) {
	if r.fitsDatagram(a.frame) {
		r.sendFrame(peer, a.frame, nil)
		return
	}
	ended := func(err error) {
		r.calls.mu.Lock()
		a.inflight, a.failed, a.ended = false, err != nil, time.Now()
		if err == nil {
			a.written++
		}
		r.calls.mu.Unlock()
	}
	if !r.sendFrame(peer, a.frame, ended) {
		r.calls.mu.Lock()
		a.inflight, a.failed, a.started = false, true, started
		r.calls.mu.Unlock()
	}
}

// sendFrame sends a reply frame to peer, if it is alive and this member
// is not closed, and reports whether it went: a datagram sent, or a
// frame queued for the stream sender, whose done is then called once its
// send ends (see sendCall). It never waits for a stream.
func (r *Replicator) sendFrame(peer string, frame []byte, done func(error)) bool {
	r.mu.Lock()
	node, ok := r.alive[peer]
	r.mu.Unlock()
	if !ok || r.closed.Load() {
		return false
	}
	return r.sendCall(node, frame, done) == nil // a datagram's failure, or a stream's frame refused, is counted by sendCall
}
