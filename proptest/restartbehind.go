package proptest

import (
	"fmt"
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
	deleted := rapid.SliceOfNDistinct(rapid.SampledFrom(h.cfg.Keys), 0, 3, rapid.ID[string]).Draw(t, "deleted")
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
	if !ok || h.c.Down(j) || h.c.members[j].id != n.Time.Node {
		return false
	}
	r := h.c.Replica(j)
	fk, ok := r.(FileKeeper)
	_, keeper := r.(AnswerKeeper)
	return ok && keeper && !fk.KeepsFiles()
}
