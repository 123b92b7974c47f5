package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestFormsFollowTheOldestLiveMember: a member beside members of two
// earlier releases (one whose delegate protocol range tops out at
// directVersion, one at 0) sends each the forms the oldest live member
// takes, and switches as they come and go: Deltas with its name while
// the earliest is alive; short direct deltas, without its name but as
// user messages, once it has left; datagrams of their own once the
// release before has left too; and back to Deltas when a member of the
// earliest release joins again. Every write arrives at every member
// throughout.
func TestFormsFollowTheOldestLiveMember(t *testing.T) {
	quiet := func(c *Config) { c.Protocol.AntiEntropyInterval = time.Hour } // deltas alone carry the writes
	as := func(max uint8, name string, peers []string) *node {
		saved := delegateMax
		delegateMax = max
		defer func() { delegateMax = saved }()
		return startNode(t, name, peers, quiet)
	}
	a := startNode(t, "a", nil, quiet)
	b := as(directVersion, "b", []string{a.r.Addr()})
	c := as(0, "c", []string{a.r.Addr()})
	waitMembers(t, 3, a, b, c)
	n := 0
	// phase writes on a and checks what a sent meanwhile: kind's frames
	// only (of Delta and Direct), as datagrams of their own if raw.
	phase := func(what string, to []*node, current, raw bool) {
		t.Helper()
		await.Until(t, 10*time.Second, func() bool { return a.r.current.Load() == current && a.r.raw.Load() == raw },
			"%s: a sends current forms %v, raw %v; want %v, %v (least version %d)", what, a.r.current.Load(), a.r.raw.Load(), current, raw, leastVersion(a.r))
		before := a.r.Stats().Protocol
		for range 20 {
			key := fmt.Sprint("k", n)
			n++
			a.rep.write(a.r, key, []byte("v"), false)
			waitValue(t, 5*time.Second, key, []byte("v"), to...)
		}
		after := a.r.Stats().Protocol
		direct := after.FramesSentByKind[wire.KindDirect] - before.FramesSentByKind[wire.KindDirect]
		delta := after.FramesSentByKind[wire.KindDelta] - before.FramesSentByKind[wire.KindDelta]
		if current && (direct == 0 || delta != 0) || !current && (direct != 0 || delta == 0) {
			t.Fatalf("%s: a sent %d Directs and %d Deltas", what, direct, delta)
		}
		if a.r.current.Load() != current || a.r.raw.Load() != raw {
			t.Fatalf("%s: the forms changed during the writes", what)
		}
	}
	phase("beside the earliest release", []*node{b, c}, false, false)
	c.r.Close()
	waitMembers(t, 2, a, b)
	phase("beside the release before", []*node{b}, true, false)
	b.r.Close()
	waitMembers(t, 1, a)
	d := startNode(t, "d", []string{a.r.Addr()}, quiet)
	waitMembers(t, 2, a, d)
	phase("beside this release", []*node{d}, true, true)
	c2 := as(0, "c", []string{a.r.Addr()})
	waitMembers(t, 3, a, d, c2)
	phase("the earliest release back", []*node{d, c2}, false, false)
	if n := c2.r.Stats().BadFrames; n != 0 {
		t.Fatalf("the earliest release's member counted %d bad frames", n)
	}
}
