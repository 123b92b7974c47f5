package proptest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/transport"
)

// gset is a grow-only set whose add sends the element to every other
// member, in the order a map of them ranges over if mapOrder (ordinary
// Go, and not deterministic), to a member that does not exist too if
// ghost.
type gset struct {
	name     string
	members  []string
	elems    map[string]bool
	mapOrder bool
	ghost    bool
}

func (g *gset) Do(op Op) (any, []transport.Envelope) {
	e := g.name + ":" + op.Key
	g.elems[e] = true
	to := slices.Clone(g.members)
	if g.mapOrder {
		to = slices.Collect(maps.Keys(maps.Collect(func(yield func(string, bool) bool) {
			for _, m := range g.members {
				if !yield(m, true) {
					return
				}
			}
		})))
	}
	var out []transport.Envelope
	for _, m := range to {
		if m != g.name {
			out = append(out, transport.Envelope{To: m, Payload: []byte(e)})
		}
	}
	if g.ghost {
		out = append(out, transport.Envelope{To: "ghost", Payload: []byte("ghost:x")})
	}
	return nil, out
}

func (g *gset) Receive(_ string, p []byte) []transport.Envelope {
	for _, e := range strings.Split(string(p), ",") {
		if strings.HasPrefix(e, "ghost:") {
			g.elems["received for a ghost"] = true
		} else if e != "" {
			g.elems[e] = true
		}
	}
	return nil
}
func (g *gset) Tick() []transport.Envelope { return nil }
func (g *gset) Sync(peer string) []transport.Envelope {
	return []transport.Envelope{{To: peer, Payload: []byte(strings.Join(slices.Sorted(maps.Keys(g.elems)), ","))}}
}
func (g *gset) SetMembers(names []string) { g.members = slices.Clone(names) }
func (g *gset) State() any                { return fmt.Sprint(slices.Sorted(maps.Keys(g.elems))) }

type passingModel struct{}

func (passingModel) Did(string, int, Op, any) error { return nil }
func (passingModel) Crashed(string, int)            {}
func (passingModel) Check(any) error                { return nil }

func gsetSpec(mod func(*gset)) Spec {
	return Spec{
		New: func(name string, _ int, _ func() int64) (Object, error) {
			g := &gset{name: name, elems: map[string]bool{}}
			mod(g)
			return g, nil
		},
		Ops:   []OpKind{{Name: "add"}},
		Model: func() Model { return passingModel{} },
	}
}

// TestExplorationRefusesNondeterministicObjects: an object whose frames
// come out in a map's order makes a replay go another way than the run it
// replays; the exploration panicked on an index past the options, or
// explored some orders twice and others never, silently (found by
// review). It now says so.
func TestExplorationRefusesNondeterministicObjects(t *testing.T) {
	script := []Scripted{{Member: 0, Op: Op{Name: "add", Key: "a"}}, {Member: 0, Op: Op{Name: "add", Key: "b"}}}
	refused := false
	for range 20 {
		_, err := Exploration(gsetSpec(func(g *gset) { g.mapOrder = true }), script, Explore{Members: 3, MaxLoss: -1, MaxDuplicate: -1})
		if errors.Is(err, errNondeterministic) {
			refused = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !refused {
		t.Fatal("20 explorations of an object sending in a map's order, none refused")
	}
	if _, err := Exploration(gsetSpec(func(*gset) {}), script, Explore{Members: 3, MaxLoss: -1, MaxDuplicate: -1}); err != nil {
		t.Fatalf("the deterministic object: %v", err)
	}
}

// TestExplorationLosesFramesToNoMember: a frame addressed to no member is
// lost, as CheckType's network loses it; the exploration delivered it to
// n0, and the two disagreed on one Spec (found by review). Runs past
// MaxRuns are counted as run.
func TestExplorationLosesFramesToNoMember(t *testing.T) {
	script := []Scripted{{Member: 1, Op: Op{Name: "add", Key: "a"}}}
	if _, err := Exploration(gsetSpec(func(g *gset) { g.ghost = true }), script, Explore{MaxLoss: -1, MaxDuplicate: -1}); err != nil {
		t.Fatalf("a frame to no member: %v", err)
	}
	ran := 0
	spec := gsetSpec(func(*gset) {})
	spec.Model = func() Model { ran++; return passingModel{} }
	if n, err := Exploration(spec, []Scripted{{Member: 0, Op: Op{Name: "add", Key: "a"}}}, Explore{MaxRuns: 3}); err == nil || n != ran {
		t.Fatalf("past MaxRuns: %d runs said, %d ran, %v", n, ran, err)
	}
}
