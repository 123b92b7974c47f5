package bcache

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/clusterfill"
	"github.com/bcache-go/bcache/transport/gossip"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// pullCluster returns a reader, c, of a cluster of seven on memnet, whose
// reads pull keys and start no exchange (anti-entropy every hour), and
// the six others, named p0 to p5.
func pullCluster(t *testing.T) (*Cache, []*Cache, []string) {
	t.Helper()
	return pullClusterOf(t, 6, time.Hour)
}

// pullClusterOf is pullCluster with n others, p0 to p(n-1), and
// anti-entropy every interval: past seven members, a newcomer's sessions
// at its arrival may reach only newcomers, and it synced with the founder
// only at the next interval.
func pullClusterOf(t *testing.T, n int, interval time.Duration) (*Cache, []*Cache, []string) {
	t.Helper()
	net := memnet.NewNetwork(1)
	cfg := Config{AntiEntropyInterval: interval}
	c := onMemnetWith(t, net, "c", cfg)
	c.fetchOnly = true // the pulls alone, no exchanges
	var others []*Cache
	var names []string
	for i := range n {
		name := fmt.Sprint("p", i)
		others = append(others, onMemnetWith(t, net, name, cfg, c.Addr()))
		names = append(names, name)
	}
	await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == n+1 }, "c never saw the %d others", n)
	// Their first exchanges done: none brings c a write after this.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range append([]*Cache{c}, others...) {
		if err := m.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return c, others, names
}

// TestAPullsFirstRoundGoesToAFewPeers: in a cluster of seven, a reader
// whose write has not come within PullAfter asks pullFirstPeers of the
// other six for the key, not all six: in a cluster of a hundred, each
// pull was 99 requests and up to 99 answers carrying the value. Every
// peer holds the write here, so the first round finds it.
func TestAPullsFirstRoundGoesToAFewPeers(t *testing.T) {
	fetches := countFetches(t)
	c, others, _ := pullCluster(t)
	// The first round's peers have 50 ms to answer before the rest are
	// asked, not 5 ms: a loaded run's answers came later.
	c.pullAfter = 200 * time.Millisecond
	// A read that an exchange still running from the joins answered
	// before its pull (seen under -race) is tried again, with another
	// key, as is one whose first round was widened all the same.
	for k := 0; ; k++ {
		if k == 20 {
			t.Fatal("20 reads answered without a pull, or widened")
		}
		key := fmt.Sprint("k", k)
		rec := crdt.Record{Key: key, Value: []byte("v"), Time: c.clock.Now()}
		for _, o := range others { // no delta: c gets it by its pull alone
			// (Or has it already, from an exchange still running.)
			if out := o.store.Apply(rec, false, o.phys()); out != crdt.Applied {
				if held, ok := o.store.Lookup(key); !ok || held.Time != rec.Time {
					t.Fatalf("%s took %s: %v", o.cfg.NodeName, key, out)
				}
			}
		}
		pulls := c.stats.pulls.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, ok, err := c.GetAfter(ctx, key, newToken(rec))
		cancel()
		if err != nil || !ok || string(v) != "v" {
			t.Fatalf("GetAfter: %q %v %v", v, ok, err)
		}
		if c.stats.pulls.Load() == pulls {
			continue
		}
		if c.stats.pullsEscalated.Load() != 0 {
			// A loaded run: the first round's answers did not all come
			// within PullAfter/4, and the rest were asked, as they must
			// be. Tried again with another key.
			c.stats.pullsEscalated.Store(0)
			continue
		}
		// At least one peer was asked (the write came back); how many past
		// that depends on the load, at most pullFirstPeers.
		if served := fetches.peers(key); len(served) > pullFirstPeers || c.stats.pulls.Load() != pulls+1 {
			t.Fatalf("the pull reached %d peers (%v) in %d rounds; want at most %d in one",
				len(served), served, c.stats.pulls.Load()-pulls, pullFirstPeers)
		}
		return
	}
}

// TestAPullFindsAWriteOnlyItsWriterHolds: a write one peer alone holds
// (its writer, whose delta was lost on the way to every other member),
// which is not the key's owner and, in some of the draws, not among the
// first round's peers, is still found within the reader's context: once
// the first round's peers have all answered without it, the reader asks
// the rest at once, in the same pull (one pull, escalated), not at the
// next, 40 ms later.
func TestAPullFindsAWriteOnlyItsWriterHolds(t *testing.T) {
	c, others, names := pullCluster(t)
	escalated := 0
	for k := 0; escalated < 3; k++ {
		if k == 200 {
			t.Fatalf("200 reads, %d escalated", escalated)
		}
		key := fmt.Sprint("key", k)
		owner := clusterfill.Owner(key, "c", names)
		var holder *Cache
		for _, o := range others {
			if o.cfg.NodeName != owner {
				holder = o
				break
			}
		}
		rec, err := holder.store.Write(crdt.Record{Key: key, Value: []byte("v"), Time: holder.clock.Now()}) // no delta
		if err != nil {
			t.Fatal(err)
		}
		pulls, esc := c.stats.pulls.Load(), c.stats.pullsEscalated.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, ok, err := c.GetAfter(ctx, key, newToken(rec))
		cancel()
		if err != nil || !ok || string(v) != "v" {
			t.Fatalf("%s, held by %s alone: %q %v %v", key, holder.cfg.NodeName, v, ok, err)
		}
		if c.stats.pullsEscalated.Load() > esc {
			escalated++
			if n := c.stats.pulls.Load() - pulls; n != 1 {
				t.Fatalf("%s: found after %d pulls, want the first's escalation", key, n)
			}
		}
	}
}

// TestAFirstPullSurvivesPeersLeaving: a first pull that looked at the
// members twice, seeing five peers and then one (four left between the
// looks), sliced the one's list to three and panicked, taking the
// reader's process with it. It looks once now.
func TestAFirstPullSurvivesPeersLeaving(t *testing.T) {
	net := memnet.NewNetwork(1)
	c := onMemnetWith(t, net, "c", Config{AntiEntropyInterval: time.Hour})
	c.fetchOnly = true
	var mu sync.Mutex
	looks := 0
	prev := membersHook
	t.Cleanup(func() { membersHook = prev })
	membersHook = func([]gossip.Member) []gossip.Member {
		mu.Lock()
		defer mu.Unlock()
		looks++
		if looks == 1 {
			return []gossip.Member{{Name: "c"}, {Name: "a"}, {Name: "b"}, {Name: "d"}, {Name: "e"}, {Name: "f"}}
		}
		return []gossip.Member{{Name: "c"}, {Name: "a"}}
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("a first pull whose peers left under it panicked: %v", r)
			}
		}()
		asked, _, _ := c.pull("k", 0, nil, true)
		for _, cancel := range asked {
			cancel()
		}
	}()
}

// TestAFirstPullAsksTheWriterItKnows: a write its writer alone holds (its
// delta lost on the way) is asked of the writer in the first round of
// the reader's pull, whenever the reader knows the writer's name by an
// earlier delta of its (relayed: in a cluster larger than the fanout, 8
// members and the writer, a delta names its writer): the first round's
// three peers (the key's owner and two drawn) left the writer out in
// seven draws of nine here, and the read took two round trips after
// PullAfter, not one.
func TestAFirstPullAsksTheWriterItKnows(t *testing.T) {
	c, others, names := pullClusterOf(t, 10, 50*time.Millisecond)
	w := others[0]
	if err := w.Set("warm", []byte("v"), 0); err != nil { // its delta names w to c
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { name, _ := c.repl.Writer(w.clock.Node()); return name == w.cfg.NodeName },
		"c never named w's clock by its delta")
	for k, tried := 0, 0; tried < 20; k++ {
		key := fmt.Sprint("key", k)
		if clusterfill.Owner(key, "c", names) == w.cfg.NodeName {
			continue // the owner is asked first anyway
		}
		tried++
		rec, err := w.store.Write(crdt.Record{Key: key, Value: []byte("v"), Time: w.clock.Now()}) // no delta
		if err != nil {
			t.Fatal(err)
		}
		asked, _, rest := c.pull(key, rec.Time.Node, nil, true)
		for _, cancel := range asked {
			cancel()
		}
		if slices.Contains(rest, w.cfg.NodeName) {
			t.Fatalf("%s: the first round left out its writer %s, whose name c knows (the rest: %v)", key, w.cfg.NodeName, rest)
		}
	}
	// And a read: found in the first round.
	rec, err := w.store.Write(crdt.Record{Key: "last", Value: []byte("v"), Time: w.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v, ok, err := c.GetAfter(ctx, "last", newToken(rec)); err != nil || !ok || string(v) != "v" {
		t.Fatalf("GetAfter: %q %v %v", v, ok, err)
	}
}
