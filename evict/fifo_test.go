package evict

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestQueueKeepsOrderAcrossBlocksAndWraps drives a queue with random
// pushes, pops, removals from anywhere and size changes against a plain
// slice, through many blocks and with the positions wrapping (posMod
// lowered to a few hundred): the entries come out in the order they went
// in, every slot names its entry, and the counts of entries and bytes
// are the model's, also while a compaction is under way.
func TestQueueKeepsOrderAcrossBlocksAndWraps(t *testing.T) {
	lowerPosMod(t, 2*300+2*minCompact+7) // above the span of at most 300 entries
	// The steps with a compaction under way.
	compacting := 0
	for seed := range uint64(12) {
		r := rand.New(rand.NewPCG(seed, 1))
		// Seeds from 8 on remove more and pop less: their holes outnumber
		// their entries, and compactions run.
		pushes, pops, removes := 5, 7, 9
		if seed >= 8 {
			pushes, pops, removes = 5, 5, 9
		}
		q := fifo[*sized]{id: mainQueue}
		var model []*sized
		check := func(step int) {
			t.Helper()
			if q.len() != len(model) {
				t.Fatalf("seed %d step %d: len %d, model %d", seed, step, q.len(), len(model))
			}
			sum := 0
			for _, e := range model {
				sum += e.size
				if pos := q.posOf(e.slot); pos < q.head || pos >= q.tail || *q.at(pos) != e {
					t.Fatalf("seed %d step %d: %s's slot %d names another place", seed, step, e.name, e.slot)
				}
			}
			if q.bytes != sum {
				t.Fatalf("seed %d step %d: bytes %d, sizes sum %d", seed, step, q.bytes, sum)
			}
			if q.span() > 2*len(model)+2*minCompact {
				t.Fatalf("seed %d step %d: span %d for %d entries", seed, step, q.span(), len(model))
			}
		}
		for step := range 200_000 {
			switch op := r.IntN(10); {
			case op < pushes && len(model) < 300:
				e := &sized{entry: entry{name: fmt.Sprint(seed, "/", step)}, size: 1 + r.IntN(9)}
				q.push(e)
				q.recountStep() // as the policy does where it reads the bytes
				model = append(model, e)
			case op < pops && len(model) > 0:
				e, ok := q.pop()
				if !ok || e != model[0] || e.slot != 0 {
					t.Fatalf("seed %d step %d: pop gave %v, want %s", seed, step, e, model[0].name)
				}
				model = model[1:]
			case op < removes && len(model) > 0:
				model = removeAt(&q, model, r.IntN(len(model)))
			case len(model) > 0:
				resizeAny(r, &q, model)
			}
			check(step)
			if q.compacting {
				compacting++
			}
		}
		for _, want := range model {
			if e, ok := q.pop(); !ok || e != want {
				t.Fatalf("seed %d: drained %v, want %s", seed, e, want.name)
			}
		}
		if q.len() != 0 || len(q.blocks) > 1 {
			t.Fatalf("seed %d: emptied, len %d, %d blocks held", seed, q.len(), len(q.blocks))
		}
	}
	if compacting < 1000 {
		t.Fatalf("a compaction was under way at %d steps: the test hardly drives one", compacting)
	}
}

// counted is an entry that counts the calls a queue makes on it.
type counted struct {
	entry
	calls *int
}

func (e *counted) SetSlot(i int) { *e.calls++; e.entry.SetSlot(i) }
func (e *counted) Size() int     { *e.calls++; return 1 }

// TestQueueWorkIsBoundedPerCall: a push or a pop touches a few entries,
// however large the queue. A queue in one slice, compacted once its
// popped prefix was half of it and grown by append, moved every entry
// it held in one push (29-35 ms at 889,000 entries, under the store's
// eviction lock): a queue turned over many times, as a main queue is,
// now takes and lets go of whole blocks, and only counts its entries'
// sizes again a few at a time where its bytes are read.
func TestQueueWorkIsBoundedPerCall(t *testing.T) {
	const n = 50_000
	calls := 0
	q := fifo[*counted]{id: mainQueue}
	for i := range n {
		q.push(&counted{entry: entry{name: fmt.Sprint(i)}, calls: &calls})
	}
	worst := 0
	for range 3 * n { // a main queue's turns: the front goes round
		calls = 0
		e, _ := q.pop()
		q.push(e)
		worst = max(worst, calls)
	}
	// pop: SetSlot and Size; push: SetSlot and Size.
	if want := 4; worst > want {
		t.Fatalf("a turn of the queue made %d calls on its entries, want at most %d", worst, want)
	}
	if len(q.blocks) > n/blockSize+2 {
		t.Fatalf("%d blocks for %d entries", len(q.blocks), n)
	}
}

// TestCompactionWorkIsBoundedPerPush: a queue whose holes outnumber its
// entries (deletes) is squeezed a few positions a push, in order, the
// entries pushed meanwhile too, and is as short as its entries once
// done. One push squeezed it all, moving every entry: 29 ms for a
// million entries after half a million deletes, under the store's
// eviction lock.
func TestCompactionWorkIsBoundedPerPush(t *testing.T) {
	const n = 50_000
	calls := 0
	q := fifo[*counted]{id: mainQueue}
	var all, model []*counted
	for i := range n {
		e := &counted{entry: entry{name: fmt.Sprint(i)}, calls: &calls}
		q.push(e)
		all = append(all, e)
	}
	for i, e := range all {
		if i%5 < 3 { // three in five deleted: the holes outnumber the entries
			q.remove(e)
		} else {
			model = append(model, e)
		}
	}
	worst, pushes := 0, 0
	for ; pushes == 0 || q.compacting; pushes++ {
		calls = 0
		e := &counted{entry: entry{name: fmt.Sprint("new", pushes)}, calls: &calls}
		q.push(e)
		model = append(model, e)
		worst = max(worst, calls)
		if pushes > n {
			t.Fatalf("the compaction has not ended after %d pushes", pushes)
		}
	}
	// push: SetSlot and Size; a position squeezed: SetSlot; a few dozen
	// positions a push.
	if want := min(2+compactPace, 100); worst > want {
		t.Fatalf("a push made %d calls on entries, want at most %d", worst, want)
	}
	if pushes < n/compactPace {
		t.Fatalf("the compaction ended after %d pushes, want %d or more (%d positions, %d a push)", pushes, n/compactPace, n, compactPace)
	}
	if q.holes != 0 || q.span() != len(model) || len(q.blocks) > len(model)/blockSize+1 {
		t.Fatalf("after the compaction: %d holes, span %d, %d blocks, for %d entries", q.holes, q.span(), len(q.blocks), len(model))
	}
	for _, e := range model {
		if got := *q.at(q.posOf(e.Slot())); got != e {
			t.Fatalf("%s's slot names %v's place", e.name, got)
		}
	}
	for i, want := range model {
		if e, ok := q.pop(); !ok || e != want {
			t.Fatalf("pop %d: %v %v, want %s", i, e, ok, want.name)
		}
	}
}

// TestCompactionWhileTheFrontPassesIt: pops during a compaction take the
// entries it squeezed, then pass into the holes it left and the places
// it has not read yet, across blocks let go of; the compaction goes on
// from the front, and the entries come out in order.
func TestCompactionWhileTheFrontPassesIt(t *testing.T) {
	for _, popped := range []int{compactPace / 4, compactPace, 3 * blockSize, 5 * blockSize} {
		q := fifo[*sized]{id: smallQueue}
		var model []*sized
		for i := range 10 * blockSize {
			e := &sized{entry: entry{name: fmt.Sprint(i)}, size: 1}
			q.push(e)
			if i%4 == 0 {
				model = append(model, e)
			}
		}
		for pos := q.head; pos < q.tail; pos++ { // three in four removed
			if e := *q.at(pos); !slices.Contains(model, e) {
				q.remove(e)
			}
		}
		pops := popped // after the first push, which starts the compaction
		for i := 0; i == 0 || q.compacting; i++ {
			e := &sized{entry: entry{name: fmt.Sprint("new", i)}, size: 1}
			q.push(e)
			model = append(model, e)
			for ; pops > 0 && len(model) > 0; pops-- {
				if e, ok := q.pop(); !ok || e != model[0] {
					t.Fatalf("%d popped: pop gave %v, want %s", popped, e, model[0].name)
				}
				model = model[1:]
			}
			for _, e := range model {
				if pos := q.posOf(e.slot); pos < q.head || pos >= q.tail || *q.at(pos) != e {
					t.Fatalf("%d popped, push %d: %s's slot names another place", popped, i, e.name)
				}
			}
		}
		if q.holes != 0 || q.span() != len(model) || q.len() != len(model) {
			t.Fatalf("after the compaction: %d holes, span %d, len %d, for %d entries", q.holes, q.span(), q.len(), len(model))
		}
		for _, want := range model {
			if e, ok := q.pop(); !ok || e != want {
				t.Fatalf("drained %v, want %s", e, want.name)
			}
		}
	}
}

// TestQueueFrontAndFindOverHolesAtBlockEnds drives a queue whose removals
// fall mostly near its front, so that runs of holes lie across block
// ends, with posMod just above its largest span: front, find and pop
// skip the holes, no block is let go while it holds an entry (the spare
// is empty), the blocks held match the span, and every slot and the
// byte count stay right.
func TestQueueFrontAndFindOverHolesAtBlockEnds(t *testing.T) {
	const maxLen = 1500
	// Just above its largest span: twice its entries, and a compaction's
	// growth while it runs (a compactPace-th; found by review).
	lowerPosMod(t, (2*maxLen+minCompact)*(compactPace+1)/compactPace)
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 3))
		q := fifo[*sized]{id: smallQueue}
		var model []*sized
		for step := range 150_000 {
			switch op := r.IntN(12); {
			case op < 5 && len(model) < maxLen:
				e := &sized{entry: entry{name: fmt.Sprint(step)}, size: 1 + r.IntN(9)}
				q.push(e)
				q.recountStep() // as the policy does where it reads the bytes
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
				// It looks at 2n positions at most, holes included.
				reach := want >= 0 && q.posOf(model[want].slot)-q.head < 2*int64(n)
				if ok && (want < 0 || e != model[want]) || !ok && reach {
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
				model = removeAt(&q, model, r.IntN(min(len(model), 1+r.IntN(2048))))
			case len(model) > 0:
				resizeAny(r, &q, model)
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

// lowerPosMod sets posMod to m for the test, so that positions wrap.
func lowerPosMod(t testing.TB, m int64) {
	old := posMod
	t.Cleanup(func() { posMod = old })
	posMod = m
}

// removeAt takes model's ith entry out of q and of model.
func removeAt(q *fifo[*sized], model []*sized, i int) []*sized {
	q.remove(model[i])
	return slices.Delete(model, i, i+1)
}

// resizeAny changes the size of one of model's entries, held by q, by -2
// to 2.
func resizeAny(r *rand.Rand, q *fifo[*sized], model []*sized) {
	e := model[r.IntN(len(model))]
	d := r.IntN(5) - 2
	e.size += d
	q.grow(e, d)
}
