package examples

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/bcache-go/bcache/internal/rapidfail"
	"github.com/bcache-go/bcache/proptest"
	"github.com/bcache-go/bcache/transport"
	"pgregory.net/rapid"
)

// recTB is a rapid.TB that records everything rapid says, for the tests of
// what a failing run reports.
type recTB struct {
	name   string
	mu     sync.Mutex
	failed bool
	out    []string
}

func (r *recTB) Helper()                   {}
func (r *recTB) Name() string              { return r.name }
func (r *recTB) Logf(f string, a ...any)   { r.add(false, fmt.Sprintf(f, a...)) }
func (r *recTB) Log(a ...any)              { r.add(false, fmt.Sprint(a...)) }
func (r *recTB) Skipf(string, ...any)      { runtime.Goexit() }
func (r *recTB) Skip(...any)               { runtime.Goexit() }
func (r *recTB) SkipNow()                  { runtime.Goexit() }
func (r *recTB) Errorf(f string, a ...any) { r.add(true, fmt.Sprintf(f, a...)) }
func (r *recTB) Error(a ...any)            { r.add(true, fmt.Sprint(a...)) }
func (r *recTB) Fatalf(f string, a ...any) { r.add(true, fmt.Sprintf(f, a...)); runtime.Goexit() }
func (r *recTB) Fatal(a ...any)            { r.add(true, fmt.Sprint(a...)); runtime.Goexit() }
func (r *recTB) FailNow()                  { r.add(true, ""); runtime.Goexit() }
func (r *recTB) Fail()                     { r.add(true, "") }
func (r *recTB) Failed() bool              { r.mu.Lock(); defer r.mu.Unlock(); return r.failed }
func (r *recTB) add(fail bool, s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = r.failed || fail
	r.out = append(r.out, s)
}
func (r *recTB) String() string { r.mu.Lock(); defer r.mu.Unlock(); return strings.Join(r.out, "\n") }

func runRec(name string, prop func(*rapid.T)) *recTB {
	rec := &recTB{name: name}
	done := make(chan struct{})
	go func() { defer close(done); rapid.Check(rec, prop) }()
	<-done
	return rec
}

func setFlags(t *testing.T, kv ...string) {
	for i := 0; i < len(kv); i += 2 {
		f := flag.Lookup(kv[i])
		old := f.Value.String()
		if err := flag.Set(kv[i], rapidfail.Scaled(kv[i], kv[i+1])); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { flag.Set(kv[i], old) })
	}
}

//go:noinline
func replicaPanics() { panic("replica bug") }

type panicky struct{ *Counter }

func (c panicky) Do(op proptest.Op) (any, []transport.Envelope) {
	if op.Name == "dec" {
		replicaPanics()
	}
	return c.Counter.Do(op)
}

// TestAReplicasPanicIsTracedFromItself: rapid's traceback of a replica's
// panic starts where it panicked. Recovered and raised again by the
// harness to note the run's steps, it started in the harness, four frames
// before the replica's of rapid's 32 (found by review).
func TestAReplicasPanicIsTracedFromItself(t *testing.T) {
	setFlags(t, "rapid.seed", "1", "rapid.nofailfile", "true", "rapid.checks", "100")
	spec := counterSpec(larger)
	spec.New = func(name string, inc int, _ func() int64) (proptest.Object, error) {
		return panicky{newCounter(name, inc, larger)}, nil
	}
	rec := runRec("Panicky", proptest.TypeProperty(spec))
	out := rec.String()
	_, tb, ok := strings.Cut(out, "Traceback:\n")
	if !ok {
		t.Fatalf("no traceback:\n%s", out)
	}
	first := strings.SplitN(tb, "\n", 2)[0]
	if !strings.Contains(first, "replicaPanics") {
		t.Fatalf("the traceback starts at %q, not at the replica's panic:\n%s", first, tb[:min(len(tb), 1200)])
	}
}

// TestAFrameToNoMemberFailsAnExploration: as under CheckType, a frame to
// a name no member has fails an exploration, and a simulation; both lost
// it without a word (found by review).
func TestAFrameToNoMemberFailsAnExploration(t *testing.T) {
	spec := counterSpec(larger)
	spec.New = func(name string, inc int, _ func() int64) (proptest.Object, error) {
		return strayCounter{newCounter(name, inc, larger)}, nil
	}
	script := []proptest.Scripted{{Member: 0, Op: proptest.Op{Name: "inc", Key: "a", Arg: int64(1)}}}
	n, err := proptest.Exploration(spec, script, proptest.Explore{})
	if err == nil || !strings.Contains(err.Error(), "no member") {
		t.Fatalf("Exploration of a replica that sends to \"nowhere\": %d runs, err %v", n, err)
	}
	if _, err := proptest.SimulateType(spec, simConfig); err == nil || !strings.Contains(err.Error(), "no member") {
		t.Fatalf("SimulateType of a replica that sends to \"nowhere\": %v", err)
	}
}

// TestCounterexampleReplaysNoFailFile: Counterexample runs from its seed
// alone: under the test's name, rapid replayed first the fail files a
// rapid.Check of the test had left (found by review). What the property
// drew first tells: the seed's first draw, or the fail file's. (The
// reports themselves are shrunk for 50 ms of the machine's time, and so
// may differ: compared, they failed a CI run on a busy machine, n=1
// against n=4.)
func TestCounterexampleReplaysNoFailFile(t *testing.T) {
	mode, first := 2, -1
	prop := func(rt *rapid.T) {
		n := rapid.IntRange(0, 1000).Draw(rt, "n")
		if first < 0 {
			first = n
		}
		if (mode == 1 && n >= 500) || (mode == 2 && n >= 1) {
			rt.Fatalf("n=%d", n)
		}
	}
	if proptest.Counterexample(t, prop) == "" {
		t.Fatal("no counterexample of mode 2")
	}
	seeds := first
	// An earlier rapid.Check of this test, of another property, failed
	// and left its fail file.
	dir := filepath.Join("testdata", "rapid", t.Name())
	t.Cleanup(func() { os.RemoveAll(dir) })
	mode = 1
	setFlags(t, "rapid.nofailfile", "false")
	if rec := runRec(t.Name(), prop); !rec.Failed() {
		t.Fatal("mode 1 did not fail")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.fail")); len(m) == 0 {
		t.Fatal("no fail file written")
	}
	mode, first = 2, -1
	if proptest.Counterexample(t, prop) == "" {
		t.Fatal("no counterexample of mode 2 with a fail file on disk")
	}
	if first != seeds {
		t.Fatalf("Counterexample drew n=%d first with a fail file on disk, n=%d without: it replayed the file", first, seeds)
	}
}

// TestAShortRunSaysItsSteps: a failure found under -short (rapid halves
// the steps) replays from its fail file only under -short, and its trace
// says so (the note compared the flag with its default alone: found by
// review).
func TestAShortRunSaysItsSteps(t *testing.T) {
	setFlags(t, "test.short", "true", "rapid.seed", "1", "rapid.nofailfile", "true")
	path := filepath.Join(t.TempDir(), "trace.txt")
	spec := counterSpec(func(held, received int64) int64 { return held + received })
	spec.TraceFile = path
	rec := runRec("Short", proptest.TypeProperty(spec))
	if !rec.Failed() {
		t.Fatal("the broken counter passed")
	}
	trace, _ := os.ReadFile(path)
	if !strings.Contains(string(trace), "short") {
		t.Fatalf("found with -short (15 steps), the trace says nothing of it:\n...%s", trace[max(0, len(trace)-300):])
	}
}

// TestALossyFailureReplays: a failure of a Spec with Loss and Duplication
// (fates drawn from a generator the run seeds) replays from its fail
// file, with the same message, whatever the seed.
func TestALossyFailureReplays(t *testing.T) {
	spec := counterSpec(func(held, received int64) int64 { return held + received })
	spec.Loss, spec.Duplication = 0.3, 0.1
	dir := filepath.Join("testdata", "rapid", "LossReplay")
	t.Cleanup(func() { os.RemoveAll(dir) })
	setFlags(t, "rapid.seed", "7", "rapid.nofailfile", "false")
	first := runRec("LossReplay", proptest.TypeProperty(spec))
	m, _ := filepath.Glob(filepath.Join(dir, "*.fail"))
	if !first.Failed() || len(m) != 1 {
		t.Fatalf("failed %v, fail files %v", first.Failed(), m)
	}
	ff := filepath.Join(t.TempDir(), "x.fail")
	if err := os.Rename(m[0], ff); err != nil {
		t.Fatal(err)
	}
	setFlags(t, "rapid.seed", "99", "rapid.failfile", ff, "rapid.nofailfile", "true")
	second := runRec("LossReplay", proptest.TypeProperty(spec))
	msg := func(r *recTB) string {
		for _, l := range r.out {
			if strings.HasPrefix(l, "[rapid] failed") {
				return strings.SplitN(l, "\n", 2)[0]
			}
		}
		return ""
	}
	a, b := msg(first), msg(second)
	a = a[strings.Index(a, ":"):]
	if b == "" || !strings.HasSuffix(b, a) {
		t.Fatalf("first %q, replay %q\n%s", msg(first), b, second)
	}
	t.Log(msg(first), "|", b)
}
