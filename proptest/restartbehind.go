package proptest

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

// restartBehind plays a restart with the physical clock stepped back past
// the stable margin (NTP, a board without a battery, a VM moved), which
// neither the skew action (within MaxSkew) nor a restart reaches (off by
// default, weight 0: set its weight to draw it). The clocks are set
// right (every member's skew 0) and the network heals; a live member,
// with files (it saves a snapshot, and restarts from it) or without (a
// FileKeeper told NoFiles: it restarts empty), takes part in a round while
// the others delete keys (drawn); time moves on past the stable margin, a
// round carries every member's cuts past the deletes, and every live
// member collects: early, below those cuts, raising watermarks to the
// deletes. The member crashes and restarts with its clock stepped back by
// more than that time (and less than the horizon less the drift and twice
// MaxSkew, so that the model excuses no loss of its writes by age), cut
// off from the others for a while or not, and writes keys (drawn) before
// it syncs; then a round, and its clock is set right again. Stamped by a
// clock started past the newest stamp it restored only, its writes were
// below the peers' watermarks: refused, answered with tombstones, and
// lost on every member (bcache's
// TestARestartWithTheClockBehindLosesNoWrite). A member with files starts
// its clock past the floor its last life kept (ClockFloor); one without
// keeps its values over answers from before its start (AnswerKeeper). The
// model holds its writes to survive as any write seconds old. Each part
// is drawn, so that shrinking can leave out what a failure does not need.
func (h *harness) restartBehind(t *rapid.T) {
	i := h.live(t, "member")
	fk, ok := h.c.Replica(i).(FileKeeper)
	if !ok {
		t.Skip("the replica keeps no files to restart with or without")
	}
	var peers []int
	for j := range h.c.Size() {
		if j != i && !h.c.Down(j) {
			peers = append(peers, j)
		}
	}
	if len(peers) == 0 {
		t.Skip("no peer to hold the member's cuts")
	}
	files := fk.KeepsFiles() && rapid.Bool().Draw(t, "with files")
	if _, ok := h.c.Replica(i).(Snapshotter); !ok {
		files = false
	}
	event(t, "every clock is set right; the network heals")
	for j := range h.c.Size() {
		h.c.SetSkew(j, 0)
	}
	h.c.Heal()
	if files {
		h.snapshot(t, i)
	}
	// At least one delete: the peers' cuts past a delete are what refuse
	// the member's writes (drawn with none, the action rarely reached
	// them: found by review).
	deleted := rapid.SliceOfNDistinct(rapid.SampledFrom(h.cfg.Keys), 1, 3, rapid.ID[string]).Draw(t, "deleted")
	for _, k := range deleted {
		h.delete(t, rapid.SampledFrom(peers).Draw(t, "deleter"), k)
	}
	h.deliverAll(t, "deliver the deletes")
	h.round(t)
	h.check(t)
	// Past the stable margin, so that the cuts of the round after pass
	// the deletes by it.
	margin := rapid.SampledFrom([]time.Duration{12 * time.Second, 15 * time.Second}).Draw(t, "past the margin")
	h.c.Advance(margin)
	event(t, "time moves on %v", margin)
	h.c.Tick()
	h.deliverAll(t, "deliver what the timers sent")
	h.round(t)
	h.check(t)
	h.collectAll(t)
	h.check(t)
	event(t, "%s crashes", h.c.Name(i))
	h.model.crashed(h, i)
	h.forgetCalls(i)
	h.c.Crash(i)
	back := margin + rapid.SampledFrom([]time.Duration{time.Second, 4 * time.Second}).Draw(t, "behind the deletes")
	h.c.SetSkew(i, -back)
	cutOff := rapid.Bool().Draw(t, "cut off")
	if cutOff {
		h.c.Partition([]string{h.c.Name(i)})
	}
	if files && fk.Floor() > crdt.AddSat(h.c.Phys(i), int64(h.cfg.MaxDrift)) {
		// Its clock pushed ahead by a stamp within the drift bound (the
		// adversary's), its floor followed: a Cache refuses to start
		// from its files so far behind it (ErrAheadOfClock).
		event(t, "%s's clock floor is more than MaxClockDrift ahead of its clock set back %v: it would not start from its files, and starts with none", h.c.Name(i), back)
		files = false
	}
	if files {
		event(t, "%s's clock is set back %v; it restarts from its snapshot%s", h.c.Name(i), back, cutOffSays(cutOff))
		h.restoreFrom(t, i)
	} else {
		event(t, "%s's clock is set back %v; it restarts with no files%s", h.c.Name(i), back, cutOffSays(cutOff))
		h.must(t, h.c.Restart(i))
		h.forgetState(i)
		fk, ok := h.c.Replica(i).(FileKeeper)
		if !ok {
			t.Fatalf("%s restarted as a %T, no FileKeeper", h.c.Name(i), h.c.Replica(i))
		}
		fk.NoFiles()
	}
	h.check(t)
	written := rapid.SliceOfNDistinct(rapid.SampledFrom(h.cfg.Keys), 1, 4, rapid.ID[string]).Draw(t, "written")
	for _, key := range written {
		value := fmt.Appendf(nil, "%s=%d", key, len(h.model.writes))
		prior, ok := h.newestHeld(i, key)
		rec, out := h.c.Replica(i).Set(key, value, 0)
		h.wroteOver(t, i, rec, crdt.Record{Key: key, Value: value}, prior, ok)
		h.c.send(i, out)
	}
	h.deliverAll(t, "deliver the writes")
	h.check(t)
	if cutOff {
		dt := rapid.SampledFrom([]time.Duration{0, time.Second, 5 * time.Second}).Draw(t, "cut off for")
		h.c.Advance(dt)
		event(t, "time moves on %v; the network heals", dt)
		h.c.Heal()
	}
	h.round(t)
	h.check(t)
	h.round(t) // what a member wrote again over an answer, to the others
	h.check(t)
	event(t, "%s's clock is set right", h.c.Name(i))
	h.c.SetSkew(i, 0)
}

func cutOffSays(cutOff bool) string {
	if cutOff {
		return ", cut off from the others"
	}
	return ""
}

// keeps reports whether n, a write, is of a member up as the incarnation
// that wrote it, which keeps a value of its own over a peer's answer from
// before its start (a FileKeeper without files, and an AnswerKeeper): it
// refuses that answer, and writes n again, so a peer's refusal of n, or
// the answer held elsewhere, is no loss until the writer takes the
// answer over n, which it reports as dropped (see model.dropped). Taken
// over n evicted there (its bounds), the answer drops no value: a loss
// store.KeepAnswered allows (it keeps what is held), which the model
// then lets pass.
func (h *harness) keeps(n crdt.Record) bool {
	j, ok := h.c.owner[n.Time.Node]
	return ok && h.c.members[j].id == n.Time.Node && h.keeper(j)
}

// keeper reports whether member j is up and keeps a value of its own
// over a peer's answer from before its start (see keeps).
func (h *harness) keeper(j int) bool {
	if h.c.Down(j) {
		return false
	}
	r := h.c.Replica(j)
	fk, ok := r.(FileKeeper)
	_, keeper := r.(AnswerKeeper)
	return ok && keeper && !fk.KeepsFiles()
}

// watchKept notes, for the writes member j holds of its own, if it keeps
// values over answers (see keeper), whether it holds each evicted or
// live (model.evicted): before each frame it takes, and at each check,
// so that an answer that replaces one, which transport reports as a drop
// only over a live value, is judged by what it replaced (judgeDeferred).
// (A frame that both evicts a write, by a value of another key, and
// answers it would be judged as a loss of the write live.)
func (h *harness) watchKept(j int) {
	if !h.keeper(j) {
		return
	}
	id := h.c.members[j].id
	for _, rec := range h.c.Replica(j).Records() {
		if rec.Time.Node == id && !rec.Tombstone {
			h.model.evicted[rec.Version()] = rec.Evicted
		}
	}
}

// judgeDeferred judges the deferred writes (model.deferred) whose writer,
// up as the incarnation that wrote them, now holds a newer answer (a
// tombstone of node 0) of their key and no write again of its own: it
// took the answer over the write. Transport reports that as a drop
// (model.dropped, which judges it) only if the write was live there; it
// is a loss like any all the same, unless the writer held it evicted
// when last seen (watchKept), which store.KeepAnswered allows (it keeps
// only what is held), counted in Coverage.Deferred. A write the writer
// holds a newer version of its own (written again), or that is no
// longer the newest write of its key, is judged no further: that newer
// write is one like any. Without this, a write deferred and then taken
// over at its writer with no drop reported was never judged (found by
// review).
func (h *harness) judgeDeferred(t fataler) {
	byKey := func(a, b crdt.Version) int { return cmp.Or(strings.Compare(a.Key, b.Key), a.Compare(b)) }
	for _, v := range slices.SortedFunc(maps.Keys(h.model.deferred), byKey) { // in order: a failure says the same at each replay
		j, ok := h.c.owner[v.Time.Node]
		if !ok || h.c.members[j].id != v.Time.Node || !h.keeper(j) {
			continue // its writer ended: a crash's to take (model.crashed)
		}
		var held crdt.Record
		found := false
		for _, rec := range h.c.Replica(j).Records() {
			if rec.Key == v.Key {
				held, found = rec, true
				break
			}
		}
		if !found || v.Compare(held.Version()) >= 0 {
			continue // still held as written, or nothing of the key
		}
		delete(h.model.deferred, v)
		h.model.judged[v] = true
		w, ok := h.model.newestWrite(v.Key)
		if !ok || w.Version() != v || !held.Tombstone || held.Time.Node != 0 {
			continue
		}
		if h.model.evicted[v] {
			if cur, ok := h.model.lossy[v.Key]; !ok || cur.Compare(v) < 0 {
				h.model.lossy[v.Key] = v
			}
			h.countDeferred(1)
			logEvent(t, "%s took the answer %v over its write %v, which it held evicted: no value dropped", h.c.Name(j), held.Time, v.Time)
			continue
		}
		h.countDeferred(0)
		h.model.superseded(t, h, h.c.Name(j), w, true)
	}
}

// countDeferred counts a deferred write judged at its writer (see
// Coverage.Deferred).
func (h *harness) countDeferred(which int) {
	if c := h.cfg.Coverage; c != nil {
		c.Deferred[which]++
	}
}

// keptAgain fails the run unless rec, a value member i wrote again over
// a peer's answer (AnswerKeeper), is the value and expiry of the newest
// write of its key this incarnation made before it: taken as a new write
// of its own only, a value written again changed, or made up, passed
// (found by review).
func (h *harness) keptAgain(t fataler, i int, rec crdt.Record) {
	var prev crdt.Record
	found := false
	for _, w := range h.model.writes {
		if w.Key == rec.Key && w.Time.Node == rec.Time.Node && w.Time.Less(rec.Time) && (!found || prev.Time.Less(w.Time)) {
			prev, found = w, true
		}
	}
	if !found || prev.Tombstone || rec.Tombstone || rec.Evicted || prev.Expires != rec.Expires || !bytes.Equal(prev.Value, rec.Value) {
		t.Fatalf("%s wrote %v again over an answer; its newest write of the key before was %v (found: %v)", h.c.Name(i), rec, prev, found)
	}
}
