package lww

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestFinderNeverMissesAKeyThatStays: readers on other goroutines look
// up keys that stay in the table while its writer puts, replaces and
// removes thousands of others, growing and shrinking it (so that
// removals' back-shifts and resizes' moves carry the staying keys from
// slot to slot); every lookup of a staying key finds it, and every other
// lookup finds its own key's entry or none. (Without the change count's
// check, a reader that a back-shift or a move passed found nothing.)
func TestFinderNeverMissesAKeyThatStays(t *testing.T) {
	tab := newTable(nil)
	keys := make([]string, 4000)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	stay := make([]*Entry, 256)
	for i := range stay {
		stay[i] = &Entry{key: fmt.Sprint("stay", i)}
		tab.put(stay[i])
	}
	var done atomic.Bool
	var lookups, misses, wrong atomic.Int64
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for n := 0; !done.Load() || n < 1000; n++ {
				e := stay[rng.IntN(len(stay))]
				if got := tab.shared.Find(e.key); got == nil {
					misses.Add(1)
				} else if got.key != e.key {
					wrong.Add(1)
				}
				k := keys[rng.IntN(len(keys))]
				if got := tab.shared.Find(k); got != nil && got.key != k {
					wrong.Add(1)
				}
				lookups.Add(1)
			}
		}()
	}
	rng := rand.New(rand.NewPCG(3, 4))
	live := map[string]bool{}
	for step := range 400_000 {
		// Grows to about 4,000 churning keys and empties again, four
		// times: resizes up and down, and long runs to shift back.
		key := keys[rng.IntN(len(keys))]
		grow := step%100_000 < 60_000
		switch {
		case !live[key] && grow:
			tab.put(&Entry{key: key})
			live[key] = true
		case live[key] && step%5 == 0:
			tab.replace(&Entry{key: key})
		case live[key] && (!grow || step%4 == 0):
			tab.remove(key)
			delete(live, key)
		}
	}
	done.Store(true)
	readers.Wait()
	if misses.Load() != 0 || wrong.Load() != 0 {
		t.Fatalf("%d lookups: %d missed a key that stays, %d found another key's entry", lookups.Load(), misses.Load(), wrong.Load())
	}
	for _, e := range stay {
		if tab.get(e.key) != e {
			t.Fatalf("lost %q", e.key)
		}
	}
}

// TestFinderProbesAgainAfterAMove: a reader that loaded the table's
// arrays just before a resize's steps moved every entry out of them
// probes again and finds its key, rather than none; the resize's steps
// and a removal's back-shift each leave the change count two further on
// (odd while they move), and a resize finished at once (finish), which
// moves no entry past a reader, leaves it where it was.
func TestFinderProbesAgainAfterAMove(t *testing.T) {
	tab := newTable(nil)
	e := &Entry{key: "k"}
	tab.put(e)
	for i := range 5 {
		tab.put(&Entry{key: fmt.Sprint("other", i)})
	}
	c := tab.shared.changes.Load()
	once := true
	tab.shared.viewed = func() {
		if once { // between the reader's view and its probe: a resize, its steps all made
			once = false
			tab.begin(2 * len(tab.slots))
			for tab.old != nil {
				tab.migrate()
			}
		}
	}
	if got := tab.shared.Find("k"); got != e {
		t.Fatalf("found %p after a resize moved the entries; want %p", got, e)
	}
	if d := tab.shared.changes.Load() - c; d == 0 || d%2 != 0 {
		t.Fatalf("the resize moved the change count by %d: want an even number, not 0", d)
	}
	tab.shared.viewed = nil
	c = tab.shared.changes.Load()
	v := tab.shared.view.Load()
	tab.begin(2 * len(tab.slots))
	tab.finish()
	if d := tab.shared.changes.Load() - c; d != 0 {
		t.Fatalf("a resize finished at once moved the change count by %d: want 0", d)
	}
	if got := probe(v.slots, v.hashes, "k", tab.hash("k")); got != e {
		t.Fatalf("the arrays a resize finished at once dropped hold %p for the key, want %p", got, e)
	}
	// A removal whose run shifts back: keys of one home, removed first.
	tab = newTable(nil)
	var run []*Entry
	for i := 0; len(run) < 3; i++ {
		if k := fmt.Sprint("r", i); tab.hash(k)&uint32(len(tab.slots)-1) == 0 {
			run = append(run, &Entry{key: k})
			tab.put(run[len(run)-1])
		}
	}
	c = tab.shared.changes.Load()
	tab.remove(run[0].key)
	if d := tab.shared.changes.Load() - c; d != 2 {
		t.Fatalf("a removal that shifted entries back moved the change count by %d: want 2", d)
	}
	for _, e := range run[1:] {
		if tab.shared.Find(e.key) != e {
			t.Fatalf("lost %q", e.key)
		}
	}
}

// TestTableResistsChosenCollisions: keys chosen to share the low bits of
// their public key hash (crdt.HashKey, which anyone can compute) spread
// out in the table, which probes with a hash seeded per table: 1,000
// keys that share 11 low bits, probed by those, would fill one run of
// 1,000 slots, and every lookup of one would walk it (the store's readers
// among them: 74-79 times slower Sets and Gets at 20,000 such keys, when
// the readers' index probed with the public hash). The test measures the
// longest run of occupied slots, not time.
func TestTableResistsChosenCollisions(t *testing.T) {
	m := newMap(t, Config{DigestBits: 4})
	buf := []byte("chosen-")
	for i, found := 0, 0; found < 1000; i++ {
		key := string(strconv.AppendInt(buf, int64(i), 10))
		if crdt.HashKey(key)&0x7ff != 0 {
			continue
		}
		apply(m, set(key, "v", ts(1, 1)))
		found++
	}
	m.entries.finish()
	slots := m.entries.slots
	longest, run := 0, 0
	for i := range 2 * len(slots) {
		if slots[i%len(slots)].Load() != nil {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	if longest > 100 {
		t.Fatalf("a run of %d occupied slots among 1000 keys in %d slots", longest, len(slots))
	}
}

// TestFinderDoesNotTrustAMissWhileEntriesMove: a reader that finds
// nothing while the writer is moving entries (its change count odd, the
// key's entry between two slots) probes again once the move is done and
// finds it, whatever the count was before and after its first probe.
func TestFinderDoesNotTrustAMissWhileEntriesMove(t *testing.T) {
	tab := newTable(nil)
	e := &Entry{key: "k"}
	tab.put(e)
	i := index(tab.slots, tab.hashes, "k", tab.hash("k"))
	tab.moving() // as a back-shift does: the entry off its slot for a moment
	tab.slots[i].Store(nil)
	looks := 0
	tab.shared.viewed = func() {
		if looks++; looks == 2 { // the reader probes again: the move ends
			tab.slots[i].Store(e)
			tab.movedAll()
		}
	}
	if got := tab.shared.Find("k"); got != e {
		t.Fatalf("found %p while an entry moved; want %p", got, e)
	}
	if looks < 2 {
		t.Fatalf("the reader looked %d times; want it to probe again", looks)
	}
}
