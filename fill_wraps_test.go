package bcache

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestOwnersFillerErrorWrappingErrClosedIsAnswered: an owner whose filler
// returns an error of its own that wraps ErrClosed (a filler reading
// through another Cache that was closed) answers its asker with that
// error, as any filler's error (ErrOwnerFill). The owner took it for its
// own Close: its serving goroutine waited for this Cache to leave the
// cluster, holding one of the places of calls served at once, the asker
// heard nothing, waited out its fill timeout and ran the filler again
// (found by review).
func TestOwnersFillerErrorWrappingErrClosedIsAnswered(t *testing.T) {
	var runs atomic.Int32
	filler := func(ctx context.Context, key string) ([]byte, error) {
		runs.Add(1)
		return nil, fmt.Errorf("tier two: %w", ErrClosed)
	}
	const timeout = 2 * time.Second
	cs := fillCluster(t, 2, filler, timeout, slowProbes)
	asker, owner := notOwner(cs, "k")
	start := time.Now()
	_, err := asker.GetOrFill(context.Background(), "k")
	took := time.Since(start)
	if !errors.Is(err, ErrOwnerFill) {
		t.Fatalf("asked of %s: %v (after %v), want the owner's filler's error (ErrOwnerFill)", owner.Name(), err, took)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("the filler ran %d times in the cluster, want 1", n)
	}
	if took >= timeout {
		t.Fatalf("the answer took %v, past the fill timeout: the owner did not answer", took)
	}
	if st := asker.Stats(); st.FillFallbacks != 0 {
		t.Fatalf("the asker fell back to its own fill: %+v", st)
	}
}

// TestOwnersFillerErrorsAreTheFillersWhateverTheyWrap: an owner whose
// filler returns an error of its own that wraps one of the errors a fill
// gives (ErrValueTooLarge, from a Set into another Cache; ErrFillTimeout;
// ErrFillerPanic) answers it as the filler's error: ErrOwnerFill, with
// its text, once in the cluster. The owner took one wrapping
// ErrValueTooLarge for a value over its own bounds, answered that it
// held nothing, and the asker ran the filler again; one wrapping
// ErrFillTimeout reached the caller as the owner's fill timing out
// (found by review).
func TestOwnersFillerErrorsAreTheFillersWhateverTheyWrap(t *testing.T) {
	var runs atomic.Int32
	wrapped := map[string]error{"large": ErrValueTooLarge, "timeout": ErrFillTimeout, "panic": ErrFillerPanic}
	filler := func(ctx context.Context, key string) ([]byte, error) {
		runs.Add(1)
		return nil, fmt.Errorf("source says: %w", wrapped[key])
	}
	cs := fillCluster(t, 2, filler, 2*time.Second, slowProbes)
	for key := range wrapped {
		asker, owner := notOwner(cs, key)
		runs.Store(0)
		_, err := asker.GetOrFill(context.Background(), key)
		if !errors.Is(err, ErrOwnerFill) {
			t.Fatalf("%s, asked of %s: %v, want the owner's filler's error (ErrOwnerFill)", key, owner.Name(), err)
		}
		if n := runs.Load(); n != 1 {
			t.Fatalf("%s: the filler ran %d times in the cluster, want 1", key, n)
		}
	}
	if st := cs[0].Stats().FillFallbacks + cs[1].Stats().FillFallbacks; st != 0 {
		t.Fatalf("%d fills fell back to the asker", st)
	}
}
