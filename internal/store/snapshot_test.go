package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// testNow is the tests' epoch: a fixed, realistic wall time.
const testNow = int64(1_750_000_000_000_000_000)

func mustStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// records returns every record s holds, sorted by key.
func records(s *Store) []crdt.Record {
	var out []crdt.Record
	s.Range(func(r crdt.Record) bool { out = append(out, r); return true })
	slices.SortFunc(out, func(a, b crdt.Record) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// marks returns every watermark s holds, by leaf of the whole digest.
func marks(s *Store) map[uint32]crdt.Timestamp {
	out := map[uint32]crdt.Timestamp{}
	local := s.digestBits - s.shardBits
	for i := range s.shards {
		for leaf := range uint32(1) << local {
			if w, ok := s.shards[i].m.Watermark(leaf); ok {
				out[uint32(i)<<local|leaf] = w
			}
		}
	}
	return out
}

func saveAndLoad(t *testing.T, s *Store) *Snapshot {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.WriteSnapshot(&buf, testNow); err != nil {
		t.Fatal(err)
	}
	snap, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), int64(buf.Len()), s.DigestBits())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// testRecords are records of every kind and size the format must carry.
func testRecords() []crdt.Record {
	ts := func(wall int64, logical uint32, node crdt.NodeID) crdt.Timestamp {
		return crdt.Timestamp{Wall: testNow + wall, Logical: logical, Node: node}
	}
	return []crdt.Record{
		{Key: "plain", Value: []byte("hello"), Time: ts(-5e9, 0, 0x1111)},
		{Key: "empty", Time: ts(-4e9, 3, 0x2222)},
		{Key: "binary", Value: []byte{0, 1, 2, 0xff}, Time: ts(-3e9, 0, ^crdt.NodeID(0))},
		{Key: "expiring", Value: []byte("soon"), Time: ts(-2e9, 1, 0x3333), Expires: testNow + 3600e9},
		{Key: "deleted", Time: ts(-1e9, 0, 0x4444), Tombstone: true},
		{Key: "evicted", Time: ts(-6e9, 7, 0x5555), Evicted: true},
		{Key: "", Value: []byte("empty key"), Time: ts(-7e9, 0, 0x6666)},
		{Key: strings.Repeat("k", 300), Value: bytes.Repeat([]byte{7}, 70000), Time: ts(-8e9, 0, 0x7777)},
		{Key: "ü-ñ", Value: []byte("utf8"), Time: ts(-9e9, 1<<32-1, 1)},
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := mustStore(t, Config{})
	for _, r := range testRecords() {
		if o := s.Apply(r, false, testNow); o != crdt.Applied {
			t.Fatalf("%q: %v", r.Key, o)
		}
	}
	mark := crdt.Timestamp{Wall: testNow - 7200e9, Logical: 3, Node: 5}
	s.shards[3].m.RaiseWatermark(7, mark, testNow)
	snap := saveAndLoad(t, s)
	if snap.Written != testNow {
		t.Fatalf("written %d, want %d", snap.Written, testNow)
	}
	r := mustStore(t, Config{})
	clock := crdt.NewHLC(9, func() int64 { return testNow }, 0)
	if st := r.Restore(snap, clock, testNow); st.Applied != len(testRecords()) || st.Drifted != 0 {
		t.Fatalf("restore: %+v", st)
	}
	if got, want := records(r), records(s); !slices.EqualFunc(got, want, sameRecord) {
		t.Fatalf("restored %v, want %v", got, want)
	}
	mark.Node = math.MaxUint64 // a watermark covers every node at its wall time and counter
	if got := marks(r); len(got) != 1 || got[3<<8|7] != mark {
		t.Fatalf("restored watermarks %v, want %v", got, mark)
	}
}

func sameRecord(a, b crdt.Record) bool {
	return a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.Time == b.Time && a.Expires == b.Expires &&
		a.Tombstone == b.Tombstone && a.Evicted == b.Evicted
}

// TestSnapshotReadsOldVersions reads snapshots written by earlier releases,
// and must do so in every later release: an edge member upgraded after a
// long absence restarts with its data. Both files hold the records and
// watermarks of testdata/snapshot-v1.json: version 1 (the release that
// introduced snapshots, whose records were a wire frame of the protocol's
// first version) and version 2 (own record encoding, watermarks of a wall
// time only, read as the last timestamp of that nanosecond).
func TestSnapshotReadsOldVersions(t *testing.T) {
	var want struct {
		Written int64
		Records []struct {
			Key, Value         []byte
			Wall               int64
			Logical            uint32
			Node               uint64
			Expires            int64
			Tombstone, Evicted bool
		}
		Marks map[uint32]int64
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "snapshot-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"snapshot-v1.bcs", "snapshot-v2.bcs"} {
		t.Run(file, func(t *testing.T) {
			snap, err := LoadSnapshot(filepath.Join("testdata", file), DefaultDigestBits)
			if err != nil {
				t.Fatal(err)
			}
			if snap.Written != want.Written {
				t.Fatalf("written %d, want %d", snap.Written, want.Written)
			}
			got := map[string]crdt.Record{}
			for _, r := range snap.Records {
				got[r.Key] = r
			}
			if len(got) != len(want.Records) {
				t.Fatalf("%d records, want %d", len(got), len(want.Records))
			}
			for _, w := range want.Records {
				r := crdt.Record{Key: string(w.Key), Value: w.Value, Expires: w.Expires, Tombstone: w.Tombstone, Evicted: w.Evicted,
					Time: crdt.Timestamp{Wall: w.Wall, Logical: w.Logical, Node: crdt.NodeID(w.Node)}}
				if len(r.Value) == 0 {
					r.Value = nil
				}
				if !sameRecord(got[r.Key], r) {
					t.Fatalf("record %q read as %+v, want %+v", r.Key, got[r.Key], r)
				}
			}
			gotMarks := map[uint32]crdt.Timestamp{}
			for _, m := range snap.Marks {
				gotMarks[m.Leaf] = m.Time
			}
			wantMarks := map[uint32]crdt.Timestamp{}
			for leaf, wall := range want.Marks {
				wantMarks[leaf] = crdt.Timestamp{Wall: wall, Logical: math.MaxUint32, Node: math.MaxUint64}
			}
			if !maps.Equal(gotMarks, wantMarks) {
				t.Fatalf("watermarks %v, want %v", gotMarks, wantMarks)
			}
		})
	}
}

// TestSnapshotDamaged: a file that is not a whole snapshot of a known
// format is refused with ErrSnapshot, whatever is wrong with it.
func TestSnapshotDamaged(t *testing.T) {
	s := mustStore(t, Config{})
	for _, k := range []string{"a", "b", "c"} {
		s.Apply(crdt.Record{Key: k, Value: bytes.Repeat([]byte(k), 100), Time: crdt.Timestamp{Wall: testNow, Node: 1}}, false, testNow)
	}
	var buf bytes.Buffer
	if _, err := s.WriteSnapshot(&buf, testNow); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	flip := func(i int) []byte {
		b := bytes.Clone(data)
		b[i] ^= 0x40
		return b
	}
	damaged := map[string][]byte{
		"empty":               {},
		"garbage":             bytes.Repeat([]byte{0xc1}, 300),
		"truncated":           data[:len(data)-10],
		"cut in the records":  data[:len(data)/2],
		"flipped magic":       flip(0),
		"flipped version":     flip(len(snapshotMagic)),
		"flipped record byte": flip(len(data) / 2),
		"flipped checksum":    flip(len(data) - 1),
		"trailing byte":       append(bytes.Clone(data), 0),
	}
	for name, content := range damaged {
		t.Run(name, func(t *testing.T) {
			_, err := ReadSnapshot(bytes.NewReader(content), int64(len(content)), DefaultDigestBits)
			if !errors.Is(err, ErrSnapshot) {
				t.Fatalf("ReadSnapshot: %v, want ErrSnapshot", err)
			}
		})
	}
	if _, err := ReadSnapshot(bytes.NewReader(data), int64(len(data)), 12); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("a snapshot of another digest width: %v, want ErrSnapshot", err)
	}
}

// FuzzSnapshot feeds arbitrary files to the snapshot reader: it must
// return an error or a snapshot whose records are within the protocol's
// limits, and never panic. Its seeds are snapshots of the default digest
// width, about 70 KB, which the fuzzer minimizes for a minute each by
// default (18 runs in three minutes): give it -fuzzminimizetime 2s.
//
//	go test -run '^$' -fuzz '^FuzzSnapshot$' -fuzzminimizetime 2s ./internal/store
func FuzzSnapshot(f *testing.F) {
	s := mustStore(f, Config{})
	for _, r := range testRecords() {
		s.Apply(r, false, testNow)
	}
	var buf bytes.Buffer
	if _, err := s.WriteSnapshot(&buf, testNow); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:buf.Len()-4])
	if v1, err := os.ReadFile(filepath.Join("testdata", "snapshot-v1.bcs")); err == nil {
		f.Add(v1)
	}
	f.Fuzz(checkSnapshotRead)
}

// checkSnapshotRead reads data as a snapshot: refused with ErrSnapshot,
// or read within the protocol's limits.
func checkSnapshotRead(t *testing.T, data []byte) {
	t.Helper()
	snap, err := ReadSnapshot(bytes.NewReader(data), int64(len(data)), DefaultDigestBits)
	if err != nil {
		if !errors.Is(err, ErrSnapshot) {
			t.Fatalf("error %v does not wrap ErrSnapshot", err)
		}
		return
	}
	for _, r := range snap.Records {
		if len(r.Key) > maxKey || len(r.Value) > maxValue {
			t.Fatalf("record over the limits: key %d, value %d bytes", len(r.Key), len(r.Value))
		}
	}
}

// TestSnapshotKeepsWatermarks: a delete collected before the snapshot stays
// collected after it: the write it deleted is rejected, not resurrected.
func TestSnapshotKeepsWatermarks(t *testing.T) {
	cfg := Config{Horizon: 2 * time.Second, MaxClockDrift: time.Second}
	s := mustStore(t, cfg)
	old := crdt.Record{Key: "k", Value: []byte("old"), Time: crdt.Timestamp{Wall: testNow, Node: 1}}
	s.Write(old)
	s.Write(crdt.Record{Key: "k", Time: crdt.Timestamp{Wall: testNow + 1, Node: 1}, Tombstone: true})
	later := testNow + int64(3*time.Second)
	s.MarkSynced(later)
	s.Collect(later, false, lww.NoStable)
	if _, ok := s.Lookup("k"); ok {
		t.Fatal("the tombstone was not collected")
	}
	r := mustStore(t, cfg)
	r.Restore(saveAndLoad(t, s), crdt.NewHLC(9, func() int64 { return later }, time.Second), later)
	if got := r.Apply(old, false, later); got != crdt.Rejected {
		t.Fatalf("the deleted write offered again after the restore: %v, want rejected", got)
	}
}

// TestSnapshotKeepsEvictedVersions: a value evicted before the snapshot
// stays evicted after it, and its version still shadows older writes.
func TestSnapshotKeepsEvictedVersions(t *testing.T) {
	cfg := Config{MaxKeys: 1}
	s := mustStore(t, cfg)
	s.Write(crdt.Record{Key: "a", Value: []byte("1"), Time: crdt.Timestamp{Wall: testNow, Node: 1}})
	s.Write(crdt.Record{Key: "b", Value: []byte("2"), Time: crdt.Timestamp{Wall: testNow + 1, Node: 1}})
	evicted, _ := s.Lookup("a")
	if !evicted.Evicted {
		t.Fatal("a was not evicted by MaxKeys 1")
	}
	r := mustStore(t, cfg)
	r.Restore(saveAndLoad(t, s), crdt.NewHLC(9, func() int64 { return testNow }, 0), testNow)
	if _, ok := r.Get("a", func() int64 { return testNow }); ok {
		t.Fatal("an evicted value came back from the snapshot")
	}
	if got, ok := r.Lookup("a"); !ok || !got.Evicted || got.Time != evicted.Time {
		t.Fatalf("a restored as %+v, %v; want its evicted version", got, ok)
	}
	if v, ok := r.Get("b", func() int64 { return testNow }); !ok || string(v) != "2" {
		t.Fatalf("Get(b) = %q, %v", v, ok)
	}
	older := crdt.Record{Key: "a", Value: []byte("0"), Time: crdt.Timestamp{Wall: evicted.Time.Wall - 1, Node: 9}}
	if got := r.Apply(older, false, testNow); got != crdt.Stale {
		t.Fatalf("an older write of the evicted key: %v, want stale", got)
	}
}

// TestSnapshotReadAfterLoweringTheValueLimit (no-loss item 4): a member
// whose MaxValueSize was lowered still restores its snapshot; a value over
// the new limit comes back as its version without the value.
func TestSnapshotReadAfterLoweringTheValueLimit(t *testing.T) {
	s := mustStore(t, Config{})
	big := crdt.Record{Key: "big", Value: make([]byte, 2<<20), Time: crdt.Timestamp{Wall: testNow, Node: 1}}
	s.Write(big)
	s.Write(crdt.Record{Key: "small", Value: []byte("v"), Time: crdt.Timestamp{Wall: testNow + 1, Node: 1}})
	r := mustStore(t, Config{MaxValueSize: 1 << 20})
	st := r.Restore(saveAndLoad(t, s), crdt.NewHLC(9, func() int64 { return testNow }, 0), testNow)
	if st.Applied != 2 {
		t.Fatalf("restored %+v, want both records", st)
	}
	if got, ok := r.Lookup("big"); !ok || !got.Evicted || got.Time != big.Time {
		t.Fatalf("big restored as %+v, %v; want its evicted version", got, ok)
	}
	if v, ok := r.Get("small", func() int64 { return testNow }); !ok || string(v) != "v" {
		t.Fatalf("small = %q, %v", v, ok)
	}
	if r.Stats().Oversized != 1 {
		t.Fatalf("oversized = %d, want 1", r.Stats().Oversized)
	}
}

// TestWriteAfterSealFails (no-loss item 8): a write either returns nil and
// is in every snapshot saved after Seal, or fails with ErrSealed.
func TestWriteAfterSealFails(t *testing.T) {
	s := mustStore(t, Config{})
	if _, err := s.Write(crdt.Record{Key: "before", Value: []byte("v"), Time: crdt.Timestamp{Wall: testNow, Node: 1}}); err != nil {
		t.Fatal(err)
	}
	s.Seal()
	if _, err := s.Write(crdt.Record{Key: "after", Value: []byte("v"), Time: crdt.Timestamp{Wall: testNow + 1, Node: 1}}); !errors.Is(err, ErrSealed) {
		t.Fatalf("a write after Seal: %v, want ErrSealed", err)
	}
	got := saveAndLoad(t, s).Records
	if len(got) != 1 || got[0].Key != "before" {
		t.Fatalf("the snapshot after Seal holds %v, want just the write before", got)
	}
}

// TestSnapshotRoundTripEveryShard: a snapshot holds every shard's records.
// The round trip above puts nine records in 256 shards: a snapshot that
// skipped a shard passed it nearly always (found by review).
func TestSnapshotRoundTripEveryShard(t *testing.T) {
	s := mustStore(t, Config{})
	held := map[int]bool{}
	for i := 0; len(held) < len(s.shards); i++ {
		key := fmt.Sprint("key-", i)
		if o := s.Apply(crdt.Record{Key: key, Value: []byte("v"), Time: crdt.Timestamp{Wall: testNow, Node: 1}}, false, testNow); o != crdt.Applied {
			t.Fatalf("%q: %v", key, o)
		}
		held[s.shardOf(crdt.HashKey(key))] = true
	}
	r := mustStore(t, Config{})
	r.Restore(saveAndLoad(t, s), crdt.NewHLC(9, func() int64 { return testNow }, 0), testNow)
	if got, want := records(r), records(s); !slices.EqualFunc(got, want, sameRecord) {
		t.Fatalf("restored %d records, want %d", len(got), len(want))
	}
}

// TestValueGoneAtItsExpiry: a value is served before its expiry and not at
// it. Served at it, only one test of the root package failed: the
// property harness never reads at the very nanosecond (found by review).
func TestValueGoneAtItsExpiry(t *testing.T) {
	s := mustStore(t, Config{})
	const expires = testNow + 1000
	if _, err := s.Write(crdt.Record{Key: "k", Value: []byte("v"), Expires: expires, Time: crdt.Timestamp{Wall: testNow, Node: 1}}); err != nil {
		t.Fatal(err)
	}
	for now, want := range map[int64]bool{expires - 1: true, expires: false, expires + 1: false} {
		if _, ok := s.Get("k", func() int64 { return now }); ok != want {
			t.Errorf("at expiry%+d: served %v, want %v", now-expires, ok, want)
		}
	}
}

// TestRecordErrorNamesALongKeyClipped: a record that does not decode is
// named by its key's first bytes: a key of 64 KiB, %q-quoted whole, made
// an error of 256 KiB (found by review).
func TestRecordErrorNamesALongKeyClipped(t *testing.T) {
	key := strings.Repeat("\x00", maxKey)
	b := AppendRecord(nil, &crdt.Record{Key: key, Time: crdt.Timestamp{Wall: testNow, Node: 1}, Value: []byte("v")})
	at := len(binary.AppendUvarint(nil, uint64(len(key)))) + len(key) // the flags
	b[at] = 7                                                         // out of range
	_, _, err := DecodeRecord(b)
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("a record with bad flags: an error of %d bytes: %.200v", len(fmt.Sprint(err)), err)
	}
}

// failAfter returns the first bytes of b, then err.
type failAfter struct {
	b   []byte
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if len(f.b) == 0 {
		return 0, f.err
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}

// TestReadErrorIsNotTakenForDamage: an error the file system returns
// while the snapshot is read (out of memory; on Windows, a range another
// process locked) reaches the caller, which tells it from damage
// (bcache's unreadableNow); it became "not a bcache snapshot" or a bad
// length, and DamageReset moved a good snapshot aside (found by review).
func TestReadErrorIsNotTakenForDamage(t *testing.T) {
	s := mustStore(t, Config{})
	s.Apply(crdt.Record{Key: "a", Value: []byte("x"), Time: crdt.Timestamp{Wall: testNow, Node: 1}}, false, testNow)
	var buf bytes.Buffer
	if _, err := s.WriteSnapshot(&buf, testNow); err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{0, 10, buf.Len() / 2, buf.Len() - 2} {
		failure := &fs.PathError{Op: "read", Path: "x.snap", Err: syscall.ENOMEM}
		_, err := ReadSnapshot(&failAfter{b: buf.Bytes()[:cut], err: failure}, int64(buf.Len()), DefaultDigestBits)
		if !errors.Is(err, syscall.ENOMEM) || !errors.Is(err, ErrSnapshot) {
			t.Errorf("a read failing after %d bytes: %v; want ErrSnapshot wrapping the ENOMEM", cut, err)
		}
		// The file's end, too early, is damage, as before.
		_, err = ReadSnapshot(&failAfter{b: buf.Bytes()[:cut], err: io.EOF}, int64(buf.Len()), DefaultDigestBits)
		if !errors.Is(err, ErrSnapshot) || errors.Is(err, syscall.ENOMEM) {
			t.Errorf("a file ending after %d bytes: %v; want ErrSnapshot", cut, err)
		}
		// So in LoadSnapshot's first pass, which checks the checksum
		// before anything is decoded.
		err = checkSum(&failAfter{b: buf.Bytes()[:cut], err: failure}, int64(buf.Len()))
		if !errors.Is(err, syscall.ENOMEM) || !errors.Is(err, ErrSnapshot) {
			t.Errorf("the checksum's pass, a read failing after %d bytes: %v; want ErrSnapshot wrapping the ENOMEM", cut, err)
		}
		err = checkSum(&failAfter{b: buf.Bytes()[:cut], err: io.EOF}, int64(buf.Len()))
		if !errors.Is(err, ErrSnapshot) || errors.Is(err, syscall.ENOMEM) {
			t.Errorf("the checksum's pass, a file ending after %d bytes: %v; want ErrSnapshot", cut, err)
		}
	}
}

// TestEveryTruncationAndBitFlipIsRefused: every prefix and every one-bit
// flip of a snapshot holding every kind of record, watermarks and own ids
// is refused with ErrSnapshot, without a panic.
func TestEveryTruncationAndBitFlipIsRefused(t *testing.T) {
	s := mustStore(t, Config{})
	for _, r := range testRecords() {
		r.Value = r.Value[:min(len(r.Value), 40)]
		s.Apply(r, false, testNow)
	}
	s.MarkOwn(7)
	s.MarkOwn(9)
	var buf bytes.Buffer
	if _, err := s.WriteSnapshot(&buf, testNow); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	check := func(what string, b []byte) {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("%s: panic %v", what, p)
			}
		}()
		snap, err := ReadSnapshot(bytes.NewReader(b), int64(len(b)), DefaultDigestBits)
		if err == nil {
			t.Fatalf("%s: accepted (%d records)", what, len(snap.Records))
		} else if !errors.Is(err, ErrSnapshot) {
			t.Fatalf("%s: %v does not wrap ErrSnapshot", what, err)
		}
	}
	for n := range len(data) {
		check(fmt.Sprintf("the first %d bytes", n), data[:n])
	}
	for i := range len(data) {
		for bit := range 8 {
			b := bytes.Clone(data)
			b[i] ^= 1 << bit
			check(fmt.Sprintf("bit %d of byte %d flipped", bit, i), b)
		}
	}
}

// TestDamagedSnapshotIsRefusedBeforeItIsDecoded: a snapshot whose records
// section is a stretch of zeros (a zero-filled extent after a crash)
// reads as millions of records of 7 bytes each: its checksum is checked
// first, in a pass that holds nothing, so that refusing it costs no
// memory (decoded first, a 16 MiB file took 1 GiB, 66 times its size, and
// a larger one killed the process at every start: found by review).
func TestDamagedSnapshotIsRefusedBeforeItIsDecoded(t *testing.T) {
	const zeros = 16 << 20
	head := append([]byte(snapshotMagic), snapshotVersion)
	head = binary.AppendUvarint(head, DefaultDigestBits)
	head = binary.AppendVarint(head, testNow)
	head = binary.AppendUvarint(append(head, 'R'), zeros)
	path := filepath.Join(t.TempDir(), "snap")
	if err := os.WriteFile(path, head, 0o600); err != nil {
		t.Fatal(err)
	}
	// Sparse: the zeros, then 'E', its length 0 and a checksum of zeros.
	if err := os.Truncate(path, int64(len(head))+zeros+6); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := LoadSnapshot(path, DefaultDigestBits)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("a snapshot of zeros with a bad checksum: %v, want a checksum mismatch", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("refusing a damaged snapshot of %d MiB allocated %d KiB", zeros>>20, alloc>>10)
	}
}

// TestLoadSnapshotOfAnotherFile: a file that is no snapshot is refused as
// such, before its checksum is looked at (the first pass reported a
// checksum mismatch).
func TestLoadSnapshotOfAnotherFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	if err := os.WriteFile(path, []byte("a configuration file, put at the snapshot's path by mistake\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSnapshot(path, DefaultDigestBits); !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), "not a bcache snapshot") {
		t.Fatalf("another file at the path: %v, want it refused as not a snapshot", err)
	}
}

// TestLegacyArrayOf2To31ElementsIsRefused: a version-1 record frame whose
// records array claims 2^31 elements (msgpack array32, 0xdd 80 00 00 00)
// is refused, whatever the word size. Where int has 32 bits, the length
// read as negative, passed the check against the bytes left, and the frame
// was accepted with no records at all.
// (Found by review under qemu-arm; on 64-bit the test passes either way.)
func TestLegacyArrayOf2To31ElementsIsRefused(t *testing.T) {
	frame := []byte{1, 4, // wire version 1, Repair
		0x97,       // [7 fields]
		0x00, 0x00, // session, echo
		0xdd, 0x80, 0x00, 0x00, 0x00, // records: an array of 2^31
		0xc4, 0x00, // wants: empty bin
		0x90,       // rejected: []
		0xc2, 0xc2, // final, truncated
	}
	recs, err := decodeLegacyRecords(nil, frame)
	if err == nil {
		t.Fatalf("a records array of 2^31 elements in %d bytes read as %d records, no error", len(frame), len(recs))
	}
}

// TestSnapshotSectionOver2GiBIsAnError: where int has 32 bits, a
// section whose length is 2^31 or more (possible in a file that large) is
// an error, not a panic: make([]byte, n) of an int64 n past MaxInt32
// panicked ("makeslice: len out of range"). (Where int has 64 bits, the
// reader would allocate the section: the test is for 32-bit platforms.)
// (Found by review under qemu-arm; on 64-bit the test passes either way.)
func TestSnapshotSectionOver2GiBIsAnError(t *testing.T) {
	if math.MaxInt > math.MaxInt32 {
		t.Skip("int has 64 bits: the section would be allocated")
	}
	var b []byte
	b = append(b, snapshotMagic...)
	b = append(b, snapshotVersion)
	b = binary.AppendUvarint(b, 8) // digest bits
	b = binary.AppendVarint(b, 0)  // written
	b = append(b, 'R')
	b = binary.AppendUvarint(b, 3<<30) // a 3 GiB section
	const size = 4 << 30               // the file's size, as a stat gives it
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("ReadSnapshot panicked: %v", r)
		}
	}()
	if _, err := ReadSnapshot(bytes.NewReader(b), size, 8); err == nil {
		t.Fatal("a 3 GiB section of a 4 GiB file read, no error")
	}
}

// craftSnapshot writes a checksummed version-4 snapshot of n records of
// 7 bytes each (empty key, empty value, every field 0) to path.
func craftSnapshot(t *testing.T, path string, n int) int64 {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	bw.WriteString(snapshotMagic)
	bw.WriteByte(snapshotVersion)
	bw.Write(binary.AppendUvarint(nil, uint64(DefaultDigestBits)))
	bw.Write(binary.AppendVarint(nil, 1))
	rec := make([]byte, 7)
	chunk := bytes.Repeat(rec, snapshotChunk/7)
	for left := n; left > 0; {
		k := min(left, snapshotChunk/7)
		writeSection(bw, 'R', chunk[:7*k])
		left -= k
	}
	writeSection(bw, 'W', nil)
	writeSection(bw, 'E', nil)
	bw.Flush()
	b := binary.LittleEndian.AppendUint32(buf.Bytes(), crc32.Checksum(buf.Bytes(), castagnoli))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return int64(len(b))
}

// TestSnapshotLoadAllocatesBoundedPerByte: a snapshot of small records,
// checksum and all, is loaded with at most 30 bytes allocated a byte of
// file. Each section's records were appended to one slice, whose every
// growth copied it: 62 bytes a byte (2 GiB for a 28 MiB file of records
// of one byte's key), made by a file a thousandth of that.
func TestSnapshotLoadAllocatesBoundedPerByte(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	size := craftSnapshot(t, path, 1<<18)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	snap, err := LoadSnapshot(path, DefaultDigestBits)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := float64(after.TotalAlloc-before.TotalAlloc) / float64(size); alloc > 30 {
		t.Errorf("loading a snapshot of %d bytes (%d records) allocated %.1f bytes a byte", size, len(snap.Records), alloc)
	}
	runtime.KeepAlive(snap)
}
