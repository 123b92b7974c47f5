package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/store"
)

func rec(i int) crdt.Record {
	return crdt.Record{Key: fmt.Sprint("k", i), Value: []byte(fmt.Sprint("v", i)), Time: crdt.Timestamp{Wall: int64(1000 + i), Node: 7}}
}

func keys(recs []Entry) []string {
	var ks []string
	for _, r := range recs {
		ks = append(ks, r.Key)
	}
	return ks
}

// open starts a log beside a snapshot path in a fresh directory.
func open(t *testing.T, mode Mode) (*Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: mode, Interval: time.Millisecond}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(false) })
	return l, path
}

// appendAll appends records i in [from, to) and waits for each.
func appendAll(t *testing.T, l *Log, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		r := rec(i)
		b, err := l.Append(&r, i%2 == 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

func mustRead(t *testing.T, path string) ([]Entry, ReadStats) {
	t.Helper()
	recs, st, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return recs, st
}

func TestAppendedRecordsReadBackInOrder(t *testing.T) {
	for _, mode := range []Mode{EveryWrite, Interval} {
		l, path := open(t, mode)
		appendAll(t, l, 0, 50)
		recs, st := mustRead(t, path)
		if want := 50; len(recs) != want || st.Segments != 1 || st.Torn != 0 {
			t.Fatalf("mode %d: read %d records, %+v", mode, len(recs), st)
		}
		for i, r := range recs {
			if want := rec(i); r.Key != want.Key || string(r.Value) != string(want.Value) || r.Time != want.Time || r.Received != (i%2 == 1) {
				t.Fatalf("record %d = %v, want %v", i, r, want)
			}
		}
	}
}

// TestConcurrentWritersShareFrames: appends made while a frame is being
// synced go into the next one together (group commit).
func TestConcurrentWritersShareFrames(t *testing.T) {
	l, path := open(t, EveryWrite)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() { appendAll(t, l, w*1000, w*1000+100) })
	}
	wg.Wait()
	st := l.Stats()
	if st.Records != 1600 || st.Frames >= 1600 {
		t.Fatalf("%d records in %d frames: no frame was shared", st.Records, st.Frames)
	}
	if recs, _ := mustRead(t, path); len(recs) != 1600 {
		t.Fatalf("read %d records, want 1600", len(recs))
	}
}

// TestTornEndIsIgnoredAndCut: the newest segment cut anywhere in its last
// frame (a crash in the middle of a write) reads as the frames before it;
// Open cuts the torn end off and starts the next segment after it.
func TestTornEndIsIgnoredAndCut(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 3)
	seg := segmentPath(path, 1)
	whole, _ := os.ReadFile(seg)
	appendAll(t, l, 3, 4)
	l.Close(false)
	full, _ := os.ReadFile(seg)
	for cut := len(whole); cut < len(full); cut++ {
		if err := os.WriteFile(seg, full[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		recs, st := mustRead(t, path)
		if !slices.Equal(keys(recs), []string{"k0", "k1", "k2"}) || st.Torn != int64(cut-len(whole)) {
			t.Fatalf("cut at %d: read %v, %+v", cut, keys(recs), st)
		}
	}
	// Garbage in place of the last frame's bytes reads the same.
	garbage := slices.Clone(full)
	for i := len(whole) + 5; i < len(garbage); i++ {
		garbage[i] ^= 0x5a
	}
	os.WriteFile(seg, garbage, 0o644)
	recs, st := mustRead(t, path)
	if len(recs) != 3 || st.Torn == 0 {
		t.Fatalf("garbage end: read %v, %+v", keys(recs), st)
	}
	l2, err := Open(Options{Path: path, Mode: EveryWrite}, st)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, l2, 10, 11)
	l2.Close(false)
	if b, _ := os.ReadFile(seg); len(b) != len(whole) {
		t.Fatalf("segment 1 is %d bytes after Open, want its valid %d", len(b), len(whole))
	}
	if recs, st := mustRead(t, path); !slices.Equal(keys(recs), []string{"k0", "k1", "k2", "k10"}) || st.Segments != 2 || st.Torn != 0 {
		t.Fatalf("after Open: read %v, %+v", keys(recs), st)
	}
}

// TestTornHeaderIsRemoved: a crash right after a segment was created
// leaves it empty or with part of its header; Open removes it, or it
// would be an older segment with a bad header once the next one starts,
// and makes its number again: the numbers have no gap.
func TestTornHeaderIsRemoved(t *testing.T) {
	for _, n := range []int{0, 5} {
		l, path := open(t, EveryWrite)
		appendAll(t, l, 0, 2)
		l.Close(false)
		os.WriteFile(segmentPath(path, 2), []byte(headerMagic[:n]), 0o644)
		recs, st := mustRead(t, path)
		if len(recs) != 2 || st.Newest.N != 2 {
			t.Fatalf("torn header of %d bytes: read %d records, %+v", n, len(recs), st)
		}
		l2, err := Open(Options{Path: path, Mode: EveryWrite}, st)
		if err != nil {
			t.Fatal(err)
		}
		appendAll(t, l2, 2, 3)
		l2.Close(false)
		if recs, st := mustRead(t, path); len(recs) != 3 || st.Segments != 2 || st.Newest.N != 2 {
			t.Fatalf("after Open over a torn header of %d bytes: read %d records, %+v", n, len(recs), st)
		}
	}
}

// TestDamageIsReportedNotHalfApplied: a frame that fails its check with a
// good frame after it, a torn end of an older segment, or a bad header is
// damage: Read returns ErrDamaged and no record.
func TestDamageIsReportedNotHalfApplied(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 3)
	seg1 := segmentPath(path, 1)
	if _, err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, 3, 6)
	l.Close(false)
	seg2 := segmentPath(path, 2)
	good1, _ := os.ReadFile(seg1)
	good2, _ := os.ReadFile(seg2)
	second := headerLen + frameHead + (len(good2)-headerLen)/3 - frameHead // inside the second of three equal frames
	for _, tc := range []struct {
		name string
		seg  string
		bad  func([]byte) []byte
	}{
		{"a flipped bit in a middle frame", seg2, func(b []byte) []byte { b[second] ^= 1; return b }},
		{"a flipped bit in the first frame", seg2, func(b []byte) []byte { b[headerLen+frameHead] ^= 1; return b }},
		{"a torn older segment", seg1, func(b []byte) []byte { return b[:len(b)-2] }},
		{"a bad header", seg1, func(b []byte) []byte { b[0] = 'B'; return b }},
		{"a bad header, newest segment", seg2, func(b []byte) []byte { b[3] = 'x'; return b }},
	} {
		os.WriteFile(seg1, good1, 0o644)
		os.WriteFile(seg2, good2, 0o644)
		b, _ := os.ReadFile(tc.seg)
		os.WriteFile(tc.seg, tc.bad(b), 0o644)
		recs, _, err := Read(path)
		if !errors.Is(err, ErrDamaged) || recs != nil {
			t.Errorf("%s: read %d records, err %v; want ErrDamaged and none", tc.name, len(recs), err)
		}
	}
}

// TestRotationRemovesCoveredSegments: records appended before Rotate are
// in segments below the one it returns, which RemoveBefore removes.
func TestRotationRemovesCoveredSegments(t *testing.T) {
	l, path := open(t, Interval)
	appendAll(t, l, 0, 5)
	n, err := l.Rotate()
	if err != nil || n != 2 {
		t.Fatalf("Rotate = %d, %v", n, err)
	}
	appendAll(t, l, 5, 7)
	if err := l.RemoveBefore(n); err != nil {
		t.Fatal(err)
	}
	if recs, st := mustRead(t, path); !slices.Equal(keys(recs), []string{"k5", "k6"}) || st.Segments != 1 {
		t.Fatalf("read %v, %+v", keys(recs), st)
	}
	if err := l.Close(true); err != nil {
		t.Fatal(err)
	}
	if segs, _ := Segments(path); len(segs) != 0 {
		t.Fatalf("segments left after Close(covered): %v", segs)
	}
	if r := rec(9); true {
		if _, err := l.Append(&r, false); !errors.Is(err, ErrClosed) {
			t.Fatalf("Append after Close = %v, want ErrClosed", err)
		}
	}
}

// TestLogAfterASnapshotIsNumberedFromFrom: a log started with no segment
// beside a snapshot takes From, and names the segment before it, which
// the snapshot holds; its numbers go on from there. Without a snapshot,
// From is not taken (a log without one must not look as if it followed
// one).
func TestLogAfterASnapshotIsNumberedFromFrom(t *testing.T) {
	for _, tc := range []struct {
		snapshot bool
		from     uint64
		first    uint64
		follows  bool
		pred     uint64
	}{
		{snapshot: true, from: 7, first: 7, follows: true, pred: 6},
		{snapshot: true, from: 0, first: 1, follows: true},
		{snapshot: true, from: 1, first: 1, follows: true},
		{snapshot: false, from: 7, first: 1},
	} {
		path := filepath.Join(t.TempDir(), "snap")
		l, err := Open(Options{Path: path, Mode: EveryWrite, Snapshot: tc.snapshot, From: tc.from}, ReadStats{})
		if err != nil {
			t.Fatal(err)
		}
		appendAll(t, l, 0, 2)
		n, err := l.Rotate()
		if err != nil || n != tc.first+1 {
			t.Fatalf("%+v: Rotate = %d, %v; want %d", tc, n, err, tc.first+1)
		}
		appendAll(t, l, 2, 3)
		if err := l.Close(false); err != nil {
			t.Fatal(err)
		}
		recs, st := mustRead(t, path)
		if len(recs) != 3 || st.Newest.N != tc.first+1 || st.FollowsSnapshot != tc.follows || st.Predecessor != tc.pred {
			t.Fatalf("%+v: read %d records, %+v", tc, len(recs), st)
		}
	}
	// No room left: refused, rather than a segment Read refuses later.
	path := filepath.Join(t.TempDir(), "snap")
	if _, err := Open(Options{Path: path, Mode: EveryWrite, Snapshot: true, From: MaxFrom + 1}, ReadStats{}); err == nil {
		t.Fatal("a log numbered from past MaxFrom was opened")
	}
	if _, err := Open(Options{Path: path, Mode: EveryWrite}, ReadStats{Newest: Segment{N: maxSegment}}); err == nil {
		t.Fatal("a segment numbered past what Read takes was started")
	}
}

// TestIntervalFlushesWithoutWaiters: with Interval, records are written
// within the interval although nobody waits for them.
func TestIntervalFlushesWithoutWaiters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: Interval, Interval: 5 * time.Millisecond}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(false)
	r := rec(1)
	b, _ := l.Append(&r, false)
	if err := b.Wait(); err != nil { // released by the ticker's flush
		t.Fatal(err)
	}
	if recs, _ := mustRead(t, path); len(recs) != 1 {
		t.Fatalf("read %d records after the interval, want 1", len(recs))
	}
}

func TestMoveAside(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 1)
	l.Close(false)
	os.WriteFile(path, []byte("snapshot"), 0o644)
	moved, err := MoveAside(path, ".damaged-1")
	if err != nil || len(moved) != 2 {
		t.Fatalf("MoveAside = %v, %v", moved, err)
	}
	if recs, st := mustRead(t, path); len(recs) != 0 || st.Segments != 0 {
		t.Fatalf("the log still reads %d records in %d segments", len(recs), st.Segments)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshot still in place: %v", err)
	}
}

// FuzzRead: any bytes as the newest segment read without a panic, as
// records or as damage, and never as more than the input could hold.
func FuzzRead(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "snap")
	l, err := Open(Options{Path: path, Mode: EveryWrite}, ReadStats{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		r := rec(i)
		b, _ := l.Append(&r, false)
		b.Wait()
	}
	l.Close(false)
	good, _ := os.ReadFile(segmentPath(path, 1))
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte(headerV1))
	f.Add(good[:headerLen])
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "snap")
		os.WriteFile(segmentPath(p, 1), b, 0o644)
		recs, st, err := Read(p)
		if err == nil && st.Valid+st.Torn+st.Padding != int64(len(b)) {
			t.Fatalf("valid %d + torn %d + padding %d != %d bytes", st.Valid, st.Torn, st.Padding, len(b))
		}
		if len(recs) > len(b) {
			t.Fatalf("%d records from %d bytes", len(recs), len(b))
		}
	})
}

// TestFramesLargerThanAChunk: records from several appenders, small ones
// that fill many chunks and values larger than a chunk, written as one
// frame (in pieces, not copied into one) read back whole.
func TestFramesLargerThanAChunk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				r := rec(w*10_000 + i)
				switch i % 1000 {
				case 7: // a value larger than a chunk
					r.Value = []byte(fmt.Sprint(i, string(make([]byte, 3*chunkSize)), w))
				case 8: // one that leaves a chunk all but full
					r.Value = make([]byte, chunkSize-len(r.Key)-maxRecordOverhead)
				}
				if _, err := l.Append(&r, false); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[r.Key] = string(r.Value)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.Records != 12_000 || st.Frames == 0 || st.Bytes/st.Frames <= 2*chunkSize {
		t.Fatalf("%+v: want 12,000 records in frames of several chunks", st)
	}
	recs, _ := mustRead(t, path)
	if len(recs) != len(want) {
		t.Fatalf("read %d records, want %d", len(recs), len(want))
	}
	for _, r := range recs {
		if v, ok := want[r.Key]; !ok || v != string(r.Value) {
			t.Fatalf("record %q: %d bytes, want %d", r.Key, len(r.Value), len(v))
		}
	}
}

// frameOf encodes r as a frame whose checksum starts from seed (0: a
// version 1 segment's), as the log writes one.
func frameOf(r *crdt.Record, seed uint32) []byte {
	p := store.AppendRecord([]byte{0}, r)
	f := binary.LittleEndian.AppendUint32([]byte(frameMagic), uint32(len(p)))
	f = binary.LittleEndian.AppendUint32(f, crc32.Update(crc32.Update(seed, castagnoli, f[4:8]), castagnoli, p))
	return append(f, p...)
}

// TestTornFrameHoldingAFrameIsATornEnd: a value may hold a frame's bytes;
// a crash that tears the frame carrying it must leave a torn end, not a
// good frame after a bad one (damage, which fails New or, with
// DamageReset, moves acknowledged writes aside). A segment's nonce takes
// part in its frames' checksums, so a value's bytes cannot check.
func TestTornFrameHoldingAFrameIsATornEnd(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 3) // acknowledged
	inner := crdt.Record{Key: "x", Value: []byte("y"), Time: crdt.Timestamp{Wall: 1, Node: 1}}
	blob := crdt.Record{Key: "blob", Value: append(frameOf(&inner, 0), make([]byte, 100)...), Time: crdt.Timestamp{Wall: 5000, Node: 7}}
	b, err := l.Append(&blob, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	l.Close(false)
	seg := segmentPath(path, 1)
	full, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(seg, full[:len(full)-50], 0o644) // the crash tore the blob's frame after its inner frame
	recs, st, err := Read(path)
	if err != nil || !slices.Equal(keys(recs), []string{"k0", "k1", "k2"}) || st.Torn == 0 {
		t.Fatalf("read %v, %+v, %v; want k0-k2 and a torn end", keys(recs), st, err)
	}
}

// TestTornEndScanIsBounded: in a segment of a release before version 4,
// bytes after a bad frame full of magics with lengths that fit (a value's
// bytes can be anything) are scanned in linear time: the search for a
// good frame after a bad one checksums at most about twice the segment's
// length (it was quadratic: a 1 MiB tail took 4.6 s), and says it ran out.
func TestTornEndScanIsBounded(t *testing.T) {
	b := []byte(headerMagic + "\x02noncenon")
	for len(b)+8 <= 1<<20 {
		b = append(append(b, frameMagic...), 0, 0, 0, 0)
	}
	for off := headerLenV2; off+8 <= len(b); off += 8 { // every magic of b
		binary.LittleEndian.PutUint32(b[off+4:], uint32(len(b)-off-frameHeadV3))
	}
	at, out, checked := scanFrames(b, headerLen+1, format{seed: 42, head: frameHeadV3})
	if at >= 0 || !out || checked > 3*len(b) {
		t.Fatalf("found a frame at %d (ran out: %v), checksummed %d bytes of a %d-byte segment", at, out, checked, len(b))
	}
}

// TestMissingSegmentIsDamage: a segment missing from the middle of the
// log held acknowledged writes that the snapshot need not hold: Read
// reports damage rather than replay the others without them.
func TestMissingSegmentIsDamage(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 2)
	mustRotate(t, l)
	appendAll(t, l, 2, 4) // in segment 2
	mustRotate(t, l)
	appendAll(t, l, 4, 6)
	l.Close(false)
	os.Remove(segmentPath(path, 2))
	mustBeDamaged(t, path)
}

// TestVersion1SegmentsAreRead: segments written before the nonce (version
// 1: no nonce, the checksum of the length and payload alone) are read as
// they were, and the segments written after them too.
func TestVersion1SegmentsAreRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	b := []byte(headerV1)
	for i := range 3 {
		r := rec(i)
		b = append(b, frameOf(&r, 0)...)
	}
	os.WriteFile(segmentPath(path, 1), b, 0o644)
	recs, st := mustRead(t, path)
	if !slices.Equal(keys(recs), []string{"k0", "k1", "k2"}) || st.Valid != int64(len(b)) {
		t.Fatalf("read %v, %+v from a version 1 segment", keys(recs), st)
	}
	// An upgraded member goes on in a segment of this version after it.
	l, err := Open(Options{Path: path, Mode: EveryWrite}, st)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, 3, 5)
	l.Close(false)
	if recs, st := mustRead(t, path); !slices.Equal(keys(recs), []string{"k0", "k1", "k2", "k3", "k4"}) || st.Segments != 2 {
		t.Fatalf("read %v, %+v from a version 1 segment and a version 4 one", keys(recs), st)
	}
}

// TestVersion2And3SegmentsAreRead: segments written before the header
// had its checksum (version 2: the nonce alone), and before frames had
// a checksum of their length and headers the previous segment (version
// 3), are read as they were.
func TestVersion2And3SegmentsAreRead(t *testing.T) {
	for _, version := range []byte{2, 3} {
		path := filepath.Join(t.TempDir(), "snap")
		b, seed := olderHeader(version)
		for i := range 3 {
			r := rec(i)
			b = append(b, frameOf(&r, seed)...)
		}
		os.WriteFile(segmentPath(path, 1), b, 0o644)
		recs, st := mustRead(t, path)
		if !slices.Equal(keys(recs), []string{"k0", "k1", "k2"}) || st.Valid != int64(len(b)) {
			t.Fatalf("read %v, %+v from a version %d segment", keys(recs), st, version)
		}
	}
}

// olderHeader returns a segment header of version 2 or 3, as the
// releases before wrote them, and the seed of its frames' checksums.
func olderHeader(version byte) ([]byte, uint32) {
	b := append([]byte(headerMagic), version)
	b = append(b, "8 bytes!"...)
	if version == 3 {
		b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[len(headerMagic):], castagnoli))
	}
	return b, crc32.Checksum(b[len(headerMagic)+1:headerLenV2], castagnoli)
}

// TestDamagedHeaderIsDamage: one bit flipped in a segment's nonce made
// every frame fail its check, and the newest segment, synced frames and
// all, read as a torn end: no error, no record, and Open then cut it to
// its header (found by review). The header's checksum makes it damage, in
// either mode; a header that fails its check with nothing written after
// it (the segment was being created) is a torn end, and loses nothing.
func TestDamagedHeaderIsDamage(t *testing.T) {
	for _, mode := range []Mode{EveryWrite, Interval} {
		l, path := open(t, mode)
		appendAll(t, l, 0, 20)
		l.Close(false)
		seg := segmentPath(path, 1)
		data, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		for _, flip := range []struct {
			what string
			at   int
			bit  byte
		}{
			{"a bit of the nonce", len(headerMagic) + 1 + 3, 0x10},
			// 3 to 1: read as version 1, checked by nothing (found by
			// review); 3 to 2: read as version 2, its checksum unread.
			{"the version byte, 3 to 1", len(headerMagic), 0x02},
			{"the version byte, 3 to 2", len(headerMagic), 0x01},
		} {
			bad := slices.Clone(data)
			bad[flip.at] ^= flip.bit
			os.WriteFile(seg, bad, 0o644)
			if recs, st, err := Read(path); !errors.Is(err, ErrDamaged) || len(recs) != 0 {
				t.Errorf("mode %d, %s flipped: read %d records, %+v, %v; want ErrDamaged and nothing", mode, flip.what, len(recs), st, err)
			}
		}
		// Zeros to a block, as a direct creation cut short leaves them
		// (zeros to another length follow frames lost: damage, see
		// TestZeroedNewestSegmentIsDamage).
		empty := append(slices.Clone(data[:headerLen]), make([]byte, dioAlign-headerLen)...)
		empty[len(headerMagic)+1+3] ^= 0x10
		os.WriteFile(seg, empty, 0o644)
		if recs, st, err := Read(path); err != nil || len(recs) != 0 || st.Valid != 0 {
			t.Errorf("mode %d, a bad header and nothing after it: read %d records, %+v, %v; want a torn end", mode, len(recs), st, err)
		}
	}
}

// TestTornVersion2HeaderIsATornEnd: a version 2 header cut short (left by
// the release before, killed as it created a segment) is a torn end, as
// it was before version 3 (found by review: it read as damage).
func TestTornVersion2HeaderIsATornEnd(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 2)
	l.Close(false)
	os.WriteFile(segmentPath(path, 2), []byte(headerMagic+"\x021234"), 0o644) // 16 of its 20 bytes
	if recs, st, err := Read(path); err != nil || len(recs) != 2 {
		t.Fatalf("read %d records, %+v, %v; want the 2 records before a torn end", len(recs), st, err)
	}
}

// TestDamagedPayloadBeforeGoodFramesIsDamage: a frame damaged in its
// payload, its length intact, with synced frames after it, is damage even
// when its value holds magics and lengths enough to spend the search's
// budget (found by review: it read as a torn end, and Open would have
// cut the good frames away); the next frame is looked for where the
// damaged one ends first.
func TestDamagedPayloadBeforeGoodFramesIsDamage(t *testing.T) {
	for _, magics := range []int{0, 5} {
		l, path := open(t, EveryWrite)
		r := rec(0)
		r.Value = make([]byte, 30000)
		for i := range magics {
			copy(r.Value[8*i:], frameMagic)
			binary.LittleEndian.PutUint32(r.Value[8*i+4:], 29000)
		}
		b, err := l.Append(&r, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Wait(); err != nil {
			t.Fatal(err)
		}
		appendAll(t, l, 1, 3)
		l.Close(false)
		seg := segmentPath(path, 1)
		data, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		data[headerLen+frameHead+100] ^= 1
		os.WriteFile(seg, data, 0o644)
		if recs, st, err := Read(path); !errors.Is(err, ErrDamaged) {
			t.Errorf("%d magics in the damaged value: read %d records, %+v, %v; want ErrDamaged", magics, len(recs), st, err)
		}
	}
}

func mustRotate(t *testing.T, l *Log) {
	t.Helper()
	if _, err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
}

// TestRemoveAllStopsAtAFailure: RemoveAll removes the segments newest
// first and stops at one it cannot remove, so what stays has no gap (a gap
// reads as damage) and its oldest is the oldest there was (see
// removeNewest). It went on past a failure, and could leave the oldest
// and the newest with none between.
func TestRemoveAllStopsAtAFailure(t *testing.T) {
	l, path := open(t, Interval)
	for i := range 3 {
		appendAll(t, l, i, i+1)
		if _, err := l.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	segs, err := Segments(path)
	if err != nil || len(segs) != 4 {
		t.Fatalf("segments %v, %v; want 4", segs, err)
	}
	removeFile = func(p string) error { // the second cannot be removed
		if p == segs[1].Path {
			return os.ErrPermission
		}
		return os.Remove(p)
	}
	defer func() { removeFile = os.Remove }()
	if err := RemoveAll(path); err == nil {
		t.Fatal("RemoveAll: no error, a segment could not be removed")
	}
	left, err := Segments(path)
	if err != nil {
		t.Fatal(err)
	}
	var ns []uint64
	for _, s := range left {
		ns = append(ns, s.N)
	}
	if !slices.Equal(ns, []uint64{segs[0].N, segs[1].N}) {
		t.Fatalf("segments left %v, want the failed one and all before it", ns)
	}
}

// TestEveryWriteIsSyncedBeforeItIsAcknowledged: with EveryWrite, a batch's
// Wait returns once its frame is synced: the bytes written are all in a
// sync when it returns. The kill test cannot tell (SIGKILL keeps the page
// cache): a log that skipped the sync passed every test (found by
// review).
func TestEveryWriteIsSyncedBeforeItIsAcknowledged(t *testing.T) {
	var synced atomic.Int64 // the file's size at its last sync
	syncFile = func(f *os.File) error {
		info, err := f.Stat()
		if err != nil {
			return err
		}
		synced.Store(info.Size())
		return f.Sync()
	}
	defer func() { syncFile = (*os.File).Sync }()
	l, path := open(t, EveryWrite)
	for i := range 20 {
		r := rec(i)
		b, err := l.Append(&r, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Wait(); err != nil {
			t.Fatal(err)
		}
		segs, err := Segments(path)
		if err != nil || len(segs) == 0 {
			t.Fatal(segs, err)
		}
		info, err := os.Stat(segs[len(segs)-1].Path)
		if err != nil {
			t.Fatal(err)
		}
		if s := synced.Load(); s < info.Size() {
			t.Fatalf("write %d acknowledged with %d bytes of %d synced", i, s, info.Size())
		}
	}
}

// magics is a value full of frame magics with lengths that fit in a
// segment of n bytes after it, as a caller's bytes may be.
func magics(copies, claim int) []byte {
	var v []byte
	for range copies {
		v = binary.LittleEndian.AppendUint32(append(v, frameMagic...), uint32(claim))
	}
	return v
}

// frameStarts returns the offsets of the frames of segment b, written by
// this version.
func frameStarts(t *testing.T, b []byte) []int {
	t.Helper()
	off, f, ok := readHeader(b)
	if !ok || !f.headSum {
		t.Fatal("not a version 4 segment")
	}
	var starts []int
	for off < len(b) {
		end, ok := frameEnd(b, off, f)
		if !ok {
			break
		}
		starts = append(starts, off)
		off = end
	}
	return starts
}

// TestDamageBeforeAValueFullOfMagicsIsDamage: one damaged byte in a
// frame's magic, before a value full of magics with lengths that fit,
// and acknowledged frames after it. The search for a good frame after the
// bad one spent its budget on the value's magics, and the rest read as a
// torn end: the acknowledged frames dropped without an error, and Open
// cut them off the disk (found by review). A version 4 frame's head
// checks on its own: the search is linear and finds the next frame.
func TestDamageBeforeAValueFullOfMagicsIsDamage(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 1)
	for _, r := range []crdt.Record{
		{Key: "magics", Value: magics(40, 256<<10), Time: crdt.Timestamp{Wall: 2000, Node: 7}},
		{Key: "large", Value: make([]byte, 300<<10), Time: crdt.Timestamp{Wall: 2001, Node: 7}},
	} {
		b, err := l.Append(&r, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	appendAll(t, l, 10, 20)
	l.Close(false)
	seg, b := segmentBytes(t, path, 1)
	starts := frameStarts(t, b)
	if len(starts) < 4 {
		t.Fatalf("%d frames, want one a write", len(starts))
	}
	b[starts[1]] ^= 1 // the magics' frame's magic
	os.WriteFile(seg, b, 0o644)
	mustBeDamaged(t, path)
}

// TestDamageBeforeMagicsInAnOlderSegmentIsDamage: in a version 3 segment
// (as the release before wrote them), whose frame heads do not check on
// their own, a search that runs out of its budget is damage, not a torn
// end.
func TestDamageBeforeMagicsInAnOlderSegmentIsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	b, seed := olderHeader(3)
	first := rec(0)
	b = append(b, frameOf(&first, seed)...)
	bad := len(b)
	blob := crdt.Record{Key: "magics", Value: magics(2000, 100), Time: crdt.Timestamp{Wall: 2000, Node: 7}}
	b = append(b, frameOf(&blob, seed)...)
	for i := 10; i < 20; i++ {
		r := rec(i)
		b = append(b, frameOf(&r, seed)...)
	}
	b[bad] ^= 1
	os.WriteFile(segmentPath(path, 1), b, 0o644)
	mustBeDamaged(t, path)
}

// TestShortenedLastFrameIsDamage: the length of the newest segment's last
// frame damaged to a smaller one that fits: the bytes after where it now
// ends were written, so it is not a torn end (a crash tears the last
// write alone), and its acknowledged records are not dropped silently.
func TestShortenedLastFrameIsDamage(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 3)
	l.Close(false)
	seg, b := segmentBytes(t, path, 1)
	starts := frameStarts(t, b)
	last := starts[len(starts)-1]
	n := binary.LittleEndian.Uint32(b[last+len(frameMagic):])
	binary.LittleEndian.PutUint32(b[last+len(frameMagic):], n/2)
	os.WriteFile(seg, b, 0o644)
	mustBeDamaged(t, path)
}

// TestHugeSegmentNumberIsDamage: a segment numbered near the largest
// uint64 (a stray file) made the next segment wrap to 0, which is not
// read: the writes in it were lost, and the start after that failed for
// good (found by review). Read reports it as damage.
func TestHugeSegmentNumberIsDamage(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 2)
	l.Close(false)
	if err := os.Rename(segmentPath(path, 1), segmentPath(path, math.MaxUint64)); err != nil {
		t.Fatal(err)
	}
	mustBeDamaged(t, path)
}

// TestOlderSegmentCutAtAFrameIsDamage: an older segment cut at the end of
// one of its frames read as whole, and the acknowledged frames after the
// cut were gone without a word (found by review). The next segment's
// header says where it ended.
func TestOlderSegmentCutAtAFrameIsDamage(t *testing.T) {
	path := twoSegments(t)
	seg, b := segmentBytes(t, path, 1)
	starts := frameStarts(t, b)
	os.WriteFile(seg, b[:starts[len(starts)-1]], 0o644) // without its last frame
	mustBeDamaged(t, path)
}

// TestFrameAfterAnOlderSegmentsEndIsNotRead: a frame whose write failed,
// which the log could not truncate away, stays at the end of a segment,
// and the log goes on in the next; the next segment's header says where
// the older one ended, and the frame, never acknowledged, is not read
// (it read as damage: a bad frame in an older segment).
func TestFrameAfterAnOlderSegmentsEndIsNotRead(t *testing.T) {
	path := twoSegments(t)
	seg, b := segmentBytes(t, path, 1)
	failed := rec(99)
	os.WriteFile(seg, append(b, frameOf(&failed, 0)[:20]...), 0o644)
	if recs, _ := mustRead(t, path); !slices.Equal(keys(recs), []string{"k0", "k1", "k2", "k3", "k4"}) {
		t.Fatalf("read %v, want k0-k4", keys(recs))
	}
}

// TestSegmentAfterAnotherIsDamage: a segment whose header names another
// segment before it than the one there is damage.
func TestSegmentAfterAnotherIsDamage(t *testing.T) {
	path := twoSegments(t)
	seg, b := segmentBytes(t, path, 2)
	binary.LittleEndian.PutUint64(b[headerLenV2:], 7)
	binary.LittleEndian.PutUint32(b[headerLen-4:], crc32.Checksum(b[len(headerMagic):headerLen-4], castagnoli))
	os.WriteFile(seg, b, 0o644)
	mustBeDamaged(t, path)
}

// TestMoveAsideKeepsWhatWasMovedBefore: moved aside twice under the same
// suffix (two resets within the clock's resolution), the first set is
// not renamed over (found by review).
func TestMoveAsideKeepsWhatWasMovedBefore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	var all []string
	for round := range 2 {
		os.WriteFile(path, []byte(fmt.Sprint("snapshot ", round)), 0o644)
		os.WriteFile(segmentPath(path, 1), []byte(fmt.Sprint("segment ", round)), 0o644)
		moved, err := MoveAside(path, ".damaged-x")
		if err != nil || len(moved) != 2 {
			t.Fatalf("round %d: moved %v, %v", round, moved, err)
		}
		all = append(all, moved...)
	}
	for i, p := range all {
		b, err := os.ReadFile(p)
		if want := []string{"snapshot 0", "segment 0", "snapshot 1", "segment 1"}[i]; err != nil || string(b) != want {
			t.Fatalf("%s holds %q, %v; want %q", p, b, err, want)
		}
	}
}

// TestPowerCutTearsNoFrameIntoDamage: a power cut during the last write,
// not yet synced (never acknowledged), may leave any of its pages or
// sectors written and the others zeros (write-back does not go in file
// order), the file's length extended. Whatever subset, wherever the
// frame's head falls against their boundaries, it is a torn end, never
// damage (which fails New): a torn head's length read as its low byte
// alone and "fit", and the payload's pages after it made it damage
// (found by review).
func TestPowerCutTearsNoFrameIntoDamage(t *testing.T) {
	for _, unit := range []int{512, 4096} {
		l, path := open(t, EveryWrite)
		appendAll(t, l, 0, 3)
		synced := int(l.file.off)
		big := crdt.Record{Key: "big", Value: bytes.Repeat([]byte("x"), 5*unit), Time: crdt.Timestamp{Wall: 5000, Node: 7}}
		b, err := l.Append(&big, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Wait(); err != nil {
			t.Fatal(err)
		}
		l.Close(false)
		full, err := os.ReadFile(segmentPath(path, 1))
		if err != nil {
			t.Fatal(err)
		}
		for shift := range frameHead + 4 { // where the head falls against the units' boundaries
			first := synced - unit + shift
			var units []int
			for u := first; u < len(full); u += unit {
				units = append(units, u)
			}
			for written := range 1 << len(units) {
				cut := bytes.Clone(full)
				for i, u := range units {
					if written&(1<<i) == 0 {
						clear(cut[max(u, synced):min(u+unit, len(cut))])
					}
				}
				var list entryList
				valid, err := readSegment(&list, cut, true, true, false)
				recs := list.all()
				if bytes.Equal(cut, full) { // every unit of the frame written
					continue
				}
				if err != nil || len(recs) != 3 || valid != synced {
					t.Fatalf("units of %d, the head %d bytes past a boundary, units written %b: %d records, valid %d, %v; want a torn end after 3",
						unit, unit-shift, written, len(recs), valid, err)
				}
			}
		}
	}
}

// TestVersionByteReadAsTwoIsDamage: a version 4 header whose version byte
// reads 2 was taken for a version 2 header, and every frame of the
// newest segment read as one torn end (found by review).
func TestVersionByteReadAsTwoIsDamage(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 5)
	l.Close(false)
	seg, b := segmentBytes(t, path, 1)
	b[len(headerMagic)] = 2
	os.WriteFile(seg, b, 0o644)
	mustBeDamaged(t, path)
}

// TestLastFrameWithADamagedHeadSumIsDamage: the newest segment's last
// frame with its head's sum damaged, its length and payload whole: no
// tear leaves that, and its acknowledged records were dropped as a torn
// end (found by review).
func TestLastFrameWithADamagedHeadSumIsDamage(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 5)
	l.Close(false)
	seg, b := segmentBytes(t, path, 1)
	starts := frameStarts(t, b)
	b[starts[len(starts)-1]+len(frameMagic)+4] ^= 1
	os.WriteFile(seg, b, 0o644)
	mustBeDamaged(t, path)
}

// TestMoveAsideFailsOnANameTooLong: a name to move aside to that is too
// long for the file system made MoveAside look for a free one for ever
// (found by review: New never returned under DamageReset).
func TestMoveAsideFailsOnANameTooLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), strings.Repeat("s", 230))
	if err := os.WriteFile(path, []byte("snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := MoveAside(path, ".damaged-"+strings.Repeat("x", 40)); err == nil {
		t.Fatal("moved a file aside to a name too long")
	}
}

// TestTornHeaderAfterAFailedFrameIsATornEnd: a frame whose write failed
// in part and could not be truncated away, then the next segment's
// creation cut short by a crash (its header torn): the segment before it
// was the newest, its failed frame a torn end, not damage in an older
// segment (found by review: the member would not start). Open cuts it
// there and makes the next segment again.
func TestTornHeaderAfterAFailedFrameIsATornEnd(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 3)
	valid := l.file.off
	l.Close(false)
	seg1 := segmentPath(path, 1)
	b, err := os.ReadFile(seg1)
	if err != nil {
		t.Fatal(err)
	}
	failed := rec(99)
	os.WriteFile(seg1, append(b, frameOf(&failed, 0)[:20]...), 0o644)  // the failed frame, in part
	os.WriteFile(segmentPath(path, 2), []byte(headerMagic[:5]), 0o644) // the next segment's header, torn
	recs, st := mustRead(t, path)
	if !slices.Equal(keys(recs), []string{"k0", "k1", "k2"}) || st.Valid != 0 || st.Before != valid {
		t.Fatalf("read %v, %+v; want k0-k2, and segment 1 valid to %d", keys(recs), st, valid)
	}
	l2, err := Open(Options{Path: path, Mode: EveryWrite}, st)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, l2, 3, 5)
	l2.Close(false)
	if recs, st := mustRead(t, path); !slices.Equal(keys(recs), []string{"k0", "k1", "k2", "k3", "k4"}) || st.Segments != 2 {
		t.Fatalf("after Open: read %v, %+v", keys(recs), st)
	}
	if info, _ := os.Stat(seg1); info.Size() != valid {
		t.Fatalf("segment 1 is %d bytes, want %d", info.Size(), valid)
	}
}

// TestLengthForUndoesTheHeadSum: the length a head's sum is of is found
// from the sum alone (one length has it).
func TestLengthForUndoesTheHeadSum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 10_000 {
		seed, n := r.Uint32(), r.Uint32()
		var l [4]byte
		binary.LittleEndian.PutUint32(l[:], n)
		if got := lengthFor(seed, crc32.Update(seed, castagnoli, l[:])); got != n {
			t.Fatalf("seed %#x: length %d, want %d", seed, got, n)
		}
	}
}

// TestTornHeaderAloneIsRemoved: a segment numbered above 1 whose header
// is torn, with no segment before it (those removed by a snapshot, or
// moved aside by a reset cut short): Open removes it and starts the log
// again, and cut a segment before it that was not there (found by
// review: New failed).
func TestTornHeaderAloneIsRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	os.WriteFile(segmentPath(path, 3), []byte(headerMagic[:5]), 0o644)
	recs, st := mustRead(t, path)
	if len(recs) != 0 || st.Segments != 1 || st.Valid != 0 {
		t.Fatalf("read %v, %+v; want a torn header alone", keys(recs), st)
	}
	l, err := Open(Options{Path: path, Mode: EveryWrite}, st)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, 0, 2)
	l.Close(false)
	if recs, st := mustRead(t, path); !slices.Equal(keys(recs), []string{"k0", "k1"}) || st.Segments != 1 || st.Newest.N != 3 {
		t.Fatalf("read %v, %+v after Open", keys(recs), st)
	}
}

// segmentBytes returns the path and the bytes of segment n of the log at
// path.
func segmentBytes(t *testing.T, path string, n uint64) (string, []byte) {
	t.Helper()
	seg := segmentPath(path, n)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	return seg, b
}

// mustBeDamaged fails t unless Read reports the log at path damaged, and
// returns no record.
func mustBeDamaged(t *testing.T, path string) {
	t.Helper()
	if recs, st, err := Read(path); !errors.Is(err, ErrDamaged) || len(recs) != 0 {
		t.Fatalf("read %v, %+v, %v; want ErrDamaged and nothing", keys(recs), st, err)
	}
}

// twoSegments writes k0-k2 to a fresh log's segment 1 and k3-k4 to its
// segment 2, closes it and returns its path.
func twoSegments(t *testing.T) string {
	t.Helper()
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 3)
	mustRotate(t, l)
	appendAll(t, l, 3, 5)
	l.Close(false)
	return path
}

// openQuietLog opens an Interval log that writes only when told to (or
// when its stripes fill), closed when the test ends.
func openQuietLog(t *testing.T) (*Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(false) })
	return l, path
}

// TestFailedFrameIsWrittenAgain: the records of a frame whose sync failed
// (a full disk, for a moment) are written again with the next frame: with
// Interval their appends had returned nil, and the frame was cut off the
// segment and dropped, though later frames were written and the log said
// nothing was failing any more (found by review).
func TestFailedFrameIsWrittenAgain(t *testing.T) {
	l, path := openQuietLog(t)
	size := func(int) int { return 10 }
	appendSized(t, l, 0, 5, size) // each returned nil
	full := errors.New("no space left on device")
	syncFile = func(*os.File) error { return full }
	err := l.Flush()
	underWriter(l, func() { syncFile = (*os.File).Sync })
	if !errors.Is(err, full) {
		t.Fatalf("flush = %v, want %v", err, full)
	}
	appendAfterFailure(t, l, 5, size, full) // with the records of the frame that failed
	appendSized(t, l, 6, 8, size)
	mustFlush(t, l)
	checkRead(t, path, 8, size, l.file.direct) // as a crash now leaves it
	if st := l.Stats(); st.Records != 8 {
		t.Fatalf("%d records counted written, want 8", st.Records)
	}
}

// TestFailedFramesPastAFrameAreDropped: the records of failed frames kept
// to be written again are at most what a frame holds (maxRetry, lowered
// here): past it the older go, reported, and the log stays failing (its
// appends say so) until a snapshot covers them (RemoveBefore a segment
// started after), though frames are written again meanwhile.
func TestFailedFramesPastAFrameAreDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	var reported []error
	l, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour, OnError: func(err error) { reported = append(reported, err) }}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(false)
	size := func(int) int { return 10 }
	appendSized(t, l, 0, 3, size)
	mustFlush(t, l)
	frame := int(l.Stats().Bytes) - frameHead // three records' bytes
	defer func(was int) { maxRetry = was }(maxRetry)
	maxRetry = frame * 3 / 2 // one frame's records kept, not two
	full := errors.New("no space left on device")
	syncFile = func(*os.File) error { return full }
	appendSized(t, l, 3, 6, size)
	if err := l.Flush(); !errors.Is(err, full) || len(reported) != 1 || strings.Contains(reported[0].Error(), "dropped") {
		t.Fatalf("first failure: %v, reported %v", err, reported)
	}
	appendAfterFailureKept(t, l, 6, 9, size, full)
	if err := l.Flush(); !errors.Is(err, full) || len(reported) != 2 || !strings.Contains(reported[1].Error(), "dropped") {
		t.Fatalf("second failure, past what a frame holds: %v, reported %v; want the drop reported", err, reported)
	}
	underWriter(l, func() { syncFile = (*os.File).Sync })
	appendAfterFailureKept(t, l, 9, 10, size, full)
	mustFlush(t, l) // written, with 6 to 8
	recs, _ := mustRead(t, path)
	got := keys(recs)
	slices.Sort(got)
	if want := []string{"k0", "k1", "k2", "k6", "k7", "k8", "k9"}; !slices.Equal(got, want) {
		t.Fatalf("the log holds %v, want %v: the first failed frame's records dropped, the second's written", got, want)
	}
	r := rec(10)
	r.Value = []byte(value(10, size))
	if _, err := l.Append(&r, false); !errors.Is(err, full) {
		t.Fatalf("an append after records were dropped, before a snapshot covers them: %v, want %v", err, full)
	}
	n, err := l.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.RemoveBefore(n); err != nil {
		t.Fatal(err)
	}
	r = rec(11)
	r.Value = []byte(value(11, size))
	if _, err := l.Append(&r, false); err != nil {
		t.Fatalf("an append once a snapshot covers what was dropped: %v", err)
	}
	mustFlush(t, l)
	recs, _ = mustRead(t, path)
	if got, want := keys(recs), []string{"k11"}; !slices.Equal(got, want) { // 10 went with Rotate's segment
		t.Fatalf("after the snapshot's segments went, the log holds %v, want %v", got, want)
	}
	if st := l.Stats(); st.Records != 3+4+1+1 {
		t.Fatalf("%d records counted written, want 9 (3 to 5 dropped)", st.Records)
	}
}

// appendAfterFailureKept appends records [from, to) while the log says
// its last frame failed with want.
func appendAfterFailureKept(t *testing.T, l *Log, from, to int, size func(int) int, want error) {
	t.Helper()
	for i := from; i < to; i++ {
		r := rec(i)
		r.Value = []byte(value(i, size))
		if _, err := l.Append(&r, false); !errors.Is(err, want) {
			t.Fatalf("append %d after a failed frame: %v, want %v", i, err, want)
		}
	}
}

// TestLongNewestSegmentWithATornHeaderIsDamage: a newest segment longer
// than a block whose header does not check (here all zeros, as a file
// whose length reached the disk and not its blocks) is damage, not a
// torn creation (one block at most): Read took it for one, and Open then
// cut the whole segment before it, whose records were acknowledged, to
// nothing (found by review). And Open refuses stats that would do that.
func TestLongNewestSegmentWithATornHeaderIsDamage(t *testing.T) {
	path := twoSegments(t) // k0-k2 in segment 1, k3-k4 in segment 2
	if err := os.WriteFile(segmentPath(path, 2), make([]byte, 2*dioAlign), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, st, err := Read(path); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Read: %+v, %v; want ErrDamaged", st, err)
	}
	one, err := os.ReadFile(segmentPath(path, 1))
	if err != nil {
		t.Fatal(err)
	}
	st := ReadStats{Segments: 2, Newest: Segment{Path: segmentPath(path, 2), N: 2}}
	if _, err := Open(Options{Path: path, Mode: EveryWrite}, st); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open with a torn newest and no length for the one before: %v, want ErrDamaged", err)
	}
	if after, err := os.ReadFile(segmentPath(path, 1)); err != nil || !bytes.Equal(after, one) {
		t.Fatalf("segment 1 was %d bytes, now %d (%v)", len(one), len(after), err)
	}
}

// TestTornHeaderBeforeATornNewestIsDamage: only the newest file may have
// a torn header (the one before a torn newest was made, header and all,
// before it): the one before, zeroed, read as torn too, its records went
// unreported, and Open refused what Read gave, at every start, whatever
// the damage policy (found by review).
func TestTornHeaderBeforeATornNewestIsDamage(t *testing.T) {
	path := twoSegments(t) // k0-k2 in segment 1, k3-k4 in segment 2
	_, two := segmentBytes(t, path, 2)
	if err := os.WriteFile(segmentPath(path, 2), make([]byte, len(two)), 0o644); err != nil { // a block at most, zeroed
		t.Fatal(err)
	}
	if err := os.WriteFile(segmentPath(path, 3), nil, 0o644); err != nil { // a torn creation
		t.Fatal(err)
	}
	if recs, st, err := Read(path); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Read: %d records, %+v, %v; want ErrDamaged", len(recs), st, err)
	}
}

// TestLastSegmentNumberIsDamage: a segment numbered maxSegment (a damaged
// or renamed file) is damage: Read took it, and Open could not start the
// one after it, at every start, whatever the damage policy (found by
// review).
func TestLastSegmentNumberIsDamage(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 2)
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(segmentPath(path, 1), segmentPath(path, maxSegment)); err != nil {
		t.Fatal(err)
	}
	if _, st, err := Read(path); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Read of a segment numbered %d: %+v, %v; want ErrDamaged", uint64(maxSegment), st, err)
	}
}

// TestSnapshotCoversFailedFramesKept: the records of failed frames kept to
// be written again go once a snapshot covers them (RemoveBefore a segment
// started after they were kept), and the log stops failing: they waited
// for a frame to be written, holding memory, and could be dropped later
// for want of room, failing the log for nothing (found by review).
func TestSnapshotCoversFailedFramesKept(t *testing.T) {
	l, path := openQuietLog(t)
	size := func(int) int { return 10 }
	full := errors.New("no space left on device")
	one := segmentPath(path, 1)
	underWriter(l, func() {
		syncFile = func(f *os.File) error {
			if f.Name() == one {
				return full
			}
			return f.Sync()
		}
	})
	defer underWriter(l, func() { syncFile = (*os.File).Sync })
	appendSized(t, l, 0, 3, size)
	if err := l.Flush(); !errors.Is(err, full) {
		t.Fatalf("flush = %v, want %v", err, full)
	}
	n, err := l.Rotate() // its flush of the kept records fails too; the new segment starts
	if err != nil || n != 2 {
		t.Fatalf("Rotate = %d, %v; want 2", n, err)
	}
	if err := l.RemoveBefore(n); err != nil {
		t.Fatal(err)
	}
	underWriter(l, func() {
		if l.retry.size != 0 || l.retry.recs != 0 {
			t.Errorf("after the snapshot: %d records (%d bytes) still kept", l.retry.recs, l.retry.size)
		}
	})
	r := rec(3)
	r.Value = []byte(value(3, size))
	if _, err := l.Append(&r, false); err != nil {
		t.Fatalf("an append once a snapshot covers the failed frames: %v", err)
	}
	mustFlush(t, l)
	recs, _ := mustRead(t, path)
	if got := keys(recs); !slices.Equal(got, []string{"k3"}) {
		t.Fatalf("the log holds %v, want k3 alone", got)
	}
}

// TestLogReadAllocatesBoundedPerByte: a log of small records is read with
// at most 30 bytes allocated a byte of log. Its entries were appended to
// one slice, whose every growth copied it: 67 bytes a byte (2 GiB for a
// 32 MiB log, which a member with a large snapshot may write before the
// long log's snapshot covers it).
func TestLogReadAllocatesBoundedPerByte(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	var r crdt.Record
	for range 1 << 18 {
		if _, err := l.Append(&r, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(segmentPath(path, 1))
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	recs, _, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := float64(after.TotalAlloc-before.TotalAlloc) / float64(info.Size()); alloc > 30 {
		t.Errorf("reading a log of %d bytes (%d records) allocated %.1f bytes a byte", info.Size(), len(recs), alloc)
	}
	runtime.KeepAlive(recs)
}

// logNumbered writes a log of two records in one segment, numbered n.
func logNumbered(t *testing.T, n uint64) string {
	t.Helper()
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 2)
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(segmentPath(path, 1), segmentPath(path, n)); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNoWriteGoesToASegmentReadRefuses: a log whose newest segment
// Read takes (numbered maxSegment-1: a name damaged, or set by hand) is
// never continued into a segment the next Read refuses: Open started
// segment maxSegment, acknowledged writes in it, and the next start took
// the log for damage (DamageReset moved the writes aside).
func TestNoWriteGoesToASegmentReadRefuses(t *testing.T) {
	path := logNumbered(t, maxSegment-1)
	_, st, err := Read(path)
	if errors.Is(err, ErrDamaged) {
		return // refused before any write: nothing acknowledged is lost
	} else if err != nil {
		t.Fatal(err)
	}
	l, err := Open(Options{Path: path, Mode: EveryWrite}, st)
	if err != nil {
		return // refused before any write: nothing acknowledged is lost
	}
	appendAll(t, l, 2, 3) // acknowledged
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Read(path); err != nil {
		t.Fatalf("a write acknowledged in segment %d, which Open started: the next Read: %v", l.file.n, err)
	}
}

// TestALogReadCanBeContinued: a log Read takes without error must be one
// Open can go on with. Its newest segment numbered maxSegment-1 (a name
// damaged, or set by hand) was read whole, and Open, refusing segment
// maxSegment, failed: New failed at every start whatever the damage
// policy (DamageReset acts on Read's ErrDamaged alone), the very state
// Read's refusal of maxSegment was made to avoid.
func TestALogReadCanBeContinued(t *testing.T) {
	path := logNumbered(t, maxSegment-1)
	_, st, err := Read(path)
	if err != nil {
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("Read: %v, want nil or ErrDamaged", err)
		}
		return // damage: DamageReset moves it aside
	}
	l, err := Open(Options{Path: path, Mode: EveryWrite}, st)
	if err != nil {
		t.Fatalf("Read took the log (newest segment %d) and Open refuses to go on with it: %v", st.Newest.N, err)
	}
	l.Close(false)
}

// appendHeld appends n MiB of records while the writer is held off (the
// test holds the file's lock, which the writer takes to write a frame),
// so that every chunk they fill is in use at once, then writes them as
// one frame. One goroutine's appends may all go to one stripe, and an
// append waits for the writer while its stripe holds its share of waitAt:
// the log must have few enough stripes (Options.stripes) for the records
// to fit one's share, or the test waits for ever (at 11 stripes or more,
// 6 MiB did: a machine of 11 processors or more).
func appendHeld(t *testing.T, l *Log, cycle, mib int) {
	t.Helper()
	if mib<<20+(mib<<7)*maxRecordOverhead >= l.stripeShare(waitAt) {
		t.Fatalf("%d MiB of records past a stripe's share of waitAt (%d stripes): the appends would wait for the writer the test holds off", mib, len(l.stripes))
	}
	value := make([]byte, 8<<10)
	l.file.Lock()
	for i := range mib << 7 { // 128 values of 8 KiB a MiB
		r := crdt.Record{Key: fmt.Sprint("k", cycle, "-", i), Value: value, Time: crdt.Timestamp{Wall: int64(1000 + i), Node: 7}}
		if _, err := l.Append(&r, false); err != nil {
			l.file.Unlock()
			t.Fatal(err)
		}
	}
	l.file.Unlock()
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestFramesLargerThanFlushAtReuseTheirChunks: a log written at full speed
// writes frames larger than flushAt (what came while the frame before was
// written joins the next), and their chunks are reused for the next ones:
// at a free list of 64 chunks, a quarter to a third of a full-speed log's
// chunks were made anew, and the collector's work on them was most of
// what the log cost its writers.
func TestFramesLargerThanFlushAtReuseTheirChunks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour, trimEvery: time.Hour, stripes: 2}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(false)
	const mib = 6 // past flushAt
	appendHeld(t, l, 0, mib)
	l.chunks.mu.Lock()
	made := l.chunks.made
	l.chunks.mu.Unlock()
	if made < mib<<20/chunkSize {
		t.Fatalf("%d chunks made for %d MiB of records", made, mib)
	}
	// A frame of the same size may take a chunk more per stripe than the
	// first did: each stripe's last chunk is partly filled, and how the
	// records spread over the stripes varies (the race detector's pools
	// drop items, and the stripes go round).
	for cycle := 1; cycle <= 4; cycle++ {
		appendHeld(t, l, cycle, mib)
		l.chunks.mu.Lock()
		again := l.chunks.made
		l.chunks.mu.Unlock()
		if again-made >= len(l.stripes) {
			t.Fatalf("%d frames of the same size made %d chunks more than the first (%d)", cycle, again-made, made)
		}
	}
}

// freeChunks returns the chunks on l's free list.
func freeChunks(l *Log) int {
	l.chunks.mu.Lock()
	defer l.chunks.mu.Unlock()
	return len(l.chunks.free)
}

// TestIdleLogLetsGoOfItsFreeChunks: the chunks of a burst go once the
// frames no longer need them, in either mode: an EveryWrite log, which
// has no sync ticker and wakes for appends alone, kept them, up to 64
// MiB, for as long as no write came (found by review).
func TestIdleLogLetsGoOfItsFreeChunks(t *testing.T) {
	for name, mode := range map[string]Mode{"Interval": Interval, "EveryWrite": EveryWrite} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "snap")
			l, err := Open(Options{Path: path, Mode: mode, Interval: time.Hour, trimEvery: time.Millisecond, stripes: 2}, ReadStats{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close(false)
			appendHeld(t, l, 0, 6)
			// The writer trims at every tick of its trim ticker (a
			// millisecond).
			await.Until(t, 10*time.Second, func() bool { return freeChunks(l) == 0 }, "free chunks held after the last write")
		})
	}
}

// TestTrimKeepsTheChunksTaken: trim lets go of the chunks no get took
// since the last trim, and keeps those taken, whether or not they are back.
func TestTrimKeepsTheChunksTaken(t *testing.T) {
	var cs chunks
	var body [][]byte
	for range 10 {
		body = append(body, cs.get(1))
	}
	cs.put(body) // 10 free; the fewest free since the start: 0
	cs.trim()
	if len(cs.free) != 10 {
		t.Fatalf("first trim left %d free chunks, want the 10 taken since the start", len(cs.free))
	}
	body = body[:0]
	for range 4 {
		body = append(body, cs.get(1))
	}
	cs.put(body) // 10 free; the fewest since the last trim: 6
	cs.trim()
	if len(cs.free) != 4 {
		t.Fatalf("second trim left %d free chunks, want the 4 taken since the first", len(cs.free))
	}
	cs.trim()
	if len(cs.free) != 0 || cs.made != 10 {
		t.Fatalf("a trim after none was taken left %d free chunks (%d made), want 0 (10)", len(cs.free), cs.made)
	}
}

// TestFreeChunksGoAtTheSecondTrimAfterTheirFrame: a burst's chunks go at
// the second trim after its frame (README: "within two seconds"), and the
// writer trims at every tick of its trim ticker: it trimmed only when
// trimEvery had passed since the last trim by the clock, so a tick taken
// a little sooner after its tick than the last one was skipped, about
// every other one, and the chunks went after four trimEvery (found by
// review).
func TestFreeChunksGoAtTheSecondTrimAfterTheirFrame(t *testing.T) {
	ticks := make(chan time.Time)
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour, trimTicks: ticks, stripes: 2}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(false)
	count := func() (free, trims int) {
		l.chunks.mu.Lock()
		defer l.chunks.mu.Unlock()
		return len(l.chunks.free), l.chunks.trims
	}
	tick := func() (free int) {
		_, before := count()
		ticks <- time.Now() // a tick a moment after the last
		await.Until(t, 10*time.Second, func() bool { _, n := count(); return n > before }, "a tick made no trim")
		free, _ = count()
		return free
	}
	for cycle := range 3 {
		appendHeld(t, l, cycle, 6)
		if free, _ := count(); free == 0 {
			t.Fatal("no chunk free after a frame")
		}
		tick() // the frame's chunks were taken since the trim before: kept
		if free := tick(); free != 0 {
			t.Fatalf("cycle %d: %d free chunks after the second trim since their frame", cycle, free)
		}
	}
}
