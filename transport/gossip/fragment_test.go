package gossip

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestReassembly: fragments in any order make the frame once; copies (also
// those that come after the frame was whole),
// fragments that disagree about the count, old partial frames and more
// partial frames than the bound are dropped, never held.
func TestReassembly(t *testing.T) {
	now := time.Unix(1000, 0)
	var a reassembly
	parts := [][]byte{[]byte("ab"), []byte("cd"), []byte("e")}
	for _, i := range []int{2, 0} {
		if f, _, _ := a.add("p", 7, i, 3, parts[i], now); f != nil {
			t.Fatalf("whole after part %d", i)
		}
	}
	if f, _, _ := a.add("p", 7, 2, 3, parts[2], now); f != nil {
		t.Fatal("a duplicate completed the frame")
	}
	if f, _, refused := a.add("p", 7, 1, 4, parts[1], now); f != nil || !refused {
		t.Fatalf("a fragment with another count: frame %q, refused %v; want it refused (counted)", f, refused)
	}
	f, _, _ := a.add("p", 7, 1, 3, parts[1], now)
	if !bytes.Equal(f, []byte("abcde")) {
		t.Fatalf("frame %q, want abcde", f)
	}
	for i := range parts { // the second copies, late
		if f, dropped, _ := a.add("p", 7, i, 3, parts[i], now); f != nil || dropped != 0 {
			t.Fatalf("a late copy of part %d: frame %q, %d dropped", i, f, dropped)
		}
	}

	_, _, _ = a.add("p", 8, 0, 2, []byte("x"), now)
	if _, dropped, _ := a.add("q", 1, 0, 2, []byte("y"), now.Add(partialTTL+time.Millisecond)); dropped != 1 {
		t.Fatalf("dropped %d old unfinished frames, want 1 (the whole one goes uncounted)", dropped)
	}
	if f, _, _ := a.add("p", 8, 1, 2, []byte("z"), now.Add(partialTTL+time.Millisecond)); f != nil {
		t.Fatal("a frame whose first part was dropped as old completed")
	}

	a = reassembly{}
	total := 0
	for i := range maxPartial + 10 {
		_, dropped, _ := a.add(fmt.Sprint("peer", i), 1, 0, 2, []byte("x"), now)
		total += dropped
	}
	if len(a.partials) != maxPartial || total != 10 {
		t.Fatalf("%d partial frames held, %d dropped; want %d and 10", len(a.partials), total, maxPartial)
	}
}

// TestSessionFramesGoAsFragments: a member that joins one holding a few
// hundred records gets them in anti-entropy frames larger than a datagram
// and smaller than 16: they go as fragments, and the two converge. The
// records are written without deltas: deltas still queued when the second
// member joined reached it (three runs in 40), and left nothing to repair.
func TestSessionFramesGoAsFragments(t *testing.T) {
	a := startNode(t, "a", nil)
	a.rep.mu.Lock()
	for i := range 200 {
		a.rep.m.Merge(crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: []byte("value"), Time: a.rep.clock.Now()}, false, 0, nil)
	}
	a.rep.mu.Unlock()
	b := startNode(t, "b", []string{a.r.Addr()})
	waitMembers(t, 2, a, b)
	waitConverged(t, 10*time.Second, a, b)
	sa, sb := a.r.Stats(), b.r.Stats()
	if sa.FragmentedFrames+sb.FragmentedFrames == 0 {
		t.Fatalf("no frame went as fragments (a: %+v)", sa)
	}
	if sa.BadFrames+sb.BadFrames != 0 {
		t.Fatalf("bad frames: %d and %d", sa.BadFrames, sb.BadFrames)
	}
}

// TestFragmentBounds: a fragment larger than a datagram (a peer may send
// one over a stream), of more than 16, or past its count is refused and
// counted, and nothing of it is held.
func TestFragmentBounds(t *testing.T) {
	a := startNode(t, "a", nil)
	for name, payload := range map[string][]byte{
		"larger than a datagram": append([]byte{0, 2}, make([]byte, maxDatagram)...),
		"of 17":                  {0, maxFragments + 1, 'x'},
		"past its count":         {2, 2, 'x'},
		"of none":                {0, 0, 'x'},
		"empty":                  {0, 2},
	} {
		before := a.r.Stats().BadFrames
		a.r.receivedFragment("peer", 1, payload)
		if a.r.Stats().BadFrames != before+1 || len(a.r.frags.partials) != 0 {
			t.Fatalf("a fragment %s: bad frames %d -> %d, %d held", name, before, a.r.Stats().BadFrames, len(a.r.frags.partials))
		}
	}
}

// TestLongLabelLeavesRoomInDatagrams: a cluster label goes in every
// datagram, so a frame sized to fill one without it makes a datagram
// longer than the packet size (which is chosen to stay under the path's
// MTU); members with a long label send none, over frames of every size,
// and converge.
func TestLongLabelLeavesRoomInDatagrams(t *testing.T) {
	label := func(c *Config) { c.Label = strings.Repeat("l", 200) }
	a := startNode(t, "a", nil, label)
	for i := range 300 {
		a.rep.write(a.r, fmt.Sprintf("key-%d", i), bytes.Repeat([]byte("v"), i%97), false)
	}
	b := startNode(t, "b", []string{a.r.Addr()}, label)
	waitMembers(t, 2, a, b)
	waitConverged(t, 10*time.Second, a, b)
	for i := range 300 { // and deltas of every size
		a.rep.write(a.r, fmt.Sprintf("delta-%d", i), bytes.Repeat([]byte("d"), 4*i), false)
	}
	waitConverged(t, 10*time.Second, a, b)
	for _, n := range []*node{a, b} {
		if got := n.r.wire.largest.Load(); got > uint64(n.r.cfg.PacketSize) {
			t.Fatalf("%s sent a datagram of %d bytes; the packet size is %d", n.r.cfg.Name, got, n.r.cfg.PacketSize)
		}
	}
}

// TestReassemblyBoundsBytes: fragments as large as a datagram from many
// frames at once are held up to maxPartialBytes, the oldest frames
// dropped (and counted) to make room; a frame larger than the bound by
// itself is dropped, and a frame that fits still comes whole.
func TestReassemblyBoundsBytes(t *testing.T) {
	now := time.Unix(1000, 0)
	var a reassembly
	part := make([]byte, maxDatagram-3)
	total := 0
	for i := range maxPartial {
		for j := range maxFragments - 1 { // each frame one short of whole
			_, dropped, _ := a.add(fmt.Sprint("peer", i), 1, j, maxFragments, part, now)
			total += dropped
			if a.bytes > maxPartialBytes {
				t.Fatalf("%d bytes held, bound %d", a.bytes, maxPartialBytes)
			}
		}
	}
	if total == 0 {
		t.Fatal("nothing dropped, past the bound")
	}
	held := 0
	for _, p := range a.partials {
		held += p.size()
	}
	if held != a.bytes {
		t.Fatalf("%d bytes in the partial frames, %d counted", held, a.bytes)
	}
	f, _, _ := a.add("late", 9, 0, 2, []byte("ab"), now)
	if f != nil {
		t.Fatal("whole after one of two")
	}
	if f, _, _ = a.add("late", 9, 1, 2, []byte("c"), now); !bytes.Equal(f, []byte("abc")) {
		t.Fatalf("frame %q, want abc", f)
	}
}

// TestMembersWithOtherPacketSizesRepair: a member whose PacketSize is
// larger than its peer's sends fragments larger than the peer's own; the
// peer takes them (it refused every one as a bad frame, and never caught
// up through anti-entropy).
func TestMembersWithOtherPacketSizesRepair(t *testing.T) {
	a := startNode(t, "a", nil, func(c *Config) { c.PacketSize = 4000 })
	a.rep.mu.Lock()
	for i := range 200 { // written without deltas: anti-entropy moves them
		a.rep.m.Merge(crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: make([]byte, 100), Time: a.rep.clock.Now()}, false, 0, nil)
	}
	a.rep.mu.Unlock()
	b := startNode(t, "b", []string{a.r.Addr()})
	waitMembers(t, 2, a, b)
	waitConverged(t, 10*time.Second, a, b)
	if sa, sb := a.r.Stats(), b.r.Stats(); sa.FragmentedFrames == 0 || sb.BadFrames != 0 {
		t.Fatalf("a sent %d frames as fragments (want some); b refused %d as bad", sa.FragmentedFrames, sb.BadFrames)
	}
}

// TestFragmentsOfNoMemberAreRefused: a fragment that names no live member
// as its sender is refused (and counted) before reassembly, whose bounded
// room a made-up name could fill, pushing members' frames out (found by
// review).
func TestFragmentsOfNoMemberAreRefused(t *testing.T) {
	a := startNode(t, "a", nil)
	before := a.r.Stats().BadFrames
	a.r.receivedCall(appendCall(nil, "nobody", callFragment, 1, []byte{0, 2, 'x'})[1:]) // after its marker
	if a.r.Stats().BadFrames != before+1 || len(a.r.frags.partials) != 0 {
		t.Fatalf("a fragment from no member: bad frames %d -> %d, %d held", before, a.r.Stats().BadFrames, len(a.r.frags.partials))
	}
}

// TestFragmentsInTheReceiversOwnNameAreRefused: a member sends itself no
// fragments: one in its own name is a forgery (anyone holding the key), and
// held, it took a place among the bounded partial frames.
func TestFragmentsInTheReceiversOwnNameAreRefused(t *testing.T) {
	a := startNode(t, "a", nil)
	before := a.r.Stats().BadFrames
	a.r.receivedCall(appendCall(nil, "a", callFragment, 1, []byte{0, 2, 'x'})[1:]) // after its marker
	if a.r.Stats().BadFrames != before+1 || len(a.r.frags.partials) != 0 {
		t.Fatalf("a fragment in the receiver's own name: bad frames %d -> %d, %d held", before, a.r.Stats().BadFrames, len(a.r.frags.partials))
	}
}

// TestPartialFramesExpireWithoutFragments: a partial frame whose sender
// stopped sending is dropped once it is older than partialTTL, whether or
// not another fragment comes (it was dropped only when one came: a
// sender gone left up to 16 MiB held; found by review), and counted.
func TestPartialFramesExpireWithoutFragments(t *testing.T) {
	// An hour between sessions: the loop's next deadline is that far (it
	// slept until then, the frame held: found by the review of the fix).
	long := func(c *Config) { c.Protocol.AntiEntropyInterval = time.Hour }
	a := startNode(t, "a", nil, long)
	b := startNode(t, "b", []string{a.r.Addr()}, long)
	waitMembers(t, 2, a, b)
	a.r.receivedFragment("b", 1, []byte{0, 3, 'x'})
	a.r.frags.mu.Lock()
	held := a.r.frags.bytes
	a.r.frags.mu.Unlock()
	if held != 1 {
		t.Fatalf("%d bytes held after a fragment, want 1", held)
	}
	// The sweep drops the frame, then counts it, outside the lock: wait
	// for the count (read once the bytes were gone, under load it had
	// not come yet), then look that nothing is held.
	await.Until(t, 10*partialTTL, func() bool { return a.r.Stats().FragmentsDropped >= 1 },
		"the partial frame of a sender gone was never counted dropped")
	a.r.frags.mu.Lock()
	held = a.r.frags.bytes
	a.r.frags.mu.Unlock()
	if n := a.r.Stats().FragmentsDropped; n != 1 || held != 0 {
		t.Fatalf("%d partial frames counted dropped, %d bytes still held; want 1, 0", n, held)
	}
}

// TestAHeldFragmentWakesTheLoop: a fragment held (its frame not whole)
// while the loop waits past partialTTL, none held when it began to wait,
// wakes the loop, once, so that the partial frame is swept in time. It
// stayed held until the loop's next event, an anti-entropy interval
// away on an idle member (TestPartialFramesExpireWithoutFragments failed
// now and then in CI for it).
func TestAHeldFragmentWakesTheLoop(t *testing.T) {
	r := &Replicator{kick: make(chan struct{}, 1)}
	r.receivedFragment("b", 1, []byte{0, 3, 'x'})
	select {
	case <-r.kick:
	default:
		t.Fatal("a fragment held did not wake the loop")
	}
	r.receivedFragment("b", 1, []byte{1, 3, 'y'})
	select {
	case <-r.kick:
		t.Fatal("a second fragment woke the loop again before it looked")
	default:
	}
}

// TestAPartialFrameIsSweptWhenDue: a partial frame is dropped about
// partialTTL after it arrived, one that arrives just after a sweep too:
// the loop swept only partialTTL after its last sweep and woke
// partialTTL after it began to wait, and held such a frame about twice as
// long (3.96 s for a partialTTL of 2 s: found by review).
func TestAPartialFrameIsSweptWhenDue(t *testing.T) {
	long := func(c *Config) { c.Protocol.AntiEntropyInterval = time.Hour }
	a := startNode(t, "a", nil, long)
	b := startNode(t, "b", []string{a.r.Addr()}, long)
	waitMembers(t, 2, a, b)
	// Ages, not waits for events: the loop's last sweep long past, so
	// that the first fragment's wake sweeps (as it did before the fix);
	// the second fragment just after that sweep.
	time.Sleep(2*partialTTL + 100*time.Millisecond)
	a.r.receivedFragment("b", 1, []byte{0, 3, 'x'}) // wakes the loop, which sweeps
	time.Sleep(50 * time.Millisecond)
	a.r.receivedFragment("b", 2, []byte{0, 3, 'y'})
	born := time.Now()
	await.Until(t, 3*partialTTL, func() bool {
		a.r.frags.mu.Lock()
		defer a.r.frags.mu.Unlock()
		return !slices.ContainsFunc(a.r.frags.partials, func(p *partial) bool { return p.id == 2 })
	}, "the partial frame never swept")
	if d := time.Since(born); d > partialTTL+time.Second {
		t.Fatalf("a partial frame held %v after it arrived; partialTTL is %v", d, partialTTL)
	}
}

// TestForEachUntilMakesAPrefixOfTheCalls: the calls forEachUntil makes are
// those of the first i, with no gap: done was asked after an i was taken,
// and a worker that then found it true left its i out while another
// made the next (found by review); an SRV name's targets after the gap,
// looked up, were dropped. done is blocked here, once, between a
// worker's look and its call, as a preempted worker would be.
func TestForEachUntilMakesAPrefixOfTheCalls(t *testing.T) {
	for try := range 40 {
		var calls atomic.Int64
		var stop atomic.Bool
		release := make(chan struct{})
		var once sync.Once
		ran := make([]atomic.Bool, 3)
		forEachUntil(3, 2, func(i int) {
			ran[i].Store(true)
			stop.Store(true) // this call reached the cap
			once.Do(func() { close(release) })
		}, func() bool {
			if calls.Add(1) == 1 { // the first worker's look, held until a call was made
				<-release
			}
			return stop.Load()
		})
		for i := 1; i < 3; i++ {
			if ran[i].Load() && !ran[i-1].Load() {
				t.Fatalf("try %d: call %d made, call %d not", try, i, i-1)
			}
		}
	}
}

// TestAnInsiderCannotNameAPeersNextFragments: a member that saw one of
// a peer's fragment ids, and sends fragments of its own under the peer's
// name with the ids after it and another count, does not make the peer's
// next fragmented frame go unread: ids are drawn at random for each
// frame. From a counter, the next id was the one seen plus one, and every
// fragment of the real frame was refused (found by review); from 1 in
// every process, a restart's first frame was taken for a late copy of
// its last process's (found by an earlier review).
func TestAnInsiderCannotNameAPeersNextFragments(t *testing.T) {
	_, s, r := callPair(t, nil)
	to := s.r.lookup(r.r.cfg.Name)
	frame := bytes.Repeat([]byte{byte(wire.KindRepair)}, 3*s.r.fragmentSize())
	// The frame's id, as r holds it once the frame is whole.
	whole := func(skip map[uint64]bool) (uint64, bool) {
		r.r.frags.mu.Lock()
		defer r.r.frags.mu.Unlock()
		if d := r.r.frags.done[s.r.cfg.Name]; d != nil {
			for _, id := range d.ids[:min(d.n, doneEach)] {
				if !skip[id] {
					return id, true
				}
			}
		}
		return 0, false
	}
	sent := map[uint64]bool{}
	send := func() uint64 {
		t.Helper()
		if to == nil || !s.r.sendFragments(to, wire.KindRepair, frame) {
			t.Fatal("the frame did not go as fragments")
		}
		var id uint64
		await.Until(t, 5*time.Second, func() bool {
			var ok bool
			id, ok = whole(sent)
			return ok
		}, "s's fragmented frame never came whole at r")
		sent[id] = true
		return id
	}
	seen := send()
	for d := range uint64(16) { // the insider's datagrams, naming s
		r.r.frags.add(s.r.cfg.Name, seen+1+d, 0, 2, []byte("x"), time.Now())
	}
	next := send()
	if next-seen <= 16 {
		t.Fatalf("the frame after id %d has id %d", seen, next)
	}
}

// TestOneSenderCannotPushOutAnothersFragments: the reassembly holds at
// most maxPartial frames from all senders together; a new one pushed out
// the oldest, whoever sent it, so that one member sending fragments of
// new frames (a datagram each, a count of 2 and their first fragment)
// pushed every other member's partial frame out before its second
// fragment came (found by review). Room is made from the sender holding
// the most.
func TestOneSenderCannotPushOutAnothersFragments(t *testing.T) {
	var a reassembly
	now := time.Now()
	if f, _, _ := a.add("victim", 7, 0, 2, []byte("hello, "), now); f != nil {
		t.Fatal("whole at its first fragment")
	}
	for i := range maxPartial {
		a.add("flooder", uint64(1000+i), 0, 2, []byte("x"), now)
	}
	f, _, _ := a.add("victim", 7, 1, 2, []byte("world"), now)
	if string(f) != "hello, world" {
		t.Fatalf("the victim's frame: %q, want it whole: %d partial frames of one other sender pushed it out", f, maxPartial)
	}
}
