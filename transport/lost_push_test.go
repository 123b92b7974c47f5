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
	lost := 0
	p.run("a", a.StartSession("b", p.now.Now()), func(h hop, m wire.Message) bool {
		if r, ok := m.(*wire.Repair); ok && h.from == "a" && !r.Final && lost == 0 {
			lost = len(r.Records)
			return true
		}
		return false
	}, nil)
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
