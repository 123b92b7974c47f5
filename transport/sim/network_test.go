package sim

import (
	"slices"
	"testing"

	"github.com/bcache-go/bcache/transport"
)

func frames(to ...string) []transport.Envelope {
	var out []transport.Envelope
	for _, t := range to {
		out = append(out, transport.Envelope{To: t, Payload: []byte(t)})
	}
	return out
}

func destinations(n *Network) []string {
	var out []string
	for _, p := range n.InFlight() {
		out = append(out, p.To)
	}
	return out
}

func TestFaults(t *testing.T) {
	n := New()
	n.Send("a", frames("b", "c", "d"))
	if err := n.Duplicate(0); err != nil {
		t.Fatal(err)
	}
	if err := n.Reorder(3, 0); err != nil {
		t.Fatal(err)
	}
	if got, want := destinations(n), []string{"b", "b", "c", "d"}; !slices.Equal(got, want) {
		t.Fatalf("in flight %v, want %v", got, want)
	}
	if err := n.Drop(2); err != nil {
		t.Fatal(err)
	}
	p, ok, err := n.Take(2)
	if err != nil || !ok || p.To != "d" || string(p.Payload) != "d" {
		t.Fatalf("Take(2) = %+v, %v, %v; want the frame to d", p, ok, err)
	}
	for _, bad := range []func() error{
		func() error { return n.Drop(5) },
		func() error { return n.Duplicate(-1) },
		func() error { return n.Reorder(0, 9) },
		func() error { _, _, err := n.Take(2); return err },
	} {
		if bad() == nil {
			t.Fatal("an out-of-range packet index was accepted")
		}
	}
	s := n.Stats()
	if s.Sent != 3 || s.Duplicated != 1 || s.Dropped != 1 || s.Delivered != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	n := New()
	n.Send("a", frames("b", "c"))
	n.Partition([]string{"a", "b"}) // c alone in the rest
	if n.Connected("a", "c") || !n.Connected("a", "b") {
		t.Fatal("partition {a,b} | {c} not in force")
	}
	got := n.TakeAll()
	if len(got) != 1 || got[0].To != "b" {
		t.Fatalf("TakeAll across the cut delivered %v, want only the frame to b", got)
	}
	n.Send("a", frames("c"))
	if n.Len() != 0 || n.Stats().Cut != 2 {
		t.Fatalf("a frame across the cut was queued (in flight %d, cut %d)", n.Len(), n.Stats().Cut)
	}
	n.Heal()
	n.Send("a", frames("c"))
	if n.Len() != 1 {
		t.Fatal("frame after the heal was not queued")
	}
}

func TestDownMemberLosesItsFrames(t *testing.T) {
	n := New()
	n.Send("a", frames("b", "c"))
	n.Send("c", frames("a"))
	n.SetDown("c", true)
	if got := destinations(n); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("in flight after c went down: %v, want [b]", got)
	}
	n.SetDown("c", false)
	n.Send("a", frames("c"))
	if n.Len() != 2 {
		t.Fatalf("%d in flight after c came back, want 2", n.Len())
	}
}

// TestCutPacketsAreTold: every packet in flight that a partition or a
// member going down cuts is handed to OnCut as it goes, whether taken one
// at a time or all at once (a trace showed nothing of them).
func TestCutPacketsAreTold(t *testing.T) {
	n := New()
	var cut []string
	n.OnCut = func(p Packet) { cut = append(cut, p.From+">"+p.To) }
	n.Send("a", frames("b", "c", "d"))
	n.Send("d", frames("a"))
	n.Partition([]string{"a", "b"})
	if _, ok, err := n.Take(1); err != nil || ok { // a>c
		t.Fatalf("Take across the cut: ok %v, err %v", ok, err)
	}
	n.Heal()
	n.SetDown("d", true) // a>d and d>a
	n.Send("a", frames("c"))
	n.Partition([]string{"a"})
	if got := n.TakeAll(); len(got) != 0 {
		t.Fatalf("TakeAll across the cut delivered %d packets", len(got))
	}
	want := []string{"a>c", "a>d", "d>a", "a>b", "a>c"}
	if !slices.Equal(cut, want) {
		t.Fatalf("OnCut saw %v, want %v", cut, want)
	}
	if s := n.Stats(); s.Cut != uint64(len(want)) {
		t.Fatalf("Stats().Cut %d, want %d", s.Cut, len(want))
	}
}

// TestOnCutSeesTheNetworkAsItIs: OnCut is called once the network is
// whole again, whichever path cut the packet: one that reads what is in
// flight, or sends (a harness noting a loss, or resending), sees the
// packets left and keeps what it sent. Called as SetDown compacted the
// packets in place, it saw a slice with packets twice and cut ones among
// them, and a packet it sent was lost.
func TestOnCutSeesTheNetworkAsItIs(t *testing.T) {
	for _, path := range []string{"Take", "TakeAll", "SetDown"} {
		n := New()
		n.Send("a", frames("b", "c"))
		var seen [][]string
		n.OnCut = func(p Packet) {
			seen = append(seen, destinations(n))
			n.Send("x", frames("y")) // neither end cut
		}
		switch path {
		case "Take":
			n.Partition([]string{"a", "c"})
			if _, ok, _ := n.Take(0); ok {
				t.Fatalf("%s: a>b delivered across the cut", path)
			}
		case "TakeAll":
			n.Partition([]string{"a", "c"})
			n.TakeAll() // delivers a>c
		case "SetDown":
			n.SetDown("b", true)
		}
		if len(seen) != 1 {
			t.Fatalf("%s: OnCut called %d times, want 1", path, len(seen))
		}
		if slices.Contains(seen[0], "b") {
			t.Errorf("%s: OnCut saw %v in flight, the packet it was handed among them", path, seen[0])
		}
		if !slices.Contains(destinations(n), "y") {
			t.Errorf("%s: the packet OnCut sent is not in flight: %v", path, destinations(n))
		}
	}
}

// TestBytesCountsWhatIsInFlight: Bytes is the payload bytes of the
// packets in flight, through every way a packet enters or leaves.
func TestBytesCountsWhatIsInFlight(t *testing.T) {
	n := New()
	env := func(to string, size int) transport.Envelope {
		return transport.Envelope{To: to, Payload: make([]byte, size)}
	}
	sum := func() uint64 {
		var b uint64
		for _, p := range n.InFlight() {
			b += uint64(len(p.Payload))
		}
		return b
	}
	check := func(what string) {
		t.Helper()
		if n.Bytes() != sum() {
			t.Fatalf("after %s: Bytes %d, in flight %d", what, n.Bytes(), sum())
		}
	}
	n.Send("a", []transport.Envelope{env("b", 10), env("c", 20), env("b", 30)})
	check("send")
	n.Partition([]string{"a"})
	n.Send("a", []transport.Envelope{env("b", 1000)}) // cut at once
	check("a send cut")
	n.Heal()
	if err := n.Duplicate(1); err != nil {
		t.Fatal(err)
	}
	check("duplicate")
	if err := n.Drop(0); err != nil {
		t.Fatal(err)
	}
	check("drop")
	if _, _, err := n.Take(0); err != nil {
		t.Fatal(err)
	}
	check("take")
	n.SetDown("c", true)
	check("set down")
	n.SetDown("c", false)
	n.Send("b", []transport.Envelope{env("a", 5)})
	n.TakeAll()
	check("take all")
	if n.Bytes() != 0 {
		t.Fatalf("nothing in flight, Bytes %d", n.Bytes())
	}
}

// TestRequeue: a packet taken from flight goes back at the end, as itself
// or as a copy with a new id, counted as a duplicate.
func TestRequeue(t *testing.T) {
	n := New()
	n.Send("a", frames("b", "c"))
	all := n.TakeAll()
	first := all[0]
	n.Requeue(first, true)
	n.Send("a", frames("d"))
	n.Requeue(all[1], false)
	got := n.InFlight()
	if len(got) != 3 || got[0].To != "b" || got[0].ID == first.ID || got[1].To != "d" || got[2].ID != all[1].ID {
		t.Fatalf("in flight %+v", got)
	}
	if s := n.Stats(); s.Duplicated != 1 || s.Sent != 3 || n.Bytes() != 3 {
		t.Fatalf("stats %+v, %d B in flight", s, n.Bytes())
	}
}
