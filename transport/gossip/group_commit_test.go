package gossip

import (
	"strconv"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
)

// TestWritesTakenAtOnceLeaveAsOneGroup: every write queued while the loop
// was busy is one group (group commit, the default): handed to the
// protocol together, a key written many times leaves once, coalesced,
// however many of the queue's chunks (256 writes each) the writes
// filled. The loop handed the protocol one group per chunk, and with no
// FlushInterval each was flushed on its own: a key written in two chunks
// left twice, and every chunk ended in a frame of its own, part full.
func TestWritesTakenAtOnceLeaveAsOneGroup(t *testing.T) {
	a := startNode(t, "a", nil)
	b := startNode(t, "b", []string{a.r.Addr()})
	waitMembers(t, 2, a, b)
	await.Until(t, 10*time.Second, func() bool { return a.r.peered.Load() }, "a has no peer")
	// The records counted sent are those of a node that knows b: the
	// loop tells it of b a little after Members (and peered) show b, and
	// a write it took before sent nothing (0 records under load).
	waitProtocolMembers(t, 2, a)

	a.r.nodeMu.Lock() // the loop, busy: it waits for the lock
	before := a.r.node.Stats()
	a.rep.write(a.r, "first", []byte("x"), false)
	// The loop takes the first write and waits for the lock, or, if it
	// waits for it already (a Tick), takes it with the others: either
	// way it takes none of the writes below before they are all queued.
	await.Until(t, 10*time.Second, func() bool { return a.r.writes.len() == 0 || a.r.loopWaits.Load() },
		"the loop neither took the first write nor waits for the lock")
	const writes = chunkLen + chunkLen/2 // two chunks at least
	for i := range writes {
		a.rep.write(a.r, "k", []byte(strconv.Itoa(i)), false)
	}
	a.r.nodeMu.Unlock()
	await.Until(t, 10*time.Second, func() bool {
		a.r.nodeMu.Lock()
		defer a.r.nodeMu.Unlock()
		return a.r.writes.len() == 0 && a.r.node.Pending() == 0
	}, "writes still queued")
	a.r.nodeMu.Lock()
	after := a.r.node.Stats()
	a.r.nodeMu.Unlock()
	if sent := after.DeltaRecordsSent - before.DeltaRecordsSent; sent != 2 {
		t.Fatalf("%d records sent for the first write and %d writes of one key made while the loop was busy, want 2 (coalesced %d)",
			sent, writes, after.DeltasCoalesced-before.DeltasCoalesced)
	}
	waitValue(t, 10*time.Second, "k", []byte(strconv.Itoa(writes-1)), a, b)
}

// TestCloseSendsTheWritesQueued: a member that leaves (Close) sends the
// writes its protocol still held for a FlushInterval not yet over: the
// loop stopped with them queued, and a member that keeps nothing (no
// snapshot) took them away, written here and held by no other member,
// uncounted.
func TestCloseSendsTheWritesQueued(t *testing.T) {
	slow := func(c *Config) {
		c.Protocol.FlushInterval = time.Hour
		c.Protocol.AntiEntropyInterval = time.Hour
	}
	a := startNode(t, "a", nil, slow)
	b := startNode(t, "b", []string{a.r.Addr()}, slow)
	waitMembers(t, 2, a, b)
	await.Until(t, 10*time.Second, func() bool { return a.r.peered.Load() }, "a has no peer")
	synced := func(n *node) func() bool {
		return func() bool {
			n.r.nodeMu.Lock()
			defer n.r.nodeMu.Unlock()
			return n.r.node.FirstSync() != 0
		}
	}
	await.Until(t, 10*time.Second, synced(a), "a never synced")
	await.Until(t, 10*time.Second, synced(b), "b never synced")
	a.rep.write(a.r, "idle", []byte("x"), false) // sent at once
	waitValue(t, 10*time.Second, "idle", []byte("x"), b)
	a.rep.write(a.r, "queued", []byte("y"), false) // waits for the FlushInterval
	await.Until(t, 10*time.Second, func() bool {
		a.r.nodeMu.Lock()
		defer a.r.nodeMu.Unlock()
		return a.r.node.Pending() == 1
	}, "the second write is not queued")
	if err := a.r.Close(); err != nil {
		t.Fatal(err)
	}
	waitValue(t, 5*time.Second, "queued", []byte("y"), b)
}

// TestWritesRefusedByAFullQueueAreCountedAndRepaired: a write that finds
// the write queue full (four times QueueSize) is refused, never blocks,
// is counted in WritesDropped, and anti-entropy carries it.
func TestWritesRefusedByAFullQueueAreCountedAndRepaired(t *testing.T) {
	small := func(c *Config) { c.QueueSize = 1 } // room for 4 writes
	a := startNode(t, "a", nil, small)
	b := startNode(t, "b", []string{a.r.Addr()}, small)
	waitMembers(t, 2, a, b)
	await.Until(t, 10*time.Second, func() bool { return a.r.peered.Load() }, "a has no peer")
	a.r.nodeMu.Lock() // the loop waits for the lock, the writes pile up
	refused := 0
	for i := range 20 {
		a.rep.mu.Lock()
		rec := crdt.Record{Key: "k" + strconv.Itoa(i), Value: []byte("v"), Time: a.rep.clock.Now()}
		a.rep.m.Merge(rec, false, 0, nil)
		a.rep.mu.Unlock()
		if !a.r.Write(rec) {
			refused++
		}
	}
	a.r.nodeMu.Unlock()
	if refused < 10 { // the loop takes what was queued when it woke, then waits
		t.Fatalf("%d of 20 writes refused with room for 4", refused)
	}
	if got := a.r.Stats().WritesDropped; got != uint64(refused) {
		t.Fatalf("WritesDropped = %d, want %d", got, refused)
	}
	for i := range 20 {
		waitValue(t, 10*time.Second, "k"+strconv.Itoa(i), []byte("v"), b)
	}
}
