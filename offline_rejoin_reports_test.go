package bcache

import (
	"maps"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestOfflineWritesOfEveryEarlierProcessAreSupersededOnce: an edge member
// writes while joined, then, cut off, across a crash (SyncWrite), a clean
// restart, and a crash with SyncInterval after its sync; restarted once
// more and back with the hub, which has written every key later, its
// subscriber sees each key a process of the edge wrote (a delete too)
// replaced once, marked superseded, and the key only the hub wrote
// unmarked; nothing is dropped after so short an absence (OnDrop is not
// called, no CauseDrop).
func TestOfflineWritesOfEveryEarlierProcessAreSupersededOnce(t *testing.T) {
	net := memnet.NewNetwork(1)
	hub := onMemnet(t, net, "hub")
	var drops atomic.Int64
	cfg := func(p string, policy SyncPolicy) Config {
		tr, err := net.NewTransport("edge")
		if err != nil {
			t.Fatal(err)
		}
		return Config{NodeName: "edge", Network: tr, Timings: FastTimings(), Peers: []string{hub.Addr()},
			SnapshotPath: p, SnapshotInterval: -1, Sync: policy, AntiEntropyInterval: 100 * time.Millisecond,
			OnDrop: func(string) { drops.Add(1) }}
	}
	path := filepath.Join(t.TempDir(), "edge.snap")
	edge := mustNew(t, cfg(path, SyncWrite))
	if err := edge.Set("k:joined", []byte("edge"), 0); err != nil {
		t.Fatal(err)
	}
	waitValue(t, "k:joined", []byte("edge"), hub)
	net.Partition([]string{"edge"}, []string{"hub"})
	if err := edge.Set("k:off1", []byte("edge"), 0); err != nil {
		t.Fatal(err)
	}
	if err := edge.Delete("k:del1"); err != nil {
		t.Fatal(err)
	}
	image := crashImage(t, path) // a crash: the next process replays the log
	edge.Close()

	edge = mustNew(t, cfg(image, SyncWrite))
	if err := edge.Set("k:off2", []byte("edge"), 0); err != nil {
		t.Fatal(err)
	}
	mustClose(t, edge) // a clean restart: the snapshot holds the ids

	edge = mustNew(t, cfg(image, SyncInterval))
	if err := edge.Set("k:off3", []byte("edge"), 0); err != nil {
		t.Fatal(err)
	}
	if err := edge.journal.Flush(); err != nil { // the interval's sync
		t.Fatal(err)
	}
	image2 := crashImage(t, image)
	edge.Close()
	if err := os.RemoveAll(filepath.Dir(image)); err != nil {
		t.Fatal(err)
	}

	edge = mustNew(t, cfg(image2, SyncWrite))
	defer edge.Close()
	for _, k := range []string{"k:joined", "k:off1", "k:off2", "k:off3"} {
		if v, ok := edge.Get(k); !ok || string(v) != "edge" {
			t.Fatalf("restored %s = %q, %v", k, v, ok)
		}
	}
	sub, err := edge.Subscribe("k:", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	keys := []string{"k:joined", "k:off1", "k:del1", "k:off2", "k:off3", "k:hub"}
	for _, k := range keys {
		if err := hub.Set(k, []byte("hub"), 0); err != nil {
			t.Fatal(err)
		}
	}
	net.Heal()
	r := &reader{sub: sub}
	got := map[string]bool{}
	for len(got) < len(keys) {
		ch := r.next(t)
		if ch.Cause != CauseSet || string(ch.Value) != "hub" || ch.Here {
			t.Fatalf("unexpected change %+v", ch)
		}
		if _, again := got[ch.Key]; again {
			t.Fatalf("%s replaced twice", ch.Key)
		}
		got[ch.Key] = ch.Superseded
	}
	want := map[string]bool{"k:joined": true, "k:off1": true, "k:del1": true, "k:off2": true, "k:off3": true, "k:hub": false}
	if !maps.Equal(got, want) {
		t.Fatalf("superseded %v, want %v", got, want)
	}
	// Nothing more comes: no drop, no second report.
	select {
	case batch := <-sub.C:
		t.Fatalf("more changes: %+v", batch)
	case <-time.After(500 * time.Millisecond):
	}
	if n := drops.Load(); n != 0 {
		t.Fatalf("OnDrop called %d times after a short absence", n)
	}
}
