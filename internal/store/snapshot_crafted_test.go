package store

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// TestCraftedSnapshotsWithAGoodChecksum: a snapshot damaged at a byte
// (at 500 places spread over it, four ways each), or cut short there, and
// given a checksum that matches (a file crafted, or damaged before it was
// summed) is refused with ErrSnapshot or read within the protocol's
// limits: never a panic. (At every byte: two minutes under the race
// detector.)
func TestCraftedSnapshotsWithAGoodChecksum(t *testing.T) {
	s := mustStore(t, Config{})
	for _, r := range testRecords() {
		s.Apply(r, false, testNow)
	}
	var buf bytes.Buffer
	if _, err := s.WriteSnapshot(&buf, testNow); err != nil {
		t.Fatal(err)
	}
	seeds := [][]byte{buf.Bytes()}
	for _, f := range []string{"snapshot-v1.bcs", "snapshot-v2.bcs"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	resum := func(b []byte) []byte {
		body := b[:len(b)-4]
		return binary.LittleEndian.AppendUint32(bytes.Clone(body), crc32.Checksum(body, castagnoli))
	}
	for _, seed := range seeds {
		if len(seed) > 200_000 {
			seed = seed[:200_000]
		}
		step := max(1, len(seed)/500)
		for i := 0; i < len(seed)-4; i += step {
			for _, bit := range []byte{0x01, 0x10, 0x80, 0xff} {
				d := bytes.Clone(seed)
				d[i] ^= bit
				checkSnapshotRead(t, resum(d))
			}
			checkSnapshotRead(t, resum(append(bytes.Clone(seed[:i]), 0, 0, 0, 0)))
		}
	}
}
