package lww

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strings"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// DefaultHorizon is how long dead records (tombstones, expired values) are
// kept before they may be collected.
const DefaultHorizon = time.Hour

// DefaultDigestBits is the default leaf-index width of the digest: 65,536
// buckets.
const DefaultDigestBits = 16

// ErrConfig is returned (wrapped) by [New] for an invalid [Config].
var ErrConfig = errors.New("lww: invalid config")

// Config shapes a [Map]. The zero Config is valid and selects the defaults.
type Config struct {
	// DigestBits is the leaf-index width of the digest tree: a multiple of
	// four in [crdt.MinTreeBits, crdt.MaxTreeBits]. 0 selects
	// DefaultDigestBits. All replicas must agree on it.
	DigestBits int
	// PrefixBits makes the map one shard of a larger keyspace: it holds only
	// keys whose hashes share their top PrefixBits bits (the caller routes
	// them), and its digest is the subtree below that prefix. 0 means all
	// keys. Must be a multiple of four, and DigestBits+PrefixBits at most 64.
	PrefixBits int
	// Horizon is how long a dead record is kept before it may be collected.
	// 0 selects DefaultHorizon.
	Horizon time.Duration
	// Alloc, if set, makes the entries of records that hold a value
	// (neither tombstones nor evicted), so that a caller keeping its own
	// fields per key can keep them in one allocation with the entry: an
	// Entry at the start of a larger struct of its own, which it finds
	// again from the *Entry that Merge returns. It is given the key and
	// returns the string the entry is to hold, which may be a copy in the
	// same allocation (the map copies it out again for a plain entry).
	// Tombstones and evicted records get plain entries, so a key that
	// gains or loses its value moves to a new entry (Merge and Evict
	// return or report it), and the entry it leaves is never written
	// again.
	Alloc func(key string) (*Entry, string)
	// Finder, if set, is where the map publishes its key table for
	// readers on other goroutines (Map.Finder): a caller that keeps it
	// among its own fields saves its readers a pointer to follow. The map
	// owns it from New on.
	Finder *Finder
	// Dropped, if set, is called with every entry holding a value (an
	// expired one) that a collection (GC, GCStep, CollectDead) removes
	// from the map, as it removes it: for a holder of Alloc's entries
	// that readers find through a Finder, its last sight of one.
	Dropped func(e *Entry)
}

// noSync marks a map that has never been synced.
const noSync = math.MinInt64

// Map is a last-writer-wins map of records with an incrementally maintained
// digest. It is not safe for concurrent use, but for lookups through its
// Finder.
type Map struct {
	horizon int64
	prefix  int
	tree    *crdt.Tree
	entries table
	// maxValue is MaxValueLen (tests lower it)
	maxValue  int
	early     uint64                        // records collected by rule 6
	byHorizon uint64                        // records collected by rule 2
	expired   int                           // expired values the last GC kept
	dead      int                           // tombstones the last GC kept, dead at its now
	deadKeys  int                           // the bytes of the keys of the expired values and tombstones the last GC kept
	alloc     func(string) (*Entry, string) // Config.Alloc
	dropped   func(*Entry)                  // Config.Dropped
	noMove    bool                          // tests: the broken variant that writes entries in place
	heads     []*Entry                      // per digest leaf, a singly linked list of its entries
	long      map[uint32]map[*Entry]*Entry  // per leaf whose list grew long, each entry's predecessor (see unlink)
	wm        []crdt.Timestamp              // per digest leaf, the GC watermark (noMark: none); nil until one is raised
	synced    int64                         // start of the last completed exchange, or noSync
	seed      maphash.Seed                  // of the stubs' fingerprints (fingerprint)

	values     int // records holding a value (neither tombstone nor evicted)
	tombstones int
	evicted    int
	expiring   int // records, other than tombstones, with an expiry: GC's candidates with the tombstones
	// mortal counts, per digest leaf, its tombstones and records with an
	// expiry (GC's candidates): GC walks only the leaves that hold one.
	// nil until a leaf holds one, as wm: a map that never deletes and
	// never expires anything never pays for it.
	mortal []int32
	// gc is the collection under way in steps (GCStep).
	gc gcWalk
}

// New returns an empty map shaped by cfg.
func New(cfg Config) (*Map, error) {
	if cfg.DigestBits == 0 {
		cfg.DigestBits = DefaultDigestBits
	}
	if cfg.Horizon == 0 {
		cfg.Horizon = DefaultHorizon
	}
	if cfg.Horizon < 0 {
		return nil, fmt.Errorf("%w: negative horizon %v", ErrConfig, cfg.Horizon)
	}
	if cfg.PrefixBits < 0 || cfg.PrefixBits%4 != 0 || cfg.PrefixBits+cfg.DigestBits > 64 {
		return nil, fmt.Errorf("%w: prefix of %d bits with %d digest bits", ErrConfig, cfg.PrefixBits, cfg.DigestBits)
	}
	tree, err := crdt.NewTree(cfg.DigestBits)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	m := &Map{
		horizon:  int64(cfg.Horizon),
		prefix:   cfg.PrefixBits,
		tree:     tree,
		entries:  newTable(cfg.Finder),
		maxValue: MaxValueLen,
		alloc:    cfg.Alloc,
		dropped:  cfg.Dropped,
		heads:    make([]*Entry, tree.Leaves()),
		synced:   noSync,
		seed:     maphash.MakeSeed(),
	}
	return m, nil
}

func (m *Map) leafOf(khash uint64) uint32 { return crdt.LeafIndex(khash, m.prefix, m.tree.Bits()) }

// Merge merges r into the map and says what it did: [crdt.Applied],
// [crdt.Stale], [crdt.Rejected] for a record below its bucket's GC
// watermark (see the package doc), or [crdt.Late] for a delta (a
// replica's push of its own fresh write: delta set) whose wall time is more
// than the horizon before now: it has been delayed or replayed, and a
// fresh replica with no watermarks could not tell whether the key was
// deleted and collected since (old records travel by anti-entropy, which
// compares versions with a peer first). On Applied the map owns r.Value
// from then on: the caller must not modify it, and Merge returns the key's
// entry, whose record is r with the map's own copy of the key string,
// which callers can share. Tombstones and evicted stubs are stored without
// a value, and so is a value longer than MaxValueLen: as an evicted stub.
//
// hint, if not nil, is the entry an earlier Merge returned for r.Key: it
// saves looking the key up; it must come from this map. An entry the map
// has since removed (by GC or CollectDead), or one of another key, is ignored.
func (m *Map) Merge(r crdt.Record, delta bool, now int64, hint *Entry) (crdt.Outcome, *Entry) {
	return m.merge(r, delta, now, hint, false)
}

// MergeTooLong is Merge of r, a value too long for the map's holder (a
// store's own bound on values), made a stub by it: in a tie of versions
// it is such a value, not a peer's stub (see tieWins). A store that made
// it a stub before the map saw it, and merged it as a peer's, kept in a
// tie whichever of the two came first (found by review).
func (m *Map) MergeTooLong(r crdt.Record, delta bool, now int64, hint *Entry) (crdt.Outcome, *Entry) {
	return m.merge(r, delta, now, hint, true)
}

func (m *Map) merge(r crdt.Record, delta bool, now int64, hint *Entry, tooLong bool) (crdt.Outcome, *Entry) {
	if delta && r.Time.Wall < crdt.SubSat(now, m.horizon) {
		return crdt.Late, nil
	}
	e := hint
	if e == nil || e.next == removed || e.key != r.Key {
		e = m.entries.get(r.Key)
	}
	return m.mergeInto(e, r, tooLong)
}

// mergeInto applies r given its key's entry, nil if the map has none;
// tooLong says r is a value too long for the map's holder, made a stub.
func (m *Map) mergeInto(e *Entry, r crdt.Record, tooLong bool) (crdt.Outcome, *Entry) {
	if r.Tombstone || r.Evicted {
		r.Value = nil
	}
	if r.Tombstone {
		// A tombstone holds nothing but its version: an expiry or the
		// evicted flag a peer sent with one (the wire carries both) would
		// make two tombstones of one version differ, and tieWins keeps the
		// first (found by review).
		r.Expires, r.Evicted = 0, false
	}
	sent := r.Evicted && !tooLong  // a peer's stub: its eviction of the value, not a value too long here
	if len(r.Value) > m.maxValue { // more than an entry holds: its version only
		r.Value, r.Evicted = nil, true
	}
	// A stub of a value too long here, which a Refill must not fill
	// (see there); a peer's stub, and a local eviction, are filled.
	long := r.Evicted && !sent
	if e != nil {
		if c := r.Version().Compare(e.version()); c < 0 || c == 0 && !tieWins(&r, sent, e) {
			if c == 0 && long && e.evicted() && r.Expires == e.expires.Load() {
				// A value too long here ties with a stub (a peer's, or
				// of this map's own eviction) and loses as a stub over a
				// stub; held as a value, the same stub's value lost to it
				// (tieWins). The stub now stands for it too: filled, it
				// served the value that lost, where a map that got the two
				// in the other order refuses the Refill (found by review).
				e.markTooLong()
			}
			if c == 0 && holdsValue(&r) && e.evicted() && !e.tooLong() && r.Expires == e.expires.Load() {
				// A value ties with a stub of its version and expiry and
				// loses as a value over a stub. The stub stands for one
				// value: the one this map evicted, or the first that
				// tied with it. Another one here is a forged tie whose
				// winner the stub cannot tell, and a Refill with the
				// value that lost (a peer's answer that has not received
				// the other yet) served it for ever, where a map that
				// evicted nothing serves the winner (found by review).
				if fp, ok := e.stubFP(); !ok {
					e.setStubFP(m.fingerprint(r.Value))
				} else if fp != m.fingerprint(r.Value) {
					e.setStubFP(contested)
				}
			}
			return crdt.Stale, nil
		}
	}
	khash := crdt.HashKey(r.Key)
	leaf := m.leafOf(khash)
	if e == nil {
		if w := m.mark(leaf); w != noMark && r.Time.Compare(w) <= 0 {
			return crdt.Rejected, nil
		}
		e = m.newEntry(&r, r.Key)
		if long {
			e.markTooLong()
		}
		m.push(e, leaf)
		m.entries.put(e)
		m.count(e, leaf, 1)
		m.tree.Add(leaf, e.hash(khash))
		return crdt.Applied, e
	}
	e = m.replace(e, &r, leaf, khash)
	if long {
		e.markTooLong()
	}
	return crdt.Applied, e
}

// tieWins reports whether r, of the very version e holds (no honest
// replica issues a timestamp twice, but a member holding the cluster key
// can), replaces it: the later expiry (none the latest), then, of one expiry, a value too
// long for this map (an evicted stub: its bytes are not held, and it
// cannot be compared) over one it holds, then the greater bytes. Every
// map of one configuration that receives both keeps the same one whatever
// the order; each kept the first it got (found by review), and with the
// stubs left out, a map that got the long value first kept its stub, one
// that got the short value first kept that (found by review of that). A
// stub of this map's own eviction is of the value it held: a copy of that
// value does not put it back (Refill does).
//
// A stub sent as one (sent) is a peer's eviction of the value: of one
// expiry, it never replaces a value held (eviction is local; it evicted
// the value here too: found by review). A later expiry decides first,
// whatever the holder: a forged tie with a stub of a later expiry
// replaces the value, on every map that receives both.
func tieWins(r *crdt.Record, sent bool, e *Entry) bool {
	if r.Tombstone || e.tombstone() {
		return false // both tombstones (Version.Compare orders a tombstone after a value)
	}
	if exp := e.expires.Load(); r.Expires != exp {
		if r.Expires == 0 || exp == 0 { // no expiry is the latest of all
			return r.Expires == 0
		}
		return r.Expires > exp
	}
	switch rv, ev := holdsValue(r), e.HoldsValue(); {
	case rv && ev:
		return bytes.Compare(r.Value, e.Record().Value) > 0
	case ev: // r a stub over a value: one too long here, not a peer's eviction
		return !sent
	}
	return false // a value, or a stub, over a stub
}

// replace puts r in place of e's record, and returns the key's entry.
func (m *Map) replace(e *Entry, r *crdt.Record, leaf uint32, khash uint64) *Entry {
	old := e.hash(khash)
	m.count(e, leaf, -1)
	if m.alloc != nil && e.HoldsValue() != holdsValue(r) && !m.noMove {
		e = m.move(e, leaf, r)
	} else {
		e.set(r) // the key stays the map's, shared
	}
	m.count(e, leaf, 1)
	m.tree.Replace(leaf, old, e.hash(khash))
	return e
}

// Refill puts r's value back on its key's evicted stub, if the stub is
// of r's very version (time and expiry) and r holds a value the map
// takes, and says so ([crdt.Applied], and the key's entry); else it
// changes nothing ([crdt.Stale]). Merge takes no record of a version the
// map holds, and a member that evicted a key kept missing it when a peer
// answered its ask for the key with the value of that version (found by
// review). hint is as Merge's.
//
// A stub that stands for a value too long here (merged as one, by
// MergeTooLong, or a value too long here that tied with the stub and
// lost as a stub over a stub) is not filled: its version's value is
// that one, or, in a tie a forger made, won over r's (tieWins), and
// filled, the stub served the value that lost (found by review). A stub
// restored from a snapshot no longer says why it is one.
func (m *Map) Refill(r crdt.Record, hint *Entry) (crdt.Outcome, *Entry) {
	e := hint
	if e == nil || e.next == removed || e.key != r.Key {
		e = m.entries.get(r.Key)
	}
	if e == nil || !e.evicted() || e.tooLong() || r.Tombstone || r.Evicted || len(r.Value) > m.maxValue ||
		r.Version().Compare(e.version()) != 0 || r.Expires != e.expires.Load() {
		return crdt.Stale, nil
	}
	if fp, ok := e.stubFP(); ok && fp != m.fingerprint(r.Value) {
		// Not the value the stub stands for (see mergeInto), or two came.
		return crdt.Stale, nil
	}
	khash := crdt.HashKey(r.Key)
	return crdt.Applied, m.replace(e, &r, m.leafOf(khash), khash)
}

// count adds d to the counter of e's kind, and to its leaf's count of
// GC's candidates if it is one.
func (m *Map) count(e *Entry, leaf uint32, d int) {
	expiring := !e.tombstone() && e.expires.Load() != 0
	if expiring {
		m.expiring += d
	}
	switch {
	case e.tombstone():
		m.tombstones += d
	case e.evicted():
		m.evicted += d
	default:
		m.values += d
	}
	if expiring || e.tombstone() {
		if m.mortal == nil {
			m.mortal = make([]int32, m.tree.Leaves())
		}
		m.mortal[leaf] += int32(d)
	}
}

// Get returns the value of key if the map holds a live value for it at now:
// not deleted, not expired, not evicted. The returned slice belongs to the
// map; do not modify it.
func (m *Map) Get(key string, now int64) ([]byte, bool) {
	e := m.entries.get(key)
	if e == nil {
		return nil, false
	}
	if r := e.Record(); r.Live(now) {
		return r.Value, true
	}
	return nil, false
}

// Lookup returns the record the map holds for key, whatever its state
// (tombstone, expired, evicted). Its Value belongs to the map.
func (m *Map) Lookup(key string) (crdt.Record, bool) {
	e := m.entries.get(key)
	if e == nil {
		return crdt.Record{}, false
	}
	return e.Record(), true
}

// Evict drops the value of key to free memory, keeping its version (see the
// package doc). It returns the number of value bytes freed and false if the
// map holds no value for key (absent, a tombstone, or already evicted).
func (m *Map) Evict(key string) (int, bool) {
	e := m.entries.get(key)
	if e == nil || e.tombstone() || e.evicted() {
		return 0, false
	}
	freed := e.valueLen()
	fp := m.fingerprint(e.Record().Value)
	leaf := m.leafOf(crdt.HashKey(key))
	m.count(e, leaf, -1)
	stub := crdt.Record{Key: e.key, Time: e.Time(), Expires: e.expires.Load(), Evicted: true}
	if m.alloc != nil && !m.noMove {
		e = m.move(e, leaf, &stub)
	} else {
		e.set(&stub)
	}
	e.setStubFP(fp) // the value a Refill may put back
	m.count(e, leaf, 1)
	return freed, true
}

// fingerprint returns the fingerprint a stub keeps of value (see fpBit):
// seeded per map, never contested.
func (m *Map) fingerprint(value []byte) uint32 {
	if fp := uint32(maphash.Bytes(m.seed, value)) & fpMask; fp != contested {
		return fp
	}
	return 0
}

// move puts a new entry for r (made as newEntry makes it) in e's place,
// in its leaf's list and in the table, and returns it. e is never written
// again (a caller may still be reading it).
func (m *Map) move(e *Entry, leaf uint32, r *crdt.Record) *Entry {
	key := e.key // the map's copy, shared
	if e.HoldsValue() {
		// Alloc's, maybe held in e's allocation: a stub keeps a copy of
		// its own, not the whole of what it leaves.
		key = strings.Clone(key)
	}
	n := m.newEntry(r, key)
	m.unlink(e, leaf, n)
	m.entries.replace(n)
	e.next = removed
	return n
}

// push puts e at the head of leaf's list.
func (m *Map) push(e *Entry, leaf uint32) {
	e.next = m.heads[leaf]
	if prev := m.long[leaf]; prev != nil {
		if e.next != nil {
			prev[e.next] = e
		}
		prev[e] = nil
	}
	m.heads[leaf] = e
}

// longLeaf is the length past which a leaf's list is indexed by
// predecessor: unlinking an entry walked the list from its head, and a
// caller that chose keys sharing a leaf (HashKey's collisions take no
// search: package crdt) made each delete and eviction of one cost the
// whole list (found by review): BenchmarkDeleteInOneLeaf, 16,384 keys of
// one leaf deleted, took 14.8 us a delete against 0.65 us for spread
// keys, and 0.66-0.71 us with the index. Natural leaves reach it near 67
// million keys. An index costs about 50 bytes an entry, and is dropped when its
// leaf shrinks to a quarter of it.
//
// longLeaf alone let such a caller keep every unlink at its bound: a
// key at depth 1,024 of a leaf of chosen keys, flipped between a value
// and a tombstone (each flip a move, which keeps its depth), walked
// 1,024 entries at every flip and never indexed the leaf: a frame of
// wire.MaxRecords flips took 60 ms against 3.3 ms for a key of a leaf of
// its own (found by review; TestCollidingKeysCostPerRecord). A walk
// past longAt (shortLeaf, or eight times the map's mean leaf: natural
// leaves hardly ever reach either) indexes the leaf too.
const longLeaf = 1024

// shortLeaf is the least walk that indexes a leaf (see longLeaf).
const shortLeaf = 64

// longAt returns the length of walk past which unlink indexes a leaf:
// eight times the map's mean leaf, within shortLeaf and longLeaf.
func (m *Map) longAt() int {
	return min(longLeaf, max(shortLeaf, 8*m.entries.n/len(m.heads)))
}

// unlink takes e out of leaf's list, putting n (if not nil) in its place.
func (m *Map) unlink(e *Entry, leaf uint32, n *Entry) {
	next := e.next
	repl := next
	if n != nil {
		n.next, repl = next, n
	}
	if prev := m.long[leaf]; prev != nil {
		p := prev[e]
		if p == nil {
			m.heads[leaf] = repl
		} else {
			p.next = repl
		}
		delete(prev, e)
		switch {
		case n != nil:
			prev[n] = p
			if next != nil {
				prev[next] = n
			}
		case next != nil:
			prev[next] = p
		}
		if len(prev) < m.longAt()/4 {
			delete(m.long, leaf)
		}
		return
	}
	steps := 0
	for p := &m.heads[leaf]; *p != nil; p = &(*p).next {
		if *p == e {
			*p = repl
			break
		}
		steps++
	}
	if steps > m.longAt() {
		m.index(leaf)
	}
}

// index builds leaf's predecessor index.
func (m *Map) index(leaf uint32) {
	prev := map[*Entry]*Entry{}
	var p *Entry
	for e := m.heads[leaf]; e != nil; e = e.next {
		prev[e] = p
		p = e
	}
	if m.long == nil {
		m.long = map[uint32]map[*Entry]*Entry{}
	}
	m.long[leaf] = prev
}

// Entry returns key's entry, or nil: a hint for Merge.
func (m *Map) Entry(key string) *Entry { return m.entries.get(key) }

// Finder returns the map's Finder (Config.Finder, if set).
func (m *Map) Finder() *Finder { return m.entries.shared }

// Settle finishes at once a resize of the key table under way, which
// puts otherwise move on a few slots at a time (collections too, see
// GCStep): a map loaded in bulk and not written since (a snapshot
// restored) kept both arrays, and a Finder looking for a key the map
// does not hold, or one not moved yet, probed both (a Get took half as
// long again after 100,000 keys were loaded).
func (m *Map) Settle() { m.entries.finish() }

// Resizing reports whether the key table is between two sizes, its
// entries moving from the old to the new (see Settle).
func (m *Map) Resizing() bool { return m.entries.old != nil }

// Len returns the number of records holding a value: neither tombstones nor
// evicted. Values past their expiry count until they are collected.
func (m *Map) Len() int { return m.values }

// Tombstones returns the number of tombstones held.
func (m *Map) Tombstones() int { return m.tombstones }

// Evicted returns the number of evicted records held (versions without
// values).
func (m *Map) Evicted() int { return m.evicted }

// Records returns the number of records of every kind held.
func (m *Map) Records() int { return m.entries.n }

// Range calls fn for every record until fn returns false, in no particular
// order. fn must not modify the map or the record's Value.
func (m *Map) Range(fn func(r crdt.Record) bool) {
	for _, e := range m.heads {
		for ; e != nil; e = e.next {
			if !fn(e.Record()) {
				return
			}
		}
	}
}

// RangeStep calls fn with the records of the leaves from leaf on, in no
// particular order, until it has given it visits records or more (it ends
// a leaf it has begun), and returns where the next step begins and
// whether this one reached the last leaf. A caller that holds a lock over
// the map can let go of it between steps: a leaf's records are given at
// one step (a key lies in one leaf), different leaves' maybe with the map
// changed between. fn must not modify the map or the record's Value. A
// visits of 0 or less is taken as 1, as GCStep takes it.
func (m *Map) RangeStep(leaf uint32, visits int, fn func(r crdt.Record)) (uint32, bool) {
	return m.rangeStep(leaf, visits, false, fn)
}

// RangeMortalStep is RangeStep over the tombstones and the records with an
// expiry (those that die) alone: it skips the leaves that hold none
// without a look at their records, and counts visits over every record
// it looks at in the others, as GCStep does.
func (m *Map) RangeMortalStep(leaf uint32, visits int, fn func(r crdt.Record)) (uint32, bool) {
	return m.rangeStep(leaf, visits, true, fn)
}

func (m *Map) rangeStep(leaf uint32, visits int, mortal bool, fn func(r crdt.Record)) (uint32, bool) {
	visits = max(visits, 1) // a step goes on (see GCStep)
	end := uint32(len(m.heads))
	if mortal && m.mortal == nil {
		return end, true
	}
	for ; leaf < end && visits > 0; leaf++ {
		if mortal && m.mortal[leaf] == 0 {
			continue
		}
		for e := m.heads[leaf]; e != nil; e = e.next {
			visits--
			if r := e.Record(); !mortal || r.Tombstone || r.Expires != 0 {
				fn(r)
			}
		}
	}
	return leaf, leaf == end
}

// remove deletes e, which lies in leaf, from the map and its digest.
func (m *Map) remove(e *Entry, leaf uint32) {
	m.unlink(e, leaf, nil)
	e.next = removed
	m.entries.remove(e.key)
	m.count(e, leaf, -1)
	m.tree.Remove(leaf, e.hash(crdt.HashKey(e.key)))
}
