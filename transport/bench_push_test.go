package transport

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport/wire"
)

// BenchmarkPushUnderRepairLoss: a pushes 50,000 records b lacks, in
// Repairs of 20 kB, four leaves a step, each of a's Repairs lost with the
// given probability (seeded), and sessions go on until the two agree. It
// reports the keys still differing after the first session, the bytes
// both sent until they agreed, and the sessions that took.
//
//	go test -run '^$' -bench PushUnderRepairLoss -benchtime 1x ./transport
func BenchmarkPushUnderRepairLoss(b *testing.B) {
	const n = 50_000
	for _, loss := range []float64{0.05, 0.20} {
		for _, seed := range []uint64{1, 2, 3} {
			b.Run(fmt.Sprintf("loss=%.2f/seed=%d", loss, seed), func(b *testing.B) {
				var left, bytes, sessions float64
				for b.Loop() {
					rng := rand.New(rand.NewPCG(seed, 7))
					p := newStorePair(b, Config{LeavesPerStep: 4, MaxRepairBytes: 20_000}, store.Config{Shards: 16, DigestBits: 8})
					for i := range n {
						p.write("a", crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: []byte("value-of-some-size-0123456789")})
					}
					drop := func(h hop, m wire.Message) bool {
						_, repair := m.(*wire.Repair)
						return repair && h.from == "a" && rng.Float64() < loss
					}
					k := 0
					for d := n; d > 0 && k < 10; d = len(p.diff()) {
						if k > 0 {
							p.now.Advance(10e9)
						}
						p.run("a", p.nodes["a"].StartSession("b", p.now.Now()), drop, nil)
						if k++; k == 1 {
							left += float64(len(p.diff()))
						}
					}
					sa, sb := p.nodes["a"].Stats(), p.nodes["b"].Stats()
					bytes += float64(sa.BytesSent + sb.BytesSent)
					sessions += float64(k)
				}
				b.ReportMetric(left/float64(b.N), "keys-left-after-1")
				b.ReportMetric(bytes/float64(b.N), "bytes-to-agree")
				b.ReportMetric(sessions/float64(b.N), "sessions")
			})
		}
	}
}
