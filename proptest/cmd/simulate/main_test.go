package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// TestRunRefusesNonsense: rates that are no numbers in their range (NaN
// compared false and ran as 0), partition writes out of range and a
// -fanout below 0 are refused; -nodes counts only without -sweep (it was
// refused below 2 although the sweep replaced it); -fanout 0 runs the
// default, which the header says (it said 0). All found by review.
func TestRunRefusesNonsense(t *testing.T) {
	ok := params{nodes: 4, keys: 10, writes: 10, perRound: 10, seed: 1, split: 0.1, workers: 1}
	for name, edit := range map[string]func(*params){
		"loss NaN":              func(p *params) { p.loss = math.NaN() },
		"dup NaN":               func(p *params) { p.dup = math.NaN() },
		"partition writes -3":   func(p *params) { p.split = -3 },
		"partition writes 1e30": func(p *params) { p.split = 1e30 },
		"partition writes NaN":  func(p *params) { p.split = math.NaN() },
		"fanout -1":             func(p *params) { p.fanout = -1 },
		"max rounds -1":         func(p *params) { p.maxRounds = -1 },
		"session every -1":      func(p *params) { p.sessionEvery = -1 },
		"max bytes -1":          func(p *params) { p.maxBytesInFlight = -1 },
	} {
		p := ok
		edit(&p)
		if err := run(&strings.Builder{}, p, []int{p.nodes}); err == nil {
			t.Errorf("%s: run accepted it", name)
		}
	}
	p := ok
	p.nodes = 1 // a sweep replaces it
	var out strings.Builder
	if err := run(&out, p, []int{4}); err != nil {
		t.Fatalf("-nodes 1 -sweep 4: %v", err)
	}
	if !strings.Contains(out.String(), "fanout=8") {
		t.Fatalf("-fanout 0 runs the default: the header says %q", strings.SplitN(out.String(), "\n", 2)[0])
	}
}

// TestHelpListsOnlyItsFlags: -h lists the command's flags, not those the
// packages it imports register on the default set (rapid's, through
// proptest, were listed: found by review); a stray argument is refused.
func TestHelpListsOnlyItsFlags(t *testing.T) {
	var out strings.Builder
	if _, err := parseArgs([]string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v; want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "-nodes") || strings.Contains(out.String(), "rapid") {
		t.Fatalf("-h printed:\n%s\nwant the command's flags alone", out.String())
	}
	if flag.Lookup("rapid.seed") == nil {
		t.Fatal("rapid's flags are not on the default set: the check above proves nothing")
	}
	o, err := parseArgs([]string{"-nodes", "7", "-sweep", "2,3"}, &out)
	if err != nil || o.nodes != 7 || !slices.Equal(o.sizes, []int{2, 3}) {
		t.Fatalf("parsed %+v, %v", o, err)
	}
	if o, err := parseArgs([]string{"-nodes", "7"}, &out); err != nil || !slices.Equal(o.sizes, []int{7}) {
		t.Fatalf("parsed %+v, %v", o, err)
	}
	if _, err := parseArgs([]string{"-sweep", "2,x"}, &out); err == nil {
		t.Fatal("a bad -sweep size was taken")
	}
	if _, err := parseArgs([]string{"-nodes", "7", "extra"}, &out); err == nil {
		t.Fatal("a stray argument was taken")
	}
}

// runMain runs the command's main in a process of its own (this test
// binary, told so by SIMULATE_ARGS) with args, and returns its exit code,
// its output and the heap's soft limit it left.
func runMain(t *testing.T, args string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainProcess$")
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMEMLIMIT=") }),
		"SIMULATE_ARGS="+args)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("%s: %v", args, err)
	return 0, ""
}

// TestMainProcess is the process runMain starts: main with
// SIMULATE_ARGS, then the heap's soft limit it set; alone, it does
// nothing.
func TestMainProcess(t *testing.T) {
	args, ok := os.LookupEnv("SIMULATE_ARGS")
	if !ok {
		return
	}
	os.Args = append([]string{"simulate"}, strings.Fields(args)...)
	main()
	fmt.Printf("memlimit=%d\n", debug.SetMemoryLimit(-1))
	os.Exit(0)
}

// TestBadValuesExitTwo: a flag's value out of its range exits 2, as a
// flag that does not parse and a bad -sweep size do, and before a profile
// is made; -nodes 1 and -loss 1 exited 1, after -memprofile's file was
// made, and -memlimit -1 ran with no limit (found by review).
func TestBadValuesExitTwo(t *testing.T) {
	dir := t.TempDir()
	for _, args := range []string{"-nodes x", "-sweep 1", "-nodes 1", "-loss 1", "-workers 0", "-dup NaN",
		"-memlimit -1 -nodes 2 -keys 10 -writes 10"} {
		prof := filepath.Join(dir, "mem.prof")
		code, out := runMain(t, args+" -memprofile "+prof)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2; printed:\n%s", args, code, out)
		}
		if _, err := os.Stat(prof); err == nil {
			t.Errorf("%s: refused, but made -memprofile's file", args)
			os.Remove(prof)
		}
	}
}

// TestHugeMemLimitIsNoLimit: -memlimit past what a byte count holds is
// no limit; its MiB shifted to bytes overflowed, at 1<<44 to a limit of
// 0 bytes, and the collector ran without end (found by review).
func TestHugeMemLimitIsNoLimit(t *testing.T) {
	for _, mib := range []int64{1 << 44, math.MaxInt64} {
		code, out := runMain(t, fmt.Sprintf("-nodes 2 -keys 10 -writes 10 -memlimit %d", mib))
		if want := fmt.Sprintf("memlimit=%d", int64(math.MaxInt64)); code != 0 || !strings.Contains(out, want) {
			t.Errorf("-memlimit %d: exit %d, printed:\n%s\nwant %s", mib, code, out, want)
		}
	}
	if code, out := runMain(t, "-nodes 2 -keys 10 -writes 10 -memlimit 3"); code != 0 || !strings.Contains(out, fmt.Sprintf("memlimit=%d", 3<<20)) {
		t.Errorf("-memlimit 3: exit %d, printed:\n%s", code, out)
	}
}

// TestHeaderPrintsTheRates: the header says the rates the run had, to
// the digit: at three decimals, -loss 0.0004 read loss=0.000 (found by
// review).
func TestHeaderPrintsTheRates(t *testing.T) {
	p := params{keys: 10, writes: 10, perRound: 10, seed: 1, split: 0.1, workers: 1, loss: 0.0004, dup: 0.00015}
	var out strings.Builder
	if err := run(&out, p, []int{3}); err != nil {
		t.Fatal(err)
	}
	if h := strings.SplitN(out.String(), "\n", 2)[0]; !strings.Contains(h, "loss=0.0004 ") || !strings.Contains(h, "dup=0.00015 ") {
		t.Fatalf("-loss 0.0004 -dup 0.00015: the header says %q", h)
	}
}

// TestBoundsAndTimerFlagsReachTheSimulation: -max-rounds,
// -session-every and -max-bytes-in-flight set SimConfig's fields (the
// command had no way to set them: a researcher's replica that needs
// more rounds, or a session timer, could not be run with it).
func TestBoundsAndTimerFlagsReachTheSimulation(t *testing.T) {
	o, err := parseArgs([]string{"-max-rounds", "7", "-session-every", "9", "-max-bytes-in-flight", "100"}, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if o.maxRounds != 7 || o.sessionEvery != 9 || o.maxBytesInFlight != 100 {
		t.Fatalf("parsed %+v", o.params)
	}
	base := params{keys: 100, writes: 100, perRound: 100, seed: 1, split: 0.01, workers: 1}
	for name, c := range map[string]struct {
		edit func(*params)
		want string
	}{
		"max rounds":          {func(p *params) { p.maxRounds = 1; p.loss = 0.5 }, "MaxRounds"},
		"max bytes in flight": {func(p *params) { p.maxBytesInFlight = 100 }, "MaxBytesInFlight"},
	} {
		p := base
		c.edit(&p)
		err := run(&strings.Builder{}, p, []int{4})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, c.want)
		}
	}
	// A session timer changes the run (its peers are drawn from the run's
	// random source) and it still agrees.
	var without, with strings.Builder
	base.loss = 0.2 // so that sessions repair
	if err := run(&without, base, []int{4}); err != nil {
		t.Fatal(err)
	}
	p := base
	p.sessionEvery = 12
	if err := run(&with, p, []int{4}); err != nil {
		t.Fatal(err)
	}
	if without.String() == with.String() {
		t.Fatalf("-session-every 12 ran as without it:\n%s", with.String())
	}
}
