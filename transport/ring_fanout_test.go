package transport

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestHugeFanoutGivesRelaysNoChildren: Config takes any Fanout that is
// not negative, and one at least the cluster's size means the origin sends
// to every member itself: no member past it on the ring has a child.
// q*fanout+fanout overflowed for a fanout near math.MaxInt: a relay's
// children were indexed below zero (a panic) or were the origin, self
// and the members the origin had sent to already.
func TestHugeFanoutGivesRelaysNoChildren(t *testing.T) {
	for _, fanout := range []int{math.MaxInt, math.MaxInt/2 + 1, math.MaxInt/4 + 1, math.MaxInt / 3} {
		for _, n := range []int{2, 3, 5, 9} {
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("m%d", i)
			}
			r := newRing(names)
			for _, origin := range names {
				for _, self := range names {
					var kids []string
					func() {
						defer func() {
							if p := recover(); p != nil {
								t.Fatalf("fanout %d, n %d: children(%s, %s) panicked: %v", fanout, n, origin, self, p)
							}
						}()
						kids = r.children(nil, origin, self, fanout)
					}()
					want := 0
					if self == origin {
						want = n - 1
					}
					if len(kids) != want || slices.Contains(kids, origin) {
						t.Fatalf("fanout %d, n %d: children(%s, %s) = %v, want %d members, not the origin", fanout, n, origin, self, kids, want)
					}
				}
			}
		}
	}
}

// TestRelayedDeltaToAMemberOfHugeFanoutIsNotForwarded: a member
// configured with Fanout math.MaxInt that receives a batch relayed from a
// member of a smaller Fanout (or any frame naming an origin) has no
// children in that batch's tree. It panicked in Receive.
func TestRelayedDeltaToAMemberOfHugeFanoutIsNotForwarded(t *testing.T) {
	n := newTestNet(t, 8, Config{Fanout: math.MaxInt}, "a", "b", "c", "d")
	rec := crdt.Record{Key: "k", Value: []byte("v"), Time: crdt.Timestamp{Wall: n.now.Now(), Node: 1}}
	frame, err := wire.NewCodec(wire.Limits{}).Encode(nil, &wire.Delta{Origin: "a", OriginID: 1, Seq: 1, Records: []crdt.Record{rec}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b", "c", "d"} {
		var out []Envelope
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("%s, Fanout math.MaxInt, receiving a's relayed batch: panic %v", name, p)
				}
			}()
			out, err = n.nodes[name].Receive("a", frame, n.now.Now())
		}()
		if err != nil || len(out) != 0 {
			t.Fatalf("%s forwarded %d frames (%v), want none: a sends to everyone itself", name, len(out), err)
		}
	}
}
