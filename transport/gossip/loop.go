package gossip

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// minWait is how long the loop waits for a deadline that the Tick just
// before had already reached. The node's NextDeadline is never such a
// deadline (a session in flight defers the next one); the floor keeps a
// replica that got it wrong from spinning the loop, and a CPU.
const minWait = 5 * time.Millisecond

// loop drives the protocol node's local writes, membership changes and
// timers; received frames reach the node directly (see received).
func (r *Replicator) loop() {
	defer r.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	r.loopLocked(r.updateView)
	var batch [][]crdt.Record
	for {
		var now, next int64
		r.loopLocked(func() []transport.Envelope {
			now = r.now()
			// The tick's envelopes are the closure's: kept in the loop,
			// they held their frames until it next woke, an anti-entropy
			// interval on an idle member (found by review).
			out := r.node.Tick(now)
			next = r.node.NextDeadline()
			return out
		})
		r.sweepFragments(time.Now()) // a lock and a look when none is due
		r.deadline.Store(next)
		wait := r.wait(now, next)
		// Partial frames expire partialTTL after they arrived, the node's
		// next deadline however far (an hour's anti-entropy interval held
		// them that long: found by review): the loop wakes when the
		// oldest is due (waking partialTTL after a sweep, and sweeping
		// only partialTTL after the last, held one up to twice as long:
		// found by review). A fragment that arrives while the loop waits
		// longer kicks it (sweepArmed; disarmed before the look, so that a
		// fragment held after it finds the loop disarmed, and kicks it).
		r.sweepArmed.Store(false)
		if born, ok := r.frags.oldest(); ok {
			r.sweepArmed.Store(true)
			wait = min(wait, max(time.Until(born.Add(partialTTL))+time.Millisecond, minWait))
		}
		timer.Reset(wait)
		select {
		case <-r.done:
			return
		case <-r.kick:
		case <-r.writes.wake:
			batch = r.writes.take(batch)
			r.loopLocked(func() []transport.Envelope {
				// Everything written while the loop last sent is one
				// group (see transport.Node.WriteGroup), whatever the
				// chunks it is kept in.
				now := r.now()
				envs := r.node.AppendWriteGroups(r.envs[:0], batch, now)
				if r.leaving.Load() { // see stop
					envs = append(envs, r.node.Flush(now)...)
				}
				r.envs = envs
				return envs
			})
			r.envs = keepEnvelopes(r.envs) // sent: holds no frame until the next group
			batch = r.writes.recycle(batch)
		case <-r.changed:
			r.loopLocked(r.updateView)
		case <-r.holding:
			r.advertise()
		case <-timer.C:
		}
	}
}

// keptEnvelopes is the capacity of the loop's envelopes' slice that
// keepEnvelopes keeps whatever the group.
const keptEnvelopes = 64

// keepEnvelopes empties envs, a group's envelopes once sent, and returns
// it for the next group, or nil when it is more than four times as long
// as this group needed (and than keptEnvelopes): kept at any size, the
// slice of a burst's group (16,384 writes of a packet each, to 8 members:
// 131,072 envelopes, 10 MB) stayed the loop's for good, the frames let go
// but not the slice (found by review, TestABurstsEnvelopesAreLetGo).
func keepEnvelopes(envs []transport.Envelope) []transport.Envelope {
	clear(envs)
	if cap(envs) > 4*max(len(envs), keptEnvelopes) {
		return nil
	}
	return envs[:0]
}

// loopLocked is locked, for the loop: loopWaits is set while it waits
// for the lock.
func (r *Replicator) loopLocked(f func() []transport.Envelope) {
	r.loopWaits.Store(true)
	r.nodeMu.Lock()
	r.loopWaits.Store(false)
	r.section(f)
}

// wait returns how long to wait for next, the node's deadline after a
// Tick at now: at least minWait if the Tick had reached it, and never
// longer than from now (a clock stepped back between the Tick and this
// reading made the loop sleep for the step's length too: found by
// review).
func (r *Replicator) wait(now, next int64) time.Duration {
	if next <= now {
		return minWait
	}
	return time.Duration(max(min(crdt.SubSat(next, now), crdt.SubSat(next, r.now())), 0)) // saturated: no deadline (the largest time) less a clock before 1970 wrapped, and the loop spun
}

// updateView hands the node the membership view and the members that left
// on purpose. Called with the node's lock held.
func (r *Replicator) updateView() []transport.Envelope {
	alive, left, newcomers, prints, least := r.view()
	now := r.now()
	r.node.SetMembers(alive, now)
	r.node.SetNewcomers(newcomers)
	r.mu.Lock()
	restarted := r.restarted
	r.restarted = nil
	r.mu.Unlock()
	for _, name := range restarted {
		r.node.Restarted(name, now)
	}
	current := least >= directVersion
	r.current.Store(current)
	r.raw.Store(least >= rawVersion && r.out != nil)
	r.node.UseDirect(current)
	if least >= printsVersion {
		r.node.ListPrints(true)
	} else {
		// Per peer: a session's Versions go to its peer alone, so the
		// members that take prints repair with them beside members of a
		// release before, or of another transport (gated on the least
		// version, prints went to no one in a cluster with one).
		r.node.ListPrintsTo(prints)
	}
	r.node.OpenWithRoot(current)
	for _, l := range left {
		r.node.Left(l.name, l.keeps, now)
	}
	return nil
}

// publishView publishes the node's part of Status copied by the section
// numbered seq (syncs nil: they did not change), unless a newer section's
// copy was published already (the rule of the counters, below), and
// closes Synced at the first sync.
func (r *Replicator) publishView(seq uint64, view nodeView, syncs map[string]int64) {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	if seq > r.viewSeq {
		r.nodeView, r.viewSeq = view, seq
		if view.first != 0 {
			// Closed under the lock Status reads the first sync under,
			// as it publishes it: a Status that says synced finds
			// WaitSynced returning, and the other way round (closed
			// apart, a Status between said synced while WaitSynced with a
			// done context did not). A copy not published was overtaken
			// by a newer one, synced too (the first sync stays).
			r.syncedOnce.Do(func() { close(r.synced) })
		}
	}
	if syncs != nil && seq > r.syncsSeq {
		r.syncs, r.syncsSeq = syncs, seq
	}
}

// locked runs f with the node's lock held, copies the node's counters for
// Stats, and after releasing the lock sends what f returned (then
// publishes the counters: a frame counted sent has been written, or
// queued for a stream) and reports
// the records the node dropped (Config.OnDrop): no user callback runs
// under the lock.
func (r *Replicator) locked(f func() []transport.Envelope) {
	r.nodeMu.Lock()
	r.section(f)
}

// section is locked's work once it holds the lock, which it releases.
func (r *Replicator) section(f func() []transport.Envelope) {
	out := f()
	pushed := false
	if dropped := r.node.Dropped(); len(dropped) > 0 && r.cfg.OnDrop != nil {
		r.drops.push(dropped) // in the order dropped: see dropQueue
		pushed = true
	}
	st := r.node.Stats()
	r.statsSeq++
	seq := r.statsSeq
	view := nodeView{first: r.node.FirstSync(), pending: r.node.Pending()}
	view.firstWith, _ = r.node.FirstSyncWith()
	view.lastAny, view.returned = r.node.Exchanges()
	var syncs map[string]int64
	if v := r.node.SyncsVersion(); v != r.syncsSeen {
		r.syncsSeen, syncs = v, r.node.LastSyncs()
	}
	sooner := r.node.NextDeadline() < r.deadline.Load()
	synced := view.first != 0
	r.nodeMu.Unlock()
	r.publishView(seq, view, syncs)
	if synced {
		r.becomeHolder()
	}
	if sooner {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	// Sent before the counters that count it are published: a frame
	// counted sent was still to be written, and a test that cut the
	// network once a delta was counted sent had it delivered after.
	r.send(out)
	// Copies taken in one order may be published in another (locked runs
	// on several goroutines): only a newer one replaces the last, or the
	// counters went back, and Prometheus took it for a reset (found by
	// review).
	r.statsMu.Lock()
	if seq > r.protocolSeq {
		r.protocol, r.protocolSeq = st, seq
	}
	r.statsMu.Unlock()
	if pushed {
		// Only a section that queued drops delivers: each one that did
		// comes here after its push, so none is left queued. One that
		// queued none (a reader's Hurry, the loop's tick) took over the
		// drops another had queued and not yet delivered, and waited in
		// OnDrop (the Cache's, its queue full) for drops not its own: an
		// OnDrop that called the Cache, hurrying a read, waited for
		// itself (found by review, TestACallThatDroppedNothingDeliversNoDrops).
		r.drops.deliver(r.cfg.OnDrop)
	}
}

// dropQueue hands the records the node dropped to Config.OnDrop in the
// order dropped, one call at a time, with no lock held: each section
// under nodeMu queues its drops, and after it, if it queued any and finds
// no one delivering, delivers until the queue is empty. (Each goroutine reported
// its own after the lock's release, and two receiving goroutines could
// report theirs out of the order the node dropped them: found by
// review.) A call that leads to more drops (OnDrop calling the member)
// queues them for the call under way to deliver. Past maxDropsQueued
// waiting while OnDrop is under way, a section that queued more waits
// for the delivering goroutine to take them, as each goroutine waited in
// OnDrop for its own: the replication waits for an OnDrop that does
// (the Cache's, its 1,024 keys queued), and the queue has a bound (it
// took every other goroutine's drops meanwhile: found by review,
// TestDropsQueuedWhileOnDropWaitsAreBounded).
type dropQueue struct {
	mu         sync.Mutex
	taken      *sync.Cond // on mu: the queue was taken, or delivery ended
	q          []crdt.Version
	delivering bool
}

// maxDropsQueued bounds the drops queued while a delivery is under way
// (see dropQueue).
const maxDropsQueued = 1024

// push queues vs. Called with nodeMu held.
func (d *dropQueue) push(vs []crdt.Version) {
	d.mu.Lock()
	d.q = append(d.q, vs...)
	d.mu.Unlock()
}

// deliver calls fn with every record queued, in order, unless another
// goroutine is delivering: that one delivers them.
func (d *dropQueue) deliver(fn func(crdt.Version)) {
	d.mu.Lock()
	if d.taken == nil {
		d.taken = sync.NewCond(&d.mu)
	}
	if d.delivering {
		for d.delivering && len(d.q) > maxDropsQueued {
			d.taken.Wait()
		}
		d.mu.Unlock()
		return
	}
	d.delivering = true
	for len(d.q) > 0 {
		batch := d.q
		d.q = nil
		d.taken.Broadcast()
		d.mu.Unlock()
		for _, v := range batch {
			fn(v)
		}
		d.mu.Lock()
	}
	d.delivering = false
	d.taken.Broadcast()
	d.mu.Unlock()
}

func (r *Replicator) now() int64 { return r.cfg.Clock.Physical() }

// send puts the protocol's envelopes on the wire: datagrams inline (as
// fragments, an anti-entropy frame of a few datagrams: see fragment.go),
// larger frames to the stream queue. Envelopes of one broadcast share a payload,
// framed once.
func (r *Replicator) send(envs []transport.Envelope) {
	var framed, last []byte
	var shared *streamFrame
	for _, e := range envs {
		to := r.lookup(e.To)
		if to == nil {
			r.counters.noRoute.Add(1)
			continue
		}
		if last == nil || &e.Payload[0] != &last[0] {
			last, shared = e.Payload, nil
			framed = r.frame(e, e.Anonymous && r.current.Load())
		}
		if len(framed) <= r.datagramRoom() {
			if err := r.sendPacket(to, framed); err != nil {
				r.counters.sendErrors.Add(1)
			}
			continue
		}
		if r.sendFragments(to, e.Kind, framed) {
			continue
		}
		if shared == nil {
			shared = &streamFrame{b: framed}
		}
		r.queueStream(e.To, shared)
	}
}

// frame returns e's payload behind this member's frame header, or behind
// the header of a frame without its sender's name: written into the room
// the node left before it (Envelope.Frame), else in a copy. Every envelope
// of a frame shares that room, so one header must serve them all: a frame
// goes without the name while every member takes that (r.current), not
// peer by peer.
func (r *Replicator) frame(e transport.Envelope, anonymous bool) []byte {
	h := 1 + len(r.cfg.Name) // at least 2: names are not empty
	switch {
	case anonymous && len(e.Frame) == h+len(e.Payload):
		f := e.Frame[h-len(anonymousHeader):]
		copy(f, anonymousHeader[:])
		return f
	case anonymous:
		return append(append(make([]byte, 0, len(anonymousHeader)+len(e.Payload)), anonymousHeader[:]...), e.Payload...)
	case len(e.Frame) == h+len(e.Payload):
		appendFrame(e.Frame[:0], r.cfg.Name, nil)
		return e.Frame
	}
	return appendFrame(make([]byte, 0, h+len(e.Payload)), r.cfg.Name, e.Payload)
}

// queueStream hands the protocol's frame f to peer's stream sender,
// counting it if there is no room, and returns the queue's refusal. It
// never blocks. (Calls' frames are counted apart: see sendCall.)
func (r *Replicator) queueStream(peer string, f *streamFrame) error {
	err := r.streams.push(peer, f)
	switch {
	case errors.Is(err, errPeerStreamsFull):
		r.counters.peerStreamsDropped.Add(1)
		r.counters.streamsDropped.Add(1)
	case errors.Is(err, errStreamsFull):
		r.counters.streamsDropped.Add(1)
	}
	return err
}

// sendStream writes one frame to peer over a stream; it runs on the peer's
// sender goroutine (see streamQueue). A peer no longer alive is skipped, so
// that the frames queued for a member that died go at once rather than one
// stream timeout each.
func (r *Replicator) sendStream(peer string, frame []byte) error {
	to := r.lookup(peer)
	if to == nil {
		r.counters.noRoute.Add(1)
		return fmt.Errorf("%w: %q", ErrNoPeer, peer)
	}
	if err := r.sendReliable(to, frame); err != nil {
		r.counters.sendErrors.Add(1)
		r.log.Debug().Err(err).Str("peer", peer).Int("bytes", len(frame)).Msg("stream send failed")
		return err
	}
	return nil
}
