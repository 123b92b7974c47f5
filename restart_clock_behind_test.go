package bcache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/store"
)

// leafMate returns a key other than key in key's digest leaf (the store's
// default 16-bit digest: the top 16 bits of the hash), so that a
// watermark of key's leaf covers it.
func leafMate(key string) string {
	leaf := crdt.HashKey(key) >> (64 - store.DefaultDigestBits)
	for i := 0; ; i++ {
		if k := fmt.Sprint(key, "-mate-", i); crdt.HashKey(k)>>(64-store.DefaultDigestBits) == leaf {
			return k
		}
	}
}

// TestARestartWithTheClockBehindLosesNoWrite: a, with a snapshot and a
// name of its own, syncs with b; b deletes keys a held, and b collects
// the deletes early (a's cuts passed them). a stops: it crashes (its
// files as they are, the snapshot written before the deletes), closes,
// or keeps no files at all (a fixed name, no SnapshotPath). It restarts
// with its clock 10 s behind (within MaxClockDrift, past MaxClockSkew),
// its peer out of reach at first (a PeerSource not answering yet, an
// edge device booting), and writes: over the deleted keys, and fresh
// keys in their digest leaves. Its new clock started past the newest
// stamp it restored, below the deletes: its writes were stamped below
// b's watermarks, b refused them and answered with tombstones, and a
// took those over its own acknowledged writes: lost on both (found by
// review, 32 of 32 copies). A member with files now starts its clock
// past the floor kept beside its snapshot, which no cut it reported
// passed (clockfloor.go); one without keeps a value of its own process
// that an answer would replace when the answer's watermark is below its
// start on its peers' clock, and writes it again (store.KeepAnswered).
func TestARestartWithTheClockBehindLosesNoWrite(t *testing.T) {
	for _, how := range []string{"crash", "close", "nothing kept"} {
		t.Run(how, func(t *testing.T) {
			if lost := restartBehind(t, how, false); len(lost) > 0 {
				t.Fatalf("%d of %d copies of the writes acknowledged after the restart lost: %v", len(lost), 2*2*behindKeys, lost)
			}
		})
	}
}

// TestARestartWithTheClockBehindBrokenLoses: the same restarts, each
// without what keeps its writes: the crash's files without their clock
// floor (as a release before it left them), the member without files
// with store.KeepAnswered off. Both lose writes: the scenario reaches
// b's watermarks, and the test above would see a fix undone.
func TestARestartWithTheClockBehindBrokenLoses(t *testing.T) {
	for _, how := range []string{"crash", "nothing kept"} {
		t.Run(how, func(t *testing.T) {
			if lost := restartBehind(t, how, true); len(lost) == 0 {
				t.Fatal("no write lost: the restart's writes never met b's watermarks")
			}
		})
	}
}

const behindKeys = 8

// restartBehind runs the scenario, broken or not, and returns the
// copies of the writes made after the restart that are lost.
func restartBehind(t *testing.T, how string, broken bool) []string {
	const keys = behindKeys
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "a.snap")
	aCfg := func(clock *offsetClock) Config {
		cfg := testConfig("a")
		cfg.SnapshotPath, cfg.SnapshotInterval, cfg.GCInterval = path, -1, 50*time.Millisecond
		cfg.Clock = clock.now
		return cfg
	}
	bCfg := testConfig("b")
	bCfg.GCInterval = 50 * time.Millisecond
	b := newCache(t, bCfg)
	a := mustNew(t, func() Config { c := aCfg(new(offsetClock)); c.Peers = []string{b.Addr()}; return c }())
	if err := a.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	var deleted, fresh []string
	for i := range keys {
		k := fmt.Sprint("k", i)
		deleted, fresh = append(deleted, k), append(fresh, leafMate(k))
		if err := b.Set(k, []byte("old"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range deleted {
		waitValue(t, k, []byte("old"), a)
	}
	if err := a.writeSnapshot(); err != nil { // the last snapshot before the crash
		t.Fatal(err)
	}
	for _, k := range deleted {
		if err := b.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	awaitCollected(t, deleted[0], b) // a's cuts passed the deletes: b counts a there
	for _, k := range deleted {
		awaitCollected(t, k, b)
	}
	image := path
	if how == "crash" {
		image = crashImage(t, path) // a crashes: its files as they are
		if broken {
			if err := os.Remove(image + floorSuffix); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustClose(t, a)

	behind := new(offsetClock)
	behind.advance(-10 * time.Second)
	var reachable atomic.Bool
	cfg := aCfg(behind)
	cfg.SnapshotPath = image
	if how == "nothing kept" {
		cfg.SnapshotPath = ""
	}
	cfg.PeerSource = func(context.Context) ([]string, error) {
		if !reachable.Load() {
			return nil, errors.New("not yet")
		}
		return []string{b.Addr()}, nil
	}
	a2 := newCache(t, cfg)
	if broken && how == "nothing kept" {
		a2.store.KeepAnswered(0, nil, nil) // before any peer is reachable
	}
	written := map[string]crdt.Timestamp{}
	for _, k := range append(deleted, fresh...) {
		rec, err := a2.set(k, []byte("new"), 0)
		if err != nil {
			t.Fatal(err)
		}
		written[k] = rec.Time
	}
	reachable.Store(true)
	if err := a2.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	lost := func() []string {
		var out []string
		for _, k := range append(deleted, fresh...) {
			for _, c := range []*Cache{a2, b} {
				if v, ok := c.Get(k); !ok || string(v) != "new" {
					out = append(out, fmt.Sprintf("%s on %s", k, c.Name()))
				}
			}
		}
		return out
	}
	// Converged: every key the same on both, whatever it holds.
	await.Until(t, 20*time.Second, func() bool {
		for _, k := range append(deleted, fresh...) {
			ra, oka := a2.store.Lookup(k)
			rb, okb := b.store.Lookup(k)
			if oka != okb || ra.Time != rb.Time {
				if !okb {
					if _, gone := b.store.Gone(k); gone && ra.Tombstone {
						continue // answered: a holds the answer, b nothing
					}
				}
				return false
			}
		}
		return true
	}, "a and b never agreed")
	if how == "nothing kept" && !broken && a2.Stats().Restamped == 0 {
		t.Errorf("no write of a's stamped again: the scenario did not reach b's watermarks")
	}
	return lost()
}
