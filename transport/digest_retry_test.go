package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/wire"
)

// TestDigestStepsAreSentAgainUntilTheTimeout: a digest step (the opening,
// or a deeper level) whose replies are all lost is sent again every
// eighth of the session timeout until the session times out: seven
// retries. With a 20 ms timeout (the scale simulator's), the first retry
// waited a floor of 50 ms, past the timeout, and none went: every frame
// lost cost the session (found by review); and doubled at each retry, a
// step went at most four times in all, where each digest level is a step
// a session under loss must get through.
func TestDigestStepsAreSentAgainUntilTheTimeout(t *testing.T) {
	const timeout = 20 * time.Millisecond // firstRetry: 2.5 ms
	n := newTestNet(t, 12, Config{AntiEntropyInterval: time.Hour, SessionTimeout: timeout}, "a", "b")
	n.write("b", "k", "v") // the delta is lost: a and b differ
	a, b := n.nodes["a"], n.nodes["b"]
	for _, opening := range []bool{true, false} {
		now := n.now.Now()
		out := a.StartSession("b", now)
		if !opening { // the opening's answer comes, and a asks for the next level
			reply, err := b.Receive("a", out[0].Payload, now)
			if err != nil || len(reply) != 1 {
				t.Fatalf("b answered the opening with %v, %v", reply, err)
			}
			if out, err = a.Receive("b", reply[0].Payload, now); err != nil || len(out) != 1 || out[0].Kind != wire.KindDigest {
				t.Fatalf("a answered b's digest with %v, %v; want the next level", out, err)
			}
		}
		before, timedOut, sent := a.Stats().StepsRetried, a.Stats().SessionsTimedOut, 0
		for end := now + int64(timeout); a.Stats().SessionsTimedOut == timedOut && n.now.Now() <= end; {
			n.now.Advance(500 * time.Microsecond)
			out := a.Tick(n.now.Now())
			if a.Stats().SessionsTimedOut != timedOut {
				break // what goes now is the next session's
			}
			for _, e := range out { // all lost
				if e.To == "b" && e.Kind == wire.KindDigest {
					sent++
				}
			}
		}
		if a.Stats().SessionsTimedOut == timedOut {
			t.Fatalf("opening %v: the session did not time out", opening)
		}
		if retried := a.Stats().StepsRetried - before; retried != 7 || sent != 7 {
			t.Fatalf("opening %v: the step was retried %d times (%d digests sent) before the timeout, want 7 (every %v)", opening, retried, sent, timeout/8)
		}
	}
}
