package proptest

import (
	"testing"

	"github.com/bcache-go/bcache/transport/sim"
)

// TestFramesOutliveACrash: a member's frames in flight stay in flight as it
// crashes, as datagrams in a network do: one it sent before it crashed
// still arrives, one to it delivered while it is down is lost (counted as
// cut, and told as lost), and one to it delivered after it restarts
// reaches its new incarnation. (Cluster.Crash cut them all, through
// sim.Network.SetDown: found by review.)
func TestFramesOutliveACrash(t *testing.T) {
	c := newTestCluster(t, 2)
	var lost []sim.Packet
	c.Delivered = func(p sim.Packet, received bool) {
		if !received {
			lost = append(lost, p)
		}
	}
	c.Set(0, "a", []byte("1"), 0) // n0's delta to n1, in flight
	c.Crash(0)
	if c.Net.Len() != 1 {
		t.Fatalf("%d frames in flight after n0 crashed, want its delta", c.Net.Len())
	}
	if err := c.DeliverAll(10); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Replica(1).Get("a"); !ok || string(v) != "1" {
		t.Fatalf("n1: Get(a) = %q, %v: the delta n0 sent before it crashed did not arrive", v, ok)
	}
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	if err := c.DeliverAll(1000); err != nil { // the sessions to the member back
		t.Fatal(err)
	}

	c.Set(1, "b", []byte("2"), 0) // to n0, which crashes: lost
	c.Crash(0)
	if err := c.DeliverAll(10); err != nil {
		t.Fatal(err)
	}
	if len(lost) != 1 || lost[0].From != "n1" || lost[0].To != "n0" {
		t.Fatalf("lost %v, want n1's delta to n0, which was down", lost)
	}
	if st := c.Stats(); st.Cut != 1 || st.Delivered != c.Net.Stats().Delivered-1 {
		t.Fatalf("stats %+v, want the frame to a member down counted cut, not delivered", st)
	}
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	if err := c.DeliverAll(1000); err != nil {
		t.Fatal(err)
	}
	c.Set(1, "c", []byte("3"), 0) // to n0, which crashes and restarts before it arrives
	c.Crash(0)
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	pkt, ok, err := c.Net.Take(0) // the oldest: sent before the restart
	if err != nil || !ok || pkt.From != "n1" || !c.DeliverPacket(pkt) {
		t.Fatalf("took %v, %v, %v: want n1's delta, delivered", pkt, ok, err)
	}
	if v, ok := c.Replica(0).Get("c"); !ok || string(v) != "3" {
		t.Fatalf("n0: Get(c) = %q, %v: the delta sent to it while it was down did not reach its next incarnation", v, ok)
	}
}

// crashHeavy are weights that crash, leave, restart and restore members
// often while frames wait in flight: with frames outliving a crash
// (Cluster.Crash), those of an incarnation arrive after it ended, and
// those to it reach its next.
func crashHeavy() map[string]int {
	w := DefaultWeights()
	for name, n := range map[string]int{"crash": 3, "leave": 2, "restart": 4, "snapshot": 2, "restore": 3, "antientropy": 3, "reorder": 2, "deliver": 4} {
		w[name] = n
	}
	return w
}

// TestFramesOutliveCrashes runs the harness over bcache's replica with
// crashes, leaves and restarts drawn often.
func TestFramesOutliveCrashes(t *testing.T) {
	Check(t, Config{Weights: crashHeavy()})
}

// TestFramesOutliveCrashesNoAdversary is TestFramesOutliveCrashes without
// the adversary, whose frames take a share of the draws.
func TestFramesOutliveCrashesNoAdversary(t *testing.T) {
	Check(t, Config{Weights: crashHeavy(), Disable: adversarial})
}

// TestFramesOutliveCrashesInABusyBucket is TestEarlyCollectionInABusyBucket
// with crashes, leaves, restarts and restores drawn often: frames of an
// ended incarnation, and to one, meet early collection's watermarks.
func TestFramesOutliveCrashesInABusyBucket(t *testing.T) {
	cfg := busyBucket(DefaultStoreConfig())
	for name, n := range crashHeavy() {
		cfg.Weights[name] = max(cfg.Weights[name], n)
	}
	Check(t, cfg)
}

// TestFramesOutliveCrashesLossy adds loss and duplication.
func TestFramesOutliveCrashesLossy(t *testing.T) {
	Check(t, Config{Weights: crashHeavy(), Loss: 0.2, Duplication: 0.1})
}

// TestFramesOutliveCrashesOfTheMap runs the crash-heavy weights over the
// lww.Map replica (MapFactory).
func TestFramesOutliveCrashesOfTheMap(t *testing.T) {
	Check(t, Config{Factory: MapFactory(DefaultMapConfig()), Weights: crashHeavy()})
}

// TestFramesOutliveRestores draws snapshots and restores most, in
// clusters of two or three, while frames wait in flight: a restored
// incarnation receives those meant for the one before.
func TestFramesOutliveRestores(t *testing.T) {
	w := crashHeavy()
	w["snapshot"], w["restore"], w["restart"], w["crash"], w["deliver all"] = 4, 8, 1, 4, 1
	Check(t, Config{Weights: w, MinNodes: 2, MaxNodes: 3, Disable: adversarial})
}

// lingering are crash-heavy weights without the actions that drain the
// network (deliver all, round, absence): frames wait in flight across
// several crashes and restarts of their ends.
func lingering() map[string]int {
	w := crashHeavy()
	w["deliver all"], w["round"], w["absence"] = 0, 0, 0
	return w
}

// TestFramesLingerAcrossCrashes runs the lingering weights.
func TestFramesLingerAcrossCrashes(t *testing.T) {
	Check(t, Config{Weights: lingering()})
}

// TestFramesLingerAcrossCrashesInABusyBucket runs the lingering weights on
// TestEarlyCollectionInABusyBucket's configuration.
func TestFramesLingerAcrossCrashesInABusyBucket(t *testing.T) {
	cfg := busyBucket(DefaultStoreConfig())
	for name, n := range lingering() {
		cfg.Weights[name] = n
	}
	cfg.Weights["gc"] = 3
	Check(t, cfg)
}
