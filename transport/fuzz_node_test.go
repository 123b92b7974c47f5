package transport

import (
	"encoding/binary"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// fuzzNet is a deterministic three-member net: a and b hold records the
// other lacks, c holds a few of each, and sessions are under way both
// ways between a and b, with a's as yet unanswered.
func fuzzNet(t *testing.T) (*testNet, []Envelope) {
	n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Hour}, "a", "b", "c")
	for i := range 40 {
		owner := []string{"a", "b", "c"}[i%3]
		r := crdt.Record{Key: fmt.Sprintf("k%02d", i), Value: []byte{byte(i)}, Time: n.nodes[owner].cfg.Clock.Now()}
		if i%7 == 0 {
			r.Value, r.Tombstone = nil, true
		}
		n.reps[owner].Apply(r, false, 0)
	}
	out := n.nodes["a"].StartSession("b", n.now.Now())
	return n, out
}

// recordFrames runs the fuzzNet's exchanges honestly and returns the
// frames b sent a, in the order a received them.
func recordFrames(t *testing.T) [][]byte {
	n, out := fuzzNet(t)
	var toA [][]byte
	see := func(from string, e Envelope) (string, []Envelope) {
		if from == "b" && e.To == "a" {
			toA = append(toA, append([]byte(nil), e.Payload...))
		}
		return "", nil
	}
	n.pumpEach("a", out, see)
	n.pumpEach("b", n.nodes["b"].StartSession("a", n.now.Now()), see)
	n.pumpEach("b", n.write("b", "fresh", "v"), see)
	return toA
}

// packFrames joins frames as the fuzz input: per frame a control byte
// (sender and time step), a two-byte length and the frame.
func packFrames(frames [][]byte, ctl byte) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, ctl)
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

// FuzzNodeReceive feeds a member arbitrary frames, some of them honest
// frames of a session in flight (the ids are deterministic: Seed 0), as
// a member holding the cluster key could send them. Receive must never
// panic; a frame it refuses changes nothing; the clock never moves more
// than a nanosecond past the drift bound; and what the member sends is
// always a frame the codec takes.
func FuzzNodeReceive(f *testing.F) {
	frames := recordFrames(&testing.T{}) // nothing in it fails
	f.Add([]byte{})
	f.Add(packFrames(frames, 0))
	f.Add(packFrames(frames, 0x81))
	for i := range frames {
		f.Add(packFrames(frames[i:i+1], 0))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, _ := fuzzNet(t)
		a := n.nodes["a"]
		clock := a.cfg.Clock
		dec := wire.NewCodec(wire.Limits{})
		senders := []string{"b", "", "c", "zz", "a"}
		for len(data) >= 3 {
			ctl := data[0]
			size := int(binary.BigEndian.Uint16(data[1:3]))
			data = data[3:]
			size = min(size, len(data))
			frame := data[:size]
			data = data[size:]
			from := senders[int(ctl&7)%len(senders)]
			if ctl&0x80 != 0 {
				n.now.Advance(time.Duration(ctl&0x70) * 10 * time.Millisecond)
			}
			recs := maps.Clone(n.reps["a"].recs)
			last := clock.Last()
			stats := a.Stats()
			out, err := a.Receive(from, frame, n.now.Now())
			if err != nil {
				if len(out) != 0 || !maps.EqualFunc(recs, n.reps["a"].recs, func(x, y crdt.Record) bool { return x.Time == y.Time && x.Key == y.Key }) ||
					clock.Last() != last {
					t.Fatalf("a refused frame (%v) but changed something", err)
				}
				s := a.Stats()
				if s.RejectedFrames() == stats.RejectedFrames() {
					t.Fatalf("refused frame (%v) not counted", err)
				}
			}
			// At most a nanosecond past: a stamp at the bound with its
			// counter near the end carries the clock over it (see
			// crdt.HLC.Update), the harness's clock standing still.
			if ahead := crdt.SubSat(clock.Last().Wall, clock.Physical()); ahead > int64(clock.MaxDrift())+1 {
				t.Fatalf("clock %v ahead of physical time by %v, drift bound %v", clock.Last(), time.Duration(ahead), clock.MaxDrift())
			}
			for _, e := range out {
				if _, err := dec.Decode(e.Payload); err != nil {
					t.Fatalf("a sent a frame its codec refuses: %v", err)
				}
				if e.To == "b" {
					n.nodes["b"].Receive("a", e.Payload, n.now.Now())
				}
			}
		}
	})
}
