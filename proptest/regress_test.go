package proptest

import (
	"testing"
)

// newTestHarness is a harness over a fixed cluster, for replaying found
// counterexamples step by step.
func newTestHarness(t *testing.T, n int) *harness {
	t.Helper()
	cfg := Config{}
	cfg.fill()
	return harnessOver(cfg, newTestCluster(t, n))
}

// TestCrashOfEveryCollectorLosesTheDelete pins a counterexample that rapid
// found in the model (seed 15596406862652483499 at -rapid.steps=200): n1
// deletes a, n0 writes a with an older timestamp and goes away; n1 and n2
// collect the tombstone and then both crash. The knowledge of the delete
// died with them, so n0's older write is what the cluster converges to:
// not a resurrection (no member ever went back), and the model must count
// the key as lost to the crash rather than expect the delete.
func TestCrashOfEveryCollectorLosesTheDelete(t *testing.T) {
	h := newTestHarness(t, 3)
	h.model.write(h.c.Delete(1, "a"))
	older := h.c.Set(0, "a", []byte("old"), 0)
	h.model.write(older)
	h.c.Partition([]string{"n0"})
	for range 5 {
		h.c.Advance(h.cfg.Horizon / 4)
		h.c.Tick()
		if err := h.c.DeliverAll(budget); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			h.collect(t, i)
		}
	}
	if _, ok := h.reaped[1]["a"]; !ok {
		t.Fatal("n1 did not collect the tombstone of a")
	}
	for _, i := range []int{1, 2} {
		h.model.crashed(h, i)
		h.c.Crash(i)
	}
	if !h.model.lost["a"] {
		t.Fatal("the model expects a delete that only crashed members knew of")
	}
	if _, err := h.c.Converge(4, budget); err != nil {
		t.Fatal(err)
	}
	if v, ok := h.c.Replica(0).Get("a"); !ok || string(v) != "old" {
		t.Fatalf("n0 serves %q, %v; want its own write", v, ok)
	}
}
