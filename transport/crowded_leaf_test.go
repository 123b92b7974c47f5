package transport

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport/wire"
)

// keysOfLeaf returns n keys whose hashes fall in leaf of a digest of bits,
// named after prefix: a caller can choose as many as it likes (the hash
// is public and unkeyed, about 2^bits tries a key).
func keysOfLeaf(prefix string, leaf uint32, bits, n int) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		if crdt.LeafIndex(crdt.HashKey(k), 0, bits) == leaf {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestACrowdedLeafIsListedInParts: a leaf holding more versions than a
// Versions frame has room for is listed in parts, each a range of its key
// hashes, and a session that reaches it completes, repairing it both
// ways. Listed whole, its Versions failed to encode at every try, and no
// session that reached it completed: no first sync for a member joining,
// no sync marks, no collection cluster-wide, for as long as a caller that
// chose its keys into one leaf kept them there (found by review).
func TestACrowdedLeafIsListedInParts(t *testing.T) {
	const bits, leaf = 8, 77
	cfg := Config{Limits: wire.Limits{MaxFrame: 4096}, MaxRepairBytes: 2048}
	room := leafVersionsRoom(cfg.Limits.MaxFrame, false)
	keys := keysOfLeaf("crowd:", leaf, bits, 5*room)
	others := keysOfLeaf("other:", leaf+1, bits, 20)
	for _, initiator := range []string{"a", "b"} {
		t.Run(initiator+" starts", func(t *testing.T) {
			n := newTestNet(t, bits, cfg, "a", "b")
			rec := func(k string, node crdt.NodeID, wall int64) crdt.Record {
				return crdt.Record{Key: k, Value: []byte(k), Time: crdt.Timestamp{Wall: wall, Node: node}}
			}
			want := map[string]crdt.Record{}
			put := func(name string, r crdt.Record) {
				n.reps[name].recs[r.Key] = r
				if w, ok := want[r.Key]; !ok || w.Time.Less(r.Time) {
					want[r.Key] = r
				}
			}
			// a holds most of the leaf; b the first fifth, some of it
			// newer, and a part of its own past a's.
			for i, k := range keys[:4*room] {
				put("a", rec(k, 1, 100))
				if i < room {
					put("b", rec(k, 2, 100+int64(i%2)))
				}
			}
			for _, k := range keys[4*room:] {
				put("b", rec(k, 2, 50))
			}
			for _, k := range others {
				put("b", rec(k, 2, 60))
			}
			other := map[string]string{"a": "b", "b": "a"}[initiator]
			before := n.nodes[initiator].Stats()
			n.pump(initiator, n.nodes[initiator].StartSession(other, n.now.Now()))
			st := n.nodes[initiator].Stats()
			if st.EncodeErrors != before.EncodeErrors {
				t.Errorf("%d messages failed to encode", st.EncodeErrors-before.EncodeErrors)
			}
			if st.SessionsCompleted != before.SessionsCompleted+1 {
				t.Errorf("the session did not complete: %+v", st)
			}
			for _, name := range []string{"a", "b"} {
				missing := 0
				for k, w := range want {
					if got, ok := n.reps[name].recs[k]; !ok || got.Time != w.Time {
						missing++
					}
				}
				if missing > 0 {
					t.Errorf("%s lacks %d of the %d records after the session", name, missing, len(want))
				}
			}
		})
	}
}

// TestACrowdedLeafIsRepairedUnderLoss: on the production store, with a
// fifth of the frames lost, sessions that reach a leaf listed in parts
// complete and repair it both ways: a part whose step or answer is lost
// is asked about again, and the parts after it follow.
func TestACrowdedLeafIsRepairedUnderLoss(t *testing.T) {
	const bits, leaf = 8, 200
	cfg := Config{Limits: wire.Limits{MaxFrame: 4096}, MaxRepairBytes: 2048}
	room := leafVersionsRoom(cfg.Limits.MaxFrame, false)
	c := newStoreCluster(t, cfg, store.Config{Shards: 16, DigestBits: bits}, "a", "b")
	keys := keysOfLeaf("crowd:", leaf, bits, 6*room)
	for i, k := range keys {
		switch {
		case i < 4*room:
			c.write("a", crdt.Record{Key: k, Value: []byte(k)})
		case i < 5*room:
			c.write("b", crdt.Record{Key: k, Value: []byte(k)})
		default: // both, b's newer
			c.write("a", crdt.Record{Key: k, Value: []byte("a")})
			c.now.Advance(time.Microsecond)
			c.write("b", crdt.Record{Key: k, Value: []byte("b")})
		}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	lose := func(hop, wire.Message) bool { return rng.IntN(5) == 0 }
	completed := map[string]uint64{}
	for round := 0; round < 40 && (len(c.diff()) > 0 || completed["a"] == 0 || completed["b"] == 0); round++ {
		from, to := "a", "b"
		if round%2 == 1 {
			from, to = to, from
		}
		before := c.nodes[from].Stats().SessionsCompleted
		c.run(from, c.nodes[from].StartSession(to, c.now.Now()), lose, nil)
		for tick := 0; tick < 200 && c.nodes[from].ae.active; tick++ {
			c.now.Advance(50 * time.Millisecond)
			for _, name := range []string{"a", "b"} {
				c.run(name, c.nodes[name].Tick(c.now.Now()), lose, nil)
			}
		}
		completed[from] += c.nodes[from].Stats().SessionsCompleted - before
	}
	if d := c.diff(); len(d) > 0 {
		t.Fatalf("%d keys differ after 40 sessions under loss: %v", len(d), d[:min(len(d), 5)])
	}
	if completed["a"] == 0 || completed["b"] == 0 {
		t.Fatalf("sessions completed: %v, want some from each side", completed)
	}
	for _, name := range []string{"a", "b"} {
		if st := c.nodes[name].Stats(); st.EncodeErrors > 0 {
			t.Errorf("%s: %d messages failed to encode", name, st.EncodeErrors)
		}
	}
}

// TestAPartOfAnotherLeafIsStray: a Versions listing a part whose range
// reaches past its leaf is answered with nothing and counted stray: the
// responder compares its versions of the leaf within the range, and a
// range past the leaf would stand for records of other leaves.
func TestAPartOfAnotherLeafIsStray(t *testing.T) {
	const bits, leaf = 8, 77
	first, last := leafHashes(leaf, bits)
	for _, part := range []wire.KeyRange{{From: first - 1, Through: last}, {From: first, Through: last + 1}, {From: 0, Through: ^uint64(0)}} {
		n := newTestNet(t, bits, Config{}, "a", "b")
		for _, k := range keysOfLeaf("k", leaf, bits, 3) {
			n.reps["b"].recs[k] = crdt.Record{Key: k, Value: []byte("b"), Time: crdt.Timestamp{Wall: 10, Node: 2}}
		}
		a, b := n.nodes["a"], n.nodes["b"]
		var answered []Envelope
		forged := false
		n.drop = func(from string, e Envelope) bool { // a's step, forged in its place
			if forged || from != "a" || e.Kind != wire.KindVersions {
				return false
			}
			forged = true
			v := decodeFrame(t, e.Payload).(*wire.Versions)
			f := &wire.Versions{Session: v.Session, Leaves: []uint32{leaf}, Counts: []uint32{0}, Part: &part}
			answered, _ = b.Receive("a", encode(t, f), n.now.Now())
			return true
		}
		before := b.Stats().Stray
		n.pump("a", a.StartSession("b", n.now.Now()))
		if !forged {
			t.Fatal("a listed no versions")
		}
		if got := b.Stats().Stray - before; got != 1 || len(answered) > 0 {
			t.Errorf("part %#x-%#x of leaf %d (%#x-%#x): %d stray, answered with %d frames; want 1 stray and no answer",
				part.From, part.Through, leaf, first, last, got, len(answered))
		}
	}
}
