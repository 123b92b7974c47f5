package proptest

import (
	"flag"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
	"github.com/bcache-go/bcache/transport"
	"pgregory.net/rapid"
)

// recordingTB is a rapid.TB that records a failure instead of failing the
// test, so a test can assert that the harness rejects a broken replica.
type recordingTB struct {
	name   string
	mu     sync.Mutex
	failed bool
	msgs   []string
}

func (r *recordingTB) Helper()                   {}
func (r *recordingTB) Name() string              { return r.name }
func (r *recordingTB) Logf(string, ...any)       {}
func (r *recordingTB) Log(...any)                {}
func (r *recordingTB) Skipf(string, ...any)      { runtime.Goexit() }
func (r *recordingTB) Skip(...any)               { runtime.Goexit() }
func (r *recordingTB) SkipNow()                  { runtime.Goexit() }
func (r *recordingTB) Errorf(f string, a ...any) { r.fail(f) }
func (r *recordingTB) Error(a ...any)            { r.fail("error") }
func (r *recordingTB) Fatalf(f string, a ...any) { r.fail(f); runtime.Goexit() }
func (r *recordingTB) Fatal(a ...any)            { r.fail("fatal"); runtime.Goexit() }
func (r *recordingTB) FailNow()                  { r.fail("failnow"); runtime.Goexit() }
func (r *recordingTB) Fail()                     { r.fail("fail") }
func (r *recordingTB) Failed() bool              { r.mu.Lock(); defer r.mu.Unlock(); return r.failed }

func (r *recordingTB) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	r.msgs = append(r.msgs, msg)
}

// harnessFails runs the harness over replicas built by factory and reports
// whether it found a counterexample.
func harnessFails(t *testing.T, name string, factory Factory) bool {
	t.Helper()
	rec := &recordingTB{name: "BrokenReplica_" + strings.ReplaceAll(name, " ", "_")}
	t.Cleanup(func() {
		os.RemoveAll(filepath.Join("testdata", "rapid", rec.name))
		os.Remove(filepath.Join("testdata", "rapid")) // only if empty
		os.Remove("testdata")
	})
	// A fixed seed and budget make the outcome the same on every run.
	setFlag(t, "rapid.seed", "1")
	setFlag(t, "rapid.checks", "1000")
	setFlag(t, "rapid.steps", "100")
	setFlag(t, "rapid.shrinktime", "50ms") // finding one is what counts here
	setFlag(t, "rapid.nofailfile", "true")
	done := make(chan struct{})
	go func() {
		defer close(done)
		rapid.Check(rec, Property(Config{Factory: factory}))
	}()
	<-done
	return rec.Failed()
}

// setFlag sets a command-line flag for the rest of the test.
func setFlag(t *testing.T, name, value string) {
	t.Helper()
	f := flag.Lookup(name)
	if f == nil {
		t.Fatalf("no flag %s", name)
	}
	old := f.Value.String()
	if err := flag.Set(name, value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flag.Set(name, old) })
}

// TestHarnessCatchesBrokenMerges: the harness must find a counterexample
// for merge rules that are wrong in the ways the original bcache was.
func TestHarnessCatchesBrokenMerges(t *testing.T) {
	tests := []struct {
		name  string
		merge func(*lww.Map, crdt.Record, bool, int64) crdt.Outcome
	}{
		{"longest expiry wins", func(m *lww.Map, r crdt.Record, _ bool, _ int64) crdt.Outcome {
			if cur, ok := m.Lookup(r.Key); ok && cur.Expires == 0 && r.Expires != 0 {
				return crdt.Stale // an expiring write never beats one that lives forever
			}
			o, _ := m.Merge(r, false, 0, nil)
			return o
		}},
		{"received deletes are ignored", func(m *lww.Map, r crdt.Record, _ bool, _ int64) crdt.Outcome {
			if r.Tombstone {
				return crdt.Stale
			}
			o, _ := m.Merge(r, false, 0, nil)
			return o
		}},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			cfg := DefaultMapConfig()
			cfg.Merge = tc.merge
			if !harnessFails(t, "map "+tc.name, MapFactory(cfg)) {
				t.Fatalf("the harness passed replicas whose merge is broken: %s", tc.name)
			}
		})
	}
}

// broken is a production store with one rule broken.
type broken struct {
	Store
	apply  func(s Store, r crdt.Record, delta bool, now int64) crdt.Outcome
	forget func(s Store, v crdt.Version, now int64) (crdt.Record, bool)
}

func (b broken) Apply(r crdt.Record, delta bool, now int64) crdt.Outcome {
	if b.apply != nil {
		return b.apply(b.Store, r, delta, now)
	}
	return b.Store.Apply(r, delta, now)
}

func (b broken) Forget(v crdt.Version, now int64) (crdt.Record, bool) {
	if b.forget != nil {
		return b.forget(b.Store, v, now)
	}
	return b.Store.Forget(v, now)
}

// TestHarnessCatchesBrokenStores: the harness, on the production store,
// must find a counterexample for each rule broken: the original bcache's
// two merge bugs, and the ways a member could trust what a peer sends.
func TestHarnessCatchesBrokenStores(t *testing.T) {
	tests := []struct {
		name string
		b    broken
	}{
		{"longest expiry wins", broken{apply: func(s Store, r crdt.Record, delta bool, now int64) crdt.Outcome {
			if cur, ok := s.Lookup(r.Key); ok && !cur.Tombstone && cur.Expires == 0 && r.Expires != 0 {
				return crdt.Stale
			}
			return s.Apply(r, delta, now)
		}}},
		{"received deletes are ignored", broken{apply: func(s Store, r crdt.Record, delta bool, now int64) crdt.Outcome {
			if r.Tombstone {
				return crdt.Stale
			}
			return s.Apply(r, delta, now)
		}}},
		{"every rejection is trusted", broken{forget: func(s Store, v crdt.Version, _ int64) (crdt.Record, bool) {
			return s.Forget(v, math.MaxInt64) // no ceiling: a forged rejection of a fresh write
		}}},
		{"received versions are restamped", broken{apply: func(s Store, r crdt.Record, delta bool, now int64) crdt.Outcome {
			r.Time.Logical++
			return s.Apply(r, delta, now)
		}}},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			cfg := DefaultStoreConfig()
			cfg.Wrap = func(s Store) transport.Replica { b := tc.b; b.Store = s; return b }
			if !harnessFails(t, "store "+tc.name, StoreFactory(cfg)) {
				t.Fatalf("the harness passed production stores with a broken rule: %s", tc.name)
			}
		})
	}
}
