package proptest

import (
	"bytes"
	"cmp"
	"math"
	"slices"
	"time"
	"unsafe"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/sim"
	"github.com/bcache-go/bcache/transport/wire"
	"pgregory.net/rapid"
)

// The adversary is a member that holds the cluster key and is buggy or
// hostile: it sends well-formed frames with field values of its choosing
// (records stamped at the int64 limits or just inside the clock drift,
// forged sessions, tokens and steps, rejections of others' records),
// claims other members' names, and replays frames it captured. It may
// write (the key allows that): the records it gets an honest member to
// hold are writes of its own in the model. What it must never do is make
// an honest member lose or resurrect a record it did not overwrite, or go
// back on a version; the harness's checks are the same as without it.
//
// A rejection it forges is a tombstone it writes (rejections are answered
// with tombstones, package lww, rule 3).

// adversaryName is the outsider's member name.
const adversaryName = "x"

// adversaryID is the node id on the adversary's own timestamps.
const adversaryID = crdt.NodeID(0xbad)

type adversary struct {
	h *harness
	// heard is the latest session state seen in frames between the
	// adversary and each honest member, to answer with.
	heard map[string]wire.Session
	// pool holds frames captured in flight, to replay.
	pool []sim.Packet
	// sent holds the frames the adversary sent (their payloads' first
	// bytes, which its frames' duplicates share): a member may refuse
	// those, and no others.
	sent map[*byte]bool
	// copies holds every record the adversary made, by version: it may
	// send one version with different values to different members, but
	// what a member holds of it must be one of them.
	copies map[crdt.Version][]crdt.Record
}

func newAdversary(h *harness) *adversary {
	a := &adversary{h: h, heard: map[string]wire.Session{}, sent: map[*byte]bool{}, copies: map[crdt.Version][]crdt.Record{}}
	h.c.AddOutsider(adversaryName, a.hear)
	return a
}

// hear notes the session of a frame an honest member sent the adversary.
func (a *adversary) hear(p sim.Packet) {
	m, err := wire.NewCodec(wire.Limits{}).Decode(p.Payload)
	if err != nil {
		return
	}
	switch m := m.(type) {
	case *wire.Digest:
		a.heard[p.From] = m.Session
	case *wire.Versions:
		a.heard[p.From] = m.Session
	case *wire.Repair:
		a.heard[p.From] = m.Session
	case *wire.Reject:
		a.heard[p.From] = m.Session
	}
}

// attack runs a whole session against a live member it can reach: it
// opens one with a made-up digest, takes the member's reply (and with it
// the member's token) at once, and answers with a Repair carrying forged
// records and tombstones answering records the member holds.
func (a *adversary) attack(t *rapid.T) {
	to := a.h.live(t, "target")
	name := a.h.c.Name(to)
	if !a.h.c.Net.Connected(adversaryName, name) {
		t.Skip("the target is out of reach")
	}
	open := &wire.Digest{Session: wire.Session{ID: rapid.Uint64Range(1, 3).Draw(t, "session id"), Step: 1},
		Level: 1, Parents: []uint32{0}, Hashes: make([]uint64, crdt.Fanout)}
	var token uint64
	for _, e := range a.h.c.Replica(to).Receive(adversaryName, a.encode(t, open)) {
		if m, err := wire.NewCodec(wire.Limits{}).Decode(e.Payload); err == nil && e.To == adversaryName {
			if d, ok := m.(*wire.Digest); ok {
				token = d.Token
			}
		}
	}
	if token == 0 {
		t.Skip("the member did not answer")
	}
	repair := &wire.Repair{Session: wire.Session{ID: open.ID, Token: token, Step: 2},
		Records: append(a.records(t, to), a.answers(t, to)...), Final: rapid.Bool().Draw(t, "final")}
	a.h.c.send(to, a.h.c.Replica(to).Receive(adversaryName, a.encode(t, repair)))
}

func (a *adversary) encode(t *rapid.T, m wire.Message) []byte {
	frame, err := wire.NewCodec(wire.Limits{}).Encode(nil, m)
	if err != nil {
		t.Fatalf("encode a well-formed %T: %v", m, err)
	}
	return frame
}

// capture copies a frame in flight into the pool.
func (a *adversary) capture(t *rapid.T) {
	p := a.h.c.Net.InFlight()[a.h.packet(t)]
	if len(a.pool) >= 32 {
		a.pool = a.pool[1:]
	}
	a.pool = append(a.pool, p)
}

// replay sends a captured frame again, from its sender, to its receiver or
// another member.
func (a *adversary) replay(t *rapid.T) {
	if len(a.pool) == 0 {
		t.Skip("nothing captured")
	}
	p := rapid.SampledFrom(a.pool).Draw(t, "captured")
	to := p.To
	if rapid.Bool().Draw(t, "elsewhere") {
		to = a.h.c.Name(a.h.live(t, "to"))
	}
	a.send(p.From, transport.Envelope{To: to, Kind: p.Kind, Payload: bytes.Clone(p.Payload)})
}

// forge sends a live member one frame of the adversary's making, as itself
// or as another member.
func (a *adversary) forge(t *rapid.T) {
	to := a.h.live(t, "target")
	from := adversaryName
	if rapid.IntRange(0, 3).Draw(t, "claim another name") == 0 {
		from = a.h.c.Name(rapid.IntRange(0, a.h.c.Size()-1).Draw(t, "claimed"))
	}
	var m wire.Message
	switch rapid.IntRange(0, 4).Draw(t, "forged kind") {
	case 0:
		m = &wire.Delta{Origin: rapid.SampledFrom([]string{"", adversaryName, a.h.c.Name(to)}).Draw(t, "origin"),
			OriginID: crdt.NodeID(rapid.Uint64().Draw(t, "origin id")), Seq: rapid.Uint64Range(0, 70).Draw(t, "seq"),
			Records: a.records(t, to)}
	case 1:
		d := &wire.Digest{Session: a.session(t, to), Level: uint8(rapid.IntRange(0, 2).Draw(t, "level"))}
		if d.Level > 0 && rapid.Bool().Draw(t, "hashes") {
			d.Parents = []uint32{0}
			d.Hashes = make([]uint64, crdt.Fanout)
			for i := range d.Hashes {
				d.Hashes[i] = rapid.Uint64().Draw(t, "hash")
			}
		}
		m = d
	case 2:
		leaf := rapid.Uint32Range(0, 1<<16).Draw(t, "leaf")
		m = &wire.Versions{Session: a.session(t, to), Leaves: []uint32{leaf}, Counts: []uint32{0}}
	case 3:
		m = &wire.Repair{Session: a.session(t, to), Records: append(a.records(t, to), a.answers(t, to)...),
			Final: rapid.Bool().Draw(t, "final"), Truncated: rapid.Bool().Draw(t, "truncated")}
	default:
		m = &wire.Reject{Session: a.session(t, to), Records: a.answers(t, to)}
	}
	frame, err := wire.NewCodec(wire.Limits{}).Encode(nil, m)
	if err != nil {
		t.Skip("not a well-formed frame")
	}
	a.send(from, transport.Envelope{To: a.h.c.Name(to), Kind: m.Kind(), Payload: frame})
}

// send puts a frame of the adversary's in flight, as from, and notes it
// as the adversary's.
func (a *adversary) send(from string, e transport.Envelope) {
	a.sent[unsafe.SliceData(e.Payload)] = true
	a.h.c.Net.Send(from, []transport.Envelope{e})
}

// sentFrame reports whether p is a frame the adversary sent (or a
// duplicate of one).
func (a *adversary) sentFrame(p sim.Packet) bool {
	return a != nil && a.sent[unsafe.SliceData(p.Payload)]
}

// made notes records the adversary made, to send.
func (a *adversary) made(recs []crdt.Record) {
	for _, r := range recs {
		r.Value = bytes.Clone(r.Value)
		a.copies[r.Version()] = append(a.copies[r.Version()], r)
	}
}

// sentAs reports whether rec, a record of one of the adversary's versions
// that a member holds or served, is as the adversary made it: its value
// and expiry, unless it is a delete (which keeps neither), and its value
// only if the member holds one (not evicted).
func (a *adversary) sentAs(rec crdt.Record) bool {
	for _, c := range a.copies[rec.Version()] {
		if rec.Tombstone || c.Expires == rec.Expires && (rec.Evicted || !c.Evicted && bytes.Equal(c.Value, rec.Value)) {
			return true
		}
	}
	return false
}

// session draws the session a forged anti-entropy message claims: the one
// last heard or sent with the target, stepped or not, with its token or
// one of the adversary's (the first reply of a session it answers sets
// the token), or one made up, often the first step of a new one.
func (a *adversary) session(t *rapid.T, to int) wire.Session {
	name := a.h.c.Name(to)
	s, ok := a.heard[name]
	switch {
	case !ok || rapid.IntRange(0, 3).Draw(t, "made-up session") == 0:
		s = wire.Session{ID: rapid.Uint64Range(1, 3).Draw(t, "session id"), Step: 1}
		if rapid.Bool().Draw(t, "odd fields") {
			s.Token, s.Step = rapid.Uint64Range(0, 3).Draw(t, "token"), uint32(rapid.IntRange(0, 3).Draw(t, "step"))
		}
	default:
		s.Step += uint32(rapid.IntRange(0, 2).Draw(t, "step ahead"))
		if s.Token == 0 || rapid.IntRange(0, 5).Draw(t, "own token") == 0 {
			s.Token = rapid.Uint64Range(1, 3).Draw(t, "token")
		}
	}
	a.heard[name] = s
	return s
}

// records draws up to three records of the alphabet's keys, stamped around
// the target's clock: long before it, just inside or beyond the drift it
// accepts, or at the int64 limits; with expiries at the extremes too.
func (a *adversary) records(t *rapid.T, to int) []crdt.Record {
	now := a.h.c.Phys(to)
	drift, horizon := int64(a.h.cfg.MaxDrift), int64(a.h.cfg.Horizon)
	walls := []int64{now - 2*horizon, now - horizon, now - int64(time.Second), now, now + drift - int64(time.Millisecond),
		now + drift + int64(time.Millisecond), math.MaxInt64, math.MinInt64 + 1}
	var recs []crdt.Record
	for range rapid.IntRange(0, 3).Draw(t, "records") {
		r := crdt.Record{Key: a.h.key(t), Time: crdt.Timestamp{
			Wall: rapid.SampledFrom(walls).Draw(t, "wall"), Logical: rapid.Uint32().Draw(t, "logical"), Node: adversaryID,
		}}
		r.Expires = rapid.SampledFrom([]int64{0, 0, 1, r.Time.Wall - 1, crdt.AddSat(r.Time.Wall, int64(time.Second)),
			math.MaxInt64, math.MinInt64}).Draw(t, "expires")
		switch rapid.IntRange(0, 3).Draw(t, "record kind") {
		case 0:
			r.Tombstone = true
		case 1:
			r.Evicted = true
		default:
			r.Value = []byte(rapid.SampledFrom([]string{"", "x", "forged-by-x"}).Draw(t, "value"))
		}
		recs = append(recs, r)
	}
	a.made(recs)
	return recs
}

// answers draws tombstones for keys the target holds, as a forged answer
// to a rejection: just above the record held, or at the extremes. They are
// stamped with the adversary's own node id: they are its writes. (A member
// holding the key could stamp them with node 0, as honest answers are;
// that is a delete it writes all the same, and the harness checks honest
// answers by their node id.)
func (a *adversary) answers(t *rapid.T, to int) []crdt.Record {
	held := a.h.c.Replica(to).Records()
	slices.SortFunc(held, func(a, b crdt.Record) int { return cmp.Compare(a.Key, b.Key) }) // a replay draws the same
	var out []crdt.Record
	for range rapid.IntRange(0, 3).Draw(t, "answers") {
		if len(held) == 0 {
			break
		}
		r := rapid.SampledFrom(held).Draw(t, "victim")
		wall := rapid.SampledFrom([]int64{crdt.AddSat(r.Time.Wall, 1), math.MinInt64 + 1, math.MaxInt64}).Draw(t, "answer wall")
		out = append(out, crdt.Record{Key: r.Key, Tombstone: true, Time: crdt.Timestamp{Wall: wall, Node: adversaryID}})
	}
	a.made(out)
	return out
}
