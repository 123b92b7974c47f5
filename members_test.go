package bcache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestRestartKeepsTheMembersItLost: a member lost from the view (cut off)
// is written beside the snapshot among the members this one counts, and a
// restart from that snapshot counts it again, as lost since then: early
// collection waits for it. A rolling restart of every member that had seen
// it forgot it, and its writes made while away were lost on its return
// (found by review; the protocol side is transport's
// TestRollingRestartKeepsTheAbsentMember).
func TestRestartKeepsTheMembersItLost(t *testing.T) {
	net := memnet.NewNetwork(1)
	path := filepath.Join(t.TempDir(), "b.snap")
	bLosesA(t, net, path)
	kept, err := os.ReadFile(path + knownSuffix)
	if err != nil || !strings.Contains(string(kept), `"Name":"a"`) {
		t.Fatalf("the members kept beside the snapshot: %s, %v; want a among them", kept, err)
	}
	back := onMemnetWithSnapshot(t, net, "b", "b2", path)
	i := slices.IndexFunc(back.repl.Known(), func(k transport.Known) bool { return k.Name == "a" })
	if i < 0 {
		t.Fatalf("restarted, b counts %+v: want a, lost", back.repl.Known())
	}
	if k := back.repl.Known()[i]; k.Since == 0 || !k.HasCut {
		t.Fatalf("a restored as %+v: want it lost, with the cut b held of it", k)
	}
	if st := back.repl.Stable(); st != transport.NoStable && st >= time.Now().UnixNano()-int64(time.Second) {
		t.Fatalf("restarted b's stable bound %v: a, lost, holds it", time.Unix(0, st))
	}
}

// TestDamagedMembersFileFollowsTheDamagePolicy: a members file that does
// not read is damage like a damaged snapshot: New fails with DamageFail,
// naming it; with DamageReset it moves the file aside, counts it and
// starts without it. (It was logged and ignored whatever the policy,
// found by review: early collection then forgot the members it counted.)
func TestDamagedMembersFileFollowsTheDamagePolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.snap")
	if err := os.WriteFile(path+knownSuffix, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("m")
	cfg.SnapshotPath = path
	if _, err := New(cfg); !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), knownSuffix) {
		t.Fatalf("New = %v, want ErrSnapshot naming the members file", err)
	}
	if _, err := os.Stat(path + knownSuffix); err != nil {
		t.Fatalf("DamageFail touched the file: %v", err)
	}
	cfg.OnDamage = DamageReset
	c := newCache(t, cfg)
	if k := c.repl.Known(); len(k) != 0 {
		t.Fatalf("counts %+v from a damaged file", k)
	}
	if c.Stats().DamageResets != 1 {
		t.Fatalf("%d resets, want 1", c.Stats().DamageResets)
	}
	if aside, _ := filepath.Glob(path + knownSuffix + ".damaged-*"); len(aside) != 1 {
		t.Fatalf("moved aside: %v, want the members file", aside)
	}
}

// TestHugeMembersFileIsNotReadWhole: a members file over the size its
// count allows is refused after reading just past that size.
func TestHugeMembersFileIsNotReadWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.snap")
	f, err := os.Create(path + knownSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxKnownBytes + 1); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	f.Close()
	if _, err := readAtMost(path+knownSuffix, maxKnownBytes); err == nil {
		t.Fatal("read a members file over the limit")
	}
	b, err := readAtMost(path+knownSuffix, maxKnownBytes+1)
	if err != nil || len(b) != maxKnownBytes+1 {
		t.Fatalf("a file at the limit: %d bytes, %v", len(b), err)
	}
	cfg := testConfig("m")
	cfg.SnapshotPath = path
	if _, err := New(cfg); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("New = %v, want ErrSnapshot for a file over the limit", err)
	}
}

// TestMembersFileIsCountedAsItIsDecoded: a members file within its size
// limit may hold millions of short entries ("{}"): they are counted as
// they are decoded, and the file is refused at the first past maxKnown,
// without decoding the rest (5.6 million entries took 1.8 GiB before the
// count was checked: found by review).
func TestMembersFileIsCountedAsItIsDecoded(t *testing.T) {
	entries := func(n int) []byte {
		return []byte(`{"version":1,"members":[` + strings.TrimSuffix(strings.Repeat("{},", n), ",") + "]}")
	}
	if f, err := decodeKnown(entries(maxKnown)); err != nil || len(f.Members) != maxKnown {
		t.Fatalf("%d members: %d, %v", maxKnown, len(f.Members), err)
	}
	if _, err := decodeKnown(entries(maxKnown + 1)); err == nil {
		t.Fatalf("%d members taken", maxKnown+1)
	}
	huge := entries((maxKnownBytes - 40) / 3)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := decodeKnown(huge)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a file of millions of members taken")
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Fatalf("refusing %d bytes of members allocated %d MiB", len(huge), got>>20)
	}
	// What json.Unmarshal takes, it takes the same.
	for _, in := range []string{
		`{"version":1,"members":null}`,
		`{"members":[{"Name":"a"}],"other":{"x":[1,2]},"version":1}`,
		`{"version":2,"members":[],"version":1}`,
		` { "version" : 1 , "members" : [ ] } `,
	} {
		var want knownFile
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		got, err := decodeKnown([]byte(in))
		got.newer = false // decodeKnown's own (TestMembersFileHasAChecksum)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %+v, %v; json.Unmarshal: %+v", in, got, err, want)
		}
	}
	for _, in := range []string{`[]`, `{"version":1,"members":{}}`, `{"version":1} {}`, `{"version":1`, `{"members":[{}]`} {
		if _, err := decodeKnown([]byte(in)); err == nil {
			t.Fatalf("%s taken", in)
		}
	}
}

// TestMembersOfALostStoreComeBackWithoutCuts: a member whose snapshot is
// moved aside as damaged (DamageReset) holds none of the records its old
// cuts say: it counts the members it kept, but with no cut until a session
// gives one. It came back with the old cuts, and could collect early past
// records it lacked (found by review).
func TestMembersOfALostStoreComeBackWithoutCuts(t *testing.T) {
	net := memnet.NewNetwork(1)
	path := filepath.Join(t.TempDir(), "b.snap")
	bLosesA(t, net, path)
	if err := os.WriteFile(path, []byte("not a snapshot"), 0o644); err != nil { // damaged
		t.Fatal(err)
	}
	back := onMemnetWithSnapshot(t, net, "b", "b2", path)
	if back.Stats().DamageResets != 1 || back.Len() != 0 {
		t.Fatalf("want a reset to empty: resets %d, len %d", back.Stats().DamageResets, back.Len())
	}
	i := slices.IndexFunc(back.repl.Known(), func(k transport.Known) bool { return k.Name == "a" })
	if i < 0 || back.repl.Known()[i].HasCut {
		t.Fatalf("after a reset to an empty store, a restored as %+v: want it counted, with no cut", back.repl.Known())
	}
	if st := back.repl.Stable(); st != transport.NoStable {
		t.Fatalf("stable bound %v with a counted member of no cut", time.Unix(0, st))
	}
}

// TestMembersFilesCutShortAreRemoved: the temporary file of a members file
// cut short by a crash is removed at the next start, as the snapshot's are.
func TestMembersFilesCutShortAreRemoved(t *testing.T) {
	cfg := testConfig("m")
	cfg.SnapshotPath = filepath.Join(t.TempDir(), "snap")
	temp := cfg.SnapshotPath + knownSuffix + ".tmp-123"
	if err := os.WriteFile(temp, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	newCache(t, cfg)
	if _, err := os.Stat(temp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the temporary file of a members file is still there: %v", err)
	}
}

// onMemnetWithSnapshot starts member name on net (its transport named
// tname), its snapshot at path (none if ""), a damaged one moved aside.
func onMemnetWithSnapshot(t *testing.T, net *memnet.Network, name, tname, path string, peers ...string) *Cache {
	t.Helper()
	tr, err := net.NewTransport(tname)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{NodeName: name, Network: tr, Peers: peers, Timings: FastTimings(),
		AntiEntropyInterval: 100 * time.Millisecond, SnapshotPath: path}
	if path != "" { // a damage policy needs files (ErrConfig without)
		cfg.OnDamage = DamageReset
	}
	return newCache(t, cfg)
}

// bLosesA starts a, which writes k, and b, its snapshot at path, synced
// with a; cuts a off, and closes b once it has lost a: b's snapshot and
// the members it kept beside it stand.
func bLosesA(t *testing.T, net *memnet.Network, path string) {
	t.Helper()
	a := onMemnetWithSnapshot(t, net, "a", "a", "")
	if err := a.Set("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	b := onMemnetWithSnapshot(t, net, "b", "b", path, a.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	net.Partition([]string{"a"}, []string{"b"})
	await.Until(t, 10*time.Second, func() bool { return len(b.Members()) == 1 }, "b still sees a")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMembersFileKeepsWhatItsReaderTakes: more members counted than a
// members file is read with are written without the incarnations that
// ended, then cut at the count: its next start, which takes a longer file
// for damage, reads it (found by review).
func TestMembersFileKeepsWhatItsReaderTakes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.snap")
	cfg := testConfig("m")
	cfg.SnapshotPath = path
	c := newCache(t, cfg)
	known := make([]transport.Known, maxKnown+10)
	for i := range known {
		known[i] = transport.Known{Name: fmt.Sprint("n", i), Ended: i < 10}
	}
	c.writeKnown(known, 0, false)
	f, err := readKnownFile(path + knownSuffix)
	back, err := c.readKnown(f, err, true, asideSuffix+"test")
	if err != nil || len(back) != maxKnown {
		t.Fatalf("read %d members, %v; want %d", len(back), err, maxKnown)
	}
	for _, k := range back {
		if k.Ended {
			t.Fatalf("kept %+v, an ended incarnation, over a current member", k)
		}
	}
}

// TestMembersFileHasAChecksum: every single flipped bit of a members file
// is refused (read as a good file, a flipped bit renamed a member, raised
// a cut or zeroed log_from: found by review), whether the file names a
// snapshot or not; a file of the releases before, without a checksum and
// with only their fields, is read as before.
func TestMembersFileHasAChecksum(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.snap")
	cfg := testConfig("m")
	cfg.SnapshotPath = path
	c := newCache(t, cfg)
	files := map[string]knownFile{
		"no snapshot": {Version: 1, Members: []transport.Known{{Name: "peer", Cut: 5, HasCut: true}}},
		"a snapshot":  {Version: 1, Members: []transport.Known{{Name: "peer"}}, LogFrom: 3, Log: true, Snapshot: 77, Pending: []int64{78}},
	}
	for name, f := range files {
		if err := c.saveKnown(f); err != nil {
			t.Fatal(err)
		}
		good, err := os.ReadFile(path + knownSuffix)
		if err != nil {
			t.Fatal(err)
		}
		back, err := readKnownFile(path + knownSuffix)
		back.newer = false
		if err != nil || !reflect.DeepEqual(back, f) {
			t.Fatalf("%s: read back %+v, %v; want %+v", name, back, err, f)
		}
		for i := range len(good) * 8 {
			b := slices.Clone(good)
			b[i/8] ^= 1 << (i % 8)
			if err := os.WriteFile(path+knownSuffix, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if f, err := readKnownFile(path + knownSuffix); err == nil {
				t.Fatalf("%s: bit %d of byte %d flipped (%q): read as %+v", name, i%8, i/8, b, f)
			}
		}
	}
	old := `{"version":1,"members":[{"Name":"peer","Cut":9,"HasCut":true}],"log_from":4,"log":true}` + "\n"
	if err := os.WriteFile(path+knownSuffix, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := readKnownFile(path + knownSuffix)
	if err != nil || f.LogFrom != 4 || !f.Log || len(f.Members) != 1 || f.Members[0].Cut != 9 {
		t.Fatalf("a file of a release before: %+v, %v", f, err)
	}
}

// editKnown rewrites the members file of path through edit, with its
// checksum made again: a file edited to a state a member could write.
func editKnown(t *testing.T, path string, edit func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path + knownSuffix)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(b, []byte(knownSumKey))
	if i < 0 {
		t.Fatalf("no checksum in %q", b)
	}
	body := edit(slices.Clip(b[:i]))
	if err := os.WriteFile(path+knownSuffix, appendKnownSum(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAnOlderSnapshotPutBackIsDamage: a snapshot older than the one the
// members file beside it was written with (put back alone from a backup),
// or another member's, is damage, with a write log or without: the
// writes made since it was written are in no file. It passed every check
// (the log's, whose log_from is the newer snapshot's), and those writes
// were lost without a word (found by review). Under DamageReset the
// member starts empty, counted, and the start after it is no damage.
func TestAnOlderSnapshotPutBackIsDamage(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncWrite, SyncNone} {
		dir := t.TempDir()
		path := filepath.Join(dir, "cache.snap")
		c := mustNew(t, syncConfig(path, policy))
		mustSet(t, c, "k1")
		mustSnapshot(t, c)
		backup := crashImage(t, path)
		mustSet(t, c, "k2")
		mustSnapshot(t, c)
		mustSet(t, c, "k3")
		mustClose(t, c)
		other := filepath.Join(t.TempDir(), "other.snap")
		o := mustNew(t, syncConfig(other, policy))
		mustSet(t, o, "k1")
		mustClose(t, o)
		for from, what := range map[string]string{backup: "an older snapshot", other: "another member's"} {
			image := crashImage(t, path)
			b, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(image, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if c, err := New(syncConfig(image, policy)); !errors.Is(err, ErrSnapshot) {
				if err == nil {
					_, has := c.Get("k2")
					c.Close()
					t.Fatalf("%v, %s put back: restored (k2 held: %v); want ErrSnapshot", policy, what, has)
				}
				t.Fatalf("%v, %s put back: %v; want ErrSnapshot", policy, what, err)
			}
			cfg := syncConfig(image, policy)
			cfg.OnDamage = DamageReset
			d := mustNew(t, cfg)
			if n := d.Stats().DamageResets; n != 1 || d.Len() != 0 {
				t.Fatalf("%v, %s: reset: %d resets, %d values; want 1 and none", policy, what, n, d.Len())
			}
			mustClose(t, d)
			mustClose(t, mustNew(t, syncConfig(image, policy)))
		}
	}
}

// TestSnapshotsBeingWrittenAreNamed: a crash while a snapshot is written
// leaves the members file naming the snapshot on disk, whichever it is:
// the one before (the new one not yet renamed into place) or the new one
// (the members file not yet written again). So does a snapshot renamed
// into place whose directory's sync failed (the one before it may come
// back with a power cut: both stay named), after any number of snapshots
// that failed before their rename (each kept named, a run of them pushed
// the snapshot in place out of the names: found by review).
func TestSnapshotsBeingWrittenAreNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	c := mustNew(t, syncConfig(path, SyncWrite))
	defer mustClose(t, c)
	mustSet(t, c, "k1")
	mustSnapshot(t, c)
	var save func(*store.Store, string, int64) (int, error)
	restarts := func(when, image string, want ...string) {
		t.Helper()
		hook := saveSnapshot // c's alone
		saveSnapshot = save
		defer func() { saveSnapshot = hook }()
		d, err := New(syncConfig(image, SyncWrite))
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		defer mustClose(t, d)
		for _, k := range want {
			if _, ok := d.Get(k); !ok {
				t.Fatalf("%s: %s lost", when, k)
			}
		}
	}
	save = saveSnapshot
	defer func() { saveSnapshot = save }()
	var before, after string // crash images
	var second []byte        // the snapshot of k2
	saveSnapshot = func(s *store.Store, p string, written int64) (int, error) {
		before = crashImage(t, path)
		n, err := save(s, p, written)
		after = crashImage(t, path)
		second, _ = os.ReadFile(after)
		return n, err
	}
	mustSet(t, c, "k2")
	mustSnapshot(t, c)
	restarts("named, not written", before, "k1", "k2")
	restarts("written, not named again", after, "k1", "k2")

	saveSnapshot = func(s *store.Store, p string, written int64) (int, error) {
		n, err := save(s, p, written)
		if err != nil {
			return n, err
		}
		return n, fmt.Errorf("%w: sync the directory: input/output error", store.ErrRenamed)
	}
	mustSet(t, c, "k3")
	if err := c.writeSnapshot(); err == nil {
		t.Fatal("a snapshot whose directory's sync failed: no error")
	}
	saveSnapshot = func(*store.Store, string, int64) (int, error) { return 0, errors.New("no space left on device") }
	for range 2 * maxPending {
		if err := c.writeSnapshot(); err == nil {
			t.Fatal("a snapshot that failed: no error")
		}
	}
	restarts("renamed, its directory not synced, then failures", crashImage(t, path), "k1", "k2", "k3")
	// A power cut brings the snapshot before back, beside the members
	// file as it is now.
	image := crashImage(t, path)
	if err := os.WriteFile(image, second, 0o644); err != nil {
		t.Fatal(err)
	}
	restarts("the snapshot before it back", image, "k1", "k2", "k3")
	saveSnapshot = save
	mustSnapshot(t, c)
	restarts("the next snapshot", crashImage(t, path), "k1", "k2", "k3")
	if c.kf.Snapshot != c.snapWritten || len(c.kf.Pending) != 0 {
		t.Fatalf("the members file names %d and %v; want %d alone", c.kf.Snapshot, c.kf.Pending, c.snapWritten)
	}
}

// TestAnOlderSnapshotPutBackIsDamageOnAStillClock: snapshots of a path
// get times of their own when the clock stands still (Config.Clock), so
// that the members file names one alone.
func TestAnOlderSnapshotPutBackIsDamageOnAStillClock(t *testing.T) {
	fixed := time.Now()
	cfgOf := func(p string) Config {
		c := syncConfig(p, SyncNone)
		c.Clock = func() time.Time { return fixed }
		return c
	}
	path := filepath.Join(t.TempDir(), "cache.snap")
	c := mustNew(t, cfgOf(path))
	mustSet(t, c, "k1")
	mustSnapshot(t, c)
	backup := crashImage(t, path)
	mustSet(t, c, "k2")
	mustClose(t, c)
	image := crashImage(t, path)
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(image, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if d, err := New(cfgOf(image)); !errors.Is(err, ErrSnapshot) {
		if err == nil {
			d.Close()
		}
		t.Fatalf("an older snapshot put back, the clock still: %v; want ErrSnapshot", err)
	}
}

// TestASnapshotTheMembersFileCannotNameIsNotWritten: the members file is
// written again before each snapshot, naming it; when that write fails,
// the snapshot is not written (the file would not name it, and a restart
// would refuse it as another's), the failure is counted, and the member
// restarts from the snapshot before and its log.
func TestASnapshotTheMembersFileCannotNameIsNotWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	c := mustNew(t, syncConfig(path, SyncWrite))
	defer mustClose(t, c)
	mustSet(t, c, "k1")
	mustSnapshot(t, c)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	failed := c.Stats().SnapshotErrors
	mustSet(t, c, "k2")
	file, snapshot := saveFile, saveSnapshot
	defer func() { saveFile, saveSnapshot = file, snapshot }()
	saveFile = func(string, func(io.Writer) error) error { return errors.New("no space left on device") }
	written := false
	saveSnapshot = func(s *store.Store, p string, at int64) (int, error) {
		written = true
		return snapshot(s, p, at)
	}
	if err := c.writeSnapshot(); err == nil {
		t.Fatal("a snapshot the members file could not name: no error")
	}
	if written {
		t.Fatal("the snapshot was written, though the members file does not name it")
	}
	if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, before) {
		t.Fatalf("the snapshot in place changed (%v)", err)
	}
	if n := c.Stats().SnapshotErrors - failed; n != 1 {
		t.Fatalf("%d snapshot errors counted, want 1", n)
	}
	saveFile, saveSnapshot = file, snapshot
	d, err := New(syncConfig(crashImage(t, path), SyncWrite))
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, d)
	for _, k := range []string{"k1", "k2"} {
		if _, ok := d.Get(k); !ok {
			t.Fatalf("restarted: %s lost", k)
		}
	}
}
