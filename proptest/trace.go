package proptest

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bcache-go/bcache/transport/sim"
	"github.com/bcache-go/bcache/transport/wire"
	"pgregory.net/rapid"
)

// The harness narrates each run as events in rapid's log: rapid prints
// them for the counterexample it shrank to (and for every run with
// -rapid.v), between its own lines that show the draws, so that a failure
// reads top to bottom as what happened, to whom, and what each message
// carried. Composite steps (a long absence, the final convergence) narrate
// their parts. Nothing is formatted unless rapid logs.

// event logs one event of the run, and records it when the run's trace
// goes to a file.
//
// The event is formatted as rapid logs it, and only then (rapid's Logf
// formats nothing in a run it does not log, which is every passing run
// without -rapid.v); the trace file gets the line rapid's log got. It was
// formatted for the file as well, in every run, passed or not: with
// TraceFile set every frame of every run was described (found by review).
// Formatted as it is logged, not when the run fails: what it prints (the
// members' states, a frame's bytes) changes as the run goes on.
func event(t *rapid.T, format string, args ...any) {
	t.Logf("  | %v", lazy(func() string { return recordEvent(t, format, args...) }))
}

// recordEvent formats one event of run t, and records it when the run's
// trace goes to a file.
func recordEvent(t *rapid.T, format string, args ...any) string {
	s := fmt.Sprintf(format, args...)
	if b, ok := recorders.Load(t); ok {
		b := b.(*strings.Builder)
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return s
}

// logEvent is event for a check that may run outside the harness (a
// regression test's testing.T).
func logEvent(t fataler, format string, args ...any) {
	if rt, ok := t.(*rapid.T); ok {
		event(rt, format, args...)
		return
	}
	t.Logf("  | "+format, args...)
}

// recorders holds the events of the runs whose trace goes to a file, by
// run.
var recorders sync.Map // *rapid.T -> *strings.Builder

// traceTo records run t's events; the function it returns, deferred by
// the property, writes them to path, with the failure, if the run fails
// (a panic leaves the property: rapid's failure). rapid replays the
// counterexample it shrank to last, so the file ends up holding that one.
//
// passed is set by the property once its run has passed: a run that
// did not gets a note of its steps (noteSteps). Without a path, nothing
// is recovered: a panic recovered and raised again had its traceback
// start in this function, not at the replica's panic (found by review).
func traceTo(t *rapid.T, path string, passed *bool) func() {
	if path == "" {
		return func() {
			if !*passed {
				noteSteps(t, nil)
			}
		}
	}
	b := &strings.Builder{}
	recorders.Store(t, b)
	return func() {
		recorders.Delete(t)
		if r := recover(); r != nil {
			fmt.Fprintf(b, "\nfailed: %v\n", r)
			noteSteps(t, b)
			_ = os.WriteFile(path, []byte(b.String()), 0o644)
			panic(r)
		}
	}
}

// rapidSteps is rapid's own default of -rapid.steps.
const rapidSteps = 30

// noteSteps says, in a failed run's log (and trace, b, if not nil), the
// -rapid.steps it was found with, if not the default: rapid's fail file
// replays only with the same, and without it replayed silently as a new
// search, which found another counterexample or none (found by review).
//
// The steps are rapid's: its flag (whose default RAPID_STEPS sets), halved
// under -short (a note that compared the flag with its default said
// nothing of either: found by review).
func noteSteps(t *rapid.T, b *strings.Builder) {
	f := flag.Lookup("rapid.steps")
	if f == nil {
		return
	}
	steps, err := strconv.Atoi(f.Value.String())
	if err != nil || steps == rapidSteps && !testing.Short() {
		return
	}
	note := fmt.Sprintf("found with -rapid.steps=%s", f.Value)
	if testing.Short() {
		note += fmt.Sprintf(" under -short (%d steps)", steps/2)
	}
	note += ": replay its fail file with the same flags"
	t.Log(note)
	if b != nil {
		fmt.Fprintln(b, note)
	}
}

// packet describes a frame in flight for the log: number, route, kind,
// size, and, for a frame bcache's codec reads, what it carries.
type packet struct {
	p      sim.Packet
	decode func([]byte) string
}

func (p packet) String() string {
	s := fmt.Sprintf("frame #%d %s -> %s, %v, %d B", p.p.ID, p.p.From, p.p.To, p.p.Kind, len(p.p.Payload))
	if p.decode != nil {
		if d := p.decode(p.p.Payload); d != "" {
			s += ": " + d
		}
	}
	return s
}

// codecs decode bcache's frames for the log, with the wire's own limits:
// one a call, as a Codec is not safe for concurrent use and harness runs
// may go on in parallel tests (a shared one raced, found by review).
var codecs = sync.Pool{New: func() any { return wire.NewCodec(wire.Limits{}) }}

// DescribeFrame summarizes one of bcache's protocol frames for a trace:
// a delta's records, a digest's level and size, a repair's records, a
// fill call's key or answer. It is
// the default of Config.Describe; "" for a frame it cannot decode.
func DescribeFrame(payload []byte) string {
	if len(payload) > 0 && payload[0] == callMarker {
		return describeCall(payload)
	}
	c := codecs.Get().(*wire.Codec)
	defer codecs.Put(c)
	m, err := c.Decode(payload)
	if err != nil {
		return ""
	}
	switch m := m.(type) {
	case *wire.Delta:
		return "records " + records(m.Records)
	case *wire.Direct:
		return "records " + records(m.Records)
	case *wire.Digest:
		return fmt.Sprintf("%s, level %d under %v, %d hashes, cut %v", sessionName(m.Session), m.Level, m.Parents, len(m.Hashes), m.Cut)
	case *wire.Versions:
		vs := make([]keyVersion, len(m.Versions))
		for i, v := range m.Versions {
			vs[i] = keyVersion(v)
		}
		return fmt.Sprintf("%s, leaves %v holding %v: %s", sessionName(m.Session), m.Leaves, m.Counts, records(vs))
	case *wire.Repair:
		s := fmt.Sprintf("%s, records %s", sessionName(m.Session), records(m.Records))
		switch {
		case m.Final && len(m.Wants) == 1:
			s += fmt.Sprintf(", final after %d repairs", m.Wants[0])
		case len(m.Wants) > 0:
			s += fmt.Sprintf(", wants %d keys", len(m.Wants))
		}
		if m.Final && len(m.Wants) != 1 {
			s += ", final"
		}
		return s
	case *wire.Reject:
		return fmt.Sprintf("%s, rejects %s", sessionName(m.Session), records(m.Records))
	}
	return ""
}

// sessionName names an anti-entropy session briefly: the low 16 bits of its
// id, and the step.
func sessionName(s wire.Session) string {
	return fmt.Sprintf("session %04x step %d", uint16(s.ID), s.Step)
}

// keyVersion is a wire.KeyVersion for the log.
type keyVersion wire.KeyVersion

func (v keyVersion) String() string {
	if v.Tombstone {
		return fmt.Sprintf("key %016x deleted at %v", v.KeyHash, v.Time)
	}
	return fmt.Sprintf("key %016x written at %v", v.KeyHash, v.Time)
}

// records lists up to four records, and how many more there are.
func records[R fmt.Stringer](rs []R) string {
	var b strings.Builder
	for i, r := range rs {
		if i == 4 {
			fmt.Fprintf(&b, " and %d more", len(rs)-4)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(r.String())
	}
	return "[" + b.String() + "]"
}
