package proptest

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// twoReplicas returns a 2-member cluster whose members both hold the same n
// keys (16-byte keys, 100-byte values) with a 16-bit digest.
func twoReplicas(b *testing.B, n int) *Cluster {
	b.Helper()
	cfg := DefaultMapConfig()
	cfg.Map = lww.Config{DigestBits: 16}
	cfg.Transport.LeavesPerStep, cfg.Transport.MaxRepairBytes = 0, 0 // production defaults
	c, err := NewCluster(2, MapFactory(cfg), start)
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	for i := range n {
		r := crdt.Record{Key: fmt.Sprintf("key:%012d", i), Value: value, Time: crdt.Timestamp{Wall: start - int64(n-i), Node: 99}}
		for m := range 2 {
			c.Replica(m).(*MapReplica).Map().Merge(r, false, 0, nil)
		}
	}
	return c
}

// session runs one anti-entropy session from member 0 to member 1 and
// returns the bytes it put on the network.
func session(b *testing.B, c *Cluster) uint64 {
	before := c.Net.Stats().Bytes
	c.StartSession(0, 1)
	if err := c.DeliverAll(1 << 20); err != nil {
		b.Fatal(err)
	}
	return c.Net.Stats().Bytes - before
}

// BenchmarkAntiEntropy measures sessions between two replicas of 1M keys:
// one that finds nothing to do, and one that repairs 100 keys written on
// one side only (half on each side).
func BenchmarkAntiEntropy(b *testing.B) {
	const n = 1_000_000
	c := twoReplicas(b, n)
	b.Run("converged/keys=1M", func(b *testing.B) {
		var bytes uint64
		for b.Loop() {
			bytes = session(b, c)
		}
		b.ReportMetric(float64(bytes), "bytes/session")
	})
	b.Run("repair-100/keys=1M", func(b *testing.B) {
		var bytes uint64
		round := 0
		for b.Loop() {
			b.StopTimer()
			for i := range 100 {
				key := fmt.Sprintf("key:%012d", (round*100+i)*7919%n)
				c.Replica(i%2).(*MapReplica).Map().Merge(crdt.Record{Key: key, Value: make([]byte, 100), Time: crdt.Timestamp{Wall: start + int64(round*100+i), Node: 1}}, false, 0, nil)
			}
			round++
			b.StartTimer()
			bytes = session(b, c)
		}
		b.ReportMetric(float64(bytes), "bytes/session")
		b.ReportMetric(float64(bytes)/100, "bytes/difference")
	})
}
