// Package journal is a member's write log: the writes made since its last
// snapshot, appended to files beside it, so that a crash (kill -9, a power
// cut, the out-of-memory killer) loses none of them, or none older than an
// interval the user chose.
//
// # Files
//
// The log lives in segments named after the snapshot: "<snapshot>.log.<n>",
// n counting up from 1. A member writes to one segment, the newest; a
// snapshot starts the next one first ([Log.Rotate]) and, once the
// snapshot is durable, removes the older ones ([Log.RemoveBefore]): every
// record they hold was applied before the rotation, so the snapshot holds
// it. A restart restores the snapshot and replays every segment, oldest
// first ([Read]); records are merged by last-writer-wins, so a record held
// twice (in the snapshot and a segment the crash left behind) does no harm.
//
// A segment is a header, "bcache log\n", a version byte (4), a nonce
// of 8 random bytes drawn for the segment, the number of the segment
// written before it and the length at which that one ends (8 bytes each,
// little-endian; 0 and 0 for none, the number before Options.From and
// 2^64-1 for none but a snapshot that holds what came before), and a CRC-32C of the version byte and
// what follows it (4 bytes, little-endian), then frames, each written by
// one write call and then synced:
//
//	magic    "bcLF"
//	length   4 bytes, little-endian: the payload's length
//	head sum 4 bytes, little-endian CRC-32C of the segment's nonce and
//	         the length
//	checksum 4 bytes, little-endian CRC-32C of the segment's nonce, the
//	         length and the payload
//	payload  entries, each an origin byte (0: a write made here, 1: a
//	         record received from a peer) and a record in the snapshot's
//	         record encoding (store.AppendRecord)
//
// The head's own checksum (version 4) lets the search for a frame after
// a bad one tell a frame's head from a value's bytes at the cost of 4
// bytes' checksum, whatever the bytes: before it, a value full of magics
// with lengths that fit ran the search out of its budget, and one damaged
// byte before such a value made every acknowledged frame after it read
// as a torn end (found by review). The previous segment's length lets
// Read find an older segment cut at the end of a frame, which read as
// whole (found by review), and read an older segment only to where it
// ended: a frame whose write failed and that no truncate took off stays
// after it, and is not damage.
// The nonce keeps the bytes of a value from passing for a frame: a torn
// frame whose value held a frame's bytes was read as a good frame after a
// bad one, that is, as damage. The header's own checksum keeps a damaged
// nonce from making every frame fail its check, the segment's frames
// then read as one torn end and silently dropped (found by review).
// Version 3 segments (no head sum, no previous segment), version 2
// segments (nor the header's
// checksum) and version 1 segments (no nonce either; the checksum of the
// length and payload alone), as the releases before wrote them, are read
// as before, except that a search that runs out of its budget in them is
// damage now, not a torn end; those releases take a version 4 segment
// for damage.
//
// One frame holds every record appended while the previous frame was
// being written and synced (group commit): concurrent writers share a
// sync.
//
// # Direct I/O
//
// An [Interval] log on Linux writes its segments with direct I/O, which
// moves the bytes from the log's buffer to the disk without the page
// cache: at full speed (150-190 MB a second of records) copying them into
// the page cache and dirtying its pages took a tenth of the process's
// CPU, about ten times what direct writes of a few MiB cost. Direct writes
// are of whole blocks (dioAlign), so each write ends with the frame's last
// block padded with zeros, and the next write starts by writing that
// block again, with the frame after it: the segment being written ends
// with fewer than dioAlign zero bytes after its last frame, at a length
// that is a multiple of dioAlign, and [Read] takes them for padding, not
// damage. A segment is cut to its last frame when it stops being the
// newest ([Log.Rotate], [Log.Close], [Open]), so that older segments end
// as the releases before direct I/O wrote them (those releases cannot
// read a version 2 segment all the same: see Files). A
// file system that refuses direct I/O (ramfs, tmpfs before Linux 6.6,
// some network and FUSE file systems) is written through the page cache,
// as an [EveryWrite] log always is: its frames are small, and a direct
// write's fixed cost is larger than a small buffered one's.
//
// # Damage
//
// A crash in the middle of a write leaves the newest segment with a torn
// end: a frame cut short, or of bytes that do not check, with nothing
// written after it. [Read] ignores a torn end and reports it; [Open]
// cuts it off before it starts a new segment. Anything else is damage: a
// bad frame followed by a frame head that checks (or, in segments before
// version 4, a frame that checks, or bytes the search ran out of its
// budget on), a bad frame whose length fits followed by bytes other than
// a direct write's padding, a torn end in an older segment, a bad
// header, a segment missing between two others, an older segment shorter
// than the header of the one after it says. [Read] returns an error
// wrapping [ErrDamaged] and no record, so that nothing is half applied.
// A damaged last frame with nothing after it cannot be told from a torn
// one. A header that fails its checksum is damage, unless nothing was
// written after it in the newest segment (a crash as the segment was
// created).
package journal

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/near"
	"github.com/bcache-go/bcache/internal/store"
)

const (
	headerMagic = "bcache log\n"
	headerV1    = headerMagic + "\x01"
	nonceLen    = 8
	headerLenV2 = len(headerMagic) + 1 + nonceLen
	headerLenV3 = headerLenV2 + 4  // version 3: a checksum of the version and nonce
	headerLen   = headerLenV2 + 20 // version 4: the previous segment's number and length, and the checksum
	version     = 4                // of the segments written
	frameMagic  = "bcLF"
	frameHeadV3 = len(frameMagic) + 8 // versions 1 to 3: magic, length, checksum
	frameHead   = frameHeadV3 + 4     // version 4: magic, length, the length's checksum, checksum
	// flushAt is the bytes waiting (its share in one stripe) that make an
	// Interval log write before its interval; an append waits while its
	// stripe holds its share of waitAt.
	flushAt = 4 << 20
	waitAt  = 64 << 20
	// maxRecord bounds an encoded record: 64 KiB of key, 16 MiB of value
	// (the sync protocol's limits), the rest.
	maxRecord = 64<<10 + 16<<20 + maxRecordOverhead
	// maxFrame bounds a frame's payload on reading: no frame a writer
	// makes is larger (every stripe under its share of waitAt, plus one
	// record each that took it past; at most maxStripes stripes).
	maxFrame = waitAt + maxStripes*maxRecord
	// dioAlign is the block of direct I/O: the offset, length and memory
	// of every direct write are multiples of it (of every block size in
	// use, 512 or 4096 bytes).
	dioAlign = 4096
	// stageSize is the most a direct write writes at once: each write
	// costs about 50 us of CPU however small it is (on the VM this was
	// measured on), and a few MiB make that a small part of it.
	stageSize = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrDamaged is wrapped by every error about a damaged log.
var ErrDamaged = errors.New("damaged write log")

// Segment is one file of the log.
type Segment struct {
	Path string
	N    uint64 // its number; later segments have higher ones
}

// Segments returns the log's segments beside the snapshot at path, oldest
// first.
func Segments(path string) ([]Segment, error) {
	dir, prefix := filepath.Dir(path), filepath.Base(path)+".log."
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []Segment
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(name, prefix), 10, 64)
		if err != nil || n == 0 {
			continue // not a segment (a file moved aside, say)
		}
		segs = append(segs, Segment{Path: filepath.Join(dir, name), N: n})
	}
	slices.SortFunc(segs, func(a, b Segment) int { return cmp.Compare(a.N, b.N) })
	return segs, nil
}

// maxSegment bounds the segment numbers Read takes (it takes those below
// it) and the log starts (those below it too). A newest segment numbered
// just below it, after which Open could start none, Read takes for
// damage, as maxSegment itself: taken, New failed at every start whatever
// the damage policy.
const maxSegment = 1 << 53

// MaxFrom is the highest Options.From a log is numbered from: half of
// the numbers Read takes are left for its segments after it.
const MaxFrom = maxSegment / 2

// segmentPath is the path of segment n of the log beside path.
func segmentPath(path string, n uint64) string { return fmt.Sprintf("%s.log.%d", path, n) }

// ReadStats says what [Read] found.
type ReadStats struct {
	Segments int
	Records  int
	// Newest is the newest segment (zero if none); Torn the bytes of its
	// torn end, ignored, Padding the zeros a direct write left after its
	// last frame (see Direct I/O), and Valid the bytes before either (its
	// length if none).
	Newest               Segment
	Torn, Padding, Valid int64
	// FollowsSnapshot says the oldest segment's header names a segment
	// before it, or says a snapshot held what came before it (see
	// Options.Snapshot): the segments before it were removed because a
	// snapshot holds their records, so a log found without a snapshot
	// and FollowsSnapshot lost them. (False for segments of releases
	// before version 4.)
	FollowsSnapshot bool
	// Before is, if the newest segment's header is torn (Valid 0), the
	// length of the part of the segment before it that checks: Open cuts
	// it there.
	Before int64
	// Predecessor is the number of the segment the oldest segment's
	// header names before it, 0 if it names none (the first segment of
	// a log started with no snapshot, or by a release before version 4):
	// the segments up to it were removed once a snapshot held their
	// records, or, for a log started after a snapshot, numbered below
	// Options.From, were held by that snapshot.
	Predecessor uint64
}

// afterSnapshot is the previous length in the header of a segment
// started with no segment before it, by a member that holds a snapshot.
const afterSnapshot = math.MaxUint64

// Entry is a record of the log.
type Entry struct {
	crdt.Record
	Received bool // from a peer; else written here
}

// Read reads every segment of the log beside the snapshot at path and
// returns their entries, oldest segment first, frame after frame. Records
// are not in the order appended: a frame holds its stripes' records
// stripe after stripe, the records of failed frames come after the next
// frame's, and one goroutine's appends may go to different stripes (near
// hands them out; a collection or a move to another processor changes
// which), so that a later one is read first, in the same frame or an
// earlier one (TestOneWritersRecordsMayReadOutOfOrder). Replay merges them
// by their versions. It
// returns no entry and an error wrapping ErrDamaged if any segment is
// damaged; a torn end of the newest segment is not damage.
func Read(path string) ([]Entry, ReadStats, error) {
	var st ReadStats
	segs, err := Segments(path)
	if err != nil {
		return nil, st, err
	}
	// A newest segment whose header is torn was being created when the
	// process ended: the one before it was the newest, its end torn or
	// not (a frame whose write failed, and the next segment's creation
	// cut short on its failure path: it read as damage in an older
	// segment, found by review), and is read so.
	newest := len(segs) - 1
	if newest > 0 {
		// A torn header is at most one block long (a direct write's):
		// a longer file is not read twice.
		if info, err := os.Stat(segs[newest].Path); err != nil {
			return nil, st, err
		} else if info.Size() <= dioAlign {
			b, err := os.ReadFile(segs[newest].Path)
			if err != nil {
				return nil, st, err
			}
			if headerTorn(b) {
				newest--
			}
		}
	}
	var recs entryList
	for i, seg := range segs {
		if seg.N >= maxSegment {
			// No log numbers its segments so far (one a second from
			// MaxFrom would take millions of years); the next after
			// it would wrap to 0, which Segments skips, and its
			// writes would never be read (found by review). Nor to
			// maxSegment itself, after which Open could start none,
			// and failed at every start, whatever the damage policy
			// (found by review).
			return nil, st, fmt.Errorf("%w: %s: a segment number of %d or more", ErrDamaged, seg.Path, uint64(maxSegment))
		}
		if i == len(segs)-1 && seg.N == maxSegment-1 {
			// The newest, numbered so that Open can start no segment
			// after it: taken, New failed at every start whatever the
			// damage policy (found by review). Damage, as maxSegment
			// itself is: DamageReset moves it aside.
			return nil, st, fmt.Errorf("%w: %s: a newest segment numbered %d, after which no segment can start", ErrDamaged, seg.Path, uint64(maxSegment-1))
		}
		if i > 0 && seg.N != segs[i-1].N+1 {
			// Segments are made one after another and removed oldest
			// first: one missing from the middle held writes the
			// snapshot may not hold.
			return nil, st, fmt.Errorf("%w: segment %d missing (between %s and %s)", ErrDamaged, segs[i-1].N+1, segs[i-1].Path, seg.Path)
		}
		b, unmap, err := mapFile(seg.Path)
		if err != nil {
			return nil, st, err
		}
		err = readMapped(&recs, &st, b, seg, segs, i, newest)
		unmap()
		if err != nil {
			return nil, st, err
		}
	}
	st.Segments, st.Records = len(segs), recs.n
	return recs.all(), st, nil
}

// entryList collects the entries Read decodes in chunks, which it copies
// once into a slice of their number: appended to one slice, every growth
// copied it (by a quarter at a time), and a log of small records took 64
// times its size in allocations, 22 times live, before replay copied its
// records once more (found by review: 2 GiB for a 32 MiB log).
type entryList struct {
	chunks [][]Entry
	n      int
}

// maxEntryChunk bounds the entries of a chunk (about 350 KiB of them).
const maxEntryChunk = 4096

func (l *entryList) add(e Entry) {
	if k := len(l.chunks); k == 0 || len(l.chunks[k-1]) == cap(l.chunks[k-1]) {
		l.chunks = append(l.chunks, make([]Entry, 0, min(max(l.n, 16), maxEntryChunk)))
	}
	c := &l.chunks[len(l.chunks)-1]
	*c = append(*c, e)
	l.n++
}

// all returns the entries in one slice, letting go of the chunks as it
// copies them.
func (l *entryList) all() []Entry {
	if l.n == 0 {
		return nil
	}
	out := make([]Entry, 0, l.n)
	for i, c := range l.chunks {
		out = append(out, c...)
		l.chunks[i] = nil
	}
	return out
}

// readMapped is readSegmentFile over bytes that may be mapped from the
// file: a fault reading them (the file cut under the mapping, a disk's
// error), which ends the process by default, is an error (found by
// review): see faultError.
func readMapped(recs *entryList, st *ReadStats, b []byte, seg Segment, segs []Segment, i, newest int) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
			err = faultError(seg.Path, r)
		}
	}()
	return readSegmentFile(recs, st, b, seg, segs, i, newest)
}

// faultError is the error of fault, met reading the mapping of the file
// at path. A fault says nothing of its cause: a disk's bad block, but as
// well a network file system's timeout or stale handle, a FUSE daemon
// gone, or the file cut under the mapping, none of them the device's
// report that it lost the data. Reported as EIO whatever its cause, it
// was taken for damage, and DamageReset moved good files aside for a
// network file system's passing error (found by review). The file is
// read with read(2), whose error is the system's (EIO for a bad block);
// if that read passes, the error is the file system's (an fs.PathError)
// with no errno: an I/O error, read again, and not the device's EIO.
func faultError(path string, fault any) error {
	f, err := os.Open(path)
	if err == nil {
		_, err = io.Copy(io.Discard, f) // streamed: a segment may be larger than memory
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("%w (after a fault reading its mapping: %v)", err, fault)
	}
	return &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("a fault reading its mapping (%v), which a read of the file did not meet", fault)}
}

// readSegmentFile is Read's work on segs[i], whose bytes are b: it
// appends its entries to recs, and fills in st.
func readSegmentFile(recs *entryList, st *ReadStats, b []byte, seg Segment, segs []Segment, i, newest int) error {
	last := i >= newest
	exact := false // b ends where the next segment's header says: with a frame, never padding
	if !last {
		end, err := endOf(seg, segs[i+1])
		switch {
		case err != nil: // damage, or the next segment unreadable now
			return err
		case end < 0: // the next segment does not say
		case int64(len(b)) < end:
			// Cut short: at a frame's end, it read as whole.
			return fmt.Errorf("%w: %s: %d bytes, and %s says it ended at %d", ErrDamaged, seg.Path, len(b), segs[i+1].Path, end)
		default:
			// What follows (a frame whose write or sync failed, and
			// that no truncate could take off) was never taken.
			b, exact = b[:end], true
		}
	}
	if i == 0 {
		if _, f, ok := readHeader(b); ok && f.chained {
			st.FollowsSnapshot = f.prevN > 0 || f.prevLen == afterSnapshot
			st.Predecessor = f.prevN
		}
	}
	// Only the newest file may have a torn header: the one before a
	// torn newest was made, header and all, before it was (read as
	// torn too, its records went unreported, and Open refused what
	// Read gave, at every start: found by review).
	valid, err := readSegment(recs, b, last, i == len(segs)-1, exact)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDamaged, seg.Path, err)
	}
	switch {
	case i == len(segs)-1:
		st.Newest, st.Valid = seg, int64(valid)
		if padding(b, valid) {
			st.Padding = int64(len(b) - valid)
		} else {
			st.Torn = int64(len(b) - valid)
		}
	case last: // before a newest whose header is torn
		st.Before = int64(valid)
	}
	return nil
}

// headerTorn reports whether b, a segment, has a header cut short, or one
// that fails its checksum with nothing written after it: its creation
// was cut short.
func headerTorn(b []byte) bool {
	if _, _, ok := readHeader(b); ok {
		return false
	}
	if n := checkedHeaderLen(b); n > 0 && len(b) >= n {
		return creationLen(len(b)) && len(bytes.TrimLeft(b[n:], "\x00")) == 0
	}
	return tornHeader(b)
}

// creationLen reports whether a file of n bytes may be a segment whose
// creation was cut short: a buffered creation writes the header alone (n
// at most headerLen), a direct one a block (dioAlign, or, written in
// part, whole sectors of it). A file of another length was longer than
// its header when it was synced, frames after it: zeroed, or with a
// header that fails its check, it is damage (read as a torn creation,
// its acknowledged frames were dropped, and Open removed the segment:
// found by review).
func creationLen(n int) bool { return n <= headerLen || n <= dioAlign && n%512 == 0 }

// endOf returns the length at which seg ends by the header of next, the
// segment written after it; -1 if next's header does not say (written by
// a release before version 4, or torn). Its errors are damage (wrapping
// ErrDamaged), or the file system's, as they came (a file that cannot be
// opened now is not damage).
func endOf(seg, next Segment) (int64, error) {
	f, err := os.Open(next.Path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b := make([]byte, headerLen)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, err
	}
	_, h, ok := readHeader(b[:n])
	switch {
	case !ok || !h.chained:
		return -1, nil
	case h.prevN != seg.N || h.prevLen > math.MaxInt64: // afterSnapshot too: a segment started with none before it
		return 0, fmt.Errorf("%w: %s follows segment %d, ending at %d, not %s", ErrDamaged, next.Path, h.prevN, h.prevLen, seg.Path)
	}
	return int64(h.prevLen), nil
}

// readSegment appends the entries of segment b to dst and returns the
// length of its part that checks: all of it but a direct write's padding,
// or, if b is the newest segment read (last), all but a torn end; its
// header may be torn only if it is the newest file (newest). With exact,
// b ends where the header of the segment after it says, which is the end
// of its last frame (a length that was synced, padding excluded): zeros
// before it are frames lost, not padding (a frame lost to zeros at a
// length that was a multiple of a block read as padding, its
// acknowledged records dropped unreported: found by review).
func readSegment(dst *entryList, b []byte, last, newest, exact bool) (int, error) {
	off, f, ok := readHeader(b)
	// A torn header is at most a block long (a direct write's), as Read
	// checks: a longer file that reads as one is damage (it was read as
	// torn, its frames dropped unreported, and Open cut the segment
	// before it to nothing: found by review).
	torn := newest && len(b) <= dioAlign
	if n := checkedHeaderLen(b); !ok && n > 0 && len(b) >= n {
		// A version 3 or 4 header that fails its check: torn only if
		// nothing was written after it (its segment was being created).
		if torn && creationLen(len(b)) && len(bytes.TrimLeft(b[n:], "\x00")) == 0 {
			return 0, nil
		}
		return 0, errors.New("bad header (its checksum fails)")
	}
	if !ok {
		// Created, and its header cut short: written in part, or, by a
		// direct write, the file's length extended before its bytes.
		if torn && tornHeader(b) {
			return 0, nil
		}
		return 0, errors.New("not a write-log segment (bad header)")
	}
	for off < len(b) {
		payload, ok := frameAt(b, off, f)
		if !ok {
			if !exact && padding(b, off) {
				return off, nil
			}
			if !last {
				return off, fmt.Errorf("bad frame at byte %d of an older segment", off)
			}
			if err := afterBadFrame(b, off, f); err != nil {
				return off, err
			}
			return off, nil // a torn end
		}
		var err error
		if err = decodeEntries(dst, payload); err != nil {
			// It checked: it was written so, not torn.
			return off, fmt.Errorf("frame at byte %d: %v", off, err)
		}
		off += f.head + len(payload)
	}
	return off, nil
}

// afterBadFrame says whether the bad frame at off of the newest segment
// is damage rather than a torn end: a crash tears the last write alone,
// so a frame written after it says it was not the last, in any version.
// A tear leaves a prefix of the write (a killed process), or, after a
// power cut, any of its pages or sectors, the others zeros: the
// version 4 rules hold for either (afterBadFrameV4). In older segments:
// the frame where the bad one ends by its length (a damaged payload) or
// any frame after it that checks, or a search that ran out of its budget
// (bytes of a value can hold many magics and lengths, each costing the
// checksum of the length it claims): taken for a torn end, such bytes
// made one damaged byte before them drop every acknowledged frame after
// it, and Open cut them off the disk (found by review). Reported as
// damage, a torn end of such bytes in a segment of a release before this
// one is read by no one but an operator.
func afterBadFrame(b []byte, off int, f format) error {
	if f.headSum {
		return afterBadFrameV4(b, off, f)
	}
	if end, ok := frameEnd(b, off, f); ok {
		if _, ok := frameAt(b, end, f); ok {
			return fmt.Errorf("bad frame at byte %d, good frame at byte %d", off, end)
		}
	}
	switch at, out, _ := scanFrames(b, off+1, f); {
	case at >= 0:
		return fmt.Errorf("bad frame at byte %d, good frame at byte %d", off, at)
	case out:
		return fmt.Errorf("bad frame at byte %d, and too many frame magics after it to tell a torn end from damage", off)
	}
	return nil
}

// afterBadFrameV4 is afterBadFrame for a version 4 segment. Damage is:
//   - a frame head that checks anywhere after the bad frame: a value's
//     bytes cannot pass for one (its checksum starts from the segment's
//     nonce), and checking a candidate costs a checksum of 4 bytes, so
//     the search is linear whatever the bytes;
//   - a bad frame whose head checks and whose length fits, followed by
//     bytes other than a direct write's padding: written after it (with a
//     head that does not check, a length that fits means nothing: a torn
//     head's length may read as its low byte alone, found by review);
//   - a bad frame whose length and payload check against its checksum,
//     its head's own sum damaged: no tear leaves both checksums written
//     and one wrong;
//   - a bad frame whose head's sum and checksum check, its magic damaged
//     (a byte neither the magic's nor a zero): the same;
//   - a bad frame whose head's sum checks with another length than the
//     one it holds, the frame whole and checking with that length: its
//     length was damaged (the head's sum is of one length of 2^32, so
//     there is at most one; found by trying the lengths that fit).
func afterBadFrameV4(b []byte, off int, f format) error {
	if at := nextHead(b, off+1, f); at >= 0 {
		return fmt.Errorf("bad frame at byte %d, a frame at byte %d", off, at)
	}
	if len(b)-off < frameHead {
		return nil
	}
	h := b[off+len(frameMagic) : off+frameHead]
	if m := b[off : off+len(frameMagic)]; string(m) != frameMagic {
		// A magic with a byte that is neither its own nor a zero (a
		// sector the tear did not write), the head's sum and the frame
		// checking: damaged, not torn (read as a torn end, the frame's
		// acknowledged records were cut off: found by review).
		if !tornMagic(m) && crc32.Update(f.seed, castagnoli, h[:4]) == binary.LittleEndian.Uint32(h[4:]) {
			if n := binary.LittleEndian.Uint32(h); uint64(n) <= uint64(min(len(b)-off-frameHead, maxFrame)) &&
				sumChecks(b[off+frameHead:off+frameHead+int(n)], h[:4], h[8:], f.seed) {
				return fmt.Errorf("bad frame magic at byte %d (its frame checks)", off)
			}
		}
		return nil
	}
	end, fits := frameEnd(b, off, f)
	switch {
	case fits && headAt(b, off, f) && !padding(b, end) && len(bytes.TrimLeft(b[end:], "\x00")) > 0:
		return fmt.Errorf("bad frame at byte %d, followed by %d bytes written after it", off, len(b)-end)
	case fits && sumChecks(b[off+frameHead:end], h[:4], h[8:], f.seed):
		return fmt.Errorf("bad frame head at byte %d (its frame checks)", off)
	case headAt(b, off, f):
		return nil
	}
	n := lengthFor(f.seed, binary.LittleEndian.Uint32(h[4:]))
	var l [4]byte
	binary.LittleEndian.PutUint32(l[:], n)
	if uint64(n) <= uint64(min(len(b)-off-frameHead, maxFrame)) && sumChecks(b[off+frameHead:off+frameHead+int(n)], l[:], h[8:], f.seed) {
		return fmt.Errorf("bad frame length at byte %d (its frame checks with a length of %d)", off, n)
	}
	return nil
}

// tornMagic reports whether m, a frame's magic that is not one, may be
// one torn by a power cut: each of its bytes is the magic's or a zero.
func tornMagic(m []byte) bool {
	for i, c := range m {
		if c != 0 && c != frameMagic[i] {
			return false
		}
	}
	return true
}

// lengthFor returns the length whose head's sum, from seed, is sum: the
// CRC of 4 bytes maps them one to one onto its values, and is undone bit
// by bit (the register run backwards through the 32 bits the length
// shifted in).
func lengthFor(seed, sum uint32) uint32 {
	const poly = 0x82f63b78 // Castagnoli, reflected
	r := ^sum
	for range 32 {
		if r&0x80000000 != 0 {
			r = (r^poly)<<1 | 1
		} else {
			r <<= 1
		}
	}
	return r ^ ^seed
}

// sumChecks reports whether the frame checksum sum (4 bytes) is that of
// a frame of length l (4 bytes) and payload p, from seed.
func sumChecks(p, l, sum []byte, seed uint32) bool {
	return crc32.Update(crc32.Update(seed, castagnoli, l), castagnoli, p) == binary.LittleEndian.Uint32(sum)
}

// decodeEntries appends the entries of a frame's payload to dst.
func decodeEntries(dst *entryList, b []byte) error {
	for len(b) > 0 {
		if b[0] > 1 {
			return fmt.Errorf("bad origin %d", b[0])
		}
		r, n, err := store.DecodeRecord(b[1:])
		if err != nil {
			return err
		}
		dst.add(Entry{Record: r, Received: b[0] == 1})
		b = b[1+n:]
	}
	return nil
}

// padding reports whether b[off:] is the padding of a direct write: fewer
// than dioAlign zero bytes to a length that is a multiple of it.
func padding(b []byte, off int) bool {
	if off >= len(b) || len(b)%dioAlign != 0 || len(b)-off >= dioAlign {
		return false
	}
	for _, c := range b[off:] {
		if c != 0 {
			return false
		}
	}
	return true
}

// readHeader returns the length of segment b's header and the checksum
// its frames' checksums start from (that of its nonce; 0 for version 1),
// false if b starts with no header.
func readHeader(b []byte) (n int, f format, ok bool) {
	v := len(headerMagic) // the version byte's offset
	switch n := checkedHeaderLen(b); {
	case n > 0 && len(b) >= n:
		if crc32.Checksum(b[v:n-4], castagnoli) != binary.LittleEndian.Uint32(b[n-4:]) {
			return 0, format{}, false
		}
		f := format{seed: crc32.Checksum(b[v+1:headerLenV2], castagnoli), head: frameHeadV3}
		if b[v] == 4 {
			f.head, f.headSum, f.chained = frameHead, true, true
			f.prevN = binary.LittleEndian.Uint64(b[headerLenV2:])
			f.prevLen = binary.LittleEndian.Uint64(b[headerLenV2+8:])
		}
		return n, f, true
	case len(b) >= headerLenV2 && string(b[:v]) == headerMagic && b[v] == 2:
		// Followed by a frame or nothing, as version 1: a version 4
		// header whose version byte reads 2 is followed by the previous
		// segment's number, and read as version 2 every frame failed
		// its check, the segment one torn end (found by review).
		if !frameOrNothing(b[headerLenV2:]) {
			return 0, format{}, false
		}
		return headerLenV2, format{seed: crc32.Checksum(b[v+1:headerLenV2], castagnoli), head: frameHeadV3}, true
	case len(b) >= len(headerV1) && string(b[:len(headerV1)]) == headerV1:
		// A version 1 header is followed by a frame or by nothing: a
		// version byte 3 or 2 with a bit flipped to 1 is not (its nonce
		// follows), and read as version 1 it made every frame fail its
		// check, the segment one torn end (found by review).
		if !frameOrNothing(b[len(headerV1):]) {
			return 0, format{}, false
		}
		return len(headerV1), format{head: frameHeadV3}, true
	}
	return 0, format{}, false
}

// frameOrNothing reports whether rest, what follows a header of version 1
// or 2, starts as a frame does, or holds only zeros.
func frameOrNothing(rest []byte) bool {
	return len(bytes.TrimLeft(rest, "\x00")) == 0 || bytes.HasPrefix([]byte(frameMagic), rest[:min(len(rest), len(frameMagic))])
}

// checkedHeaderLen returns the length of b's header if it is of a
// version whose header has a checksum (3, 4), else 0.
func checkedHeaderLen(b []byte) int {
	v := len(headerMagic)
	switch {
	case len(b) <= v || string(b[:v]) != headerMagic:
		return 0
	case b[v] == 4:
		return headerLen
	case b[v] == 3:
		return headerLenV3
	}
	return 0
}

// format is how a segment's frames are laid out, from its header: the
// seed of their checksums (0 for version 1), the bytes before the payload,
// and whether they include the length's own checksum (version 4); and,
// chained (version 4), the number and final length of the segment
// written before it (0 and 0 for none).
type format struct {
	seed           uint32
	head           int
	headSum        bool
	chained        bool
	prevN, prevLen uint64
}

// tornHeader reports whether b is the start of a header cut short (and
// perhaps zeros a direct write extended the file with): shorter than a
// header once the zeros are trimmed, and what is left of its magic and
// version as written.
func tornHeader(b []byte) bool {
	if !creationLen(len(b)) {
		return false
	}
	b = bytes.TrimRight(b, "\x00")
	cut := func(known string, n int) bool { // the start of a header of n bytes, known's bytes first
		return len(b) < n && bytes.HasPrefix([]byte(known), b[:min(len(b), len(known))])
	}
	// Version 3's and 2's (the rest is the nonce, and checksum: any
	// bytes), and version 1's.
	return cut(headerMagic+"\x04", headerLen) || cut(headerMagic+"\x03", headerLenV3) || cut(headerMagic+"\x02", headerLenV2) || cut(headerV1, len(headerV1))
}

// frameAt returns the payload of the frame at b[off:] if it is whole and
// checks, in a segment of format f (see readHeader).
func frameAt(b []byte, off int, f format) ([]byte, bool) {
	end, ok := frameEnd(b, off, f)
	if !ok || f.headSum && !headAt(b, off, f) {
		return nil, false
	}
	h := b[off+len(frameMagic):]
	payload := b[off+f.head : end]
	sum := crc32.Update(crc32.Update(f.seed, castagnoli, h[:4]), castagnoli, payload)
	if sum != binary.LittleEndian.Uint32(h[f.head-len(frameMagic)-4:]) {
		return nil, false
	}
	return payload, true
}

// headAt reports whether a version 4 frame head that checks (its magic,
// and its length's checksum) is at b[off:], whether or not its payload
// follows whole.
func headAt(b []byte, off int, f format) bool {
	if len(b)-off < frameHead || string(b[off:off+len(frameMagic)]) != frameMagic {
		return false
	}
	h := b[off+len(frameMagic):]
	return crc32.Update(f.seed, castagnoli, h[:4]) == binary.LittleEndian.Uint32(h[4:])
}

// frameEnd returns where the frame at b[off:] ends by its length, if it
// has a magic and a length that fits.
func frameEnd(b []byte, off int, f format) (int, bool) {
	if len(b)-off < f.head || string(b[off:off+len(frameMagic)]) != frameMagic {
		return 0, false
	}
	n := binary.LittleEndian.Uint32(b[off+len(frameMagic):])
	if n > maxFrame || uint64(n) > uint64(len(b)-off-f.head) {
		return 0, false
	}
	return off + f.head + int(n), true
}

// nextHead returns the offset of the first version 4 frame head that
// checks at or after from, -1 if none: a magic's look-up and a checksum
// of 4 bytes a candidate.
func nextHead(b []byte, from int, f format) int {
	for from < len(b) {
		i := bytes.Index(b[from:], []byte(frameMagic))
		if i < 0 {
			return -1
		}
		if headAt(b, from+i, f) {
			return from + i
		}
		from += i + 1
	}
	return -1
}

// scanFrames returns the offset of the first frame of an older segment
// (versions 1 to 3, whose heads do not check on their own) at or after
// from that checks, -1 if none. It checks candidates (a magic, and a
// length that fits) until it has checksummed twice b's length: bytes
// that hold many magics and lengths (a value's bytes can) would otherwise
// cost time quadratic in their length; past that it stops and says so
// (out). (With a version 2 or 3 segment's nonce, a value's bytes cannot
// pass for a frame: a candidate that checks is one.) It returns the bytes
// it checksummed too.
func scanFrames(b []byte, from int, f format) (at int, out bool, checked int) {
	for from < len(b) {
		if checked >= 2*len(b) {
			return -1, true, checked
		}
		i := bytes.Index(b[from:], []byte(frameMagic))
		if i < 0 {
			return -1, false, checked
		}
		at := from + i
		if _, ok := frameAt(b, at, f); ok {
			return at, false, checked
		}
		if end, ok := frameEnd(b, at, f); ok { // what frameAt checksummed
			checked += end - at
		}
		from = at + 1
	}
	return -1, false, checked
}

// Mode is when appended records are written and synced.
type Mode uint8

const (
	// EveryWrite writes as soon as the previous frame is synced (after
	// gathering the writers it released, see run); appenders wait for
	// their frame with [Batch.Wait].
	EveryWrite Mode = iota + 1
	// Interval writes every interval, sooner if a stripe holds its
	// share of 4 MiB (4 MiB over the stripes, one a processor, 2 to
	// 16).
	Interval
)

// Log appends records to the newest segment of a write log. Append and
// Batch.Wait are safe for concurrent use; Rotate, RemoveBefore and Close
// are called by one owner.
type Log struct {
	path      string
	mode      Mode
	interval  time.Duration
	onError   func(error)
	ours      func() error   // Options.Ours
	trimEvery time.Duration  // see chunks.trim
	trimTicks chan time.Time // tests: the trim ticker's ticks, sent by hand

	// Appenders add to one of several stripes, one per processor, so
	// that concurrent writers seldom share a lock; a flush takes every
	// stripe's records into one frame (replay merges records by their
	// versions, so their order in a frame does not matter). near hands
	// out the stripes, per processor as a sync.Pool keeps its items:
	// appenders on one core keep to one stripe, whose lock and buffer
	// stay in that core's cache (picked by key, every append found them
	// in the other core's cache half the time, and spent more time
	// unlocking than encoding).
	stripes []stripe
	chunks  chunks
	near    near.Slots[stripe]
	recs    atomic.Int64          // records in the stripes, counted with EveryWrite only
	batch   atomic.Pointer[Batch] // the frame the stripes' records become
	failure atomic.Pointer[error] // ErrClosed, or why the log is broken
	// failing is what Interval appends report (see Append): that the
	// last frame failed, until a frame is written, then, until a
	// snapshot covers them, what records are missing from the log
	// (retry.dropped, retry.refused). It holds the message appends
	// return: after a frame was written, "the last sync failed, none
	// since" was said of records dropped or refused, syncs having
	// succeeded since (found by review).
	failing atomic.Pointer[error]
	// refused is why an Interval append was refused while the log was
	// broken, until the writer takes it: its record is on no disk until
	// a snapshot covers it, and the log keeps failing until then, as for
	// the records dropped past maxRetry (refused, then forgotten once a
	// frame was written, their appends' ErrNotDurable was followed by
	// nil while they were lost to a crash: found by review).
	refused atomic.Pointer[error]
	body    [][]byte // the chunks of the frame being written
	small   []byte   // a frame that fits a chunk, copied to be written at once
	// retry holds the records of the frames that failed, written again
	// with the next (held by the writer): under Interval their appends
	// had returned nil, and a frame that failed was dropped for good,
	// lost to a crash until the next snapshot however many frames were
	// written after it (found by review). At most maxRetry: past it the
	// older records go, and lostIn (the segment then written) keeps the
	// log failing until a snapshot covers them (RemoveBefore). seg is the
	// segment written when the last of them were kept: a snapshot that
	// covers the segments up to it holds them all (RemoveBefore lets them
	// go). dropped and refused say why records are on no disk while
	// lostIn is set (the first of each since a snapshot covered the
	// log): records of failed frames dropped past maxRetry, appends
	// refused while the log could start no segment. Close(false) and the
	// appends report them (Close said records were dropped past maxRetry
	// for appends refused: found by review).
	retry struct {
		chunks           [][]byte
		size, recs       int
		lostIn, seg      uint64
		dropped, refused error
	}

	file struct { // held by the writer: the goroutine, Rotate or Close
		sync.Mutex
		f      *os.File
		n      uint64 // the segment's number
		off    int64  // its length that is written and synced
		direct bool   // f was opened for direct I/O; stage holds its last block
		stage  stage
		seed   uint32 // its frames' checksums start from it (readHeader)
		// broken: nothing may be written to f (a frame whose bytes could
		// not be cut off, or a segment after it, left by a creation that
		// failed, naming f's length then); the writer starts a new
		// segment before its next frame (restart).
		broken bool
		closed bool // Close ran: nothing may touch the files any more
	}
	direct  atomic.Bool // l.file.direct, for Stats
	kick    chan struct{}
	done    chan struct{}
	stopped chan struct{}
	stats   struct {
		sync.Mutex
		Stats
	}
}

// stripe is part of the records waiting for the next frame, encoded in
// chunks (of chunkSize, or one record's size if larger): a stripe's
// records grow without copying what they hold so far.
type stripe struct {
	mu     sync.Mutex
	chunks [][]byte
	spare  [][]byte // chunks' last slice, once flush took its chunks
	bytes  int      // in chunks
	recs   int
	batch  *Batch         // the frame the chunks become
	_      [128 - 80]byte // a stripe to a cache line (two, where the prefetcher pairs them)
}

// chunkSize is the size of a stripe's chunks; they are reused (through
// the log's free list) once the frame they went into is written.
const chunkSize = 64 << 10

// maxFreeChunks bounds the log's free list: as many chunks as the stripes
// may hold (waitAt). At 64 chunks (4 MiB, one frame of flushAt and no
// more) a log written at full speed made a quarter to a third of its
// chunks anew: a frame held what came while the one before it was
// written too, and the chunks past 64 went to the collector, whose work
// the writers then paid (BenchmarkSyncIntervalCost: 100-290 MB allocated
// more than the member without a log, out of 520 MB logged).
const maxFreeChunks = waitAt / chunkSize

// trimEvery is how often the writer lets go of the free chunks that no
// frame needed since the last time (see chunks.trim): after a burst,
// within two of them. The writer wakes every trimEvery to trim (an
// EveryWrite log gone quiet after a burst kept the burst's chunks, up to
// 64 MiB, until it wrote again: found by review).
const trimEvery = time.Second

// chunks is a log's free list of chunks. It is its own, not a sync.Pool:
// a pool empties at every collection, and a log syncing every write would
// then allocate (and zero) a chunk for most frames. It keeps what the
// frames have needed lately, not what a burst once did: low is the fewest
// chunks it held since the last trim, and trim lets those go.
type chunks struct {
	mu    sync.Mutex
	free  [][]byte
	low   int // the fewest free since the last trim: none of them was taken
	made  int // chunks of chunkSize allocated (tests)
	trims int // trims so far (tests)
}

// get returns an empty chunk with room for need bytes.
func (cs *chunks) get(need int) []byte {
	if need > chunkSize {
		return make([]byte, 0, need)
	}
	cs.mu.Lock()
	if n := len(cs.free); n > 0 {
		c := cs.free[n-1]
		cs.free[n-1] = nil
		cs.free = cs.free[:n-1]
		cs.low = min(cs.low, n-1)
		cs.mu.Unlock()
		return c
	}
	cs.made++
	cs.mu.Unlock()
	return make([]byte, 0, chunkSize)
}

// put gives back chunks whose contents are written, emptying body.
func (cs *chunks) put(body [][]byte) {
	cs.mu.Lock()
	for i, c := range body {
		if cap(c) == chunkSize && len(cs.free) < maxFreeChunks {
			cs.free = append(cs.free, c[:0])
		}
		body[i] = nil
	}
	cs.mu.Unlock()
}

// trim lets go of the chunks that stayed free since the last trim, the
// ones at the bottom of the list (get takes from the top).
func (cs *chunks) trim() {
	cs.mu.Lock()
	n := copy(cs.free, cs.free[cs.low:])
	clear(cs.free[n:])
	cs.free = cs.free[:n]
	if cap(cs.free) > 4*max(n, 16) { // its array, from a burst
		cs.free = append(make([][]byte, 0, n), cs.free...)
	}
	cs.low = n
	cs.trims++
	cs.mu.Unlock()
}

// maxStripes bounds the stripes: one per processor, up to it.
const maxStripes = 16

// stripeShare returns the stripe's share of n bytes waiting.
func (l *Log) stripeShare(n int) int { return n / len(l.stripes) }

// Stats counts what a Log did.
type Stats struct {
	Frames, Records, Bytes uint64 // written and synced
	Errors                 uint64 // frames that failed to be written or synced
	LastError              error
	// Direct says the segment being written is written with direct I/O
	// (see Direct I/O).
	Direct bool
}

// Batch is the outcome of one frame, which appenders wait for.
type Batch struct {
	done chan struct{}
	err  error
}

// ErrClosed is the error of an append to a closed Log.
var ErrClosed = errors.New("write log closed")

// Options configure a Log.
type Options struct {
	Path     string // the snapshot's: the segments are named after it
	Mode     Mode
	Interval time.Duration // between writes, for Interval
	// OnError, if set, is called with every frame that failed to be
	// written or synced, from the log's goroutine.
	OnError func(error)
	// Snapshot says a snapshot holds what came before the log: a segment
	// started with none before it says so in its header (see
	// ReadStats.FollowsSnapshot).
	Snapshot bool
	// From, with Snapshot, is the lowest number a segment started with
	// none before it takes: the first the snapshot does not hold, as its
	// last writer recorded it. Its header names the one before From as
	// its predecessor, so that the numbers of a log go on across a clean
	// close, which removes every segment: started again from 1, a log
	// made a snapshot older than it look as if it held all the log
	// lacks, and a segment lost whole went unseen (found by review).
	From uint64
	// Ours, if set, is called before each segment is created (by name,
	// beside the snapshot): an error refuses the segment, as a failure
	// to create it (bcache: the path's lock is no longer the one the
	// member holds, its directory moved; see Cache.ourFiles).
	Ours func() error

	trimEvery time.Duration  // tests: 0 is trimEvery
	trimTicks chan time.Time // tests: the writer trims at each of these instead of a ticker's
	stripes   int            // tests: 0 is one per processor, up to maxStripes
}

// Open starts a new segment of the log, numbered after the newest that
// [Read] found (st), whose torn end it first cuts off (or which it
// removes, if its header is torn); with none, o.From if it is higher.
func Open(o Options, st ReadStats) (*Log, error) {
	next := st.Newest.N + 1
	prevN, prevLen := st.Newest.N, st.Valid
	switch {
	case st.Newest.Path != "" && st.Valid == 0:
		// Created, its header cut short: it would be an older segment
		// with a bad header from now on. Its number is made again below:
		// the segments' numbers have no gap (see Read).
		if err := os.Remove(st.Newest.Path); err != nil {
			return nil, fmt.Errorf("remove the torn segment %s: %w", st.Newest.Path, err)
		}
		next--
		prevN, prevLen = 0, 0
		if st.Segments > 1 { // the one before it, which Read read as the newest (alone, none: found by review)
			if st.Before <= 0 { // no segment is shorter than its header: not stats Read gave
				return nil, fmt.Errorf("%w: the segment before the torn %s read as %d bytes long", ErrDamaged, st.Newest.Path, st.Before)
			}
			prevN, prevLen = next-1, st.Before
			if err := truncateSynced(segmentPath(o.Path, prevN), st.Before); err != nil {
				return nil, fmt.Errorf("cut the torn end of %s: %w", segmentPath(o.Path, prevN), err)
			}
		}
	case st.Torn > 0 || st.Padding > 0:
		// Its torn end, or the padding of a direct write: it becomes an
		// older segment, which ends with its last frame (see trimPadding),
		// durably (an older segment with a torn end is damage).
		if err := truncateSynced(st.Newest.Path, st.Valid); err != nil {
			return nil, fmt.Errorf("cut the torn end of %s: %w", st.Newest.Path, err)
		}
	}
	l := &Log{path: o.Path, mode: o.Mode, interval: o.Interval, onError: o.OnError, ours: o.Ours, trimEvery: cmp.Or(o.trimEvery, trimEvery), trimTicks: o.trimTicks,
		kick: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	b := &Batch{done: make(chan struct{})}
	l.batch.Store(b)
	l.stripes = make([]stripe, cmp.Or(o.stripes, min(max(runtime.GOMAXPROCS(0), 2), maxStripes)))
	for i := range l.stripes {
		l.stripes[i].batch = b
	}
	l.small = make([]byte, 0, chunkSize)
	if o.From > MaxFrom {
		return nil, fmt.Errorf("log numbered from %d, past %d", o.From, uint64(MaxFrom))
	}
	if prevN == 0 && o.Snapshot {
		next = max(next, o.From)
		prevN, prevLen = next-1, -1 // afterSnapshot
	}
	if err := l.startSegment(next, prevN, prevLen); err != nil {
		return nil, err
	}
	go l.run()
	return l, nil
}

// startSegment creates segment n, durably, and makes it the one written:
// for direct I/O with Interval, if the file system takes it (see Direct
// I/O). Its header names the segment before it, prevN (0: none), and the
// length at which that one ends, prevLen: Read checks it, and reads no
// further in it. Called with l.file held, or before the goroutine starts.
func (l *Log) startSegment(n, prevN uint64, prevLen int64) error {
	p := segmentPath(l.path, n)
	if n >= maxSegment { // Read refuses it, and the writes in it (maxSegment itself too: found by review)
		return fmt.Errorf("start %s: a segment number of %d or more", p, uint64(maxSegment))
	}
	if l.ours != nil {
		if err := l.ours(); err != nil {
			return fmt.Errorf("start %s: %w", p, err)
		}
	}
	head := make([]byte, headerLen)
	copy(head, headerMagic)
	head[len(headerMagic)] = version
	if _, err := rand.Read(head[len(headerMagic)+1 : headerLenV2]); err != nil {
		return fmt.Errorf("draw the nonce of %s: %w", p, err)
	}
	binary.LittleEndian.PutUint64(head[headerLenV2:], prevN)
	binary.LittleEndian.PutUint64(head[headerLenV2+8:], uint64(prevLen))
	binary.LittleEndian.PutUint32(head[headerLen-4:], crc32.Checksum(head[len(headerMagic):headerLen-4], castagnoli))
	var f *os.File
	err := errors.ErrUnsupported
	if l.mode == Interval {
		// The header goes in a block of its own: the stage still holds
		// the current segment's last block until this one is made.
		f, err = createSegment(p, openDirectFile, func(f *os.File) error {
			block := aligned(dioAlign)
			copy(block, head)
			_, err := directWrite(f, block, 0)
			return err
		})
	}
	direct := err == nil
	if !direct { // or the file system refused direct I/O: through the page cache
		left := errors.Is(err, errLeftover) // the direct attempt's file may stay
		f, err = createSegment(p, openBufferedFile, func(f *os.File) error {
			_, err := f.Write(head)
			return err
		})
		if err != nil && left && !errors.Is(err, errLeftover) {
			err = fmt.Errorf("%w (%w)", err, errLeftover)
		}
		if err != nil {
			return err
		}
	}
	if direct {
		l.file.stage.reset(string(head))
	}
	l.file.f, l.file.n, l.file.off, l.file.direct = f, n, int64(len(head)), direct
	l.file.seed = crc32.Checksum(head[len(headerMagic)+1:headerLenV2], castagnoli)
	l.direct.Store(direct)
	return nil
}

// trimPadding cuts the padding of the last direct write off the segment
// being written, before it becomes an older one: an older segment ends
// with its last frame, as the releases before direct I/O wrote them and
// read them. It is best effort: this release reads an older segment's
// padding as padding all the same. Called with l.file held.
func (l *Log) trimPadding() {
	if l.file.direct && l.file.f.Truncate(l.file.off) == nil {
		_ = l.file.f.Sync()
	}
}

// createSegment creates the segment at p with open and writes its header
// with head, durably; if any of it fails it removes the file. (Linux
// creates the file before it refuses O_DIRECT on a file system without
// it: the open's error may come with a file; O_EXCL makes it this call's,
// unless the error is that it existed.)
func createSegment(p string, open func(string) (*os.File, error), head func(*os.File) error) (*os.File, error) {
	f, err := open(p)
	if errors.Is(err, fs.ErrExist) {
		// Left by a creation that failed before, whose removal failed
		// too: no segment after the one written holds a frame, and this
		// member alone writes here (the lock). Kept, it failed every
		// later segment change (found by review).
		if rerr := removeLeftover(p); rerr != nil {
			return nil, fmt.Errorf("%w (%w: %v)", err, errLeftover, rerr)
		}
		f, err = open(p)
	}
	if err != nil {
		if !errors.Is(err, fs.ErrExist) {
			if rerr := removeLeftover(p); rerr != nil {
				return nil, fmt.Errorf("%w (%w: %v)", err, errLeftover, rerr)
			}
		}
		return nil, err
	}
	if err = head(f); err == nil {
		err = syncFile(f)
	}
	if err == nil {
		err = syncDir(p)
	}
	if err != nil {
		f.Close()
		if rerr := removeLeftover(p); rerr != nil {
			return nil, fmt.Errorf("%w (%w: %v)", err, errLeftover, rerr)
		}
		return nil, err
	}
	return f, nil
}

// errLeftover says a segment whose creation failed may stay (its removal
// failed, or was not made durable): its header says the segment written
// ends at its length then, and Read reads that one no further, so no
// frame may be written to it any more (found by review: the log went on
// acknowledging frames there, which the next start dropped unreported).
var errLeftover = errors.New("a segment whose creation failed may stay beside the log")

// removeLeftover removes the file at p, if any, durably.
func removeLeftover(p string) error {
	switch err := removeFile(p); {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	return syncDir(p)
}

// openDirectFile, openBufferedFile, directWrite and syncFile are
// openDirect, openBuffered, (*os.File).WriteAt and (*os.File).Sync: tests
// make them fail, as a file system without direct I/O and a full disk
// would, and see what a frame's sync covered (a SIGKILL keeps the page
// cache: only this tells that a write is synced before it is
// acknowledged).
var (
	openDirectFile   = openDirect
	openBufferedFile = openBuffered
	directWrite      = (*os.File).WriteAt
	syncFile         = (*os.File).Sync
)

// openBuffered creates the file at path for writing through the page
// cache.
func openBuffered(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// stage is where a segment written with direct I/O gathers what it
// writes: buf[:n] are the segment's bytes from base, a multiple of
// dioAlign. Between writes it holds the segment's last block, in part:
// the bytes after the last whole block.
type stage struct {
	buf   []byte // stageSize bytes, at an address that is a multiple of dioAlign
	n     int
	base  int64
	saved []byte // buf[:n] as the last write left it, to go back to on an error
}

// reset empties the stage for a new segment that starts with head.
func (s *stage) reset(head string) {
	if s.buf == nil {
		s.buf = aligned(stageSize)
	}
	s.n, s.base = copy(s.buf, head), 0
}

// aligned returns n zero bytes at an address that is a multiple of
// dioAlign, as direct I/O wants its memory.
func aligned(n int) []byte {
	b := make([]byte, n+dioAlign)
	at := int(uintptr(unsafe.Pointer(&b[0])) % dioAlign)
	if at != 0 {
		at = dioAlign - at
	}
	return b[at : at+n : at+n]
}

// put adds p to the stage, writing the stage to f whenever it fills.
func (s *stage) put(f *os.File, p []byte) error {
	for len(p) > 0 {
		c := copy(s.buf[s.n:], p)
		s.n += c
		p = p[c:]
		if s.n == len(s.buf) {
			if _, err := directWrite(f, s.buf, s.base); err != nil {
				return err
			}
			s.base += int64(s.n)
			s.n = 0
		}
	}
	return nil
}

// writeTail writes what the stage holds, its last block padded with
// zeros, and keeps that block's bytes for the next write.
func (s *stage) writeTail(f *os.File) error {
	if s.n == 0 {
		return nil
	}
	end := (s.n + dioAlign - 1) / dioAlign * dioAlign
	clear(s.buf[s.n:end])
	if _, err := directWrite(f, s.buf[:end], s.base); err != nil {
		return err
	}
	whole := s.n / dioAlign * dioAlign
	s.n = copy(s.buf, s.buf[whole:s.n])
	s.base += int64(whole)
	return nil
}

// syncDir makes the creation, rename or removal of a file in path's
// directory durable.
// truncateSynced cuts the file at path to n bytes, durably.
func truncateSynced(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(n); err != nil {
		return err
	}
	return f.Sync()
}

// syncDir syncs the directory of path (see store.SyncDir).
func syncDir(path string) error { return store.SyncDir(filepath.Dir(path)) }

// maxRecordOverhead bounds what an encoded entry adds to its key and
// value: an origin byte and seven varints.
const maxRecordOverhead = 1 + 7*binary.MaxVarintLen64

// Append adds r, written here or received from a peer, to the next frame
// and returns that frame's batch, to wait for with Wait (EveryWrite). With
// Interval, an append waits for a flush only while its stripe holds its
// share of waitAt (64 MiB in all).
func (l *Log) Append(r *crdt.Record, received bool) (*Batch, error) {
	origin := byte(0)
	if received {
		origin = 1
	}
	need := len(r.Key) + len(r.Value) + maxRecordOverhead
	s := l.near.Get(l.stripes)
	defer l.near.Put(s)
	s.mu.Lock()
	for s.bytes >= l.stripeShare(waitAt) && l.failure.Load() == nil {
		b := s.batch
		s.mu.Unlock()
		l.poke()
		<-b.done
		s.mu.Lock()
	}
	if err := l.failure.Load(); err != nil { // checked under the lock: Close flushes after it sets it
		s.mu.Unlock()
		if *err != ErrClosed {
			if l.mode == Interval {
				l.refused.Store(err)
			}
			l.poke() // broken: the writer tries a new segment
		}
		return nil, *err
	}
	n := len(s.chunks)
	if n == 0 || cap(s.chunks[n-1])-len(s.chunks[n-1]) < need {
		s.chunks = append(s.chunks, l.chunks.get(need))
		n++
	}
	c := s.chunks[n-1]
	before := len(c)
	c = store.AppendRecord(append(c, origin), r) // within need: no copy
	s.chunks[n-1] = c
	s.bytes += len(c) - before
	s.recs++
	b, full := s.batch, s.bytes >= l.stripeShare(flushAt)
	s.mu.Unlock()
	if l.mode == EveryWrite {
		l.recs.Add(1)
		l.poke()
		return b, nil
	}
	if full {
		l.poke()
	}
	// While frames fail (a full disk), a write that returned nil would
	// be lost with the next crash, past the interval's bound, and said
	// nothing (found by review): the append reports the last failure. The
	// record is taken all the same, and durable once a frame is written.
	if err := l.failing.Load(); err != nil {
		return b, *err
	}
	return b, nil
}

// lostErr says why records are on no disk until a snapshot covers them
// (retry.lostIn set), or nil. Called by the writer.
func (l *Log) lostErr() error {
	if l.retry.lostIn == 0 {
		return nil
	}
	if err := errors.Join(l.retry.dropped, l.retry.refused); err != nil {
		return err
	}
	return errors.New("the write log lacks records no snapshot covers")
}

// takeRefused takes an append refused while the log was broken, if any:
// its record is on no disk until a snapshot covers segment lostIn.
// Called by the writer.
func (l *Log) takeRefused(lostIn uint64) {
	e := l.refused.Swap(nil)
	if e == nil {
		return
	}
	l.retry.lostIn = max(l.retry.lostIn, lostIn, 1)
	if l.retry.refused == nil {
		l.retry.refused = fmt.Errorf("the write log refused appends while it could start no segment, and no snapshot covers their records since: they are on no disk: %w", *e)
	}
	// Unless the last frame failed (appends say so until one is
	// written), appends say what is missing from the log. failing is
	// written by the writer only.
	if cur := l.failing.Load(); cur == nil || !errors.Is(*cur, errLastSyncFailed) {
		lost := l.lostErr()
		l.failing.Store(&lost)
	}
}

// errLastSyncFailed marks what appends report while the last frame failed.
var errLastSyncFailed = errors.New("the write log's last sync failed, none since")

// Wait returns when b's frame is written and synced, with its error.
func (b *Batch) Wait() error {
	<-b.done
	return b.err
}

// WaitUntil is Wait, which gives up when stop is closed first: ok is
// false then, and b's frame may still be written and synced later.
func (b *Batch) WaitUntil(stop <-chan struct{}) (ok bool, err error) {
	select {
	case <-b.done:
		return true, b.err
	case <-stop:
		return false, nil
	}
}

// SetSyncForTest replaces the sync of a segment's file, of every Log from
// now on (tests of packages using a Log slow it down), and returns what
// restores it. It is a package variable, unguarded: set and restore it
// while no Log runs (the test's Logs opened after it, and closed before
// the restore).
func SetSyncForTest(sync func(*os.File) error) (restore func()) {
	syncFile = sync
	return func() { syncFile = (*os.File).Sync }
}

func (l *Log) poke() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// run writes frames until Close. With EveryWrite, it gathers a frame
// before writing it: the writers the last sync released come back within
// microseconds with their next write, and a frame written at the first
// of them would split the writers into two groups that take turns, each
// sync carrying half of them. So it waits, at most a quarter of the last
// sync's time (20 us to 1 ms), until as many records are waiting as the
// last frame held plus those that came during its sync.
func (l *Log) run() {
	defer close(l.stopped)
	var tick <-chan time.Time
	if l.mode == Interval {
		t := time.NewTicker(l.interval)
		defer t.Stop()
		tick = t.C
	}
	// The writer trims at every tick of its own ticker, in either mode
	// (an EveryWrite log wakes for appends alone, and an Interval log's
	// SyncEvery may be longer than trimEvery). At every tick, not when
	// trimEvery has passed since the last trim by the clock: a tick taken
	// a little sooner after it than the last one was skipped, about every
	// other one, and a burst's chunks went after four trimEvery, not two.
	trimTicks := (<-chan time.Time)(l.trimTicks)
	if trimTicks == nil {
		t := time.NewTicker(l.trimEvery)
		defer t.Stop()
		trimTicks = t.C
	}
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	target, wait := 0, time.Duration(0)
	for {
		select {
		case <-l.done:
			return
		case <-l.kick:
		case <-tick:
		case <-trimTicks:
			l.chunks.trim()
			continue
		}
		if l.mode == EveryWrite {
			l.gather(gather, target, wait)
		}
		l.file.Lock()
		start := time.Now()
		recs := l.flush()
		wait = min(max(time.Since(start)/4, 20*time.Microsecond), time.Millisecond)
		target = recs + l.pending()
		l.file.Unlock()
	}
}

// pending returns the records waiting for the next frame.
func (l *Log) pending() int { return int(l.recs.Load()) }

// gather waits, at most wait, until target records are waiting.
func (l *Log) gather(t *time.Timer, target int, wait time.Duration) {
	if l.pending() >= target {
		return
	}
	t.Reset(wait)
	defer t.Stop()
	for l.pending() < target {
		select {
		case <-l.kick:
		case <-t.C:
			return
		case <-l.done:
			return
		}
	}
}

// flush writes and syncs the records appended so far as one frame, and
// releases their appenders; it returns the number of records. Called with
// l.file held.
func (l *Log) flush() int {
	b, next := l.batch.Load(), &Batch{done: make(chan struct{})}
	body, size, recs := l.body[:0], 0, 0
	for i := range l.stripes {
		// Take the stripe's chunks under its lock, and give it back the
		// slice that held them, emptied, without.
		s := &l.stripes[i]
		s.mu.Lock()
		taken := s.chunks
		recs += s.recs
		size += s.bytes
		s.chunks, s.spare, s.bytes, s.recs, s.batch = s.spare[:0], nil, 0, 0, next
		s.mu.Unlock()
		body = append(body, taken...)
		clear(taken)
		s.mu.Lock()
		s.spare = taken[:0]
		s.mu.Unlock()
	}
	l.batch.Store(next)
	// Appended before the segment after this one starts: a snapshot
	// whose Rotate started a later one holds them.
	l.takeRefused(l.file.n)
	var err error
	if l.file.broken {
		// A new segment first: nothing may follow what broke the one
		// written (it waited for the next snapshot's Rotate, every append
		// failing meanwhile, and frames were written after the broken
		// one; found by review).
		if err = l.restart(); err != nil && recs == 0 && l.retry.size == 0 {
			close(b.done)
			return 0
		}
	}
	if err == nil && recs == 0 && l.retry.size == 0 {
		close(b.done)
		return 0
	}
	if l.mode == EveryWrite {
		l.recs.Add(-int64(recs))
	}
	if err == nil && l.retry.size > 0 && l.retry.size+size > maxRetry {
		// Together they would pass what a frame may hold: the failed
		// frames' records first, alone.
		if err = l.frame(l.retry.chunks, l.retry.size, l.retry.recs); err == nil {
			l.chunks.put(l.retry.chunks)
			l.retry.chunks, l.retry.size, l.retry.recs = l.retry.chunks[:0], 0, 0
		}
	}
	dropped := 0
	if err == nil {
		// With the failed frames' records, if any: replay merges records
		// by their versions, where they come in the log does not matter.
		body = append(body, l.retry.chunks...)
		size += l.retry.size
		n := recs + l.retry.recs
		clear(l.retry.chunks)
		l.retry.chunks, l.retry.size, l.retry.recs = l.retry.chunks[:0], 0, 0
		if err = l.frame(body, size, n); err == nil {
			l.chunks.put(body)
		} else {
			dropped = l.keep(body, size, n)
		}
	} else {
		dropped = l.keep(body, size, recs)
	}
	clear(body)
	l.body = body[:0]
	b.err = err
	if dropped > 0 && l.retry.dropped == nil {
		l.retry.dropped = fmt.Errorf("the write log dropped the records of frames that failed, %d bytes (more than it keeps of them, %d), and no snapshot covers them since: they are on no disk: %w", dropped, maxRetry, err)
	}
	switch {
	case err != nil:
		failed := fmt.Errorf("%w: %w", errLastSyncFailed, err)
		l.failing.Store(&failed)
	case l.retry.lostIn == 0:
		l.failing.Store(nil)
	default: // written, and records are still missing from the log
		lost := l.lostErr()
		l.failing.Store(&lost)
	}
	close(b.done) // after the stats: a writer released sees its write counted
	if err != nil && l.onError != nil {
		if dropped > 0 {
			err = fmt.Errorf("%w; the records of the frames that failed before, %d bytes, are dropped from the log (more than it keeps of them, %d): a crash before the next snapshot loses them", err, dropped, maxRetry)
		}
		l.onError(err)
	}
	return recs
}

// maxRetry bounds the records of failed frames kept to be written again,
// beside the stripes' waitAt, while the disk fails (at what a frame may
// hold, a member could keep 321 MiB more: found by review); a frame's
// own records are kept whatever their size. Tests lower it.
var maxRetry = waitAt / 2

// keep adds the records of a frame that failed, body of size bytes
// holding recs records, to those written again with the next frame; if
// together they would pass maxRetry, the older go, and the
// log stays failing until a snapshot covers them. It returns their size.
// Called by the writer.
func (l *Log) keep(body [][]byte, size, recs int) (dropped int) {
	if l.retry.size > 0 && l.retry.size+size > maxRetry {
		dropped = l.retry.size
		l.chunks.put(l.retry.chunks)
		l.retry.chunks, l.retry.size, l.retry.recs = l.retry.chunks[:0], 0, 0
		l.retry.lostIn = max(l.file.n, 1)
	}
	l.retry.chunks = append(l.retry.chunks, body...)
	l.retry.size += size
	l.retry.recs += recs
	l.retry.seg = l.file.n
	return dropped
}

// frame writes body, of size bytes holding recs records, as one frame,
// and counts it.
func (l *Log) frame(body [][]byte, size, recs int) error {
	var head [frameHead]byte
	copy(head[:], frameMagic)
	h := head[len(frameMagic):]
	binary.LittleEndian.PutUint32(h, uint32(size))
	sum := crc32.Update(l.file.seed, castagnoli, h[:4])
	binary.LittleEndian.PutUint32(h[4:], sum) // the length's own
	for _, c := range body {
		sum = crc32.Update(sum, castagnoli, c)
	}
	binary.LittleEndian.PutUint32(h[8:], sum)
	err := l.writeFrame(head[:], body, size)
	l.stats.Lock()
	if err != nil {
		l.stats.Errors++
		l.stats.LastError = err
	} else {
		l.stats.Frames++
		l.stats.Bytes += uint64(frameHead + size)
		l.stats.Records += uint64(recs)
	}
	l.stats.Unlock()
	return err
}

// writeFrame writes a frame (its head, and its body of size bytes in
// pieces) at the end of the segment and syncs it: with one write if it
// fits a chunk, else a write per piece (the pieces are not copied into
// one). On an error it cuts the segment back to what was synced, so that
// a later frame does not follow a broken one; if that fails too, it
// starts a new segment.
func (l *Log) writeFrame(head []byte, body [][]byte, size int) error {
	f := l.file.f
	off := l.file.off
	var err error
	if l.file.direct {
		err = l.writeDirect(head, body)
		off += int64(len(head) + size)
	} else if len(head)+size <= chunkSize {
		frame := append(l.small[:0], head...)
		for _, c := range body {
			frame = append(frame, c...)
		}
		l.small = frame
		_, err = f.WriteAt(frame, off)
		off += int64(len(frame))
	} else {
		for i := -1; i < len(body) && err == nil; i++ {
			piece := head
			if i >= 0 {
				piece = body[i]
			}
			_, err = f.WriteAt(piece, off)
			off += int64(len(piece))
		}
	}
	if err == nil {
		err = syncFile(f)
	}
	if err == nil {
		l.file.off = off
		return nil
	}
	err = fmt.Errorf("write log %s: %w", f.Name(), err)
	if l.file.direct { // the stage as it was: the segment's bytes after its last whole block
		s := &l.file.stage
		s.n = copy(s.buf, s.saved)
		s.base = l.file.off - int64(s.n)
	}
	if f.Truncate(l.file.off) != nil || f.Sync() != nil {
		// The frame may stay in the file: the next segment's header
		// says the file ends before it (see Read).
		if serr := l.startSegment(l.file.n+1, l.file.n, l.file.off); serr != nil {
			// Nothing may follow a broken frame: every later append
			// fails until the writer starts a new segment (restart).
			l.setBroken(fmt.Errorf("%w (and starting a new segment: %v)", err, serr))
			return err
		}
		f.Close()
	}
	return err
}

// writeDirect writes a frame through the stage: its bytes after the
// segment's last whole block, then the frame, in writes of up to
// stageSize, the last block padded.
func (l *Log) writeDirect(head []byte, body [][]byte) error {
	s, f := &l.file.stage, l.file.f
	s.saved = append(s.saved[:0], s.buf[:s.n]...)
	if err := s.put(f, head); err != nil {
		return err
	}
	for _, c := range body {
		if err := s.put(f, c); err != nil {
			return err
		}
	}
	return s.writeTail(f)
}

// Rotate writes what was appended to the current segment and starts the
// next; it returns the new segment's number. Every record appended before
// Rotate was called is in an older segment.
func (l *Log) Rotate() (uint64, error) {
	l.file.Lock()
	defer l.file.Unlock()
	if l.file.closed {
		return 0, ErrClosed
	}
	l.flush()
	l.trimPadding()
	if err := l.restart(); err != nil {
		return 0, err
	}
	// Refused while this Rotate started the segment (its records
	// applied before their appends were refused, so before Rotate
	// returns): a snapshot taken now holds them. Charged to the segment
	// started, they kept the log failing past it.
	l.takeRefused(l.file.n - 1)
	return l.file.n, nil
}

// restart starts the next segment and makes it the one written; if a
// segment whose creation failed may stay, the log is broken until a
// restart succeeds. Called with l.file held.
func (l *Log) restart() error {
	old := l.file.f
	if err := l.startSegment(l.file.n+1, l.file.n, l.file.off); err != nil {
		if errors.Is(err, errLeftover) {
			l.setBroken(err)
		}
		return err
	}
	old.Close()
	l.file.broken = false
	if err := l.failure.Load(); err != nil && *err != ErrClosed {
		l.failure.CompareAndSwap(err, nil) // a new segment: appends may go on
	}
	return nil
}

// setBroken says nothing may be written to the segment any more: appends
// fail with err until a new segment starts. Called with l.file held.
func (l *Log) setBroken(err error) {
	l.file.broken = true
	l.failure.CompareAndSwap(nil, &err)
}

// Flush writes and syncs what was appended so far, at once, and returns
// the error of the frame it wrote.
func (l *Log) Flush() error {
	l.file.Lock()
	defer l.file.Unlock()
	if l.file.closed {
		return ErrClosed
	}
	b := l.batch.Load() // flush takes and closes it
	l.flush()
	return b.err
}

// RemoveBefore removes the segments numbered below n, which a snapshot
// covers: it holds the records the log dropped before n started too.
func (l *Log) RemoveBefore(n uint64) error {
	l.file.Lock()
	if l.file.closed {
		l.file.Unlock()
		return ErrClosed
	}
	if l.retry.size > 0 && n > l.retry.seg {
		// The failed frames' records kept were appended before the
		// segment n started: the snapshot holds them.
		l.chunks.put(l.retry.chunks)
		l.retry.chunks, l.retry.size, l.retry.recs = l.retry.chunks[:0], 0, 0
	}
	if l.retry.lostIn != 0 && n > l.retry.lostIn {
		// So were those dropped from them.
		l.retry.lostIn = 0
		l.retry.dropped, l.retry.refused = nil, nil
	}
	if l.retry.lostIn == 0 && l.retry.size == 0 {
		// Nothing appended before the snapshot is missing from the log
		// or it: appends made since a failure are taken and held, as
		// the next frame, written or not, would say.
		l.failing.Store(nil)
	}
	l.file.Unlock()
	segs, err := Segments(l.path)
	if err != nil {
		return err
	}
	return removeOldest(l.path, segs, n)
}

// removeFile removes a segment; tests make it fail.
var removeFile = os.Remove

// removeOldest removes the segments numbered below n, oldest first, and
// stops at the first it fails to remove: one that stays leaves no gap
// behind it (see Read).
func removeOldest(path string, segs []Segment, n uint64) error {
	var errs []error
	removed := false
	for _, s := range segs {
		if s.N >= n {
			break
		}
		if err := removeFile(s.Path); err != nil {
			errs = append(errs, err)
			break
		}
		removed = true
	}
	if removed {
		errs = append(errs, syncDir(path))
	}
	return errors.Join(errs...)
}

// Stats returns what the log did so far.
func (l *Log) Stats() Stats {
	l.stats.Lock()
	st := l.stats.Stats
	l.stats.Unlock()
	st.Direct = l.direct.Load()
	return st
}

// Close writes and syncs what was appended, stops the log and closes its
// segment; later appends fail with ErrClosed. With covered (a snapshot
// written after the last append holds everything), it also removes every
// segment.
func (l *Log) Close(covered bool) error {
	closed := ErrClosed
	if err := l.failure.Swap(&closed); err != nil && *err == ErrClosed {
		return nil
	}
	close(l.done)
	<-l.stopped
	l.file.Lock()
	defer l.file.Unlock()
	// After the flush below, nothing may touch the files: Flush, Rotate,
	// RemoveBefore and Discard return ErrClosed.
	l.file.closed = true
	b := l.batch.Load() // flush takes and closes it
	l.flush()
	l.trimPadding()
	err := l.file.f.Close()
	if covered && err == nil {
		err = RemoveAll(l.path)
	}
	if b.err != nil && !covered {
		// The last frame failed: with Interval, its appends had returned
		// nil, and their records are on no disk (Close returned nil, its
		// owner told nothing: found by review).
		err = errors.Join(fmt.Errorf("the write log's last frame failed: %w", b.err), err)
	} else if lost := l.lostErr(); lost != nil && !covered {
		// Records of failed frames were dropped from the log (past
		// maxRetry; with Interval, their appends had returned nil), or
		// appends were refused while it could start no segment, and no
		// snapshot covers them: they are on no disk, though the final
		// frame was written (Close returned nil: found by review).
		err = errors.Join(lost, err)
	}
	return err
}

// Discard closes a log that was opened and not used, as when what opened
// it fails to start: the segment it started is removed if it holds no
// frame (else it is kept, as Close(false) keeps it).
func (l *Log) Discard() error {
	l.file.Lock()
	closed := l.file.closed
	l.file.Unlock()
	if closed { // the segment is no longer the log's to remove
		return ErrClosed
	}
	if err := l.Close(false); err != nil {
		return err
	}
	if l.Stats().Frames > 0 {
		return nil
	}
	return errors.Join(os.Remove(segmentPath(l.path, l.file.n)), syncDir(l.path))
}

// RemoveAll removes every segment of the log beside the snapshot at path.
func RemoveAll(path string) error {
	segs, err := Segments(path)
	if err != nil {
		return err
	}
	return removeNewest(path, segs)
}

// removeNewest removes segs, newest first: a removal cut short leaves the
// oldest as it was, whose header names the segment before it, which the
// snapshot's members file says it holds (removed oldest first, a crash
// left a later segment oldest, naming one the file says the snapshot
// lacks: a healthy member's next start read a gap, found by review). The
// ones left have no gap between them either way.
func removeNewest(path string, segs []Segment) error {
	for i := len(segs) - 1; i >= 0; i-- {
		if err := removeFile(segs[i].Path); err != nil {
			return errors.Join(err, syncDir(path))
		}
	}
	if len(segs) > 0 {
		return syncDir(path)
	}
	return nil
}

// MoveAside renames the snapshot at path and every segment of its log,
// those that exist, with suffix appended, and returns the new names. It
// never renames over a file: a name taken (two resets within the clock's
// resolution, or a clock set back) gets ".1", ".2" and so on after it.
// The snapshot goes first: cut short, it leaves segments without their
// snapshot, which the next start finds (ReadStats.FollowsSnapshot) and
// moves aside too.
func MoveAside(path, suffix string) ([]string, error) {
	segs, err := Segments(path)
	if err != nil {
		return nil, err
	}
	paths := []string{path}
	for _, s := range segs {
		paths = append(paths, s.Path)
	}
	var moved []string
	for _, p := range paths {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		to := p + suffix
		for i := 1; ; i++ {
			_, err := os.Lstat(to)
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			if err != nil { // a name too long, say: it looped for ever (found by review)
				return moved, err
			}
			if i > 1000 {
				return moved, fmt.Errorf("no free name to move %s aside to", p)
			}
			to = fmt.Sprintf("%s%s.%d", p, suffix, i)
		}
		if err := os.Rename(p, to); err != nil {
			return moved, err
		}
		moved = append(moved, to)
	}
	return moved, syncDir(path)
}
