// Package await waits, in tests, for a condition that other goroutines (or
// other processes) make true: it polls the condition with a deadline, so
// that a test neither sleeps a fixed time nor hangs.
package await

import (
	"time"
)

// TB is what Until needs of *testing.T and *testing.B.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Until polls cond every few milliseconds until it holds, and fails the
// test with the formatted message if it does not within timeout. An
// argument that is a func() any is called when the message is made: a
// figure read at the deadline (an argument read at the call says what
// held before the wait).
func Until(t TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+format, append([]any{timeout}, late(args)...)...)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// late returns args with each func() any replaced by what it returns now.
func late(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		if f, ok := a.(func() any); ok {
			a = f()
		}
		out[i] = a
	}
	return out
}
