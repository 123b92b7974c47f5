package transport

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestLostRepairDoesNotStallTheRestOfAPush: the initiator holds more
// small records than the responder's wants list carries (wire.MaxRecords
// key hashes), all in one chunk of leaves; the responder wants the first
// MaxRecords, and the initiator's answer, which carries them all, is lost.
// The responder, still lacking them, wants the same hashes again at every
// ask: the initiator, holding them as pushed, sends nothing, asks again,
// and the session spins until maxReasks, the records past the first
// MaxRecords never going (before the pushed set, they went again and the
// push went on). A session with one Repair lost must still move the rest.
func TestLostRepairDoesNotStallTheRestOfAPush(t *testing.T) {
	const n = 3 * wire.MaxRecords
	p := newStorePair(t, Config{}, store.Config{Shards: 16, DigestBits: 8})
	for i := range n {
		p.write("a", crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: []byte("v")}) // b missed the deltas
	}
	a, b := p.nodes["a"], p.nodes["b"]
	lost := pushLosingAFirstRepair(p)
	d := p.diff()
	sa := a.Stats()
	t.Logf("lost a Repair of %d records; a sent %d repair records, completed %d, timed out %d; b received %d; %d keys differ",
		lost, sa.RepairRecordsSent, sa.SessionsCompleted, sa.SessionsTimedOut, b.Stats().RepairRecordsReceived, len(d))
	if lost == 0 {
		t.Fatal("no Repair of a's lost")
	}
	if len(d) > lost {
		t.Fatalf("after a session that lost one Repair of %d records, %d of %d keys differ: the rest of the push did not move", lost, len(d), n)
	}
}

// TestRepairLostBeforeALeafsLastAskIsSentAgain: the initiator's answer
// to its first Versions of a leaf is cut (two Repairs' worth), and the
// first Repair is lost. At the next ask the responder wants its records
// again with the rest, which fit: the initiator passed the lost records
// over (pushed, budget one), sent the rest uncut, and took the leaf for
// done, so what the lost Repair carried never went again in the session,
// though the record was still wanted (sent again only at a later ask,
// and there was none). Before the pushed set it went at that ask.
func TestRepairLostBeforeALeafsLastAskIsSentAgain(t *testing.T) {
	for _, n := range []int{5, 7} {
		p := newStorePair(t, Config{LeavesPerStep: 4, MaxRepairBytes: 2000}, store.Config{Shards: 16, DigestBits: 8})
		for _, k := range sameBucket(8, n) {
			p.write("a", crdt.Record{Key: k, Value: make([]byte, 600)}) // b missed the deltas
		}
		a, b := p.nodes["a"], p.nodes["b"]
		lost := pushLosingAFirstRepair(p)
		sa := a.Stats()
		d := p.diff()
		t.Logf("n %d: lost a Repair of %d records; a sent %d repair records, completed %d, timed out %d; b received %d; %d keys differ",
			n, lost, sa.RepairRecordsSent, sa.SessionsCompleted, sa.SessionsTimedOut, b.Stats().RepairRecordsReceived, len(d))
		if lost == 0 {
			t.Fatalf("n %d: no Repair of a's lost", n)
		}
		if len(d) > 0 {
			t.Errorf("n %d: after a session that lost one Repair, still wanted at the next ask, %d keys differ: %v", n, len(d), d)
		}
	}
}

// pushLosingAFirstRepair runs a session from a to b in which a's first
// Repair that is not its final one is lost, and returns its records.
func pushLosingAFirstRepair(p *storePair) (lost int) {
	p.run("a", p.nodes["a"].StartSession("b", p.now.Now()), func(h hop, m wire.Message) bool {
		if r, ok := m.(*wire.Repair); ok && h.from == "a" && !r.Final && lost == 0 {
			lost = len(r.Records)
			return true
		}
		return false
	}, nil)
	return lost
}
