package bcache

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/store"
)

// readFloorFile returns the floor on disk beside path.
func readFloorFile(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path + floorSuffix)
	if err != nil {
		t.Fatal(err)
	}
	floor, err := parseFloor(b)
	if err != nil {
		t.Fatalf("floor file %q: %v", b, err)
	}
	return floor
}

// TestTheClockFloorBoundsCutsAndTheNextClock: a member with a peer
// writes its floor once it reports cuts, never past its clock; a cut
// past it is reported at it (and keeps its node), one below as it is;
// a member restarted from a crash's files with its clock 10 s behind
// starts its clock past the floor, not at its physical time.
func TestTheClockFloorBoundsCutsAndTheNextClock(t *testing.T) {
	b := newCache(t, testConfig("b"))
	path := filepath.Join(t.TempDir(), "a.snap")
	cfg := testConfig("a", b.Addr())
	cfg.SnapshotPath, cfg.SnapshotInterval = path, -1
	a := mustNew(t, cfg)
	await.Until(t, 20*time.Second, func() bool { return a.floor.Load() > 0 }, "no floor written: no cut reported to b?")
	floor := readFloorFile(t, path)
	if last := a.clock.Last().Wall; floor < a.floor.Load() || floor > last {
		t.Fatalf("floor %d on disk, %d kept, clock at %d", floor, a.floor.Load(), last)
	}
	ahead := crdt.Timestamp{Wall: floor + int64(time.Hour), Logical: 3, Node: a.clock.Node()}
	cut := a.cutCeiling(ahead) // far past the floor: raised first, to the clock's reading at most
	floor = readFloorFile(t, path)
	if last := a.clock.Last().Wall; cut.Wall > floor || cut.Node != ahead.Node || !cut.Less(ahead) || floor > last {
		t.Fatalf("cut past the floor reported as %+v; floor on disk %d, clock at %d", cut, floor, last)
	}
	below := crdt.Timestamp{Wall: floor - 1, Node: a.clock.Node()}
	if cut := a.cutCeiling(below); cut != below {
		t.Fatalf("cut below the floor reported as %+v, want %+v", cut, below)
	}
	image := crashImage(t, path)
	mustClose(t, a)

	floor = readFloorFile(t, image)
	behind := new(offsetClock)
	behind.advance(-10 * time.Second)
	cfg = snapshotConfig(image, behind)
	cfg.NodeName = "a"
	a2 := mustNew(t, cfg)
	defer mustClose(t, a2)
	if now := a2.clock.Now(); now.Wall <= floor {
		t.Fatalf("restarted with the clock behind, first stamp %v is not past the floor %v", now, floor)
	}
	if got := readFloorFile(t, image); got < floor {
		t.Fatalf("floor lowered from %d to %d", floor, got)
	}
}

// TestTheClockFloorRises: a member alone reports no cut, and writes no
// floor; with a peer, the floor on disk follows the cuts it reports,
// past a write made since.
func TestTheClockFloorRises(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.snap")
	cfg := snapshotConfig(path, nil)
	cfg.NodeName = "a"
	alone := mustNew(t, cfg)
	if err := alone.Set("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	mustClose(t, alone)
	if _, err := os.Stat(path + floorSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a member alone wrote a floor: %v", err)
	}
	b := newCache(t, testConfig("b"))
	cfg = testConfig("a", b.Addr())
	cfg.SnapshotPath, cfg.SnapshotInterval = path, -1
	a := mustNew(t, cfg)
	defer mustClose(t, a)
	await.Until(t, 20*time.Second, func() bool { return a.floor.Load() > 0 }, "no floor written")
	first := readFloorFile(t, path)
	if err := a.Set("k", []byte("v"), 0); err != nil { // the clock moves
		t.Fatal(err)
	}
	stamp, _ := lookup(a, "k")
	await.Until(t, 10*time.Second, func() bool { return a.floor.Load() >= stamp.Time.Wall }, "the floor never passed a write's stamp")
	if got := readFloorFile(t, path); got < stamp.Time.Wall || got <= first {
		t.Fatalf("floor on disk %d, first %d, write stamped %d", got, first, stamp.Time.Wall)
	}
}

// TestADamagedClockFloorIsUnderTheDamagePolicy: a floor file that does
// not parse or check fails New with ErrSnapshot, and is left as it is;
// under DamageReset it is removed, and counted.
func TestADamagedClockFloorIsUnderTheDamagePolicy(t *testing.T) {
	for _, body := range []string{"", "12345", "12345 00000000\n", "-5 " + strings.Repeat("0", 8), strings.Repeat("9", 100)} {
		path := filepath.Join(t.TempDir(), "a.snap")
		if err := os.WriteFile(path+floorSuffix, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := New(snapshotConfig(path, nil))
		if !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), "clock floor") {
			t.Fatalf("floor %q: New returned %v, want ErrSnapshot naming the clock floor", body, err)
		}
		if b, _ := os.ReadFile(path + floorSuffix); string(b) != body {
			t.Fatalf("floor %q: left as %q", body, b)
		}
		cfg := snapshotConfig(path, nil)
		cfg.OnDamage = DamageReset
		a := mustNew(t, cfg)
		if n := a.Stats().DamageResets; n != 1 {
			t.Errorf("floor %q: %d damage resets counted, want 1", body, n)
		}
		if _, err := os.Stat(path + floorSuffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("floor %q: not removed (%v)", body, err)
		}
		mustClose(t, a)
	}
}

// TestADamagedClockFloorRemovedIsSynced: a damaged floor removed under
// DamageReset has its directory synced after the removal, as a damaged
// members file moved aside has (TestMembersFileMovedAsideIsSynced):
// unsynced, a power cut could bring the damaged floor back, and the next
// start removed and counted it again. A failed sync fails New, as the
// members file's does.
func TestADamagedClockFloorRemovedIsSynced(t *testing.T) {
	t.Cleanup(func() { syncDir = store.SyncDir })
	for _, failSync := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "a.snap")
		if err := os.WriteFile(path+floorSuffix, []byte("12345 00000000\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		newAfterSyncedRemoval(t, snapshotConfig(path, nil), failSync, "the damaged floor was removed", func() bool {
			_, err := os.Stat(path + floorSuffix)
			return errors.Is(err, fs.ErrNotExist)
		})
	}
}

// TestAClockPushedAheadByAPeerLeavesAFloorTheNextStartTakes: a member's
// clock takes a peer's stamp 25 s ahead (within MaxClockDrift, 30 s: a
// peer's clock far off, or a key holder's stamp); its cuts, and the floor
// that follows them, stay within MaxClockSkew of its own clock
// (store.CutNear), and a restart with its clock set back 10 s takes its
// files. The floor followed the clock 25 s ahead, and that restart found
// it 35 s ahead and failed New (ErrAheadOfClock; found by review of the
// property harness, which met it as an adversary's stamp).
func TestAClockPushedAheadByAPeerLeavesAFloorTheNextStartTakes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.snap")
	b := newCache(t, testConfig("b"))
	clock := &offsetClock{}
	cfg := testConfig("a", b.Addr())
	cfg.SnapshotPath, cfg.SnapshotInterval, cfg.Clock = path, -1, clock.now
	a := mustNew(t, cfg)
	pushed := a.phys()
	if err := a.clock.Update(crdt.Timestamp{Wall: pushed + int64(25*time.Second), Node: 99}); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 20*time.Second, func() bool { return a.floor.Load() > pushed }, "the floor never rose after the clock was pushed")
	if floor, limit := readFloorFile(t, path), crdt.AddSat(a.phys(), int64(a.cfg.MaxClockSkew)); floor > limit {
		t.Errorf("the floor on disk is %v ahead of the clock, past MaxClockSkew %v", time.Duration(floor-a.phys()), a.cfg.MaxClockSkew)
	}
	mustClose(t, a)
	clock.advance(-10 * time.Second) // set back before the restart, as NTP may
	again, err := New(cfg)
	if err != nil {
		t.Fatalf("a restart with the clock 10 s behind: %v", err)
	}
	mustClose(t, again)
}

// TestAClockFloorFarAheadIsAheadOfTheClock: a floor more than
// MaxClockDrift ahead of the clock fails New with ErrAheadOfClock (the
// clock is behind: set it); DamageReset starts below it, and the floor
// on disk stays.
func TestAClockFloorFarAheadIsAheadOfTheClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.snap")
	ahead := time.Now().Add(time.Hour).UnixNano()
	if err := os.WriteFile(path+floorSuffix, formatFloor(ahead), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(snapshotConfig(path, nil)); !errors.Is(err, ErrAheadOfClock) {
		t.Fatalf("New with a floor an hour ahead returned %v, want ErrAheadOfClock", err)
	}
	cfg := snapshotConfig(path, nil)
	cfg.OnDamage = DamageReset
	a := mustNew(t, cfg)
	defer mustClose(t, a)
	if now := a.clock.Now(); now.Wall >= ahead {
		t.Fatalf("the clock took a floor an hour ahead: %v", now)
	}
	if got := readFloorFile(t, path); got != ahead {
		t.Fatalf("floor on disk %d, want %d kept", got, ahead)
	}
}

// TestClockFloorFormat: a floor reads back as written, at the ends of
// its range too; a flipped digit, a short sum or a sign does not read.
func TestClockFloorFormat(t *testing.T) {
	for _, f := range []int64{0, 1, time.Now().UnixNano(), math.MaxInt64} {
		if got, err := parseFloor(formatFloor(f)); err != nil || got != f {
			t.Errorf("floor %d read back as %d, %v", f, got, err)
		}
	}
	good := string(formatFloor(1234567))
	for _, bad := range []string{strings.Replace(good, "4", "5", 1), good[:len(good)-2], "+" + good, "1234567\n", " " + good[8:]} {
		if f, err := parseFloor([]byte(bad)); err == nil {
			t.Errorf("%q read as floor %d", bad, f)
		}
	}
}

// TestNoCutPassesTheClockFloorOnDisk: with the floor's writes failing
// after the first (a disk full), a peer's sessions with the member,
// started after the floor stuck, still hold a cut of it at or below the
// floor on disk: a restart, whose clock starts past the floor, stamps
// nothing below a cut its peers hold. Without the ceiling, the cut is
// the member's clock at the session, past the floor.
func TestNoCutPassesTheClockFloorOnDisk(t *testing.T) {
	write := writeFloorFile
	defer func() { writeFloorFile = write }()
	var writes atomic.Int32
	writeFloorFile = func(path string, w func(io.Writer) error) error {
		if writes.Add(1) > 1 {
			return errors.New("disk full")
		}
		return write(path, w)
	}
	b := newCache(t, testConfig("b"))
	cfg := testConfig("a", b.Addr())
	cfg.SnapshotPath, cfg.SnapshotInterval = filepath.Join(t.TempDir(), "a.snap"), -1
	a := mustNew(t, cfg)
	defer mustClose(t, a)
	await.Until(t, 20*time.Second, func() bool { return writes.Load() >= 2 }, "the floor was never written again")
	floor := a.floor.Load()
	if floor <= 0 || readFloorFile(t, cfg.SnapshotPath) != floor {
		t.Fatalf("floor %d kept, %d on disk", floor, readFloorFile(t, cfg.SnapshotPath))
	}
	stuck := time.Now()
	await.Until(t, 20*time.Second, func() bool {
		for _, p := range b.Status().Peers {
			if p.Name == "a" && p.LastSync.After(stuck) {
				return true
			}
		}
		return false
	}, "b never synced with a after its floor stuck")
	for _, k := range b.knownNow() {
		if k.Name == "a" && k.HasCut && k.Cut > floor {
			t.Fatalf("b holds a cut of a at %d, past the floor on disk %d by %v", k.Cut, floor, time.Duration(k.Cut-floor))
		}
	}
	if got := readFloorFile(t, cfg.SnapshotPath); got != floor {
		t.Fatalf("floor on disk %d, want %d (its writes fail)", got, floor)
	}
}

// TestAClockFloorReadFailingOnceIsReadAgain: a read of the floor that
// fails once with an error that passes (EIO on a soft mount, ESTALE) is
// read again, as the snapshot, log and members file are: read once, the
// EIO was taken for damage and DamageReset removed a good floor (the
// next clock free to start below the cuts of its last life), and the
// ESTALE failed New (found by review).
func TestAClockFloorReadFailingOnceIsReadAgain(t *testing.T) {
	quickRetries(t)
	t.Cleanup(func() { readFloorBytes = readAtMost })
	for _, errno := range []syscall.Errno{syscall.EIO, syscall.ESTALE} {
		path := filepath.Join(t.TempDir(), "a.snap")
		floor := time.Now().UnixNano()
		if err := os.WriteFile(path+floorSuffix, formatFloor(floor), 0o644); err != nil {
			t.Fatal(err)
		}
		reads := 0
		readFloorBytes = func(p string, limit int64) ([]byte, error) {
			if reads++; reads == 1 {
				return nil, &fs.PathError{Op: "read", Path: p, Err: errno}
			}
			return readAtMost(p, limit)
		}
		cfg := snapshotConfig(path, nil)
		cfg.OnDamage = DamageReset
		a, err := New(cfg)
		if err != nil {
			t.Fatalf("%v once: New: %v", errno, err)
		}
		if n := a.Stats().DamageResets; n != 0 || a.floor.Load() != floor {
			t.Errorf("%v once: %d damage resets, floor kept %d, want none and %d", errno, n, a.floor.Load(), floor)
		}
		mustClose(t, a)
		if got := readFloorFile(t, path); got != floor {
			t.Errorf("%v once: floor on disk %d, want %d", errno, got, floor)
		}
	}
}

// TestARestartsFirstCutIsNotItsLastLifesFloor: a member given peers to
// join, restarted an hour after its last life wrote its floor, reports
// its first cut at its start, not at that floor: New writes the start's
// reading as the floor before the first session. Reported at the old
// floor until keepFloor raised it, the first cut held its peers' stable
// bound an hour back, and for FailedTimeout on a peer it failed to after
// that one session: a newcomer adopted a collected delete's watermark
// only up to it, and served the value from an old snapshot
// (TestANewcomerAsksAgainAFounderThatMetARestoredMember, once in CI). A
// first start, with no floor, reported cut 0 likewise.
func TestARestartsFirstCutIsNotItsLastLifesFloor(t *testing.T) {
	for _, restart := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "a.snap")
		if restart {
			old := time.Now().Add(-time.Hour).UnixNano()
			if err := os.WriteFile(path+floorSuffix, formatFloor(old), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now().UnixNano()
		cfg := snapshotConfig(path, nil)
		cfg.NodeName = "a"
		// Peers to join, found by none of its lookups: no session asks
		// keepFloor to raise the floor meanwhile.
		cfg.PeerSource = func(context.Context) ([]string, error) { return nil, nil }
		a := mustNew(t, cfg)
		if cut := a.cutCeiling(a.clock.Now()); cut.Wall < start {
			t.Errorf("restart %v: first cut at %d, %v before the start", restart, cut.Wall, time.Duration(start-cut.Wall))
		}
		if b, err := os.ReadFile(path + floorSuffix); err != nil {
			t.Errorf("restart %v: no floor on disk: %v", restart, err)
		} else if got, err := parseFloor(b); err != nil || got < start {
			t.Errorf("restart %v: floor on disk %d (%v), %v before the start", restart, got, err, time.Duration(start-got))
		}
		mustClose(t, a)
	}
}

// TestALoneMembersFirstCutToAPeerIsNotItsLastLifesFloor: a member given
// no peers writes no floor at its start (startFloor), and its first cut,
// when a peer joins it later, was its last life's floor, an hour old:
// the peer held its stable bound there. The floor far behind is written
// before that cut goes (raiseFloorNow).
func TestALoneMembersFirstCutToAPeerIsNotItsLastLifesFloor(t *testing.T) {
	a, path, _, start, cut := firstCutAfterAnHour(t)
	if n := a.Stats().FloorErrors; n != 0 {
		t.Fatalf("FloorErrors = %d, though every write of the floor succeeded", n)
	}
	if cut < start {
		t.Fatalf("b's first cut of a is %v before a's start", time.Duration(start-cut))
	}
	if floor := readFloorFile(t, path); floor < cut {
		t.Fatalf("cut %d past the floor on disk %d", cut, floor)
	}
}

// awaitCutOf returns the cut that c holds of the member called name, once
// it holds one.
func awaitCutOf(t *testing.T, c *Cache, name string) int64 {
	t.Helper()
	var cut int64
	await.Until(t, 20*time.Second, func() bool {
		for _, k := range c.knownNow() {
			if k.Name == name && k.HasCut {
				cut = k.Cut
				return true
			}
		}
		return false
	}, "%s never held a cut of %s", c.Name(), name)
	return cut
}

// firstCutAfterAnHour starts a, given no peers, from a floor written an
// hour ago at old, b joining it at once, and returns a, its snapshot path,
// that floor, a's start, and the first cut of a that b holds.
func firstCutAfterAnHour(t *testing.T) (a *Cache, path string, old, start, cut int64) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "a.snap")
	old = time.Now().Add(-time.Hour).UnixNano()
	if err := os.WriteFile(path+floorSuffix, formatFloor(old), 0o644); err != nil {
		t.Fatal(err)
	}
	start = time.Now().UnixNano()
	cfg := testConfig("a")
	cfg.SnapshotPath, cfg.SnapshotInterval = path, -1
	a = mustNew(t, cfg)
	t.Cleanup(func() { a.Close() })
	b := newCache(t, testConfig("b", a.Addr()))
	return a, path, old, start, awaitCutOf(t, b, "a")
}
