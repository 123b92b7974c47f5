package bcache

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// Snapshots keep a member's records across a restart (Config.SnapshotPath):
// an edge member that restarts while its peers are out of reach serves what
// it held instead of starting empty, and catches up when a peer answers.
//
// A snapshot holds every record (values, tombstones, evicted versions) and
// the GC watermark of every digest bucket: restoring the records without
// the watermarks would let the member accept again an old write whose
// delete it had already collected. It does not hold the member's synced
// mark: a restored member collects nothing until it completes an exchange
// with a peer (or, with no peers configured, finds itself alone), exactly
// like a member back from an absence; the rules of package lww then keep
// its old records from resurrecting anything the cluster deleted meanwhile.
// Records are restored as anti-entropy receives them: through the clock's
// drift check (a record more than MaxClockDrift ahead of the local clock is
// skipped and counted), and moving the clock past each one, so that every
// later write wins over them.
//
// File format, version 1:
//
//	magic      "bcache snapshot\n"
//	version    1 byte: 1
//	header     uvarint digest bits, varint time written (Unix ns)
//	sections   a kind byte, a uvarint length, then that many bytes:
//	  'R'      records: one wire frame of package transport, a Repair
//	           message whose Records are the records
//	  'W'      watermarks: pairs of uvarint digest leaf, varint wall (ns)
//	  'E'      the end, empty
//	checksum   4 bytes, little-endian CRC-32C of every byte before them
//
// The file is written to a temporary file in the same directory, synced,
// and renamed over the old one, so a crash while writing leaves the
// previous snapshot whole (and, at worst, a stray temporary file). The
// records are wire frames: a release reads the snapshots of releases that
// share its wire version (wire.WireVersion), and refuses others with
// ErrSnapshot.

const (
	snapshotMagic   = "bcache snapshot\n"
	snapshotVersion = 1
	// snapshotChunk is the record bytes per 'R' section.
	snapshotChunk = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snapshot is a snapshot's content.
type snapshot struct {
	written int64
	records []crdt.Record
	marks   []mark
}

// mark is the GC watermark of one leaf of the whole cache's digest.
type mark struct {
	leaf uint32
	wall int64
}

// writeSnapshot saves the member's state to Config.SnapshotPath. It copies
// one shard's records at a time, under the shard's lock, and encodes them
// after releasing it; values are never modified in place, so the copies
// share them.
func (c *Cache) writeSnapshot() error {
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	records := 0
	err := saveSnapshot(c.cfg.SnapshotPath, c.phys(), c.codec(), func(e *snapshotEncoder) error {
		var recs []crdt.Record
		for i := range c.shards {
			s := &c.shards[i]
			s.mu.Lock()
			recs = recs[:0]
			s.m.Range(func(r crdt.Record) bool {
				recs = append(recs, r)
				return true
			})
			for leaf := range uint32(1 << (digestBits - shardBits)) {
				if w, ok := s.m.Watermark(leaf); ok {
					e.mark(uint32(i)<<(digestBits-shardBits)|leaf, w)
				}
			}
			s.mu.Unlock()
			if err := e.records(recs); err != nil {
				return err
			}
			records += len(recs)
		}
		clear(recs)
		return nil
	})
	if err != nil {
		c.stats.snapshotErrors.Add(1)
		return fmt.Errorf("bcache: snapshot: %w", err)
	}
	c.stats.snapshots.Add(1)
	c.log.Debug().Int("records", records).Str("path", c.cfg.SnapshotPath).Msg("snapshot written")
	return nil
}

// codec encodes and decodes snapshot records within the member's limits.
func (c *Cache) codec() *wire.Codec {
	return wire.NewCodec(wire.Limits{MaxKey: c.cfg.MaxKeySize, MaxValue: c.cfg.MaxValueSize})
}

// saveSnapshot writes a snapshot to path, atomically: the header, what fill
// gives the encoder, the watermarks, the end and the checksum.
func saveSnapshot(path string, written int64, codec *wire.Codec, fill func(*snapshotEncoder) error) (err error) {
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
	sum := crc32.New(castagnoli)
	e := &snapshotEncoder{w: bufio.NewWriterSize(io.MultiWriter(f, sum), 64<<10), codec: codec}
	e.w.WriteString(snapshotMagic)
	e.w.WriteByte(snapshotVersion)
	e.w.Write(binary.AppendUvarint(nil, digestBits))
	e.w.Write(binary.AppendVarint(nil, written))
	if err := fill(e); err != nil {
		return err
	}
	e.section('W', e.marks)
	e.section('E', nil)
	if err := e.w.Flush(); err != nil { // a write error sticks in the writer
		return err
	}
	if _, err := f.Write(binary.LittleEndian.AppendUint32(nil, sum.Sum32())); err != nil {
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
	if d, err := os.Open(filepath.Dir(path)); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	return nil
}

// snapshotEncoder writes the sections of a snapshot.
type snapshotEncoder struct {
	w     *bufio.Writer
	codec *wire.Codec
	frame []byte
	marks []byte // the 'W' section, written last
}

// records writes recs as 'R' sections of about snapshotChunk bytes.
func (e *snapshotEncoder) records(recs []crdt.Record) error {
	for start := 0; start < len(recs); {
		end, size := start, 0
		for end < len(recs) && (end == start || size+wire.RecordSize(&recs[end]) <= snapshotChunk) {
			size += wire.RecordSize(&recs[end])
			end++
		}
		var err error
		if e.frame, err = e.codec.Encode(e.frame[:0], &wire.Repair{Records: recs[start:end]}); err != nil {
			return err
		}
		e.section('R', e.frame)
		start = end
	}
	return nil
}

// mark notes the watermark of a leaf of the whole cache's digest.
func (e *snapshotEncoder) mark(leaf uint32, wall int64) {
	e.marks = binary.AppendUvarint(e.marks, uint64(leaf))
	e.marks = binary.AppendVarint(e.marks, wall)
}

func (e *snapshotEncoder) section(kind byte, payload []byte) {
	e.w.WriteByte(kind)
	e.w.Write(binary.AppendUvarint(nil, uint64(len(payload))))
	e.w.Write(payload)
}

// errNoSnapshot is returned by loadSnapshot when path does not exist.
var errNoSnapshot = errors.New("no snapshot")

// loadSnapshot reads and checks the snapshot at path. Nothing of a file
// that fails a check is returned: a snapshot is restored whole or not at
// all.
func loadSnapshot(path string, codec *wire.Codec) (snapshot, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return snapshot{}, errNoSnapshot
	}
	if err != nil {
		return snapshot{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return snapshot{}, err
	}
	if info.Size() < int64(len(snapshotMagic))+1+4 {
		return snapshot{}, fmt.Errorf("%w: %s: %d bytes, too short", ErrSnapshot, path, info.Size())
	}
	// The checksum covers everything but its own 4 bytes; the reader never
	// sees them, so every length can be checked against what is left.
	body := info.Size() - 4
	r := &snapshotReader{r: bufio.NewReaderSize(io.LimitReader(f, body), 64<<10), sum: crc32.New(castagnoli), left: body}
	snap, err := decodeSnapshot(r, codec)
	if err != nil {
		return snapshot{}, fmt.Errorf("%w: %s: %w", ErrSnapshot, path, err)
	}
	if r.left != 0 {
		return snapshot{}, fmt.Errorf("%w: %s: %d bytes after the end section", ErrSnapshot, path, r.left)
	}
	var want [4]byte
	if _, err := io.ReadFull(f, want[:]); err != nil {
		return snapshot{}, fmt.Errorf("%w: %s: checksum: %w", ErrSnapshot, path, err)
	}
	if got := r.sum.Sum32(); got != binary.LittleEndian.Uint32(want[:]) {
		return snapshot{}, fmt.Errorf("%w: %s: checksum mismatch (file corrupt or truncated)", ErrSnapshot, path)
	}
	return snap, nil
}

// snapshotReader reads a snapshot's body, summing what it reads and
// counting what is left of it.
type snapshotReader struct {
	r    *bufio.Reader
	sum  hash.Hash32
	left int64
	one  [1]byte // ReadByte's byte, summed without an allocation
}

func (r *snapshotReader) ReadByte() (byte, error) {
	b, err := r.r.ReadByte()
	if err != nil {
		return 0, io.ErrUnexpectedEOF
	}
	r.one[0] = b
	r.sum.Write(r.one[:])
	r.left--
	return b, nil
}

// read reads exactly n bytes, n having been checked against what is left.
func (r *snapshotReader) read(n int64) ([]byte, error) {
	if n > r.left {
		return nil, fmt.Errorf("a %d-byte section with %d bytes left", n, r.left)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.r, b); err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	r.sum.Write(b)
	r.left -= n
	return b, nil
}

func decodeSnapshot(r *snapshotReader, codec *wire.Codec) (snapshot, error) {
	var snap snapshot
	magic, err := r.read(int64(len(snapshotMagic)))
	if err != nil || string(magic) != snapshotMagic {
		return snap, errors.New("not a bcache snapshot")
	}
	if v, err := r.ReadByte(); err != nil || v != snapshotVersion {
		return snap, fmt.Errorf("format version %d, want %d", v, snapshotVersion)
	}
	if bits, err := binary.ReadUvarint(r); err != nil || bits != digestBits {
		return snap, fmt.Errorf("digest of %d bits, want %d", bits, digestBits)
	}
	if snap.written, err = binary.ReadVarint(r); err != nil {
		return snap, err
	}
	for {
		kind, err := r.ReadByte()
		if err != nil {
			return snap, errors.New("no end section")
		}
		n, err := binary.ReadUvarint(r)
		if err != nil || n > uint64(r.left) {
			return snap, fmt.Errorf("section %q: bad length", kind)
		}
		payload, err := r.read(int64(n))
		if err != nil {
			return snap, err
		}
		switch kind {
		case 'R':
			m, err := codec.Decode(payload)
			if err != nil {
				return snap, fmt.Errorf("records: %w", err)
			}
			rep, ok := m.(*wire.Repair)
			if !ok {
				return snap, fmt.Errorf("records: a %T message", m)
			}
			snap.records = append(snap.records, rep.Records...)
		case 'W':
			if snap.marks, err = decodeMarks(snap.marks, payload); err != nil {
				return snap, err
			}
		case 'E':
			if n != 0 {
				return snap, errors.New("end section not empty")
			}
			return snap, nil
		default:
			return snap, fmt.Errorf("unknown section %q", kind)
		}
	}
}

func decodeMarks(dst []mark, b []byte) ([]mark, error) {
	br := bytes.NewReader(b)
	for br.Len() > 0 {
		leaf, err := binary.ReadUvarint(br)
		if err != nil || leaf >= 1<<digestBits {
			return dst, errors.New("watermarks: bad leaf")
		}
		wall, err := binary.ReadVarint(br)
		if err != nil {
			return dst, errors.New("watermarks: bad wall")
		}
		dst = append(dst, mark{leaf: uint32(leaf), wall: wall})
	}
	return dst, nil
}

// restore applies a snapshot to a new member, before it starts
// replicating: the records first, as anti-entropy would receive them, then
// the watermarks (a record the map holds may be older than its bucket's
// watermark, and must not be rejected by it).
func (c *Cache) restore(snap snapshot) {
	now := c.phys()
	var applied, drifted int
	for _, rec := range snap.records {
		if err := c.clock.Update(rec.Time); err != nil {
			drifted++
			continue
		}
		if c.apply(rec, false, now) == crdt.Applied {
			applied++
		}
	}
	for _, m := range snap.marks {
		si, local := leafShard(m.leaf)
		s := &c.shards[si]
		s.mu.Lock()
		s.m.RaiseWatermark(local, m.wall)
		s.mu.Unlock()
	}
	c.stats.restored.Add(uint64(applied))
	c.stats.driftRejects.Add(uint64(drifted))
	ev := c.log.Info()
	if drifted > 0 {
		ev = c.log.Warn().Int("skipped_ahead_of_clock", drifted)
	}
	ev.Int("records", applied).Str("path", c.cfg.SnapshotPath).
		Dur("age", time.Duration(now-snap.written)).Msg("restored snapshot")
}
