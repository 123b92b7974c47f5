package bcache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// ErrFillTimeout is returned when a fill took longer than
// Config.FillTimeout: the key is free for the next caller's fill.
var ErrFillTimeout = errors.New("fill timed out")

// GetOrFill returns the value of key, filling it with Config.Filler on a
// miss, once in the cluster: the member asks the key's owner (the live
// member that rendezvous hashing of the key over the members' names
// picks, the same on every member that sees the same members), which
// runs one fill for all askers, Sets the value with Config.FillTTL (so it
// replicates like any write) and answers with it. A member asks at most
// one owner at a time per key (its own callers share the answer), and an
// owner never forwards: one hop at most. If the owner leaves while asked,
// the member asks the new owner, once; if an owner does not answer within
// Config.FillTimeout, the member fills locally. A filler's error goes to every waiting caller
// on every member and is not cached. A caller whose ctx ends gets
// ctx.Err(); the fill goes on for the others. The returned slice is
// shared: do not modify it.
func (c *Cache) GetOrFill(ctx context.Context, key string) ([]byte, error) {
	if c.cfg.Filler == nil {
		return nil, fmt.Errorf("bcache: get or fill %q: %w (Config.Filler)", key, ErrNilFiller)
	}
	if err := c.check("get or fill", key, 0, c.cfg.FillTTL); err != nil {
		return nil, err
	}
	if v, ok := c.Get(key); ok {
		return v, nil
	}
	ch := c.forwards.DoChan(key, func() (any, error) { return c.clusterFill(key) })
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]byte), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("bcache: get or fill %q: %w", key, ctx.Err())
	}
}

// clusterFill asks the key's owner to fill it, or fills it here.
func (c *Cache) clusterFill(key string) ([]byte, error) {
	if v, ok := c.Get(key); ok {
		return v, nil
	}
	asked := ""
	for range 2 { // the owner, then the new one if it left
		owner := c.owner(key)
		if owner == c.cfg.NodeName {
			rec, err := c.fillHere(key)
			return rec.Value, err
		}
		if owner == asked { // silent, and still the owner: fill here
			break
		}
		asked = owner
		c.stats.fillsForwarded.Add(1)
		if v, err, answered := c.forward(owner, key); answered {
			return v, err
		}
	}
	c.stats.fillFallbacks.Add(1)
	rec, err := c.fillHere(key)
	return rec.Value, err
}

// owner returns the member that fills key: the live member whose name,
// hashed with the key, ranks highest (rendezvous hashing: a member that
// leaves moves only its own keys).
func (c *Cache) owner(key string) string {
	best, bestScore := c.cfg.NodeName, ownerScore(c.cfg.NodeName, key)
	for _, m := range c.repl.Members() {
		if s := ownerScore(m.Name, key); s > bestScore || (s == bestScore && cmp.Less(m.Name, best)) {
			best, bestScore = m.Name, s
		}
	}
	return best
}

func ownerScore(member, key string) uint64 { return crdt.HashKey(member + "\x00" + key) }

// forward asks owner to fill key and waits for its answer, the fill
// timeout, or the owner leaving; answered says the owner answered (with
// the value, or the filler's error).
func (c *Cache) forward(owner, key string) (v []byte, err error, answered bool) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.FillTimeout)
	defer cancel()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := c.repl.Call(ctx, owner, append([]byte{fillRequest}, key...))
		done <- result{b, err}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			if r.err != nil {
				return nil, nil, false // unreachable, busy, or too slow
			}
			return c.takeAnswer(key, r.b)
		case <-tick.C:
			if c.owner(key) != owner { // it left: ask the new one
				return nil, nil, false
			}
		}
	}
}

// The payloads of a fill call: a request is fillRequest and the key; an
// answer is fillValue and the record the owner holds, or fillError and
// the filler's error.
const (
	fillRequest  = 1
	fetchRequest = 2 // GetAfter's pull: the record held for a key
	fillValue    = 1
	fillError    = 2
	notHeld      = 3 // a fetch of a key the peer holds no live record of
)

// takeAnswer applies an owner's answer: its record, as a received one (so
// that a newer version here is not overwritten), and returns the value.
func (c *Cache) takeAnswer(key string, b []byte) ([]byte, error, bool) {
	if len(b) == 0 {
		return nil, nil, false
	}
	switch b[0] {
	case fillError:
		return nil, fmt.Errorf("bcache: fill %q (by its owner): %s", key, b[1:]), true
	case fillValue:
		rec, ok := c.applyAnswer(key, b)
		if !ok || rec.Tombstone {
			return nil, nil, false // not a fill's answer: fill here
		}
		if v, ok := c.Get(key); ok {
			return v, nil, true
		}
		// Not live here: this member holds a newer delete than the
		// owner's value (the owner's clock is behind, the delete has not
		// reached it), or it expired at once. The owner's value would be
		// older than what a read here gives: fill here, after the delete.
		rec, err := c.fillHere(key)
		return rec.Value, err, true
	}
	return nil, nil, false
}

// serveCall answers a peer's call: a fill request for a key this member
// owns in the peer's view, or a fetch of the record it holds for a key.
func (c *Cache) serveCall(from string, payload []byte) []byte {
	if !c.serving.Load() { // New has not finished: the asker asks elsewhere
		return []byte{notHeld}
	}
	if len(payload) < 2 || len(payload)-1 > maxValueLimit {
		return []byte{fillError}
	}
	if payload[0] == fetchRequest {
		r, ok := c.store.Lookup(string(payload[1:]))
		if !ok || r.Evicted {
			return []byte{notHeld}
		}
		return store.AppendRecord([]byte{fillValue}, &r)
	}
	if payload[0] != fillRequest || c.cfg.Filler == nil || len(payload)-1 > c.cfg.MaxKeySize {
		return []byte{fillError}
	}
	c.stats.fillsForPeers.Add(1)
	rec, err := c.fillHere(string(payload[1:]))
	if err != nil {
		return append([]byte{fillError}, err.Error()...)
	}
	return store.AppendRecord([]byte{fillValue}, &rec)
}

// fillHere runs Config.Filler for key on this member, one at a time per
// key (shared with GetWithFiller's fills and the peers' requests), and
// returns the record it wrote, or the one already live here.
func (c *Cache) fillHere(key string) (crdt.Record, error) {
	ch := c.fills.DoChan(key, func() (any, error) {
		if r, ok := c.store.Lookup(key); ok && r.Live(c.phys()) {
			return r, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.FillTimeout)
		defer cancel()
		v, err := c.fill(ctx, key, c.cfg.Filler, c.cfg.FillTTL)
		if err != nil {
			return crdt.Record{}, err
		}
		if r, ok := c.store.Lookup(key); ok && !r.Tombstone {
			return r, nil
		}
		return crdt.Record{Key: key, Value: v}, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return crdt.Record{}, res.Err
		}
		rec := res.Val.(crdt.Record)
		if rec.Time.Wall == 0 { // a GetWithFiller's fill, which keeps the value alone
			if r, ok := c.store.Lookup(key); ok && r.Live(c.phys()) {
				rec = r
			}
		}
		return rec, nil
	case <-time.After(c.cfg.FillTimeout):
		c.fills.Forget(key) // a hung filler does not hold the key
		return crdt.Record{}, fmt.Errorf("bcache: fill %q: %w (%v)", key, ErrFillTimeout, c.cfg.FillTimeout)
	}
}

// applyAnswer applies the record a peer answered for key (after its
// fillValue byte), as a received one: through the clock's drift check, and
// only if it is newer than what this member holds.
func (c *Cache) applyAnswer(key string, b []byte) (crdt.Record, bool) {
	rec, n, err := store.DecodeRecord(b[1:])
	if err != nil || n != len(b)-1 || rec.Key != key || rec.Evicted {
		return rec, false
	}
	if c.clock.Update(rec.Time) == nil {
		c.store.Apply(rec, false, c.phys())
		c.feed.flush()
	}
	return rec, true
}

// pull asks every live peer, at once, for the record it holds of key, and
// applies what they answer (GetAfter, when a write has not come in time):
// one round trip.
func (c *Cache) pull(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req := append([]byte{fetchRequest}, key...)
	var wg sync.WaitGroup
	for _, m := range c.repl.Members() {
		if m.Name == c.cfg.NodeName {
			continue
		}
		wg.Go(func() {
			if b, err := c.repl.Call(ctx, m.Name, req); err == nil && len(b) > 0 && b[0] == fillValue {
				c.applyAnswer(key, b)
			}
		})
	}
	wg.Wait()
}
