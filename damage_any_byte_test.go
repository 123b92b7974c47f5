package bcache

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDamageAtAnyByteIsRefusedOrHarmless: a member's files (snapshot,
// members file, write log, lineage mark) damaged at any one byte, or cut
// short anywhere, either make New fail or restore exactly what the member
// held: never a deleted key back, an older value, or a write lost quietly.
func TestDamageAtAnyByteIsRefusedOrHarmless(t *testing.T) {
	if testing.Short() {
		t.Skip("many starts")
	}
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	for _, k := range []string{"a", "b", "c"} {
		if err := a.Set(k, []byte(k+"1"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.writeSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := a.Set("d", []byte("d1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if err := a.Set("b", []byte("b2"), 0); err != nil {
		t.Fatal(err)
	}
	image := crashImage(t, path)
	mustClose(t, a)
	want := map[string]string{"b": "b2", "c": "c1", "d": "d1"}

	entries, err := os.ReadDir(filepath.Dir(image))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".lock") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(image), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	try := func(name, what string, damaged []byte) {
		t.Helper()
		dir := t.TempDir()
		for n, b := range files {
			if n == name {
				b = damaged
			}
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c, err := New(syncConfig(filepath.Join(dir, filepath.Base(image)), SyncWrite))
		if err != nil {
			if !errors.Is(err, ErrSnapshot) && !errors.Is(err, ErrWriteLog) && !errors.Is(err, ErrAheadOfClock) {
				t.Errorf("%s %s: New: %v, not ErrSnapshot or ErrWriteLog", name, what, err)
			}
			return
		}
		defer c.Close()
		got := map[string]string{}
		for _, k := range []string{"a", "b", "c", "d"} {
			if v, ok := c.Get(k); ok {
				got[k] = string(v)
			}
		}
		// A log's last frame damaged reads as a crash's torn end (README,
		// "a crash tears the last write alone"): its write, b2, goes.
		torn := strings.Contains(name, ".log.") && got["b"] == "b1"
		if len(got) != len(want) || (got["b"] != want["b"] && !torn) || got["c"] != want["c"] || got["d"] != want["d"] {
			t.Errorf("%s %s: started, holding %v; want %v", name, what, got, want)
		}
	}
	for name, b := range files {
		t.Logf("%s: %d bytes", name, len(b))
		for i := range b {
			for _, bit := range []byte{0x01, 0x80} {
				d := append([]byte(nil), b...)
				d[i] ^= bit
				try(name, "flipped at "+strconv.Itoa(i), d)
			}
		}
		if strings.Contains(name, ".log.") {
			continue // a log cut short is a torn end: its last writes go
		}
		for n := range len(b) {
			try(name, "cut to "+strconv.Itoa(n), b[:n])
		}
	}
}
