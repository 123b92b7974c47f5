package bcache

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bcache-go/bcache/transport"
)

// FuzzMembersFile feeds arbitrary bytes to the members file reader
// (readKnownFile): refused, or read within its bounds, and never a panic.
// Its seeds are files a member wrote (saveKnown).
//
//	go test -run '^$' -fuzz '^FuzzMembersFile$' .
func FuzzMembersFile(f *testing.F) {
	cfg := testConfig("m")
	cfg.SnapshotPath = filepath.Join(f.TempDir(), "m.snap")
	c := newCache(f, cfg)
	for _, kf := range []knownFile{
		{Version: 1, Members: []transport.Known{{Name: "peer", Cut: 5, HasCut: true}}},
		{Version: 1, Members: []transport.Known{{Name: "peer", Since: 9, Ended: true, Left: true}, {Name: "b"}}, LogFrom: 3, Log: true, Snapshot: 77, Pending: []int64{78, 79}},
	} {
		if err := c.saveKnown(kf); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(cfg.SnapshotPath + knownSuffix)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"members":[{"Name":"peer","Cut":9,"HasCut":true}],"log_from":4,"log":true}` + "\n"))
	path := filepath.Join(f.TempDir(), "m.snap"+knownSuffix)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		kf, err := readKnownFile(path)
		if err != nil {
			return
		}
		if kf.Version != 1 || len(kf.Members) > maxKnown || len(kf.Pending) > maxPending {
			t.Fatalf("read as %+v: past the bounds", kf)
		}
	})
}

// FuzzClockFloor feeds arbitrary bytes to the clock floor parser: refused,
// or a floor not below zero that reads back as written. Its seeds are a
// floor file a member wrote (raiseFloor), and others.
//
//	go test -run '^$' -fuzz '^FuzzClockFloor$' .
func FuzzClockFloor(f *testing.F) {
	cfg := testConfig("m")
	cfg.SnapshotPath = filepath.Join(f.TempDir(), "m.snap")
	c := newCache(f, cfg)
	if err := c.raiseFloor(1_700_000_000_000_000_000); err != nil {
		f.Fatal(err)
	}
	written, err := os.ReadFile(cfg.SnapshotPath + floorSuffix)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(written)
	f.Add(formatFloor(0))
	f.Add([]byte("12345 00000000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		floor, err := parseFloor(b)
		if err != nil {
			return
		}
		if floor < 0 {
			t.Fatalf("%q read as %d", b, floor)
		}
		if back, err := parseFloor(formatFloor(floor)); err != nil || back != floor {
			t.Fatalf("%q read as %d, written back read as %d, %v", b, floor, back, err)
		}
	})
}
