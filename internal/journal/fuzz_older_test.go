package journal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadOlder: any bytes as an older segment, followed by a good newest
// one that names it, read without a panic: as records, or as an error
// wrapping ErrDamaged, with no entry (FuzzRead covers the newest only).
func FuzzReadOlder(f *testing.F) {
	path := filepath.Join(f.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: EveryWrite}, ReadStats{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		r := rec(i)
		b, _ := l.Append(&r, false)
		b.Wait()
	}
	if _, err := l.Rotate(); err != nil {
		f.Fatal(err)
	}
	r := rec(9)
	b, _ := l.Append(&r, false)
	b.Wait()
	l.Close(false)
	older, _ := os.ReadFile(segmentPath(path, 1))
	newest, _ := os.ReadFile(segmentPath(path, 2))
	if len(older) == 0 || len(newest) == 0 {
		f.Fatal("no segments written")
	}
	f.Add(older)
	f.Add(older[:len(older)-3])
	f.Add(append(append([]byte{}, older...), 0, 0, 0))
	p := filepath.Join(f.TempDir(), "snap")
	if err := os.WriteFile(segmentPath(p, 2), newest, 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(segmentPath(p, 1), b, 0o644); err != nil {
			t.Fatal(err)
		}
		recs, _, err := Read(p)
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("error %v does not wrap ErrDamaged", err)
			}
			if len(recs) != 0 {
				t.Fatalf("%d entries with an error", len(recs))
			}
			return
		}
		if len(recs) > len(b)+len(newest) {
			t.Fatalf("%d records from %d bytes", len(recs), len(b))
		}
	})
}
