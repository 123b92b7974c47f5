package bcache

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/clusterfill"
)

// joiningOwnFill reports whether some goroutine of this process is a
// GetOrFill that joined a fill running on its own member (clusterFill
// waiting in fillHere) rather than asking an owner.
func joiningOwnFill() bool {
	buf := make([]byte, 4<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "(*Cache).clusterFill") && strings.Contains(g, "(*Cache).fillHere") {
			return true
		}
	}
	return false
}

// joinDuringAFill sets the scene of the tests of a member joining while a
// key's owner fills it: f1 owns key and is filling it for f0 (whose
// GetOrFill answers on asked) when f2 joins and becomes the key's owner
// in every view. The filler counts its runs and waits for release.
func joinDuringAFill(t *testing.T) (key string, cs []*Cache, runs *atomic.Int32, release chan struct{}, asked chan error) {
	for i := 0; key == ""; i++ {
		if k := fmt.Sprint("key", i); clusterfill.Owner(k, "f0", []string{"f1"}) == "f1" && clusterfill.Owner(k, "f0", []string{"f1", "f2"}) == "f2" {
			key = k
		}
	}
	runs = new(atomic.Int32)
	release = make(chan struct{})
	filler := func(ctx context.Context, k string) ([]byte, error) {
		runs.Add(1)
		select { // the source's work, until the test releases it
		case <-release:
		case <-ctx.Done():
		}
		return []byte("v"), nil
	}
	cs = fillCluster(t, 2, filler, 10*time.Second, slowProbes)
	asked = make(chan error, 1)
	go func() { _, err := cs[0].GetOrFill(context.Background(), key); asked <- err }()
	await.Until(t, 10*time.Second, func() bool { return cs[1].Stats().FillsForPeers == 1 }, "f1 is not filling for f0")
	cfg := Config{NodeName: "f2", BindAddr: "127.0.0.1:0", Timings: FastTimings(),
		Filler: filler, FillTTL: time.Hour, FillTimeout: 10 * time.Second, Peers: []string{cs[0].Addr()}}
	slowProbes(&cfg)
	c2 := newCache(t, cfg)
	await.Until(t, 10*time.Second, func() bool {
		return len(cs[0].Members()) == 3 && len(cs[1].Members()) == 3 && len(c2.Members()) == 3
	}, "f2 has not joined")
	return key, append(cs, c2), runs, release, asked
}

// TestFillingMemberJoinsItsFillWhenANewcomerOwnsTheKey: f1 owns a key
// and is filling it for f0 when f2 joins and becomes the key's owner in
// every view. A reader on f1 then asked f2, which ran the filler a
// second time while f1's still ran: two fills of the key at once in the
// cluster, one of them on a member that was running one (found by
// review). It joins the fill running here.
func TestFillingMemberJoinsItsFillWhenANewcomerOwnsTheKey(t *testing.T) {
	key, cs, runs, release, first := joinDuringAFill(t)
	if o := cs[1].owner(key); o != "f2" {
		t.Fatalf("f1 sees %s as the owner, want f2", o)
	}
	type result struct {
		v   []byte
		err error
	}
	second := make(chan result, 1)
	go func() { v, err := cs[1].GetOrFill(context.Background(), key); second <- result{v, err} }()
	await.Until(t, 10*time.Second, func() bool { return runs.Load() > 1 || joiningOwnFill() },
		"f1's reader neither joined f1's fill nor asked f2")
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if r := <-second; r.err != nil || string(r.v) != "v" {
		t.Fatalf("f1's reader got %q, %v", r.v, r.err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("the filler ran %d times: f1, filling the key, had its reader ask the newcomer", n)
	}
}
