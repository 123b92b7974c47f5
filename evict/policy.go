package evict

import (
	"math"
	"sync/atomic"
)

// Entry is a resident value as the policy sees it. The policy keeps its
// place in the entry (Slot, SetSlot: zero while it holds none) and reads
// its use word, which readers update with [Touch].
type Entry interface {
	comparable
	// Hash returns a hash of the entry's key, the same for every entry of
	// that key; nobody may choose keys whose hashes collide (seed it).
	Hash() uint32
	// Use returns the entry's use word.
	Use() *atomic.Uint32
	// Written returns when the entry's value was written (any monotonic
	// scale): peers' writes that arrive out of that order (one frame
	// overtaking another, a repair after a lost one) are evicted oldest
	// first all the same.
	Written() int64
	Slot() int
	SetSlot(int)
	// Size returns the entry's key and value bytes now. (A size that
	// changes is told to Rewrite; a change the policy hears of after it
	// let the entry go leaves its count of a queue's bytes off until the
	// queue's sizes are next counted again.)
	Size() int
}

// Queues, as the low bits of an entry's slot.
const (
	doomedQueue = iota
	peersQueue
	smallQueue
	mainQueue
)

// Arrival says where a new resident value comes from.
type Arrival uint8

const (
	// New is a value written here whose key has no record here: the
	// first demand for it this member has seen.
	New Arrival = iota
	// Returned is a value written here whose key had a record here
	// before (its value evicted, deleted or expired): demand that came
	// back.
	Returned
	// Received is a value from another member (a replicated write, or
	// one restored from a snapshot).
	Received
)

// Policy orders the resident entries for eviction (see the package doc).
// The zero Policy is ready for use; [Policy.Init] sizes its sketch for a
// known capacity, which otherwise grows with the entries. It is not safe
// for concurrent use, except [Touch] on an entry's use word.
type Policy[E Entry] struct {
	// peers holds the peers' writes not read here, evicted first, oldest
	// write first; doomed the entries already chosen (main-queue victims
	// that lost their place to a more frequent key), evicted next.
	doomed, small, main fifo[E]
	peers               byAge[E]
	sketch              sketch
	bound               int    // the capacity Init was asked for: the sketch grows to it with the entries held
	margin              uint32 // admitMargin; tests change it
	// filled is set once the main queue has given up a victim: until
	// then, unread values leaving the small queue fill its room (see
	// Victim).
	filled bool
	// read is set once a value read here has moved to the main queue:
	// until then the main queue holds only returning keys' values, never
	// read, and the first fill's rule stays off (with no reads, values go
	// in the order they came).
	read bool
	// share is the small queue's share of the entries (and bytes), in
	// shareWhole parts: between minShare and maxShare, moved by ghost
	// hits (see adapt).
	share int64
	ghost ghost
}

// The small queue's share, in parts of shareWhole: shareUnit is a tenth.
const (
	shareUnit  = 1 << 26
	shareWhole = 10 * shareUnit
)

// The small queue's share starts at a tenth and moves between half a
// tenth and three (see adapt). Variables: tests change them.
var (
	minShare  int64 = shareUnit / 2
	initShare int64 = shareUnit
	maxShare  int64 = 3 * shareUnit
)

// ghostShare: the ghost has slots for a fifth of the bound (or of the
// sketch's capacity, if less) at most, a tenth at least (a power of two):
// 0.4 to 0.8 bytes per entry.
const ghostShare = 5

// ghostSize returns the evictions the ghost is sized for: a fifth of the
// sketch's capacity, or of the bound if that is less (the sketch is
// sized for 1,024 entries at least: at a bound of 100, a ghost of its
// fifth remembered more evictions than the cache holds entries, and a
// loop of 150 keys pinned the share at three tenths, its hit ratio 0.60
// -> 0.47).
func (p *Policy[E]) ghostSize() int {
	c := p.sketch.capacity()
	if p.bound > 0 {
		c = min(c, p.bound)
	}
	return c / ghostShare
}

// adaptFrom is the least bound in entries at which the small queue's
// share adapts: below it, and in a cache bounded in bytes alone, it stays
// a tenth. A review measured adaptation costing small caches (Zipf 1.0
// at a bound of 100 entries 0.391 -> 0.380, at 20 2.5 points; a loop of
// 1.5 times a cache of 20 0.60 -> 0.47), where a ghost of a few slots
// says little; from 1,000 entries up it cost no row of BenchmarkHitRatio.
// A variable: the property tests, at bounds of a few entries, adapt.
var adaptFrom = 1000

// initGhost sizes the ghost for the policy's bound and sketch, or leaves
// it empty (no adaptation) below adaptFrom.
func (p *Policy[E]) initGhost() {
	if p.bound < adaptFrom {
		p.ghost = ghost{}
		return
	}
	p.ghost.init(p.ghostSize())
}

// adapt moves the small queue's share after a write here of hash h (in a
// read-through cache, a miss), as ARC moves its target (Megiddo and
// Modha, FAST '03): a key evicted unread from the small queue that came
// back says the small queue was too short for it, and its share grows by
// one entry's worth; one evicted from the main queue (or doomed) says the
// main queue was, and the share shrinks by as much. Each step is scaled,
// as ARC's, by how many more keys the other queue put in the ghost
// lately: a hit in the ghost of the queue that evicts few is the
// stronger sign. On a window of keys read for a while that slides
// through the key space (BenchmarkHitRatio's hot window), the few new
// keys that leave the small queue unread all come back and the main
// queue's victims never do: the share grows until no key leaves unread
// (to 25-30%), and the hit ratio comes within 0.0001 of LRU's (0.9479
// -> 0.9488 at 1,000 entries, LRU 0.9489; 0.9380 -> 0.9387 at 10,000,
// LRU's; 0.9269 -> 0.9273 at 100,000, LRU 0.9274: the misses left are
// the ghost hits that teach it, and, at 100,000, the end of the first
// fill). On Zipf traces, and loops larger than the cache, most keys
// evicted from the small queue are never read again and those of the
// main queue come back: it shrinks to its floor, where every such trace
// did as well as at a fixed tenth or better (the loop 0.385 -> 0.392,
// 0.399 -> 0.401, 0.429 -> 0.431; Zipf up to 0.002 at 1,000 entries). A fixed share of two tenths had the hot window at
// LRU's and cost 0.5-0.8 points on every Zipf trace and 2 on the loops.
func (p *Policy[E]) adapt(h uint32) {
	held, main := p.ghost.take(h)
	if !held {
		return
	}
	if main {
		n := int64(max(p.Len(), 1))
		small, mainPuts := int64(max(p.ghost.puts[0], 1)), int64(max(p.ghost.puts[1], 1))
		p.share = max(p.share-max(small/mainPuts, 1)*shareWhole/n, minShare)
	} else {
		p.grow(1)
	}
}

// grow moves the small queue's share up by an ARC step (see adapt),
// divided by div.
func (p *Policy[E]) grow(div int64) {
	n := int64(max(p.Len(), 1))
	small, mainPuts := int64(max(p.ghost.puts[0], 1)), int64(max(p.ghost.puts[1], 1))
	p.share = min(p.share+max(mainPuts/small, 1)*shareWhole/n/div, maxShare)
}

// halfwayDiv: a value read for the first time in the second half of its
// stay in the small queue (see markHalfway) moves the share up by a
// quarter of what a key evicted from there unread and come back does. A
// variable: tests turn it off (0).
var halfwayDiv int64 = 4

// markHalfway marks the value halfway through the small queue (as long
// as its share of the bound), if it is unread there. One that is read
// before it leaves the small queue came close to being evicted unread,
// and moves the share up a little (see halfwayDiv) when it moves on to
// the main queue: the policy learns that the small queue is short from
// the values it nearly lost, not only, as ARC does, from those it lost
// and that were asked for again, each a miss; the values marked while the
// cache first fills, when nothing is evicted yet, teach it as the first
// victims move them on (on the moving hot window the share is at a fifth
// two bounds' worth of requests later, where ARC's rule alone left it at
// a tenth for longer, and lost keys meanwhile). On the moving hot
// window of BenchmarkHitRatio (package bcache) the misses beyond LRU's,
// each key's first read, fell from 19 / 62 / 465 at 1,000 / 10,000 /
// 100,000 entries to 0 / 3 / 9, with Victim's rule that spares the
// newest unread values (the window's keys read late in the small queue
// grow it before any is lost); the Zipf and loop rows moved by 0.002 at
// most, most down (a few of their values are read late too, and the
// main queue's returning victims bring the share back down). At a
// quarter of a ghost hit; at a whole one the window lost none at all,
// and Zipf 1.0 at 10,000 entries 0.5 points.
func (p *Policy[E]) markHalfway() {
	if p.ghost.slots == nil || p.bound <= 0 || halfwayDiv == 0 {
		return // the share does not adapt
	}
	// A bound past 2^32 entries (a "safety cap") is more than the queue
	// can hold: at 2^32 the point lies past its front all the same, and
	// the product cannot wrap (at 2^61 it did).
	half := p.share * min(int64(p.bound), math.MaxUint32) / shareWhole / 2
	pos := p.small.tail - 1 - half
	if half < 1 || pos < p.small.head {
		return
	}
	var zero E
	if e := *p.small.at(pos); e != zero {
		// Only an unread word: a first read racing the mark (a load and
		// a store) was wiped, and the value evicted as unread (found by
		// review).
		e.Use().CompareAndSwap(0, halfwayMark)
	}
}

// fillMargin is admitMargin against a victim that filled the main queue's
// room unread (see Victim) and has not been read since: any returning key
// seen at least as often and once more takes its place. (0 gave the same
// figures on the loop of BenchmarkHitRatio.)
const fillMargin = 1

// marginAgainst returns by how much more often than victim a returning
// key must have been seen to take its place.
func (p *Policy[E]) marginAgainst(victim E) uint32 {
	if victim.Use().Load()&filledMark != 0 {
		return fillMargin
	}
	return p.margin
}

// admitAfter is how often the sketch must have seen a key for a new value
// of it to compete for the main queue at once, and admitMargin by how much
// more often than the main queue's next victim to take its place. One more
// is not enough: the returning key's count includes the access that
// brought it back, while the victim's reads since the main queue's front
// last passed it are counted only when it passes again. On a loop larger
// than the cache the victims are loop keys themselves, about to be read in
// the same pass; at a margin of one, each pass would trade them for keys
// exactly as frequent, just before their reads. On the loop of
// BenchmarkHitRatio (package bcache) at a bound of 10,000, the hit ratio
// was 0.30 at two sightings and a margin of one, 0.37 at three and one,
// 0.37 at three and two, 0.39 at two and two.
const (
	admitAfter  = 2
	admitMargin = 2
)

// Init empties the policy and sizes its sketch for capacity entries, or
// for maxInitCapacity if that is less: then it grows toward capacity as
// the entries held pass its size (see Add). Sized for the bound at once,
// a MaxKeys of a billion (a "safety cap") took 8 GiB of an empty cache,
// and one near 2^61 overflowed and panicked (found by review).
func (p *Policy[E]) Init(capacity int) {
	*p = Policy[E]{}
	p.doomed.id, p.peers.id, p.small.id, p.main.id = doomedQueue, peersQueue, smallQueue, mainQueue
	p.sketch.init(min(capacity, maxInitCapacity))
	p.bound = capacity
	p.initGhost()
	p.share = initShare
	p.margin = admitMargin
}

// maxInitCapacity bounds the capacity Init sizes the sketch for: 8 MiB.
// A variable: tests lower it.
var maxInitCapacity = 1 << 20

// Len returns the number of entries the policy holds.
func (p *Policy[E]) Len() int { return p.doomed.len() + p.peers.len() + p.small.len() + p.main.len() }

// Add takes a new resident entry, which the policy does not hold yet:
// written here (after a miss, mostly, in a read-through cache), its key
// new here or back, or received from another member, as how says.
func (p *Policy[E]) Add(e E, how Arrival) {
	if p.small.id == 0 {
		p.Init(0)
	}
	switch n, c := p.Len(), p.sketch.capacity(); {
	case n >= 2*c: // outgrown: the counts start again
		p.sketch.init(n)
		p.initGhost()
	case n > c && c < p.bound:
		// Sized below the bound (maxInitCapacity): it grows toward it as
		// the entries pass its size, rather than only at twice it (a
		// cache bounded at 1.5 million kept a sketch for 1 million:
		// found by review).
		p.sketch.init(min(2*c, p.bound))
		p.initGhost()
	}
	e.Use().Store(0)
	if how == Received {
		// Back, and not by this member's demand: the ghost forgets its
		// eviction, as ARC's lists drop a key that comes back (its next
		// write here, after the peer's value went, was read as a key the
		// small queue evicted too soon, and moved the share: found by
		// review).
		p.ghost.take(e.Hash())
		p.peers.push(e, e.Written())
		return
	}
	p.adapt(e.Hash())
	h := uint64(e.Hash())
	p.sketch.add(h, 1)
	if est := p.sketch.estimate(h); how == Returned && est >= admitAfter {
		// The main queue has room; and the small queue holds more than
		// one entry, so the next victim comes from there. With one or
		// none it keeps it (see Victim), and the victim came from the
		// main queue: the value just written, behind values read, went
		// at once (found by review: at MaxKeys 1, a key written again
		// was evicted by its own write, the older value kept;
		// TestReturningWriteStaysInATinyCache).
		// Room means one more entry still fits (main+1, not main < its
		// share): with a share that is no whole tenth, the main queue
		// just under its share after giving up a victim (the small queue
		// under its own) read as having room, and every returning key
		// entered it without beating the victim; the loop of
		// BenchmarkHitRatio fell from 0.385 to 0.23 at a share of 11%.
		if n := p.Len(); p.small.len() > 1 && int64(p.main.len()+1)*shareWhole <= (shareWhole-p.share)*int64(n) {
			p.main.push(e)
			return
		}
		if victim, ok := p.mainVictim(); ok && est >= p.sketch.estimate(uint64(victim.Hash()))+p.marginAgainst(victim) {
			p.main.remove(victim)
			// Its reads are spent: a victim taken whatever its reads
			// (maxSweep) kept them, and the doomed read since they were
			// chosen go back to the small queue (see Victim).
			victim.Use().Store(0)
			p.doomed.push(victim) // evicted next, after the peers' writes not read here
			p.main.push(e)
			p.filled = true // the main queue gave up a victim
			return
		}
	}
	p.small.push(e)
	p.markHalfway()
}

// Rewrite tells the policy that an entry it holds has a new value, written
// here or, if remote, by a peer. A peer's write not read here moves to its
// new place among the peers' writes (it is as new as its write); one
// written here is this member's own from now on, and joins the small
// queue. Entries in the other queues keep their place: a write is not a
// read.
// grown is by how many bytes its size changed.
func (p *Policy[E]) Rewrite(e E, remote bool, grown int) {
	if e.Slot() == 0 {
		return
	}
	if q := p.fifoOf(e); q != nil {
		q.grow(e, grown)
	}
	if e.Slot()&queueMask != peersQueue {
		return
	}
	if remote {
		p.peers.fix(e, e.Written())
		return
	}
	p.peers.remove(e)
	p.small.push(e)
}

// Remove takes out an entry (its key deleted, collected, or evicted by the
// caller); one the policy does not hold (it was just offered as a victim)
// is left alone.
func (p *Policy[E]) Remove(e E) {
	if e.Slot() == 0 {
		return
	}
	switch e.Slot() & queueMask {
	case doomedQueue:
		p.doomed.remove(e)
	case peersQueue:
		p.peers.remove(e)
	case smallQueue:
		p.small.remove(e)
	case mainQueue:
		p.main.remove(e)
	}
}

// fifoOf returns the fifo queue holding e, nil for the peers' heap.
func (p *Policy[E]) fifoOf(e E) *fifo[E] {
	switch e.Slot() & queueMask {
	case doomedQueue:
		return &p.doomed
	case smallQueue:
		return &p.small
	case mainQueue:
		return &p.main
	}
	return nil
}

// maxMoves bounds the entries one Victim call moves from queue to queue
// before it gives a victim: a value read here from the peers' writes to
// the small queue or from the small queue to the main one, an unread one
// into the main queue's room while the cache first fills. Until the
// cache is first full nothing leaves the small queue, so the first
// Victim found it holding every entry and moved all it could, with the
// store's eviction lock held and every writer waiting: 80-90 ms at a
// bound of 1,000,000 entries with one value in ten read, 400-550 ms with
// every value read (found by review). Past it, the call takes the victim
// the moves would have come to, without them: the next peer's write
// never read here within maxPeek of the heap's top (the oldest of
// those), or, with none, the next one whatever its reads; the small
// queue's first unread value within maxPeek of its front (under a bound
// in entries, and among those the small queue holds past its share: the
// newest go only in their turn), the read ones before it left in place
// (unread values go, not into the main queue's room); or, if there is
// none, the main queue's victim, which holds the values moved (without
// ending the first fill). The next calls make the moves left, maxMoves a
// write.
const (
	maxMoves = 64
	maxPeek  = 1024
)

// Victim removes and returns the entry to evict next, false if the policy
// holds none; bytes is the size of every entry it holds, for a cache
// bounded in bytes (0 counts the small queue's share in entries alone).
func (p *Policy[E]) Victim(bytes int) (E, bool) {
	moves := 0 // entries this call moved from queue to queue (see maxMoves)
	for {
		// The peers' writes go before the doomed: those are values of
		// the main queue, this member's readers' (doomed first, a key
		// that came back and won the victim's place had a value written
		// and read here go before a peer's write never read here: found
		// by review).
		if e, ok := p.peers.top(); ok && moves >= maxMoves && freq(e.Use().Load()) > 0 {
			// Past maxMoves, the next peer's write read here stays where
			// it is if one never read here is near the top: that one goes
			// (a read one went while unread ones came next: found by
			// review).
			if e, ok := p.peers.find(maxPeek, func(e E) bool { return freq(e.Use().Load()) == 0 }); ok {
				p.peers.remove(e)
				return e, true
			}
		}
		e, ok := p.peers.pop()
		doomed := false
		if !ok {
			e, ok = p.doomed.pop()
			doomed = ok
		}
		if ok {
			if v := e.Use().Load(); freq(v) > 0 && moves < maxMoves { // read here: a local entry now
				// That read is the one that brought it in, as a write
				// here is: to the main queue with one more (it went
				// there on this one alone: found by review). Only that
				// one: a value read twice has the one more.
				e.Use().Store(v - 1)
				p.small.push(e)
				moves++
				continue
			}
			if doomed {
				p.ghost.put(e.Hash(), true)
			}
			return e, true
		}
		// The small queue keeps one entry whatever its share: in a cache
		// of fewer than ten entries its share is under one, and the
		// newest write, alone there, went at once, while the values read
		// once held the main queue (found by review: at MaxKeys 1, no
		// value written could be read back).
		// It holds at most a tenth of the entries, and (with bytes) of
		// their bytes: under MaxBytes, a scan of values larger than those
		// read went to the main queue's readers, counted in entries alone
		// (found by review: 36 of 200 read values left).
		if bytes > 0 && p.small.span() < minCompact {
			// A short queue's sizes are counted again at once (a size
			// changed while its entry moved between queues leaves the
			// counts off, found by review), a longer one's a few at a
			// time (see fifo.recountStep).
			p.small.recount()
		} else if bytes > 0 {
			p.small.recountStep()
		}
		// In int64: 10 times the small queue's bytes wrapped past 214 MB
		// on 32-bit platforms, and a scan of large values written once
		// read as under its share and pushed the main queue's readers
		// out (found by review).
		share := int64(p.small.len())*shareWhole >= p.share*int64(p.Len()) || bytes > 0 && float64(max(p.small.bytes, 0))*shareWhole >= float64(p.share)*float64(bytes)
		past := false // maxMoves made, and no unread value near the front
		if p.small.len() > 0 && (share && p.small.len() > 1 || p.main.len() == 0) {
			e, _ := p.small.front()
			v := e.Use().Load()
			if freq(v) > 0 && (moves < maxMoves || p.main.len() == 0) {
				if v&halfwayMark != 0 && halfwayDiv > 0 { // nearly evicted unread
					e.Use().Store(v &^ halfwayMark) // a concurrent read may be lost: no matter
					p.grow(halfwayDiv)
				}
				p.small.pop()
				p.read = true
				p.main.push(e)
				moves++
				continue
			}
			if freq(v) > 0 {
				// Under a bound in entries, only a value that has been
				// in the small queue as long as its share lets one stay:
				// the newest, unread yet, would go before its turn came
				// (on the moving hot window, a few of the window's newest
				// keys went while the first fill's read values moved,
				// each a miss). Under one in bytes, a large value written
				// once goes before the values read, however new
				// (TestScanOfLargeValuesGoesFirstOn32Bit).
				n := maxPeek
				if bytes == 0 {
					n = min(n, p.small.len()-int(p.share*int64(p.Len())/shareWhole))
				}
				if e, ok := p.small.find(n, func(e E) bool { return freq(e.Use().Load()) == 0 }); ok {
					p.small.remove(e)
					p.ghost.put(e.Hash(), false)
					return e, true
				}
				past = true
			}
		}
		if !past && p.small.len() > 0 && (share && p.small.len() > 1 || p.main.len() == 0) {
			e, _ := p.small.pop()
			v := e.Use().Load()
			// While the cache fills for the first time, the main queue
			// has room that nothing has competed for yet: an unread
			// value takes it rather than go, marked (filledMark, which
			// its first read clears) so that a returning key seen once
			// more than it takes its place. Evicted, it could come back
			// only through the sketch, two sightings later: on a loop
			// larger than the cache that began before the cache was
			// full (BenchmarkHitRatio's, at 100,000 entries), no key of
			// its first pass was kept for the second, and the room went
			// to the keys of the second pass alone (0.402 against
			// 0.429 with it; otter 0.415-0.432). Only once the main
			// queue holds values read here: with no reads at all,
			// values go in the order they came
			// (TestNoReadsEvictsOldestFirst). And only under a bound in
			// entries: under one in bytes, a scan of large unread values
			// would take the room the read values need.
			if !p.filled && p.read && bytes == 0 && moves < maxMoves && p.main.len() > 0 && int64(p.main.len()+1)*shareWhole <= (shareWhole-p.share)*int64(p.Len()) {
				e.Use().Store(v&^halfwayMark | filledMark)
				p.main.push(e)
				moves++
				continue
			}
			p.ghost.put(e.Hash(), false)
			return e, true
		}
		p.filled = p.filled || !past
		if e, ok := p.mainVictim(); ok {
			p.main.remove(e)
			p.ghost.put(e.Hash(), true)
			return e, true
		}
		var zero E
		return zero, false
	}
}

// maxSweep bounds the entries a search of the main queue for a victim
// sends round again: past it, the entry at the front goes whatever its
// reads. A search that found every entry of the queue read since its
// last pass went round all of them, with the store's eviction lock held
// and every writer waiting: 56-85 ms for a main queue of 900,000 (a
// store bounded at a million, every value read). Past maxSweep entries
// read in a row, the reads of the next one tell little: the queue is
// read nearly everywhere.
const maxSweep = 4096

// mainVictim returns the main queue's next victim, leaving it at the
// front: entries read since they last passed the front go round again,
// with one read less to their credit and their reads folded into the
// sketch, maxSweep at most (then the entry at the front is the victim).
func (p *Policy[E]) mainVictim() (E, bool) {
	// Each pass takes one read from every entry, so four passes find one
	// without; readers that keep touching entries meanwhile cannot make
	// it go on for ever.
	for turns := min(4*p.main.len(), maxSweep); ; turns-- {
		e, ok := p.main.front()
		if !ok {
			return e, false
		}
		w := e.Use()
		v := w.Load()
		if freq(v) == 0 {
			return e, true
		}
		if turns == 0 {
			// Taken whatever its reads: those not yet in the sketch are
			// folded now, as the search folds those of every entry it
			// passes (a hot key taken here came back unknown to it).
			w.Store(freq(v)) // a concurrent read may be lost: no matter
			p.sketch.add(uint64(e.Hash()), pending(v))
			return e, true
		}
		w.Store(freq(v) - 1) // a concurrent read may be lost: no matter
		p.sketch.add(uint64(e.Hash()), pending(v))
		p.main.pop()
		p.main.push(e)
	}
}
