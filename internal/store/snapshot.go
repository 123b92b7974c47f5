package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/bcache-go/bcache/crdt"
)

// Snapshots keep a member's records across a restart: an edge member that
// restarts while its peers are out of reach serves what it held instead of
// starting empty, and catches up when a peer answers.
//
// A snapshot holds every record (values, tombstones, evicted versions) and
// the GC watermark of every digest bucket: restoring the records without
// the watermarks would let the member accept again an old write whose
// delete it had already collected. It does not hold the member's synced
// mark: a restored member collects nothing until it completes an exchange
// with a peer (see Store.Collect), exactly like a member back from an
// absence, unless it is a founder (Config.Founder), which collects alone
// what is past the horizon as any founder does; the rules of package lww
// then keep its old records from resurrecting anything the cluster
// deleted meanwhile.
//
// File format, version 4:
//
//	magic      "bcache snapshot\n"
//	version    1 byte: 4
//	header     uvarint digest bits, varint time written (Unix ns)
//	sections   a kind byte, a uvarint length, then that many bytes:
//	  'R'      records, each: uvarint key length, key, uvarint flags
//	           (bit 0 tombstone, bit 1 evicted), varint wall, uvarint
//	           logical, uvarint node, varint expires, uvarint value
//	           length, value
//	  'W'      watermarks, each: uvarint digest leaf, varint wall (ns),
//	           uvarint logical, uvarint node
//	  'I'      the member's own node ids (its clocks', one per process;
//	           at most 64), newest first, each a uvarint: a peer's write
//	           over one of theirs is reported as superseding a write
//	           made here, also after restarts
//	  'E'      the end, empty
//	checksum   4 bytes, little-endian CRC-32C of every byte before them
//
// Version 3 differs in having no 'I' section. Version 2 differs in its
// watermarks, which hold only a wall time (a
// watermark then rejected every record of that nanosecond; it is read as
// the last timestamp of it). Version 1 differs from version 2 in its 'R'
// sections too, which hold a wire frame of the sync protocol's first
// version (see legacy.go). The record encoding of
// a snapshot is the snapshot's own, versioned with the file, and never
// follows the wire protocol: a member upgraded after a long absence reads
// the snapshot its old release wrote. testdata holds a version-1 file that
// a test reads.
//
// The file is written to a temporary file in the same directory, synced,
// and renamed over the old one, so a crash while writing leaves the
// previous snapshot whole (and a stray temporary file, which the next
// member on the path removes: RemoveTemps).

const (
	snapshotMagic   = "bcache snapshot\n"
	snapshotVersion = 4
	// snapshotChunk is the record bytes per 'R' section.
	snapshotChunk = 1 << 20
)

// ErrSnapshot is wrapped by every error that reading a damaged, truncated
// or foreign snapshot returns. Package bcache exports it as its own.
var ErrSnapshot = errors.New("bad snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot is what a snapshot file holds.
type Snapshot struct {
	Written int64 // when it was written, Unix ns
	Records []crdt.Record
	Marks   []Mark
	// Own is the node ids of the writer's clocks, newest first: this
	// process's and those before it whose writes it restored (version 4).
	Own []crdt.NodeID
}

// Mark is the GC watermark of one leaf of the store's digest.
type Mark struct {
	Leaf uint32
	Time crdt.Timestamp
}

// SaveSnapshot writes the store's records and watermarks to path,
// atomically, stamped with the time written. It copies them a few leaves
// of a shard at a time under its lock and writes without it.
func (s *Store) SaveSnapshot(path string, written int64) (records int, err error) {
	err = WriteFileAtomic(path, func(w io.Writer) error {
		records, err = s.WriteSnapshot(w, written)
		return err
	})
	return records, err
}

// WriteSnapshot writes the store's snapshot to w and returns the number of
// records written. It copies a shard's records a few leaves at a time
// (walkStep records), each leaf's with its watermark, under the shard's
// lock, and lets go of it between: a leaf's records are of one moment, a
// shard's not. It copied a whole shard under its lock: 4.7-4.9 ms a
// shard of 3,900 records (a million keys), 5.4-7.9 ms at 16,000.
func (s *Store) WriteSnapshot(w io.Writer, written int64) (int, error) {
	sum := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, sum), 64<<10)
	bw.WriteString(snapshotMagic)
	bw.WriteByte(snapshotVersion)
	bw.Write(binary.AppendUvarint(nil, uint64(s.digestBits)))
	bw.Write(binary.AppendVarint(nil, written))
	var recs []crdt.Record
	var chunk, marks []byte
	records := 0
	for i := range s.shards {
		sh := &s.shards[i]
		for leaf, done := uint32(0), false; !done; {
			// A step's leaves, their records and watermarks together: a
			// leaf's records and its watermark are of one moment.
			from := leaf
			sh.mu.Lock()
			recs = recs[:0]
			leaf, done = sh.m.RangeStep(leaf, walkStep, func(r crdt.Record) { recs = append(recs, r) })
			marks = s.appendMarks(marks, sh, from, leaf)
			sh.mu.Unlock()
			if betweenSteps != nil {
				betweenSteps(i, done)
			}
			for _, r := range recs {
				chunk = AppendRecord(chunk, &r)
				if len(chunk) >= snapshotChunk {
					writeSection(bw, 'R', chunk)
					chunk = chunk[:0]
				}
			}
			records += len(recs)
		}
	}
	clear(recs)
	if len(chunk) > 0 {
		writeSection(bw, 'R', chunk)
	}
	writeSection(bw, 'W', marks)
	var own []byte
	for _, id := range s.own.list() {
		own = binary.AppendUvarint(own, uint64(id))
	}
	writeSection(bw, 'I', own)
	writeSection(bw, 'E', nil)
	if err := bw.Flush(); err != nil { // a write error sticks in the writer
		return records, err
	}
	_, err := w.Write(binary.LittleEndian.AppendUint32(nil, sum.Sum32()))
	return records, err
}

// appendMarks appends the watermarks of shard sh's leaves in [from, to),
// sh held locked, as 'W' entries of the whole digest.
func (s *Store) appendMarks(dst []byte, sh *shard, from, to uint32) []byte {
	local := s.digestBits - s.shardBits
	for leaf := from; leaf < to; leaf++ {
		if w, ok := sh.m.Watermark(leaf); ok {
			dst = binary.AppendUvarint(dst, uint64(uint32(sh.id)<<local|leaf))
			dst = binary.AppendVarint(dst, w.Wall)
			dst = binary.AppendUvarint(dst, uint64(w.Logical))
			dst = binary.AppendUvarint(dst, uint64(w.Node))
		}
	}
	return dst
}

// AppendRecord appends r in the snapshot's record encoding (also the
// write log's, package journal).
func AppendRecord(dst []byte, r *crdt.Record) []byte {
	var flags uint64
	if r.Tombstone {
		flags |= 1
	}
	if r.Evicted {
		flags |= 2
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Key)))
	dst = append(dst, r.Key...)
	dst = binary.AppendUvarint(dst, flags)
	dst = binary.AppendVarint(dst, r.Time.Wall)
	dst = binary.AppendUvarint(dst, uint64(r.Time.Logical))
	dst = binary.AppendUvarint(dst, uint64(r.Time.Node))
	dst = binary.AppendVarint(dst, r.Expires)
	dst = binary.AppendUvarint(dst, uint64(len(r.Value)))
	return append(dst, r.Value...)
}

func writeSection(w *bufio.Writer, kind byte, payload []byte) {
	w.WriteByte(kind)
	w.Write(binary.AppendUvarint(nil, uint64(len(payload))))
	w.Write(payload)
}

// ErrRenamed is wrapped by WriteFileAtomic's error when the file was
// renamed into place and the directory's sync failed: the new file is
// there, and a power cut may bring the old one back.
var ErrRenamed = errors.New("renamed, not synced")

// WriteFileAtomic writes path through a synced temporary file renamed over
// it, and syncs the directory. Any error but one wrapping ErrRenamed leaves
// the file at path as it was.
func WriteFileAtomic(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is synced; until then a
	// power cut may bring the older snapshot back, so a write log must not
	// drop what only this one holds: the caller hears of a failure.
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%w: sync the snapshot's directory: %w", ErrRenamed, err)
	}
	return nil
}

// RemoveTemps removes the temporary files a snapshot of path being
// written left behind (a process killed while writing one), and returns
// how many it removed. Only the member that holds the path may call it.
func RemoveTemps(path string) (int, error) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return 0, err
	}
	prefix := filepath.Base(path) + ".tmp-"
	removed := 0
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if err := os.Remove(filepath.Join(filepath.Dir(path), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

// ErrNoSnapshot is returned by LoadSnapshot when the file does not exist.
var ErrNoSnapshot = errors.New("no snapshot")

// LoadSnapshot reads and checks the snapshot at path, for a store whose
// digest has digestBits. Nothing of a file that fails a check is returned:
// a snapshot is restored whole or not at all. Errors wrap ErrSnapshot, or
// ErrNoSnapshot for a missing file.
func LoadSnapshot(path string, digestBits int) (*Snapshot, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoSnapshot
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	// The checksum first, in one pass that holds nothing: decoded before
	// it was checked, a damaged file (a stretch of zeros reads as records
	// of 7 bytes each) took 66 times its size in memory before it was
	// refused, and a large one killed the process at every start, before
	// DamageReset could move it aside (found by review).
	if err := checkSum(f, info.Size()); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	// Then the decoding, which sums nothing again (a few milliseconds at
	// 100,000 keys): its bytes are those the checksum covered, the file
	// being one no writer changes in place (WriteSnapshot renames a new
	// file over it); and its every length is still checked against what
	// is left, whatever the bytes.
	snap, err := readSnapshot(f, info.Size(), digestBits, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return snap, nil
}

// checkSum checks the checksum at the end of the size bytes of r against
// the rest. Errors wrap ErrSnapshot; one reading r, as ReadSnapshot's.
func checkSum(r io.Reader, size int64) error {
	if size < int64(len(snapshotMagic))+1+4 {
		return fmt.Errorf("%w: %d bytes, too short", ErrSnapshot, size)
	}
	sum := crc32.New(castagnoli)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil {
		return fmt.Errorf("%w: reading it: %w", ErrSnapshot, err)
	}
	if string(magic) != snapshotMagic {
		return fmt.Errorf("%w: not a bcache snapshot", ErrSnapshot)
	}
	sum.Write(magic)
	if _, err := io.CopyN(sum, r, size-4-int64(len(magic))); err != nil {
		return fmt.Errorf("%w: reading it: %w", ErrSnapshot, err)
	}
	var want [4]byte
	if _, err := io.ReadFull(r, want[:]); err != nil {
		return fmt.Errorf("%w: reading it: %w", ErrSnapshot, err)
	}
	if sum.Sum32() != binary.LittleEndian.Uint32(want[:]) {
		return fmt.Errorf("%w: checksum mismatch (file corrupt or truncated)", ErrSnapshot)
	}
	return nil
}

// ReadSnapshot reads a whole snapshot of size bytes from r, for a store
// whose digest has digestBits. Errors wrap ErrSnapshot.
func ReadSnapshot(r io.Reader, size int64, digestBits int) (*Snapshot, error) {
	return readSnapshot(r, size, digestBits, true)
}

// readSnapshot is ReadSnapshot, which checks the checksum if sum (else
// the caller did, reading the same bytes: LoadSnapshot).
func readSnapshot(r io.Reader, size int64, digestBits int, sum bool) (*Snapshot, error) {
	if size < int64(len(snapshotMagic))+1+4 {
		return nil, fmt.Errorf("%w: %d bytes, too short", ErrSnapshot, size)
	}
	// The checksum covers everything but its own 4 bytes; the reader never
	// sees them, so every length can be checked against what is left.
	body := size - 4
	br := bufio.NewReaderSize(r, 64<<10)
	sr := &snapshotReader{r: bufio.NewReader(io.LimitReader(br, body)), left: body}
	if sum {
		sr.sum = crc32.New(castagnoli)
	}
	snap, err := decodeSnapshot(sr, digestBits)
	if err != nil && sr.readErr != nil {
		// The file could not be read (out of memory; on Windows, a range
		// another process locked): not a sign of damage, which the
		// caller must be able to tell (it moved a good snapshot aside
		// under DamageReset: found by review).
		return nil, fmt.Errorf("%w: reading it: %w", ErrSnapshot, sr.readErr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	if sr.left != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the end section", ErrSnapshot, sr.left)
	}
	if !sum {
		return snap, nil
	}
	var want [4]byte
	if _, err := io.ReadFull(br, want[:]); err != nil {
		return nil, fmt.Errorf("%w: checksum: %w", ErrSnapshot, err)
	}
	if got := sr.sum.Sum32(); got != binary.LittleEndian.Uint32(want[:]) {
		return nil, fmt.Errorf("%w: checksum mismatch (file corrupt or truncated)", ErrSnapshot)
	}
	return snap, nil
}

// snapshotReader reads a snapshot's body, summing what it reads (unless
// sum is nil) and counting what is left of it.
type snapshotReader struct {
	r       *bufio.Reader
	sum     hash.Hash32
	left    int64
	one     [1]byte // ReadByte's byte, summed without an allocation
	readErr error   // the first error reading, other than the file's end
}

// failed returns the error of a read that failed with err: the file's end
// is the body's end, too early; any other error is kept as readErr.
func (r *snapshotReader) failed(err error) error {
	if err != io.EOF && err != io.ErrUnexpectedEOF && r.readErr == nil {
		r.readErr = err
	}
	return io.ErrUnexpectedEOF
}

func (r *snapshotReader) ReadByte() (byte, error) {
	b, err := r.r.ReadByte()
	if err != nil {
		return 0, r.failed(err)
	}
	if r.sum != nil {
		r.one[0] = b
		r.sum.Write(r.one[:])
	}
	r.left--
	return b, nil
}

// read reads exactly n bytes, n having been checked against what is left.
func (r *snapshotReader) read(n int64) ([]byte, error) {
	if n > r.left {
		return nil, fmt.Errorf("a %d-byte section with %d bytes left", n, r.left)
	}
	if n > math.MaxInt { // where int has 32 bits, make panicked
		return nil, fmt.Errorf("a %d-byte section, more than this process can hold", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.r, b); err != nil {
		return nil, r.failed(err)
	}
	if r.sum != nil {
		r.sum.Write(b)
	}
	r.left -= n
	return b, nil
}

func decodeSnapshot(r *snapshotReader, digestBits int) (*Snapshot, error) {
	snap := new(Snapshot)
	// Each section's records in a slice of their number, copied once into
	// one at the end: appended to one slice, whose every growth copied it,
	// a file of small records took 74 times its size in allocations and 25
	// times live (found by review: 2 GiB for a 28 MiB snapshot).
	var parts [][]crdt.Record
	records := 0
	magic, err := r.read(int64(len(snapshotMagic)))
	if err != nil || string(magic) != snapshotMagic {
		return nil, errors.New("not a bcache snapshot")
	}
	version, err := r.ReadByte()
	if err != nil || version < 1 || version > snapshotVersion {
		return nil, fmt.Errorf("format version %d, want 1 to %d", version, snapshotVersion)
	}
	if bits, err := binary.ReadUvarint(r); err != nil || bits != uint64(digestBits) {
		return nil, fmt.Errorf("digest of %d bits, want %d", bits, digestBits)
	}
	if snap.Written, err = binary.ReadVarint(r); err != nil {
		return nil, err
	}
	for {
		kind, err := r.ReadByte()
		if err != nil {
			return nil, errors.New("no end section")
		}
		n, err := binary.ReadUvarint(r)
		if err != nil || n > uint64(r.left) {
			return nil, fmt.Errorf("section %q: bad length", kind)
		}
		payload, err := r.read(int64(n))
		if err != nil {
			return nil, err
		}
		switch kind {
		case 'R':
			var part []crdt.Record
			if version == 1 {
				part, err = decodeLegacyRecords(nil, payload)
			} else {
				part, err = DecodeRecords(make([]crdt.Record, 0, countRecords(payload)), payload)
			}
			if err != nil {
				return nil, fmt.Errorf("records: %w", err)
			}
			parts = append(parts, part)
			records += len(part)
		case 'W':
			if snap.Marks, err = decodeMarks(snap.Marks, payload, digestBits, version); err != nil {
				return nil, err
			}
		case 'I':
			if version < 4 {
				return nil, errors.New("own-ids section in a version before 4")
			}
			d := byteReader{b: payload}
			for len(d.b) > 0 && d.err == nil && len(snap.Own) < maxOwn {
				snap.Own = append(snap.Own, crdt.NodeID(d.uvarint("node id")))
			}
			if d.err != nil || len(d.b) > 0 {
				return nil, errors.New("own ids: bad or more than 64")
			}
		case 'E':
			if n != 0 {
				return nil, errors.New("end section not empty")
			}
			if records > 0 {
				snap.Records = make([]crdt.Record, 0, records)
				for i, part := range parts {
					snap.Records = append(snap.Records, part...)
					parts[i] = nil
				}
			}
			return snap, nil
		default:
			return nil, fmt.Errorf("unknown section %q", kind)
		}
	}
}

// maxKey and maxValue are the largest key and value a snapshot record may
// hold: the sync protocol's hard limits, not a member's own (a member whose
// MaxValueSize was lowered still reads its snapshot; values over its limit
// are restored as evicted versions).
const (
	maxKey   = 64 << 10
	maxValue = 16 << 20
)

// DecodeRecords appends the records of a version-2, -3 or -4 'R' section (or
// of a write-log frame) to dst: every length is checked against what is
// left, and values are copied out of b.
func DecodeRecords(dst []crdt.Record, b []byte) ([]crdt.Record, error) {
	d := byteReader{b: b}
	for len(d.b) > 0 {
		r, err := d.record()
		if err != nil {
			return dst, err
		}
		dst = append(dst, r)
	}
	return dst, nil
}

// countRecords returns the number of records a version-2, -3 or -4 'R'
// section b holds, as far as they decode (DecodeRecords finds what
// follows them bad).
func countRecords(b []byte) int {
	d := byteReader{b: b}
	n := 0
	for len(d.b) > 0 {
		d.bytes(maxKey, "key")
		d.uvarint("flags")
		d.varint("wall")
		d.uvarint("logical")
		d.uvarint("node")
		d.varint("expires")
		d.bytes(maxValue, "value")
		if d.err != nil {
			break
		}
		n++
	}
	return n
}

// DecodeRecord decodes the record at the start of b, as AppendRecord
// encodes it, and returns it and its length in b.
func DecodeRecord(b []byte) (crdt.Record, int, error) {
	d := byteReader{b: b}
	r, err := d.record()
	return r, len(b) - len(d.b), err
}

// record reads one record; its value is copied out of the buffer.
func (d *byteReader) record() (crdt.Record, error) {
	var r crdt.Record
	key := d.bytes(maxKey, "key")
	flags := d.uvarint("flags")
	r.Time.Wall = d.varint("wall")
	logical := d.uvarint("logical")
	r.Time.Node = crdt.NodeID(d.uvarint("node"))
	r.Expires = d.varint("expires")
	value := d.bytes(maxValue, "value")
	switch {
	case d.err != nil:
		return r, d.err
	case flags > 3 || logical > 1<<32-1:
		return r, fmt.Errorf("record %q: flags %d, logical %d out of range", clipKey(key), flags, logical)
	}
	r.Key, r.Time.Logical = string(key), uint32(logical)
	r.Tombstone, r.Evicted = flags&1 != 0, flags&2 != 0
	if len(value) > 0 {
		r.Value = bytes.Clone(value) // not the section's buffer: a record may outlive the others
	}
	return r, nil
}

// clipKey is key as an error names it: its first 32 bytes, as the
// package bcache's errors do (a key of 64 KiB, %q-quoted whole, made an
// error of 256 KiB).
func clipKey(key []byte) string {
	if len(key) > 32 {
		return string(key[:32]) + "..."
	}
	return string(key)
}

// byteReader reads varints and length-prefixed bytes from b, remembering
// the first error; every length is checked against what is left.
type byteReader struct {
	b   []byte
	err error
}

func (d *byteReader) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated or bad %s", what)
	}
}

func (d *byteReader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *byteReader) varint(what string) int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a uvarint length of at most limit and that many bytes,
// shared with the section's buffer.
func (d *byteReader) bytes(limit int, what string) []byte {
	n, k := binary.Uvarint(d.b)
	if k <= 0 { // not d.uvarint(what + " length"): that allocated the label at every call
		d.fail(what + " length")
		d.b = nil
		return nil
	}
	d.b = d.b[k:]
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail(what)
		d.b = nil
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// decodeMarks appends the watermarks of a 'W' section to dst. A version-1
// or -2 watermark, a wall time, becomes the last timestamp of that
// nanosecond: it rejected every record of it. A snapshot holds one a
// leaf at most (digestBits at most 24: crdt.CheckTreeBits): more are
// refused, as they are read (appended one by one without a bound, a
// crafted or damaged section of 2-byte watermarks took 97 bytes of
// memory a byte of file, found by review).
func decodeMarks(dst []Mark, b []byte, digestBits int, version byte) ([]Mark, error) {
	d := byteReader{b: b}
	for len(d.b) > 0 {
		if len(dst) >= 1<<digestBits {
			return dst, fmt.Errorf("watermarks: more than the digest's %d leaves", 1<<digestBits)
		}
		leaf := d.uvarint("watermark leaf")
		t := crdt.Timestamp{Wall: d.varint("watermark wall"), Logical: math.MaxUint32, Node: math.MaxUint64}
		if version >= 3 {
			logical := d.uvarint("watermark logical")
			if logical > math.MaxUint32 {
				d.fail("watermark logical")
			}
			t.Logical, t.Node = uint32(logical), crdt.NodeID(d.uvarint("watermark node"))
		}
		if d.err != nil || leaf >= 1<<digestBits {
			return dst, errors.New("watermarks: bad leaf or time")
		}
		dst = append(dst, Mark{Leaf: uint32(leaf), Time: t})
	}
	return dst, nil
}
