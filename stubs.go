package bcache

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// A member that holds a key as an evicted stub it did not evict itself
// (a peer's evicted version, which anti-entropy ships so that the member
// takes no older write of the key) served a miss for it until the key was
// written again: the digests leave the evicted flag out, so no exchange
// with a member that holds the value ever brought it, and a value of the
// stub's version loses the tie to it. A member that first synced with a
// bounded peer (a new or restarted member, one back from a partition)
// missed that peer's evicted keys for good, though other members served
// them: eviction was not local (found by an in-process soak of the whole
// composition, TestAPeersEvictionIsNotAMissHereForEver).
//
// So a member with room for values asks its peers for the value of such a
// key: when a peer's evicted version is applied here (on a member with no
// bounds), and when a read misses on a stub (on a member under its
// bounds). An answer of the stub's very version puts the value back
// (Store.Refill, through clusterfill's member.Receive as GetOrFill's
// answers are); a newer record is applied as any repair is. The asks are
// bounded: a queue of stubAskQueue keys, dropped past it (counted); at
// most stubAskRate asks a second; a key asked for again only after
// stubAskAgain. A value none of the peers holds stays a miss, as before.
//
// An ask goes to stubAskPeers peers, not to every one: in a cluster of a
// hundred, each key's ask was 99 datagrams, and up to 99 answers each
// carrying the value. The key's owner is asked first (the member that
// fills it for the cluster, most likely to hold it), and others drawn at
// random; a value the ones asked do not hold is asked for again, of
// another draw, at a read after stubAskAgain (a member without bounds
// reads the stub as a miss too).

const (
	stubAskPeers = 3
	stubAskQueue = 1024
	stubAskRate  = 200
	stubAskAgain = time.Second
	stubAskWait  = 2 * time.Second
)

// stubAsks is the queue of keys to ask peers the values of, and when
// each was last asked.
type stubAsks struct {
	keys  chan string
	asked recentPulls
	// queued holds, by a slot of the key's hash, when a read may queue a
	// key of that slot again (in nanoseconds since pullsEpoch): a read
	// of a stub queued a copy of its key at every read, taking the
	// queue's lock on Get's path, and a hot key read at full speed filled
	// the queue with itself, the others dropped (found by review). A read
	// queues a slot's key once a stubAskAgain at most, without a lock.
	queued [stubSlots]atomic.Int64
	// tooBig holds, by the same slots, the last key whose answer did not
	// fit beside the values held: its hash's top 32 bits above the key
	// and value bytes it needed. A read of it queues no ask while they
	// still do not fit: it asked at every read a stubAskAgain apart, for
	// ever, each ask bringing stubAskPeers copies of the value to drop
	// (found by review, TestAStubThatNeverFitsIsNotAskedForAgainAndAgain).
	tooBig [stubSlots]atomic.Uint64
}

// stubSlots is the number of queued's slots.
const stubSlots = 1024

// stubArrived is told of each peer's evicted version applied here (as a
// delta or a repair): a member with no bounds asks for its value.
func (c *Cache) stubArrived(key string) {
	if c.cfg.MaxKeys == 0 && c.cfg.MaxBytes == 0 {
		c.wantStub(key)
	}
}

// missedStub is told of each key Get missed: one held as a stub, on a
// member under its bounds, is asked for.
func (c *Cache) missedStub(key string) {
	if !c.store.HasRoom() || !c.store.Stub(key, c.phys) {
		return
	}
	h := crdt.HashKey(key)
	if w := c.stubs.tooBig[h%stubSlots].Load(); w != 0 && w>>32 == h>>32 && !c.store.RoomFor(int64(uint32(w))) {
		return // its value did not fit, and still would not
	}
	slot := &c.stubs.queued[h%stubSlots]
	now := int64(time.Since(pullsEpoch))
	if t := slot.Load(); now < t || !slot.CompareAndSwap(t, now+int64(stubAskAgain)) {
		return // queued lately
	}
	c.wantStub(key)
}

// wantStub queues key for an ask, without blocking.
func (c *Cache) wantStub(key string) {
	select {
	case c.stubs.keys <- key:
	default:
		c.stats.stubAsksDropped.Add(1)
	}
}

// askForStubs asks the peers for the values of the keys queued, at most
// stubAskRate a second, until Close; it forgets each ask after
// stubAskWait (an ask not answered is remembered until it is cancelled).
func (c *Cache) askForStubs() {
	defer c.wg.Done()
	pace := time.NewTicker(time.Second / stubAskRate)
	defer pace.Stop()
	type round struct {
		at      time.Time
		cancels []func()
	}
	var pending []round
	forget := func(now time.Time) {
		for len(pending) > 0 && (now.IsZero() || now.Sub(pending[0].at) >= stubAskWait) {
			for _, cancel := range pending[0].cancels {
				cancel()
			}
			pending = pending[1:]
		}
	}
	defer forget(time.Time{})
	for {
		var tick <-chan time.Time
		if len(pending) > 0 {
			tick = pace.C // to forget the asks in time
		}
		var key string
		select {
		case <-c.done:
			return
		case now := <-tick:
			forget(now)
			continue
		case key = <-c.stubs.keys:
		}
		if !c.store.HasRoom() || !c.store.Stub(key, c.phys) {
			continue // filled, written or bounded since
		}
		if _, ok := c.stubs.asked.take(key, stubAskAgain); !ok {
			continue
		}
		pending = append(pending, round{time.Now(), c.askStub(key)})
		select {
		case <-c.done:
			return
		case now := <-pace.C:
			forget(now)
		}
	}
}

// askStub asks stubAskPeers live peers at once (the key's owner and
// others drawn at random) for the record each holds of key, and takes
// what they answer as GetOrFill takes an owner's answer (member.Receive:
// the value put back on the stub of its version, a newer record applied).
// It returns the asks' cancels.
func (c *Cache) askStub(key string) []func() {
	c.stats.stubAsks.Add(1)
	return c.askPeers(key, nil, stubAskPeers, func(rec crdt.Record) {
		if rec.Tombstone && rec.Time.Node == 0 {
			return // the peer's word that the key's writes below it are dead there: no value
		}
		// The stub's value is put back only if it fits beside the values
		// held: on a member bounded by MaxBytes, under its bound after
		// every eviction, it evicted another value, which the next read
		// asked for in turn (found by review,
		// TestAStubAskEvictsNothingOnAFullMember). A value over the
		// bounds goes on, for Receive to mark the stub so.
		if held, ok := c.store.Lookup(key); ok && held.Evicted && !held.Tombstone && held.Time == rec.Time &&
			!rec.Tombstone && !c.store.Oversized(rec) && !c.store.Fits(rec) {
			h, need := crdt.HashKey(key), uint64(min(int64(len(rec.Key)+len(rec.Value)), math.MaxUint32))
			c.stubs.tooBig[h%stubSlots].Store(h>>32<<32 | need)
			return
		}
		member{c}.Receive(rec)
	})
}
