package gossip

import (
	"errors"
	"slices"
	"sync"
)

// Bounds on the frames held for streams. Without them a peer that never
// reads lets repair-sized replies pile up: a few dozen small requests made
// a member hold hundreds of megabytes, and a shared queue full of frames
// for that peer dropped the frames for every other one.
const (
	// maxStreamBytes bounds the bytes of the frames queued for, or being
	// written to, a stream, over all peers; a frame broadcast to several
	// peers counts once. Three frames of the largest size (maxStreamFrame)
	// fit, so it only bites when several peers fall far behind.
	maxStreamBytes = 64 << 20
	// maxPeerStreamBytes bounds the bytes of the frames queued for one peer
	// (not counting the one being written): a quarter of maxStreamBytes,
	// so that one stalled peer never takes all the room, and still a few
	// repair replies or large deltas. A frame larger than this is queued
	// when nothing is queued for that peer, otherwise a value that large
	// could never replicate.
	maxPeerStreamBytes = 16 << 20
)

var (
	// errStreamsFull refuses a frame that would take the frames held for
	// streams past maxStreamBytes.
	errStreamsFull = errors.New("gossip: stream queue full")
	// errPeerStreamsFull refuses a frame that would take the frames queued
	// for its peer past maxPeerStreamBytes: that peer reads slower than it
	// is sent to.
	errPeerStreamsFull = errors.New("gossip: peer's stream queue full")
)

// streamFrame is a frame to send over streams, shared by the envelopes of
// one broadcast. refs counts the peers holding it (queued or being
// written), so that its bytes count once in the total. done, if set, is
// called once the frame's send ended, with its error (nil once written),
// on the sender's goroutine, or with ErrClosed for a frame the queue's
// close dropped: a call's request (its caller gives up at once when it
// failed) and a call's answer larger than a datagram (sent again only once
// this copy ended: see keptAnswer). It is only for a frame queued for one
// peer.
type streamFrame struct {
	b    []byte
	refs int
	done func(error)
}

// peerStreams is the frames waiting for one peer's sender, oldest first.
type peerStreams struct {
	frames []*streamFrame
	queued int // bytes in frames
}

// streamQueue holds the frames too large for a datagram until they are
// written to a stream, bounded in bytes in total and per peer. Each peer
// with frames queued has a sender goroutine of its own, started by push
// and gone once that peer's queue is empty: frames to one peer go out in
// order, one stream at a time, and a peer whose streams stall holds up only
// its own frames. It is safe for concurrent use.
type streamQueue struct {
	// send writes one frame to peer over a stream; it may block until the
	// stream's deadline.
	send             func(peer string, frame []byte) error
	maxTotal, maxPer int

	mu     sync.Mutex
	peers  map[string]*peerStreams // peers whose sender runs
	held   int                     // bytes of the distinct frames queued or being written
	peak   int                     // the most held at once
	closed bool
	wg     sync.WaitGroup // the senders
}

func newStreamQueue(send func(peer string, frame []byte) error, maxTotal, maxPer int) *streamQueue {
	return &streamQueue{send: send, maxTotal: maxTotal, maxPer: maxPer, peers: map[string]*peerStreams{}}
}

// push queues f for peer, starting the peer's sender if it has none. It
// never blocks: past a bound it refuses the frame with errPeerStreamsFull
// or errStreamsFull, and once the queue is closed with ErrClosed.
func (q *streamQueue) push(peer string, f *streamFrame) error {
	n := len(f.b)
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.peers[peer]
	switch {
	case q.closed:
		return ErrClosed
	case p != nil && p.queued > 0 && p.queued+n > q.maxPer:
		return errPeerStreamsFull
	case f.refs == 0 && q.held > 0 && q.held+n > q.maxTotal:
		return errStreamsFull
	}
	if f.refs++; f.refs == 1 {
		q.held += n
		q.peak = max(q.peak, q.held)
	}
	if p == nil {
		p = &peerStreams{}
		q.peers[peer] = p
		q.wg.Add(1)
		go q.run(peer, p)
	}
	p.frames = append(p.frames, f)
	p.queued += n
	return nil
}

// run is peer's sender: it writes the peer's frames one at a time until
// none is left or the queue is closed.
func (q *streamQueue) run(peer string, p *peerStreams) {
	defer q.wg.Done()
	var f *streamFrame
	for {
		if f = q.next(peer, p, f); f == nil {
			return
		}
		err := q.send(peer, f.b)
		if f.done != nil {
			f.done(err)
		}
	}
}

// next lets go of sent, the frame just written (nil at first), and takes
// peer's next frame. When there is none, or the queue is closed, it
// forgets the peer's sender and returns nil.
func (q *streamQueue) next(peer string, p *peerStreams, sent *streamFrame) *streamFrame {
	q.mu.Lock()
	defer q.mu.Unlock()
	if sent != nil {
		q.release(sent)
	}
	if q.closed || len(p.frames) == 0 {
		delete(q.peers, peer)
		return nil
	}
	f := p.frames[0]
	p.frames[0] = nil
	p.frames = p.frames[1:]
	p.queued -= len(f.b)
	return f
}

// withdraw takes f out of peer's queue if it is still there (not taken by
// the sender yet, nor dropped by close), without calling its done, and
// reports whether it was.
func (q *streamQueue) withdraw(peer string, f *streamFrame) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.peers[peer]
	if p == nil {
		return false
	}
	i := slices.Index(p.frames, f)
	if i < 0 {
		return false
	}
	p.frames = slices.Delete(p.frames, i, i+1)
	p.queued -= len(f.b)
	q.release(f)
	return true
}

// waiting reports whether f waits in peer's queue (not taken by the
// sender yet).
func (q *streamQueue) waiting(peer string, f *streamFrame) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.peers[peer]
	return p != nil && slices.Contains(p.frames, f)
}

// release drops one reference to f. Called with q.mu held.
func (q *streamQueue) release(f *streamFrame) {
	if f.refs--; f.refs == 0 {
		q.held -= len(f.b)
	}
}

// close drops every queued frame (telling their done: ErrClosed), refuses
// new ones and waits for the senders to finish the frame each is writing.
// It is idempotent.
func (q *streamQueue) close() {
	var dropped []*streamFrame
	q.mu.Lock()
	q.closed = true
	for _, p := range q.peers {
		for _, f := range p.frames {
			q.release(f)
			if f.done != nil {
				dropped = append(dropped, f)
			}
		}
		p.frames, p.queued = nil, 0
	}
	q.mu.Unlock()
	for _, f := range dropped {
		f.done(ErrClosed)
	}
	q.wg.Wait()
}

// bytes returns the bytes of the frames queued or being written now.
func (q *streamQueue) bytes() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.held
}
