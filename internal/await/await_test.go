package await

import (
	"fmt"
	"testing"
	"time"
)

// fatal records what Until fails with.
type fatal struct{ msg string }

func (*fatal) Helper() {}
func (f *fatal) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

// TestUntilReadsLateArgumentsAtTheDeadline: an argument given as a
// func() any is read when the wait fails, not when it starts.
func TestUntilReadsLateArgumentsAtTheDeadline(t *testing.T) {
	n := 0
	f := &fatal{}
	func() {
		defer func() {
			if r := recover(); r != f {
				panic(r)
			}
		}()
		Until(f, 20*time.Millisecond, func() bool { n++; return false }, "early %d, late %d", n, func() any { return n })
	}()
	if want := fmt.Sprintf("after 20ms: early 0, late %d", n); n < 2 || f.msg != want {
		t.Fatalf("failed with %q, want %q", f.msg, want)
	}
}
