package proptest

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/rapidfail"
	"github.com/bcache-go/bcache/lww"
	"github.com/bcache-go/bcache/transport"
)

// stamped is a last-writer-wins register of one key, stamped by the
// member's clock, ties broken by the writer's name; if refuseAhead, a
// stamp ahead of its own clock is refused (as a replica guarding against
// a peer's runaway clock might, with nothing to take it later).
type stamped struct {
	name, writer string
	at           int64
	members      []string
	phys         func() int64
	refuseAhead  bool
}

func (s *stamped) frame() []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(s.at)), s.writer...)
}

func (s *stamped) Do(op Op) (any, []transport.Envelope) {
	s.at, s.writer = s.phys(), s.name
	return nil, s.Sync("")
}

func (s *stamped) Receive(_ string, p []byte) []transport.Envelope {
	at, writer := int64(binary.BigEndian.Uint64(p)), string(p[8:])
	if s.refuseAhead && at > s.phys() {
		return nil
	}
	if at > s.at || at == s.at && writer > s.writer {
		s.at, s.writer = at, writer
	}
	return nil
}

func (s *stamped) Tick() []transport.Envelope { return nil }

func (s *stamped) Sync(peer string) []transport.Envelope {
	if s.writer == "" {
		return nil
	}
	var out []transport.Envelope
	for _, m := range s.members {
		if m != s.name && (peer == "" || m == peer) {
			out = append(out, transport.Envelope{To: m, Payload: s.frame()})
		}
	}
	return out
}

func (s *stamped) SetMembers(names []string) { s.members = slices.Clone(names) }
func (s *stamped) State() any                { return fmt.Sprint(s.at, s.writer) }

func stampedSpec(refuseAhead bool, skew time.Duration) Spec {
	return Spec{
		New: func(name string, inc int, phys func() int64) (Object, error) {
			return &stamped{name: fmt.Sprint(name, "#", inc), phys: phys, refuseAhead: refuseAhead}, nil
		},
		Ops:     []OpKind{{Name: "write"}},
		Model:   func() Model { return passingModel{} },
		MaxSkew: skew,
	}
}

// TestSkewCatchesATypeThatRefusesStampsAhead: with MaxSkew, members'
// clocks differ, and a register that refuses stamps ahead of its own
// clock fails to converge; without it every member read one clock and
// the type passed (the README said a Spec got the store harness's
// faults, skew among them: found by review). The register that takes
// any stamp passes with skew.
func TestSkewCatchesATypeThatRefusesStampsAhead(t *testing.T) {
	if f := rapidfail.Failure(t, "RefusesAhead_NoSkew", TypeProperty(stampedSpec(true, 0))); f != "" {
		t.Fatalf("without skew, the register refusing stamps ahead failed: %s", f)
	}
	f := rapidfail.Failure(t, "RefusesAhead_Skew", TypeProperty(stampedSpec(true, 10*time.Second)))
	if !strings.Contains(f, "not converged") {
		t.Fatalf("with skew, the register refusing stamps ahead: %q, want a failure to converge", f)
	}
	if f := rapidfail.Failure(t, "TakesAny_Skew", TypeProperty(stampedSpec(false, 10*time.Second))); f != "" {
		t.Fatalf("with skew, the register taking any stamp failed: %s", f)
	}
	bad := stampedSpec(false, 0)
	bad.Weights = map[string]int{"skew": 1}
	if f := rapidfail.Failure(t, "SkewWithoutMaxSkew", TypeProperty(bad)); !strings.Contains(f, "MaxSkew") {
		t.Fatalf("a skew weight without MaxSkew: %q, want an error naming MaxSkew", f)
	}
}

// TestHarnessStoreFollowsAStepBack: the node tells its replica of a step
// back of the clock (transport.ClockStepper), but the harness's
// StoreReplica handed the node its rejectLog, which embeds the
// transport.Replica interface and so hid StepBack: the production store
// under the harness kept its sync mark ahead of the clock, and the
// harness's skew action never reached the step back (found by review).
func TestHarnessStoreFollowsAStepBack(t *testing.T) {
	now := int64(10 * time.Hour)
	cfg := DefaultStoreConfig()
	cfg.Horizon = time.Hour
	cfg.Vary = nil
	r, err := NewStoreReplica("n0", 1, func() int64 { return now }, cfg)
	if err != nil {
		t.Fatal(err)
	}
	step := int64(10 * time.Minute)
	for i := range 64 {
		r.s.Write(crdt.Record{Key: fmt.Sprint("d", i), Tombstone: true, Time: crdt.Timestamp{Wall: now - int64(time.Hour) - step/2, Node: 2}})
	}
	r.node.Tick(now)
	r.s.MarkSynced(now) // a session completed at now
	now -= step         // NTP steps the clock back
	r.node.Tick(now)    // the node sees it, and tells its replica
	now += step         // the clock is back where the mark was read
	if got := r.s.Collect(now, false, lww.NoStable); len(got) != 0 {
		t.Fatalf("collected %d tombstones dead since after the mark, moved back by the step, less the horizon", len(got))
	}
}
