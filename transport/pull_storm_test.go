package transport

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestAPullWithSlowRepliesSendsEachStepAFewTimesAtMost: a pull from a
// responder whose every reply takes 150 ms to gather and send (a large
// repair, a busy leaver) sends each Versions step a few times at most, as
// pullRetry's comment says, and the responder is not buried under copies
// it must each gather again: the session still moves its records. Every
// ask reset the pull's retry to pullRetry, so each slow step went again
// and again, the copies queued at the responder, its replies came later
// still, and the copies grew with every step.
func TestAPullWithSlowRepliesSendsEachStepAFewTimesAtMost(t *testing.T) {
	for _, pull := range []bool{false, true} {
		t.Run(fmt.Sprintf("pull=%v", pull), func(t *testing.T) {
			c := newStoreCluster(t, Config{SessionTimeout: 4 * time.Second, AntiEntropyInterval: time.Hour, LeavesPerStep: 8},
				store.Config{Shards: 16, DigestBits: 8, Horizon: time.Hour}, "a", "b")
			c.now.Advance(time.Second)
			for i := range 2000 {
				c.write("b", crdt.Record{Key: fmt.Sprint("k", i), Value: []byte("v")})
			}
			c.now.Advance(10 * time.Millisecond)
			a, b := c.nodes["a"], c.nodes["b"]
			var out []Envelope
			var seq uint64
			if pull {
				out, seq = a.Pull("b", c.now.Now())
			} else {
				out = a.StartSession("b", c.now.Now())
			}
			const service = 150 * time.Millisecond // b's time per frame: gathered, sent
			var queue []Envelope                   // a's frames waiting at b
			var busyUntil int64
			var replies []Envelope // b's output of the frame in service
			versions, chunks := 0, 256/8
			send := func(envs []Envelope) {
				for _, e := range envs {
					if e.To == "b" {
						queue = append(queue, e)
					}
				}
			}
			send(out)
			end := c.now.Now() + int64(30*time.Second)
			for c.now.Now() < end {
				now := c.now.Now()
				if replies != nil && now >= busyUntil {
					for _, e := range replies {
						o, err := a.Receive("b", e.Payload, now)
						if err != nil {
							t.Fatal(err)
						}
						send(o)
					}
					replies = nil
				}
				if replies == nil && len(queue) > 0 {
					e := queue[0]
					queue = queue[1:]
					if _, ok := decodeFrame(t, e.Payload).(*wire.Versions); ok {
						versions++
					}
					o, err := b.Receive("a", e.Payload, now)
					if err != nil {
						t.Fatal(err)
					}
					replies = append([]Envelope{}, o...)
					busyUntil = now + int64(service)
				}
				send(a.Tick(now))
				if !a.ae.active && replies == nil && len(queue) == 0 {
					break
				}
				c.now.Advance(10 * time.Millisecond)
			}
			if pull && !a.Pulled("b", seq) {
				t.Errorf("the pull did not complete (%d Versions for %d chunks)", versions, chunks)
			}
			if versions > 3*chunks {
				t.Errorf("b was sent %d Versions steps for %d chunks", versions, chunks)
			}
			t.Logf("pull=%v: %d Versions for %d chunks, %d retries, %v", pull, versions, chunks, a.stats.StepsRetried, time.Duration(c.now.Now()-end+int64(30*time.Second)))
		})
	}
}
