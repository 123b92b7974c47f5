package proptest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"
)

// counted is an event's argument that counts how often it is printed.
type counted struct{ n *atomic.Int64 }

func (c counted) String() string { c.n.Add(1); return "counted" }

// TestAPassingRunFormatsNoEvent: with a trace file, the events of a
// passing run are formatted nowhere: rapid logs nothing of it, and the
// trace is written only if the run fails. Each event was formatted for
// the file as it happened, in every run (found by review).
func TestAPassingRunFormatsNoEvent(t *testing.T) {
	setRapidFlags(t, map[string]string{"rapid.v": "false", "rapid.checks": "20"})
	path := filepath.Join(t.TempDir(), "trace")
	var n atomic.Int64
	rapid.Check(t, func(rt *rapid.T) {
		passed := false
		defer traceTo(rt, path, &passed)()
		for range rapid.IntRange(1, 5).Draw(rt, "events") {
			event(rt, "event %v", counted{&n})
		}
		passed = true
	})
	if n.Load() != 0 {
		t.Errorf("passing runs with a trace file formatted %d events", n.Load())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("passing runs wrote their trace: %v", err)
	}
}

// TestPassingRunsDescribeNoFrame: neither harness calls Describe in
// a passing run, trace file or not: the cluster's harness described every
// frame of every run for a trace file, the type harness every frame of
// every run even without one (found by review).
func TestPassingRunsDescribeNoFrame(t *testing.T) {
	setRapidFlags(t, map[string]string{"rapid.v": "false", "rapid.checks": "5", "rapid.steps": "50"})
	var n atomic.Int64
	describe := func([]byte) string { n.Add(1); return "described" }
	t.Run("Check with a trace file", func(t *testing.T) {
		n.Store(0)
		rapid.Check(t, Property(Config{TraceFile: filepath.Join(t.TempDir(), "trace"), Describe: describe}))
		if n.Load() != 0 {
			t.Errorf("%d frames of passing runs described", n.Load())
		}
	})
	for name, file := range map[string]string{"CheckType": "", "CheckType with a trace file": "trace"} {
		t.Run(name, func(t *testing.T) {
			n.Store(0)
			spec := gsetSpec(func(*gset) {})
			spec.Describe = describe
			if file != "" {
				spec.TraceFile = filepath.Join(t.TempDir(), file)
			}
			rapid.Check(t, TypeProperty(spec))
			if n.Load() != 0 {
				t.Errorf("%d frames of passing runs described", n.Load())
			}
		})
	}
}

// TestAFailingRunsTraceIsItsLog: a failing run's trace file holds the
// events rapid logged of the counterexample, line for line, each as it
// was when it happened (formatted as it is logged, not at the failure:
// the state printed changes as the run goes on).
func TestAFailingRunsTraceIsItsLog(t *testing.T) {
	setRapidFlags(t, map[string]string{"rapid.v": "false", "rapid.seed": "1", "rapid.nofailfile": "true", "rapid.failfile": ""})
	path := filepath.Join(t.TempDir(), "trace")
	tb := &logTB{name: t.Name()}
	done := make(chan struct{})
	go func() { // rapid ends a failed check with runtime.Goexit
		defer close(done)
		rapid.Check(tb, func(rt *rapid.T) {
			passed := false
			defer traceTo(rt, path, &passed)()
			state := 0
			for i := range rapid.IntRange(1, 20).Draw(rt, "events") {
				state += i
				event(rt, "step %d: state %v", i, lazy(func() string { return fmt.Sprint(state) }))
				if state > 10 {
					rt.Fatalf("state %d", state)
				}
			}
			passed = true
		})
	}()
	<-done
	if !tb.Failed() {
		t.Fatal("the property passed")
	}
	var logged []string
	for _, l := range tb.lines {
		if e, ok := strings.CutPrefix(l, "  | "); ok {
			logged = append(logged, e)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	events, failure, _ := strings.Cut(string(b), "\nfailed: ")
	if want := strings.Join(logged, "\n") + "\n"; events != want {
		t.Fatalf("the trace's events:\n%s\nthe log's:\n%s", events, want)
	}
	// The shrunk counterexample: 0, 1, 3, 6, 10, 15.
	if want := "step 0: state 0\nstep 1: state 1\nstep 2: state 3\nstep 3: state 6\nstep 4: state 10\nstep 5: state 15\n"; events != want {
		t.Errorf("the trace's events:\n%s\nwant:\n%s", events, want)
	}
	if !strings.Contains(failure, "state 15") {
		t.Errorf("the trace's failure: %q", failure)
	}
}

// logTB is a rapid.TB that keeps what it is given to log.
type logTB struct {
	name   string
	mu     sync.Mutex
	lines  []string
	failed bool
}

func (r *logTB) Helper()                   {}
func (r *logTB) Name() string              { return r.name }
func (r *logTB) Logf(f string, a ...any)   { r.log(fmt.Sprintf(f, a...)) }
func (r *logTB) Log(a ...any)              { r.log(fmt.Sprint(a...)) }
func (r *logTB) Skipf(string, ...any)      { runtime.Goexit() }
func (r *logTB) Skip(...any)               { runtime.Goexit() }
func (r *logTB) SkipNow()                  { runtime.Goexit() }
func (r *logTB) Errorf(f string, a ...any) { r.Logf(f, a...); r.Fail() }
func (r *logTB) Error(a ...any)            { r.Log(a...); r.Fail() }
func (r *logTB) Fatalf(f string, a ...any) { r.Errorf(f, a...); runtime.Goexit() }
func (r *logTB) Fatal(a ...any)            { r.Error(a...); runtime.Goexit() }
func (r *logTB) FailNow()                  { r.Fail(); runtime.Goexit() }
func (r *logTB) Fail()                     { r.mu.Lock(); defer r.mu.Unlock(); r.failed = true }
func (r *logTB) Failed() bool              { r.mu.Lock(); defer r.mu.Unlock(); return r.failed }

func (r *logTB) log(s string) { r.mu.Lock(); defer r.mu.Unlock(); r.lines = append(r.lines, s) }
