package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// Regression tests for frames a member holding the cluster key could send:
// well-formed, with field values an honest member never sends. Each
// reproduces a case a review found (numbered as in the no-loss issue).

func encode(t *testing.T, m wire.Message) []byte {
	t.Helper()
	frame, err := wire.NewCodec(wire.Limits{}).Encode(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// TestOutOfSessionDigestDoesNotMarkSynced (item 3): an empty Digest sent
// outside any session used to mark a member that had never synced as
// synced at now, and an Echo field of the peer's choosing set the mark
// (MaxInt64 pinned it for the life of the process). The mark is now only
// ever this member's own time at the start of an exchange it took part in
// from the first step.
func TestOutOfSessionDigestDoesNotMarkSynced(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	forged := []wire.Message{
		&wire.Digest{Session: wire.Session{ID: 1, Step: 1}, Level: 1},
		&wire.Digest{Session: wire.Session{ID: 1, Token: 7, Step: 3}, Level: 2},
		&wire.Digest{Session: wire.Session{ID: 1, Step: 2}, Level: 2},
		&wire.Repair{Session: wire.Session{ID: 1, Token: 7, Step: 4}, Final: true},
	}
	for _, m := range forged {
		if out, err := n.nodes["a"].Receive("b", encode(t, m), n.now.Now()); err != nil || len(out) != 0 {
			t.Fatalf("%T: answered %v, %v", m, out, err)
		}
	}
	if got := n.reps["a"].synced; got != 0 {
		t.Fatalf("forged frames marked the replica synced at %d", got)
	}
	// A real exchange that moves something marks both sides at their own
	// start (one in step, only its initiator: see
	// TestForgedOpeningCompletesNothing).
	n.reps["b"].recs["k"] = crdt.Record{Key: "k", Value: []byte("v"), Time: crdt.Timestamp{Wall: 1, Node: 2}}
	start := n.now.Now()
	n.pump("b", n.nodes["b"].StartSession("a", start))
	if n.reps["a"].synced != start || n.reps["b"].synced != start {
		t.Fatalf("after an exchange: a synced at %d, b at %d; want %d", n.reps["a"].synced, n.reps["b"].synced, start)
	}
}

// lossyNet delivers frames one at a time, in order, letting a test drop or
// duplicate each.
type lossyNet struct {
	*testNet
	fate func(i int, e Envelope) int // copies to deliver: 0 drops, 2 duplicates
}

func (n *lossyNet) run(from string, envs []Envelope) {
	type hop struct {
		from string
		e    Envelope
	}
	var queue []hop
	for _, e := range envs {
		queue = append(queue, hop{from, e})
	}
	for i := 0; len(queue) > 0; i++ {
		h := queue[0]
		queue = queue[1:]
		for range n.fate(i, h.e) {
			out, _ := n.nodes[h.e.To].Receive(h.from, h.e.Payload, n.now.Now())
			for _, e := range out {
				queue = append(queue, hop{h.e.To, e})
			}
		}
	}
}

// TestDuplicatedRepairDoesNotEndTheSessionEarly (item 5): a Repair did not
// say which step it answered; delivering the responder's first Repair three
// times and dropping the later Versions marked the initiator synced while
// it held a fraction of the peer's records. Every reply now names the step
// it answers, and a duplicate is ignored.
func TestDuplicatedRepairDoesNotEndTheSessionEarly(t *testing.T) {
	n := &lossyNet{testNet: newTestNet(t, 8, Config{LeavesPerStep: 2}, "a", "b")}
	for i := range 60 {
		r := crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 2}}
		n.reps["b"].recs[r.Key] = r
	}
	repairs := 0
	n.fate = func(_ int, e Envelope) int {
		switch {
		case e.Kind == wire.KindRepair && e.To == "a":
			if repairs++; repairs == 1 {
				return 3
			}
		case e.Kind == wire.KindVersions && repairs > 0:
			return 0
		}
		return 1
	}
	n.run("a", n.nodes["a"].StartSession("b", n.now.Now()))
	if n.reps["a"].synced != 0 {
		t.Fatalf("a holds %d of b's 60 records and counts itself synced", len(n.reps["a"].recs))
	}
	if s := n.nodes["a"].Stats(); s.Stray < 2 || s.SessionsCompleted != 0 {
		t.Fatalf("stray %d, completed %d; want the two duplicates ignored and no completion", s.Stray, s.SessionsCompleted)
	}
}

// TestRequestsFromOutsideASessionAreNotAnswered (item 10): a frame naming
// another member as its sender made this one send that member whatever the
// frame asked for (20 datagrams of 851 bytes made m0 send m1 73 MB). Now
// only a session's first Digest is answered without the responder's token,
// with at most one level of hashes, and frames from non-members not at all.
func TestRequestsFromOutsideASessionAreNotAnswered(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	for i := range 200 {
		r := crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: make([]byte, 100), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}}
		n.reps["a"].recs[r.Key] = r
	}
	all := make([]uint32, 256)
	for i := range all {
		all[i] = uint32(i)
	}
	asks := []struct {
		from string
		m    wire.Message
	}{
		{"b", &wire.Versions{Session: wire.Session{ID: 9, Step: 2}, Leaves: all, Counts: make([]uint32, 256)}},
		{"b", &wire.Versions{Session: wire.Session{ID: 9, Token: 12345, Step: 2}, Leaves: all, Counts: make([]uint32, 256)}},
		{"stranger", &wire.Digest{Session: wire.Session{ID: 9, Step: 1}, Level: 1, Parents: []uint32{0}, Hashes: make([]uint64, 16)}},
	}
	for _, a := range asks {
		if out, _ := n.nodes["a"].Receive(a.from, encode(t, a.m), n.now.Now()); len(out) != 0 {
			t.Fatalf("%T from %s: answered with %d frames", a.m, a.from, len(out))
		}
	}
	first := &wire.Digest{Session: wire.Session{ID: 9, Step: 1}, Level: 1, Parents: []uint32{0}, Hashes: make([]uint64, 16)}
	out, _ := n.nodes["a"].Receive("b", encode(t, first), n.now.Now())
	if len(out) != 1 || len(out[0].Payload) > 2200 {
		t.Fatalf("a session's first digest: %d frames, want one of at most one level of hashes", len(out))
	}
	if again, _ := n.nodes["a"].Receive("b", encode(t, first), n.now.Now()); len(again) != 0 {
		t.Fatal("the same first digest was answered twice")
	}
}

// TestRepeatedListsAreRefused (item 9): a Versions message listing one leaf
// 200,000 times cost the responder 689 MB and 2.9 s under the node lock;
// a Digest repeating one parent 150,000 times, 2.1 GB and 11.3 s. Lists
// must now be strictly ascending (and leaves at most
// wire.MaxLeavesPerStep): such frames are refused before any work.
func TestRepeatedListsAreRefused(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	versions := func(leaves int) []byte {
		var b bytes.Buffer
		b.Write([]byte{wire.WireVersion, byte(wire.KindVersions), 0x96, 0x01, 0x00, 0x02})
		blob := func(n, each int) {
			b.WriteByte(0xc6)
			b.Write(binary.BigEndian.AppendUint32(nil, uint32(n*each)))
			b.Write(make([]byte, n*each))
		}
		blob(leaves, 4) // leaves: leaf 0, repeated
		blob(leaves, 4) // counts: none
		blob(0, 29)     // versions
		return b.Bytes()
	}
	digest := func(parents int) []byte {
		var b bytes.Buffer
		b.Write([]byte{wire.WireVersion, byte(wire.KindDigest), 0x96, 0x01, 0x00, 0x01, 0x02})
		b.WriteByte(0xc6)
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(4*parents)))
		b.Write(make([]byte, 4*parents)) // parent 0, repeated
		b.WriteByte(0xc6)
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(8*16*parents)))
		b.Write(make([]byte, 8*16*parents))
		return b.Bytes()
	}
	calls := 0
	n.reps["a"].onAppend = func() { calls++ }
	for name, frame := range map[string][]byte{"versions": versions(200_000), "digest": digest(150_000)} {
		if out, err := n.nodes["a"].Receive("b", frame, n.now.Now()); err == nil || len(out) != 0 {
			t.Fatalf("%s with a repeated list: %v, %d frames; want refused", name, err, len(out))
		}
	}
	if calls != 0 {
		t.Fatalf("the replica was asked %d times for versions or hashes", calls)
	}
	if s := n.nodes["a"].Stats(); s.RejectedMalformed+s.RejectedTooLarge != 2 {
		t.Fatalf("rejected %+v, want the two frames counted", s)
	}
}

// TestRejectOutsideASessionIsIgnored: a Reject used to make the receiver
// forget whatever versions it listed, whenever it came. It now counts only
// as the answer to a step of this member's own session with its sender.
func TestRejectOutsideASessionIsIgnored(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	r := crdt.Record{Key: "k", Value: []byte("v"), Time: crdt.Timestamp{Wall: 1, Node: 1}}
	n.reps["a"].recs[r.Key] = r
	answer := crdt.Record{Key: "k", Tombstone: true, Time: crdt.Timestamp{Wall: 2}}
	forged := &wire.Reject{Session: wire.Session{ID: 1, Token: 2, Step: 1}, Records: []crdt.Record{answer}}
	n.nodes["a"].Receive("b", encode(t, forged), n.now.Now())
	if got := n.reps["a"].recs["k"]; got.Tombstone {
		t.Fatal("a Reject outside any session made the member delete a record")
	}
}

func decodeFrame(t testing.TB, p []byte) wire.Message {
	t.Helper()
	m, err := wire.NewCodec(wire.Limits{}).Decode(p)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSessionsThatMoveNothingEnd: a responder that answers every Versions
// with an empty Repair marked Truncated kept the initiator's session
// alive for ever (each reply pushed the deadline on, the leaves were asked
// about again), and the node started no other session, with honest b or
// anyone: one such member stopped anti-entropy everywhere in time (found
// by review). Three replies in a row that move nothing now end it.
func TestSessionsThatMoveNothingEnd(t *testing.T) {
	stale := crdt.Record{Key: "zz", Value: []byte("v"), Time: crdt.Timestamp{Wall: 5, Node: 3}}
	fresh := []crdt.Record{{}} // a new record of a leaf asked about, every reply: bounded by maxReasks
	for name, records := range map[string][]crdt.Record{"empty": nil, "one stale record": {stale}, "a new record each time": fresh} {
		t.Run(name, func(t *testing.T) {
			n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Second}, "a", "b", "x")
			a := n.nodes["a"]
			now := n.now.Now()
			if records != nil { // a holds it: the record changes nothing here
				n.reps["a"].recs[stale.Key] = stale
			}
			out := a.StartSession("x", now)
			const token = 77
			started := a.Stats().SessionsStarted
			for range 2000 { // 2000 s of wall time, 250 session timeouts
				var replies [][]byte
				for _, e := range out {
					if e.To != "x" {
						continue
					}
					switch m := decodeFrame(t, e.Payload).(type) {
					case *wire.Digest:
						if m.Level == 1 && len(m.Parents) == 1 {
							hashes := make([]uint64, crdt.Fanout)
							for j := range hashes {
								hashes[j] = uint64(j + 1)
							}
							replies = append(replies, encode(t, &wire.Digest{Session: wire.Session{ID: m.ID, Token: token, Step: m.Step},
								Level: 2, Parents: []uint32{0}, Hashes: hashes, Cut: crdt.Timestamp{Wall: now, Node: 3}, Coverage: now}))
						}
					case *wire.Versions:
						recs := records
						if name == "a new record each time" {
							key := ""
							for i := 0; key == ""; i++ {
								if k := fmt.Sprint("new-", i, "-", m.Step); crdt.LeafIndex(crdt.HashKey(k), 0, 8) == m.Leaves[0] {
									key = k
								}
							}
							recs = []crdt.Record{{Key: key, Value: []byte("v"), Time: crdt.Timestamp{Wall: now, Node: 3}}}
						}
						replies = append(replies, encode(t, &wire.Repair{Session: wire.Session{ID: m.ID, Token: token, Step: m.Step},
							Records: recs, Truncated: true}))
					}
				}
				n.now.Advance(time.Second)
				now = n.now.Now()
				out = receiveAll(t, a, "x", replies, now)
				out = append(out, a.Tick(now)...)
			}
			s := a.Stats()
			want := uint64(100) // idle replies: three end a session
			if name == "a new record each time" {
				want = 2000 / (maxReasks + 16) // a leaf asked about maxReasks times ends it, a reply a second
			}
			if s.SessionsStarted < started+want || s.SessionsTimedOut < want {
				t.Fatalf("in %v: %d sessions started after the first, %d timed out: sessions with x lasted (timeout %v)",
					2000*time.Second, s.SessionsStarted-started, s.SessionsTimedOut, a.cfg.SessionTimeout)
			}
		})
	}
}

// TestSessionLifeSaturates: a session timeout of years does not wrap the
// longest a session lasts below zero (every session then timed out at the
// next tick, found by review).
func TestSessionLifeSaturates(t *testing.T) {
	n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Hour, SessionTimeout: 5 * 365 * 24 * time.Hour}, "a", "b")
	if life := n.nodes["a"].sessionLife(); life <= 0 {
		t.Fatalf("session life %v", time.Duration(life))
	}
}

// TestDigestRepliesGoDeeper: a responder that answers each Digest with
// its root, again and again, ends the session: each reply must go deeper
// than the last, so a walk down the tree takes at most its depth. It held the
// session, and every session of the node, for ever (found by review).
func TestDigestRepliesGoDeeper(t *testing.T) {
	n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Hour}, "a", "x")
	a := n.nodes["a"]
	now := n.now.Now()
	out := a.StartSession("x", now)
	for i := range 10 {
		var replies [][]byte
		for _, e := range out {
			if m, ok := decodeFrame(t, e.Payload).(*wire.Digest); ok && e.To == "x" {
				// A root that differs, whatever was asked.
				replies = append(replies, encode(t, &wire.Digest{Session: wire.Session{ID: m.ID, Token: 77, Step: m.Step},
					Level: 0, Hashes: []uint64{uint64(i) + 12345}, Cut: crdt.Timestamp{Wall: now, Node: 3}, Coverage: now}))
			}
		}
		out = receiveAll(t, a, "x", replies, now)
		if !a.ae.active {
			return
		}
		if i == 9 || len(out) == 0 {
			t.Fatalf("after %d roots in reply, the session goes on (%d frames out)", i+1, len(out))
		}
	}
}

// TestForgedSeqDoesNotSilenceAnOrigin: relayed Deltas naming a's
// incarnation, with batch numbers ahead of a's, from anyone holding the
// key, made members take a's later batches for copies, neither applied nor
// relayed: first with the largest Seq (found by review), then with one a
// window reset let through (the next review), then, with a window of 64
// and a restart after 64 late batches in a row, with the numbers a would
// use next, sent to a's children only, or with one far ahead sent again
// every 32 of a's batches (found by a third review). A batch is now new
// when it changes something, whatever its numbers: every write of a's
// reaches every member by delta alone.
func TestForgedSeqDoesNotSilenceAnOrigin(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	const writes = 4 * 64
	for name, forge := range map[string]func(seq uint64) []uint64{
		"far ahead, once":       func(seq uint64) []uint64 { return when(seq == 0, 1<<64-1, 1<<24, 100) },
		"far ahead, again":      func(seq uint64) []uint64 { return when(seq%32 == 0, 1<<64-1) },
		"the next ones, ahead":  func(seq uint64) []uint64 { return when(seq%32 == 0, seqRange(seq+1, seq+40)...) },
		"each one, just before": func(seq uint64) []uint64 { return []uint64{seq + 1} },
	} {
		t.Run(name, func(t *testing.T) {
			n := newTestNet(t, 8, Config{Fanout: 2, AntiEntropyInterval: time.Hour}, names...)
			aID := n.nodes["a"].cfg.Clock.Node()
			kids := n.nodes["a"].ring.children(nil, "a", "a", 2) // they relay to the rest
			for i := range writes {
				for _, seq := range forge(uint64(i)) {
					forged := encode(t, &wire.Delta{Origin: "a", OriginID: aID, Seq: seq})
					for _, to := range kids {
						out, err := n.nodes[to].Receive("x", forged, n.now.Now())
						if err != nil {
							t.Fatal(err)
						}
						n.pump(to, out)
					}
				}
				n.now.Advance(time.Second)
				n.pump("a", n.write("a", fmt.Sprintf("k%d", i), "v"))
			}
			for _, to := range names[1:] {
				got := 0
				for i := range writes {
					if _, ok := n.reps[to].recs[fmt.Sprintf("k%d", i)]; ok {
						got++
					}
				}
				if got != writes {
					t.Errorf("%s holds %d of a's %d writes, deltas only", to, got, writes)
				}
			}
		})
	}
}

// when returns seqs if cond holds, else none.
func when(cond bool, seqs ...uint64) []uint64 {
	if cond {
		return seqs
	}
	return nil
}

// seqRange returns from..to.
func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for q := from; q <= to; q++ {
		s = append(s, q)
	}
	return s
}

// TestHonestRepairsThatApplyNothingGoOn: a's session with b, whose
// truncated Repairs apply nothing at a (their records came just before by
// delta, or a rejects them all as below its watermark and answers), is
// not cut: the first rule taking such Repairs for idle ones ended honest
// sessions after three (found by review).
func TestHonestRepairsThatApplyNothingGoOn(t *testing.T) {
	for _, mode := range []string{"delta race", "watermark rejects"} {
		t.Run(mode, func(t *testing.T) {
			n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Hour, MaxRepairBytes: 8 << 10}, "a", "b")
			a, b := n.nodes["a"], n.nodes["b"]
			clk := b.cfg.Clock
			for i := 0; i < 400; i++ {
				r := crdt.Record{Key: fmt.Sprintf("k%04d", i), Value: make([]byte, 1000), Time: clk.Now()}
				n.reps["b"].Apply(r, false, 0)
			}
			rejecting := mode == "watermark rejects"
			if rejecting { // a collected these (dead) records: every one is below a's watermark
				n.reps["a"].wm = clk.Now().Wall
			}
			now := n.now.Now()
			out := a.StartSession("b", now)
			n.pumpEach("a", out, func(from string, e Envelope) (string, []Envelope) {
				if rejecting || from != "b" || e.To != "a" {
					return "", nil
				}
				if m, ok := decodeFrame(t, e.Payload).(*wire.Repair); ok && len(m.Records) > 0 {
					// the delta of the same records arrives first
					o, err := a.Receive("", encode(t, &wire.Direct{OriginID: clk.Node(), Records: m.Records}), now)
					if err != nil {
						t.Fatal(err)
					}
					_ = o
				}
				return "", nil
			})
			s := a.Stats()
			if s.SessionsTimedOut > 0 || s.SessionsCompleted != 1 {
				t.Fatalf("honest session cut: completed %d, timed out %d (%d records at a)", s.SessionsCompleted, s.SessionsTimedOut, len(n.reps["a"].recs))
			}
		})
	}
}

// receiveAll hands nd the frames from, in order, and returns what it sent.
func receiveAll(t *testing.T, nd *Node, from string, frames [][]byte, now int64) []Envelope {
	t.Helper()
	var out []Envelope
	for _, p := range frames {
		o, err := nd.Receive(from, p, now)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o...)
	}
	return out
}

// TestDeepOpeningIsNotAnswered: a session's opening needs no token, and
// its sender name is whatever the frame says. Its level was not checked:
// an opening at the level above the leaves had the whole leaf level
// (2^DigestBits hashes, 540 KB here) sent to the member it named (found by
// review). An opening is the root, or level 1 under it, and is answered
// with one level: 256 hashes at most, about 2 KB. (A level-1 opening that
// differs under more than maxOpeningParents nodes is answered with the
// root alone, but for the first few of an arrival's: see
// TestForgedLevelOneOpeningDrawsTheRootAlone.)
func TestDeepOpeningIsNotAnswered(t *testing.T) {
	const bits = 16 // lww's default
	n := newTestNet(t, bits, Config{}, "a", "b", "x")
	n.reps["a"].recs["k"] = crdt.Record{Key: "k", Value: []byte("v"), Time: crdt.Timestamp{Wall: 1, Node: 1}}
	depth := bits / crdt.FanoutBits
	level := uint8(depth - 1)
	nparents := 1 << (crdt.FanoutBits * (depth - 2)) // every node of the level above
	parents := make([]uint32, nparents)
	hashes := make([]uint64, nparents*crdt.Fanout)
	for i := range parents {
		parents[i] = uint32(i)
	}
	for i := range hashes {
		hashes[i] = uint64(i) + 1 // differ from a's everywhere
	}
	// x forges b's name; no token.
	frame := encode(t, &wire.Digest{Session: wire.Session{ID: 42, Step: 1}, Level: level, Parents: parents, Hashes: hashes})
	out, err := n.nodes["a"].Receive("b", frame, n.now.Now())
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for _, e := range out {
		sent += len(e.Payload)
	}
	t.Logf("forged opening of %d bytes (level %d) -> %d frames, %d bytes to b", len(frame), level, len(out), sent)
	if sent > 2200 { // the first level: 16 hashes, as TestRequestsFromOutsideASessionAreNotAnswered allows
		t.Fatalf("an opening without a token got %d bytes of hashes sent to the member it names (%.0fx its size); want at most the first level", sent, float64(sent)/float64(len(frame)))
	}
}

// leafCounter counts the leaves whose records the node gathers.
type leafCounter struct {
	*memReplica
	leaves map[uint32]bool
}

func (c *leafCounter) AppendRecords(dst []crdt.Record, leaf uint32) []crdt.Record {
	c.leaves[leaf] = true
	return c.memReplica.AppendRecords(dst, leaf)
}

// TestWantsAreOfTheLeavesAsked: an honest responder wants keys of the
// leaves it was asked about alone; the initiator served wants of any leaf,
// gathering the records of up to wire.MaxRecords leaves a reply, sixteen
// times what a full chunk (wire.MaxLeavesPerStep) names (found by review).
// Wants of other leaves are ignored, and counted stray.
func TestWantsAreOfTheLeavesAsked(t *testing.T) {
	const bits = 8
	now := crdt.NewManualTime(1_000_000_000)
	rep := &leafCounter{memReplica: newMemReplica(bits), leaves: map[uint32]bool{}}
	var wants []uint64
	for i := range 2000 {
		r := crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}}
		rep.recs[r.Key] = r
		wants = append(wants, crdt.HashKey(r.Key))
	}
	a, err := New(Config{Name: "a", Replica: rep, Clock: crdt.NewHLC(1, now.Now, 0), AntiEntropyInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	a.SetMembers([]string{"a", "x"}, now.Now())
	out := a.StartSession("x", now.Now())
	open := decodeFrame(t, out[0].Payload).(*wire.Digest) // level 1, parent 0 (depth 2)
	// x: the leaf level, one leaf differing.
	hashes := rep.AppendHashes(nil, 2, []uint32{3})
	hashes[5]++
	reply := encode(t, &wire.Digest{Session: wire.Session{ID: open.ID, Token: 9, Step: open.Step}, Level: 2,
		Parents: []uint32{3}, Hashes: hashes, Cut: crdt.Timestamp{Wall: now.Now(), Node: 2}, Coverage: now.Now()})
	out, err = a.Receive("x", reply, now.Now())
	if err != nil || len(out) != 1 {
		t.Fatalf("%d frames, %v", len(out), err)
	}
	v := decodeFrame(t, out[0].Payload).(*wire.Versions)
	t.Logf("a asks about leaves %v", v.Leaves)
	// x wants every key a holds, in every leaf.
	slices.Sort(wants)
	rep.leaves = map[uint32]bool{}
	out, err = a.Receive("x", encode(t, &wire.Repair{Session: wire.Session{ID: v.ID, Token: 9, Step: v.Step}, Wants: wants}), now.Now())
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for _, e := range out {
		if m, ok := decodeFrame(t, e.Payload).(*wire.Repair); ok {
			sent += len(m.Records)
		}
	}
	if len(rep.leaves) > len(v.Leaves) {
		t.Fatalf("asked about %d leaves, a gathered the records of %d leaves and sent %d records for the responder's wants", len(v.Leaves), len(rep.leaves), sent)
	}
	if a.Stats().Stray == 0 {
		t.Fatal("wants of leaves not asked about were not counted stray")
	}
}

// flatReplica is a replica of the widest digest (crdt.MaxTreeBits) whose
// every node hashes to the same value: enough to drive the digest walk
// without building a tree of 16M leaves.
type flatReplica struct{ memReplica }

func (f *flatReplica) DigestBits() int { return crdt.MaxTreeBits }
func (f *flatReplica) AppendHashes(dst []uint64, level int, parents []uint32) []uint64 {
	if level == 0 {
		return append(dst, 7)
	}
	for range len(parents) * crdt.Fanout {
		dst = append(dst, 7)
	}
	return dst
}
func (f *flatReplica) AppendVersions(dst []crdt.Version, leaf uint32) []crdt.Version { return dst }
func (f *flatReplica) AppendRecords(dst []crdt.Record, leaf uint32) []crdt.Record    { return dst }

// TestLeafLevelWithNoDifferenceEndsTheSession: with DigestBits 24 (the
// widest), an initiator that receives the leaf level (6) and finds nothing
// different (a delta made the leaves equal while the reply was on its way)
// tells the responder so; it did with a digest at level 7, which the codec
// refuses: an encode error, and the responder never heard the exchange was
// over (found by review).
func TestLeafLevelWithNoDifferenceEndsTheSession(t *testing.T) {
	now := crdt.NewManualTime(1_000_000_000)
	rep := &flatReplica{memReplica: *newMemReplica(crdt.MaxTreeBits)}
	a, err := New(Config{Name: "a", Replica: rep, Clock: crdt.NewHLC(1, now.Now, 0), AntiEntropyInterval: time.Hour,
		Limits: wire.Limits{MaxFrame: digestFrame(crdt.MaxTreeBits)}}) // frames that hold its leaf level
	if err != nil {
		t.Fatal(err)
	}
	a.SetMembers([]string{"a", "b"}, now.Now())
	out := a.StartSession("b", now.Now())
	m := decodeFrame(t, out[0].Payload).(*wire.Digest)
	depth := crdt.MaxTreeBits / crdt.FanoutBits
	// b's reply at the leaf level: one parent, its 16 leaves equal to a's.
	hashes := make([]uint64, crdt.Fanout)
	for i := range hashes {
		hashes[i] = 7
	}
	reply := encode(t, &wire.Digest{Session: wire.Session{ID: m.ID, Token: 5, Step: m.Step}, Level: uint8(depth),
		Parents: []uint32{0}, Hashes: hashes, Cut: crdt.Timestamp{Wall: now.Now(), Node: 2}, Coverage: now.Now()})
	out, err = a.Receive("b", reply, now.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.EncodeErrors != 0 || len(out) != 1 {
		t.Fatalf("the end of a session with nothing different at the leaf level: %d frames sent, %d encode errors", len(out), s.EncodeErrors)
	}
}

// TestNewerThanAskedOrdersVersions: a record is newer than the version a
// Versions listed for its key by the versions' order, as the session
// compares them: a tombstone at a listed value's stamp is newer, the same
// version is not (the stamps alone were compared: found by review).
func TestNewerThanAskedOrdersVersions(t *testing.T) {
	ts := crdt.Timestamp{Wall: 5, Logical: 1, Node: 3}
	h := crdt.HashKey("k")
	asked := &wire.Versions{Leaves: []uint32{crdt.LeafIndex(h, 0, 8)}, Counts: []uint32{1},
		Versions: []wire.KeyVersion{{KeyHash: h, Time: ts}}}
	if !newerThanAsked(asked, []crdt.Record{{Key: "k", Time: ts, Tombstone: true}}, 8) {
		t.Fatal("a tombstone at the listed value's stamp is not newer")
	}
	if newerThanAsked(asked, []crdt.Record{{Key: "k", Value: []byte("v"), Time: ts}}, 8) {
		t.Fatal("the listed version itself is newer")
	}
}

// TestOldCopyIsCountedNotRelayed: a copy of a batch that changes
// nothing here, whatever its batch number, is counted once, as
// DuplicateDeltas says, not as a batch received, and not relayed; a batch
// far behind the newest number seen that brings new records is applied
// and relayed (one 64 behind was counted nowhere, so its subtree's loss,
// until anti-entropy, could not be seen: found by review; then, in the
// fix's first version, counted twice).
func TestOldCopyIsCountedNotRelayed(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	n := newTestNet(t, 8, Config{Fanout: 1, AntiEntropyInterval: time.Hour}, names...)
	aID := n.nodes["a"].cfg.Clock.Node()
	rec := func(k string) []crdt.Record {
		return []crdt.Record{{Key: k, Value: []byte("v"), Time: n.nodes["a"].cfg.Clock.Now()}}
	}
	newer := encode(t, &wire.Delta{Origin: "a", OriginID: aID, Seq: 100, Records: rec("new")})
	older := encode(t, &wire.Delta{Origin: "a", OriginID: aID, Seq: 30, Records: rec("old")})
	for _, to := range names[1:] {
		nd := n.nodes[to]
		if fwd, _ := nd.Receive("a", newer, n.now.Now()); len(fwd) == 0 {
			continue // a leaf of a's tree
		}
		before := nd.Stats()
		if out, err := nd.Receive("a", older, n.now.Now()); err != nil || len(out) == 0 {
			t.Fatalf("%s: a batch 70 behind with a new record: relayed to %d, %v; want relayed", to, len(out), err)
		}
		if _, ok := n.reps[to].recs["old"]; !ok {
			t.Fatalf("%s: a batch 70 behind with a new record was not applied", to)
		}
		mid := nd.Stats()
		out, err := nd.Receive("a", older, n.now.Now())
		after := nd.Stats()
		if err != nil || len(out) != 0 || mid.DeltaBatchesReceived != before.DeltaBatchesReceived+1 ||
			after.DuplicateDeltas != mid.DuplicateDeltas+1 || after.DeltaBatchesReceived != mid.DeltaBatchesReceived {
			t.Fatalf("%s: its copy: relayed to %d, %v; duplicates %d -> %d, batches %d -> %d -> %d; want not relayed, counted once, as a duplicate",
				to, len(out), err, mid.DuplicateDeltas, after.DuplicateDeltas, before.DeltaBatchesReceived, mid.DeltaBatchesReceived, after.DeltaBatchesReceived)
		}
		return
	}
	t.Fatal("no member relays in a's tree")
}

// TestRelayBehindInTimeStillRelays: a relay whose clock is behind the
// writer's by more than MaxClockDrift refuses the batch's records, and
// still passes the batch on to its subtree, whose clocks take them (a
// batch was relayed only when it applied something, and such a relay cut
// its subtree off from every batch it refused: found by review).
func TestRelayBehindInTimeStillRelays(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	n := newTestNet(t, 8, Config{Fanout: 1, AntiEntropyInterval: time.Hour}, names...)
	relay := n.nodes["a"].ring.children(nil, "a", "a", 1)[0]
	cfg := n.nodes[relay].cfg
	lag := 2 * crdt.DefaultMaxClockDrift
	cfg.Clock = crdt.NewHLC(cfg.Clock.Node(), func() int64 { return n.now.Now() - int64(lag) }, 0)
	node, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	node.SetMembers(names, n.now.Now())
	n.nodes[relay] = node
	n.pump("a", n.write("a", "k", "v"))
	if node.Stats().ClockDriftRejects == 0 {
		t.Fatalf("the relay %s refused nothing", relay)
	}
	for _, name := range names[1:] {
		if _, ok := n.reps[name].recs["k"]; !ok && name != relay {
			t.Errorf("%s, below the relay %s that refused a's write, missed it", name, relay)
		}
	}
}

// lateReplica is a memReplica that takes a delta older than horizon as
// Late, as lww.Map.Merge does before it looks the key up.
type lateReplica struct {
	*memReplica
	horizon int64
}

func (l lateReplica) Apply(r crdt.Record, delta bool, now int64) crdt.Outcome {
	if delta && r.Time.Wall < now-l.horizon {
		return crdt.Late
	}
	return l.memReplica.Apply(r, delta, now)
}

// TestReplayedOldBatchGoesNoFurther: a batch captured and replayed, once
// its records are past the horizon (Late everywhere) or below a
// watermark (Rejected), goes no further than the member it is replayed
// to: no key is needed to replay a datagram, and each replay went down
// the origin's whole subtree (about (N-1)/Fanout frames; found by review).
func TestReplayedOldBatchGoesNoFurther(t *testing.T) {
	const horizon = int64(time.Hour)
	for _, size := range []int{5, 20} {
		for _, late := range []bool{true, false} {
			var names []string
			for i := range size {
				names = append(names, fmt.Sprintf("m%02d", i))
			}
			n := newTestNet(t, 8, Config{Fanout: 2, AntiEntropyInterval: 24 * time.Hour}, names...)
			for _, name := range names {
				cfg := n.nodes[name].cfg
				cfg.Replica = lateReplica{n.reps[name], horizon}
				node, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				node.SetMembers(names, n.now.Now())
				n.nodes[name] = node
			}
			sent := n.write(names[0], "k", "v")
			n.pump(names[0], sent)
			if late {
				n.now.Advance(time.Duration(horizon) + time.Minute)
			} else { // k deleted and collected everywhere: below every watermark
				for _, name := range names {
					delete(n.reps[name].recs, "k")
					n.reps[name].wm = n.now.Now()
				}
				n.now.Advance(time.Minute)
			}
			for _, e := range sent { // the captured datagrams, replayed as they were
				frames := 0
				n.pumpEach(names[0], []Envelope{e}, func(string, Envelope) (string, []Envelope) { frames++; return "", nil })
				if frames != 1 {
					t.Errorf("N=%d, late %v: a replayed datagram cost %d frames, want 1", size, late, frames)
				}
			}
		}
	}
}

// TestDigestLevelsFitTheFrame: a Node either refuses a configuration
// whose digest's leaf level cannot fit one frame (Config.Limits), or its
// sessions complete. The responder's reply at the leaf level holds 16
// hashes for every differing node of the level above, up to the whole
// level, and nothing cuts it to the frame: with a 12-bit digest and
// 16 KiB frames (as with a 24-bit digest and the default 64 MiB frames,
// or gossip's 20 MiB), a member far behind asked, the reply failed to
// encode at every step, and no session ever completed.
func TestDigestLevelsFitTheFrame(t *testing.T) {
	const bits = 12
	cfg := Config{Limits: wire.Limits{MaxFrame: 16 << 10}, AntiEntropyInterval: time.Hour}
	probe := cfg
	probe.Name, probe.Replica, probe.Clock = "p", newMemReplica(bits), crdt.NewHLC(1, func() int64 { return 1 }, 0)
	if _, err := New(probe); errors.Is(err, ErrConfig) {
		return // refused up front: fine
	} else if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, bits, cfg, "a", "b")
	for i := range 3000 {
		k := fmt.Sprint("key", i)
		n.reps["b"].recs[k] = crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 2}}
	}
	n.pump("a", n.nodes["a"].StartSession("b", n.now.Now()))
	sa, sb := n.nodes["a"].Stats(), n.nodes["b"].Stats()
	if sa.SessionsCompleted != 1 || sb.EncodeErrors != 0 || len(n.reps["a"].recs) != 3000 {
		t.Fatalf("a completed %d sessions and holds %d of b's 3000 records; b failed to encode %d frames", sa.SessionsCompleted, len(n.reps["a"].recs), sb.EncodeErrors)
	}
}
