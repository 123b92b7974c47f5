package bcache

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/wire"
)

// BenchmarkApplyWithSubscriber measures applying a delta batch of 100
// records (16-byte keys, 100-byte values, over 10,000 keys) on a member
// with no subscriber and with one that keeps up, in the same run: the
// cost of the change feed. Two measures of "applying a batch":
//
//   - frame: what the member does with a peer's delta frame as it
//     arrives (after memberlist's decryption): the protocol node decodes
//     it and merges its records into the store, and the feed is flushed,
//     as the Cache's receive path does;
//   - store: the records alone, already decoded, merged into the store,
//     and the feed flushed: the stricter ratio (no decoding to share the
//     feed's cost with).
//
// The frames are encoded before the timed loop, a thousand at a time,
// each with later timestamps than the last, so that every record applied
// is new and reported.
//
//	go test -run '^$' -bench ApplyWithSubscriber -count 5 .
func BenchmarkApplyWithSubscriber(b *testing.B) {
	for _, path := range []string{"frame", "store"} {
		for _, subscribers := range []int{0, 1} {
			b.Run(fmt.Sprintf("%s/subscribers=%d", path, subscribers), func(b *testing.B) {
				a := newFeedApplier(b, path == "frame", subscribers)
				a.prepare(0)
				for i := 0; b.Loop(); i++ {
					if a.ahead(i) {
						b.StopTimer()
						a.prepare(i)
						b.StartTimer()
					}
					a.apply(i)
				}
				a.check(b)
			})
		}
	}
}

// BenchmarkApplyWithSubscriberInterleaved is BenchmarkApplyWithSubscriber
// with the two members side by side: one with a subscriber that keeps up,
// one without, take turns batch by batch (which goes first alternating),
// each timed alone, so that the VM's slow and fast phases, which moved
// the sub-benchmarks run one after the other by more than the feed's cost
// (a member without subscriber took 20-30 µs a batch from one run to the
// next), fall on both alike. It reports each member's time a batch and
// their ratio (x-time: the target is at most 1.10).
//
//	go test -run '^$' -bench ApplyWithSubscriberInterleaved -benchtime 100000x -count 3 .
func BenchmarkApplyWithSubscriberInterleaved(b *testing.B) {
	for _, path := range []string{"frame", "store"} {
		b.Run(path, func(b *testing.B) {
			members := [2]*feedApplier{newFeedApplier(b, path == "frame", 0), newFeedApplier(b, path == "frame", 1)}
			var took [2]time.Duration
			members[0].prepare(0)
			members[1].shareFrames(members[0])
			for i := 0; b.Loop(); i++ {
				if members[0].ahead(i) {
					b.StopTimer()
					members[0].prepare(i)
					b.StartTimer()
				}
				for k := range 2 {
					m := (i + k) % 2
					start := time.Now()
					members[m].apply(i)
					took[m] += time.Since(start)
				}
			}
			for _, m := range members {
				m.check(b)
			}
			n := float64(b.N)
			b.ReportMetric(float64(took[0].Nanoseconds())/n, "none-ns/batch")
			b.ReportMetric(float64(took[1].Nanoseconds())/n, "one-ns/batch")
			b.ReportMetric(float64(took[1])/float64(took[0]), "x-time")
		})
	}
}

// feedApplier applies delta batches of a peer's to a member, with
// subscribers that keep up (see BenchmarkApplyWithSubscriber).
type feedApplier struct {
	c      *Cache
	frames bool
	node   *transport.Node // the receiving side as gossip builds it, over the Cache's store and clock (frames)
	keys   []string
	value  []byte
	wall   int64 // the last timestamp's
	recs   []crdt.Record
	codec  *wire.Codec
	frame  *[][]byte // the frames encoded ahead, shared by members side by side
	origin crdt.NodeID
}

// feedAhead is how many frames are encoded ahead, out of the timed loop.
const feedAhead = 1000

func newFeedApplier(b *testing.B, frames bool, subscribers int) *feedApplier {
	c := newCache(b, testConfig("bench"))
	if subscribers == 1 {
		sub, err := c.Subscribe("", 0)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range sub.C {
			}
		}()
		b.Cleanup(func() { sub.Close(); <-done })
	}
	a := &feedApplier{c: c, frames: frames, value: make([]byte, 100), keys: make([]string, 10_000), recs: make([]crdt.Record, 100),
		wall: c.phys(), origin: 7, frame: new([][]byte)}
	for i := range a.keys {
		a.keys[i] = fmt.Sprintf("key:%012d", i)
	}
	if frames {
		node, err := transport.New(transport.Config{Name: "bench", Replica: lagReplica{c.store, &c.deltaLag, &c.repairLag, nil}, Clock: c.clock})
		if err != nil {
			b.Fatal(err)
		}
		a.node, a.codec = node, wire.NewCodec(wire.Limits{})
	}
	return a
}

// batch fills a.recs with batch i's records, each with a later timestamp.
func (a *feedApplier) batch(i int) []crdt.Record {
	for j := range a.recs {
		a.wall++
		a.recs[j] = crdt.Record{Key: a.keys[(i*100+j)%len(a.keys)], Value: a.value, Time: crdt.Timestamp{Wall: a.wall, Node: a.origin}}
	}
	return a.recs
}

// ahead says batch i is the first of the next frames to encode.
func (a *feedApplier) ahead(i int) bool { return a.frames && i > 0 && i%feedAhead == 0 }

// prepare encodes the frames of batches from on (frames only).
func (a *feedApplier) prepare(from int) {
	if !a.frames {
		return
	}
	if *a.frame == nil {
		*a.frame = make([][]byte, feedAhead)
	}
	for k := range *a.frame {
		f, err := a.codec.Encode((*a.frame)[k][:0], &wire.Delta{OriginID: a.origin, Records: a.batch(from + k)})
		if err != nil {
			panic(err)
		}
		(*a.frame)[k] = f
	}
}

// shareFrames makes a apply the frames other encodes.
func (a *feedApplier) shareFrames(other *feedApplier) { a.frame = other.frame }

// apply applies batch i: its frame received, or its records merged, and
// the feed flushed, as after a received frame.
func (a *feedApplier) apply(i int) {
	if a.frames {
		if _, err := a.node.Receive("", (*a.frame)[i%feedAhead], a.c.phys()); err != nil {
			panic(err)
		}
	} else {
		for _, r := range a.batch(i) {
			a.c.store.Apply(r, true, a.wall)
		}
	}
	a.c.feed.flush() // AfterReceive
}

// check fails b if nothing was applied.
func (a *feedApplier) check(b *testing.B) {
	if st := a.c.store.Stats(); st.Keys == 0 {
		b.Fatalf("store: %+v: the batches applied nothing", st)
	}
}
