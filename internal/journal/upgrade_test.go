package journal

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"slices"
	"testing"
	"time"
)

// TestUpgradeFromAVersion3LogKeepsItsRecords: a log left by a release
// before version 4, its newest segment of version 3 ending as a crash
// left it (a direct write's padding, or a torn frame), is read, opened by
// this release, written to, closed and read again: every record of both
// releases comes back, in either order of events, and no damage.
func TestUpgradeFromAVersion3LogKeepsItsRecords(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail func(b []byte, seed uint32) []byte
	}{
		{"whole", func(b []byte, _ uint32) []byte { return b }},
		{"padding", func(b []byte, _ uint32) []byte { return append(b, make([]byte, dioAlign-len(b)%dioAlign)...) }},
		{"torn frame", func(b []byte, seed uint32) []byte { r := rec(99); return append(b, frameOf(&r, seed)[:20]...) }},
		{"torn frame and padding", func(b []byte, seed uint32) []byte {
			r := rec(99)
			b = append(b, frameOf(&r, seed)[:20]...)
			return append(b, make([]byte, dioAlign-len(b)%dioAlign)...)
		}},
	} {
		for _, mode := range []Mode{EveryWrite, Interval} {
			t.Run(tc.name, func(t *testing.T) {
				path := t.TempDir() + "/snap"
				// Two segments of the release before: the older one whole,
				// the newest as the crash left it.
				b1, seed1 := v3Header("nonce #1")
				for i := range 2 {
					r := rec(i)
					b1 = append(b1, frameOf(&r, seed1)...)
				}
				os.WriteFile(segmentPath(path, 1), b1, 0o644)
				b2, seed2 := v3Header("nonce #2")
				for i := 2; i < 4; i++ {
					r := rec(i)
					b2 = append(b2, frameOf(&r, seed2)...)
				}
				os.WriteFile(segmentPath(path, 2), tc.tail(b2, seed2), 0o644)
				recs, st := mustRead(t, path)
				if !slices.Equal(keys(recs), []string{"k0", "k1", "k2", "k3"}) {
					t.Fatalf("the release before's log read %v, %+v", keys(recs), st)
				}
				l, err := Open(Options{Path: path, Mode: mode, From: 1, Interval: time.Millisecond}, st)
				if err != nil {
					t.Fatal(err)
				}
				appendAll(t, l, 4, 6)
				if err := l.Close(false); err != nil {
					t.Fatal(err)
				}
				recs, st, err = Read(path)
				if err != nil || !slices.Equal(keys(recs), []string{"k0", "k1", "k2", "k3", "k4", "k5"}) {
					t.Fatalf("after the upgrade: read %v, %+v, %v", keys(recs), st, err)
				}
				// And once more, a second start of this release.
				l, err = Open(Options{Path: path, Mode: mode, From: 1, Interval: time.Millisecond}, st)
				if err != nil {
					t.Fatal(err)
				}
				appendAll(t, l, 6, 7)
				l.Close(false)
				if recs, st, err = Read(path); err != nil || len(recs) != 7 {
					t.Fatalf("after a second start: read %v, %+v, %v", keys(recs), st, err)
				}
			})
		}
	}
}

// v3Header returns a version 3 header with the nonce nonce (8 bytes), and
// the seed of its frames' checksums.
func v3Header(nonce string) ([]byte, uint32) {
	b := append([]byte(headerMagic), 3)
	b = append(b, nonce...)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[len(headerMagic):], castagnoli))
	return b, crc32.Checksum(b[len(headerMagic)+1:headerLenV2], castagnoli)
}
