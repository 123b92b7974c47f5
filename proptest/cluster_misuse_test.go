package proptest

import (
	"errors"
	"strings"
	"testing"
)

// TestAClusterRefusesWhatNoProcessCouldDo: a write on a crashed member
// panics (it succeeded, and its deltas went out as the dead process's);
// Restart and RestartFrom of a member that is up are errors (Restart
// wiped it, unmarked as a bounce); a RestartFrom whose restore fails
// leaves the member down (it was left up, empty). Found by a review as a
// researcher would use the harness.
func TestAClusterRefusesWhatNoProcessCouldDo(t *testing.T) {
	c := newTestCluster(t, 2)
	c.Set(0, "k", []byte("v"), 0)
	if err := c.Restart(1); err == nil || !strings.Contains(err.Error(), "it is up") {
		t.Errorf("Restart of a member up: %v, want an error", err)
	}
	if err := c.RestartFrom(1, nil); err == nil || !strings.Contains(err.Error(), "it is up") {
		t.Errorf("RestartFrom of a member up: %v, want an error", err)
	}
	c.Crash(1)
	for op, f := range map[string]func(){
		"Set":    func() { c.Set(1, "k", []byte("w"), 0) },
		"Delete": func() { c.Delete(1, "k") },
	} {
		func() {
			defer func() {
				if p := recover(); p == nil || !strings.Contains(p.(string), "down") {
					t.Errorf("%s on a crashed member: recovered %v, want a panic saying it is down", op, p)
				}
			}()
			f()
		}()
	}
	if c.Net.Len() != 1 {
		t.Errorf("%d frames in flight, want n0's delta alone", c.Net.Len())
	}
	bad := errors.New("not a snapshot")
	if err := c.RestartFrom(1, bad); err == nil {
		t.Fatal("RestartFrom with a state the replica cannot restore: no error")
	}
	if !c.Down(1) {
		t.Error("a RestartFrom that failed left the member up")
	}
	if err := c.Restart(1); err != nil {
		t.Fatalf("Restart after the failed restore: %v", err)
	}
	if c.Down(1) {
		t.Error("restarted, the member is down")
	}
}
