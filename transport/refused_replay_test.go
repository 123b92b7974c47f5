package transport

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestReplayedRefusedBatchGoesNoFurther: a batch stamped too far ahead of
// every member's clock (its writer's clock runs ahead by more than
// MaxClockDrift) is refused everywhere and still goes down its origin's
// tree once (a member whose clock lags passes on what it refuses: see
// TestRelayBehindInTimeStillRelays). Refused, it is held nowhere, so a
// copy of it is refused again, not taken for a copy: each replay of the
// captured datagram, which needs no key, and each repeat of a forged one
// went down the whole subtree again (about (N-1)/Fanout frames a replay,
// for as long as the stamps stayed ahead; found by review). A replay now
// costs the one frame replayed, and is counted as a duplicate.
func TestReplayedRefusedBatchGoesNoFurther(t *testing.T) {
	const size, fanout = 20, 2
	var names []string
	for i := range size {
		names = append(names, fmt.Sprintf("m%02d", i))
	}
	n := newTestNet(t, 8, Config{Fanout: fanout, AntiEntropyInterval: 24 * time.Hour}, names...)
	ahead := 2 * crdt.DefaultMaxClockDrift
	cfg := n.nodes[names[0]].cfg
	cfg.Clock = crdt.NewHLC(cfg.Clock.Node(), func() int64 { return n.now.Now() + int64(ahead) }, 0)
	origin, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	origin.SetMembers(names, n.now.Now())
	n.nodes[names[0]] = origin

	sent := n.write(names[0], "k", "v")
	first := 0
	n.pumpEach(names[0], sent, func(string, Envelope) (string, []Envelope) { first++; return "", nil })
	refusals := uint64(0)
	for _, name := range names[1:] {
		refusals += n.nodes[name].Stats().ClockDriftRejects
		if _, ok := n.reps[name].recs["k"]; ok {
			t.Fatalf("%s took a record stamped %v ahead of its clock", name, ahead)
		}
	}
	if first != size-1 || refusals != size-1 {
		t.Fatalf("the batch went in %d frames and was refused %d times, want %d and %d: down the whole tree once", first, refusals, size-1, size-1)
	}

	dups := func() (d uint64) {
		for _, name := range names {
			d += n.nodes[name].Stats().DuplicateDeltas
		}
		return d
	}
	for replay := range 3 {
		for _, e := range sent { // the captured datagrams, replayed as they were
			before := dups()
			frames := 0
			n.pumpEach(names[0], []Envelope{e}, func(string, Envelope) (string, []Envelope) { frames++; return "", nil })
			if frames != 1 || dups() != before+1 {
				t.Errorf("replay %d of the datagram to %s: %d frames, %d duplicates counted; want 1 and 1", replay+1, e.To, frames, dups()-before)
			}
		}
	}

	// A key holder's forged batch, stamped ahead, sent again and again to
	// a member near the top of m05's tree under m05's name: its subtree
	// once, then the frame alone. So too a batch of which a record is
	// taken and another refused: its copies take nothing.
	to := n.nodes[names[1]].ring.children(nil, names[5], names[5], fanout)[0]
	refused := crdt.Record{Key: "f", Value: []byte("v"), Time: crdt.Timestamp{Wall: n.now.Now() + int64(ahead), Node: 6}}
	taken := crdt.Record{Key: "g", Value: []byte("v"), Time: crdt.Timestamp{Wall: n.now.Now(), Node: 6}}
	for seq, recs := range [][]crdt.Record{{refused}, {refused, taken}} {
		forged := encode(t, &wire.Delta{Origin: names[5], OriginID: 6, Seq: uint64(seq + 1), Records: recs})
		for i := range 4 {
			frames := 0
			n.pumpEach(names[5], []Envelope{{To: to, Kind: wire.KindDelta, Payload: forged}}, func(string, Envelope) (string, []Envelope) { frames++; return "", nil })
			if i == 0 && frames < 2 {
				t.Fatalf("the forged batch of %d records went in %d frames the first time: not relayed", len(recs), frames)
			}
			if i > 0 && frames != 1 {
				t.Errorf("the forged batch of %d records sent the %d-th time cost %d frames, want 1", len(recs), i+1, frames)
			}
		}
	}
}
