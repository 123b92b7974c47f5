package bcache

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// BenchmarkApplyWithSubscriber measures applying a batch of 100 received
// records (16-byte keys, 100-byte values, over 10,000 keys) to a member
// with no subscriber and with one that keeps up, in the same run: the
// cost of the change feed.
//
//	go test -run '^$' -bench ApplyWithSubscriber -count 5 .
func BenchmarkApplyWithSubscriber(b *testing.B) {
	for _, subscribers := range []int{0, 1} {
		b.Run(fmt.Sprintf("subscribers=%d", subscribers), func(b *testing.B) {
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
			wall := c.phys()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				for j := range 100 {
					wall++
					k := keys[(i*100+j)%len(keys)]
					c.store.Apply(crdt.Record{Key: k, Value: value, Time: crdt.Timestamp{Wall: wall, Node: 7}}, true, wall)
				}
				c.feed.flush() // as after a received frame
			}
		})
	}
}
