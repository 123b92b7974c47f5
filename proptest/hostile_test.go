package proptest

import (
	"cmp"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/wire"
)

// hostileCost is what a kind of hostile frame cost the member it was
// sent to: the bytes of one (the last built), the most bytes the member
// sent in reply to one, and the heap it still held per frame once the
// measured frames had been received, after a collection (the frames of
// the warm-up before them leave their one-time costs, scratch buffers
// grown once, out).
type hostileCost struct {
	frame, reply int
	retained     float64
}

// measureHostile sends the member warm frames built by build, then n
// more, measured; measured again, up to three windows in all, while the
// heap retained per frame is over limit.
func measureHostile(r *StoreReplica, build func() []byte, warm, n int, limit float64) hostileCost {
	var c hostileCost
	one := func() {
		frame := build()
		out, _ := r.node.Receive(adversaryName, frame, start)
		reply := 0
		for _, e := range out {
			reply += len(e.Payload)
		}
		c.frame, c.reply = len(frame), max(c.reply, reply)
	}
	for range warm {
		one()
	}
	// The least of a few windows: a window now and then holds a few KiB
	// more that no frame left (the runtime's own, under -race 5.9 KiB in
	// one window of eight with no frame held, which failed bounds of 64
	// bytes over 32 frames in two runs of three; found by review), while
	// what each frame leaves shows in every window.
	c.retained = math.Inf(1)
	for range 3 {
		if c.retained <= limit {
			break
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC() // and what pools held
		runtime.ReadMemStats(&before)
		for range n {
			one()
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		c.retained = min(c.retained, float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n))
	}
	return c
}

// TestHostileFrameCosts turns BenchmarkHostileFrame's figures into bounds
// on the production member of 100,000 keys it builds, for each kind of
// frame it sends and for the session openings that frames of a session
// need: the bytes the member sends in reply to one frame are at most
// reply times the frame's (amplification), and the heap it retains per
// frame, over repeats of the frame after a warm-up, is at most retained
// bytes (records per frame times perRecord for frames of records new to
// it, which it keeps: a member with the key may write; their bound is
// the store's MaxKeys and MaxBytes). The bounds are about twice what was
// measured (in the comments), except where the reply is a rule of the
// protocol (none, or the root alone).
//
// Broken variants caught (each tried, then undone): receiveDigest
// answering a token-less opening below level 1 (its check removed) fails
// opening-level-2; maxOpenings raised to 1<<20 (every opening kept, 128
// to 148 bytes each) fails the retained bound of the openings and of
// reject-max-answers; a level-1 opening answered with the children of
// every node that differs, as before (receiveDigest's root answer past
// maxOpeningParents removed), fails opening-level-1 (12.5x) and
// opening-level-1-differing-under-1-to-16 (14.7x), and maxOpeningParents
// raised to 5 fails the latter (4.8x).
func TestHostileFrameCosts(t *testing.T) {
	r, frames := hostileMember(t)
	encode := func(m wire.Message) []byte {
		frame, err := wire.NewCodec(wire.Limits{}).Encode(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		return frame
	}
	id := uint64(1 << 40) // past the benchmark's sessions
	opening := func(level uint8, hashes []uint64) []byte {
		id++
		var parents []uint32
		switch level {
		case 1:
			parents = []uint32{0}
		case 2:
			parents = make([]uint32, crdt.Fanout) // every node of level 1
			for i := range parents {
				parents[i] = uint32(i)
			}
		}
		return encode(&wire.Digest{Session: wire.Session{ID: id, Step: 1}, Level: level, Parents: parents, Hashes: hashes,
			Cut: crdt.Timestamp{Wall: start, Node: adversaryID}, Coverage: start})
	}
	// differing builds the least level-1 opening, whose hashes are the
	// member's own but under 1 to 16 nodes in turn. Its ids run from
	// 100 to 127, one byte each, clear of the benchmark's sessions' ids
	// while its last openings are kept.
	level1 := r.s.AppendHashes(nil, 1, []uint32{0})
	under := 0
	differing := func() []byte {
		hashes := slices.Clone(level1)
		for i := range under%crdt.Fanout + 1 {
			hashes[i] = ^hashes[i]
		}
		under++
		return encode(&wire.Digest{Session: wire.Session{ID: uint64(100 + under%28), Step: 1}, Level: 1, Parents: []uint32{0}, Hashes: hashes})
	}
	const many = wire.MaxRecords // records in a frame of records
	type bound struct {
		reply     float64 // times the frame's bytes
		retained  float64 // bytes per frame
		perRecord float64 // bytes per record new to the member
	}
	cases := []struct {
		name  string
		frame func() []byte
		bound
	}{
		// 49 bytes answered with the root, 59 (1.2x); retained < 0.
		{"opening-level-0", func() []byte { return opening(0, make([]uint64, 1)) }, bound{reply: 4, retained: 64}},
		// Every node differs: answered with the root alone, 59 bytes of
		// 173 (0.34x; every node's children, 2,164 bytes, 12.5x, before).
		// The bound is the protocol's, not twice the figure (byte counts
		// do not vary from run to run): see the next case.
		{"opening-level-1", func() []byte { return opening(1, make([]uint64, crdt.Fanout)) }, bound{reply: 4, retained: 64}},
		// The least opening (a one-byte id, no cut, no coverage: 147
		// bytes) differing under 1 to 16 nodes in turn: the children of
		// at most 4 nodes (maxOpeningParents) go, the root alone past
		// that, so at most 4 nodes' children, 572 bytes (3.89x). The
		// bound is that rule's: 5 nodes' children are 4.8x.
		{"opening-level-1-differing-under-1-to-16", differing, bound{reply: 4, retained: 64}},
		// Deeper, which needs a token: no reply (it had the whole leaf
		// level sent, 16 times its size).
		{"opening-level-2", func() []byte { return opening(2, make([]uint64, crdt.Fanout*crdt.Fanout)) }, bound{reply: 0, retained: 64}},
	}
	for _, f := range frames {
		var b bound
		switch f.name {
		case "versions-max-leaves":
			// 8,214 bytes answered with the records of 1,024 leaves,
			// 208,983 bytes (25.4x); retained < 0.
			b = bound{reply: 50, retained: 64}
		case "versions-one-leaf-full-frame":
			// 20 MB answered with the wants the member holds, 131,364
			// bytes (0.0065x); retained 37 bytes.
			b = bound{reply: 1.0 / 64, retained: 1024}
		case "digest-every-leaf-parent", "reject-max-answers":
			// No reply: only the initiator receives the leaf level, and
			// answers are taken, not answered. Retained < 0.
			b = bound{reply: 0, retained: 64}
		case "delta-max-records", "repair-max-records":
			// No reply (the delta is direct, the repair answers nothing
			// asked); retained 153 (delta) and 87 (repair) bytes per
			// record (122 and 136 in another order of the frames: the
			// store's maps grow by steps), 5 to 9 times the record's 18
			// to 24 bytes on the wire.
			b = bound{reply: 0, perRecord: 320}
		default:
			t.Fatalf("no bound for the benchmark's frame %s", f.name)
		}
		cases = append(cases, struct {
			name  string
			frame func() []byte
			bound
		}{f.name, f.frame, b})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			warm, n := 4, 32
			switch {
			case strings.HasPrefix(c.name, "opening-"):
				// The first cases: their warm-up fills the member's
				// bounded tables of sessions, which 4 frames did not
				// (172 bytes a frame retained, in one run of six).
				warm, n = 256, 256
			case c.name == "versions-one-leaf-full-frame":
				warm, n = 1, 2 // 20 MB each
			case c.perRecord > 0:
				warm, n = 1, 8
			}
			limit := c.retained + c.perRecord*many
			got := measureHostile(r, c.frame, warm, n, limit)
			t.Logf("frame %d bytes, reply %d (%.2fx, bound %.4gx), retained %.0f bytes a frame (bound %.0f)",
				got.frame, got.reply, float64(got.reply)/float64(got.frame), c.reply, got.retained, limit)
			if float64(got.reply) > c.reply*float64(got.frame) {
				t.Errorf("a frame of %d bytes was answered with %d, over %.4g times its size", got.frame, got.reply, c.reply)
			}
			if got.retained > limit {
				t.Errorf("the member retained %.0f bytes a frame, over %.0f", got.retained, limit)
			}
		})
	}
	// A frame of records the member took already, received again (a
	// replay), retains nothing more.
	t.Run("delta-replayed", func(t *testing.T) {
		var frame []byte
		for _, f := range frames {
			if f.name == "delta-max-records" {
				frame = f.frame()
			}
		}
		got := measureHostile(r, func() []byte { return frame }, 1, 32, 64)
		t.Logf("frame %d bytes, reply %d, retained %.0f bytes a frame (bound 64)", got.frame, got.reply, got.retained)
		if got.reply > 0 || got.retained > 64 {
			t.Errorf("a replayed delta of %d bytes was answered with %d and retained %.0f bytes a frame, want none and at most 64", got.frame, got.reply, got.retained)
		}
	})
}

// TestHostileRelayedDeltaCosts bounds what one forged Delta naming an
// origin (a batch to relay) makes the production member send on, which
// TestHostileFrameCosts, whose member's view is itself and the sender,
// does not: anyone holding the cluster key may send it under any
// member's name, and the member relays it, unchanged, to its children in
// that member's tree. The member is placed just after the origin on the
// ring of a view of 64, where it has the most children, Fanout. A frame
// of records new to it goes to at most Fanout members (the protocol's
// rule, measured 8x with the production Fanout of 8), once; a frame of
// records stamped beyond MaxClockDrift, which it refuses and passes on
// all the same (a lagging member's subtree may take them), also once:
// sent again, either is a copy and goes nowhere. The refused frame went
// to Fanout members at every repeat, and on down the subtree (found by
// review; see TestReplayedRefusedBatchGoesNoFurther in package
// transport).
func TestHostileRelayedDeltaCosts(t *testing.T) {
	cfg := StoreConfig{Transport: DefaultStoreConfig().Transport}
	cfg.Transport.LeavesPerStep, cfg.Transport.MaxRepairBytes, cfg.Transport.Fanout = 0, 0, 0
	r, err := NewStoreReplica("n0", 1, func() int64 { return start }, cfg)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"n0", adversaryName}
	for i := range 62 {
		names = append(names, fmt.Sprintf("m%02d", i))
	}
	r.SetMembers(names)
	ring := slices.Clone(names) // as package transport orders its ring
	slices.SortFunc(ring, func(a, b string) int {
		return cmp.Or(cmp.Compare(crdt.HashKey(a), crdt.HashKey(b)), cmp.Compare(a, b))
	})
	self := slices.Index(ring, "n0")
	origin := ring[(self+len(ring)-1)%len(ring)]
	if origin == adversaryName { // the sender is no child: take the one before
		origin = ring[(self+len(ring)-2)%len(ring)]
	}
	fanout := transport.DefaultFanout
	made := 0
	frame := func(ahead int64) []byte {
		made++
		recs := make([]crdt.Record, wire.MaxRecords)
		for i := range recs {
			recs[i] = crdt.Record{Key: fmt.Sprint("relayed-", made, "-", i), Time: crdt.Timestamp{Wall: start + ahead - int64(i), Node: 77}}
		}
		f, err := wire.NewCodec(wire.Limits{}).Encode(nil, &wire.Delta{Origin: origin, OriginID: 77, Seq: uint64(made), Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	send := func(f []byte) (frames, bytes int) {
		out, err := r.node.Receive(adversaryName, f, start)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out {
			frames++
			bytes += len(e.Payload)
		}
		return frames, bytes
	}
	for _, c := range []struct {
		name  string
		ahead int64
	}{
		{"new-records", 0},
		{"records-beyond-the-drift-bound", 2 * int64(crdt.DefaultMaxClockDrift)},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := frame(c.ahead)
			rejects := r.node.Stats().ClockDriftRejects
			frames, bytes := send(f)
			t.Logf("a frame of %d bytes relayed to %d members, %d bytes (%.2fx, bound %dx)", len(f), frames, bytes, float64(bytes)/float64(len(f)), fanout)
			if frames == 0 || bytes > fanout*len(f) {
				t.Errorf("a frame of %d bytes was relayed to %d members, %d bytes: want some, at most %d times its size", len(f), frames, bytes, fanout)
			}
			if refused := r.node.Stats().ClockDriftRejects - rejects; (c.ahead > 0) != (refused > 0) {
				t.Fatalf("%d records refused for drift", refused)
			}
			for i := range 8 {
				if frames, bytes := send(f); frames != 0 {
					t.Fatalf("the frame sent again (%d): relayed to %d members, %d bytes; want none", i+2, frames, bytes)
				}
			}
		})
	}
}
