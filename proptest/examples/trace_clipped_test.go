package examples

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/proptest"
)

// bigState is an object whose state prints as 64 KiB.
type bigState struct{ proptest.Object }

func (b bigState) State() any { return fmt.Sprint(b.Object.State()) + strings.Repeat("x", 64<<10) }

// TestTraceClipsStates: the trace of a failing run prints each member's
// state clipped, as a failure's message does, in its per-step state
// lines and its converged line: a type whose states grew wrote them
// whole, megabytes of a run's trace (found by review).
func TestTraceClipsStates(t *testing.T) {
	setFlags(t, "rapid.seed", "1", "rapid.nofailfile", "true")
	path := filepath.Join(t.TempDir(), "trace.txt")
	spec := counterSpec(func(held, received int64) int64 { return max(held, received) })
	newObj := spec.New
	spec.New = func(name string, inc int, now func() int64) (proptest.Object, error) {
		o, err := newObj(name, inc, now)
		return bigState{o}, err
	}
	spec.TraceFile = path
	if rec := runRec("BigState", proptest.TypeProperty(spec)); !rec.Failed() {
		t.Fatal("a model handed strings for counts passed")
	}
	trace, err := os.ReadFile(path)
	if err != nil || len(trace) == 0 {
		t.Fatalf("no trace: %v", err)
	}
	for i, line := range strings.Split(string(trace), "\n") {
		if len(line) > 16<<10 {
			t.Fatalf("trace line %d is %d bytes: %.80s...", i+1, len(line), line)
		}
	}
}
