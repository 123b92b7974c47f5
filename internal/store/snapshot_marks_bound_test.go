package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// craftMarksSnapshot writes a checksummed snapshot of the given version
// whose one 'W' section holds n watermarks of leaf 0 and every field 0
// (2 bytes each before version 3, 4 from it) to path.
func craftMarksSnapshot(t *testing.T, path string, version byte, n int) int64 {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	bw.WriteString(snapshotMagic)
	bw.WriteByte(version)
	bw.Write(binary.AppendUvarint(nil, uint64(DefaultDigestBits)))
	bw.Write(binary.AppendVarint(nil, 1))
	per := 2
	if version >= 3 {
		per = 4
	}
	writeSection(bw, 'W', make([]byte, per*n))
	writeSection(bw, 'E', nil)
	bw.Flush()
	b := binary.LittleEndian.AppendUint32(buf.Bytes(), crc32.Checksum(buf.Bytes(), castagnoli))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return int64(len(b))
}

// TestSnapshotWatermarksAreBoundedByTheLeaves: a snapshot holds a
// watermark a digest leaf at most (WriteSnapshot), so a 'W' section of
// more (a file crafted, or damaged before it was summed) is refused, and
// loading it allocates a bounded amount a byte of file, as loading
// records does (TestSnapshotLoadAllocatesBoundedPerByte). Appended one by
// one, watermarks of 2 bytes (version 2) took a 32-byte Mark each, grown
// by copies: some 80 bytes allocated a byte of file.
func TestSnapshotWatermarksAreBoundedByTheLeaves(t *testing.T) {
	for _, version := range []byte{2, snapshotVersion} {
		path := filepath.Join(t.TempDir(), "snap")
		size := craftMarksSnapshot(t, path, version, 1<<20) // 16 times the leaves
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		snap, err := LoadSnapshot(path, DefaultDigestBits)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("version %d: %d watermarks for %d leaves read", version, len(snap.Marks), 1<<DefaultDigestBits)
		}
		if alloc := float64(after.TotalAlloc-before.TotalAlloc) / float64(size); alloc > 30 {
			t.Errorf("version %d: loading a snapshot of %d bytes of watermarks allocated %.1f bytes a byte", version, size, alloc)
		}
	}
}

// TestLegacySnapshotLoadAllocatesBoundedPerByte: a version-1 snapshot of
// small records (8 bytes each, the least a version-1 record takes),
// checksum and all, is loaded with at most 30 bytes allocated a byte of
// file, as a version-4 one is (TestSnapshotLoadAllocatesBoundedPerByte).
// Its records were appended one by one to a slice grown by copies.
func TestLegacySnapshotLoadAllocatesBoundedPerByte(t *testing.T) {
	const n = 1 << 17
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	bw.WriteString(snapshotMagic)
	bw.WriteByte(1)
	bw.Write(binary.AppendUvarint(nil, uint64(DefaultDigestBits)))
	bw.Write(binary.AppendVarint(nil, 1))
	frame := []byte{1, 4, 0x97, 0, 0, 0xdd}
	frame = binary.BigEndian.AppendUint32(frame, n)
	for range n {
		frame = append(frame, 0x97, 0xa0, 0xc0, 0, 0, 0, 0, 0)
	}
	frame = append(frame, 0xc0, 0x90, 0xc2, 0xc2)
	writeSection(bw, 'R', frame)
	writeSection(bw, 'W', nil)
	writeSection(bw, 'E', nil)
	bw.Flush()
	b := binary.LittleEndian.AppendUint32(buf.Bytes(), crc32.Checksum(buf.Bytes(), castagnoli))
	path := filepath.Join(t.TempDir(), "snap")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	snap, err := LoadSnapshot(path, DefaultDigestBits)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Records) != n {
		t.Fatalf("%d records read, want %d", len(snap.Records), n)
	}
	limit := 30.0 // 63 when its records grew by copies
	if raceEnabled {
		limit = 40 // the race detector's build allocates 31 here
	}
	if alloc := float64(after.TotalAlloc-before.TotalAlloc) / float64(len(b)); alloc > limit {
		t.Errorf("loading a version-1 snapshot of %d bytes (%d records) allocated %.1f bytes a byte", len(b), n, alloc)
	}
	runtime.KeepAlive(snap)
}
