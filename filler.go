package bcache

import (
	"context"
	"fmt"
	"time"

	"github.com/bcache-go/bcache/crdt"
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
// the key wait for it and share its result, for at most
// Config.FillTimeout (then ErrFillTimeout, and the key is free for the
// next fill: a hung filler holds it no longer). A filled value is Set with ttl,
// so it replicates; an error is returned to every waiting caller and not
// cached. A caller whose ctx ends stops waiting and gets ctx.Err(); the fill
// goes on for the others. The returned slice is shared: do not modify it.
func (c *Cache) GetWithFiller(ctx context.Context, key string, fill Filler, ttl time.Duration) ([]byte, error) {
	if fill == nil {
		return nil, fmt.Errorf("bcache: get with filler %q: %w", key, ErrNilFiller)
	}
	if err := c.check("get with filler", key, 0, ttl); err != nil {
		return nil, err
	}
	if v, ok := c.Get(key); ok {
		return v, nil
	}
	ch := c.fills.DoChan(key, func() (any, error) {
		if r, ok := c.store.Lookup(key); ok && r.Live(c.phys()) { // filled while this caller was on its way
			return r, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.FillTimeout)
		defer cancel()
		stop := context.AfterFunc(c.life, cancel) // Close cancels it
		defer stop()
		return c.fill(fctx, key, fill, ttl)
	})
	timeout := time.NewTimer(c.cfg.FillTimeout)
	defer timeout.Stop()
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(crdt.Record).Value, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("bcache: get with filler %q: %w", key, ctx.Err())
	case <-c.done:
		return nil, fmt.Errorf("bcache: get with filler %q: %w", key, ErrClosed)
	case <-timeout.C:
		c.fills.Forget(key) // a hung filler does not hold the key
		return nil, fmt.Errorf("bcache: get with filler %q: %w (%v)", key, ErrFillTimeout, c.cfg.FillTimeout)
	}
}

// fill runs the filler, turning a panic into an error, and stores what it
// returns: the record written (the caller gets its value even if the
// bound evicts it, or its TTL ends, at once).
func (c *Cache) fill(ctx context.Context, key string, fill Filler, ttl time.Duration) (rec crdt.Record, err error) {
	c.stats.fills.Add(1)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bcache: fill %q: %w: %v", key, ErrFillerPanic, p)
		}
		if err != nil {
			c.stats.fillErrors.Add(1)
		}
	}()
	v, err := fill(ctx, key)
	if err != nil {
		return crdt.Record{}, fmt.Errorf("bcache: fill %q: %w", key, err)
	}
	if ctx.Err() != nil {
		// Past its FillTimeout (or Close): the key was freed, and a later
		// fill may have stored a newer value, which this one, written now
		// with a newer timestamp, would replace everywhere (found by review).
		return crdt.Record{}, fmt.Errorf("bcache: fill %q: %w (%v)", key, ErrFillTimeout, c.cfg.FillTimeout)
	}
	return c.set(key, v, ttl)
}
