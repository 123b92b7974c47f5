package metrics

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bcache-go/bcache"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/clusterfill"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestExpiredValuesCollectedAreCounted: values whose TTL ran out, on two
// members in sync, are collected early, and the collection shows in
// bcache_expirations_total and bcache_collected_total{how="early"}, which
// no test looked at.
func TestExpiredValuesCollectedAreCounted(t *testing.T) {
	net := memnet.NewNetwork(1)
	a := member(t, net, "a")
	b := member(t, net, "b", a.Addr())
	await.Until(t, 10*time.Second, func() bool { return b.Status().Synced && a.Status().Synced }, "never synced")
	for i := range 20 {
		a.Set(fmt.Sprint("k", i), []byte("v"), 200*time.Millisecond)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(New(a))
	await.Until(t, 20*time.Second, func() bool {
		fams := scrape(t, reg)
		exp, _ := value(fams, "bcache_expirations_total", nil)
		early, _ := value(fams, "bcache_collected_total", map[string]string{"how": "early"})
		vals, _ := value(fams, "bcache_values", nil)
		return exp == 20 && early == 20 && vals == 0
	}, "expired values never counted collected: %+v", a.Stats())
}

// TestAForwardedFillIsCountedOnEachSide: a GetOrFill of a key the other
// member owns counts one forwarded request and one miss on the asker,
// which runs no filler; one fill for a peer, and one filler call, on the
// owner, which reads nothing. (The record pulled is counted only if the
// answer comes before the owner's delta of its fill: one run in a few,
// under load, had the delta first.)
func TestAForwardedFillIsCountedOnEachSide(t *testing.T) {
	net := memnet.NewNetwork(1)
	var calls atomic.Int64
	mk := func(name string, peers ...string) *bcache.Cache {
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := bcache.New(bcache.Config{NodeName: name, Network: tr, Peers: peers, Timings: bcache.FastTimings(),
			AntiEntropyInterval: 50 * time.Millisecond,
			Filler:              func(ctx context.Context, key string) ([]byte, error) { calls.Add(1); return []byte("filled"), nil }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a := mk("a")
	b := mk("b", a.Addr())
	await.Until(t, 10*time.Second, func() bool { return b.Status().Synced && len(a.Status().Peers) == 1 }, "never synced")
	key := ""
	for i := 0; ; i++ {
		key = fmt.Sprint("key", i)
		if clusterfill.Owner(key, "b", []string{"a"}) == "a" {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v, err := b.GetOrFill(ctx, key); err != nil || string(v) != "filled" {
		t.Fatalf("GetOrFill = %q, %v", v, err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(New(a), New(b))
	fams := scrape(t, reg)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"bcache_fills_forwarded_total", map[string]string{"member": "b"}, 1},
		{"bcache_fills_total", map[string]string{"member": "b"}, 0},
		{"bcache_fill_fallbacks_total", map[string]string{"member": "b"}, 0},
		{"bcache_reads_total", map[string]string{"member": "b", "result": "miss"}, 1},
		{"bcache_reads_total", map[string]string{"member": "b", "result": "hit"}, 0},
		{"bcache_fills_for_peers_total", map[string]string{"member": "a"}, 1},
		{"bcache_fills_total", map[string]string{"member": "a"}, 1},
		{"bcache_reads_total", map[string]string{"member": "a", "result": "miss"}, 0},
		{"bcache_fills_forwarded_total", map[string]string{"member": "a"}, 0},
	} {
		if v, ok := value(fams, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("filler ran %d times", calls.Load())
	}
}
