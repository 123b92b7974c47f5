package proptest

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// BenchmarkHostileFrame measures what the costliest well-formed frames a
// member holding the cluster key can send cost a production member of
// 100,000 keys (16-bit digest, 256 shards, as bcache runs it): the time
// one Receive takes, which the gossip layer spends under the member's
// protocol lock, and the memory it allocates. The frames are the largest
// the rules allow: a Versions request naming wire.MaxLeavesPerStep leaves,
// a Digest naming every parent of the leaf level, a Delta and a Repair of
// wire.MaxRecords tiny records, and a Reject carrying as many answers.
//
//	go test ./proptest -run '^$' -bench HostileFrame -benchmem -benchtime 5x
func BenchmarkHostileFrame(b *testing.B) {
	r, frames := hostileMember(b)
	for _, f := range frames {
		b.Run(f.name, func(b *testing.B) {
			var size int
			for b.Loop() {
				b.StopTimer()
				frame := f.frame()
				size = len(frame)
				b.StartTimer()
				r.node.Receive(adversaryName, frame, start)
			}
			b.ReportMetric(float64(size), "frame-bytes")
		})
	}
}

// hostileFrame is one kind of the frames BenchmarkHostileFrame sends:
// frame builds the next one (opening a session first, for a step of
// one).
type hostileFrame struct {
	name  string
	frame func() []byte
}

// hostileMember returns the production member of 100,000 keys the
// hostile frames are sent to, and the kinds of frames.
func hostileMember(b testing.TB) (*StoreReplica, []hostileFrame) {
	const keys = 100_000
	const manyVersions = 700_000 // about a 20 MiB stream frame's worth
	cfg := StoreConfig{Transport: DefaultStoreConfig().Transport}
	cfg.Transport.LeavesPerStep, cfg.Transport.MaxRepairBytes, cfg.Transport.Fanout = 0, 0, 0
	// The adversary has been a member for a minute when its frames come:
	// past the window in which the first few openings of a member that
	// just came into the view are answered in full (see
	// TestHostileFrameCosts).
	now := start - int64(time.Minute)
	r, err := NewStoreReplica("n0", 1, func() int64 { return now }, cfg)
	if err != nil {
		b.Fatal(err)
	}
	r.SetMembers([]string{"n0", adversaryName})
	now = start
	var held []crdt.Record // what the member holds, for the Reject's answers
	for i := range keys {
		rec, _ := r.Set(fmt.Sprintf("key:%012d", i), make([]byte, 100), 0)
		held = append(held, rec)
	}
	// Every frame of records carries records new to the member: one of
	// records it took at an iteration before (or from another frame)
	// changes nothing, and costs less than the first.
	made := 0
	// answers are tombstones for keys the member holds, answering nothing
	// it sent, each frame's of other keys while they last, and newer than
	// any before.
	answers := func() []crdt.Record {
		made++
		sets := keys / wire.MaxRecords
		from := (made - 1) % sets * wire.MaxRecords
		recs := make([]crdt.Record, 0, wire.MaxRecords)
		for _, rec := range held[from : from+wire.MaxRecords] {
			recs = append(recs, crdt.Record{Key: rec.Key, Tombstone: true, Time: crdt.Timestamp{Wall: rec.Time.Wall + int64(made)}})
		}
		return recs
	}
	encode := func(m wire.Message) []byte {
		frame, err := wire.NewCodec(wire.Limits{}).Encode(nil, m)
		if err != nil {
			b.Fatal(err)
		}
		return frame
	}
	// tiny returns n tiny records of keys no frame carried before.
	tiny := func(n int) []crdt.Record {
		made++
		recs := make([]crdt.Record, n)
		for i := range recs {
			recs[i] = crdt.Record{Key: fmt.Sprint(made*n + i), Time: crdt.Timestamp{Wall: start - int64(i), Node: adversaryID}}
		}
		return recs
	}
	leaves := make([]uint32, wire.MaxLeavesPerStep)
	for i := range leaves {
		leaves[i] = uint32(i * 16)
	}
	parents := make([]uint32, 1<<12)
	for i := range parents {
		parents[i] = uint32(i)
	}
	opened := 0
	// digest sends m and returns the member's digest in answer.
	digest := func(m *wire.Digest) *wire.Digest {
		out, _ := r.node.Receive(adversaryName, encode(m), start)
		for _, e := range out {
			m, _ := wire.NewCodec(wire.Limits{}).Decode(e.Payload)
			if d, ok := m.(*wire.Digest); ok {
				return d
			}
		}
		b.Fatal("no answer to a digest")
		return nil
	}
	// session opens a session as the adversary, and goes down to the
	// level above the leaves (under node 0 of the level above it), so
	// that the member has sent its leaf level (a Versions before that is
	// refused: see transport's responder.leavesSent); it returns the
	// session's next step.
	session := func() wire.Session {
		opened++
		id := uint64(opened)
		d := digest(&wire.Digest{Session: wire.Session{ID: id, Step: 1}, Level: 1, Parents: []uint32{0}, Hashes: make([]uint64, crdt.Fanout)})
		leafParents := uint8(r.s.DigestBits()/crdt.FanoutBits - 1)
		digest(&wire.Digest{Session: wire.Session{ID: id, Token: d.Token, Step: 2}, Level: leafParents, Parents: []uint32{0}, Hashes: make([]uint64, crdt.Fanout)})
		return wire.Session{ID: id, Token: d.Token, Step: 3}
	}
	frames := []hostileFrame{
		{"versions-max-leaves", func() []byte {
			return encode(&wire.Versions{Session: session(), Leaves: leaves, Counts: make([]uint32, len(leaves))})
		}},
		{"versions-one-leaf-full-frame", func() []byte {
			// As many versions as a stream frame holds, all in leaf 0,
			// ascending, with times that are newer than nothing held:
			// every one is compared with the leaf's own.
			vs := make([]wire.KeyVersion, manyVersions)
			for i := range vs {
				vs[i] = wire.KeyVersion{KeyHash: uint64(i), Time: crdt.Timestamp{Wall: start - 1, Node: adversaryID}}
			}
			return encode(&wire.Versions{Session: session(), Leaves: []uint32{0}, Counts: []uint32{manyVersions}, Versions: vs})
		}},
		{"digest-every-leaf-parent", func() []byte {
			return encode(&wire.Digest{Session: session(), Level: 4, Parents: parents, Hashes: make([]uint64, len(parents)*crdt.Fanout)})
		}},
		{"delta-max-records", func() []byte { return encode(&wire.Delta{OriginID: 7, Records: tiny(wire.MaxRecords)}) }},
		{"repair-max-records", func() []byte { return encode(&wire.Repair{Session: session(), Records: tiny(wire.MaxRecords)}) }},
		{"reject-max-answers", func() []byte { return encode(&wire.Reject{Session: session(), Records: answers()}) }},
	}
	return r, frames
}
