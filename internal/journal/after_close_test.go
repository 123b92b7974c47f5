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

// dirState returns the names and contents of the files in dir.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func sameDir(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestNothingIsWrittenAfterClose: after Close, Flush, Rotate and
// RemoveBefore return ErrClosed and touch no file. Rotate started a new
// segment after Close (after Close(true) too, which had removed them
// all: a segment naming one that is gone), and RemoveBefore removed
// segments the closed log no longer owned.
func TestNothingIsWrittenAfterClose(t *testing.T) {
	for _, mode := range []Mode{EveryWrite, Interval} {
		for _, covered := range []bool{false, true} {
			path := filepath.Join(t.TempDir(), "snap")
			l, err := Open(Options{Path: path, Mode: mode, Interval: time.Hour}, ReadStats{})
			if err != nil {
				t.Fatal(err)
			}
			r := rec(0)
			if _, err := l.Append(&r, false); err != nil {
				t.Fatal(err)
			}
			mustRotate(t, l)
			r = rec(1)
			if _, err := l.Append(&r, false); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(covered); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Dir(path)
			before := dirState(t, dir)
			if err := l.Flush(); !errors.Is(err, ErrClosed) {
				t.Errorf("mode %d covered %v: Flush after Close = %v, want ErrClosed", mode, covered, err)
			}
			if n, err := l.Rotate(); !errors.Is(err, ErrClosed) {
				t.Errorf("mode %d covered %v: Rotate after Close = %d, %v, want ErrClosed", mode, covered, n, err)
			}
			if err := l.RemoveBefore(2); !errors.Is(err, ErrClosed) {
				t.Errorf("mode %d covered %v: RemoveBefore after Close = %v, want ErrClosed", mode, covered, err)
			}
			if after := dirState(t, dir); !sameDir(before, after) {
				t.Errorf("mode %d covered %v: files changed after Close: %v before, %v after", mode, covered, names(before), names(after))
			}
		}
	}
}

func names(m map[string]string) []string {
	var ns []string
	for k, v := range m {
		ns = append(ns, fmt.Sprintf("%s (%d bytes)", k, len(v)))
	}
	slices.Sort(ns)
	return ns
}

// TestDiscardAfterCloseTouchesNoFile: a Discard after Close (whose second
// call returns nil) removed the closed log's segment, an empty one here
// (no frame was written), and a Discard after Close(true) failed on the
// segment Close had removed.
func TestDiscardAfterCloseTouchesNoFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: EveryWrite}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	before := dirState(t, filepath.Dir(path))
	if err := l.Discard(); !errors.Is(err, ErrClosed) {
		t.Errorf("Discard after Close = %v, want ErrClosed", err)
	}
	if after := dirState(t, filepath.Dir(path)); !sameDir(before, after) {
		t.Errorf("files changed by a Discard after Close: %v before, %v after", names(before), names(after))
	}
}
