package bcache

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// Filler loads the value of a key that the cache misses, from the source
// the cache stands in front of. It runs without any of the cache's locks
// held. With GetWithFiller, its context carries the values of the first
// caller's context but not its cancellation (other callers may be waiting
// for the same fill); with Config.Filler (GetOrFill), it carries none (a
// fill may run for a peer's caller). Either ends at FillTimeout and at
// Close; a value returned after that is not stored.
type Filler func(ctx context.Context, key string) ([]byte, error)

// GetWithFiller returns the value of key, calling fill on a miss. On each
// member at most one fill per key runs at a time: concurrent callers for
// the key wait for it and share its result (the first caller's filler and
// ttl: a GetOrFill of the key that comes meanwhile joins it too, and the
// value is stored with that ttl, not FillTTL), for at most
// Config.FillTimeout (then ErrFillTimeout, and the key is free for the
// next fill: a hung filler holds it no longer). A filled value is Set with ttl,
// so it replicates; an error is returned to every waiting caller and not
// cached. A filled value is stamped when its filler began: a Set or
// Delete of the key made after that, on any member, by a clock not behind
// this member's, is newer, however late it arrives. One applied here
// while the filler ran (a peer's too, whatever its clock) makes the fill
// not store its value, as does a record of the key stamped after it (a
// peer's clock ahead), or a delete of the key's digest bucket collected
// past its stamp (which may be another key's); the callers then get the
// value held (Stats.FillsSuperseded), or, if none, the filled value
// (ErrValueTooLarge for one over the limits); a caller that came after
// that write was applied here (a read after a Delete returned) waits
// for the fill and then joins or starts the next, whose filler reads
// the source after the write. A
// peer's write stamped by a clock behind this member's that arrives after
// the fill stored loses to it, as to any write here; and a fill whose
// filler ran past a session of this member's by more than MaxClockSkew is
// stamped again when it is stored (a peer may have collected past its
// first stamp), and then beats what was written meanwhile and has not
// arrived. A filled value's TTL runs from when the filler returned. A
// filled value the write log failed to take (Config.Sync) is returned
// all the same, with no error: it is applied and sent, not on this disk
// (Stats.LogErrors counts the failure), and a read after a crash fills it
// again. A caller whose ctx ends stops waiting and gets an error wrapping
// ctx.Err() (errors.Is matches it); the fill goes on for the others. A
// key held is served whatever its length, as Get serves it (a peer with a
// larger MaxKeySize wrote it); a miss of a key over MaxKeySize is
// ErrKeyTooLarge. The returned slice is shared: do not modify it.
func (c *Cache) GetWithFiller(ctx context.Context, key string, fill Filler, ttl time.Duration) ([]byte, error) {
	if err := c.checkHeld("get with filler", key, ttl); err != nil {
		return nil, err
	}
	if fill == nil {
		return nil, fmt.Errorf("bcache: get with filler %q: %w", clip(key), ErrNilFiller)
	}
	if v, ok := c.Get(key); ok {
		return v, nil
	}
	if err := c.checkFill("get with filler", key, ttl); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil { // no one to fill for (the filler ran: found by review)
		return nil, fmt.Errorf("bcache: get with filler %q: %w", clip(key), err)
	}
	if outerFill(ctx).has(c, key) { // see ErrFillCycle
		return nil, fmt.Errorf("bcache: get with filler %q: %w", clip(key), ErrFillCycle)
	}
	late := c.supersededFill(key)
	seen := c.heldStamp(key)
	for {
		ch := c.fills.DoChan(key, func() (any, error) {
			if r, ok := c.store.Lookup(key); ok && r.Live(c.phys()) { // filled while this caller was on its way
				return r, nil
			}
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.FillTimeout)
			defer cancel()
			stop := context.AfterFunc(c.life, cancel) // Close cancels it
			defer stop()
			rec, err := c.fill(fctx, key, fill, ttl, false)
			fillResultHook(key)
			return rec, err
		})
		fillJoinHook(key)
		rec, again, err := c.awaitFill(ctx, c.done, key, ch, late, seen, "get with filler")
		if again {
			late, seen = false, crdt.Timestamp{}
			continue
		}
		return served(rec.Value), err
	}
}

// awaitFill waits for the fill of key whose result ch gives, as long as
// ctx (nil: no caller's context) lasts and done is open (nil: until the
// fill ends), and returns its record; again
// if the caller came late (see supersededFill) and the fill's value is
// one it did not store (superseded by a delete, or by a value expired
// since), or if the fill's record is older than the one the caller saw
// held when it came, seen (heldStamp): the caller must wait for the next
// fill. A fill that had its result (stored, or the value held) before a
// Delete, and handed it to its callers after, gave a read made after
// the Delete returned the value the Delete removed (found by review,
// TestAFillStoredBeforeADeleteServesNoValueToACallerAfterIt).
func (c *Cache) awaitFill(ctx context.Context, done <-chan struct{}, key string, ch <-chan singleflight.Result, late bool, seen crdt.Timestamp, op string) (rec crdt.Record, again bool, err error) {
	// The fill ends by itself at its FillTimeout, and the caller with it:
	// this timer is a backstop only, later, so that no caller gives up
	// before the fill it waits for has freed the key.
	timeout := time.NewTimer(backstop(c.cfg.FillTimeout))
	defer timeout.Stop()
	var ctxDone <-chan struct{}
	if ctx != nil {
		ctxDone = ctx.Done()
	}
	select {
	case res := <-ch:
		if res.Err != nil {
			return crdt.Record{}, false, res.Err
		}
		rec := res.Val.(crdt.Record)
		return rec, late && rec.Time.IsZero() || !rec.Time.IsZero() && rec.Time.Less(seen), nil
	case <-ctxDone:
		return crdt.Record{}, false, fmt.Errorf("bcache: %s %q: %w", op, clip(key), ctx.Err())
	case <-done:
		return crdt.Record{}, false, fmt.Errorf("bcache: %s %q: %w", op, clip(key), ErrClosed)
	case <-timeout.C:
		return crdt.Record{}, false, fmt.Errorf("bcache: %s %q: %w (%v)", op, clip(key), ErrFillTimeout, c.cfg.FillTimeout)
	}
}

// supersededFill reports whether the fill of key under way here, if any,
// was superseded already: a record of the key was applied since its
// filler began, so that the value it reads is not stored, and, if the key
// holds none then (a Delete), is served to its callers unstored. That
// value may be older than one a caller coming now knows of: a service
// that updates its source and then deletes the key (cache-aside) had its
// next read, made after the Delete returned, join the fill that began
// before it and get the source's old value (found by review,
// TestAFillJoinedAfterADeleteServesNoValueFromBeforeIt). Such a caller
// waits for that fill, and takes the next one's value instead: one that
// began after it came. Checked before the caller joins, so that the fill
// checked is the one it joins or an earlier one.
func (c *Cache) supersededFill(key string) bool {
	w, ok := c.filling.Load(key)
	return ok && c.store.Changed(w.(store.FillWatch))
}

// heldStamp is the stamp of the record of key held here, whatever its
// state (a tombstone, expired, evicted), or the zero Timestamp: taken as
// a caller comes to a fill, see awaitFill.
func (c *Cache) heldStamp(key string) crdt.Timestamp {
	r, _ := c.store.Lookup(key)
	return r.Time
}

// fillJoinHook runs as a caller of a fill has joined it; tests replace it.
var fillJoinHook = func(string) {}

// fillResultHook runs as a fill has its result, before its callers get
// it; tests replace it.
var fillResultHook = func(string) {}

// fill runs the filler, turning a panic into an error, and stores what it
// returns unless the key was written or deleted while it ran (see
// GetWithFiller): the record written (the caller gets its value even if the
// bound evicts it, or its TTL ends, at once). It gives up on the filler
// when ctx ends (FillTimeout, or Close), so that the fill, and with it
// the key, ends then, whatever the filler does: what the filler returns
// later is dropped (stored then, newer than a later fill's value, it
// replaced that everywhere). A waiter no longer frees the key itself: it
// freed whatever fill was current, a later healthy one too, and two then
// ran at once (both found by review).
func (c *Cache) fill(ctx context.Context, key string, fill Filler, ttl time.Duration, forPeer bool) (rec crdt.Record, err error) {
	type result struct {
		v   []byte
		err error
		own bool // err is the filler's own, returned (not its panic)
	}
	// No filler starts once Close has returned: the check and the
	// filler's start hold the gate, which Close passes once it has
	// cancelled the fills (a fill past the check when Close ran started
	// its filler after Close returned: found by review).
	c.fillGate.RLock()
	if c.life.Err() != nil { // Close returned, or is under way: no filler call to count (it counted one, failed: found by review)
		c.fillGate.RUnlock()
		return crdt.Record{}, fmt.Errorf("bcache: fill %q: %w", clip(key), ErrClosed)
	}
	c.stats.fills.Add(1)
	defer func() {
		if err != nil {
			c.stats.fillErrors.Add(1)
		}
	}()
	// What is applied to the key from now on, and the stamp of the
	// filled value, taken before the filler reads the source: every write
	// made after it, by a clock not behind, is newer (see
	// Store.WriteIfUnchanged).
	watch := c.store.WatchFill(key)
	defer c.store.EndFill(watch)
	c.filling.Store(key, watch) // one fill of a key at a time here (c.fills)
	defer c.filling.CompareAndDelete(key, watch)
	since := c.clock.Now()
	this := &fillingOf{c: c, key: key, outer: outerFill(ctx)}
	defer this.ended.Store(true)
	ctx = context.WithValue(ctx, fillingKey{}, this)
	done := make(chan result, 1)
	go func() {
		var r result
		returned := false
		defer func() {
			if p := recover(); p != nil {
				r = result{err: fmt.Errorf("%w: %v", ErrFillerPanic, p)}
			} else if !returned {
				// runtime.Goexit (a test's t.FailNow in its filler): no
				// value came back, and an empty one was stored and
				// served (found by review).
				r = result{err: fmt.Errorf("%w: it exited its goroutine (runtime.Goexit) without returning", ErrFillerPanic)}
			}
			done <- r
		}()
		c.fillGate.RUnlock() // the filler starts now: Close returns after this
		r.v, r.err = fill(ctx, key)
		r.own = r.err != nil
		returned = true
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
	}
	switch {
	case c.closed.Load(): // first: a filler that returned Close's cancellation failed for it (found by review)
		return crdt.Record{}, fmt.Errorf("bcache: fill %q: %w", clip(key), ErrClosed)
	case r.own:
		return crdt.Record{}, &fillerError{key: clip(key), err: r.err}
	case r.err != nil:
		return crdt.Record{}, fmt.Errorf("bcache: fill %q: %w", clip(key), r.err)
	case ctx.Err() != nil:
		return crdt.Record{}, fmt.Errorf("bcache: fill %q: %w (%v)", clip(key), ErrFillTimeout, c.cfg.FillTimeout)
	}
	// The record a Set would write now (its TTL runs from now: a filler
	// slower than the TTL stored a value expired already, found by
	// review), stamped when the filler began.
	rec, err = c.record("fill", key, r.v, ttl)
	if err != nil {
		// A value over the limits that a write of the key made while
		// the filler ran superseded: its callers get the value held, as
		// for any fill superseded (they got ErrValueTooLarge: found by
		// review).
		if held, ok := c.store.Lookup(key); errors.Is(err, ErrValueTooLarge) && ok && held.Live(c.phys()) && c.store.Changed(watch) {
			c.stats.fillsSuperseded.Add(1)
			return held, nil
		}
		return rec, err
	}
	if ttl > 0 && forPeer {
		// Only for a peer's ask: the HLC is dragged by every peer's
		// records and session cuts, not the askers' alone, and a fill for
		// this member's own callers that ran from it served a 5 s TTL for
		// 25 s after a session with a peer 20 s ahead, as Set did before
		// 8d3e833 (found by review).
		//
		// A filled value is also its askers' (GetOrFill's owner fills for
		// the members that ask): its TTL runs from the later of this
		// member's clock and its HLC, which the askers' records move to
		// their clocks, at most MaxClockDrift past its clock (the HLC
		// after a step back is further). From this member's clock alone,
		// an owner whose clock was behind an asker's by more than the TTL
		// (within MaxClockDrift) answered with a value expired on
		// arrival, and the asker ran the filler again (found by review).
		phys := c.phys()
		rec.Expires = expiry(max(phys, min(rec.Time.Wall, crdt.AddSat(phys, int64(c.cfg.MaxClockDrift)))), ttl)
	}
	rec.Time = since
	// With SyncWrite, its sync is waited for until the fill's timeout
	// (ctx), no longer: an owner whose sync was slow (an fsync of seconds)
	// answered once it ended, however long that took, past its askers'
	// wait, and its own callers got ErrFillTimeout from their backstop,
	// though the value was filled, applied and sent (found by review,
	// TestOwnersSlowSyncIsBoundedByTheFillTimeout). Its value, not yet
	// durable, is returned as one the log failed to take is, below.
	rec, stored, err := c.writeIf("fill", rec, &watch, ctx.Done())
	switch {
	case stored && errors.Is(err, errSyncPending):
		return rec, nil
	case stored && errors.Is(err, ErrNotDurable):
		// Applied here and sent: its callers, and an asker it filled
		// for, get it (they got the log's error, and no value, for a
		// value Get served: found by review). The log's failure is
		// counted and logged (Stats.LogErrors); a crash loses the value,
		// and a read after it fills it again from the filler's source.
		return rec, nil
	case err != nil || stored:
		return rec, err
	}
	// The key was written or deleted, here or by a peer, while the filler
	// ran: what it read is older, and is not stored. Its callers get what
	// is held now if it is a value, else the filled value, unstored.
	c.stats.fillsSuperseded.Add(1)
	if held, ok := c.store.Lookup(key); ok && held.Live(c.phys()) {
		return held, nil
	}
	return crdt.Record{Key: key, Value: rec.Value}, nil // no version: see serveCall
}

// fillingKey is the key of a filler's context's fillingOf.
type fillingKey struct{}

// fillingOf is a fill under way, in its filler's context: its Cache and
// key, and the fill whose filler asked for this one, if any; ended once it
// has returned (a context kept from a filler, for a refresh later, still
// carries it: found by review).
type fillingOf struct {
	c     *Cache
	key   string
	outer *fillingOf
	ended atomic.Bool
}

// outerFill returns the fill whose filler's context ctx is (or is derived
// from), if any.
func outerFill(ctx context.Context) *fillingOf {
	f, _ := ctx.Value(fillingKey{}).(*fillingOf)
	return f
}

// has says f, or a fill it runs within, is a fill of key on c under way:
// a fill of key asked for with f's context would wait for itself, until
// FillTimeout (found by review).
func (f *fillingOf) has(c *Cache, key string) bool {
	for ; f != nil; f = f.outer {
		if f.c == c && f.key == key && !f.ended.Load() {
			return true
		}
	}
	return false
}

// backstop is how long a caller waits for a fill bounded by d: twice d,
// saturating (2 * math.MaxInt64, a common "forever", wrapped to a negative
// time, and every fill failed at once: found by review).
func backstop(d time.Duration) time.Duration { return time.Duration(crdt.AddSat(int64(d), int64(d))) }

// served is a filled value as a Get returns it: an empty value is empty,
// not nil (a filler that returned nil gave nil, where a Get of the key
// gives an empty slice: found by review).
func served(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// fillerError is the error a filler returned, as its fill returns it: it
// reads and unwraps as fmt.Errorf("bcache: fill %q: %w") did, and tells
// the filler's own error from the fill's (serveCall, failure): one that
// wrapped ErrClosed, ErrValueTooLarge or ErrFillTimeout was taken for
// this member's Close, a value over its bounds, its fill timing out
// (found by review).
type fillerError struct {
	key string // clipped
	err error
}

func (e *fillerError) Error() string { return fmt.Sprintf("bcache: fill %q: %v", e.key, e.err) }
func (e *fillerError) Unwrap() error { return e.err }

// fillerFailed reports whether err is a fill's filler's own error.
func fillerFailed(err error) bool {
	var f *fillerError
	return errors.As(err, &f)
}
