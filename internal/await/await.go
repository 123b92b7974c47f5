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
// test with the formatted message if it does not within timeout.
func Until(t TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
