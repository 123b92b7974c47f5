package store

import (
	"math"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/evict"
)

// track keeps the eviction policy in step with a change of resident
// items; remote says the change came from a peer. Called with the shard's
// lock held.
func (s *Store) track(ch change, remote bool) {
	if ch.removed != nil {
		defer ch.removed.retire() // once the policy has let go of it
	}
	if s.policy == nil || (ch.added == nil && ch.removed == nil && ch.rewritten == nil) {
		return
	}
	s.evictMu.Lock()
	switch {
	case ch.added != nil:
		how := evict.New
		switch {
		case remote:
			how = evict.Received
		case ch.returning:
			how = evict.Returned
		}
		s.policy.Add(ch.added, how)
	case ch.rewritten != nil:
		if ch.rewritten.Slot() == 0 { // a victim chosen, not dropped yet
			s.resized(ch.rewritten)
		}
		s.policy.Rewrite(ch.rewritten, remote, int(ch.bytes))
	default:
		s.policy.Remove(ch.removed)
	}
	s.evictMu.Unlock()
}

// settle evicts past the bounds after a change, accounted for already.
// Called with no lock held.
func (s *Store) settle(ch change) {
	if ch.bytes > 0 || ch.added != nil {
		s.enforceBounds()
	}
}

// account updates the resident counts after a change. Called with the
// shard's lock held: two changes of one key are counted in the order
// they were made (counted after the lock, a Set and a Delete racing on one
// key could be counted remove-then-add, and Len read -1 in between).
func (s *Store) account(ch change) {
	switch {
	case ch.added != nil:
		s.resident.Add(1)
	case ch.removed != nil:
		s.resident.Add(-1)
	}
	if ch.bytes != 0 {
		s.bytes.Add(ch.bytes)
	}
}

// over reports whether the resident values exceed a bound.
func (s *Store) over() bool { return s.overBy(0, 0) }

// overBy reports whether the resident values less keys values of bytes
// exceed a bound.
func (s *Store) overBy(keys, bytes int64) bool {
	return (s.maxKeys > 0 && s.resident.Load()-keys > s.maxKeys) ||
		(s.maxBytes > 0 && s.bytes.Load()-bytes > s.maxBytes)
}

// enforceBounds evicts values chosen by the policy until the bounds hold.
// It takes the ring's lock, then the victim's shard's lock, one after the
// other: a victim replaced in between is skipped. A victim chosen and not
// dropped yet counts as gone for the others (pendingKeys, pendingBytes,
// added to under evictMu): writers that each found the store over its
// bound by one all evicted a value, and took it below its bound (found by
// review). A victim rewritten before it goes counts at its new size (see
// resized). Each one checks the bound again once its victim has gone, so
// that the last to finish leaves the bound held.
func (s *Store) enforceBounds() {
	for s.policy != nil && s.over() {
		s.evictMu.Lock()
		pendingBytes := s.pendingBytes.Load()
		if !s.overBy(s.pendingKeys.Load(), pendingBytes) {
			s.evictMu.Unlock()
			return
		}
		// The small queue's share is counted in bytes while bytes are the
		// bound this eviction is for; in entries alone otherwise (a
		// store over its keys, its bytes under a loose cap, had each
		// larger new value go at the next write: found by review).
		bytes := 0
		if b := s.bytes.Load() - pendingBytes; s.maxBytes > 0 && b > s.maxBytes {
			bytes = int(min(b, math.MaxInt)) // an int is 32 bits on some platforms
		}
		victim, ok := s.policy.Victim(bytes)
		if !ok {
			s.evictMu.Unlock()
			return
		}
		size := int64(victim.Size())
		s.victims = append(s.victims, pendingVictim{victim, size})
		s.pendingKeys.Add(1)
		s.pendingBytes.Add(size)
		s.evictMu.Unlock()
		if s.beforeDrop != nil {
			s.beforeDrop(victim.Key())
		}
		sh := &s.shards[s.shardOf(crdt.HashKey(victim.Key()))] // its key never changes
		sh.mu.Lock()
		ch, evicted := sh.evict(victim)
		if evicted && s.broken != evictUncounted {
			s.account(ch)
		}
		s.evicted(sh, victim, evicted)
		if ch.removed != nil { // the policy let go of it in Victim
			ch.removed.retire()
		}
		sh.mu.Unlock()
		s.evictMu.Lock()
		s.dropped(victim)
		s.evictMu.Unlock()
		if evicted {
			s.stats.evictions.Add(1)
		}
	}
}

// pendingVictim is a victim chosen and not dropped yet, and the bytes it
// counts for in pendingBytes.
type pendingVictim struct {
	it   *item
	size int64
}

// resized counts a victim chosen and not dropped yet at its size now:
// rewritten meanwhile, it goes with its new size, and counted at its old
// one, writers that found the store over by its growth evicted another
// value for it, below the bound (found by review). Called with evictMu
// held and its shard locked (its size is its last write's).
func (s *Store) resized(it *item) {
	for i := range s.victims {
		if v := &s.victims[i]; v.it == it {
			size := int64(it.Size())
			s.pendingBytes.Add(size - v.size)
			v.size = size
			return
		}
	}
}

// dropped takes it, a victim chosen, off the victims pending. Called with
// evictMu held.
func (s *Store) dropped(it *item) {
	for i, v := range s.victims {
		if v.it == it {
			s.pendingKeys.Add(-1)
			s.pendingBytes.Add(-v.size)
			last := len(s.victims) - 1
			s.victims[i] = s.victims[last]
			s.victims[last] = pendingVictim{}
			s.victims = s.victims[:last]
			return
		}
	}
}
