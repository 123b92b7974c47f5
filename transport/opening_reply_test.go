package transport

import (
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// levelOneOpening is the least opening at level 1 (a one-byte id, no cut,
// no coverage) whose hashes are hashes but under their first under nodes.
func levelOneOpening(t *testing.T, id uint64, hashes []uint64, under int) []byte {
	t.Helper()
	hashes = slices.Clone(hashes)
	for i := range under {
		hashes[i] = ^hashes[i]
	}
	return encode(t, &wire.Digest{Session: wire.Session{ID: id, Step: 1}, Level: 1, Parents: []uint32{0}, Hashes: hashes})
}

// openingReply hands nd the frame under from's name and returns the
// Digest it answered with and the bytes it sent.
func openingReply(t *testing.T, nd *Node, from string, frame []byte, now int64) (*wire.Digest, int) {
	t.Helper()
	out, err := nd.Receive(from, frame, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].To != from {
		t.Fatalf("an opening under %s's name was answered with %d frames, want one to %s", from, len(out), from)
	}
	d, ok := decodeFrame(t, out[0].Payload).(*wire.Digest)
	if !ok {
		t.Fatalf("an opening was answered with %T, want a Digest", decodeFrame(t, out[0].Payload))
	}
	return d, len(out[0].Payload)
}

// TestForgedLevelOneOpeningDrawsTheRootAlone: an opening carries no token,
// and anyone with the key may send one under any member's name. One at
// level 1 that differed under every node was answered with the children
// of all of them, 256 hashes, 2,152 bytes to the member it named for 147,
// 14.6 times its size (found by review). Past maxOpeningParents nodes the
// answer is the root alone: no opening draws more than 4 times its bytes.
// The honest session of a member that differs everywhere goes on from
// level 1 with its token, a round trip more, and repairs everything.
func TestForgedLevelOneOpeningDrawsTheRootAlone(t *testing.T) {
	n := newTestNet(t, 16, Config{}, "a", "b", "x")
	n.holding("a", 1, 2000) // under every node of level 1
	n.now.Advance(2 * time.Duration(arrivalYield))
	a := n.nodes["a"]
	mine := n.reps["a"].AppendHashes(nil, 1, []uint32{0})
	root := n.reps["a"].AppendHashes(nil, 0, nil)
	worst := 0.0
	for under := 1; under <= crdt.Fanout; under++ {
		frame := levelOneOpening(t, uint64(under), mine, under) // x forges b's name
		d, sent := openingReply(t, a, "b", frame, n.now.Now())
		ratio := float64(sent) / float64(len(frame))
		worst = max(worst, ratio)
		if under > maxOpeningParents && (d.Level != 0 || !slices.Equal(d.Hashes, root)) {
			t.Errorf("an opening differing under %d nodes was answered at level %d with %d hashes, want the root alone", under, d.Level, len(d.Hashes))
		}
		if under <= maxOpeningParents && (d.Level != 2 || len(d.Parents) != under) {
			t.Errorf("an opening differing under %d nodes was answered at level %d under %d nodes, want level 2 under %d", under, d.Level, len(d.Parents), under)
		}
		if ratio > 4 {
			t.Errorf("an opening of %d bytes differing under %d nodes was answered with %d bytes, %.2f times its size; want at most 4", len(frame), under, sent, ratio)
		}
	}
	t.Logf("the worst answer to a forged level-1 opening: %.2f times its size", worst)

	// b, empty, in the view for a while: its session differs everywhere.
	b := n.nodes["b"]
	n.pump("b", b.StartSession("a", n.now.Now()))
	if sb := b.Stats(); sb.SessionsCompleted != 1 || sb.Stray != 0 || len(n.reps["b"].recs) != 2000 {
		t.Fatalf("b's session: %d completed, %d stray, b holds %d records; want 1, 0, 2000", sb.SessionsCompleted, sb.Stray, len(n.reps["b"].recs))
	}
}

// TestArrivalsOpeningsAreAnsweredInFull: a session with a member that
// just came into the view differs everywhere and opens at level 1 to save
// the round trip a root costs (startSession): within arrivalYield of its
// coming, its first arrivalOpenings openings are answered with the
// children of every node that differs, and no more (a forger naming it
// draws a few, not 12.5 times its bytes for the window); a restart gives
// it as many again; past the window, the root alone.
func TestArrivalsOpeningsAreAnsweredInFull(t *testing.T) {
	n := newTestNet(t, 16, Config{}, "a", "b")
	n.holding("a", 1, 2000)
	a := n.nodes["a"]
	mine := n.reps["a"].AppendHashes(nil, 1, []uint32{0})
	id := uint64(0)
	full := func() bool {
		id++
		d, _ := openingReply(t, a, "b", levelOneOpening(t, id, mine, crdt.Fanout), n.now.Now())
		return d.Level == 2 && len(d.Parents) == crdt.Fanout
	}
	for i := range arrivalOpenings {
		if !full() {
			t.Fatalf("opening %d of an arrival answered with the root, want in full", i+1)
		}
	}
	if full() {
		t.Fatalf("opening %d of an arrival answered in full, want the root alone past %d", arrivalOpenings+1, arrivalOpenings)
	}
	a.Restarted("b", n.now.Now())
	if !full() {
		t.Fatal("the first opening of a restarted member answered with the root, want in full")
	}
	n.now.Advance(time.Duration(arrivalYield))
	if full() {
		t.Fatal("an opening past arrivalYield answered in full, want the root alone")
	}

	// An arrival's catch-up: its opening is answered at level 2 at once,
	// and the session completes with every record.
	n = newTestNet(t, 16, Config{}, "a", "b")
	n.holding("a", 1, 2000)
	levels := []uint8{}
	n.pumpEach("b", n.nodes["b"].Tick(n.now.Now()), func(from string, e Envelope) (string, []Envelope) {
		if d, ok := decodeFrame(t, e.Payload).(*wire.Digest); ok && from == "a" {
			levels = append(levels, d.Level)
		}
		return "", nil
	})
	if sb := n.nodes["b"].Stats(); sb.SessionsCompleted != 1 || len(n.reps["b"].recs) != 2000 || len(levels) == 0 || levels[0] != 2 {
		t.Fatalf("an arrival's session: %d completed, b holds %d records, a's digests of levels %v; want 1, 2000, level 2 first",
			sb.SessionsCompleted, len(n.reps["b"].recs), levels)
	}
}
