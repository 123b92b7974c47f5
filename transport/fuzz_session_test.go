package transport

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// fuzzBytes hands out the fuzzer's bytes as numbers, zeros once spent.
type fuzzBytes struct{ b []byte }

func (f *fuzzBytes) byte() byte {
	if len(f.b) == 0 {
		return 0
	}
	v := f.b[0]
	f.b = f.b[1:]
	return v
}

func (f *fuzzBytes) u64() uint64 {
	var v uint64
	for range 8 {
		v = v<<8 | uint64(f.byte())
	}
	return v
}

// mutate changes fields of m, a frame b sends a within a session, as a
// member holding the key could: ids and tokens stay, so that it reaches
// the session code.
func mutate(m wire.Message, fb *fuzzBytes, a *Node, now int64) {
	pick := fb.byte()
	timeOf := func() crdt.Timestamp {
		drift := int64(a.cfg.Clock.MaxDrift())
		walls := []int64{now, now + drift, now + drift + 1, math.MaxInt64, math.MinInt64, 0, now - int64(time.Hour)}
		return crdt.Timestamp{Wall: walls[int(fb.byte())%len(walls)], Logical: []uint32{0, 1, math.MaxUint32}[int(fb.byte())%3], Node: crdt.NodeID(fb.byte() % 4)}
	}
	records := func() []crdt.Record {
		var rs []crdt.Record
		for range int(fb.byte() % 8) {
			r := crdt.Record{Key: string(rune('a' + fb.byte()%8)), Time: timeOf()}
			if fb.byte()%2 == 0 {
				r.Tombstone = true
			} else {
				r.Value = []byte{1}
			}
			rs = append(rs, r)
		}
		return rs
	}
	ascending := func(limit uint64) []uint64 {
		var vs []uint64
		v := uint64(0)
		for range int(fb.byte() % 20) {
			v += 1 + fb.u64()%limit
			vs = append(vs, v)
		}
		return vs
	}
	switch m := m.(type) {
	case *wire.Digest:
		switch pick % 5 {
		case 1:
			m.Level += fb.byte() % 4
		case 2:
			if m.Level > 0 {
				m.Level--
			}
		case 3:
			var ps []uint32
			for _, v := range ascending(4) {
				ps = append(ps, uint32(v-1))
			}
			m.Parents = ps
			m.Hashes = make([]uint64, len(ps)*crdt.Fanout)
			for i := range m.Hashes {
				m.Hashes[i] = fb.u64()
			}
		case 4:
			m.Step += uint32(fb.byte()) - 128
		}
		if fb.byte()%4 == 0 {
			m.Cut, m.Coverage = timeOf(), timeOf().Wall
		}
	case *wire.Repair:
		switch pick % 6 {
		case 1:
			m.Wants = ascending(1 << 60)
		case 2:
			m.Truncated = !m.Truncated
		case 3:
			m.Final = !m.Final
		case 4:
			m.Records = append(m.Records, records()...)
			slices.SortFunc(m.Records, func(x, y crdt.Record) int { return x.Time.Compare(y.Time) })
		case 5:
			m.Step += uint32(fb.byte()) - 128
		}
	case *wire.Versions:
		switch pick % 5 {
		case 4: // a part of its first leaf, or of a range past it
			if len(m.Leaves) > 0 {
				n := m.Counts[0]
				m.Leaves, m.Counts, m.Versions = m.Leaves[:1], m.Counts[:1], m.Versions[:n]
				first := uint64(m.Leaves[0]) << 56
				if fb.byte()%4 == 0 {
					first = fb.u64()
				}
				m.Part = &wire.KeyRange{From: first, Through: first + fb.u64()%(1<<57)}
				m.Versions = slices.DeleteFunc(m.Versions, func(v wire.KeyVersion) bool { return !m.Part.Holds(v.KeyHash) })
				m.Counts[0] = uint32(len(m.Versions))
			}
		case 1:
			var ls []uint32
			for _, v := range ascending(64) {
				ls = append(ls, uint32(v-1))
			}
			m.Leaves, m.Counts, m.Versions = ls, make([]uint32, len(ls)), nil
			for i := range ls {
				n := fb.byte() % 4
				m.Counts[i] = uint32(n)
				h := uint64(ls[i]) << 56
				for range n {
					h += 1 + fb.u64()%(1<<40)
					m.Versions = append(m.Versions, wire.KeyVersion{KeyHash: h, Time: timeOf(), Tombstone: fb.byte()%2 == 0})
				}
			}
		case 2:
			m.Step += uint32(fb.byte()) - 128
		case 3:
			for i := range m.Versions {
				m.Versions[i].Time = timeOf()
			}
		}
	case *wire.Reject:
		m.Records = append(m.Records, records()...)
		if pick%2 == 0 {
			m.Step += uint32(fb.byte()) - 128
		}
	case *wire.Delta:
		m.Records = append(m.Records, records()...)
	}
}

// FuzzNodeSession runs sessions both ways between a and b, b's frames to
// a changed field by field as the fuzzer says. a must never panic, must
// send only frames its codec takes, must keep its clock within the drift
// bound (and a nanosecond), and must end every session within its life.
func FuzzNodeSession(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte{3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		fb := &fuzzBytes{b: data}
		n, out := fuzzNet(t)
		a, b := n.nodes["a"], n.nodes["b"]
		dec := wire.NewCodec(wire.Limits{})
		enc := wire.NewCodec(wire.Limits{})
		type hop struct {
			from string
			e    Envelope
		}
		var queue []hop
		for _, e := range out {
			queue = append(queue, hop{"a", e})
		}
		for _, e := range b.StartSession("a", n.now.Now()) {
			queue = append(queue, hop{"b", e})
		}
		check := func(envs []Envelope) {
			for _, e := range envs {
				if _, err := dec.Decode(e.Payload); err != nil {
					t.Fatalf("a sent a frame its codec refuses: %v", err)
				}
			}
		}
		for steps := 0; len(queue) > 0 && steps < 200; steps++ {
			h := queue[0]
			queue = queue[1:]
			if h.e.To == "c" {
				continue
			}
			payload := h.e.Payload
			if h.from == "b" {
				m, err := dec.Decode(payload)
				if err != nil {
					t.Fatal(err)
				}
				mutate(m, fb, a, n.now.Now())
				if p, err := enc.Encode(nil, m); err == nil {
					payload = p
				}
				if fb.byte()%8 == 0 { // a copy, later
					queue = append(queue, hop{"b", Envelope{To: "a", Payload: payload}})
				}
			}
			if fb.byte()%16 == 0 {
				n.now.Advance(time.Duration(fb.byte()) * 100 * time.Millisecond)
				for _, name := range []string{"a", "b"} {
					envs := n.nodes[name].Tick(n.now.Now())
					if name == "a" {
						check(envs)
					}
					for _, e := range envs {
						queue = append(queue, hop{name, e})
					}
				}
			}
			to := n.nodes[h.e.To]
			envs, _ := to.Receive(h.from, payload, n.now.Now())
			if h.e.To == "a" {
				check(envs)
				clock := a.cfg.Clock
				// At most a nanosecond past (see FuzzNodeReceive).
				if ahead := crdt.SubSat(clock.Last().Wall, clock.Physical()); ahead > int64(clock.MaxDrift())+1 {
					t.Fatalf("clock ahead by %v", time.Duration(ahead))
				}
			}
			for _, e := range envs {
				queue = append(queue, hop{h.e.To, e})
			}
		}
		// Every session of a's ends within its life, however b answered.
		life := a.sessionLife()
		n.now.Advance(time.Duration(life) + time.Second)
		a.Tick(n.now.Now())
		if a.ae.active && a.ae.s.start < n.now.Now()-life {
			t.Fatalf("a's session with %s outlived its life", a.ae.s.peer)
		}
		if len(a.ae.resp) > 0 {
			t.Fatalf("a holds %d responder states past their timeout", len(a.ae.resp))
		}
	})
}
