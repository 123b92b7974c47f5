package evict

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"pgregory.net/rapid"
)

// TestPolicyKeepsItsBooksAcrossWraps drives a policy, not a bare queue,
// with the queues' positions wrapping (posMod lowered to just above the
// span its queues may reach) and through many blocks: writes here and
// received, rewrites that change sizes, reads, removals and victims under
// bounds in entries or bytes; the books hold after every step.
func TestPolicyKeepsItsBooksAcrossWraps(t *testing.T) {
	const keys = 40
	lowerPosMod(t, 2*keys+2*minCompact+1)
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Uint64().Draw(t, "seed")
		maxKeys := rapid.IntRange(0, keys).Draw(t, "maxKeys")
		maxBytes := 0
		if maxKeys == 0 || rapid.Bool().Draw(t, "bytes") {
			maxBytes = rapid.IntRange(1, 400).Draw(t, "maxBytes")
		}
		r := rand.New(rand.NewPCG(seed, 7))
		var p Policy[*sized]
		p.Init(maxKeys)
		res := map[string]*sized{}
		known := map[string]bool{}
		total := 0
		for step := range 20_000 {
			k := fmt.Sprint(r.IntN(keys))
			switch op := r.IntN(8); op {
			case 0, 1, 2:
				n := r.IntN(30)
				_, _, grown := writeModel(&p, res, known, k, n, op == 2, int64(step))
				total += grown
				for maxKeys > 0 && len(res) > maxKeys || maxBytes > 0 && total > maxBytes {
					b := 0
					if maxBytes > 0 && total > maxBytes {
						b = total
					}
					v, ok := p.Victim(b)
					if !ok || res[v.name] != v || v.slot != 0 {
						t.Fatalf("step %d: victim %v %v", step, v, ok)
					}
					delete(res, v.name)
					total -= v.size
				}
			case 3, 4, 5:
				if e, ok := res[k]; ok {
					Touch(e.Use())
				}
			case 6:
				if e, ok := res[k]; ok {
					p.Remove(e)
					delete(res, k)
					total -= e.size
				}
			case 7:
				if e, ok := res[k]; ok && r.IntN(4) == 0 {
					p.Remove(e)
					delete(res, k)
					total -= e.size
				}
			}
			checkPolicy(t, &p, res)
			for _, q := range []*fifo[*sized]{&p.doomed, &p.small, &p.main} {
				if int64(q.span()) > posMod {
					t.Fatalf("step %d: queue %d span %d past posMod %d", step, q.id, q.span(), posMod)
				}
			}
		}
		drainModel(t, &p, res, total)
	})
}
