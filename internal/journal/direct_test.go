package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/store"
)

// openDirectLog starts an Interval log that flushes only when told to, and
// skips the test where the file system refuses direct I/O (the log then
// writes through the page cache, as the other tests check).
func openDirectLog(t *testing.T) (*Log, string) {
	t.Helper()
	l, path := openQuietLog(t)
	if !l.file.direct {
		t.Skip("the file system of the test's temporary directory refuses direct I/O")
	}
	return l, path
}

// value is record i's value when its values are size(i) bytes and more.
func value(i int, size func(int) int) string {
	return fmt.Sprint(i, ":", strings.Repeat("v", size(i)))
}

// appendSized appends records i in [from, to) with their values, without
// waiting.
func appendSized(t *testing.T, l *Log, from, to int, size func(int) int) {
	t.Helper()
	for i := from; i < to; i++ {
		r := rec(i)
		r.Value = []byte(value(i, size))
		if _, err := l.Append(&r, false); err != nil {
			t.Fatal(err)
		}
	}
}

// underWriter runs set, a change to a test's hook, while no frame is
// written.
func underWriter(l *Log, set func()) {
	l.file.Lock()
	defer l.file.Unlock()
	set()
}

func mustFlush(t *testing.T, l *Log) {
	t.Helper()
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
}

// checkRead reads the log and checks that it holds records [0, n), each
// once, with their values (in any order within a frame: appenders on
// different processors fill different stripes), nothing torn, and the
// newest segment padded to whole blocks if padded (a log still writing
// it), else ending with its last frame.
func checkRead(t *testing.T, path string, n int, size func(int) int, padded bool) ReadStats {
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
		if want := value(i, size); string(r.Value) != want {
			t.Fatalf("record %q: %d bytes of value, want %d", r.Key, len(r.Value), len(want))
		}
	}
	fi, err := os.Stat(st.Newest.Path)
	if err != nil {
		t.Fatal(err)
	}
	ok := st.Torn == 0 && st.Valid+st.Padding == fi.Size()
	if padded {
		ok = ok && fi.Size()%dioAlign == 0 && st.Padding < dioAlign
	} else {
		ok = ok && st.Padding == 0
	}
	if !ok {
		t.Fatalf("newest segment of %d bytes read as %+v (padded %v)", fi.Size(), st, padded)
	}
	return st
}

// sizeToEnd returns the length of record i's value (as value writes it)
// that makes a frame of that record alone, written at off, end exactly
// at a multiple of to.
func sizeToEnd(t *testing.T, i int, off int64, to int) int {
	t.Helper()
	r := rec(i)
	r.Value = nil
	fixed := 1 + len(store.AppendRecord(nil, &r)) - 1 // the entry, less its value and the value's length
	prefix := len(fmt.Sprint(i, ":"))
	for v := 0; v < 2*to; v++ {
		n := prefix + v
		if (off+int64(frameHead+fixed+len(binary.AppendUvarint(nil, uint64(n)))+n))%int64(to) == 0 {
			return v
		}
	}
	t.Fatalf("no value of record %d ends a frame at %d on a multiple of %d", i, off, to)
	return 0
}

// TestDirectWritesReadBack: an Interval log writing with direct I/O, its
// frames of every size (a few bytes into a block, whole blocks, frames
// larger than the stage, one ending exactly at a block's end and one at
// the stage's), reads back every record after each flush, the segment
// padded to whole blocks; Close cuts the padding off, and a new segment
// after it reads back with it.
func TestDirectWritesReadBack(t *testing.T) {
	l, path := openDirectLog(t)
	sizes := map[int]int{} // record number -> value size
	size := func(i int) int { return sizes[i] }
	n := 0
	for round, fixed := range []func(int) int{
		func(int) int { return 1 },
		func(i int) int { return i % 5000 },
		func(int) int { return dioAlign }, // frames that cross blocks with each record
		func(int) int { return 1 << 20 },  // a frame larger than the stage
		func(i int) int { return 7 * i % 300 },
	} {
		for i := n; i < n+10; i++ {
			sizes[i] = fixed(i)
		}
		appendSized(t, l, n, n+10, size)
		n += 10
		mustFlush(t, l)
		checkRead(t, path, n, size, true)
		for _, to := range []int{dioAlign, stageSize} { // a frame of one record that ends on a block, and on the stage
			sizes[n] = sizeToEnd(t, n, l.file.off, to)
			appendSized(t, l, n, n+1, size)
			n++
			mustFlush(t, l)
			if l.file.off%int64(to) != 0 || l.file.stage.n != 0 {
				t.Fatalf("round %d: a frame meant to end on a multiple of %d ended at %d (stage holds %d)", round, to, l.file.off, l.file.stage.n)
			}
			if st := checkRead(t, path, n, size, true); st.Valid != l.file.off || st.Padding != 0 {
				t.Fatalf("round %d: %+v after a frame that ends at %d", round, st, l.file.off)
			}
		}
	}
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	st := checkRead(t, path, n, size, false)
	l2, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour}, st)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close(false)
	for i := n; i < n+10; i++ {
		sizes[i] = 100
	}
	appendSized(t, l2, n, n+10, size)
	mustFlush(t, l2)
	if st := checkRead(t, path, n+10, size, true); st.Segments != 2 {
		t.Fatalf("%+v, want two segments", st)
	}
}

// TestPaddingIsCutWhenASegmentIsOlder: a segment stops being the newest
// with its padding cut off, by Rotate, or by Open after a crash left it
// padded: older segments end with their last frame.
func TestPaddingIsCutWhenASegmentIsOlder(t *testing.T) {
	l, path := openDirectLog(t)
	size := func(int) int { return 100 }
	appendSized(t, l, 0, 10, size)
	if _, err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	appendSized(t, l, 10, 20, size)
	mustFlush(t, l)
	seg1, seg2 := segmentPath(path, 1), segmentPath(path, 2)
	if b, err := os.ReadFile(seg1); err != nil || len(b)%dioAlign == 0 || b[len(b)-1] == 0 {
		t.Fatalf("segment 1 kept its padding after Rotate (%d bytes, %v)", len(b), err)
	}
	crashed := crashCopy(t, path, seg1, seg2) // as a kill -9 leaves them: segment 2 padded
	st := checkRead(t, crashed, 20, size, true)
	l2, err := Open(Options{Path: crashed, Mode: Interval, Interval: time.Hour}, st)
	if err != nil {
		t.Fatal(err)
	}
	l2.Close(false)
	if b, _ := os.ReadFile(segmentPath(crashed, 2)); int64(len(b)) != st.Valid {
		t.Fatalf("segment 2 is %d bytes after Open, want its frames' %d", len(b), st.Valid)
	}
}

// crashCopy copies the segments of the log beside path to a new directory
// and returns the snapshot path there.
func crashCopy(t *testing.T, path string, segs ...string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), filepath.Base(path))
	for _, s := range segs {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(filepath.Dir(to), filepath.Base(s)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// TestDirectTornEnd: a crash during a direct write leaves, after the last
// frame that was synced, part of the next one and the zeros of a block
// written in part, or zeros to a longer length (extended before its bytes
// were written), or zeros to a length that is not whole blocks: Read takes
// all of them for a torn end, never for records or for padding, and Open
// cuts it off.
func TestDirectTornEnd(t *testing.T) {
	l, path := openDirectLog(t)
	size := func(i int) int { return 50 + i }
	appendSized(t, l, 0, 20, size)
	mustFlush(t, l)
	seg := segmentPath(path, 1)
	synced := l.file.off
	appendSized(t, l, 20, 40, size)
	mustFlush(t, l)
	written := l.file.off
	full, err := os.ReadFile(seg) // padded: the log is still writing it
	if err != nil || int64(len(full))%dioAlign != 0 {
		t.Fatalf("segment of %d bytes, %v", len(full), err)
	}
	l.Close(false)
	write := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(seg, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for cut := synced + 1; cut < written; cut += 7 {
		torn := slices.Clone(full[:cut])
		torn = append(torn, make([]byte, (dioAlign-len(torn)%dioAlign)%dioAlign)...)
		for _, extra := range []int{0, dioAlign} {
			b := append(slices.Clone(torn), make([]byte, extra)...)
			write(b)
			recs, st := mustRead(t, path)
			if len(recs) != 20 || st.Valid != synced || st.Torn != int64(len(b))-synced || st.Padding != 0 {
				t.Fatalf("cut at %d, %d zeros after: read %d records, %+v", cut, extra, len(recs), st)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		zeros int
	}{
		{"a block of zeros after the padding", len(full) - int(written) + dioAlign},
		{"zeros to a length that is not whole blocks", 100},
	} {
		write(append(slices.Clone(full[:written]), make([]byte, tc.zeros)...))
		recs, st := mustRead(t, path)
		if len(recs) != 40 || st.Torn != int64(tc.zeros) || st.Padding != 0 {
			t.Fatalf("%s: read %d records, %+v", tc.name, len(recs), st)
		}
	}
	_, st := mustRead(t, path)
	l3, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour}, st)
	if err != nil {
		t.Fatal(err)
	}
	l3.Close(false)
	if b, _ := os.ReadFile(seg); int64(len(b)) != written {
		t.Fatalf("segment 1 is %d bytes after Open, want its valid %d", len(b), written)
	}
	// An older segment ends where the header of the segment after it
	// says: what follows was never taken.
	write(append(slices.Clone(full[:written]), make([]byte, dioAlign)...))
	if recs, st := mustRead(t, path); len(recs) != 40 || st.Segments != 2 {
		t.Fatalf("an older segment with zeros past its end: read %d records, %+v; want 40", len(recs), st)
	}
}

// TestDirectHeaderTorn: a segment created for direct writes whose header
// block was not written (zeros, or part of the header and zeros) is a
// torn creation, which Open removes and makes again, with a header.
func TestDirectHeaderTorn(t *testing.T) {
	for _, n := range []int{0, 5} {
		l, path := openDirectLog(t)
		appendSized(t, l, 0, 2, func(int) int { return 3 })
		l.Close(false)
		if err := os.WriteFile(segmentPath(path, 2), append([]byte(headerMagic[:n]), make([]byte, dioAlign-n)...), 0o644); err != nil {
			t.Fatal(err)
		}
		recs, st := mustRead(t, path)
		if len(recs) != 2 || st.Newest.N != 2 || st.Valid != 0 {
			t.Fatalf("header of %d bytes and zeros: read %d records, %+v", n, len(recs), st)
		}
		l2, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour}, st)
		if err != nil {
			t.Fatal(err)
		}
		l2.Close(false)
		if recs, st := mustRead(t, path); len(recs) != 2 || st.Segments != 2 || st.Newest.N != 2 || st.Valid != int64(headerLen) {
			t.Fatalf("header of %d bytes and zeros, then Open: read %d records, %+v; want segment 2 made again", n, len(recs), st)
		}
	}
}

// TestNoDirectIOFallsBackToThePageCache: on a file system that refuses
// direct I/O (Linux creates the file, then refuses), an Interval log
// writes through the page cache, from its first segment and after each
// change of segment.
func TestNoDirectIOFallsBackToThePageCache(t *testing.T) {
	openDirectFile = func(p string) (*os.File, error) {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return nil, err
		}
		f.Close()
		return nil, &os.PathError{Op: "open", Path: p, Err: syscall.EINVAL}
	}
	defer func() { openDirectFile = openDirect }()
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(false)
	size := func(int) int { return 10 }
	appendSized(t, l, 0, 5, size)
	if _, err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	appendSized(t, l, 5, 10, size)
	mustFlush(t, l)
	if l.file.direct || l.Stats().Direct {
		t.Fatal("the log writes with direct I/O on a file system that refuses it")
	}
	checkRead(t, path, 10, size, false)
}

// TestDirectWriteFailureKeepsTheSegment: a direct write that fails after
// writing part of a frame (a full disk), here after the frame's first full
// stage was written, is cut back to what was synced, and the next frame,
// written after the same block's bytes, reads back.
func TestDirectWriteFailureKeepsTheSegment(t *testing.T) {
	l, path := openDirectLog(t)
	size := func(i int) int {
		if i == 5 {
			return 6 << 20 // larger than the stage: two writes
		}
		return 300 + i%7
	}
	appendSized(t, l, 0, 5, size)
	mustFlush(t, l)
	full := errors.New("no space left on device")
	var writes atomic.Int32
	directWrite = func(f *os.File, b []byte, off int64) (int, error) {
		if writes.Add(1) == 1 {
			return f.WriteAt(b, off)
		}
		n, _ := f.WriteAt(b[:len(b)/2/dioAlign*dioAlign], off)
		return n, full
	}
	defer underWriter(l, func() { directWrite = (*os.File).WriteAt })
	r := rec(5)
	r.Value = []byte(value(5, size))
	b, _ := l.Append(&r, false)
	// The log's goroutine may write the frame before Flush does (its
	// large record fills the stripe): Flush then writes nothing. It may
	// write it again, failing, before the hook is put back (a failed
	// frame's records are written again with the next).
	if err := l.Flush(); err != nil && !errors.Is(err, full) || !errors.Is(b.Wait(), full) || writes.Load() < 2 {
		t.Fatalf("flush = %v, the frame's error %v after %d writes, want %v after 2", err, b.Wait(), writes.Load(), full)
	}
	// Under the writer's lock: the log's goroutine writes the failed
	// frame's records again when it is woken (the large record woke it).
	underWriter(l, func() { directWrite = (*os.File).WriteAt })
	if l.file.n != 1 {
		t.Fatalf("after a failure it could cut back, the log writes segment %d, want 1", l.file.n)
	}
	appendAfterFailure(t, l, 6, size, full) // record 5 goes with it: the failed frame's records are written again
	appendSized(t, l, 7, 9, size)
	mustFlush(t, l)
	checkRead(t, path, 9, size, true)
}

// appendAfterFailure appends record i after a frame failed with want:
// the append reports the failure (found by review: with Interval, writes
// went on returning nil while every frame failed), and takes the record
// all the same, which the next frame makes durable; after it, appends
// report nothing.
func appendAfterFailure(t *testing.T, l *Log, i int, size func(int) int, want error) {
	t.Helper()
	r := rec(i)
	r.Value = []byte(value(i, size))
	if _, err := l.Append(&r, false); !errors.Is(err, want) {
		t.Fatalf("an append after a failed frame: %v, want %v", err, want)
	}
	mustFlush(t, l)
	if err := l.failing.Load(); err != nil {
		t.Fatalf("a frame written, the log still says its last sync failed: %v", *err)
	}
}

// TestFailedSegmentChangeKeepsTheSegment: a new segment that cannot be
// made (its header's write fails, and so does the page cache's) leaves the
// log writing the current one, where later frames follow the earlier.
func TestFailedSegmentChangeKeepsTheSegment(t *testing.T) {
	l, path := openDirectLog(t)
	size := func(int) int { return 40 }
	appendSized(t, l, 0, 50, size)
	mustFlush(t, l)
	broken := errors.New("input/output error")
	directWrite = func(f *os.File, b []byte, off int64) (int, error) {
		if off == 0 && f.Name() != segmentPath(path, 1) {
			return 0, broken
		}
		return f.WriteAt(b, off)
	}
	openBufferedFile = func(string) (*os.File, error) { return nil, broken }
	defer func() { directWrite, openBufferedFile = (*os.File).WriteAt, openBuffered }()
	if _, err := l.Rotate(); !errors.Is(err, broken) {
		t.Fatalf("Rotate = %v, want %v", err, broken)
	}
	directWrite, openBufferedFile = (*os.File).WriteAt, openBuffered
	appendSized(t, l, 50, 60, size)
	mustFlush(t, l)
	if st := checkRead(t, path, 60, size, true); st.Segments != 1 {
		t.Fatalf("%+v, want the one segment", st)
	}
}

// TestDirectWriteFailure: a direct write that fails (here: its file
// closed under it) fails its frame's appenders, and the log goes on in a
// new segment whose records read back with the older ones.
func TestDirectWriteFailure(t *testing.T) {
	l, path := openDirectLog(t)
	size := func(int) int { return 10 }
	appendSized(t, l, 0, 5, size)
	mustFlush(t, l)
	l.file.f.Close()
	r := rec(5)
	r.Value = []byte(value(5, size))
	b, _ := l.Append(&r, false)
	l.Flush() // the log's goroutine may have written the frame before: then Flush writes nothing
	if b.Wait() == nil {
		t.Fatal("a write to a closed file did not fail")
	}
	if l.file.n != 2 || !l.file.direct {
		t.Fatalf("after the failure the log writes segment %d (direct %v), want a new direct one", l.file.n, l.file.direct)
	}
	appendAfterFailure(t, l, 6, size, os.ErrClosed) // record 5 goes with it: the failed frame's records are written again
	appendSized(t, l, 7, 9, size)
	mustFlush(t, l)
	checkRead(t, path, 9, size, true)
}
