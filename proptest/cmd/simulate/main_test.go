package main

import (
	"errors"
	"flag"
	"math"
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
