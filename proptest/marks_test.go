package proptest

import (
	"math"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// forgedMarks answers every ask for watermarks with a mark at now in every
// leaf of the harness's digest (8 bits): what a key holder could forge.
func forgedMarks(_ []store.Mark, now int64) []store.Mark {
	ms := make([]store.Mark, 1<<8)
	for i := range ms {
		ms[i] = store.Mark{Leaf: uint32(i), Time: crdt.Timestamp{Wall: now, Node: math.MaxUint64}}
	}
	return ms
}

// TestForgedMarksAreHarmlessWithinTheStableBound: members that take, at
// every ask, a watermark at their own time in every bucket (what a member
// holding the cluster key can answer) lose no write and converge: they
// adopt each within their stable bound, below which every member they
// count holds every record (package lww, rule 8).
func TestForgedMarksAreHarmlessWithinTheStableBound(t *testing.T) {
	t.Parallel() // rapidfail alone: two at once on two cores (see rapidfail.setFlags)
	cfg := DefaultStoreConfig()
	cfg.Marks = forgedMarks
	if failure := harnessFailure(t, "forged marks", Config{Factory: StoreFactory(cfg)}); failure != "" {
		t.Fatalf("forged marks, adopted within the stable bound, broke the cluster: %s", failure)
	}
}

// TestHarnessCatchesMarksAdoptedWhole is the broken variant of
// TestForgedMarksAreHarmlessWithinTheStableBound: the same marks raised
// at once, as a restore takes a snapshot's, reject fresh writes that were
// on their way, and lose them.
func TestHarnessCatchesMarksAdoptedWhole(t *testing.T) {
	cfg := DefaultStoreConfig()
	cfg.Marks, cfg.MarksWhole = forgedMarks, true
	caught(t, "forged marks adopted whole", Config{Factory: StoreFactory(cfg)}, "no watermark can cover it yet", "watermarks raised to forged marks whole")
}

// TestANewcomerRefusesACollectedDeletesValue: the marks on the harness's
// replicas (the production store and node), as the Cache's tests show
// them on members: n2 holds k, saves a snapshot and leaves; n0 deletes k,
// and n0 and n1 collect the delete once they stop waiting for n2 (a
// minute). n3 joins after that, syncs, and asks for their watermarks;
// then, cut off from n0 and n1 with n2 back from its old snapshot, n3
// never holds k's value, and n2 loses it. The broken variant, replicas
// that ask no one (NoMarks), takes the value back on n3.
func TestANewcomerRefusesACollectedDeletesValue(t *testing.T) {
	for _, noMarks := range []bool{false, true} {
		cfg := DefaultStoreConfig()
		cfg.Vary, cfg.NoMarks, cfg.Horizon = nil, noMarks, 10*time.Minute
		c, err := NewCluster(3, StoreFactory(cfg), start)
		if err != nil {
			t.Fatal(err)
		}
		run := func(rounds int, collect ...int) {
			t.Helper()
			for range rounds {
				c.Advance(5 * time.Second)
				c.Tick()
				if err := c.DeliverAll(budget); err != nil {
					t.Fatal(err)
				}
				for _, i := range collect {
					c.Replica(i).GC()
				}
			}
		}
		holds := func(i int) bool {
			for _, r := range c.Replica(i).Records() {
				if r.Key == "k" {
					return true
				}
			}
			return false
		}
		c.Set(0, "k", []byte("old"), 0)
		run(2)
		saved, err := c.Snapshot(2)
		if err != nil || !holds(2) {
			t.Fatalf("n2's snapshot: %v; n2 holds k: %v", err, holds(2))
		}
		c.Leave(2)
		c.Delete(0, "k")
		run(20, 0, 1) // past FailedTimeout: n2 is waited for no more
		if holds(0) || holds(1) {
			t.Fatalf("noMarks %v: the delete of k not collected on n0 (%v) or n1 (%v)", noMarks, holds(0), holds(1))
		}
		n3, err := c.Join()
		if err != nil {
			t.Fatal(err)
		}
		run(6, 0, 1, n3) // synced, asked, and past its stable bound's margin
		c.Partition([]string{"n0", "n1"})
		if err := c.RestartFrom(2, saved); err != nil {
			t.Fatal(err)
		}
		if !holds(2) {
			t.Fatal("n2 did not restore k from its snapshot")
		}
		served := false
		for range 6 {
			run(1, n3, 2)
			if _, ok := c.Replica(n3).Get("k"); ok {
				served = true
			}
		}
		switch {
		case noMarks && !served:
			t.Fatal("without the marks, n3 never took k back from n2's old snapshot: the scenario shows nothing")
		case !noMarks && served:
			t.Fatal("n3 served k from n2's old snapshot, whose delete n0 and n1 collected before it joined")
		case !noMarks:
			if _, ok := c.Replica(2).Get("k"); ok {
				t.Fatal("n2 still serves k, cut off with n3")
			}
		}
	}
}
