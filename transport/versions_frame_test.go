package transport

import (
	"fmt"
	"math"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestVersionsOfManyLeavesFitTheFrame: a chunk of leaves holding one
// version each is cut by the room its versions take, but each leaf also
// takes 8 bytes of leaves and counts; with a frame small enough (any
// below about 88 KB, which a digest of 8 or 12 bits allows) a chunk of
// LeavesPerStep leaves overflowed it, the Versions failed to encode at
// every retry, and the session never completed.
func TestVersionsOfManyLeavesFitTheFrame(t *testing.T) {
	const bits = 8
	cfg := Config{Limits: wire.Limits{MaxFrame: 4096}}
	n := newTestNet(t, bits, cfg, "a", "b")
	for leaf := range uint32(1 << bits) {
		ka := keysOfLeaf(fmt.Sprintf("a%d:", leaf), leaf, bits, 1)[0]
		kb := keysOfLeaf(fmt.Sprintf("b%d:", leaf), leaf, bits, 1)[0]
		n.reps["a"].recs[ka] = crdt.Record{Key: ka, Value: []byte("x"), Time: crdt.Timestamp{Wall: 100, Node: 1}}
		n.reps["b"].recs[kb] = crdt.Record{Key: kb, Value: []byte("y"), Time: crdt.Timestamp{Wall: 100, Node: 2}}
	}
	before := n.nodes["a"].Stats()
	n.pump("a", n.nodes["a"].StartSession("b", n.now.Now()))
	st := n.nodes["a"].Stats()
	if st.EncodeErrors != before.EncodeErrors {
		t.Errorf("%d messages failed to encode", st.EncodeErrors-before.EncodeErrors)
	}
	if st.SessionsCompleted != before.SessionsCompleted+1 {
		t.Errorf("the session did not complete")
	}
	if len(n.reps["a"].recs) != 512 || len(n.reps["b"].recs) != 512 {
		t.Errorf("a holds %d records, b %d, want 512 each", len(n.reps["a"].recs), len(n.reps["b"].recs))
	}
}

// TestACrowdedLeafFitsTheLeastFrames: a crowded leaf's part fits the
// frame at every frame a 4-bit digest allows, prints or not. A part was
// cut at a frame's room in versions (32 bytes each, 29 encoded) and left
// the frame's header, session, leaf, count and range out: under about
// 768 bytes (only a 4-bit digest allows so small a frame) the 3 bytes a
// version spared no longer covered them, the part failed to encode at
// every retry, and no session that reached the leaf completed (found by
// review).
func TestACrowdedLeafFitsTheLeastFrames(t *testing.T) {
	const bits, leaf = 4, 9
	least := digestFrame(bits)
	// The widest part of room versions fits each frame: its session,
	// range and versions at their widest.
	for frame := least; frame <= 4096; frame++ {
		for _, prints := range []bool{false, true} {
			room := leafVersionsRoom(frame, prints)
			if room < 1 {
				t.Fatalf("frame %d, prints %v: room for %d versions", frame, prints, room)
			}
			m := &wire.Versions{
				Session: wire.Session{ID: ^uint64(0), Token: ^uint64(0), Step: ^uint32(0)},
				Leaves:  []uint32{^uint32(0) >> 4}, Counts: []uint32{uint32(room)}, Prints: prints,
				Part: &wire.KeyRange{From: ^uint64(0) - uint64(room), Through: ^uint64(0)},
			}
			for i := range room {
				m.Versions = append(m.Versions, wire.KeyVersion{KeyHash: ^uint64(0) - uint64(room-i),
					Time: crdt.Timestamp{Wall: math.MinInt64 + 1, Logical: ^uint32(0), Node: ^crdt.NodeID(0)}, Tombstone: true})
				if prints {
					m.Versions[i].Print = ^uint32(0)
				}
			}
			if _, err := wire.NewCodec(wire.Limits{MaxFrame: frame}).Encode(nil, m); err != nil {
				t.Fatalf("frame %d, prints %v: a part of %d versions: %v", frame, prints, room, err)
			}
		}
	}
	keys := keysOfLeaf("least:", leaf, bits, 80)
	for _, frame := range []int{least, least + 1, 256, 300, 384, 512, 640, 700, 767, 768, 1024} {
		for _, prints := range []bool{false, true} {
			cfg := Config{Limits: wire.Limits{MaxFrame: frame}}
			n := newTestNet(t, bits, cfg, "a", "b")
			want := map[string]crdt.Record{}
			for i, k := range keys {
				r := crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: 100, Node: 1}}
				switch {
				case i < 50: // a's alone
					n.reps["a"].recs[k] = r
				case i < 65: // b's alone
					r.Time.Node = 2
					n.reps["b"].recs[k] = r
				default: // both, b's newer
					n.reps["a"].recs[k] = r
					r.Time.Wall++
					n.reps["b"].recs[k] = r
				}
				want[k] = r
			}
			for _, name := range []string{"a", "b"} {
				n.nodes[name].ListPrints(prints)
			}
			a := n.nodes["a"]
			before := a.Stats()
			n.pump("a", a.StartSession("b", n.now.Now()))
			st := a.Stats()
			if got := st.EncodeErrors - before.EncodeErrors; got > 0 {
				t.Errorf("frame %d, prints %v: %d messages failed to encode", frame, prints, got)
			}
			if st.SessionsCompleted != before.SessionsCompleted+1 {
				t.Errorf("frame %d, prints %v: the session did not complete", frame, prints)
			}
			for _, name := range []string{"a", "b"} {
				for k, w := range want {
					if got := n.reps[name].recs[k]; got.Time != w.Time {
						t.Errorf("frame %d, prints %v: %s holds %q at %v, want %v", frame, prints, name, k, got.Time, w.Time)
						break
					}
				}
			}
		}
	}
}
