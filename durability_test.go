package bcache

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/journal"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// syncConfig is a member alone on 127.0.0.1 with a snapshot at path,
// written only at Close, and the write log as policy says.
func syncConfig(path string, policy SyncPolicy) Config {
	cfg := snapshotConfig(path, nil)
	cfg.Sync = policy
	return cfg
}

// crashImage copies the files of path's directory, as a crash would leave
// them to the next process (what was written to them, synced or not),
// into a new directory, and returns the snapshot path there.
func crashImage(t testing.TB, path string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(path), e.Name()))
		if errors.Is(err, os.ErrNotExist) { // gone since it was listed (a temporary file renamed): as a crash would see it
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, filepath.Base(path))
}

// TestSyncWriteSurvivesACrash: with SyncWrite, every write that returned
// is in the files when it returns: a member started from them (no Close,
// no snapshot) holds every value and delete. With SyncNone, the same
// crash loses them all.
func TestSyncWriteSurvivesACrash(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncWrite, SyncNone} {
		path := filepath.Join(t.TempDir(), "cache.snap")
		a := mustNew(t, syncConfig(path, policy))
		for i := range 100 {
			if err := a.Set(fmt.Sprint("k", i), []byte(fmt.Sprint("v", i)), time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Delete("k7"); err != nil {
			t.Fatal(err)
		}
		image := crashImage(t, path)
		mustClose(t, a)

		b := mustNew(t, syncConfig(image, SyncWrite))
		st := b.Stats()
		if policy == SyncNone {
			if st.Replayed != 0 || b.Len() != 0 {
				t.Fatalf("SyncNone: replayed %d, holds %d; want nothing", st.Replayed, b.Len())
			}
			mustClose(t, b)
			continue
		}
		if st.Replayed != 101 || b.Len() != 99 {
			t.Fatalf("replayed %d records, holds %d values; want 101, 99", st.Replayed, b.Len())
		}
		if _, ok := b.Get("k7"); ok {
			t.Fatal("the delete of k7 was lost")
		}
		if v, ok := b.Get("k42"); !ok || string(v) != "v42" {
			t.Fatalf("k42 = %q, %v", v, ok)
		}
		if r, _ := lookup(b, "k42"); r.Expires == 0 {
			t.Fatal("k42 lost its TTL")
		}
		// A write after the restart wins over the replayed ones.
		if err := b.Set("k42", []byte("new"), 0); err != nil {
			t.Fatal(err)
		}
		if v, _ := b.Get("k42"); string(v) != "new" {
			t.Fatalf("k42 = %q after a write, want new", v)
		}
		mustClose(t, b)
	}
}

// TestIntervalLosesAtMostAnInterval: with SyncInterval, a crash loses
// only the writes not yet synced; those synced (Stats.Logged) survive.
func TestIntervalLosesAtMostAnInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	cfg := syncConfig(path, SyncInterval)
	cfg.SyncEvery = time.Hour // no sync but the one below
	a := mustNew(t, cfg)
	defer a.Close()
	a.Set("early", []byte("1"), 0)
	if _, err := a.journal.Rotate(); err != nil { // what the interval's sync does, and more
		t.Fatal(err)
	}
	if got := a.Stats().Logged; got != 1 {
		t.Fatalf("Logged = %d after a sync, want 1", got)
	}
	a.Set("late", []byte("2"), 0)
	b := mustNew(t, syncConfig(crashImage(t, path), SyncInterval))
	defer b.Close()
	if _, ok := b.Get("early"); !ok {
		t.Fatal("a synced write was lost")
	}
	if _, ok := b.Get("late"); ok {
		t.Fatal("a write made after the last sync survived: the crash image is not what it claims")
	}
}

// TestSnapshotEmptiesTheLog: a snapshot removes the segments it covers,
// Close removes them all, and a restart from a snapshot plus a newer
// segment holds both.
func TestSnapshotEmptiesTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	a.Set("a", []byte("1"), 0)
	if err := a.writeSnapshot(); err != nil {
		t.Fatal(err)
	}
	segs, _ := journal.Segments(path)
	if len(segs) != 1 || segs[0].N != 2 {
		t.Fatalf("segments after a snapshot: %v, want only the new one (2)", segs)
	}
	a.Set("b", []byte("2"), 0)
	image := crashImage(t, path)
	mustClose(t, a)
	if segs, _ := journal.Segments(path); len(segs) != 0 {
		t.Fatalf("segments after Close: %v, want none", segs)
	}
	b := mustNew(t, syncConfig(image, SyncWrite))
	defer b.Close()
	if st := b.Stats(); st.Restored != 1 || st.Replayed != 1 {
		t.Fatalf("restored %d, replayed %d; want 1 and 1", st.Restored, st.Replayed)
	}
	for _, k := range []string{"a", "b"} {
		if _, ok := b.Get(k); !ok {
			t.Fatalf("%s lost", k)
		}
	}
}

// TestLogLeftWithoutSyncIsReplayed: a member started with SyncNone over a
// log a run with a log left replays it, covers it with a snapshot and
// removes it.
func TestLogLeftWithoutSyncIsReplayed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	a.Set("a", []byte("1"), 0)
	image := crashImage(t, path)
	mustClose(t, a)
	b := mustNew(t, syncConfig(image, SyncNone))
	if _, ok := b.Get("a"); !ok || b.Stats().Replayed != 1 {
		t.Fatal("the log was not replayed")
	}
	if segs, _ := journal.Segments(image); len(segs) != 0 {
		t.Fatalf("segments left: %v", segs)
	}
	mustClose(t, b)
	c := mustNew(t, syncConfig(image, SyncNone))
	defer c.Close()
	if _, ok := c.Get("a"); !ok {
		t.Fatal("the snapshot covering the log lost a")
	}
}

// TestTornLogEndIsIgnored: a crash in the middle of a write leaves a torn
// frame at the log's end; the next start replays the frames before it.
func TestTornLogEndIsIgnored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	a.Set("a", []byte("1"), 0)
	a.Set("b", []byte("2"), 0)
	image := crashImage(t, path)
	mustClose(t, a)
	segs, _ := journal.Segments(image)
	info, _ := os.Stat(segs[0].Path)
	os.Truncate(segs[0].Path, info.Size()-3)
	b := mustNew(t, syncConfig(image, SyncWrite))
	defer b.Close()
	_, okA := b.Get("a")
	_, okB := b.Get("b")
	if !okA || okB || b.Stats().Replayed != 1 {
		t.Fatalf("a %v, b %v, replayed %d; want the first write only", okA, okB, b.Stats().Replayed)
	}
}

// TestDamagePolicies: a damaged snapshot or log (a frame, or a
// segment's header) makes New fail with
// DamageFail, naming it; with DamageReset, New moves the files aside,
// counts it and starts empty.
func TestDamagePolicies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string)
		want   error
	}{
		{"snapshot", func(path string) { os.WriteFile(path, []byte("not a snapshot"), 0o644) }, ErrSnapshot},
		{"log", func(path string) {
			segs, _ := journal.Segments(path)
			b, _ := os.ReadFile(segs[0].Path)
			good := append([]byte(nil), b[12:]...) // the frame after the header
			b[len(b)-1] ^= 1                       // now the first of two frames
			os.WriteFile(segs[0].Path, append(b, good...), 0o644)
		}, ErrWriteLog},
		{"log header", func(path string) { // a bit of the nonce: it read as a torn end (found by review)
			segs, _ := journal.Segments(path)
			b, _ := os.ReadFile(segs[0].Path)
			b[len("bcache log\n")+1+5] ^= 1
			os.WriteFile(segs[0].Path, b, 0o644)
		}, ErrWriteLog},
	} {
		path := filepath.Join(t.TempDir(), "cache.snap")
		a := mustNew(t, syncConfig(path, SyncWrite))
		a.Set("a", []byte("1"), 0)
		image := crashImage(t, path)
		mustClose(t, a)
		tc.damage(image)

		if _, err := New(syncConfig(image, SyncWrite)); !errors.Is(err, tc.want) {
			t.Fatalf("%s: New = %v, want %v", tc.name, err, tc.want)
		}
		cfg := syncConfig(image, SyncWrite)
		cfg.OnDamage = DamageReset
		b := mustNew(t, cfg)
		if st := b.Stats(); st.DamageResets != 1 || b.Len() != 0 {
			t.Fatalf("%s: %d resets, %d values; want 1, 0", tc.name, st.DamageResets, b.Len())
		}
		b.Set("fresh", []byte("1"), 0)
		mustClose(t, b)
		entries, _ := os.ReadDir(filepath.Dir(image))
		aside := 0
		for _, e := range entries {
			if strings.Contains(e.Name(), ".damaged-") {
				aside++
			}
		}
		if aside == 0 {
			t.Fatalf("%s: nothing moved aside: %v", tc.name, entries)
		}
		c := mustNew(t, syncConfig(image, SyncWrite))
		if _, ok := c.Get("fresh"); !ok {
			t.Fatalf("%s: the member after the reset did not keep its own writes", tc.name)
		}
		mustClose(t, c)
	}
}

func TestSyncConfig(t *testing.T) {
	if _, err := New(Config{BindAddr: "127.0.0.1:0", Sync: SyncWrite}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "SnapshotPath") {
		t.Fatalf("SyncWrite without a SnapshotPath: %v", err)
	}
	if _, err := New(Config{BindAddr: "127.0.0.1:0", Sync: 9}); !errors.Is(err, ErrConfig) {
		t.Fatalf("an unknown policy: %v", err)
	}
	// Nor is a damage policy taken without files to move aside: it was
	// ignored, the member taken for one that keeps them (found by review).
	if _, err := New(Config{BindAddr: "127.0.0.1:0", OnDamage: DamageReset}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "OnDamage") {
		t.Fatalf("DamageReset without a SnapshotPath: %v", err)
	}
	var p SyncPolicy
	var d DamagePolicy
	for _, name := range []string{"none", "interval", "write"} {
		if err := p.UnmarshalText([]byte(name)); err != nil || p.String() != name {
			t.Fatalf("%s: %v, %v", name, p, err)
		}
	}
	if err := p.UnmarshalText([]byte("always")); err == nil {
		t.Fatal("an unknown sync policy parsed")
	}
	if err := d.UnmarshalText([]byte("reset")); err != nil || d != DamageReset {
		t.Fatalf("reset: %v, %v", d, err)
	}
}

// TestPoliciesMarshalOnlyWhatReadsBack: every policy's name reads back
// as the policy, and a value with no name is an error to marshal (it
// wrote "SyncPolicy(9)", which UnmarshalText refuses), also inside JSON.
func TestPoliciesMarshalOnlyWhatReadsBack(t *testing.T) {
	for _, p := range []SyncPolicy{SyncNone, SyncInterval, SyncWrite} {
		var back SyncPolicy
		if b, err := p.MarshalText(); err != nil || back.UnmarshalText(b) != nil || back != p {
			t.Fatalf("%v: %q, %v: read back as %v", p, b, err, back)
		}
	}
	for _, p := range []DamagePolicy{DamageFail, DamageReset} {
		var back DamagePolicy
		if b, err := p.MarshalText(); err != nil || back.UnmarshalText(b) != nil || back != p {
			t.Fatalf("%v: %q, %v: read back as %v", p, b, err, back)
		}
	}
	if b, err := SyncPolicy(9).MarshalText(); err == nil {
		t.Fatalf("SyncPolicy(9) marshals as %q", b)
	}
	if b, err := DamagePolicy(2).MarshalText(); err == nil {
		t.Fatalf("DamagePolicy(2) marshals as %q", b)
	}
	if b, err := json.Marshal(struct{ Sync SyncPolicy }{9}); err == nil {
		t.Fatalf("a struct holding SyncPolicy(9) marshals as %s", b)
	}
}

// TestOfflineWritesLostAfterRejoinAreReported: an edge member writes while
// alone, crashes, restarts from its write log (and, after a snapshot, from
// it), and rejoins a peer that wrote the same keys later: its subscribers
// see each of its offline writes replaced, marked Superseded; a key only
// the peer wrote is not marked.
func TestOfflineWritesLostAfterRejoinAreReported(t *testing.T) {
	for _, snapshotFirst := range []bool{false, true} {
		net := memnet.NewNetwork(1)
		path := filepath.Join(t.TempDir(), "edge.snap")
		edgeConfig := func(name string, p string) Config {
			tr, err := net.NewTransport(name)
			if err != nil {
				t.Fatal(err)
			}
			return Config{NodeName: name, Network: tr, Timings: FastTimings(), SnapshotPath: p, SnapshotInterval: -1, Sync: SyncWrite}
		}
		edge := mustNew(t, edgeConfig("edge", path))
		edge.Set("offline:1", []byte("edge"), 0)
		edge.Delete("offline:2")
		image := crashImage(t, path)
		mustClose(t, edge)
		if snapshotFirst { // a restart in between covers the log with a snapshot
			between := mustNew(t, edgeConfig("edge-between", image))
			mustClose(t, between)
			if segs, _ := journal.Segments(image); len(segs) != 0 {
				t.Fatalf("segments left after a clean restart: %v", segs)
			}
		}

		edge = mustNew(t, edgeConfig("edge-again", image))
		defer edge.Close()
		sub, err := edge.Subscribe("offline:", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		hub := onMemnet(t, net, "hub", edge.Addr()) // joins after the subscription
		for _, k := range []string{"offline:1", "offline:2", "offline:3"} {
			if err := hub.Set(k, []byte("hub"), 0); err != nil {
				t.Fatal(err)
			}
		}
		r := &reader{sub: sub}
		got := map[string]bool{}
		for len(got) < 3 {
			ch := r.next(t)
			if ch.Cause == CauseSet && string(ch.Value) == "hub" {
				got[ch.Key] = ch.Superseded
			}
		}
		if want := map[string]bool{"offline:1": true, "offline:2": true, "offline:3": false}; !maps.Equal(got, want) {
			t.Fatalf("snapshot first %v: superseded %v, want %v", snapshotFirst, got, want)
		}
	}
}

// TestLogReceivedRestoresPeersWrites: with LogReceived, a member that
// crashes restores what it received from peers without a peer to ask;
// without it, only its own writes. Received records are not taken for
// its own: a later write over them is not reported as superseding one.
func TestLogReceivedRestoresPeersWrites(t *testing.T) {
	for _, logReceived := range []bool{true, false} {
		net := memnet.NewNetwork(1)
		path := filepath.Join(t.TempDir(), "edge.snap")
		cfg := func(name, p string, peers ...string) Config {
			tr, err := net.NewTransport(name)
			if err != nil {
				t.Fatal(err)
			}
			return Config{NodeName: name, Network: tr, Timings: FastTimings(), Peers: peers,
				SnapshotPath: p, SnapshotInterval: -1, Sync: SyncWrite, LogReceived: logReceived}
		}
		hub := onMemnet(t, net, "hub")
		edge := mustNew(t, cfg("edge", path, hub.Addr()))
		hub.Set("from-hub", []byte("1"), 0)
		hub.Delete("deleted-by-hub")
		edge.Set("from-edge", []byte("1"), 0)
		waitValue(t, "from-hub", []byte("1"), edge)
		await.Until(t, 5*time.Second, func() bool { r, ok := lookup(edge, "deleted-by-hub"); return ok && r.Tombstone },
			"the hub's delete never reached the edge")
		if logReceived { // received records are written soon after, not waited for
			await.Until(t, 5*time.Second, func() bool { return edge.Stats().Logged >= 3 }, "the received records were never logged")
		}
		image := crashImage(t, path)
		mustClose(t, edge)

		alone := mustNew(t, cfg("alone", image))
		_, gotHub := alone.Get("from-hub")
		_, gotEdge := alone.Get("from-edge")
		r, tomb := lookup(alone, "deleted-by-hub")
		if !gotEdge || gotHub != logReceived || (tomb && r.Tombstone) != logReceived {
			t.Fatalf("LogReceived %v: restored the hub's write %v, its delete %v, the edge's own %v",
				logReceived, gotHub, tomb && r.Tombstone, gotEdge)
		}
		if logReceived && alone.store.Owns(r.Time.Node) {
			t.Fatal("a received record's node id was taken for the member's own")
		}
		mustClose(t, alone)
	}
}

// TestWriteRacingAFailedCloseIsNotDurable: a write applied before Close
// sealed the store, whose append comes after Close closed the write log,
// is durable in the snapshot Close wrote; when that snapshot failed, its
// Set must not return nil (it returned nil, and the write was lost). The
// interleaving is made by hand: Set's steps, with Close between them.
func TestWriteRacingAFailedCloseIsNotDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	c := mustNew(t, syncConfig(path, SyncWrite))
	if err := c.Set("before", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	// The snapshot Close writes fails: its path is a directory that is
	// not empty (the rename over it fails).
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := c.store.Write(crdt.Record{Key: "late", Value: []byte("v"), Time: c.clock.Now()}) // applied before Seal
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err == nil {
		t.Fatal("Close wrote its snapshot over a directory")
	}
	if err := c.logWrite(&rec, nil); err == nil {
		t.Fatal("a write that neither the write log nor the last snapshot holds was reported durable")
	}
}

// TestFailedNewReleasesTheWriteLog: New that fails after opening the
// write log (its address taken) closes it: no log goroutine is left, and
// no empty segment per attempt; the next New on the files starts as if
// the failed ones never ran.
func TestFailedNewReleasesTheWriteLog(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	if err := a.Set("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	image := crashImage(t, path) // the log holds k, as a crash leaves it
	mustClose(t, a)
	before, err := journal.Segments(image)
	if err != nil {
		t.Fatal(err)
	}
	base := logGoroutines()
	bad := syncConfig(image, SyncWrite)
	bad.BindAddr = taken.LocalAddr().String()
	for range 3 {
		if c, err := New(bad); err == nil {
			c.Close()
			t.Fatal("New on a taken address succeeded")
		}
	}
	if n := logGoroutines(); n != base {
		t.Fatalf("%d write-log goroutines left by the failed New calls", n-base)
	}
	if after, err := journal.Segments(image); err != nil || len(after) != len(before) {
		t.Fatalf("segments %v before the failed New calls, %v after (%v)", before, after, err)
	}
	b := mustNew(t, syncConfig(image, SyncWrite))
	defer mustClose(t, b)
	if v, ok := b.Get("k"); !ok || string(v) != "v" {
		t.Fatalf("after the failed starts: Get(k) = %q, %v", v, ok)
	}
}

// logGoroutines counts the goroutines running a write log.
func logGoroutines() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "journal.(*Log).run")
}

// TestSnapshotPathIsOneMembers: a second member given the path of a
// running one's snapshot is refused, with an error naming the field; it
// was not, and its Close wrote its snapshot over the first's and removed
// the segment the first was logging its acknowledged writes to (found by
// review). The path is free again once the first closes, or fails to
// start.
func TestSnapshotPathIsOneMembers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	if b, err := New(syncConfig(path, SyncWrite)); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "in use") {
		if b != nil {
			b.Close()
		}
		t.Fatalf("a second member on the same SnapshotPath: New = %v, want ErrConfig naming it in use", err)
	}
	a.Set("k", []byte("v"), 0)
	mustClose(t, a)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bad := syncConfig(path, SyncWrite)
	bad.BindAddr = taken.Addr().String() // restores, then fails to bind
	if c, err := New(bad); err == nil {
		c.Close()
		t.Fatal("New with an address it cannot bind succeeded")
	}
	c := mustNew(t, syncConfig(path, SyncWrite))
	defer c.Close()
	if _, ok := c.Get("k"); !ok {
		t.Fatal("the member after the first lost its write")
	}
}

// TestLongLogIsCoveredBySnapshot: a write log longer than twice the last
// snapshot (and a floor) is covered by a snapshot at once, not at the next
// SnapshotInterval: a restart replays, and holds in memory, the whole log
// (a member bounded to 1 MiB that logged 64 MiB peaked at 126 MiB of heap
// in New, found by review).
func TestLongLogIsCoveredBySnapshot(t *testing.T) {
	quickLogSnapshots(t)
	path := filepath.Join(t.TempDir(), "cache.snap")
	cfg := syncConfig(path, SyncInterval)
	cfg.SyncEvery, cfg.SnapshotInterval, cfg.MaxKeys = time.Millisecond, time.Hour, 100
	c := mustNew(t, cfg)
	defer c.Close()
	value := make([]byte, 1000)
	for i := range 2000 { // 2 MB of writes to 100 keys' worth of room
		if err := c.Set(fmt.Sprint("k", i%100), value, 0); err != nil {
			t.Fatal(err)
		}
	}
	await.Until(t, 10*time.Second, func() bool { return c.Stats().LogSnapshots > 0 }, "no snapshot of the long log")
	if err := c.Set("last", value, 0); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool {
		segs, _ := journal.Segments(path)
		var size int64
		for _, s := range segs {
			if info, err := os.Stat(s.Path); err == nil {
				size += info.Size()
			}
		}
		return size < 1<<20
	}, "the log stays over 1 MiB")
}

// TestRestartWithTheClockBehindLosesNothing: a device that boots with its
// clock an hour behind (before NTP answers) is refused by New
// (ErrAheadOfClock), its files left as they are; started again once the
// clock is set, it holds every write it acknowledged. New skipped the
// records then, and the next snapshot, written without them, replaced the
// files that held them (found by review).
func TestRestartWithTheClockBehindLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	for _, k := range []string{"a", "b", "c"} {
		if err := a.Set(k, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	image := crashImage(t, path)
	mustClose(t, a)
	behind := new(offsetClock)
	behind.advance(-time.Hour)
	cfg := syncConfig(image, SyncWrite)
	cfg.Clock = behind.now
	if c, err := New(cfg); !errors.Is(err, ErrAheadOfClock) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("New with the clock an hour behind its files: %v, want ErrAheadOfClock", err)
	}
	c := mustNew(t, syncConfig(image, SyncWrite)) // the clock set
	defer c.Close()
	if c.Len() != 3 {
		t.Fatalf("after a start refused with the clock behind, then one with it set: %d of 3 writes", c.Len())
	}
}

// TestFailingLogSnapshotBacksOff: a snapshot of a long log that fails (a
// directory where its file goes) is tried again twice as late each time:
// tried at every check, it rewrote the whole store and started a log
// segment every second for as long as it failed (found by review).
func TestFailingLogSnapshotBacksOff(t *testing.T) {
	quickLogSnapshots(t)
	path := filepath.Join(t.TempDir(), "cache.snap")
	cfg := syncConfig(path, SyncInterval)
	cfg.SyncEvery, cfg.SnapshotInterval = time.Millisecond, time.Hour
	c := mustNew(t, cfg)
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil { // every snapshot fails
		t.Fatal(err)
	}
	value := make([]byte, 1000)
	for i := range 200 {
		if err := c.Set(fmt.Sprint("k", i%26), value, 0); err != nil {
			t.Fatal(err)
		}
	}
	await.Until(t, 10*time.Second, func() bool { return c.Stats().LogSnapshots >= 3 }, "no three tries")
	c.Close() // its own snapshot fails too; the timer's goroutine is done
	tries := c.Stats().LogSnapshots
	if want := min(logCheckEvery<<(tries-1), time.Minute); c.logSnapWait != want {
		t.Fatalf("after %d failed tries the next waits %v, want %v", tries, c.logSnapWait, want)
	}
}

// TestWatermarksAheadOfTheClockRefuseTheStart: a snapshot whose recent
// records were all deleted and collected holds watermarks alone; ahead of
// the clock, they make New fail as records do. Lowered and saved by the
// next snapshot, they let the delete's older value back in once the clock
// was set (found by review).
func TestWatermarksAheadOfTheClockRefuseTheStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	clock := new(offsetClock)
	a := mustNew(t, snapshotConfig(path, clock))
	a.Set("k", []byte("old"), 0)
	a.Delete("k")
	clock.advance(2 * time.Hour) // past the horizon
	a.collect()                  // alone: collected, its bucket's watermark raised to it
	if st := a.Stats(); st.Records != 0 {
		t.Fatalf("the delete was not collected: %+v", st)
	}
	mustClose(t, a)
	behind := new(offsetClock)
	behind.advance(-time.Hour)
	if c, err := New(snapshotConfig(path, behind)); !errors.Is(err, ErrAheadOfClock) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("New with watermarks ahead of its clock: %v, want ErrAheadOfClock", err)
	}
}

// quickLogSnapshots has a log past 64 KiB covered by a snapshot, looked at
// every 5 ms, for the rest of the test.
func quickLogSnapshots(t *testing.T) {
	oldFloor, oldEvery := logSnapshotFloor, logCheckEvery
	logSnapshotFloor, logCheckEvery = 64<<10, 5*time.Millisecond
	t.Cleanup(func() { logSnapshotFloor, logCheckEvery = oldFloor, oldEvery })
}

// TestSnapshotWrittenAheadAloneStarts: a snapshot written while the clock
// was an hour ahead, holding nothing stamped ahead (the member wrote
// nothing then), starts a member whose clock is set right: its write
// time refused the start, though it holds nothing ahead (found by review).
func TestSnapshotWrittenAheadAloneStarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, snapshotConfig(path, new(offsetClock)))
	a.Set("k", []byte("v"), 0)
	mustClose(t, a)
	ahead := new(offsetClock)
	ahead.advance(time.Hour) // a bad step of the clock; nothing written meanwhile
	b := mustNew(t, snapshotConfig(path, ahead))
	mustClose(t, b)
	c := mustNew(t, snapshotConfig(path, new(offsetClock))) // set right again
	defer c.Close()
	if _, ok := c.Get("k"); !ok {
		t.Fatal("the snapshot's value was not restored")
	}
}

// TestLogWithoutItsSnapshotIsDamage: the log's oldest segment follows
// segments a snapshot covered (they were removed once it was durable);
// without that snapshot their writes are lost, and the log alone read as
// the whole state (found by review: a reset cut short, or a snapshot
// removed by hand).
func TestLogWithoutItsSnapshotIsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	a.Set("a", []byte("1"), 0)
	if err := a.writeSnapshot(); err != nil {
		t.Fatal(err)
	}
	a.Set("b", []byte("2"), 0)
	image := crashImage(t, path)
	mustClose(t, a)
	if c := mustNew(t, syncConfig(crashImage(t, image), SyncWrite)); c.Len() != 2 {
		t.Fatalf("the image holds %d values, want 2", c.Len())
	}
	os.Remove(image)
	if _, err := New(syncConfig(image, SyncWrite)); !errors.Is(err, ErrWriteLog) {
		t.Fatalf("New without the snapshot = %v, want ErrWriteLog", err)
	}
}

// TestLogAfterACleanCloseWithoutItsSnapshotIsDamage: a clean Close
// writes a snapshot and removes the log; the next run's first segment
// follows that snapshot. Found without it (removed by hand, or a reset
// cut short), the log alone read as the whole state (found by review).
func TestLogAfterACleanCloseWithoutItsSnapshotIsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	a.Set("a", []byte("1"), 0)
	mustClose(t, a)
	b := mustNew(t, syncConfig(path, SyncWrite))
	b.Set("b", []byte("2"), 0)
	image := crashImage(t, path)
	mustClose(t, b)
	os.Remove(image)
	if _, err := New(syncConfig(image, SyncWrite)); !errors.Is(err, ErrWriteLog) {
		t.Fatalf("New without the snapshot = %v, want ErrWriteLog", err)
	}
}

// TestLogSegmentsTheSnapshotLacksMissingAreDamage: the members file
// says which log segment the snapshot beside it stops holding; a log
// whose oldest segment follows that one or a later one lacks segments,
// and the writes acknowledged in them: New fails (ErrWriteLog) rather
// than starting without them. Two ways: a segment lost whole, and an
// older snapshot (with its members file) put back beside a newer log, as
// from a backup. Both read as whole before (found by review).
func TestLogSegmentsTheSnapshotLacksMissingAreDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	set := func(c *Cache, key string) { mustSet(t, c, key) }
	snapshot := func(c *Cache) { mustSnapshot(t, c) }
	set(a, "k1")
	snapshot(a) // holds k1; the log goes on in segment 2
	backup := crashImage(t, path)
	set(a, "k2")
	snapshot(a) // holds k2; segment 3
	set(a, "k3")
	image := crashImage(t, path)
	a.Close()

	// As the crash left it: whole.
	c := mustNew(t, syncConfig(crashImage(t, image), SyncWrite))
	for _, k := range []string{"k1", "k2", "k3"} {
		if _, ok := c.Get(k); !ok {
			t.Fatalf("the crash's files lost %s", k)
		}
	}
	c.Close()

	// The snapshot and members file of before k2, beside the newer log.
	old := crashImage(t, image)
	putBack(t, backup, old)
	if _, err := New(syncConfig(old, SyncWrite)); !errors.Is(err, ErrWriteLog) {
		t.Fatalf("New beside an older snapshot: %v; want ErrWriteLog (k2 is in no file)", err)
	}

	// A segment lost whole: the first the snapshot lacks, with a later
	// one (a restart starts one) left.
	lost := loseTheOlderSegment(t, crashImage(t, image), "k3", "k4")
	if _, err := New(syncConfig(lost, SyncWrite)); !errors.Is(err, ErrWriteLog) {
		t.Fatalf("New without the log's first segment the snapshot lacks: %v; want ErrWriteLog (k3 is in no file)", err)
	}
}

// TestLogNumbersGoOnAfterACleanClose: a clean Close removes the whole log;
// the next run's log is numbered on from the segment the snapshot does not
// hold, so that the same two faults as above are found after it. Numbered
// from 1 again, an older snapshot read as holding all the new log lacked,
// and a segment lost whole went unseen (found by review).
func TestLogNumbersGoOnAfterACleanClose(t *testing.T) {
	path, a, backup := backedUp(t) // k1 in the backup's snapshot, k2 in a's log alone
	mustClose(t, a)                // a snapshot holds k2; no segment left
	if segs, _ := filepath.Glob(path + ".log.*"); len(segs) != 0 {
		t.Fatalf("segments %q after a clean Close; want none", segs)
	}

	b := mustNew(t, syncConfig(path, SyncWrite))
	mustSet(t, b, "k3")
	mustSnapshot(t, b) // removes the segment that held k3
	mustSet(t, b, "k4")
	image := crashImage(t, path)
	mustClose(t, b)

	old := crashImage(t, image)
	putBack(t, backup, old)
	if _, err := New(syncConfig(old, SyncWrite)); !errors.Is(err, ErrWriteLog) {
		t.Fatalf("New beside a snapshot older than a clean Close: %v; want ErrWriteLog (k2 and k3 are in no file)", err)
	}

	// A segment lost whole: the first of a run after a clean Close, with a
	// later one (a restart starts one) left.
	c := mustNew(t, syncConfig(path, SyncWrite))
	mustSet(t, c, "k5")
	crashed := crashImage(t, path)
	mustClose(t, c)
	lost := loseTheOlderSegment(t, crashed, "k5", "k6")
	if _, err := New(syncConfig(lost, SyncWrite)); !errors.Is(err, ErrWriteLog) {
		t.Fatalf("New without the first segment of a run after a clean Close: %v; want ErrWriteLog (k5 is in no file)", err)
	}
}

// TestLogNumbersGoOnWhenCloseCannotWriteTheMembersFile: a Close whose
// members file cannot be written keeps the log (its snapshot is written):
// it removed every segment, the file kept the log_from of the snapshot
// before, and the next run's log, numbered from it, made a backup of that
// snapshot look whole, without the writes in between (found by review).
// Kept, the log still holds them.
func TestLogNumbersGoOnWhenCloseCannotWriteTheMembersFile(t *testing.T) {
	path, a, backup := backedUp(t) // k1 in the backup's snapshot, k2 in a's log alone
	known, err := os.ReadFile(path + knownSuffix)
	if err != nil {
		t.Fatal(err)
	}
	// A directory in the file's place: writing it fails.
	if err := os.Remove(path + knownSuffix); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path+knownSuffix, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	a.Close() // the snapshot holds k2; the members file is not written
	if err := os.RemoveAll(path + knownSuffix); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+knownSuffix, known, 0o644); err != nil {
		t.Fatal(err)
	}
	if segs, _ := filepath.Glob(path + ".log.*"); len(segs) == 0 {
		t.Fatal("Close removed the log although no members file says where the snapshot ends")
	}
	b := mustNew(t, syncConfig(path, SyncWrite))
	mustSet(t, b, "k3")
	image := crashImage(t, path)
	mustClose(t, b)
	// The kept log holds what that snapshot lacks: it starts whole.
	putBack(t, backup, image)
	c := mustNew(t, syncConfig(image, SyncWrite))
	defer c.Close()
	for _, k := range []string{"k1", "k2", "k3"} {
		if _, ok := c.Get(k); !ok {
			t.Fatalf("%s lost", k)
		}
	}
}

// TestLogNumbersGoOnAfterASyncNoneStart: a start under SyncNone covers a
// log left by a run that kept one and removes it, with the members file
// saying where it ended first: kept in memory alone, a crash before the
// next snapshot left the old log_from, and the next log, numbered from it,
// made a backup look whole (found by review).
func TestLogNumbersGoOnAfterASyncNoneStart(t *testing.T) {
	path, a, backup := backedUp(t) // k1 in the backup's snapshot, k2 in a's log alone
	img1 := crashImage(t, path)
	mustClose(t, a)
	b := mustNew(t, syncConfig(img1, SyncNone)) // covers the log, removes it
	if segs, _ := filepath.Glob(img1 + ".log.*"); len(segs) != 0 {
		t.Fatalf("segments %q after a SyncNone start", segs)
	}
	img2 := crashImage(t, img1) // killed before its first snapshot
	mustClose(t, b)
	c := mustNew(t, syncConfig(img2, SyncWrite))
	mustSet(t, c, "k3")
	img3 := crashImage(t, img2)
	mustClose(t, c)
	putBack(t, backup, img3)
	if _, err := New(syncConfig(img3, SyncWrite)); !errors.Is(err, ErrWriteLog) {
		t.Fatalf("New beside a snapshot older than the log: %v; want ErrWriteLog (k2 is in no file)", err)
	}
}

// TestHugeLogFromIsDamage: a members file whose log_from leaves the log no
// room (damaged, or edited by hand) is damage, under the damage policy: a
// log numbered from it passed, at its first snapshots, the numbers a start
// reads, and the start after a crash refused it and its acknowledged
// writes (found by review).
func TestHugeLogFromIsDamage(t *testing.T) {
	for _, from := range []uint64{journal.MaxFrom + 1, 1 << 53, 1 << 63} {
		path := filepath.Join(t.TempDir(), "cache.snap")
		a := mustNew(t, syncConfig(path, SyncWrite))
		mustSet(t, a, "k1")
		mustClose(t, a)
		editKnown(t, path, func(b []byte) []byte {
			return regexp.MustCompile(`"log_from":\d+`).ReplaceAll(b, fmt.Appendf(nil, `"log_from":%d`, from))
		})
		if _, err := New(syncConfig(path, SyncWrite)); !errors.Is(err, ErrSnapshot) {
			t.Fatalf("log_from %d: New: %v; want ErrSnapshot", from, err)
		}
		cfg := syncConfig(path, SyncWrite)
		cfg.OnDamage = DamageReset
		c := mustNew(t, cfg) // the members file moved aside
		if _, ok := c.Get("k1"); !ok {
			t.Fatalf("log_from %d: the snapshot was not restored", from)
		}
		mustSet(t, c, "k2")
		mustSnapshot(t, c)
		mustSnapshot(t, c)
		mustSet(t, c, "k3")
		image := crashImage(t, path)
		mustClose(t, c)
		d := mustNew(t, syncConfig(image, SyncWrite))
		if _, ok := d.Get("k3"); !ok {
			t.Fatalf("log_from %d: k3 lost", from)
		}
		mustClose(t, d)
	}
}

// backedUp starts a member with a write log, has it write k1, take a
// snapshot, and write k2, and returns its snapshot path, the member, and
// a copy of its files (a backup) taken between the snapshot and k2.
func backedUp(t *testing.T) (path string, a *Cache, backup string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "cache.snap")
	a = mustNew(t, syncConfig(path, SyncWrite))
	mustSet(t, a, "k1")
	mustSnapshot(t, a)
	backup = crashImage(t, path)
	mustSet(t, a, "k2")
	return path, a, backup
}

// loseTheOlderSegment starts a member from the crash image at path, whose
// log holds held (it replays it, and goes on in a new segment), has it
// write next, and returns the snapshot path of a crash image of it
// without the older of its two segments, as if lost whole.
func loseTheOlderSegment(t *testing.T, path, held, next string) string {
	t.Helper()
	c := mustNew(t, syncConfig(path, SyncWrite))
	if _, ok := c.Get(held); !ok {
		t.Fatalf("%s, in the log, not replayed", held)
	}
	mustSet(t, c, next)
	lost := crashImage(t, path)
	mustClose(t, c)
	removeOldestOfTwo(t, lost)
	return lost
}

// removeOldestOfTwo removes the older of the two write-log segments
// beside the snapshot at path, as if lost whole.
func removeOldestOfTwo(t *testing.T, path string) {
	t.Helper()
	segs, err := filepath.Glob(path + ".log.*")
	if err != nil || len(segs) != 2 {
		t.Fatalf("segments %q, %v; want two", segs, err)
	}
	slices.SortFunc(segs, func(x, y string) int { return cmp.Compare(segmentNumber(t, x), segmentNumber(t, y)) })
	if err := os.Remove(segs[0]); err != nil {
		t.Fatal(err)
	}
}

// segmentNumber is the number at the end of a segment's name.
func segmentNumber(t *testing.T, p string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(p[strings.LastIndexByte(p, '.')+1:], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustSet(t *testing.T, c *Cache, key string) {
	t.Helper()
	if err := c.Set(key, []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
}

func mustSnapshot(t *testing.T, c *Cache) {
	t.Helper()
	if err := c.writeSnapshot(); err != nil {
		t.Fatal(err)
	}
}

// putBack copies the snapshot at from and its members file over those at
// to, as an operator restoring a backup would.
func putBack(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", knownSuffix} {
		b, err := os.ReadFile(from + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to+suffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSnapshotLostWholeIsDamage: a snapshot lost whole (removed, or not
// restored) beside the members file written after it, which says where
// the write log went on from, is damage: the writes it held, acknowledged
// and their segments removed, are in no file (the start read as a first
// one, empty, without a word: found by review). Under DamageReset the
// member starts empty, counted, and the members file says no more of a
// snapshot, so the start after it is no damage again.
func TestSnapshotLostWholeIsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	c := mustNew(t, syncConfig(path, SyncWrite))
	mustSet(t, c, "k1")
	mustClose(t, c) // the snapshot holds k1; no log
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := New(syncConfig(path, SyncWrite)); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("New without its snapshot: %v; want ErrSnapshot (k1 is in no file)", err)
	}
	cfg := syncConfig(path, SyncWrite)
	cfg.OnDamage = DamageReset
	d := mustNew(t, cfg)
	if n := d.Stats().DamageResets; n != 1 || d.Len() != 0 {
		t.Fatalf("reset: %d resets, %d values; want 1 and none", n, d.Len())
	}
	image := crashImage(t, path) // a crash before the reset member wrote a snapshot of its own
	mustClose(t, d)
	mustClose(t, mustNew(t, syncConfig(image, SyncWrite))) // fails if the members file still said a snapshot
}

// TestResetWhoseMembersFileCannotBeWrittenStarts: a reset whose rewrite
// of the members file fails starts all the same (logged), the file
// removed: the next start after a crash finds none, and starts as a
// release before this one's would (it found the file saying a snapshot
// that was moved aside, and reset again, as empty, until a review found
// the same file could take a new log's acknowledged writes for damage:
// TestResetWhoseMembersFileCannotBeWrittenLosesNothing). Failing New, it
// kept an unattended device down for a file that says nothing of the
// state it starts with.
func TestResetWhoseMembersFileCannotBeWrittenStarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	c := mustNew(t, syncConfig(path, SyncNone))
	mustSet(t, c, "k1")
	mustClose(t, c)
	if err := os.WriteFile(path, []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	save := saveFile
	saveFile = func(string, func(io.Writer) error) error { return errors.New("disk full") }
	cfg := syncConfig(path, SyncNone)
	cfg.OnDamage = DamageReset
	d, err := New(cfg)
	saveFile = save
	if err != nil {
		t.Fatalf("a reset whose members file cannot be written: %v", err)
	}
	if n := d.Stats().DamageResets; n != 1 || d.Len() != 0 {
		t.Fatalf("reset: %d resets, %d values; want 1 and none", n, d.Len())
	}
	image := crashImage(t, path) // no members file: removed by the reset
	if _, err := os.Stat(image + knownSuffix); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the members file naming what the reset moved aside: %v; want it removed", err)
	}
	mustClose(t, d)
	e := mustNew(t, cfg)
	defer mustClose(t, e)
	if n := e.Stats().DamageResets; n != 0 || e.Len() != 0 {
		t.Fatalf("after a Close: %d resets, %d values; want none", n, e.Len())
	}
	f := mustNew(t, Config{BindAddr: "127.0.0.1:0", SnapshotPath: image, SnapshotInterval: -1, OnDamage: DamageReset})
	defer mustClose(t, f)
	if n := f.Stats().DamageResets; n != 0 || f.Len() != 0 {
		t.Fatalf("after a crash: %d resets, %d values; want none", n, f.Len())
	}
}

// TestResetKeepsNoCutsOfWhatItMovedAside: a reset rewrites the members
// file with the members' cuts cleared, as read with nothing held: those
// cuts were of the state moved aside, and kept, a crash before the next
// snapshot had the log's replay take them for held by the new state
// (the early collection the members file is for would then count a peer
// as holding what this member's state never held; found by review).
func TestResetKeepsNoCutsOfWhatItMovedAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	file := `{"version":1,"members":[{"Name":"peer","Cut":123,"HasCut":true}],"log_from":5}` + "\n"
	if err := os.WriteFile(path+knownSuffix, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := syncConfig(path, SyncWrite)
	cfg.OnDamage = DamageReset
	d := mustNew(t, cfg) // no snapshot beside a file that says one: damage, reset
	mustSet(t, d, "k1")
	image := crashImage(t, path) // a crash before its first snapshot
	mustClose(t, d)
	e := mustNew(t, syncConfig(image, SyncWrite)) // replays k1
	defer mustClose(t, e)
	for _, k := range e.known {
		if k.HasCut {
			t.Fatalf("a cut of the state moved aside taken as held: %+v", k)
		}
	}
}

// membersFileOfLostFiles writes a members file beside path that names a
// snapshot and log which are not there (a reset moves such files aside),
// and returns a config of the policy that resets on damage.
func membersFileOfLostFiles(t *testing.T, path string, policy SyncPolicy) Config {
	t.Helper()
	file := `{"version":1,"members":[{"Name":"peer","Cut":123,"HasCut":true}],"log_from":5,"log":true}` + "\n"
	if err := os.WriteFile(path+knownSuffix, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := syncConfig(path, policy)
	cfg.OnDamage = DamageReset
	return cfg
}

// TestResetWhoseMembersFileWriteFailedThenACrashLosesNothing: a reset
// (DamageReset) whose rewrite of the members file fails went on with the
// file as read in memory, saying the snapshot and log moved aside; the
// next snapshot wrote that file again, naming the snapshot about to be
// written, before it: a crash then (or once it was in place, before the
// members file after it) left a file saying log_from of the log moved
// aside. Before the snapshot, the next start took the snapshot for lost
// whole (ErrSnapshot: a clean crash's state), and, with DamageReset,
// moved aside the log holding k1, acknowledged.
func TestResetWhoseMembersFileWriteFailedThenACrashLosesNothing(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("renamed=%v", after), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cache.snap")
			cfg := membersFileOfLostFiles(t, path, SyncWrite)
			save := saveFile
			saveFile = func(string, func(io.Writer) error) error { return errors.New("disk full") }
			d, err := New(cfg) // no snapshot beside a file that says one: damage, reset; its rewrite fails
			saveFile = save
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer d.Close()
			if n := d.Stats().DamageResets; n != 1 {
				t.Fatalf("%d resets, want 1", n)
			}
			mustSet(t, d, "k1")
			var image string
			saveSnap := saveSnapshot
			saveSnapshot = func(s *store.Store, p string, w int64) (int, error) {
				if !after {
					image = crashImage(t, p) // a crash before the snapshot is written
				}
				n, err := saveSnap(s, p, w)
				if after && err == nil {
					image = crashImage(t, p) // once it is in place, before the members file after it
				}
				return n, err
			}
			err = d.writeSnapshot()
			saveSnapshot = saveSnap
			if err != nil {
				t.Fatal(err)
			}
			k1AfterTheCrash(t, image, func(policy DamagePolicy, e *Cache) {
				for _, k := range e.known {
					if k.HasCut && !k.Ended {
						t.Errorf("%v: a cut of the state moved aside taken as held: %+v", policy, k)
					}
				}
			})
		})
	}
}

// TestResetWhoseMembersFileCannotBeWrittenLosesNothing: a reset whose
// members file cannot be written at all (the disk stays full) removes the
// file as read, which named the snapshot and log moved aside: left there,
// a crash took the new log, k1 acknowledged in it under SyncWrite, for
// damage (found by review).
func TestResetWhoseMembersFileCannotBeWrittenLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	cfg := membersFileOfLostFiles(t, path, SyncWrite)
	save := saveFile
	saveFile = func(string, func(io.Writer) error) error { return errors.New("disk full") }
	defer func() { saveFile = save }()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer d.Close()
	mustSet(t, d, "k1")
	image := crashImage(t, path)
	saveFile = save
	k1AfterTheCrash(t, image, nil)
}

// k1AfterTheCrash starts a member (SyncWrite) on a copy of the files of
// image under each damage policy, checks that it starts and holds k1,
// acknowledged before the crash, and then calls check, if any, with it.
func k1AfterTheCrash(t *testing.T, image string, check func(DamagePolicy, *Cache)) {
	t.Helper()
	for _, policy := range []DamagePolicy{DamageFail, DamageReset} {
		cfg := syncConfig(crashImage(t, image), SyncWrite)
		cfg.OnDamage = policy
		e, err := New(cfg)
		if err != nil {
			t.Errorf("%v: New after the crash: %v", policy, err)
			continue
		}
		if _, ok := e.Get("k1"); !ok {
			t.Errorf("%v: k1, acknowledged, lost (%d resets)", policy, e.Stats().DamageResets)
		}
		if check != nil {
			check(policy, e)
		}
		mustClose(t, e)
	}
}

// snapshotAndLog returns the files of a member (SyncWrite) as a crash
// leaves them: k1 in its snapshot, k2 in its log alone.
func snapshotAndLog(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cache.snap")
	c := mustNew(t, syncConfig(path, SyncWrite))
	mustSet(t, c, "k1")
	mustSnapshot(t, c)
	mustSet(t, c, "k2") // in the log alone
	image := crashImage(t, path)
	mustClose(t, c)
	return image
}

// loseLog removes every segment of the log beside the snapshot at path.
func loseLog(t *testing.T, path string) {
	t.Helper()
	segs, err := filepath.Glob(path + ".log.*")
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments %q, %v; want some", segs, err)
	}
	for _, s := range segs {
		if err := os.Remove(s); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLogLostWholeIsDamage: a write log lost whole beside its snapshot
// (every segment gone, as a log directory not restored from a backup) is
// damage: the start read as one after a clean Close, and went on without
// the writes acknowledged in it (found by review). So once a snapshot was
// written with the log running, at a start after a clean Close, which
// removes the log (the members file says a log runs from then on), and
// from a member's first start on, before any snapshot (it went unseen:
// nothing on disk said a log ran). A reset then starts empty, and says a
// log runs again.
func TestLogLostWholeIsDamage(t *testing.T) {
	t.Run("after a snapshot", func(t *testing.T) {
		image := snapshotAndLog(t)
		loseLog(t, image)
		if _, err := New(syncConfig(image, SyncWrite)); !errors.Is(err, ErrWriteLog) {
			t.Fatalf("New without the log: %v; want ErrWriteLog (k2 is in no file)", err)
		}
	})
	// lostIsDamage writes key through c, at path (its log alone holds
	// it), and checks that a restart from the files as a crash leaves
	// them holds key, and that one from them without the log is damage;
	// it returns those files, their log lost.
	lostIsDamage := func(t *testing.T, c *Cache, path, key string) string {
		t.Helper()
		mustSet(t, c, key) // in the log alone
		image := crashImage(t, path)
		mustClose(t, c)
		d := mustNew(t, syncConfig(crashImage(t, image), SyncWrite)) // the log as it was: no damage
		if _, ok := d.Get(key); !ok {
			t.Fatalf("restarted with its log, the member lost %s", key)
		}
		mustClose(t, d)
		loseLog(t, image)
		if _, err := New(syncConfig(image, SyncWrite)); !errors.Is(err, ErrWriteLog) {
			t.Fatalf("New without the log: %v; want ErrWriteLog (%s is in no file)", err, key)
		}
		return image
	}
	t.Run("after a clean Close", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cache.snap")
		mustClose(t, mustNew(t, syncConfig(path, SyncWrite))) // a snapshot, no log
		lostIsDamage(t, mustNew(t, syncConfig(path, SyncWrite)), path, "k3")
	})
	t.Run("before the first snapshot", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cache.snap")
		image := lostIsDamage(t, mustNew(t, syncConfig(path, SyncWrite)), path, "k4") // a first start
		cfg := syncConfig(image, SyncWrite)
		cfg.OnDamage = DamageReset
		e := mustNew(t, cfg)
		if e.Stats().DamageResets != 1 {
			t.Fatalf("DamageResets %d, want 1", e.Stats().DamageResets)
		}
		mustSet(t, e, "k5")
		again := crashImage(t, image)
		mustClose(t, e)
		loseLog(t, again)
		if _, err := New(syncConfig(again, SyncWrite)); !errors.Is(err, ErrWriteLog) {
			t.Fatalf("New without the log after a reset: %v; want ErrWriteLog (k5 is in no file)", err)
		}
	})
}

// copySegment copies segment n of the log beside the snapshot at from to
// the log beside the snapshot at to.
func copySegment(t *testing.T, from, to string, n int) {
	t.Helper()
	b, err := os.ReadFile(from + ".log." + strconv.Itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to+".log."+strconv.Itoa(n), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLogNumbersGoOnAfterACloseCutShort: a Close removes the log newest
// segment first once its snapshot holds it all; killed while it does
// (a stop timeout's SIGKILL), it leaves the oldest segments. The next
// start numbered its log on from the newest left, below the log_from of
// the members file, so that the numbers of segments removed were taken
// again: a later snapshot records the same log_from as the one Close
// wrote, and a backup of Close's snapshot put back beside the newer log
// read as whole, without the writes between (as
// TestLogNumbersGoOnAfterACleanClose, with the Close cut short; found by
// review). The segments left are replayed, a snapshot covers them, and the
// log goes on from log_from.
func TestLogNumbersGoOnAfterACloseCutShort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	mustSet(t, a, "k1")
	mustSnapshot(t, a)  // holds k1; the log goes on in 2
	mustSet(t, a, "k2") // in 2
	img := crashImage(t, path)
	mustClose(t, a)

	b := mustNew(t, syncConfig(img, SyncWrite)) // a crash's restart: 2 stays, the log goes on in 3
	mustSet(t, b, "k3")                         // in 3
	before := crashImage(t, img)                // segments 2 and 3, as Close found them
	mustClose(t, b)                             // snapshot S2 (k1-k3), log_from 4; removes 4, 3, 2
	copySegment(t, before, img, 2)              // killed before it removed 2

	c := mustNew(t, syncConfig(img, SyncWrite)) // replays 2; its log goes on in 3, not 4
	backup := crashImage(t, img)                // a backup of S2 and its members file
	mustSet(t, c, "k4")                         // in the new 3
	mustSnapshot(t, c)                          // S3 holds k4; log_from 4 again; removes 2 and 3
	mustSet(t, c, "k5")                         // in 4
	image := crashImage(t, img)
	mustClose(t, c)

	putBack(t, backup, image) // S2 and its members file, beside the log holding k5
	d, err := New(syncConfig(image, SyncWrite))
	if err == nil {
		_, k4 := d.Get("k4")
		_, k5 := d.Get("k5")
		d.Close()
		t.Fatalf("New beside a snapshot older than the log: nil error (k4 held: %v, k5 held: %v); want ErrWriteLog (k4 is in no file)", k4, k5)
	}
	if !errors.Is(err, ErrWriteLog) {
		t.Fatalf("New: %v; want ErrWriteLog", err)
	}
}

// ownWrite returns the record a member writes for key, as its write log
// holds it.
func ownWrite(t *testing.T, key string) crdt.Record {
	t.Helper()
	p := filepath.Join(t.TempDir(), "scratch.snap")
	s := mustNew(t, syncConfig(p, SyncWrite))
	mustSet(t, s, key)
	logged, _, err := readLog(p)
	s.Close()
	if err != nil || len(logged) != 1 || logged[0].Key != key {
		t.Fatalf("scratch log: %v, %v", logged, err)
	}
	return logged[0].Record
}

// appendAcked starts a segment of the log beside path as journal.Open
// numbers it after what Read finds (o.From, o.Snapshot as the release
// simulated passed them), appends rec as a write made here, waits for it
// to be synced (SyncWrite: acknowledged), and leaves the segment as a
// kill -9 would (closed, not removed).
func appendAcked(t *testing.T, path string, o journal.Options, rec crdt.Record) uint64 {
	t.Helper()
	_, lst, err := journal.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	o.Path, o.Mode = path, journal.EveryWrite
	l, err := journal.Open(o, lst)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Append(&rec, false)
	if err == nil {
		err = b.Wait()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	segs, _ := journal.Segments(path)
	return segs[len(segs)-1].N
}

// closeCutShort: k1 in a snapshot, then k2 in segment 2, a crash, a
// restart that adds k3 in segment 3, and a Close killed after it removed
// segments 4 and 3: S2 (k1-k3), log_from 4, log false, segment 2 left.
func closeCutShort(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	mustSet(t, a, "k1")
	mustSnapshot(t, a)
	mustSet(t, a, "k2")
	img := crashImage(t, path)
	mustClose(t, a)
	b := mustNew(t, syncConfig(img, SyncWrite))
	mustSet(t, b, "k3")
	before := crashImage(t, img)
	mustClose(t, b)
	copySegment(t, before, img, 2)
	kf, err := readKnownFile(img + knownSuffix)
	if err != nil || kf.LogFrom != 4 || kf.Log {
		t.Fatalf("members file after the Close cut short: %+v, %v", kf, err)
	}
	return img
}

// TestLogBelowLogFromOfTheReleaseBeforeIsReplayed: the release before
// this one, started on the files of a Close cut short (segment 2 left,
// log_from 4), numbered its log on from 2 (segment 3) and wrote log: true
// beside log_from 4 once New succeeded (markLog); a write acknowledged in
// segment 3, then a crash. This release restores every write from those
// files, as that one did, and under DamageReset too (a first fix took the
// files for a log lost, and reset them: found by review).
func TestLogBelowLogFromOfTheReleaseBeforeIsReplayed(t *testing.T) {
	img := closeCutShort(t)
	// The release before's restart: journal.Open as its restore called it.
	if n := appendAcked(t, img, journal.Options{Snapshot: true, From: 4}, ownWrite(t, "k4")); n != 3 {
		t.Fatalf("the release before's log started segment %d; want 3", n)
	}
	// Its New then wrote the members file with log: true (markLog).
	editKnown(t, img, func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"log_from":4`), []byte(`"log_from":4,"log":true`), 1)
	})
	if kf, err := readKnownFile(img + knownSuffix); err != nil || !kf.Log || kf.LogFrom != 4 {
		t.Fatalf("edited members file: %+v, %v", kf, err)
	}
	reset := crashImage(t, img)

	c, err := New(syncConfig(img, SyncWrite))
	if err != nil {
		t.Errorf("New on the files of the release before (k4 acknowledged in segment 3): %v; want k4 restored", err)
	} else {
		if _, ok := c.Get("k4"); !ok {
			t.Error("k4 lost")
		}
		c.Close()
	}

	cfg := syncConfig(reset, SyncWrite)
	cfg.OnDamage = DamageReset
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		if _, ok := d.Get(k); !ok {
			t.Errorf("DamageReset: %s lost (resets: %d)", k, d.Stats().DamageResets)
		}
	}
}

// TestLogBelowLogFromWithoutTheLogFlagIsReplayed: the same files with
// log: false (written by a release that numbered its log from log_from
// but wrote no log flag, or by the release before this one when its
// markLog write failed): segment 3 holds k4, acknowledged, below
// log_from, and is replayed (a first fix removed it unread: found by
// review).
func TestLogBelowLogFromWithoutTheLogFlagIsReplayed(t *testing.T) {
	img := closeCutShort(t)
	appendAcked(t, img, journal.Options{Snapshot: true, From: 4}, ownWrite(t, "k4"))
	c, err := New(syncConfig(img, SyncWrite))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Close()
	if _, ok := c.Get("k4"); !ok {
		t.Errorf("k4, acknowledged in segment 3, lost without an error (replayed: %d)", c.Stats().Replayed)
	}
}

// TestLogFromOneAfterACleanCloseIsReplayed: a release that wrote
// log_from but numbered its log from 1 after a clean Close (which wrote
// log_from 3) wrote k3, acknowledged, in segment 1, then crashed: the
// segment is replayed (a first fix removed it unread: found by review).
func TestLogFromOneAfterACleanCloseIsReplayed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	mustSet(t, a, "k1")
	mustSnapshot(t, a)
	mustSet(t, a, "k2")
	mustClose(t, a) // log_from 3, no segment
	// The members file as that release wrote it: version, members,
	// log_from (no snapshot name, no sum).
	kf, err := readKnownFile(path + knownSuffix)
	if err != nil || kf.LogFrom < 2 {
		t.Fatalf("%+v, %v", kf, err)
	}
	if err := os.WriteFile(path+knownSuffix, []byte(`{"version":1,"members":null,"log_from":`+strconv.FormatUint(kf.LogFrom, 10)+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := appendAcked(t, path, journal.Options{}, ownWrite(t, "k3")); n != 1 {
		t.Fatalf("segment %d; want 1", n)
	}
	c, err := New(syncConfig(path, SyncWrite))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Close()
	if _, ok := c.Get("k3"); !ok {
		t.Errorf("k3, acknowledged in segment 1, lost without an error (replayed: %d)", c.Stats().Replayed)
	}
}

// TestALogRunningAfterTheLogBelowLogFromIsCoveredIsMarked: files with
// log: true beside segments below log_from (as the release before left
// them: TestLogBelowLogFromOfTheReleaseBeforeIsReplayed). The start covers
// the segments and writes the members file with log: false; the file is
// then written again saying a log runs (markLog, taken from the file as it
// now stands: taken from the file as read, it was not, and the new log
// lost whole read as no log: found by review), so that a write
// acknowledged in the new log, then that log lost whole, is ErrWriteLog,
// as in TestLogLostWholeIsDamage.
func TestALogRunningAfterTheLogBelowLogFromIsCoveredIsMarked(t *testing.T) {
	img := closeCutShort(t)
	appendAcked(t, img, journal.Options{Snapshot: true, From: 4}, ownWrite(t, "k4"))
	editKnown(t, img, func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"log_from":4`), []byte(`"log_from":4,"log":true`), 1)
	})
	c := mustNew(t, syncConfig(img, SyncWrite))
	mustSet(t, c, "k5") // acknowledged: in the log alone
	image := crashImage(t, img)
	mustClose(t, c)
	kf, err := readKnownFile(image + knownSuffix)
	t.Logf("members file while the log runs: log_from %d, log %v (%v)", kf.LogFrom, kf.Log, err)
	segs, _ := filepath.Glob(image + ".log.*")
	for _, s := range segs { // the log lost whole
		if err := os.Remove(s); err != nil {
			t.Fatal(err)
		}
	}
	d, err := New(syncConfig(image, SyncWrite))
	if err == nil {
		_, ok := d.Get("k5")
		d.Close()
		t.Fatalf("New without the log: nil error, k5 held: %v; want ErrWriteLog (k5 is in no file)", ok)
	}
	if !errors.Is(err, ErrWriteLog) {
		t.Fatalf("New: %v; want ErrWriteLog", err)
	}
}

// TestALogBelowLogFromStartsWhenTheMembersFileCannotBeWritten: a start
// on the files of a Close cut short, with the members file unwritable,
// starts and holds every write: the segments below log_from stay, not
// covered, and the log numbers on from them, as before the cover (which
// failed New when its snapshot, named first in the members file, could not
// be written: found by review).
func TestALogBelowLogFromStartsWhenTheMembersFileCannotBeWritten(t *testing.T) {
	img := closeCutShort(t)
	save := saveFile
	saveFile = func(string, func(io.Writer) error) error { return errors.New("no space left on device") }
	c, err := New(syncConfig(img, SyncWrite))
	saveFile = save
	if err != nil {
		t.Fatalf("New with the members file unwritable: %v; want a start, the segments kept", err)
	}
	defer c.Close()
	for _, k := range []string{"k1", "k2", "k3"} {
		if _, ok := c.Get(k); !ok {
			t.Errorf("%s lost", k)
		}
	}
}

// TestACoverRenamedThenACrashLosesNothing: the cover of segments below
// log_from writes a snapshot renamed in place but not synced (ErrRenamed);
// the member runs, writes k5, and crashes; the next start finds either
// snapshot (the new one, or the old one back after a power cut) and holds
// k1-k5. Then a second start in a row whose cover fails, and a third whose
// cover succeeds: nothing is lost.
func TestACoverRenamedThenACrashLosesNothing(t *testing.T) {
	for _, flag := range []bool{false, true} {
		for _, old := range []bool{false, true} {
			t.Run(fmt.Sprintf("log%v/old%v", flag, old), func(t *testing.T) {
				img := closeCutShort(t)
				appendAcked(t, img, journal.Options{Snapshot: true, From: 4}, ownWrite(t, "k4"))
				if flag {
					editKnown(t, img, func(b []byte) []byte {
						return bytes.Replace(b, []byte(`"log_from":4`), []byte(`"log_from":4,"log":true`), 1)
					})
				}
				oldSnap, err := os.ReadFile(img)
				if err != nil {
					t.Fatal(err)
				}
				save := saveSnapshot
				saveSnapshot = func(s *store.Store, p string, w int64) (int, error) {
					n, err := save(s, p, w)
					if err == nil {
						err = fmt.Errorf("sync dir: %w", store.ErrRenamed)
					}
					return n, err
				}
				c, err := New(syncConfig(img, SyncWrite))
				saveSnapshot = save
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				mustSet(t, c, "k5")
				image := crashImage(t, img)
				c.Close()
				if old {
					if err := os.WriteFile(image, oldSnap, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				// Second start: its cover fails too (snapshot unwritable).
				saveSnapshot = func(*store.Store, string, int64) (int, error) { return 0, errors.New("no space") }
				d, err := New(syncConfig(image, SyncWrite))
				saveSnapshot = save
				if err != nil {
					t.Fatalf("second New: %v", err)
				}
				mustSet(t, d, "k6")
				image2 := crashImage(t, image)
				d.Close()
				e, err := New(syncConfig(image2, SyncWrite))
				if err != nil {
					t.Fatalf("third New: %v", err)
				}
				for _, k := range []string{"k1", "k2", "k3", "k4", "k5", "k6"} {
					if _, ok := e.Get(k); !ok {
						t.Errorf("%s lost", k)
					}
				}
				mustSet(t, e, "k7")
				image3 := crashImage(t, image2)
				e.Close()
				f, err := New(syncConfig(image3, SyncWrite))
				if err != nil {
					t.Fatalf("fourth New: %v", err)
				}
				defer f.Close()
				for _, k := range []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7"} {
					if _, ok := f.Get(k); !ok {
						t.Errorf("fourth: %s lost", k)
					}
				}
			})
		}
	}
}

// TestSnapshotAndLogLostWholeIsSnapshotDamage: a snapshot lost whole with
// its log (every file but the members file gone) is the snapshot's damage,
// ErrSnapshot, as TestSnapshotLostWholeIsDamage's, and its error does not
// tell the operator to "start from the snapshot alone", which is not
// there. Since logLost was checked without a snapshot too, it was taken
// for a log lost beside its snapshot (ErrWriteLog alone).
func TestSnapshotAndLogLostWholeIsSnapshotDamage(t *testing.T) {
	image := snapshotAndLog(t)
	files, err := filepath.Glob(image + "*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !strings.HasSuffix(f, knownSuffix) {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, err = New(syncConfig(image, SyncWrite))
	if !errors.Is(err, ErrSnapshot) || strings.Contains(fmt.Sprint(err), "from the snapshot alone") {
		t.Fatalf("New without its snapshot and log: %v; want ErrSnapshot (k1 and k2 are in no file)", err)
	}
}

// TestLogLostWholeAfterAMembersFileResetIsDamage: a members file moved
// aside as unreadable (DamageReset) leaves no file saying a log runs
// until the next snapshot: New wrote it only with a members file read,
// so a log lost whole meanwhile went unseen, the writes acknowledged in it
// in no file.
func TestLogLostWholeAfterAMembersFileResetIsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	mustClose(t, mustNew(t, syncConfig(path, SyncWrite))) // a snapshot, no log
	if err := os.WriteFile(path+knownSuffix, []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := syncConfig(path, SyncWrite)
	cfg.OnDamage = DamageReset
	c := mustNew(t, cfg)
	if n := c.Stats().DamageResets; n != 1 {
		t.Fatalf("%d resets, want 1", n)
	}
	mustSet(t, c, "k1") // in the log alone
	image := crashImage(t, path)
	mustClose(t, c)
	loseLog(t, image)
	if d, err := New(syncConfig(image, SyncWrite)); !errors.Is(err, ErrWriteLog) {
		if err == nil {
			d.Close()
		}
		t.Fatalf("New without the log: %v; want ErrWriteLog (k1 is in no file)", err)
	}
}

// TestALogNumberedAtTheEndIsDamageUnderThePolicy: a write log whose
// newest segment is numbered 2^53-1 (a name damaged, or set by hand):
// Read took it and the log's Open, refusing segment 2^53 (4b62cbb),
// failed New at every start, DamageReset too. As a segment numbered 2^53
// (Read refuses it) and a log_from past MaxFrom (TestHugeLogFromIsDamage),
// it is damage: DamageReset starts.
func TestALogNumberedAtTheEndIsDamageUnderThePolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	mustSet(t, a, "k1")
	img := crashImage(t, path)
	segs, err := filepath.Glob(img + ".log.*")
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v, %v; want one", segs, err)
	}
	if err := os.Rename(segs[0], fmt.Sprintf("%s.log.%d", img, uint64(1)<<53-1)); err != nil {
		t.Fatal(err)
	}
	cfg := syncConfig(img, SyncWrite)
	cfg.OnDamage = DamageReset
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New with DamageReset: %v", err)
	}
	c.Close()
}

// TestResetWithoutALogStartsWhenItsMembersFileStays: a reset (DamageReset)
// of a member with no write log (SyncNone) whose members file can be
// neither rewritten nor removed starts all the same, as it did before
// the removal was added: with no log, no write is acknowledged as durable
// between snapshots, and every snapshot rewrites the members file before
// it is written (knownBefore), so the stale file can lose nothing; the
// next start resets again, as empty. New failed, and an unattended member
// stayed down at every start while the file could not be removed (a file
// held open by another process on Windows, an immutable one). With a log,
// New still fails: its acknowledged writes would be taken for damage.
func TestResetWithoutALogStartsWhenItsMembersFileStays(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncNone, SyncWrite} {
		t.Run(fmt.Sprint(policy), func(t *testing.T) {
			cfg := membersFileOfLostFiles(t, filepath.Join(t.TempDir(), "cache.snap"), policy)
			save, remove := saveFile, removeFile
			saveFile = func(string, func(io.Writer) error) error { return errors.New("disk full") }
			removeFile = func(string) error { return fs.ErrPermission }
			d, err := New(cfg)
			saveFile, removeFile = save, remove
			if policy != SyncNone {
				if err == nil {
					d.Close()
					t.Fatal("New with a log and a members file naming what it moved aside: started")
				}
				return
			}
			if err != nil {
				t.Fatalf("New without a log, the members file neither written nor removed: %v", err)
			}
			defer mustClose(t, d)
			if n := d.Stats().DamageResets; n != 1 {
				t.Fatalf("%d resets, want 1", n)
			}
		})
	}
}
