// Package rapidfail runs a rapid property that is expected to fail: the
// deliberately broken variant that each of bcache's properties must catch,
// to show that the property can fail at all.
package rapidfail

import (
	"flag"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"pgregory.net/rapid"
)

// Fails runs prop with a fixed seed and budget (1,000 runs of about 100
// steps), so that the outcome is the same on every run, and reports
// whether rapid found a counterexample. The failure is recorded, not
// reported to t.
func Fails(t *testing.T, name string, prop func(*rapid.T)) bool {
	t.Helper()
	return Failure(t, name, prop) != ""
}

// Failure is Fails returning rapid's report of the counterexample it
// found (its first message: what the property said), or "" if it found
// none: a test of a broken variant can check which of the property's
// checks caught it.
func Failure(t *testing.T, name string, prop func(*rapid.T)) string {
	t.Helper()
	return failure(t, name, prop, "50ms") // finding one is what counts here
}

// Unshrunk is Failure without shrinking: the report is of the first
// counterexample found, the same on every run of a property that replays
// from its seed (shrinking is bounded by time, so where it ends depends
// on the machine's speed): for tests that a failure replays.
func Unshrunk(t *testing.T, name string, prop func(*rapid.T)) string {
	t.Helper()
	return failure(t, name, prop, "0s")
}

func failure(t *testing.T, name string, prop func(*rapid.T), shrink string) string {
	t.Helper()
	// Set for this run alone (left set for the rest of the test, a
	// CheckType after it ran with seed 1 and no fail file: found by
	// review), and with no fail file replayed (one given on the command
	// line, or, under a test's name, one a run of rapid.Check left).
	defer setFlags(t, [][2]string{
		{"rapid.seed", "1"},
		{"rapid.checks", Scaled("rapid.checks", "1000")},
		{"rapid.steps", Scaled("rapid.steps", "100")},
		{"rapid.shrinktime", shrink},
		{"rapid.nofailfile", "true"},
		{"rapid.failfile", ""},
	})()
	rec := &recordingTB{name: name}
	done := make(chan struct{})
	go func() { // rapid ends a failed check with runtime.Goexit
		defer close(done)
		rapid.Check(rec, prop)
	}()
	<-done
	// rapid fails a check that found too few valid inputs (every run
	// skipped) through Errorf, as it reports a counterexample: that is
	// none, and was taken for one (found by review).
	if !rec.Failed() || strings.HasPrefix(rec.msg, "[rapid] only generated ") {
		return ""
	}
	if rec.msg == "" {
		return "failed"
	}
	return rec.msg
}

// Scaled returns the value to give rapid's flag name for rapid to run
// value: rapid runs a fifth of -rapid.checks and half of -rapid.steps
// under -short, so those are scaled up by as much then; any other flag's
// value, or one not a number, is returned as it is. A test that needs its
// sample (a rate measured, a broken variant caught, a counterexample
// replayed by its seed) sets its budget through it: set as it is, under
// -short a rate had too few frames, a broken variant passed and a seed
// replayed another run (found running go test -short ./...).
func Scaled(name, value string) string {
	n, err := strconv.Atoi(value)
	if err != nil || !testing.Short() {
		return value
	}
	switch name {
	case "rapid.checks":
		return strconv.Itoa(n * 5)
	case "rapid.steps":
		return strconv.Itoa(n * 2)
	}
	return value
}

// flags are rapid's command-line flags as the checks running set them:
// rapid reads its flags as a check runs, so checks run at once (parallel
// subtests) share them. The first sets them and the last puts them back;
// one that needs other values waits until none runs (written while a
// check read them, they were a data race, and another run's values).
var flags struct {
	sync.Mutex
	changed *sync.Cond
	running int
	set     string   // the values the running checks set
	restore []func() // what puts the flags back, once none runs
}

// setFlags sets rapid's flags to values for a check, and returns what
// ends it (the flags put back after the last check running ends).
func setFlags(t *testing.T, values [][2]string) func() {
	t.Helper()
	key := fmt.Sprint(values)
	flags.Lock()
	defer flags.Unlock()
	if flags.changed == nil {
		flags.changed = sync.NewCond(&flags.Mutex)
	}
	for flags.running > 0 && flags.set != key {
		flags.changed.Wait()
	}
	if flags.running == 0 {
		flags.set = key
		for _, v := range values {
			f := flag.Lookup(v[0])
			if f == nil {
				t.Fatalf("no flag %s", v[0])
			}
			old := f.Value.String()
			if err := flag.Set(v[0], v[1]); err != nil {
				t.Fatal(err)
			}
			flags.restore = append(flags.restore, func() { flag.Set(v[0], old) })
		}
	}
	flags.running++
	return func() {
		flags.Lock()
		defer flags.Unlock()
		if flags.running--; flags.running == 0 {
			for i := len(flags.restore) - 1; i >= 0; i-- {
				flags.restore[i]()
			}
			flags.restore, flags.set = nil, ""
			flags.changed.Broadcast()
		}
	}
}

// recordingTB is a rapid.TB that records a failure instead of failing the
// test.
type recordingTB struct {
	name   string
	mu     sync.Mutex
	failed bool
	msg    string // the first failure's message
}

func (r *recordingTB) Helper()                   {}
func (r *recordingTB) Name() string              { return r.name }
func (r *recordingTB) Skipf(string, ...any)      { runtime.Goexit() }
func (r *recordingTB) Skip(...any)               { runtime.Goexit() }
func (r *recordingTB) SkipNow()                  { runtime.Goexit() }
func (r *recordingTB) Errorf(f string, a ...any) { r.fail(fmt.Sprintf(f, a...)) }
func (r *recordingTB) Error(a ...any)            { r.fail(fmt.Sprint(a...)) }
func (r *recordingTB) Fatalf(f string, a ...any) { r.fail(fmt.Sprintf(f, a...)); runtime.Goexit() }
func (r *recordingTB) Fatal(a ...any)            { r.fail(fmt.Sprint(a...)); runtime.Goexit() }
func (r *recordingTB) FailNow()                  { r.fail(""); runtime.Goexit() }
func (r *recordingTB) Fail()                     { r.fail("") }
func (r *recordingTB) Failed() bool              { r.mu.Lock(); defer r.mu.Unlock(); return r.failed }

// Logf and Log format what they are given, and drop it, as testing.T
// formats it: a value that is computed only as it is printed, as the
// events of proptest's trace file are (only as rapid logs them: a passing
// run formats nothing), must be computed here too.
func (r *recordingTB) Logf(f string, a ...any) { _ = fmt.Sprintf(f, a...) }
func (r *recordingTB) Log(a ...any)            { _ = fmt.Sprint(a...) }

func (r *recordingTB) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	if r.msg == "" {
		r.msg = msg
	}
}
