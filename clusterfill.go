package bcache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/clusterfill"
	"github.com/bcache-go/bcache/transport/gossip"
)

// ErrFillTimeout is returned when a fill took longer than
// Config.FillTimeout: the key is free for the next caller's fill.
var ErrFillTimeout = errors.New("fill timed out")

// GetOrFill returns the value of key, filling it with Config.Filler on a
// miss, once in the cluster: the member asks the key's owner (the live
// member that rendezvous hashing of the key over the members' names
// picks, the same on every member that sees the same members), which
// runs one fill for all askers, Sets the value with Config.FillTTL (so it
// replicates like any write; a GetOrFill that joins a GetWithFiller's
// fill of the key under way shares that fill, its filler and its ttl) and answers with it (an owner whose fill
// is not stored, the key written meanwhile: see GetWithFiller, answers
// with the value written then, or that it holds nothing if that was a
// delete, and the member then fills itself). A member asks at most
// one owner at a time per key (its own callers share the answer), and an
// owner never forwards: one hop at most. If the owner leaves while asked,
// the member asks the new owner, once; if an owner does not answer within
// Config.FillTimeout (and up to two seconds: see FillTimeout), or cannot fill (no
// Filler, a key over its MaxKeySize or alone over its MaxBytes, a value
// over its MaxValueSize or MaxBytes: its filler then ran for nothing),
// the member fills locally. A
// filler's error goes to every waiting caller on every member and is not
// cached: from the owner's filler, ErrOwnerFill with its text, or
// ErrFillTimeout, ErrFillerPanic as a fill here gives.
// A caller whose ctx ends gets an error wrapping ctx.Err() (errors.Is
// matches it); the fill goes on for the others. A key held is served as
// GetWithFiller serves it, and so without a Filler; a member without
// one returns ErrNilFiller on a miss, without asking the owner: asking
// would serve the keys others own and fail the keys this member owns, a
// mistake of configuration that shows on some keys only. An owner whose
// MaxValueSize is larger than this member's may answer with a value
// larger than this member's: the caller gets it (it is the cluster's
// value), though this member holds only its version (Stats.Oversized).
// The returned slice is shared: do not modify it.
func (c *Cache) GetOrFill(ctx context.Context, key string) ([]byte, error) {
	if err := c.checkHeld("get or fill", key, c.cfg.FillTTL); err != nil {
		return nil, err
	}
	if v, ok := c.Get(key); ok {
		return v, nil
	}
	if err := c.checkFill("get or fill", key, c.cfg.FillTTL); err != nil {
		return nil, err
	}
	if c.cfg.Filler == nil { // on a miss: a key held is served without one (it failed: found by review)
		return nil, fmt.Errorf("bcache: get or fill %q: %w (Config.Filler)", clip(key), ErrNilFiller)
	}
	if err := ctx.Err(); err != nil { // no one to fill for
		return nil, fmt.Errorf("bcache: get or fill %q: %w", clip(key), err)
	}
	// A filler asking for its own key: a cycle, whoever owns it (a peer
	// owning it may not fill it, and this member then fills it itself,
	// waiting for its own fill: found by review).
	outer := outerFill(ctx)
	if outer.has(c, key) {
		return nil, fmt.Errorf("bcache: get or fill %q: %w", clip(key), ErrFillCycle)
	}
	// A caller coming after a fill here was superseded waits for the ask
	// that fill answers, and then asks again (see supersededFill; the
	// ask again finds the value held, if the fill was superseded by one).
	// An owner's fill elsewhere is superseded by what reached it: the
	// cluster's eventual consistency.
	late := c.supersededFill(key)
	seen := c.heldStamp(key)
	for {
		ch := c.forwards.DoChan(key, func() (any, error) {
			// On a goroutine of singleflight's: Close waits for the ask (it
			// returned with the ask still running: found by review).
			if !c.track() {
				return nil, fmt.Errorf("bcache: get or fill %q: %w", clip(key), ErrClosed)
			}
			defer c.wg.Done()
			defer askEndHook()
			return c.clusterFill(key, outer)
		})
		fillJoinHook(key)
		select {
		case res := <-ch:
			rec, _ := res.Val.(crdt.Record)
			switch {
			case res.Err != nil:
				return nil, res.Err
			case late || !rec.Time.IsZero() && rec.Time.Less(seen):
				late, seen = false, crdt.Timestamp{}
				continue
			}
			return served(rec.Value), nil
		case <-ctx.Done():
			return nil, fmt.Errorf("bcache: get or fill %q: %w", clip(key), ctx.Err())
		case <-c.done:
			return nil, fmt.Errorf("bcache: get or fill %q: %w", clip(key), ErrClosed)
		}
	}
}

// fetchServedHook runs as a member answers a peer's fetch (askPeers),
// with the member's name and the key; tests replace it.
var fetchServedHook = func(member, key string) {}

// membersHook sees the live members peersInOrder reads, and returns
// those it uses instead: membership changing under a pull, for tests.
var membersHook = func(ms []gossip.Member) []gossip.Member { return ms }

// askEndHook runs as GetOrFill's ask returns, on its goroutine, before
// Close may stop waiting for it; tests replace it.
var askEndHook = func() {}

// clusterFill asks the key's owner to fill it, or fills it here (the
// rules are package clusterfill's, shared with the property harness).
func (c *Cache) clusterFill(key string, outer *fillingOf) (crdt.Record, error) {
	// Filled while this caller was on its way: looked up without counting
	// a read, which GetOrFill counted already (a second Get counted each
	// miss twice, found by review).
	if r, ok := c.store.Lookup(key); ok && r.Live(c.phys()) {
		return r, nil
	}
	ask := clusterfill.Ask{Key: key, Self: c.cfg.NodeName}
	for {
		if c.closed.Load() { // it sees no member now: it would fill here
			return crdt.Record{}, fmt.Errorf("bcache: get or fill %q: %w", clip(key), ErrClosed)
		}
		if c.store.Filling(key) {
			// A fill of the key runs here (for a peer that saw this
			// member as the owner, or GetWithFiller's): this caller
			// joins it. Asking the owner now, a newcomer that took the
			// key over, ran the filler a second time while this
			// member's still ran (found by review).
			return c.fillHere(key, outer, false)
		}
		peer, fallback := ask.Next(c.owner(key))
		if peer == "" {
			if fallback {
				// The value may have come while the owner was asked (a
				// peer's write, this member's own): that is no fill, and
				// no fall back (it was counted one: found by review).
				if r, ok := c.store.Lookup(key); ok && r.Live(c.phys()) {
					return r, nil
				}
				c.stats.fillFallbacks.Add(1)
			}
			return c.fillHere(key, outer, false)
		}
		c.stats.fillsForwarded.Add(1)
		b, ok := c.forward(peer, key)
		if !ok {
			continue // unreachable, busy, too slow, or it left
		}
		if ask.Malformed(b) { // taken as no answer, counted: an owner of another release, or a hostile one
			c.stats.fillAnswersBad.Add(1)
		}
		switch v, err, out := ask.Take(member{c}, b); out {
		case clusterfill.Done:
			// Stamped as the owner's answer (the value served may be a
			// newer one held here: see awaitFill).
			r, _ := clusterfill.Record(b, key)
			return crdt.Record{Key: key, Value: v, Time: r.Time}, ownerError(key, err)
		case clusterfill.FillHere:
			return c.fillHere(key, outer, false)
		}
	}
}

// owner returns the member that fills key in this member's view.
func (c *Cache) owner(key string) string {
	ms := c.repl.Members()
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return clusterfill.Owner(key, c.cfg.NodeName, names)
}

// alive reports whether the member called name is in this member's view.
func (c *Cache) alive(name string) bool {
	return slices.ContainsFunc(c.repl.Members(), func(m gossip.Member) bool { return m.Name == name })
}

// forward asks owner to fill key and waits for its answer, or the owner
// leaving, or the time by which its answer would have come; ok says the
// owner answered. The owner starts its fill when a copy of the request
// reaches it, and ends it by its fill timeout. Copies go while no answer
// comes (a datagram lost) within fillResend of each call's first, and
// repeats after, which the owner answers from the answer it kept and
// never serves (gossip's CallResendingFor). So an answer, if any, comes
// by the time the last copy left (a request larger than a datagram
// leaves when its stream has written it, which may be seconds after it
// was queued), the fill timeout and a margin for the journeys: forward
// waits that long, and, while a call's first copy has not left, for it,
// until the fill timeout has passed since the first call: a copy still
// queued then is taken out unsent (CallResendingFor's queueFor), and the
// asker fills itself (behind streams that stall it waited for minutes:
// found by review).
// It waited the fill timeout and the margin from the first send: an
// owner that got a later copy answered after its asker had given up and
// filled itself, and the filler ran twice (found by review). An owner
// with no room for the request (ErrBusy) is asked again until the fill
// timeout has passed since the first call.
func (c *Cache) forward(owner, key string) (answer []byte, ok bool) {
	margin := min(c.cfg.FillTimeout, time.Second)
	resend := min(c.cfg.FillTimeout, fillResend)
	start := time.Now()
	// sent is when the current call's last copy left, the zero Time
	// while its first has not: a reading of the monotonic clock (in Unix
	// nanoseconds of the wall clock, a step of the system clock moved
	// the give-up by as much: a step forward gave up on an owner filling,
	// and the filler ran twice; one back waited, an answer lost, for the
	// length of the step: found by review). A call's copies report to
	// it only while it is the current call (a stream's report may come
	// after its call was answered busy and the next began: found by
	// review).
	var mu sync.Mutex
	var sent time.Time
	var current int64 // the call's number
	sentFor := func(n int64) func(time.Time) {
		return func(at time.Time) {
			mu.Lock()
			if current == n && at.After(sent) {
				sent = at
			}
			mu.Unlock()
		}
	}
	ctx, cancel := context.WithCancel(c.life) // Close cancels it
	defer cancel()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	c.wg.Add(1) // on clusterFill's goroutine, which Close waits for: never after Close's Wait began
	go func() {
		defer c.wg.Done()
		// An owner with no room to serve the request (ErrBusy: many keys
		// at once), or a request this member had no room to send (ErrBusy
		// too: a key larger than a datagram, its stream queue full), is
		// asked again, until the fill timeout: busy is not silent, and
		// filling here would run the key's fill twice.
		for wait := 20 * time.Millisecond; ; wait = min(2*wait, time.Second) {
			mu.Lock()
			current++
			n := current
			sent = time.Time{}
			mu.Unlock()
			b, err := c.repl.CallResendingFor(ctx, owner, clusterfill.Request(clusterfill.FillRequest, key), resend, max(c.cfg.FillTimeout-time.Since(start), time.Millisecond), sentFor(n))
			// A request whose datagram failed to send at once never
			// reached the owner: sent again as a busy one is (taken for
			// the owner's silence, the asker filled the key at once,
			// while the owner filled it for others: found by review,
			// TestFillRequestThatFailsToSendIsSentAgain).
			retry := errors.Is(err, gossip.ErrBusy) || errors.Is(err, gossip.ErrNotSent)
			if !retry || time.Since(start) >= c.cfg.FillTimeout {
				done <- result{b, err}
				return
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				done <- result{nil, ctx.Err()}
				return
			}
		}
	}()
	wait := time.Duration(crdt.AddSat(int64(c.cfg.FillTimeout), int64(margin)))
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			return r.b, r.err == nil
		case now := <-tick.C:
			// It left: ask the new owner. Only then: a member joining
			// makes another the owner too, but the one asked is filling
			// (asking the new one ran the filler twice: found by review).
			if !c.alive(owner) {
				return nil, false
			}
			mu.Lock()
			at := sent
			mu.Unlock()
			if !at.IsZero() && now.Sub(at) > wait {
				return nil, false
			}
		}
	}
}

// fillResend bounds how long after a fill request's first send its copies
// go (see forward).
const fillResend = time.Second

// member is a Cache as the fill rules see it.
type member struct{ c *Cache }

func (m member) Lookup(key string) (crdt.Record, bool) { return m.c.store.Lookup(key) }

// Gone says, of a key this member holds no record of, below what every
// write of it is dead or lost here (Store.Gone): the answer to a peer's
// fetch of it, for a reader there waiting for such a write.
func (m member) Gone(key string) (crdt.Record, bool) { return m.c.store.Gone(key) }

// Receive applies a record a peer answered, as a received one: through
// the clock's drift check, and only if it is newer than what is held, or
// of the version held with its value evicted here (Store.Refill). A
// record the drift check refuses is counted with the protocol's
// (Stats.Replication.Protocol.ClockDriftRejects): it was dropped unseen
// (found by review). It returns the value served then, as
// clusterfill.Member says, without counting a read: GetOrFill counted it
// (a forwarded miss counted a hit too, found by review).
func (m member) Receive(rec crdt.Record) ([]byte, bool) {
	// Served from a stub of its version only if the stub stands for its
	// value (clusterfill.Served).
	taken := m.c.store.Oversized(rec)
	if m.c.clock.Update(rec.Time) != nil {
		m.c.stats.pulledDrifted.Add(1)
		return m.served(rec, taken)
	}
	// Counted, and its lag measured, as the protocol's repairs are: it
	// changed this member's state unseen by them (found by review).
	now := m.c.phys()
	switch (lagReplica{m.c.store, &m.c.deltaLag, &m.c.repairLag, nil}).Apply(rec, false, now) {
	case crdt.Applied:
		m.c.stats.pulled.Add(1)
		taken = true
	case crdt.Stale:
		// The version held, its value perhaps evicted here: the answer
		// is what the asker asked for (Store.Refill).
		if m.c.store.Refill(rec, now) == crdt.Applied {
			m.c.stats.pulled.Add(1)
			taken = true
		}
	case crdt.Rejected:
		// Older than a delete collected here: refused, and counted with
		// the protocol's (Stats.Replication.Protocol.WatermarkRejects), as
		// a record refused for its clock is (it was counted nowhere:
		// found by review, TestAPulledRecordBelowAWatermarkIsCounted).
		m.c.stats.pulledRejected.Add(1)
	}
	m.c.feed.flush()
	return m.served(rec, taken)
}

// served returns the value served for rec's key (clusterfill.Served).
func (m member) served(rec crdt.Record, taken bool) ([]byte, bool) {
	held, ok := m.c.store.Lookup(rec.Key)
	return clusterfill.Served(held, ok, rec, taken, m.c.phys())
}

// serveCall answers a peer's call: a fill request for a key this member
// owns in the peer's view, or a fetch of the record it holds for a key.
//
// A member closing answers nothing it would answer because it closes: it
// answers once it has left, and the answer goes nowhere. The askers see
// it leave and ask the next owner. Its NotHeld, sent at once, reached
// askers that still saw it as the owner, and each filled itself: the
// filler ran once per member (a CI run found it, where the answer beat
// Close to the replication's close).
func (c *Cache) serveCall(from string, payload []byte) []byte {
	if !c.serving.Load() { // New has not finished: the asker fills itself
		return clusterfill.NotHeld()
	}
	if c.closed.Load() {
		<-c.left
		return clusterfill.NotHeld()
	}
	closing := false
	var fill func(string) (crdt.Record, error)
	if c.cfg.Filler != nil {
		fill = func(key string) (crdt.Record, error) {
			if err := c.checkFill("fill", key, c.cfg.FillTTL); errors.Is(err, ErrClosed) {
				closing = true
				return crdt.Record{}, clusterfill.ErrNotStored // Close began: as below (it failed the asker's callers: found by review)
			} else if errors.Is(err, ErrValueTooLarge) {
				// A key over this member's MaxBytes: no value of it could be
				// held here, perhaps there (as a value over the bounds, below).
				return crdt.Record{}, clusterfill.ErrNotStored
			} else if err != nil {
				return crdt.Record{}, err
			}
			// A value held live is answered as it is: no fill ran for the
			// peer (it was counted one). Nor is a request refused (found
			// by review).
			if r, ok := c.store.Lookup(key); ok && r.Live(c.phys()) {
				return r, nil
			}
			c.stats.fillsForPeers.Add(1)
			rec, err := c.fillHere(key, nil, true)
			switch {
			case fillerFailed(err): // the filler's own error, whatever it wraps: answered
				return rec, err
			case err == nil && rec.Time == (crdt.Timestamp{}): // filled, not stored: no version to send (see fill)
				return rec, clusterfill.ErrNotStored
			case errors.Is(err, ErrValueTooLarge):
				// Over this member's bounds (MaxValueSize, MaxBytes), not
				// perhaps over the asker's: it fills itself, and its
				// callers get the value if it can hold it (they got this
				// member's ErrValueTooLarge: found by review). The filler
				// runs twice.
				return rec, clusterfill.ErrNotStored
			case errors.Is(err, ErrClosed) && c.closed.Load():
				// Close began while it ran: the asker asks elsewhere, as
				// when Close came first (its caller got the owner's
				// failure). Only then: a filler's own error that wraps
				// ErrClosed (another Cache it reads through, closed) is
				// its error, answered as any (taken for this Cache's
				// Close, the serving goroutine waited for it, in one of
				// the places of calls served, and the asker, answered
				// nothing, ran the filler again: found by review).
				closing = true
				return rec, clusterfill.ErrNotStored
			}
			return rec, err
		}
	}
	if clusterfill.BadRequest(payload, c.cfg.MaxKeySize) {
		c.stats.callRequestsBad.Add(1) // answered NotHeld, as before, and counted (found by review)
	}
	if len(payload) > 0 && payload[0] == clusterfill.FetchRequest {
		fetchServedHook(c.cfg.NodeName, string(payload[1:]))
	}
	answer := clusterfill.Serve(member{c}, payload, c.cfg.MaxKeySize, fill, failure)
	if closing {
		<-c.left
	}
	return answer
}

// maxOwnerText bounds the owner's error text a caller gets (an owner
// sends no more).
const maxOwnerText = clusterfill.MaxErrorText

// ownerText is an owner's error text as a caller gets it: at most
// maxOwnerText bytes (and "..." if cut), valid UTF-8, without control
// characters, line or paragraph separators or bidirectional controls. Another
// member's text reached callers and logs as sent, whatever its length or
// bytes (a line of a log forged; found by review). Only the start a
// caller may be shown is read: a key holder's text may be as long as a
// frame, and the whole of it was made valid and mapped before it was cut
// (16 MiB of invalid bytes and newlines: 170 MB allocated and 0.6 s of
// CPU for one answer; found by review, TestOwnerTextReadsWhatItShows).
func ownerText(s string) string {
	cut := len(s) > maxOwnerText
	if cut {
		n := maxOwnerText
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		// Line and paragraph separators end a line in some log viewers,
		// and bidirectional controls reorder what follows them (found by
		// review).
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp, unicode.Bidi_Control) {
			return ' '
		}
		return r
	}, s)
	if t := clusterfill.ClipText(s); t != s || !cut {
		return t
	}
	return s + "..." // cut before it was read, and no longer than the bound
}

// failure is why a fill for a peer failed, as the answer says it.
func failure(err error) clusterfill.Failure {
	switch {
	case fillerFailed(err): // whatever it wraps (see fillerError)
		return clusterfill.Failed
	case errors.Is(err, ErrFillTimeout):
		return clusterfill.TimedOut
	case errors.Is(err, ErrFillerPanic):
		return clusterfill.Panicked
	case errors.Is(err, ErrValueTooLarge):
		return clusterfill.TooLarge
	}
	return clusterfill.Failed
}

// ownerError is the error of an owner's failed fill as its asker's
// caller gets it: wrapping the error a fill here would have (ErrFillTimeout,
// ErrFillerPanic, ErrValueTooLarge) or ErrOwnerFill for the filler's own,
// with the owner's text. It was the text alone, which errors.Is matched
// with nothing (found by review).
func ownerError(key string, err error) error {
	var f *clusterfill.FailedError
	if !errors.As(err, &f) {
		return err
	}
	sentinel := ErrOwnerFill
	switch f.Why {
	case clusterfill.TimedOut:
		sentinel = ErrFillTimeout
	case clusterfill.Panicked:
		sentinel = ErrFillerPanic
	case clusterfill.TooLarge:
		sentinel = ErrValueTooLarge
	}
	// The owner names the key clipped (a release before named it whole).
	text := strings.TrimPrefix(ownerText(f.Text), "bcache: ")
	if t, ok := strings.CutPrefix(text, fmt.Sprintf("fill %q: ", clip(key))); ok {
		text = t
	} else {
		text = strings.TrimPrefix(text, fmt.Sprintf("fill %q: ", key))
	}
	if f.Why == clusterfill.Failed {
		return fmt.Errorf("bcache: get or fill %q: %w: %s", clip(key), sentinel, text)
	}
	if i := strings.Index(text, sentinel.Error()); i >= 0 { // its details: the timeout, the panic's value
		text = text[i+len(sentinel.Error()):]
	} else {
		text = " (" + text + ")"
	}
	return fmt.Errorf("bcache: get or fill %q (by its owner): %w%s", clip(key), sentinel, text)
}

// fillHere runs Config.Filler for key on this member, one at a time per
// key (shared with GetWithFiller's fills and the peers' requests), and
// returns the record it wrote, or the one already live here.
//
// outer is the fill whose filler asked (GetOrFill with its context), if
// any: the fill's filler runs within it, so that a cycle through fills of
// other keys is seen (it was lost here, and the cycle waited for
// FillTimeout: found by review).
//
// forPeer says a peer asked (serveCall): the filled value's TTL runs from
// the HLC, within MaxClockDrift (see fill). A fill shared by callers of
// both kinds is the first's.
func (c *Cache) fillHere(key string, outer *fillingOf, forPeer bool) (crdt.Record, error) {
	late := c.supersededFill(key) // see there
	seen := c.heldStamp(key)
	for {
		ch := c.fills.DoChan(key, func() (any, error) {
			if r, ok := c.store.Lookup(key); ok && r.Live(c.phys()) {
				return r, nil
			}
			ctx, cancel := context.WithTimeout(c.life, c.cfg.FillTimeout) // Close cancels it
			defer cancel()
			if outer != nil {
				ctx = context.WithValue(ctx, fillingKey{}, outer)
			}
			rec, err := c.fill(ctx, key, c.cfg.Filler, c.cfg.FillTTL, forPeer)
			fillResultHook(key)
			return rec, err
		})
		fillJoinHook(key)
		rec, again, err := c.awaitFill(nil, nil, key, ch, late, seen, "fill")
		if !again {
			return rec, err
		}
		late, seen = false, crdt.Timestamp{}
	}
}

// pullFirstPeers is how many live peers a reader's first pull of a key
// asks (GetAfter): the key's owner and others drawn at random. Its later
// pulls, and the rest of the first when the peers it asked have all
// answered without the write, ask every live peer. Every pull asked every
// peer: in a cluster of a hundred, 99 requests and up to 99 answers
// carrying the value, per pull of each waiting key.
const pullFirstPeers = 3

// pullEscalateAfter: a first pull whose peers have not all answered
// within PullAfter/pullEscalateAfter asks the rest then (see pull).
const pullEscalateAfter = 4

// pull asks live peers, at once, for the record each holds of key, and
// applies what they answer as it arrives (GetAfter, when a write has not
// come in time): one round trip. A first pull asks pullFirstPeers of them
// (the key's owner and others drawn at random) and returns the others,
// rest, and a channel closed once each peer it asked has answered (any
// answer, a failure too), or PullAfter/pullEscalateAfter later if one
// has not: the reader then asks the rest (escalate) unless an answer
// brought the write. A later pull asks every peer. It sends the
// requests from the calling goroutine and applies each answer on the
// goroutine that receives it, so that the reader waiting for the key is
// woken once, by the apply, as a call's caller would be by its answer. It
// cancels the asks of the previous round, prev, and returns this round's,
// for the caller to cancel when it no longer waits.
func (c *Cache) pull(key string, writer crdt.NodeID, prev []func(), first bool) (asked []func(), settled <-chan struct{}, rest []string) {
	for _, cancel := range prev {
		cancel()
	}
	c.stats.pulls.Add(1)
	// One look at the members: a second, taken apart from the first, saw
	// fewer peers should some leave between them, and names[:3] of one
	// peer panicked (found by review, TestAFirstPullSurvivesPeersLeaving).
	names := c.peersInOrder(key, pullFirstPeers)
	if !first || len(names) <= pullFirstPeers {
		return c.askNames(key, names, prev[:0], c.takePulled(key), nil), nil, nil
	}
	// The writer, where its deltas named it (its delta of this write
	// lost, most likely, as it would not be pulled else), in place of the
	// last peer drawn: where it alone held the write, the first round
	// missed it but in the draws that took it, and the read took two
	// round trips after PullAfter, not one.
	if name, ok := c.repl.Writer(writer); ok {
		if i := slices.Index(names, name); i >= pullFirstPeers {
			names[pullFirstPeers-1], names[i] = names[i], names[pullFirstPeers-1]
		}
	}
	ask, rest := names[:pullFirstPeers], names[pullFirstPeers:]
	ch := make(chan struct{})
	var once sync.Once
	settle := func() { once.Do(func() { close(ch) }) }
	var left atomic.Int32
	left.Store(int32(len(ask)))
	answered := func() {
		if left.Add(-1) == 0 {
			settle()
		}
	}
	// A request or an answer lost is never answered (gossip's Ask): the
	// rest are asked after pullEscalateAfter all the same, rather than at
	// the reader's next pull, 2 PullAfter later.
	time.AfterFunc(c.pullAfter/pullEscalateAfter, settle)
	return c.askNames(key, ask, prev[:0], c.takePulled(key), answered), ch, rest
}

// escalate asks the peers a first pull left out, rest, as pull asks them,
// and appends the asks' cancels to asked: the peers it asked answered
// without the write (only the writer may hold it yet, and the reader may
// not know which member that is: a token names the writer's clock, a
// random NodeID, which a member maps to its name only once a delta batch
// of that writer came to it).
func (c *Cache) escalate(key string, asked []func(), rest []string) []func() {
	c.stats.pullsEscalated.Add(1)
	return c.askNames(key, rest, asked, c.takePulled(key), nil)
}

// takePulled returns what pull does with each record a peer answers of
// key.
func (c *Cache) takePulled(key string) func(crdt.Record) {
	return func(rec crdt.Record) {
		if rec.Tombstone && rec.Time.Node == 0 {
			// The peer's word that every write of key below it is dead
			// or lost there (Store.Gone, or the answer of package lww's
			// rule 3 it holds): noted for the readers, not applied (a
			// read writes nothing). A member that never held the key (it
			// joined after it was collected) waited for its context
			// (found by review).
			if c.clock.CheckDrift(rec.Time) != nil {
				c.stats.pulledDrifted.Add(1) // as Receive counts one
				return
			}
			c.gone.note(key, rec.Time)
			c.feed.wake(key)
			return
		}
		member{c}.Receive(rec)
	}
}

// askPeers asks live peers, at once, for the record each holds of key (a
// fetch): every one if most is 0, else at most most of them, the key's
// owner (who fills it, so most likely holds it) and others drawn at
// random. It hands each record answered to take, on the goroutine that
// receives it; an answer of none of a fetch answer's forms is dropped
// and counted. It appends the asks' cancels to asked, for the caller to
// cancel when it no longer waits.
func (c *Cache) askPeers(key string, asked []func(), most int, take func(crdt.Record)) []func() {
	return c.askNames(key, c.peersToAsk(key, most), asked, take, nil)
}

// askNames asks the peers named, as askPeers does; answered, if not nil,
// runs once for each of them: after take, on the goroutine that received
// its answer, or at once for a peer the request was not sent to.
func (c *Cache) askNames(key string, names []string, asked []func(), take func(crdt.Record), answered func()) []func() {
	req := clusterfill.Request(clusterfill.FetchRequest, key)
	for _, name := range names {
		cancel, err := c.repl.Ask(name, req, func(b []byte, err error) {
			if answered != nil {
				defer answered()
			}
			if err != nil {
				return
			}
			if rec, ok := clusterfill.Record(b, key); ok {
				take(rec)
			} else if clusterfill.FetchMalformed(b, key) {
				c.stats.fillAnswersBad.Add(1) // dropped, as before, and counted (found by review)
			}
		})
		if err == nil {
			asked = append(asked, cancel)
		} else if answered != nil {
			answered()
		}
	}
	return asked
}

// peersToAsk returns the live peers askPeers asks for key: all of them if
// most is 0 or they are no more than most; else the key's owner, if it
// is not this member, and others drawn at random, most in all.
func (c *Cache) peersToAsk(key string, most int) []string {
	names := c.peersInOrder(key, most)
	if most > 0 && len(names) > most {
		names = names[:most]
	}
	return names
}

// peersInOrder returns every live peer, the first most of them those
// peersToAsk picks (in no particular order past most, or at all if most
// is 0).
func (c *Cache) peersInOrder(key string, most int) []string {
	ms := membersHook(c.repl.Members())
	names := make([]string, 0, len(ms))
	for _, m := range ms {
		if m.Name != c.cfg.NodeName {
			names = append(names, m.Name)
		}
	}
	if most <= 0 || len(names) <= most {
		return names
	}
	drawn := 0
	if owner := clusterfill.Owner(key, c.cfg.NodeName, names); owner != c.cfg.NodeName {
		i := slices.Index(names, owner)
		names[0], names[i] = names[i], names[0]
		drawn = 1
	}
	for i := drawn; i < most; i++ { // a partial shuffle of the rest
		j := i + rand.IntN(len(names)-i)
		names[i], names[j] = names[j], names[i]
	}
	return names
}
