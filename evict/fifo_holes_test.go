package evict

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestQueueFrontAndFindOverHolesAtBlockEnds drives a queue whose removals
// fall mostly near its front, so that runs of holes lie across block
// ends, with posMod just above its largest span: front, find and pop
// skip the holes, no block is let go while it holds an entry (the spare
// is empty), the blocks held match the span, and every slot and the
// byte count stay right.
func TestQueueFrontAndFindOverHolesAtBlockEnds(t *testing.T) {
	old := posMod
	t.Cleanup(func() { posMod = old })
	const maxLen = 1500
	posMod = 2*maxLen + minCompact
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 3))
		q := fifo[*sized]{id: smallQueue}
		var model []*sized
		for step := range 150_000 {
			switch op := r.IntN(12); {
			case op < 5 && len(model) < maxLen:
				e := &sized{entry: entry{name: fmt.Sprint(step)}, size: 1 + r.IntN(9)}
				q.push(e)
				model = append(model, e)
			case op < 6 && len(model) > 0:
				e, ok := q.front()
				if !ok || e != model[0] {
					t.Fatalf("seed %d step %d: front %v", seed, step, e)
				}
			case op < 7:
				n := r.IntN(2000)
				want := -1
				m := r.IntN(10)
				for i := range min(n, len(model)) {
					if model[i].size == m {
						want = i
						break
					}
				}
				e, ok := q.find(n, func(e *sized) bool { return e.size == m })
				if ok != (want >= 0) || ok && e != model[want] {
					t.Fatalf("seed %d step %d: find", seed, step)
				}
			case op < 8 && len(model) > 0:
				e, ok := q.pop()
				if !ok || e != model[0] {
					t.Fatalf("seed %d step %d: pop", seed, step)
				}
				model = model[1:]
			case op < 11 && len(model) > 0:
				// remove in runs, front-heavy, to leave holes at block ends
				i := r.IntN(min(len(model), 1+r.IntN(2048)))
				q.remove(model[i])
				model = slices.Delete(model, i, i+1)
			case len(model) > 0:
				e := model[r.IntN(len(model))]
				d := r.IntN(5) - 2
				e.size += d
				q.grow(e, d)
			}
			if q.len() != len(model) || int64(q.span()) > posMod {
				t.Fatalf("seed %d step %d: len %d model %d span %d", seed, step, q.len(), len(model), q.span())
			}
			if q.head-q.base < 0 || q.head-q.base >= blockSize || q.tail-q.base > int64(len(q.blocks))*blockSize {
				t.Fatalf("seed %d step %d: base %d head %d tail %d blocks %d", seed, step, q.base, q.head, q.tail, len(q.blocks))
			}
			if len(q.blocks) > q.span()/blockSize+2 {
				t.Fatalf("seed %d step %d: %d blocks for span %d", seed, step, len(q.blocks), q.span())
			}
			if q.spare != nil {
				for _, x := range q.spare {
					if x != nil {
						t.Fatalf("seed %d step %d: spare holds an entry", seed, step)
					}
				}
			}
			if step%97 == 0 {
				sum := 0
				for _, e := range model {
					sum += e.size
					if pos := q.posOf(e.slot); *q.at(pos) != e {
						t.Fatalf("slot")
					}
				}
				if sum != q.bytes {
					t.Fatalf("seed %d step %d: bytes %d want %d", seed, step, q.bytes, sum)
				}
				n := 0
				for pos := q.head; pos < q.tail; pos++ {
					if *q.at(pos) != nil {
						n++
					}
				}
				if n != len(model) {
					t.Fatalf("count")
				}
			}
		}
	}
}
