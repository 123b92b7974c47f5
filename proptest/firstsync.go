package proptest

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/sim"
	"github.com/bcache-go/bcache/transport/wire"
)

// The first sync (transport.Node.FirstSync: what a Cache's WaitSynced and
// Status report) says that the member holds what the peer of its first
// completed exchange held when that exchange began. The harness checks
// it on every replica that reports it (Syncer), at the first check
// that finds the first sync made, against what the peer held: every
// record the peer has held in one version since before the exchange
// began, the member holds in that version or a newer one, unless the
// rules let it lack it (it collected the key or rejected the version
// below a watermark, the model lets the version be lost, the version is
// the adversary's, or it is too far ahead of the member's clock for the
// drift bound). (A version the peer replaced meanwhile is not asked for:
// the member may refuse the newer one, a forged one too far ahead of its
// clock, and need not hold the one before.) "Before the exchange began"
// is, at the latest, the exchange's start on the member's clock
// (FirstSyncWith) less the largest skew its clock had since it started:
// the cluster's time then, or earlier; and, for a responder, no later
// than the opening of any of that peer's sessions its incarnation was
// sent (the last check before it was): the responder compares its
// digest with the opening's hashes, read as the peer opened the session
// (at level 1, for an arrival's), so a record the peer took between its
// opening and the opening's arrival may be missing from a first sync
// made as the responder (TestFirstSyncOfAResponderIsOfTheOpening). The harness keeps, per live member, the check at which
// each version it holds came, as long as its key stays held in it.
//
// It also models the members' marks of holding their cluster's state (a
// Cache's memberlist metadata; transport.Node.SetNewcomers): a member
// that has made no first sync since its incarnation started is a
// newcomer to the others, unless it is one of the cluster's first
// members (they hold its state from the start, as founders do). So the
// first sync of a member that joined later is with a member that holds
// the state, while one is in its view.

// Syncer is a replica that reports its first sync, as transport.Node
// does (StoreReplica and MapReplica pass their node's on), and takes the
// names of the members that do not hold their cluster's state yet
// (transport.Node.SetNewcomers).
type Syncer interface {
	FirstSync() int64
	FirstSyncWith() (peer string, start int64)
	SetNewcomers(names []string)
}

// heldAt is a version a member holds and the cluster's time of the check
// that first found it there.
type heldAt struct {
	at int64
	v  crdt.Timestamp
}

// syncWatch is what the harness keeps of a member for the first-sync
// check: its replica and incarnation (a new one starts afresh), whether its first
// sync was checked, and, per key it holds, the version it holds and
// since when.
type syncWatch struct {
	r       Syncer
	inc     crdt.NodeID // its incarnation
	checked bool
	// valuesChecked says the values its first sync serves were checked
	// against its peer's collections (see noneCollected).
	valuesChecked bool
	founder       bool // one of the cluster's first members
	// skew is the largest skew the member's clock has had since its
	// incarnation started (skews change only by an action of their own,
	// and each action is followed by a check).
	skew int64
	// earliest is the earliest start on its clock an exchange of its
	// incarnation may be said to have: the cluster's time of the last
	// check before its incarnation was seen, plus its skew then, less
	// every step back of its clock since (cur is its skew at the last
	// check). A step back moves a start back by the step, whether the
	// start was read before or after the step ahead it undoes (a session
	// started at skew 0, in flight across a skew of 1 s and back to 0,
	// says it began 1 s before the member did: the least skew, the bound
	// before, failed such a run; TestStepBackAfterAForwardStepMovesAStartBeforeTheNode
	// in package transport).
	earliest, cur int64
	// stepped says its clock stepped back since its incarnation started:
	// a node leaves a step back shorter than a second alone (transport's
	// stepBack) and, at the next longer one, moves its times back by the
	// whole distance from the latest time it was given, so that a start
	// read after the short step moves back by it twice, up to a second
	// before earliest (a step of 1 ns, then one of 1 s, failed a run of
	// the production store: found by review,
	// TestAFirstSyncAcrossASmallStepBackIsNoEarlierThanItsIncarnation).
	// A start read early claims less of the first sync, never more.
	stepped bool
	since   map[string]heldAt
	// rejected is, per key, the newest version it rejected below a
	// watermark.
	rejected map[string]crdt.Timestamp
	// opened is, per peer, the earliest time (see harness.openings) an
	// opening of a session of the peer's that incarnation openedInc
	// received was sent.
	opened    map[string]int64
	openedInc crdt.NodeID
}

// openingKey names a session opening: its sender and session id.
type openingKey struct {
	from string
	id   uint64
}

// opening returns the key of p if it is a session's opening.
func (h *harness) opening(p sim.Packet) (openingKey, bool) {
	if p.Kind != wire.KindDigest || p.Sender() == "" {
		return openingKey{}, false
	}
	if h.openingWire == nil {
		h.openingWire = wire.NewCodec(wire.Limits{})
	}
	m, err := h.openingWire.Decode(p.Payload)
	d, ok := m.(*wire.Digest)
	if err != nil || !ok || d.Token != 0 || d.Step != 1 {
		return openingKey{}, false
	}
	return openingKey{p.Sender(), d.ID}, true
}

// noteOpenings notes the openings in flight: those not seen before were
// sent since the last check. (A replay of one, later, keeps the time of
// the first.)
func (h *harness) noteOpenings() {
	for _, p := range h.c.Net.InFlight() {
		if k, ok := h.opening(p); ok {
			if _, seen := h.openings[k]; !seen {
				if h.openings == nil {
					h.openings = map[openingKey]int64{}
				}
				h.openings[k] = h.checkedAt
			}
		}
	}
	h.checkedAt = h.c.Now()
}

// openingCame notes an opening delivered to live member i.
func (h *harness) openingCame(i int, p sim.Packet) {
	k, ok := h.opening(p)
	if !ok {
		return
	}
	at, seen := h.openings[k]
	if !seen { // sent since the last check
		at = h.checkedAt
		if h.openings == nil {
			h.openings = map[openingKey]int64{}
		}
		h.openings[k] = at
	}
	w := h.syncs[i]
	if inc := h.c.members[i].id; w.openedInc != inc || w.opened == nil {
		w.opened, w.openedInc = map[string]int64{}, inc
	}
	if o, ok := w.opened[k.from]; !ok || at < o {
		w.opened[k.from] = at
	}
}

// watchSync makes room for the first-sync check of a member added: the
// cluster's first members are its founders.
func (h *harness) watchSync() {
	i := len(h.syncs)
	h.syncs = append(h.syncs, &syncWatch{founder: !h.started, inc: h.c.members[i].id, since: map[string]heldAt{}, rejected: map[string]crdt.Timestamp{}})
}

// noteRejected notes the versions member i rejected below a watermark.
func (h *harness) noteRejected(i int, rs []Rejection) {
	w := h.syncs[i]
	for _, r := range rs {
		if cur, ok := w.rejected[r.Key]; !ok || cur.Less(r.Version.Time) {
			w.rejected[r.Key] = r.Version.Time
		}
	}
}

// newcomers tells each live member the members that do not hold their
// cluster's state (see above).
func (h *harness) newcomers() {
	var names []string
	clear(h.marked)
	for i := range h.c.Size() {
		if sy, ok := h.c.Replica(i).(Syncer); ok && !h.c.Down(i) && !h.syncs[i].founder && sy.FirstSync() == 0 {
			names = append(names, h.c.Name(i))
			if h.marked == nil {
				h.marked = map[string]bool{}
			}
			h.marked[h.c.Name(i)] = true
		}
	}
	for i := range h.c.Size() {
		if sy, ok := h.c.Replica(i).(Syncer); ok && !h.c.Down(i) {
			sy.SetNewcomers(names)
		}
	}
}

// checkFirstSyncs notes what each live member holds now, then checks the
// first sync of every one that just made it (see above): a record its
// peer no longer holds (collected since) was not held throughout.
func (h *harness) checkFirstSyncs(t fataler) {
	if h.syncFailure != "" {
		t.Fatalf("%s", h.syncFailure)
	}
	for i := range h.c.Size() {
		w := h.syncs[i]
		sy, ok := h.c.Replica(i).(Syncer)
		if !ok || h.c.Down(i) {
			w.r, w.checked = nil, false
			clear(w.since)
			continue
		}
		skew := h.c.Phys(i) - h.c.Now()
		if inc := h.c.members[i].id; sy != w.r || inc != w.inc { // a new incarnation: nothing held since before it
			if inc != w.inc { // not the one it was added with (the first check finds every member so)
				w.founder = false
			}
			w.r, w.inc, w.checked, w.valuesChecked, w.skew, w.cur, w.earliest, w.stepped = sy, inc, false, false, skew, skew, h.checkedAt+skew, false
			clear(w.since)
		}
		if skew < w.cur {
			w.earliest -= w.cur - skew
			w.stepped = true
		}
		w.skew, w.cur = max(w.skew, skew), skew
		h.noteHeld(i)
	}
	h.noteOpenings()
	for i := range h.c.Size() {
		if w := h.syncs[i]; w.r != nil && !w.checked && w.r.FirstSync() != 0 && !h.cfg.OneWaySessions {
			w.checked = true
			h.checkFirstSync(t, i)
		}
	}
}

// checkFirstSync checks member i's first sync, just made.
func (h *harness) checkFirstSync(t fataler, i int) {
	w := h.syncs[i]
	peer, start := w.r.FirstSyncWith()
	// The check takes the replica's word for the peer and the start: it
	// must be one it can hold to (a first sync said early, reported as
	// started at 0, was checked against nothing).
	if peer == adversaryName {
		// The adversary, in every view and holding the key, completes
		// an exchange as its initiator with a step that shows nothing
		// different (it hears the token): such a first sync holds
		// nothing of the cluster's, and is the adversary's to make.
		return
	}
	p, ok := h.c.byName[peer]
	if !ok || p == i {
		t.Fatalf("%s made its first sync with %q, which is no other member", h.c.Name(i), peer)
	}
	if earliest := w.earliest; start < earliest && (!w.stepped || start < crdt.SubSat(earliest, int64(time.Second))) {
		t.Fatalf("%s made its first sync in an exchange it says began at %d, before its incarnation (%d on its clock at the earliest)", h.c.Name(i), start, w.earliest)
	}
	if h.c.Down(p) || h.syncs[p].r == nil {
		return // its history went with it
	}
	if h.marked[peer] {
		// With a newcomer: only if no member that holds the state was in
		// its view (the live members its side reaches; not the outsider,
		// which a node takes for a holder: it holds nothing).
		for j := range h.c.Size() {
			if name := h.c.Name(j); j != i && j != p && !h.c.Down(j) && h.c.Net.Connected(h.c.Name(i), name) && !h.marked[name] {
				t.Fatalf("%s made its first sync with %s, a newcomer, while %s, which holds the cluster's state, was in its view", h.c.Name(i), peer, name)
			}
		}
	}
	if h.cfg.Coverage != nil {
		h.cfg.Coverage.FirstSyncs[0]++
	}
	before := h.syncBefore(w, peer, start)

	mine := map[string]crdt.Timestamp{}
	ofHash := map[uint64][]crdt.Record{} // its records by key hash
	for _, rec := range h.c.Replica(i).Records() {
		mine[rec.Key] = rec.Time
		ofHash[crdt.HashKey(rec.Key)] = append(ofHash[crdt.HashKey(rec.Key)], rec)
	}
	for _, key := range slices.Sorted(maps.Keys(h.syncs[p].since)) {
		held := h.syncs[p].since[key]
		if held.at >= before {
			// Not held in this version since before the exchange began:
			// a check finds what came at its time or earlier, and within
			// one action the exchange may start first.
			continue
		}
		v := held.v
		if h.cfg.Coverage != nil {
			h.cfg.Coverage.FirstSyncs[1]++
		}
		if got, ok := mine[key]; ok && !got.Less(v) || h.mayLack(i, key, v, start) || hidden(ofHash, key, v) {
			continue
		}
		t.Fatalf("%s made its first sync with %s (an exchange that began at %d on its clock), without %q at %v, which %s held since before then (%s holds %v)",
			h.c.Name(i), peer, start, key, v, peer, h.c.Name(i), mine[key])
	}
	if !w.valuesChecked {
		w.valuesChecked = true
		if msg := h.noneCollected(i); msg != "" {
			t.Fatalf("%s", msg)
		}
	}
}

// syncBefore returns the cluster's time before which the exchange that
// made member w's first sync, with peer, began (start on its clock).
func (h *harness) syncBefore(w *syncWatch, peer string, start int64) int64 {
	before := start - w.skew
	if w.openedInc == w.inc {
		if o, ok := w.opened[peer]; ok && o < before {
			before = o // it may have been the responder
		}
	}
	return before
}

// UnackedSyncer is a Syncer whose first sync waits for the peer's
// acknowledgement of the records it pushed in the exchange, as
// transport.Node's does (StoreReplica and MapReplica pass it on), and
// says when it was taken without it, at the exchange's deadline. Of an
// acknowledged first sync the harness also checks that the member serves
// no value it held since before the exchange that is older than a record
// of its key the peer had collected by then (see the package doc).
type UnackedSyncer interface {
	FirstSyncUnacked() bool
}

// syncedSoFar checks the values served by each member that has made its
// first sync since the last check (see noneCollected) and not had them
// checked: the cluster calls it as it delivers each frame, before the
// frame is taken, for the first sync the frame before it made. A check at
// the next action, after a round or a delivery of all in flight, would
// find the peer's answers taken. The first failure is reported at the
// next check.
func (h *harness) syncedSoFar() {
	for i := range min(h.c.Size(), len(h.syncs)) {
		w := h.syncs[i]
		if w.r == nil || w.checked || w.valuesChecked || h.c.Down(i) || w.inc != h.c.members[i].id || any(w.r) != any(h.c.Replica(i)) || w.r.FirstSync() == 0 {
			continue
		}
		w.valuesChecked = true
		if msg := h.noneCollected(i); msg != "" && h.syncFailure == "" {
			h.syncFailure = msg
		}
	}
}

// noneCollected checks that member i, whose first sync was acknowledged
// (UnackedSyncer), serves no value it held since before the exchange
// that is older than a record of its key the peer had collected before
// then: the peer rejected such a value when i pushed it, below the
// watermark the collection raised, and answered with the drop, which the
// acknowledgement waits for. (A member restored from a snapshot older
// than a delete its peer then collected synced while serving the deleted
// value, until the peer's answer came: caught by
// TestARestoredMemberServesNoCollectedDeleteOnceSynced, not by the
// harness, until this check.) It returns the failure, or "". Exempt: the
// adversary's values, keys sharing a hash with another the member holds
// (see hidden), a value of a key of which the peer holds a newer version
// (one that came to it during the exchange superseded i's push, which it
// does not answer; one too far ahead of i's clock, the adversary's within
// the peer's drift bound, i refused, and pushed nothing), and every value
// while some member has collected a record
// too far ahead of i's clock for i to take the drop (stamped just above
// the bucket's watermark, which a collection anywhere may have raised,
// through the marks) or one of the adversary's.
func (h *harness) noneCollected(i int) string {
	w := h.syncs[i]
	if u, ok := w.r.(UnackedSyncer); !ok || u.FirstSyncUnacked() || h.cfg.OneWaySessions {
		return ""
	}
	peer, start := w.r.FirstSyncWith()
	p, ok := h.c.byName[peer]
	if peer == adversaryName || !ok || p == i || h.c.Down(p) {
		return ""
	}
	before := h.syncBefore(w, peer, start)
	ahead := crdt.AddSat(start, int64(h.cfg.MaxDrift))
	for _, cs := range h.collections {
		for _, c := range cs {
			if c.v.Wall > ahead || c.v.Node == adversaryID {
				return ""
			}
		}
	}
	records := h.c.Replica(i).Records()
	ofHash := map[uint64]int{}
	for _, rec := range records {
		ofHash[crdt.HashKey(rec.Key)]++
	}
	peers := map[string]crdt.Timestamp{}
	for _, rec := range h.c.Replica(p).Records() {
		peers[rec.Key] = rec.Time
	}
	phys := h.c.Phys(i)
	for _, rec := range records {
		if rec.Tombstone || rec.Evicted || rec.Expires != 0 && rec.Expires <= phys || rec.Time.Node == adversaryID || ofHash[crdt.HashKey(rec.Key)] > 1 {
			continue
		}
		if held, ok := w.since[rec.Key]; !ok || held.v != rec.Time || held.at >= before {
			continue // not held in this version since before the exchange began
		}
		if v, ok := peers[rec.Key]; ok && rec.Time.Less(v) {
			// The peer holds a newer version: i's push of the key, if
			// any, met that version, not the watermark (superseded, not
			// rejected: no answer comes), the version having come to the
			// peer after it listed the key (pinned
			// first-sync-push-superseded), or i pushed nothing, taking or
			// refusing the peer's version (too far ahead of its clock:
			// TestAFirstSyncKeepsAValueBelowAPeersVersionTooFarAhead).
			continue
		}
		for _, c := range h.collections[p] {
			if c.key == rec.Key && c.at < before && rec.Time.Less(c.v) {
				return fmt.Sprintf("%s made its first sync with %s (an exchange that began at %d on its clock, acknowledged), serving %q at %v, older than the record of it %s collected before then (%v)",
					h.c.Name(i), peer, start, rec.Key, rec.Time, peer, c.v)
			}
		}
	}
	return ""
}

// hidden reports whether a member holding records (by key hash) may lack
// version v of key after a first sync because a record of another key
// of its hash, not older, hid it: anti-entropy matches versions by key
// hash, and while neither side holds both keys, the side that holds the
// older one takes the other's as newer, wants it, and sends nothing of
// its own. The keys meet at the next exchange, once a side holds both
// (it lists their hash as collided); only keys chosen to share a 64-bit
// hash are so (TestCollidingKeys; TestPinnedCollidingKeysRuns pins a run).
func hidden(records map[uint64][]crdt.Record, key string, v crdt.Timestamp) bool {
	return slices.ContainsFunc(records[crdt.HashKey(key)], func(r crdt.Record) bool {
		return r.Key != key && !r.Time.Less(v)
	})
}

// mayLack reports whether the rules let member i lack version v of key
// after an exchange that began at start on its clock.
func (h *harness) mayLack(i int, key string, v crdt.Timestamp, start int64) bool {
	version := crdt.Version{Key: key, Time: v}
	if v.Node == adversaryID || h.collected(i, version) || h.model.excused[version] {
		return true
	}
	if r, ok := h.syncs[i].rejected[key]; ok && !r.Less(v) {
		return true
	}
	// A crash excuses only what it may have taken (model.mayBeLost: the
	// versions above the newest a live member held); model.lost, the
	// newest it took, excused every older version too, even one the peer
	// held all along (found by review,
	// TestFirstSyncCatchesAMissingWriteBelowACrashedOne).
	for _, tomb := range []bool{false, true} {
		x := crdt.Version{Key: key, Time: v, Tombstone: tomb}
		if rec, ok := h.model.known[x]; ok && h.model.mayBeLost(rec) {
			return true
		}
	}
	if l, ok := h.model.lossy[key]; ok && l.Compare(version) >= 0 {
		return true
	}
	// Past the drift bound of the member's clock when a repair came: its
	// clock read start or later then (a step back moves start with it).
	return v.Wall > start+int64(h.cfg.MaxDrift)
}

// noteHeld notes the versions member i holds now.
func (h *harness) noteHeld(i int) {
	w := h.syncs[i]
	now := map[string]crdt.Timestamp{}
	for _, rec := range h.c.Replica(i).Records() {
		now[rec.Key] = rec.Time
	}
	for key := range w.since {
		if _, ok := now[key]; !ok { // gone: collected, or dropped
			delete(w.since, key)
		}
	}
	for key, v := range now {
		if held, ok := w.since[key]; !ok || held.v != v {
			w.since[key] = heldAt{at: h.c.Now(), v: v}
		}
	}
}
