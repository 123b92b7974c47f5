package transport

import (
	"math"

	"github.com/bcache-go/bcache/crdt"
)

// The roster is what a node knows of the other members' progress, for early
// collection of dead records (package lww, rule 6). Every anti-entropy
// session carries each side's cut: its clock's reading when it entered the
// session. Every record a member writes later is stamped above its cut (its
// clock only moves forward), so once a session completes, this node holds
// every record the peer wrote below the peer's cut, or something newer.
// Each side also reports its own coverage: the lowest cut it holds of the
// members it counts, below which it holds every record they wrote.
//
// Which members count: those in the view; those that left the view without
// saying so (failed: they may come back with records the bound would
// cover), for FailedTimeout; and incarnations that ended (left on purpose,
// or replaced by a restart under the same name), until every member in the
// view has completed a session with this node some time (retireAfter:
// Config.EndedFor, at least a SessionTimeout) after the end, so that what
// the ended incarnation wrote and someone holds has reached this node, a
// frame of it still in flight included if it arrives within that time.
// One that left on purpose keeping its state (a snapshot, under a name it
// comes back with) counts, besides, until an incarnation of its
// name has completed a session with this node after it left, or for
// FailedTimeout: a write of its that reached no one (its delta lost) is in
// its snapshot alone, and comes back with its next incarnation; counted
// only until the others had synced, a leaver restarted from its snapshot
// met watermarks its live writes were below (found by review). One that
// keeps nothing has nothing to bring back. A member
// in the view without a completed session yet stops the bound: its
// records are not known to be here; so does one that left keeping its
// state before any, until it retires.
//
// Stable, the bound, is the lowest of: this node's coverage (the lowest cut
// it holds), and the coverage every counted member reported, less a margin
// for clock error. Below it every counted member holds every record:
// collecting a record dead since before it (a tombstone written before
// it, a value expired before it, so expired on every clock within the
// margin), and raising its bucket's watermark to the record's timestamp,
// rejects nothing anyone still has.

// NoStable is the stable bound that allows no early collection.
const NoStable int64 = math.MinInt64

// incarnation is one life of another member, as this node knows it.
type incarnation struct {
	name      string
	id        crdt.NodeID // 0 until a session shows it
	cut       int64       // wall of its cut in the last completed session
	coverage  int64       // what it reported in that session
	synced    int64       // this node's time at the start of that session
	joined    int64       // when this node first saw it: it wrote nothing before
	since     int64       // when it failed or ended (the latest end of those merged into it)
	firstEnd  int64       // ended: the earliest end merged into it
	state     uint8
	hasCut    bool
	hasReport bool
	left      bool // ended by leaving on purpose, keeping its state (see expire)
	back      bool // left, and an incarnation of its name has completed a session here since
	restored  bool // given back at a start (Known): see expire
	// (the small fields last, sharing a word; a member keeps one for every
	// other member)
}

const (
	alive = iota
	failed
	ended
)

type roster struct {
	margin, failedTimeout, retireAfter int64

	current map[string]*incarnation // by name: the incarnation in or last in the view
	ended   []*incarnation          // ended, until retired
	// latest is the latest time the node was given (Node.lastNow): an
	// end is noted no earlier, so that no session started before it (a
	// synced mark up to stepBack above a now stepped back) reads as after.
	latest int64
}

func (r *roster) init(margin, failedTimeout, retireAfter int64) {
	r.margin, r.failedTimeout, r.retireAfter = margin, failedTimeout, retireAfter
	r.current = map[string]*incarnation{}
}

// view records the members in the view (self excluded) at now: new names
// join, names gone from the view fail, failed names back in it live again.
func (r *roster) view(names map[string]bool, now int64) {
	for name := range names {
		in := r.current[name]
		switch {
		case in == nil:
			r.current[name] = &incarnation{name: name, joined: now}
		case in.state == failed:
			in.state = alive
		}
	}
	for name, in := range r.current {
		if !names[name] && in.state == alive {
			in.state, in.since = failed, max(now, r.latest)
		}
	}
}

// left records that a member left on purpose: its incarnation has ended.
// keeps says it comes back under its name with the state it held (a
// snapshot): what it held alone comes back with it (see expire).
func (r *roster) left(name string, keeps bool, now int64) {
	if in := r.current[name]; in != nil {
		in.left = keeps
		r.end(in, now)
		delete(r.current, name)
	}
}

// end records that in has ended at now. An incarnation that ends within
// retireAfter of the first of an earlier entry of its name joins it (the lowest cut, the
// latest end), which counts as long as either would: the list holds one
// entry a name for every retireAfter at most (a member sending sessions
// under its name, each with a new node id in its cut, added one an
// opening, none retiring while a member had not synced since, and every
// bound walked them all: found by review). Only those that close: merged
// with every earlier one, a member restarting more often than the others
// sync held the bound at its first end for as long as it went on.
// maxEndedPerName bounds the entries of one name: while a member in the
// view never syncs none retires, and past it the newest takes the rest.
const maxEndedPerName = 16

// maxEnded bounds the entries in all: while a member in the view never
// syncs none retires, and a member holding the key that joined and left
// under a fresh name each time (or announced such members) added one a
// name, for as long as that went on, each walked by every bound and
// written to the members file (found by review). Past it, an incarnation
// of a name with no entry joins the newest entry, which is then no one
// name's (its name cleared): the lowest cut, the latest end; a leaver that
// keeps its state among them retires only after FailedTimeout, no
// incarnation of a cleared name coming back.
const maxEnded = 1024

func (r *roster) end(in *incarnation, now int64) {
	now = max(now, r.latest)
	in.state, in.since = ended, now
	switch {
	case !in.hasCut && in.left:
		// Never synced with, and back later with what it held: that may
		// be a write of any time (made alone at its start, or while away
		// past the failed timeout), which no one else holds. It holds the
		// bound until it is back and synced, or for the failed timeout,
		// as a failed member never synced with does. Counted at a cut of
		// when this node first saw it, the bound passed such a write, and
		// the write was rejected on its return (found by review,
		// TestLeaverNeverSyncedWithLosesNoLiveWrite).
		in.cut, in.hasCut = NoStable, true
	case !in.hasCut: // never synced with, keeping nothing: taken to have written nothing before it joined (what it held alone is gone with it)
		in.cut, in.hasCut = in.joined, true
	}
	var last, newest *incarnation // the newest entry of the name, and of any
	kept := 0
	for _, e := range r.ended {
		if newest == nil || e.firstEnd > newest.firstEnd {
			newest = e
		}
		if e.name != in.name {
			continue
		}
		if kept++; last == nil || e.firstEnd > last.firstEnd {
			last = e
		}
	}
	if last == nil && len(r.ended) >= maxEnded {
		last = newest
		if last.name != in.name {
			last.name = "" // no member's name: see maxEnded
		}
	}
	if last != nil && (crdt.SubSat(now, last.firstEnd) < r.retireAfter || kept >= maxEndedPerName || len(r.ended) >= maxEnded) {
		last.cut, last.since = min(last.cut, in.cut), max(last.since, in.since)
		// The id of the incarnation that ended last, whose end since now
		// is: a session of its, started before its end and completed after
		// it, is its own (completed), not a new member's; with the first's
		// id, a leave, a rejoin and a leave within retireAfter put the
		// second back among the members alive, and the failed held the
		// bound for FailedTimeout (found by review, once retireAfter was
		// EndedFor). 0 (never synced with) stands for any, as before.
		last.id = in.id
		last.left = last.left || in.left
		last.back = last.back && !in.left // the later leave has not come back
		return
	}
	in.firstEnd = now
	r.ended = append(r.ended, in)
}

// completed records a session with the member called name, which started at
// start (this node's time) and in which the peer's cut was cut and its
// reported coverage coverage. A cut of another incarnation than the one
// known under name means the member restarted: the old one has ended.
func (r *roster) completed(name string, cut crdt.Timestamp, coverage, start, now int64) {
	in := r.current[name]
	if in == nil {
		for _, e := range r.ended {
			if e.name == name && e.since >= start && (e.id == 0 || e.id == cut.Node) {
				// A session of the incarnation that ended, started
				// before its end and completed after it (a host told
				// of the leave before its view dropped the member):
				// taken as a new member's, it put the leaver back
				// among the members alive until the next view, and
				// then among the failed, holding the bound at its cut
				// for FailedTimeout.
				return
			}
		}
	}
	// Checked before the end below: that end, noted now, joins an earlier
	// entry of the name (one with no id, of an incarnation never synced
	// with) whose end then reads as after this session's start, and the
	// new process's session was taken for one of that entry's, dropped,
	// the old incarnation left current, every session for retireAfter.
	if in != nil && in.id != 0 && in.id != cut.Node {
		r.end(in, now)
		in = nil
	}
	if in == nil {
		in = &incarnation{name: name, joined: now}
		r.current[name] = in
	}
	// A leaver back: what it held alone has come with it. Any session of
	// its name that started after the leave is its next incarnation's (a
	// leaver is out of the view, and its frames are refused), even one
	// that already had its id here (its session completed between the
	// leave and this node's view of it).
	for _, e := range r.ended {
		if e.name == name && e.left && e.since < start {
			e.back = true
		}
	}
	in.id = cut.Node
	in.cut, in.hasCut = min(cut.Wall, now), true
	in.coverage, in.hasReport = min(coverage, now), true
	in.synced = start
}

// coverage returns this node's coverage at now: the lowest cut it holds of
// the members it counts (now when it counts none), or NoStable while one of
// them has no completed session. It forgets what no longer counts.
func (r *roster) coverage(now int64) int64 {
	r.expire(now)
	low := now
	for _, in := range r.current {
		if !in.hasCut {
			return NoStable
		}
		low = min(low, in.cut)
	}
	for _, in := range r.ended {
		low = min(low, in.cut)
	}
	return low
}

// stable returns the bound below which every counted member holds every
// record, less the margin, or NoStable.
func (r *roster) stable(now int64) int64 {
	low := r.coverage(now)
	if low == NoStable {
		return NoStable
	}
	for _, in := range r.current {
		if !in.hasReport || in.coverage == NoStable {
			return NoStable
		}
		low = min(low, in.coverage)
	}
	return crdt.SubSat(low, r.margin)
}

// expire forgets failed members after failedTimeout and retires ended
// incarnations once every member in the view has synced with this node
// retireAfter after the end; one that left on purpose, only once, besides,
// an incarnation of its name has completed a session with this node after
// it left (bringing back what it held alone), or after failedTimeout.
func (r *roster) expire(now int64) {
	for name, in := range r.current {
		if in.state == failed && crdt.SubSat(now, in.since) > r.failedTimeout {
			delete(r.current, name)
		}
	}
	kept := r.ended[:0]
	for _, e := range r.ended {
		// One given back at a start waits for a member in the view: before
		// the first view no one is there to have synced, and it retired at
		// once (found by review).
		// And never before retireAfter has passed: with no member alive in
		// the view, everyone had synced at once, and a leaver whose only
		// peer was this node (a cluster of two, or the rest lost) retired
		// on the spot, a delta of its still in flight meeting watermarks
		// raised past it (found by review).
		retire := r.everyoneSyncedAfter(crdt.AddSat(e.since, r.retireAfter)) && (!e.restored || r.anyAlive()) &&
			crdt.SubSat(now, e.since) >= r.retireAfter
		if e.left {
			retire = retire && e.back
		}
		if e.left || e.restored {
			retire = retire || crdt.SubSat(now, e.since) > r.failedTimeout
		}
		if !retire {
			kept = append(kept, e)
		}
	}
	clear(r.ended[len(kept):])
	r.ended = kept
}

// anyAlive reports whether any member is in the view.
func (r *roster) anyAlive() bool {
	for _, in := range r.current {
		if in.state == alive {
			return true
		}
	}
	return false
}

func (r *roster) everyoneSyncedAfter(t int64) bool {
	for _, in := range r.current {
		if in.state == alive && (!in.hasCut || in.synced < t) {
			return false
		}
	}
	return true
}

// Known is a member a node counts for the stable bound, as kept across a
// restart of the node (Node.Known, Config.Known).
type Known struct {
	Name string
	// Cut is the wall of its cut this node holds, and Coverage what it
	// reported; HasCut and HasReport say whether there are any.
	Cut, Coverage     int64
	HasCut, HasReport bool
	// Since is when it failed or ended, this node's time; 0 for one alive.
	Since int64
	// Ended says the incarnation ended (left, or replaced by a restart);
	// Left that it left keeping its state.
	Ended, Left bool
}

// known returns every incarnation counted at now.
func (r *roster) known(now int64) []Known {
	r.expire(now)
	var out []Known
	for _, in := range r.current {
		k := Known{Name: in.name, Cut: in.cut, Coverage: in.coverage, HasCut: in.hasCut, HasReport: in.hasReport}
		if in.state == failed {
			k.Since = in.since
		}
		out = append(out, k)
	}
	for _, e := range r.ended {
		out = append(out, Known{Name: e.name, Cut: e.cut, HasCut: true, Since: e.since, Ended: true, Left: e.left && !e.back})
	}
	return out
}

// restore takes back what an earlier run counted: members as failed (from
// when they failed, or from now for those alive then), ended incarnations
// as ended. A name seen again is a member again (view), and its old cut
// and report hold the bound until a session replaces them.
func (r *roster) restore(ks []Known, self string, now int64) {
	oldest := crdt.SubSat(now, r.failedTimeout) // a time from a damaged file held the bound for ever
	for _, k := range ks {
		if k.Name == self {
			continue // never in its own view: it would hold the bound until the timeout
		}
		since := now
		if k.Since != 0 {
			since = min(max(k.Since, oldest), now)
		}
		cut, coverage := min(k.Cut, now), min(k.Coverage, now)
		if k.Ended {
			r.ended = append(r.ended, &incarnation{name: k.Name, cut: cut, hasCut: true, since: since, firstEnd: since,
				state: ended, left: k.Left, joined: since, restored: true})
			continue
		}
		if _, ok := r.current[k.Name]; ok {
			continue
		}
		r.current[k.Name] = &incarnation{name: k.Name, cut: cut, coverage: coverage, hasCut: k.HasCut, hasReport: k.HasReport,
			joined: since, since: since, state: failed}
	}
}

// rebase moves the times on this node's clock that are safe lower (the
// synced marks, and arrivals, a never-synced incarnation's cut) back by
// back, with the node's (see Node.rebase): left on the clock before a step
// back, a session completed before it read as one started after an end
// noted after it. Ends and failures are safe higher and stay: back is
// measured from the latest now, which a forward step that NTP undid had
// put ahead of the times noted before it, and moved with the rest an end
// noted before such a blip read as the blip older, and a session 10 ms
// after it retired the member (found by review). Cuts and coverage are
// the peers' clocks', and stay.
func (r *roster) rebase(back int64) {
	move := func(in *incarnation) {
		for _, t := range []*int64{&in.synced, &in.joined} {
			*t = crdt.SubSat(*t, back)
		}
	}
	for _, in := range r.current {
		move(in)
	}
	for _, e := range r.ended {
		move(e)
	}
}
