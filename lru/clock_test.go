package lru

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

type entry struct {
	name string
	ref  bool
	slot int
}

func (e *entry) TakeReferenced() bool {
	r := e.ref
	e.ref = false
	return r
}

func (e *entry) Slot() int     { return e.slot }
func (e *entry) SetSlot(i int) { e.slot = i }

func newEntries(n int) []*entry {
	es := make([]*entry, n)
	for i := range es {
		es[i] = &entry{name: fmt.Sprint(i)}
	}
	return es
}

func victims(c *Clock[*entry]) []string {
	var got []string
	for {
		v, ok := c.Victim()
		if !ok {
			return got
		}
		got = append(got, v.name)
	}
}

func TestVictimOrder(t *testing.T) {
	var c Clock[*entry]
	es := newEntries(4)
	for _, e := range es {
		c.Add(e)
	}
	es[0].ref = true // used: gets a second chance
	c.Remove(es[1])  // deleted: never a victim
	if got := victims(&c); fmt.Sprint(got) != "[2 3 0]" {
		t.Fatalf("victims %v, want [2 3 0]", got)
	}
}

// TestChurnDoesNotGrowTheRing: entries removed and added without any
// eviction do not pile up (their values would stay reachable).
func TestChurnDoesNotGrowTheRing(t *testing.T) {
	var c Clock[*entry]
	es := newEntries(10)
	for _, e := range es {
		c.Add(e)
	}
	for i := range 10_000 { // removals and additions compact
		c.Remove(es[i%10])
		es[i%10] = &entry{name: fmt.Sprint(i)}
		c.Add(es[i%10])
	}
	if len(c.ring) > 2*minCompact {
		t.Fatalf("ring of %d slots for 10 entries", len(c.ring))
	}
}

// TestVictimProperties: whatever the marks, adds, replacements and
// removals, a victim is in the ring and unmarked when chosen, never chosen
// twice, and exists whenever the ring holds an entry; Len is exact.
func TestVictimProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var c Clock[*entry]
		in := map[*entry]bool{} // entries the ring should hold
		var all []*entry
		pick := func(label string) *entry { return all[rapid.IntRange(0, len(all)-1).Draw(t, label)] }
		for step := range rapid.IntRange(1, 200).Draw(t, "steps") {
			op := rapid.IntRange(0, 4).Draw(t, "op")
			if op > 0 && len(all) == 0 {
				op = 0
			}
			switch op {
			case 0:
				e := &entry{name: fmt.Sprint(step), ref: rapid.Bool().Draw(t, "ref")}
				all = append(all, e)
				c.Add(e)
				in[e] = true
			case 1:
				pick("touch").ref = true
			case 2:
				old := pick("replace")
				e := &entry{name: fmt.Sprint(step)}
				all = append(all, e)
				c.Remove(old)
				c.Add(e)
				delete(in, old)
				in[e] = true
			case 3:
				e := pick("remove")
				c.Remove(e)
				delete(in, e)
			case 4:
				v, ok := c.Victim()
				if ok != (len(in) > 0) {
					t.Fatalf("Victim ok = %v with %d entries in the ring", ok, len(in))
				}
				if ok && !in[v] {
					t.Fatalf("victim %s was not in the ring", v.name)
				}
				delete(in, v)
			}
			if c.Len() != len(in) {
				t.Fatalf("Len %d, want %d", c.Len(), len(in))
			}
		}
	})
}
