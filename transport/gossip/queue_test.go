package gossip

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

func queued(chunks [][]crdt.Record) []string {
	var keys []string
	for _, c := range chunks {
		for _, r := range c {
			keys = append(keys, r.Key)
		}
	}
	return keys
}

func TestWriteQueueKeepsOrderAndBound(t *testing.T) {
	const max = 3*chunkLen + 10
	q := newStripedQueue(max, 1) // one stripe: one order
	for i := range max {
		if !q.push(crdt.Record{Key: strconv.Itoa(i)}) {
			t.Fatalf("push %d refused below the bound", i)
		}
	}
	if q.push(crdt.Record{Key: "over"}) {
		t.Fatal("push past the bound accepted")
	}
	select {
	case <-q.wake:
	default:
		t.Fatal("no wake-up after the first push")
	}
	batch := q.take(nil)
	keys := queued(batch)
	if len(keys) != max {
		t.Fatalf("took %d writes, want %d", len(keys), max)
	}
	for i, k := range keys {
		if k != strconv.Itoa(i) {
			t.Fatalf("write %d is %q: order lost", i, k)
		}
	}
	batch = q.recycle(batch)
	if !q.push(crdt.Record{Key: "again"}) {
		t.Fatal("push refused after take")
	}
	if got := queued(q.take(batch)); len(got) != 1 || got[0] != "again" {
		t.Fatalf("second take = %v, want [again]", got)
	}
}

func TestWriteQueueReusesChunks(t *testing.T) {
	q := newStripedQueue(16*chunkLen, 1)
	var batch [][]crdt.Record
	burst := spareChunks + 4
	used := map[*crdt.Record]bool{} // first element of every chunk handed out
	cycle := func() {
		for range burst * chunkLen {
			q.push(crdt.Record{Key: "k"})
		}
		batch = q.take(batch)
		for _, c := range batch {
			used[&c[:1][0]] = true
		}
		batch = q.recycle(batch)
	}
	cycle() // warm up: the chunks and the outer slices
	warm, outer := len(used), cap(batch)
	// A busy queue reuses its chunks and its outer slice: no chunk is ever
	// new after the first wake-up. (Counting allocations instead would see
	// every goroutine of the test process.)
	for range 20 {
		cycle()
	}
	if len(used) != warm {
		t.Fatalf("a busy queue handed out %d distinct chunks over 21 wake-ups, want the %d of the first", len(used), warm)
	}
	if cap(batch) != outer {
		t.Fatalf("the outer slice grew from %d to %d", outer, cap(batch))
	}
	if len(q.free) != burst {
		t.Fatalf("kept %d spare chunks, want the %d the last wake-up used", len(q.free), burst)
	}
	// A quiet wake-up lets the burst's chunks go.
	q.push(crdt.Record{Key: "k"})
	batch = q.recycle(q.take(batch))
	if len(q.free) != spareChunks {
		t.Fatalf("kept %d spare chunks after a one-write wake-up, want %d", len(q.free), spareChunks)
	}
	for _, c := range q.free {
		for _, r := range c[:cap(c)] {
			if r.Key != "" {
				t.Fatal("a spare chunk still references a shipped write")
			}
		}
	}
}

// Writers on several processors push while the loop takes: every write is
// taken exactly once, and the last ones wake the loop (a write counted
// while take ran must not be left waiting for a push that never comes).
func TestStripedQueueTakesEveryWriteOnce(t *testing.T) {
	const writers, each = 8, 20_000
	q := newStripedQueue(writers*each, 4)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if !q.push(crdt.Record{Key: strconv.Itoa(w*each + i)}) {
					t.Errorf("push refused below the bound")
					return
				}
			}
		}()
	}
	seen := make([]bool, writers*each)
	got := 0
	var batch [][]crdt.Record
	deadline := time.After(time.Minute) // a stranded write hangs here
	for got < len(seen) {
		select {
		case <-q.wake:
		case <-deadline:
			t.Fatalf("took %d of %d writes; the rest never woke the loop (queue holds %d)", got, len(seen), q.len())
		}
		batch = q.take(batch)
		for _, k := range queued(batch) {
			i, _ := strconv.Atoi(k)
			if seen[i] {
				t.Fatalf("write %d taken twice", i)
			}
			seen[i] = true
			got++
		}
		batch = q.recycle(batch)
	}
	wg.Wait()
	if n := q.len(); n != 0 {
		t.Fatalf("queue counts %d writes after all were taken", n)
	}
}
