package proptest

import (
	"strings"
	"testing"
	"time"
)

// A member that crashed and stays down is counted failed, for
// FailedTimeout (a minute here), by every live member: a delta of it
// delivered 30 s after the crash is kept in production, and the model
// must say so when it is not: members miswired to forget a failed member
// after 2 s lose k, and the model, with k among its keys, reports it.
// Config.LateFrames counted from the crash excused it, and the model
// reported nothing (found by review); it counts from the restart that
// ends a crashed incarnation (Cluster.incarnate).
func TestALateDeltaOfACrashedMemberStillCountedFailedIsChecked(t *testing.T) {
	// Delivered 30 s after the crash; the harness's horizon past it, so
	// that its rule (a frame later than Horizon-MaxDrift-2*MaxSkew after
	// its write) excuses nothing.
	run := func(failedFor, lateFrames time.Duration) string {
		return lateDeltaOfABouncedMember(t, lateDelta{down: true, tracked: true, failedFor: failedFor, lateFrames: lateFrames, horizon: 10 * time.Minute, late: 10})
	}
	if f := run(0, 0); f != "" {
		t.Fatalf("production config: %s", f)
	}
	if f := run(2*time.Second, time.Hour); !strings.Contains(f, "lost") {
		t.Fatalf("a failed member forgotten after 2 s, LateFrames an hour: the model reports no loss (%q): the scenario shows nothing", f)
	}
	if f := run(2*time.Second, 0); !strings.Contains(f, "lost") {
		t.Errorf("a failed member forgotten after 2 s: k lost, and the model, LateFrames counted from the crash, excused it (%q)", f)
	}
}
