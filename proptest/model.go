package proptest

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/sim"
	"github.com/bcache-go/bcache/transport/wire"
)

// fataler is what the model's checks need of a test: rapid's or testing's.
type fataler interface {
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// model is the reference the converged cluster is checked against: the
// newest write of every key, and what may legitimately have been lost.
type model struct {
	writes []crdt.Record
	known  map[crdt.Version]crdt.Record // the writes, by version
	newest map[string]crdt.Record
	// lost holds, for a key, the newest version a crashed member may have
	// taken with it (held or collected, and no live member held as much):
	// writes of the key up to it may be gone, a newer one may not.
	lost map[string]crdt.Version
	// crashes holds, for a key, what each crash may have taken of it: the
	// versions above the newest one a live member held (or collected)
	// as it went, up to the newest the crashed member knew. A write no
	// newer than that floor was held by a live member: the crash took
	// it from no one (the model excused every write up to the crashed
	// member's newest, and live members that silently lost an older
	// write they held passed: found by review).
	crashes map[string][]crashSpan
	// ruled holds every version a member dropped or rejected under the
	// rules (not only newest writes): past a crash that may have taken
	// the newest write of its key, such a version need not survive.
	ruled map[crdt.Version]bool
	// lossy holds, for a key, the newest of its live newest writes that a
	// member dropped (because a peer could no longer tell it from a
	// deleted one) or that an answer to a rejection replaced: up to it,
	// the key's writes may be gone; a newer one may not.
	lossy map[string]crdt.Version
	// writtenAt holds when (the cluster's time) each member's write was
	// made: a write whose writer the side of a member that rejected it
	// knew nothing of, at that time or later, may be lost (see
	// Cluster.UnknownTo); excused holds those rejections, whose answers
	// may then replace the write anywhere.
	writtenAt map[crdt.Version]int64
	excused   map[crdt.Version]bool
	// deferred holds the writes of a member that keeps answered values
	// (see harness.keeps) whose refusal by a peer, or whose answer held
	// elsewhere, was judged at the writer instead: taken over there
	// (dropped, or found replaced there by an answer: see
	// harness.judgeDeferred), such a write is a loss like any.
	deferred map[crdt.Version]bool
	// evicted holds, for a write of such a member, whether the writer
	// held it evicted (true) or live (false) when last seen, before each
	// frame it took and at each check (see harness.watchKept): an
	// answer that replaces a write held evicted drops no value, and is
	// reported as no drop (transport's receiveRepairRecord), a loss
	// store.KeepAnswered allows; one that replaces a live write is a
	// loss like any.
	evicted map[crdt.Version]bool
	// judged holds the deferred writes judged at their writer: not
	// deferred again.
	judged map[crdt.Version]bool
	// received holds the writes a crash may have taken (lost) that a
	// frame then delivered to a live member, which could take them
	// (within its drift bound, not late, and within Config.LateFrames of
	// its writer's end): frames outlive a crash, and a write a live
	// member received is no longer one that only a crashed member knew
	// (its loss was excused: found by review).
	received map[crdt.Version]bool
}

// crashSpan is what one crash may have taken of a key: the versions above
// floor (if held: the newest a live member knew) up to top.
type crashSpan struct {
	floor, top crdt.Version
	held       bool
}

func newModel() model {
	return model{known: map[crdt.Version]crdt.Record{}, newest: map[string]crdt.Record{}, lost: map[string]crdt.Version{}, lossy: map[string]crdt.Version{},
		crashes: map[string][]crashSpan{}, ruled: map[crdt.Version]bool{},
		writtenAt: map[crdt.Version]int64{}, excused: map[crdt.Version]bool{}, received: map[crdt.Version]bool{}, deferred: map[crdt.Version]bool{},
		evicted: map[crdt.Version]bool{}, judged: map[crdt.Version]bool{}}
}

func (m *model) write(rec crdt.Record) {
	rec.Value = bytes.Clone(rec.Value) // the replica keeps the caller's slice
	m.writes = append(m.writes, rec)
	m.known[rec.Version()] = rec
	if cur, ok := m.newest[rec.Key]; !ok || cur.Version().Compare(rec.Version()) < 0 {
		m.newest[rec.Key] = rec
	}
}

// adopt checks that a record a member holds was written by someone: by a
// member (a write the model knows, held as it was written: its value,
// unless evicted, and its expiry); by the adversary, whose records an
// honest member accepted become writes of its own; or by a member that
// answered a record it rejected with a tombstone (node 0; package lww,
// rule 3). An answer may replace a live newest write only under the rules
// that let a member drop one (see dropped). Anything else is a version the
// member made up.
func (m *model) adopt(t fataler, h *harness, member string, rec crdt.Record) {
	v := rec.Version()
	w, known := m.known[v]
	switch {
	case h.adv != nil && v.Time.Node == adversaryID:
		// The adversary may send one version with different values (and
		// expiries) to different members: a member must hold one of them.
		if !h.adv.sentAs(rec) {
			t.Fatalf("%s holds %v, which the adversary never sent (it sent %+v)", member, rec, h.adv.copies[v])
		}
		if !known {
			m.write(rec)
		}
	case known && (rec.Expires != w.Expires || !rec.Evicted && !bytes.Equal(rec.Value, w.Value)):
		// Versions leave the value and the expiry out: anti-entropy cannot
		// see, or repair, a member that changed them.
		t.Fatalf("%s holds %v, which was written as %v", member, rec, w)
	case known:
	case v.Time.Node == 0 && v.Tombstone:
		if n, ok := m.newest[v.Key]; ok && !n.Tombstone && n.Version().Compare(v) < 0 {
			m.superseded(t, h, member, n, false)
		}
		m.write(rec)
	default:
		t.Fatalf("%s holds %q at %v, which nobody wrote", member, rec.Key, v.Time)
	}
}

// dropped notes the newest writes a member dropped because a peer
// rejected them (package lww, rule 3), and fails the run for one the rule
// cannot explain. A peer rejects only records below its watermark, which
// never rises above its now - horizon + MaxClockDrift: a write dropped
// sooner after it was written than the horizon, less the drift and the
// largest clock skew, was lost to something else.
func (m *model) dropped(t fataler, h *harness, member int, vs []crdt.Version) {
	for _, v := range vs {
		m.ruled[v] = true
		byWriter := h.c.members[member].id == v.Time.Node
		deferred := m.deferred[v]
		if byWriter {
			delete(m.deferred, v) // judged here
			m.judged[v] = true
		}
		if n, ok := m.newest[v.Key]; ok && n.Version() == v {
			m.superseded(t, h, h.c.Name(member), n, byWriter)
		} else if w, ok := m.newestWrite(v.Key); ok && w.Version() == v && byWriter && deferred {
			// An answer adopted first, held elsewhere, is the newest
			// version: the writer took it over its write, the newest
			// any member wrote, which it would keep.
			m.superseded(t, h, h.c.Name(member), w, true)
		}
	}
}

// newestWrite returns the newest write of key a member made: not an
// answer to a rejection (a tombstone of node 0).
func (m *model) newestWrite(key string) (crdt.Record, bool) {
	var best crdt.Record
	found := false
	for _, w := range m.writes {
		if w.Key == key && (w.Time.Node != 0 || !w.Tombstone) && (!found || best.Version().Compare(w.Version()) < 0) {
			best, found = w, true
		}
	}
	return best, found
}

// superseded notes that a live newest write was lost (dropped, or replaced
// by the answer to a rejection), and fails the run if no honest watermark
// could cover it yet (see coverable).
//
// byWriter says the member is n's writer, which dropped it: a loss there
// is judged at once, also of a writer that keeps answered values (see
// harness.keeps), whose loss elsewhere waits for it.
func (m *model) superseded(t fataler, h *harness, member string, n crdt.Record, byWriter bool) {
	if m.mayBeLost(n) {
		return // it may have died with a crashed member: verify excuses it
	}
	if !byWriter && h.keeps(n) && !m.judged[n.Version()] {
		// An answer held elsewhere, which the writer refuses and writes
		// n again over: judged when it reaches the writer (dropped).
		m.deferred[n.Version()] = true
		return
	}
	// Lost to an answer: excused as unknown only if a member whose side
	// knew nothing of the writer rejected it (see rejected).
	unknown := m.excused[n.Version()]
	if cur, ok := m.lossy[n.Key]; m.coverable(t, h, member, n, h.c.Now(), int64(h.cfg.MaxSkew), earliestClock(h), unknown, "lost") && (!ok || cur.Compare(n.Version()) < 0) {
		m.lossy[n.Key] = n.Version()
	}
}

// rejected checks the records member i rejected as below a watermark, when
// it rejected them: a live newest write must be one a watermark could
// cover (see coverable). Its loss follows when the answer arrives.
//
// A rejection is answered with a tombstone above the watermark, which
// replaces every version of its key below it wherever it goes: the
// newest write of the key, if its writer was unknown to member i's side
// (see unknownTo), may be lost to it whichever version was rejected, and
// is excused from then on.
func (m *model) rejected(t fataler, h *harness, i int, rs []Rejection) {
	for _, r := range rs {
		m.ruled[r.Version] = true
		n, ok := m.newest[r.Key]
		if !ok {
			continue
		}
		unknown := m.unknownTo(h, i, n)
		if unknown {
			m.excused[n.Version()] = true
		}
		if n.Version() == r.Version && h.keeps(n) && !m.judged[n.Version()] {
			// Its writer refuses the answer and writes n again (it keeps
			// answered values): judged when the answer reaches it.
			m.deferred[n.Version()] = true
			continue
		}
		if n.Version() == r.Version {
			// r.At is member i's clock; the earliest clock then was as
			// far behind it as it is now (clocks move together between
			// skew actions).
			// Lost from then on: the answer replaces it where it goes, and
			// with its writer down (a delta that outlived it) it goes
			// nowhere, and nothing else tells the model (see received).
			if m.coverable(t, h, h.c.Name(i), n, r.At, 2*int64(h.cfg.MaxSkew), r.At-h.c.Phys(i)+earliestClock(h), unknown, "rejected") {
				if cur, ok := m.lossy[n.Key]; !ok || cur.Compare(n.Version()) < 0 {
					m.lossy[n.Key] = n.Version()
				}
			}
		}
	}
}

// earliestClock returns the clock of the live member whose clock is the
// furthest behind. A value past its expiry there is dead on every clock
// that could serve it: a member whose clock is ahead may collect an
// expired value before the writer's clock has it expire (early, once the
// stable bound's margin has passed the expiry; under MaxDead, at once),
// and its answer replaces the value there, which no member could serve
// any more. A clock set back further than MaxSkew (the "restart behind"
// action) counts as MaxSkew behind: early collection takes an expiry for
// passed on every clock within the stable margin of the collector's
// (package lww, rule 6), and a member whose clock is further behind
// serves, until the answer comes, a value every other clock has expired
// (found by the action: a value restored with the clock 13 s behind,
// expired 12 s before by the cluster's).
func earliestClock(h *harness) int64 {
	earliest := h.c.Now()
	for i := range h.c.Size() {
		if !h.c.Down(i) {
			earliest = min(earliest, max(h.c.Phys(i), crdt.SubSat(h.c.Now(), int64(h.cfg.MaxSkew))))
		}
	}
	return earliest
}

// vanished fails the run if v, the newest write of its key and live,
// went from member i's records without a trace: neither collected (GC)
// nor replaced by an answer (a dropped write is replaced, not gone). The
// rules give a member no way to lose a live write silently; the model
// took such a loss for a drop, and excused it once the write was old
// enough for a watermark to cover it (found by review: a replica that
// threw its values away 26 s after writing them passed).
func (m *model) vanished(t fataler, h *harness, i int, v crdt.Version) {
	n, ok := m.newest[v.Key]
	if !ok || n.Version() != v || m.mayBeLost(n) || n.Tombstone || n.Expired(earliestClock(h)) {
		return
	}
	if h.adv != nil && n.Time.Node == adversaryID {
		return // the adversary's to lose
	}
	t.Fatalf("%s no longer holds the newest write of %q (%v), live: not collected, not replaced by an answer", h.c.Name(i), v.Key, v.Time)
}

// coverable reports whether n, a newest write that member lost or
// rejected at time at (skew: how far that time may be from the writer's
// clock), was live then (on a clock at deadBy: the earliest that could
// still serve it), and fails the run if no honest watermark could
// cover it: one raised by collecting a record dead for the horizon never
// rises above now - horizon + MaxClockDrift (package lww, rule 3), and one
// raised early never above what every counted member holds (rule 6),
// which leaves out only what a member wrote before some member's view,
// lacking its name, gave up on it (a separation longer than
// FailedTimeout, going on after the write), and what a member wrote
// while (or before) a side of the network knew nothing of it (the
// README's "a member the others have not seen"). The adversary's writes are its own to lose.
func (m *model) coverable(t fataler, h *harness, member string, n crdt.Record, at, skew, deadBy int64, unknown bool, what string) bool {
	if n.Tombstone || n.Expired(deadBy) {
		// Dead already: nothing lost. (A delete that a member refuses,
		// below a watermark it raised collecting that very delete, or
		// that an answer replaces, leaves the key as dead as it was; the
		// end still checks that no older value of the key survives it.)
		return false
	}
	age := time.Duration(crdt.SubSat(at, n.Time.Wall))
	switch {
	case h.adv != nil && n.Time.Node == adversaryID, h.cfg.MayDrop:
	case age >= h.cfg.Horizon-h.cfg.MaxDrift-time.Duration(skew):
	case m.unseenAfterWrite(h, n) > h.cfg.FailedTimeout-2*h.cfg.MaxSkew:
	case unknown:
	default:
		t.Fatalf("%s %s the newest write of %q (%v) %v after it was written: no watermark can cover it yet",
			member, what, n.Key, n.Time, age)
	}
	return true
}

// unseenAfterWrite is the longest separation of n's writer from the view
// of some member that did not hold n as it began, that went on after n
// was written (from the writer's start, and whatever the member held, if
// the harness did not see the write made).
func (m *model) unseenAfterWrite(h *harness, n crdt.Record) time.Duration {
	if at, ok := m.writtenAt[n.Version()]; ok {
		v := n.Version()
		return h.c.unseenAfter(n.Time.Node, at, &v)
	}
	return h.c.Unseen(n.Time.Node)
}

// unknownTo reports whether member i's side knew nothing of n's writer
// when it wrote n or since (see Cluster.UnknownTo), and member i, while
// it did not count the writer (Cluster.Counts), collected since (less twice
// the skew: a watermark it raised is no further ahead of the writer's
// clock): a watermark above n was raised by a collection that did not
// wait for its writer. A side that knew nothing of the writer for a
// while, and saw it before any collection passed its write, waits for
// it (transport's roster), so that a loss after it is no loss "a member
// the others have not seen" excuses: one that left keeping its state
// before any session with it completed, its write made alone, was
// counted at the time the others first saw it, the bound passed the
// write, and the write was rejected on its return, which this excused
// (found by review, transport's TestLeaverNeverSyncedWithLosesNoLiveWrite;
// the harness reaches it by "join apart").
func (m *model) unknownTo(h *harness, i int, n crdt.Record) bool {
	at, ok := m.writtenAt[n.Version()]
	if !ok || !h.c.UnknownTo(i, n.Time.Node, at) {
		return false
	}
	blind, ok := h.blindGC[i][n.Time.Node]
	return ok && blind >= at-2*int64(h.cfg.MaxSkew)
}

// crashed notes the keys whose newest knowledge member i may take with it:
// a version it holds, or a dead record it collected, that no other live
// member holds, supersedes or collected too.
func (m *model) crashed(h *harness, i int) {
	known := h.newestKnown
	for _, key := range h.cfg.Keys {
		mine, ok := known(i, key)
		if !ok {
			continue
		}
		safe := false
		span := crashSpan{top: mine}
		for j := range h.c.Size() {
			theirs, ok := known(j, key)
			if j == i || h.c.Down(j) || !ok {
				continue
			}
			if theirs.Compare(mine) >= 0 {
				safe = true
			}
			if !span.held || span.floor.Compare(theirs) < 0 {
				span.floor, span.held = theirs, true
			}
		}
		if !safe {
			for v := range m.received { // taken again: this member alone knew them
				if v.Key == key && v.Compare(mine) <= 0 {
					delete(m.received, v)
				}
			}
		}
		if cur, ok := m.lost[key]; !safe && (!ok || cur.Compare(mine) < 0) {
			m.lost[key] = mine
		}
		if !safe {
			m.crashes[key] = append(m.crashes[key], span)
		}
	}
}

// mayBeLost reports whether w, a write, may be gone: it is no newer than
// the newest version of its key that a crash may have taken, or that a
// member dropped or an answer replaced under the rules (lossy). A write
// newer than those must survive like any other.
func (m *model) mayBeLost(w crdt.Record) bool {
	if v := w.Version(); !m.received[v] {
		for _, s := range m.crashes[w.Key] {
			if v.Compare(s.top) <= 0 && (!s.held || s.floor.Compare(v) < 0) {
				return true
			}
		}
	}
	if v, ok := m.lossy[w.Key]; ok && w.Version().Compare(v) <= 0 {
		return true
	}
	return false
}

// arrived notes the writes a crash may have taken that frame p, a delta
// delivered to live member i, carried within i's drift bound and less
// than a horizon (less the drift) after they were written: i takes them,
// so their loss is no longer a crash's (see received). A repair is left
// out: one of a session its receiver ended (its peer gone from its view)
// is dropped whole.
func (m *model) arrived(h *harness, i int, p sim.Packet) {
	phys := h.c.Phys(i)
	for _, rec := range deltaRecords(p) {
		v := rec.Version()
		gone, ok := m.lost[v.Key]
		if _, known := m.known[v]; !known || !ok || v.Compare(gone) > 0 || m.received[v] {
			continue
		}
		if crdt.SubSat(rec.Time.Wall, phys) > int64(h.cfg.MaxDrift)-int64(time.Millisecond) ||
			crdt.SubSat(phys, rec.Time.Wall) > int64(h.cfg.Horizon-h.cfg.MaxDrift-2*h.cfg.MaxSkew) {
			continue
		}
		if end, ok := h.c.endedAt[v.Time.Node]; ok && crdt.SubSat(h.c.Now(), end) > int64(h.cfg.LateFrames) {
			continue // a frame of an incarnation that ended, later than LateFrames: it may be refused
		}
		m.received[v] = true
	}
}

// taken returns the versions of the records in frame p, a delta
// delivered to live member i, that i must take (or already be past, or
// reject below a watermark): the writes the model knows, within i's
// drift bound and less than a horizon (less the drift and twice the
// skew) after they were written, from incarnations that had not ended
// longer than LateFrames before (as arrived). Nil if there are none.
func (m *model) taken(h *harness, i int, p sim.Packet) []crdt.Version {
	phys := h.c.Phys(i)
	var out []crdt.Version
	for _, rec := range deltaRecords(p) {
		v := rec.Version()
		if w, known := m.known[v]; !known || w.Time.Node == adversaryID || w.Time.Node == 0 {
			continue
		}
		if crdt.SubSat(rec.Time.Wall, phys) > int64(h.cfg.MaxDrift)-int64(time.Millisecond) ||
			crdt.SubSat(phys, rec.Time.Wall) > int64(h.cfg.Horizon-h.cfg.MaxDrift-2*h.cfg.MaxSkew) {
			continue
		}
		if end, ok := h.c.endedAt[v.Time.Node]; ok && crdt.SubSat(h.c.Now(), end) > int64(h.cfg.LateFrames) {
			continue
		}
		out = append(out, v)
	}
	if out == nil {
		return []crdt.Version{} // not nil: the frame was a delta, and may be refused
	}
	return out
}

// verify checks a converged cluster: every live member holds the same
// versions; no key holds a value older than a dead record a live member
// collected (no resurrection); and every key not lost to a crash or a drop
// holds its newest write, or nothing when that write is dead.
func (m *model) verify(t fataler, h *harness) {
	var first []crdt.Version
	firstName := ""
	for i := range h.c.Size() {
		if h.c.Down(i) {
			continue
		}
		vs := Versions(h.c.Replica(i))
		if firstName == "" {
			first, firstName = vs, h.c.Name(i)
			continue
		}
		// Answers to rejections (tombstones of node 0, package lww rule
		// 3) of two keys of one key hash, at one stamp, each held on one
		// member alone, are what the digest cannot tell apart: the record
		// hash is of the key hash, and answers of one bucket share their
		// stamp (found by the harness, TestAnswersOfKeysOfOneHash). Both
		// read the keys as absent. Any other answer held on one side
		// alone is a difference the digest sees, and must be gone by the
		// end (taken for converged too, a store that refused answers of
		// keys it held no record of passed: found by review).
		if !slices.Equal(withoutTwinAnswers(vs, first), withoutTwinAnswers(first, vs)) {
			t.Fatalf("not converged: %s holds %v, %s holds %v", h.c.Name(i), vs, firstName, first)
		}
	}
	held := map[string]crdt.Version{}
	for _, v := range first {
		held[v.Key] = v
		for i := range h.c.Size() {
			if d, ok := h.reaped[i][v.Key]; ok && !h.c.Down(i) && !v.Tombstone && v.Time.Less(d) {
				t.Fatalf("%q came back at %v after %s collected a record at %v", v.Key, v.Time, h.c.Name(i), d)
			}
		}
	}
	if firstName == "" {
		return
	}
	latest := h.c.Now() + int64(h.cfg.MaxSkew)
	dead := func(r crdt.Record) bool {
		return r.Tombstone || (r.Expires != 0 && r.Expires <= h.c.Now()-int64(h.cfg.MaxSkew))
	}
	for _, key := range slices.Sorted(maps.Keys(m.newest)) { // in order: a failure says the same at each replay, which shrinking needs
		rec := m.newest[key]
		fallback := false
		if m.mayBeLost(rec) {
			// The newest write may be gone; the newest one that may not
			// must be held, or a newer version of the key.
			var ok bool
			if rec, ok = m.survivor(h, key); !ok {
				continue
			}
			fallback = true
		}
		v, ok := held[key]
		switch {
		case fallback && ok && v.Compare(rec.Version()) > 0:
			// A newer version survived (a write the crash may have taken, or
			// an answer).
		case fallback && !ok && m.deadAbove(h, rec, latest):
			// A newer version of the key, dead, may have taken it.
		case ok && v != rec.Version() && dead(rec) && dead(m.known[v]) && v.Compare(rec.Version()) < 0:
			// Dead either way: a newer delete that was dropped (package lww,
			// rule 3, drops dead records without a word) leaves an older one.
		case ok && v != rec.Version():
			t.Fatalf("%q converged to %v, its newest write is %v", key, v.Time, rec.Time)
		case !ok && !rec.Tombstone && (rec.Expires == 0 || rec.Expires > latest):
			t.Fatalf("%q lost its newest write %v (%s)", key, rec.Time, lifetime(rec, h.c.Now()))
		}
	}
}

// survivor returns the newest write of key that may not be gone, when
// the newest may be (see mayBeLost): not the adversary's, which are its
// own to lose, not one a member dropped or rejected (or any, under
// Config.MayDrop), and not one an answer to a rejection may have
// replaced.
func (m *model) survivor(h *harness, key string) (crdt.Record, bool) {
	var best crdt.Record
	found := false
	for _, w := range m.writes {
		if w.Key != key || m.mayBeLost(w) || found && w.Version().Compare(best.Version()) <= 0 {
			continue
		}
		best, found = w, true
	}
	if !found || best.Time.Node == adversaryID && h.adv != nil || h.cfg.MayDrop || m.ruled[best.Version()] {
		return crdt.Record{}, false
	}
	for v := range m.known {
		if v.Key == key && v.Tombstone && v.Time.Node == 0 && best.Version().Compare(v) < 0 {
			return crdt.Record{}, false
		}
	}
	return best, true
}

// deadAbove reports whether a version of w's key newer than w is dead
// (a delete, or a value expired by latest), one that may have replaced
// it, and a live member collected it (or a newer record of the key). A
// dead version only a crashed member ever held replaced w nowhere: it
// excused live members that silently lost w (found by review,
// TestModelCatchesALossExcusedByADeleteOnlyTheCrashedMemberKnew).
func (m *model) deadAbove(h *harness, w crdt.Record, latest int64) bool {
	for v, x := range m.known {
		if v.Key != w.Key || w.Version().Compare(v) >= 0 || !(x.Tombstone || x.Expires != 0 && x.Expires <= latest) {
			continue
		}
		for j := range h.c.Size() {
			if !h.c.Down(j) && h.collected(j, v) {
				return true
			}
		}
	}
	return false
}

// lifetime describes when a record stops being live, for failure messages.
func lifetime(r crdt.Record, now int64) string {
	switch {
	case r.Tombstone:
		return "a delete"
	case r.Expires == 0:
		return "no expiry"
	}
	return fmt.Sprintf("expires %v from now", time.Duration(crdt.SubSat(r.Expires, now)))
}

// withoutTwinAnswers returns vs without the answers (tombstones of node 0)
// of keys other holds no record of, where other holds an answer of
// another key of the same key hash at the same stamp that vs holds no
// record of: a twin on each side alone, which the digest sees as one (a
// twin held on both sides, and one more on one side, it sees: found by
// review).
func withoutTwinAnswers(vs, other []crdt.Version) []crdt.Version {
	answer := func(v crdt.Version) bool { return v.Tombstone && v.Time.Node == 0 }
	holds := func(in []crdt.Version, key string) bool {
		return slices.ContainsFunc(in, func(x crdt.Version) bool { return x.Key == key })
	}
	return slices.DeleteFunc(slices.Clone(vs), func(v crdt.Version) bool {
		return answer(v) && !holds(other, v.Key) &&
			slices.ContainsFunc(other, func(o crdt.Version) bool {
				return answer(o) && o.Time == v.Time && crdt.HashKey(o.Key) == crdt.HashKey(v.Key) && !holds(vs, o.Key)
			})
	})
}

// deltaRecords returns the records of frame p if it is a delta (relayed
// or direct) that decodes, else none.
func deltaRecords(p sim.Packet) []crdt.Record {
	if len(p.Payload) == 0 || p.Payload[0] == callMarker {
		return nil
	}
	msg, err := wire.NewCodec(wire.Limits{}).Decode(p.Payload)
	if err != nil {
		return nil
	}
	switch msg := msg.(type) {
	case *wire.Delta:
		return msg.Records
	case *wire.Direct:
		return msg.Records
	}
	return nil
}
