package store

import "github.com/bcache-go/bcache/crdt"

// EventKind is what a change to the store's values was.
type EventKind uint8

const (
	// EventSet: a value was written (here, or by a peer and applied here).
	EventSet EventKind = iota + 1
	// EventDelete: a delete was written or applied.
	EventDelete
	// EventEvict: the value was dropped here to free memory (the bounds,
	// Evict, or a received value over MaxValueSize); its version stays.
	EventEvict
	// EventExpire: a value past its expiry was collected.
	EventExpire
	// EventDrop: a record was dropped because a peer answered it with a
	// tombstone (package lww, rule 3: it came back from an absence longer
	// than the horizon).
	EventDrop
)

// An Event is one change to the store's values, as a watcher sees it.
type Event struct {
	Kind EventKind
	// Here says the change was made on this member: a local write or
	// delete, an eviction, a collection.
	Here bool
	// Record is the record applied (EventSet, EventDelete, EventDrop,
	// EventEvict of a received value) or the version that lost its value
	// (EventEvict, EventExpire: no value). Its Value is shared: do not
	// modify it.
	Record crdt.Record
	// Superseded says a peer's newer write (EventSet, EventDelete, and
	// EventEvict of a received version whose value is not held here)
	// replaced one this member made: in one of its last 64 processes
	// (maxOwn: this one, if it wrote, and the latest before it whose
	// writes it restored; see MarkOwn, Snapshot.Own).
	Superseded bool
	// Refill says an EventSet put a value back on its version's evicted
	// stub (Store.Refill, a peer's answer to a read): no write, its
	// version held already.
	Refill bool
	// Unseen says an EventDrop dropped nothing a reader saw: a peer's
	// answer (package lww, rule 3) for a key of which this member held
	// no record, or a dead one (a tombstone). Its record is held now, as
	// any applied one is; no value changed.
	Unseen bool
}

// Watch makes the store call fn with every change to its values, in the
// order applied per key, from the goroutine that made it, with a shard's
// lock held: fn must be quick and must not call the store. The event is
// the shard's, reused for the next one (so that reporting a change copies
// nothing): fn copies what it keeps. nil stops it. While no watcher is
// set, changes cost nothing more.
func (s *Store) Watch(fn func(*Event)) {
	if fn == nil {
		s.watcher.Store(nil)
		return
	}
	s.watcher.Store(&fn)
}

// watching returns the watcher, nil if none.
func (s *Store) watching() func(*Event) {
	if p := s.watcher.Load(); p != nil {
		return *p
	}
	return nil
}

// applied reports a record merged (by Write or Apply) to watch, with the
// shard's lock held. ev says what the record alone does not: whether it
// was written here, replaced a write of this member's (superseded), was
// over this member's bounds and kept as an evicted version (oversized), or
// put a value back on its version's evicted stub (refill).
func (sh *shard) applied(watch func(*Event), rec *crdt.Record, ev appliedEvent) {
	e := &sh.ev
	*e = Event{Kind: EventSet, Here: ev.here, Record: *rec, Refill: ev.refill, Unseen: ev.unseen}
	switch {
	case rec.Tombstone && rec.Time.Node == 0:
		e.Kind = EventDrop
	case rec.Tombstone:
		e.Kind = EventDelete
	case ev.oversized, rec.Evicted:
		// A version whose value is not held here: a peer's evicted
		// version (sent by anti-entropy) was reported as a set of an
		// empty value, which this member does not serve (found by
		// review).
		e.Kind = EventEvict
	}
	if e.Kind != EventDrop && !ev.here {
		// A peer's evicted version, or a value over this member's bounds,
		// replaces a write of this member's as much as a set does (found
		// by review).
		e.Superseded = ev.superseded
	}
	watch(e)
	*e = Event{} // keeps no value alive
}

// appliedEvent is what shard.applied reports of a record merged.
type appliedEvent struct {
	here, superseded, oversized, refill, unseen bool
}

// report passes ev to watch, in the shard's event, with the shard's lock
// held.
func (sh *shard) report(watch func(*Event), ev Event) {
	sh.ev = ev
	watch(&sh.ev)
	sh.ev = Event{}
}
