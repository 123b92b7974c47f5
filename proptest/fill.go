package proptest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/clusterfill"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport"
	"pgregory.net/rapid"
)

// Source is what a cluster fill loads a missed key from: the database
// behind the cache. The Cluster owns it (see Cluster.SetSource), so the
// harness knows every value it gave and every error.
type Source func(key string) ([]byte, error)

// ClusterFiller is a Replica that fills a key it misses once in the
// cluster, as a Cache's GetOrFill does: it asks the key's owner, which
// loads the value from the Source, writes it (a write that replicates like
// any other) and answers with it. The harness's fill action calls Fill for
// a caller and checks, when the call ends, that the caller got a value a
// write gave the key, or the Source's error; never a version older than
// the one the member held when the call began (what it could already
// read); and, at the end of a run, that every call ended.
type ClusterFiller interface {
	Replica
	// SetSource sets the Source the member fills from.
	SetSource(Source)
	// Fill starts a fill of key for the caller numbered call and returns
	// the frames to send. The call ends later (a frame delivered, a Tick)
	// or at once.
	Fill(call int, key string) []transport.Envelope
	// Filled returns, and clears, the writes this member's fills made
	// (for its own callers and for peers that asked it), in the order it
	// made them, and the calls that ended.
	Filled() (wrote []crdt.Record, ended []FillResult)
}

// FillResult is how a fill call ended: with the record whose value the
// caller got, or an error.
type FillResult struct {
	Call   int
	Key    string
	Record crdt.Record
	Err    error
}

// fillTimeout is how long a Cache waits for an owner by default
// (Config.FillTimeout); StoreConfig.FillTimeout's zero selects it.
const fillTimeout = 10 * time.Second

// Call frames carry fill requests and answers between StoreReplicas over
// the simulated network, as a Cache's calls go beside the sync protocol:
// a zero byte (no protocol frame starts with one), a kind, an id, and the
// payload of package clusterfill.
const (
	callMarker  = 0
	callRequest = 1
	callReply   = 2
	// callResend is how long a call waits before it sends its request
	// again (then twice as long, up to a second), as a Cache's does.
	callResend = int64(100 * time.Millisecond)
)

func callFrame(kind byte, id uint64, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint64([]byte{callMarker, kind}, id)
	return append(b, payload...)
}

func parseCallFrame(b []byte) (kind byte, id uint64, payload []byte, ok bool) {
	if len(b) < 10 || b[0] != callMarker {
		return 0, 0, nil, false
	}
	return b[1], binary.LittleEndian.Uint64(b[2:10]), b[10:], true
}

// describeCall summarizes a call frame for the trace.
func describeCall(b []byte) string {
	kind, id, payload, ok := parseCallFrame(b)
	switch {
	case !ok:
		return "malformed call"
	case kind == callRequest && len(payload) > 0:
		return fmt.Sprintf("call %d: fill %q", id, payload[1:])
	case kind == callReply:
		return fmt.Sprintf("call %d: answer %q", id, payload)
	}
	return fmt.Sprintf("call %d of kind %d", id, kind)
}

// fillState is a StoreReplica's side of cluster fills.
type fillState struct {
	source  Source
	view    []string
	nextID  uint64
	waiting []*pendingFill
	out     []transport.Envelope // frames a fill's write queued
	wrote   []crdt.Record
	ended   []FillResult
	answer  *crdt.Record // the last record an owner answered
}

// pendingFill is a call waiting for the owner it asked.
type pendingFill struct {
	call       int
	ask        clusterfill.Ask
	peer       string
	id         uint64
	asked      int64 // when peer was asked
	sent, wait int64 // the last send of the request, and the wait after it
}

// SetSource implements ClusterFiller.
func (r *StoreReplica) SetSource(s Source) { r.fills.source = s }

// Filled implements ClusterFiller.
func (r *StoreReplica) Filled() ([]crdt.Record, []FillResult) {
	w, e := r.fills.wrote, r.fills.ended
	r.fills.wrote, r.fills.ended = nil, nil
	return w, e
}

// Fill implements ClusterFiller: a Cache's GetOrFill, with its timers run
// by Tick.
func (r *StoreReplica) Fill(call int, key string) []transport.Envelope {
	if _, ok := r.Get(key); ok {
		rec, _ := r.s.Lookup(key)
		r.end(call, key, rec, nil)
		return r.flush(nil)
	}
	return r.flush(r.ask(&pendingFill{call: call, ask: clusterfill.Ask{Key: key, Self: r.name}}))
}

// ask asks the next member for p's key, or fills it here.
func (r *StoreReplica) ask(p *pendingFill) []transport.Envelope {
	peer, _ := p.ask.Next(clusterfill.Owner(p.ask.Key, r.name, r.fills.view))
	if peer == "" {
		r.fillFor(p)
		return nil
	}
	r.fills.nextID++
	now := r.phys()
	p.peer, p.id, p.asked, p.sent, p.wait = peer, r.fills.nextID, now, now, callResend
	r.fills.waiting = append(r.fills.waiting, p)
	return []transport.Envelope{p.request()}
}

func (p *pendingFill) request() transport.Envelope {
	return transport.Envelope{To: p.peer, Payload: callFrame(callRequest, p.id, clusterfill.Request(clusterfill.FillRequest, p.ask.Key))}
}

// fillFor fills p's key here and ends the call.
func (r *StoreReplica) fillFor(p *pendingFill) {
	rec, err := r.fillHere(p.ask.Key)
	r.end(p.call, p.ask.Key, rec, err)
}

// fillHere loads key from the Source and writes it with the fill TTL,
// unless a live record is held: a Cache's fill on the member (for its own
// callers, or as the owner a peer asked), in one step (see StartFill for
// one held open).
func (r *StoreReplica) fillHere(key string) (crdt.Record, error) {
	if rec, ok := r.s.Lookup(key); ok && rec.Live(r.phys()) {
		return rec, nil
	}
	end, err := r.StartFill(key)
	if err != nil {
		return crdt.Record{}, err
	}
	e := end()
	r.fills.out = append(r.fills.out, e.Out...)
	if e.Stored {
		r.fills.wrote = append(r.fills.wrote, e.Record)
		return e.Record, nil
	}
	// The key changed while the filler ran (never in one step): as a
	// Cache, what is held if it is a value, else the value unstored.
	if rec, ok := r.s.Lookup(key); ok && rec.Live(r.phys()) {
		return rec, nil
	}
	return crdt.Record{Key: key, Value: e.Record.Value}, nil
}

// A SlowFiller is a ClusterFiller whose own fills can be held open: the
// harness's "slow fill" action starts one, lets the member apply frames
// and make writes while its filler runs, and then ends it. A Cache's fill
// stamps its value when its filler begins and stores it only if no record
// of the key was applied meanwhile (Store.WriteIfUnchanged): the action
// checks both (see the package doc). The harness's Source is not tied to
// the writes (no write changes what it loads), so when the Source is read
// within the fill's start is not checked.
type SlowFiller interface {
	ClusterFiller
	// StartFill begins a fill of key on the member, as a Cache's fill
	// does before it calls its filler, and loads the value from the
	// Source (a Source's error ends the fill at once: end is nil). end is
	// the filler returning: the value is written unless the key changed
	// since the fill began.
	StartFill(key string) (end func() FillEnd, err error)
}

// A FillEnd is how a fill that SlowFiller held open ended: the record it
// wrote (Stored) or would have, the stamp it took when its filler began,
// and the frames to send. A record stamped otherwise than Began was
// stamped again as it was written: a Cache does that only when a
// session's cut passed Began by its clock-skew margin (see
// Store.WriteIfUnchanged), which a clock pushed ahead by a peer's frame
// can do within a millisecond; the harness then checks it as a new write
// of the member's, newer than every one it made before, and, with a
// replica that implements Restamper, that the replica's protocol allowed
// it.
type FillEnd struct {
	Record crdt.Record
	Stored bool
	Began  crdt.Timestamp
	Out    []transport.Envelope
}

// A Restamper is a SlowFiller that tells when a fill's value may be
// stamped again as it is written, from its protocol's own records (not
// the store's: a store told to restamp every fill must be caught).
type Restamper interface {
	SlowFiller
	// MayRestamp reports whether a session's cut passed began by the
	// member's clock-skew margin.
	MayRestamp(began crdt.Timestamp) bool
}

// StartFill implements SlowFiller with the store's own fill rule, as
// Cache.fill composes it: the watch and the stamp are taken before the
// Source is read, the TTL runs from when the filler returns. (Unlike a
// Cache, it stores a value over the member's MaxValueSize, as the
// harness's other writes: see StoreConfig.)
func (r *StoreReplica) StartFill(key string) (func() FillEnd, error) {
	watch, since, v, err := r.beginFill(key)
	if err != nil {
		return nil, err
	}
	return func() FillEnd {
		defer r.s.EndFill(watch)
		rec := crdt.Record{Key: key, Value: v, Time: since, Expires: r.fillExpiry()}
		rec, stored, err := r.s.WriteIfUnchanged(rec, watch)
		if err != nil {
			panic(fmt.Sprintf("proptest: a fill's write to an open store failed: %v", err))
		}
		if !stored {
			return FillEnd{Record: rec, Began: since}
		}
		return FillEnd{Record: rec, Stored: true, Began: since, Out: r.node.Write(rec, r.phys())}
	}, nil
}

// MayRestamp implements Restamper: the protocol node reported a cut past
// began by the store's margin (what Store.WriteIfUnchanged asks of its
// Overtaken hook).
func (r *StoreReplica) MayRestamp(began crdt.Timestamp) bool {
	began.Wall = crdt.AddSat(began.Wall, r.skew)
	return r.node.Overtaken(began)
}

// beginFill starts a fill of key as Cache.fill does: the watch, the
// stamp, then the Source read (a Source error ends the watch).
func (r *StoreReplica) beginFill(key string) (store.FillWatch, crdt.Timestamp, []byte, error) {
	watch := r.s.WatchFill(key)
	since := r.clock.Now()
	v, err := r.load(key)
	if err != nil {
		r.s.EndFill(watch)
	}
	return watch, since, v, err
}

// load reads key from the Source, as a Cache's filler.
func (r *StoreReplica) load(key string) ([]byte, error) {
	if r.fills.source == nil {
		return nil, fmt.Errorf("bcache: fill %q: no source", key)
	}
	v, err := r.fills.source(key)
	if err != nil {
		return nil, fmt.Errorf("bcache: fill %q: %w", key, err)
	}
	return v, nil
}

// fillExpiry is the expiry of a value filled now: the fill TTL from the
// clock's reading now (as a Cache's fill takes it: a clock a peer pushed
// ahead puts it later; a Set takes the member's physical clock), or none.
func (r *StoreReplica) fillExpiry() int64 {
	if r.fillTTL > 0 {
		return crdt.AddSat(r.clock.Now().Wall, int64(r.fillTTL))
	}
	return 0
}

// end ends a call: the caller gets rec's value, or err.
func (r *StoreReplica) end(call int, key string, rec crdt.Record, err error) {
	res := FillResult{Call: call, Key: key, Err: err}
	if err == nil {
		res.Record = rec
	}
	r.fills.ended = append(r.fills.ended, res)
}

// served returns the record whose value v a caller got after taking an
// owner's answer: the live one held, or else the answer itself (which a
// correct member never serves when it does not hold it).
func (r *StoreReplica) served(key string, v []byte) crdt.Record {
	if rec, ok := r.s.Lookup(key); ok && rec.Live(r.phys()) && string(rec.Value) == string(v) {
		return rec
	}
	if a := r.fills.answer; a != nil && string(a.Value) == string(v) {
		return *a
	}
	return crdt.Record{Key: key, Value: v} // a version nobody wrote: the harness fails the run
}

// flush appends the frames the fills' writes queued to out.
func (r *StoreReplica) flush(out []transport.Envelope) []transport.Envelope {
	out = append(out, r.fills.out...)
	r.fills.out = nil
	return out
}

// receiveCall handles a call frame from a peer.
func (r *StoreReplica) receiveCall(from string, b []byte) []transport.Envelope {
	kind, id, payload, ok := parseCallFrame(b)
	if !ok {
		return nil
	}
	switch kind {
	case callRequest:
		var fill func(string) (crdt.Record, error) // a member without a source cannot fill: the asker fills, as with a Cache
		if r.fills.source != nil {
			fill = r.fillHere
		}
		answer := clusterfill.Serve(fillMember{r}, payload, math.MaxUint16, fill, func(error) clusterfill.Failure { return clusterfill.Failed })
		return r.flush([]transport.Envelope{{To: from, Payload: callFrame(callReply, id, answer)}})
	case callReply:
		if r.marksAnswer(from, id, payload) {
			return nil
		}
		i := slices.IndexFunc(r.fills.waiting, func(p *pendingFill) bool { return p.id == id && p.peer == from })
		if i < 0 { // late, a duplicate, or not asked of this peer
			return nil
		}
		p := r.fills.waiting[i]
		r.fills.waiting = slices.Delete(r.fills.waiting, i, i+1)
		var out []transport.Envelope
		r.fills.answer = nil
		switch v, err, o := p.ask.Take(fillMember{r}, payload); o {
		case clusterfill.Done:
			r.end(p.call, p.ask.Key, r.served(p.ask.Key, v), err)
		case clusterfill.FillHere:
			r.fillFor(p)
		case clusterfill.AskNext:
			out = r.ask(p)
		}
		return r.flush(out)
	}
	return nil
}

// tickFills runs the fills' timers: a call whose owner left the view, or
// that waited a fill timeout, asks the next member (or fills here); the
// others send their request again when their wait is up.
func (r *StoreReplica) tickFills() []transport.Envelope {
	var out []transport.Envelope
	now := r.phys()
	waiting := r.fills.waiting
	r.fills.waiting = nil
	for _, p := range waiting {
		switch {
		case clusterfill.Owner(p.ask.Key, r.name, r.fills.view) != p.peer, now-p.asked >= int64(r.fillTimeout+min(r.fillTimeout, time.Second)): // as a Cache's forward waits
			out = append(out, r.ask(p)...)
		case now-p.sent >= p.wait:
			p.sent, p.wait = now, min(2*p.wait, int64(time.Second))
			out = append(out, p.request())
			r.fills.waiting = append(r.fills.waiting, p)
		default:
			r.fills.waiting = append(r.fills.waiting, p)
		}
	}
	return r.flush(out)
}

// fillMember is a StoreReplica as the fill rules see it.
type fillMember struct{ r *StoreReplica }

func (m fillMember) Lookup(key string) (crdt.Record, bool) { return m.r.s.Lookup(key) }

// Marks answers a peer's ask for the replica's watermarks (marks.go).
func (m fillMember) Marks() ([]store.Mark, bool) { return m.r.s.Marks(), m.r.marksComplete() }

// Receive applies a record an owner answered as a Cache does: through the
// clock's drift check, as a received record, or put back on an evicted
// stub of its version; and returns what the caller gets then.
// StoreConfig.Answer, if set, stands between the answer and the caller.
func (m fillMember) Receive(rec crdt.Record) ([]byte, bool) {
	m.r.fills.answer = &rec
	if m.r.answerRule != nil {
		return m.r.answerRule(rec, m.r.receive)
	}
	return m.r.receive(rec)
}

func (r *StoreReplica) receive(rec crdt.Record) ([]byte, bool) {
	now := r.phys()
	taken := r.s.Oversized(rec)
	if r.clock.Update(rec.Time) == nil {
		switch r.rejects.Apply(rec, false, now) {
		case crdt.Applied:
			taken = true
		case crdt.Stale:
			taken = r.s.Refill(rec, now) == crdt.Applied || taken
		}
	}
	held, ok := r.s.Lookup(rec.Key)
	return clusterfill.Served(held, ok, rec, taken, now)
}

// fillCall is a fill call the harness made and that has not ended.
type fillCall struct {
	member int
	key    string
	held   *crdt.Version // the version the member held when the call began
}

// sourceOutage is the error the harness's Source gives for a key it has
// no value for.
const sourceOutage = "source outage"

// source is the harness's Source: a value unique to each load, or an
// error while the key's outage lasts.
func (h *harness) source(key string) ([]byte, error) {
	if n := h.outages[key]; n > 0 {
		return nil, fmt.Errorf("%s %d for %q", sourceOutage, n, key)
	}
	h.loads++
	h.lastLoad = fmt.Appendf(nil, "%s=fill%d", key, h.loads)
	return h.lastLoad, nil
}

// fill makes a fill call on a live member for a key.
func (h *harness) fill(t *rapid.T) {
	i := h.live(t, "member")
	f, ok := h.c.Replica(i).(ClusterFiller)
	if !ok {
		t.Skip("the replica cannot fill")
	}
	key := h.key(t)
	h.nextCall++
	call := &fillCall{member: i, key: key}
	for _, rec := range f.Records() {
		if rec.Key == key {
			v := rec.Version()
			call.held = &v
		}
	}
	h.calls[h.nextCall] = call
	event(t, "call %d: %s gets or fills %q", h.nextCall, h.c.Name(i), key)
	h.c.send(i, f.Fill(h.nextCall, key))
}

// outage starts or ends the Source's outage for a key.
func (h *harness) outage(t *rapid.T) {
	key := h.key(t)
	if h.outages[key] > 0 {
		event(t, "the source has %q again", key)
		delete(h.outages, key)
		return
	}
	h.outageN++
	h.outages[key] = h.outageN
	event(t, "the source loses %q (outage %d)", key, h.outageN)
}

// filled takes what member i's fills did since the last check: the writes
// they made become the model's, and the calls that ended wait for
// checkCalls, which runs once every member's writes are known. So do the
// values it wrote again over a peer's answer (AnswerKeeper).
func (h *harness) filled(t fataler, i int) {
	if k, ok := h.c.Replica(i).(AnswerKeeper); ok {
		for _, rec := range k.Kept() { // written again over an answer (store.KeepAnswered)
			h.keptAgain(t, i, rec)
			h.issued(t, i, rec)
		}
	}
	f, ok := h.c.Replica(i).(ClusterFiller)
	if !ok {
		return
	}
	wrote, ended := f.Filled()
	for _, rec := range wrote {
		h.issued(t, i, rec)
	}
	for _, res := range ended {
		h.ended = append(h.ended, endedCall{i, res})
	}
}

// endedCall is a call that ended on a member.
type endedCall struct {
	member int
	FillResult
}

// checkCalls checks the calls that ended: each must have given its caller
// a value some write gave the key (with that write's version), not older
// than the version the member held when the call began, or the Source's
// error.
func (h *harness) checkCalls(t fataler) {
	for _, res := range h.ended {
		i := res.member
		call, ok := h.calls[res.Call]
		if !ok || call.member != i || call.key != res.Key {
			t.Fatalf("%s ended call %d for %q, which it was not making", h.c.Name(i), res.Call, res.Key)
		}
		delete(h.calls, res.Call)
		if res.Err != nil {
			logEvent(t, "call %d ends on %s: %v", res.Call, h.c.Name(i), res.Err)
			// The outage of its key: another key's is an answer to
			// another call (found by review).
			if !outageOf(res.Err.Error(), res.Key) {
				t.Fatalf("call %d for %q on %s failed with %q: no outage of the source explains it", res.Call, res.Key, h.c.Name(i), res.Err)
			}
			h.fillErrors++
			continue
		}
		rec := res.Record
		logEvent(t, "call %d ends on %s: %q at %v", res.Call, h.c.Name(i), rec.Value, rec.Time)
		w, known := h.model.known[rec.Version()]
		forged := h.adv != nil && rec.Time.Node == adversaryID
		if !known && forged { // accepted, and gone again in the same step
			h.model.write(rec)
			w, known = rec, true
		}
		// The adversary may send one version with different values to
		// different members: what a call got must be one of them.
		switch {
		case !known || rec.Key != res.Key || !forged && (w.Tombstone || !bytes.Equal(w.Value, rec.Value)) ||
			forged && (rec.Tombstone || !h.adv.sentAs(rec)):
			t.Fatalf("call %d for %q on %s got %v, which no write gave the key", res.Call, res.Key, h.c.Name(i), rec)
		case call.held != nil && rec.Time.Less(call.held.Time):
			t.Fatalf("call %d for %q on %s got %q at %v, older than the version it held when the call began (%v)",
				res.Call, res.Key, h.c.Name(i), rec.Value, rec.Time, *call.held)
		}
		h.fillValues++
	}
	h.ended = h.ended[:0]
}

// outageOf reports whether text, a call's error, is the Source's outage
// of key: the outage, then "for" and the key quoted, which an owner's
// answer may cut short at clusterfill.MaxErrorText bytes ("..." at its
// end: a long key's was taken for another key's, and a correct replica
// failed; found by review).
func outageOf(text, key string) bool {
	i := strings.Index(text, sourceOutage)
	if i < 0 {
		return false
	}
	_, named, ok := strings.Cut(text[i+len(sourceOutage):], " for ")
	want := fmt.Sprintf("%q", key)
	if ok && strings.HasPrefix(named, want) {
		return true
	}
	cut, clipped := strings.CutSuffix(text, "...")
	if !clipped {
		return false
	}
	if !ok { // cut before the key: what is left of " N for "
		return true
	}
	_, named, _ = strings.Cut(cut[i+len(sourceOutage):], " for ")
	return strings.HasPrefix(want, named)
}

// forgetCalls drops the calls of member i, which went down with it.
func (h *harness) forgetCalls(i int) {
	for n, call := range h.calls {
		if call.member == i {
			delete(h.calls, n)
		}
	}
}

// endCalls lets the calls still waiting end after the heal: time moves on
// by steps of five seconds (a fill timeout is 10 s by default), timers
// run and everything is delivered, up to a minute. A call still waiting
// then has a caller that never gets an answer.
func (h *harness) endCalls(t *rapid.T) {
	for step := 0; len(h.calls) > 0; step++ {
		if step == 12 {
			for _, n := range slices.Sorted(maps.Keys(h.calls)) { // in order: a failure says the same at each replay
				call := h.calls[n]
				t.Fatalf("call %d for %q on %s has not ended a minute after the heal", n, call.key, h.c.Name(call.member))
			}
		}
		h.c.Advance(5 * time.Second)
		event(t, "time moves on 5s for the calls still waiting")
		h.c.Tick()
		h.deliverAll(t, "deliver all")
		h.check(t)
	}
}

// slowFill starts a fill on a live member for its own caller (replicas
// that implement SlowFiller), lets the member apply frames in flight to it
// and make writes of its own, to the key and to others, while the filler
// runs, and then lets the filler return. The fill must store nothing if a
// record of its key was applied at the member meanwhile (its value was
// read before that change, and a write stamped by a clock behind would
// otherwise lose to it), and what it stores must be stamped before every
// write the member made meanwhile: stamped when its filler began, it
// loses, on every member, to every write made after that by a clock not
// behind, however late that write arrives; or, stamped again as it is
// written (FillEnd.Restamped), newer than every write the member made
// before. Off by default (weight 0).
func (h *harness) slowFill(t *rapid.T) {
	i := h.live(t, "member")
	f, ok := h.c.Replica(i).(SlowFiller)
	if !ok {
		t.Skip("the replica cannot hold a fill open")
	}
	key, name := h.key(t), h.c.Name(i)
	end, err := f.StartFill(key)
	if err != nil {
		event(t, "%s's fill of %q fails: %v", name, key, err)
		if !strings.Contains(err.Error(), sourceOutage) {
			t.Fatalf("%s's fill of %q failed with %q: no outage of the source explains it", name, key, err)
		}
		return
	}
	loaded := h.lastLoad
	event(t, "%s's filler of %q begins: it read %q", name, key, loaded)
	before, _ := h.versionAt(i, key)
	var changed string     // what changed the key while the filler ran
	var made []crdt.Record // the writes the member made meanwhile
	for n := rapid.IntRange(0, 4).Draw(t, "while the filler runs"); n > 0; n-- {
		switch rapid.IntRange(0, 2).Draw(t, "meanwhile") {
		case 0: // the member applies a frame
			var mine []int
			for p, pk := range h.c.Net.InFlight() {
				if pk.To == name {
					mine = append(mine, p)
				}
			}
			if len(mine) > 0 {
				h.deliverOne(t, rapid.SampledFrom(mine).Draw(t, "frame to the filling member"))
				h.filled(t, i) // a fill it served for a peer wrote before what it writes next
			}
		case 1: // a write of its own, racing the filler
			k := h.key(t)
			var rec crdt.Record
			var out []transport.Envelope
			prior, ok := h.newestHeld(i, k)
			if rapid.Bool().Draw(t, "delete") {
				rec, out = h.c.Replica(i).Delete(k)
				h.wroteOver(t, i, rec, crdt.Record{Key: k, Tombstone: true}, prior, ok)
			} else {
				value := fmt.Appendf(nil, "%s=%d", k, len(h.model.writes))
				rec, out = h.c.Replica(i).Set(k, value, 0)
				h.wroteOver(t, i, rec, crdt.Record{Key: k, Value: value}, prior, ok)
			}
			h.c.send(i, out)
			made = append(made, rec)
			if k == key && changed == "" {
				changed = fmt.Sprintf("its own write %v", rec)
			}
		case 2:
			event(t, "time moves on 1ms while the filler runs")
			h.c.Advance(time.Millisecond)
		}
	}
	if after, _ := h.versionAt(i, key); changed == "" && after != before {
		changed = fmt.Sprintf("%v, received (it held %v)", after, before)
	}
	e := end()
	h.c.send(i, e.Out)
	for _, w := range made {
		if !e.Began.Less(w.Time) {
			t.Fatalf("%s's fill of %q began at %v, not before %v, a write it made while the filler ran: a fill is stamped when its filler begins", name, key, e.Began, w)
		}
	}
	if !e.Stored {
		if changed == "" {
			t.Fatalf("%s's fill of %q stored nothing, and nothing changed the key while its filler ran", name, key)
		}
		event(t, "%s's filler of %q returns; the key changed meanwhile, nothing stored", name, key)
		h.slowFills[1]++
		return
	}
	rec := e.Record
	if changed != "" {
		t.Fatalf("%s's fill of %q stored %v over a change of the key applied while its filler ran: %s", name, key, rec, changed)
	}
	h.asked(t, i, rec, crdt.Record{Key: key, Value: loaded, Expires: rec.Expires})
	if rec.Time == e.Began {
		h.applied(t, i, rec) // stamped before what the member issued since
		h.slowFills[0]++
		return
	}
	if r, ok := f.(Restamper); ok && !r.MayRestamp(e.Began) {
		t.Fatalf("%s's fill of %q began at %v and is stamped %v, though no session's cut passed its stamp by the member's margin", name, key, e.Began, rec.Time)
	}
	event(t, "%s's fill of %q is stamped again as it is written (a session's cut passed its stamp)", name, key)
	h.issued(t, i, rec)
	h.slowFills[0]++
}

// versionAt returns the version member i holds of key, if any.
func (h *harness) versionAt(i int, key string) (crdt.Version, bool) {
	for _, rec := range h.c.Replica(i).Records() {
		if rec.Key == key {
			return rec.Version(), true
		}
	}
	return crdt.Version{}, false
}
