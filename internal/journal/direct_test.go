package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// openDirectLog starts an Interval log that flushes only when told to, and
// skips the test where the file system refuses direct I/O (the log then
// writes through the page cache, as the other tests check).
func openDirectLog(t *testing.T) (*Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(false) })
	if !l.file.direct {
		t.Skip("the file system of the test's temporary directory refuses direct I/O")
	}
	return l, path
}

// appendSized appends records i in [from, to) whose values are size(i)
// bytes long, without waiting.
func appendSized(t *testing.T, l *Log, from, to int, size func(int) int) {
	t.Helper()
	for i := from; i < to; i++ {
		r := rec(i)
		r.Value = []byte(fmt.Sprintf("%0*d", size(i), i))
		if _, err := l.Append(&r, false); err != nil {
			t.Fatal(err)
		}
	}
}

// checkRead reads the log and checks that it holds records [0, n), each
// once, with the values appendSized gave them (in any order within a
// frame: appenders on different processors fill different stripes), and
// that the newest segment ends in a direct write's padding, nothing torn.
func checkRead(t *testing.T, path string, n int, size func(int) int) ReadStats {
	t.Helper()
	recs, st := mustRead(t, path)
	if len(recs) != n {
		t.Fatalf("read %d records, want %d (%+v)", len(recs), n, st)
	}
	seen := make([]bool, n)
	for _, r := range recs {
		var i int
		if _, err := fmt.Sscanf(r.Key, "k%d", &i); err != nil || i < 0 || i >= n || seen[i] {
			t.Fatalf("read record %q: not one of k0..k%d, or twice", r.Key, n-1)
		}
		seen[i] = true
		if want := fmt.Sprintf("%0*d", size(i), i); string(r.Value) != want {
			t.Fatalf("record %q: %d bytes of value, want %d", r.Key, len(r.Value), len(want))
		}
	}
	fi, err := os.Stat(st.Newest.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size()%dioAlign != 0 || st.Torn != 0 || st.Padding >= dioAlign || st.Valid+st.Padding != fi.Size() {
		t.Fatalf("newest segment of %d bytes read as %+v", fi.Size(), st)
	}
	return st
}

// TestDirectWritesReadBack: an Interval log writing with direct I/O, its
// frames of every size (a few bytes into a block, whole blocks, several
// stages), reads back every record after each flush, and the segment ends
// in padding only; a new segment after it, the older one's padding is not
// damage.
func TestDirectWritesReadBack(t *testing.T) {
	l, path := openDirectLog(t)
	sizes := []func(int) int{
		func(int) int { return 1 },
		func(i int) int { return i % 5000 },
		func(int) int { return dioAlign },  // frames that cross blocks with each record
		func(i int) int { return 1 << 20 }, // a frame larger than the stage
		func(i int) int { return 7 * i % 300 },
	}
	size := func(i int) int { return sizes[i/10%len(sizes)](i) }
	n := 0
	for round := range 3 * len(sizes) {
		appendSized(t, l, n, n+10, size)
		n += 10
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		if st := checkRead(t, path, n, size); st.Valid != l.file.off {
			t.Fatalf("round %d: read %d valid bytes, the log wrote %d", round, st.Valid, l.file.off)
		}
	}
	l.Close(false)
	st := checkRead(t, path, n, size)
	l2, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour}, st)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close(false)
	appendSized(t, l2, n, n+10, size)
	if err := l2.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := checkRead(t, path, n+10, size); st.Segments != 2 {
		t.Fatalf("%+v, want two segments", st)
	}
}

// TestDirectTornEnd: a crash during a direct write leaves, after the last
// frame that was synced, part of the next one and the zeros of a block
// written in part, or zeros to a longer length (extended before its bytes
// were written): Read takes all of them for a torn end, never for records
// or for padding, and Open cuts it off.
func TestDirectTornEnd(t *testing.T) {
	l, path := openDirectLog(t)
	size := func(i int) int { return 50 + i }
	appendSized(t, l, 0, 20, size)
	l.Flush()
	seg := segmentPath(path, 1)
	synced := l.file.off
	appendSized(t, l, 20, 40, size)
	l.Flush()
	written := l.file.off
	l.Close(false)
	full, _ := os.ReadFile(seg)
	for cut := synced + 1; cut < written; cut += 7 {
		torn := slices.Clone(full[:cut])
		torn = append(torn, make([]byte, (dioAlign-len(torn)%dioAlign)%dioAlign)...)
		for _, extra := range []int{0, dioAlign} {
			b := append(slices.Clone(torn), make([]byte, extra)...)
			os.WriteFile(seg, b, 0o644)
			recs, st := mustRead(t, path)
			if len(recs) != 20 || st.Valid != synced || st.Torn != int64(len(b))-synced || st.Padding != 0 {
				t.Fatalf("cut at %d, %d zeros after: read %d records, %+v", cut, extra, len(recs), st)
			}
		}
	}
	// Zeros past the padding of the last block: torn in the newest
	// segment, damage in an older one.
	os.WriteFile(seg, append(slices.Clone(full), make([]byte, dioAlign)...), 0o644)
	recs, st := mustRead(t, path)
	if len(recs) != 40 || st.Torn != int64(len(full))+dioAlign-written {
		t.Fatalf("a block of zeros after the padding: read %d records, %+v", len(recs), st)
	}
	l2, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour}, st)
	if err != nil {
		t.Fatal(err)
	}
	l2.Close(false)
	if b, _ := os.ReadFile(seg); int64(len(b)) != written {
		t.Fatalf("segment 1 is %d bytes after Open, want its valid %d", len(b), written)
	}
	os.WriteFile(seg, append(slices.Clone(full), make([]byte, dioAlign)...), 0o644)
	if recs, _, err := Read(path); !errors.Is(err, ErrDamaged) || recs != nil {
		t.Fatalf("an older segment with zeros past its padding: read %d records, err %v; want ErrDamaged", len(recs), err)
	}
}

// TestDirectHeaderTorn: a segment created for direct writes whose header
// block was not written (zeros, or part of the header and zeros) is a
// torn creation, which Open removes.
func TestDirectHeaderTorn(t *testing.T) {
	for _, n := range []int{0, 5} {
		l, path := openDirectLog(t)
		appendSized(t, l, 0, 2, func(int) int { return 3 })
		l.Close(false)
		os.WriteFile(segmentPath(path, 2), append([]byte(header[:n]), make([]byte, dioAlign-n)...), 0o644)
		recs, st := mustRead(t, path)
		if len(recs) != 2 || st.Newest.N != 2 || st.Valid != 0 {
			t.Fatalf("header of %d bytes and zeros: read %d records, %+v", n, len(recs), st)
		}
		l2, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour}, st)
		if err != nil {
			t.Fatal(err)
		}
		l2.Close(false)
		if _, err := os.Stat(segmentPath(path, 2)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("header of %d bytes and zeros: segment 2 not removed (%v)", n, err)
		}
	}
}

// TestDirectWriteFailure: a direct write that fails (here: its file
// closed under it) fails its frame's appenders, and the log goes on in a
// new segment whose records read back with the older ones.
func TestDirectWriteFailure(t *testing.T) {
	l, path := openDirectLog(t)
	size := func(int) int { return 10 }
	appendSized(t, l, 0, 5, size)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	l.file.f.Close()
	r := rec(5)
	b, _ := l.Append(&r, false)
	if err := l.Flush(); err == nil || b.Wait() == nil {
		t.Fatalf("a write to a closed file did not fail: %v", err)
	}
	if l.file.n != 2 || !l.file.direct {
		t.Fatalf("after the failure the log writes segment %d (direct %v), want a new direct one", l.file.n, l.file.direct)
	}
	appendSized(t, l, 5, 9, size) // record 5 again, after the failure
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	checkRead(t, path, 9, size)
}

// TestDirectWriteFailureKeepsTheSegment: a direct write that fails after
// writing part of a frame (a full disk) is cut back to what was synced,
// and the next frame, written after the same block's bytes, reads back.
func TestDirectWriteFailureKeepsTheSegment(t *testing.T) {
	l, path := openDirectLog(t)
	size := func(i int) int { return 300 + i%7 }
	appendSized(t, l, 0, 5, size)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	full := errors.New("no space left on device")
	directWrite = func(f *os.File, b []byte, off int64) (int, error) {
		n, _ := f.WriteAt(b[:len(b)/2/dioAlign*dioAlign], off)
		return n, full
	}
	defer func() { directWrite = (*os.File).WriteAt }()
	r := rec(5)
	r.Value = make([]byte, 3*dioAlign) // crosses blocks: a part of it is written
	b, _ := l.Append(&r, false)
	if err := l.Flush(); !errors.Is(err, full) || !errors.Is(b.Wait(), full) {
		t.Fatalf("flush = %v, want %v", err, full)
	}
	directWrite = (*os.File).WriteAt
	if l.file.n != 1 {
		t.Fatalf("after a failure it could cut back, the log writes segment %d, want 1", l.file.n)
	}
	appendSized(t, l, 5, 9, size) // record 5 again, after the failure
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	checkRead(t, path, 9, size)
}
