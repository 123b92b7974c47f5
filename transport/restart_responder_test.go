package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/wire"
)

// TestOldProcessSessionIsNoExchangeWithTheNew: Restarted says that no
// exchange with the new process has completed (LastSyncs), and a session
// in flight with the member ends. The old process's session with this
// node as responder went on: its final Repair, late (a stream's bytes
// delivered after the process died), completed it after the restart,
// and LastSyncs (Status's last sync) and FirstSync showed an exchange
// with the new process, which had exchanged nothing. The same when the
// view saw the old process go and the new one come (rejoined).
func TestOldProcessSessionIsNoExchangeWithTheNew(t *testing.T) {
	for _, rejoined := range []bool{false, true} {
		testOldProcessSessionEnds(t, rejoined)
	}
}

// testOldProcessSessionEnds is TestOldProcessSessionIsNoExchangeWithTheNew
// with b's new process told by Restarted, or, rejoined, by b leaving the
// view and coming back.
func testOldProcessSessionEnds(t *testing.T, rejoined bool) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	n.holding("b", 2, 20)
	a := n.nodes["a"]
	var late []Envelope
	n.drop = func(from string, e Envelope) bool {
		if from != "b" || e.To != "a" {
			return false
		}
		m, err := wire.NewCodec(wire.Limits{}).Decode(e.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := m.(*wire.Repair); ok && r.Final {
			late = append(late, e)
			return true
		}
		return false
	}
	n.pump("b", n.nodes["b"].StartSession("a", n.now.Now())) // b's old process
	n.drop = nil
	if len(late) != 1 || a.Stats().SessionsResponded != 0 {
		t.Fatalf("setup: held %d final Repairs, a responded %d", len(late), a.Stats().SessionsResponded)
	}
	n.now.Advance(100 * time.Millisecond)
	if rejoined {
		a.SetMembers([]string{"a"}, n.now.Now())
		n.now.Advance(100 * time.Millisecond)
		a.SetMembers([]string{"a", "b"}, n.now.Now())
	} else {
		a.Restarted("b", n.now.Now())
	}
	n.now.Advance(10 * time.Millisecond)
	n.pump("b", late) // the old process's last frame, late
	if at, ok := a.LastSyncs()["b"]; ok || a.FirstSync() != 0 {
		t.Fatalf("b restarted (rejoined %v): the old process's session completed on a after it as an exchange with the new one (last sync %d, first sync %d, responded %d)",
			rejoined, at, a.FirstSync(), a.Stats().SessionsResponded)
	}
	// The new process's sessions count.
	_ = n.write("b", "new", "v") // its delta lost: the session moves it
	n.pump("b", n.nodes["b"].StartSession("a", n.now.Now()))
	if a.LastSyncs()["b"] != n.now.Now() {
		t.Fatalf("rejoined %v: a session of the new process completed on a: last sync %d, want %d", rejoined, a.LastSyncs()["b"], n.now.Now())
	}
}
