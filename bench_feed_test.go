package bcache

import (
	"fmt"
	"testing"

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
				benchApplyWithSubscriber(b, path == "frame", subscribers)
			})
		}
	}
}

func benchApplyWithSubscriber(b *testing.B, frames bool, subscribers int) {
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
		defer func() { sub.Close(); <-done }()
	}
	value := make([]byte, 100)
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%012d", i)
	}
	const origin = crdt.NodeID(7)
	wall := c.phys()
	batch := func(i int) []crdt.Record {
		recs := make([]crdt.Record, 100)
		for j := range recs {
			wall++
			recs[j] = crdt.Record{Key: keys[(i*100+j)%len(keys)], Value: value, Time: crdt.Timestamp{Wall: wall, Node: origin}}
		}
		return recs
	}
	if !frames {
		recs := make([]crdt.Record, 100)
		for i := 0; b.Loop(); i++ {
			for j := range recs {
				wall++
				recs[j] = crdt.Record{Key: keys[(i*100+j)%len(keys)], Value: value, Time: crdt.Timestamp{Wall: wall, Node: origin}}
			}
			for _, r := range recs {
				c.store.Apply(r, true, wall)
			}
			c.feed.flush() // as after a received frame
		}
		return
	}
	// The receiving side as gossip builds it, over the Cache's own store
	// and clock.
	node, err := transport.New(transport.Config{Name: "bench", Replica: lagReplica{c.store, &c.deltaLag, &c.repairLag}, Clock: c.clock})
	if err != nil {
		b.Fatal(err)
	}
	codec := wire.NewCodec(wire.Limits{})
	const ahead = 1000
	encoded := make([][]byte, ahead)
	encode := func(from int) {
		for k := range encoded {
			f, err := codec.Encode(encoded[k][:0], &wire.Delta{OriginID: origin, Records: batch(from + k)})
			if err != nil {
				b.Fatal(err)
			}
			encoded[k] = f
		}
	}
	encode(0)
	for i := 0; b.Loop(); i++ {
		if i > 0 && i%ahead == 0 {
			b.StopTimer()
			encode(i)
			b.StartTimer()
		}
		if _, err := node.Receive("", encoded[i%ahead], c.phys()); err != nil {
			b.Fatal(err)
		}
		c.feed.flush() // AfterReceive
	}
	if st := c.store.Stats(); st.Keys == 0 {
		b.Fatalf("store: %+v: the frames applied nothing", st)
	}
}
