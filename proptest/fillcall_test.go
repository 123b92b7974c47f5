package proptest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/internal/clusterfill"
)

// TestAFillAnswerToAnEndedIncarnationEndsNoCallOfTheNext: an owner's
// answer to a call of a member's that crashed reaches, in flight, the
// member's next incarnation (frames outlive a crash: Cluster.Crash). A
// Cache numbers its calls at random (transport/gossip), so no call of the
// next process takes it for its own; the StoreReplica numbered them from 1
// in each incarnation, and the new incarnation's first call, of another
// key asked of the same owner, ended with the answer (here the Source's
// error for the other key, which the harness, checking only that an
// outage explains an error, let pass).
func TestAFillAnswerToAnEndedIncarnationEndsNoCallOfTheNext(t *testing.T) {
	c := newTestCluster(t, 2)
	var x, y string // two keys n1 owns
	for i := 0; y == ""; i++ {
		k := fmt.Sprint("key", i)
		if clusterfill.Owner(k, "n0", []string{"n0", "n1"}) != "n1" {
			continue
		}
		if x == "" {
			x = k
		} else {
			y = k
		}
	}
	c.SetSource(func(key string) ([]byte, error) {
		if key == x {
			return nil, errors.New(sourceOutage + " for " + x)
		}
		return []byte(key + "=filled"), nil
	})
	c.send(0, c.Replica(0).(ClusterFiller).Fill(1, x))
	if _, err := c.Deliver(0); err != nil { // n1 fills x: the Source fails, its answer goes to n0
		t.Fatal(err)
	}
	c.Crash(0)
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	c.send(0, c.Replica(0).(ClusterFiller).Fill(2, y))
	for c.Net.Len() > 0 && c.Net.InFlight()[0].From == "n1" { // the old answer, and nothing n1 says after the call of y
		if _, err := c.Deliver(0); err != nil {
			t.Fatal(err)
		}
	}
	_, ended := c.Replica(0).(ClusterFiller).Filled()
	for _, res := range ended {
		if res.Err != nil && !strings.Contains(res.Err.Error(), fmt.Sprintf("%q", res.Key)) {
			t.Fatalf("call %d of %q ended with %v: the answer to the crashed incarnation's call of %q", res.Call, res.Key, res.Err, x)
		}
	}
	if len(ended) != 0 {
		t.Fatalf("calls ended %+v before their owner answered them", ended)
	}
}
