package transport

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestRandomClockStepsKeepTheRosterSafe drives b, with peers, through
// random steps of the clock (back, forward and undone, stale nows), sessions
// in flight on either side, leaves and failures, and checks in real time:
// an ended member is retired only once every member in the view has
// completed a session with b that started after its end (real time), and a
// failed one is forgotten only FailedTimeout (real, less the forward steps
// the clock took for good and the blip in progress) after it failed.
func TestRandomClockStepsKeepTheRosterSafe(t *testing.T) {
	for seed := int64(1); seed <= 3000; seed++ {
		names := []string{"a", "b", "c", "d", "e", "f"}
		if seed%2 == 0 {
			names = names[:4]
		}
		if seed%3 == 0 {
			names = names[:3]
		}
		if msg := clockStepRun(t, seed, names); msg != "" {
			t.Fatalf("seed %d: %s", seed, msg)
		}
	}
}

type flight struct {
	from  string // who sends out next
	out   []Envelope
	peer  string // b's peer
	start int64  // real time b saw the session start
}

func clockStepRun(t *testing.T, seed int64, names []string) string {
	rng := rand.New(rand.NewSource(seed))
	ft := time.Hour
	n := newTestNet(t, 8, Config{AntiEntropyInterval: 24 * time.Hour, SessionTimeout: 100 * time.Millisecond, FailedTimeout: ft}, names...)
	b := n.nodes["b"]
	real := int64(0)
	ahead := int64(0) // forward steps taken for good
	alive := map[string]bool{}
	for _, x := range names {
		if x != "b" {
			alive[x] = true
		}
	}
	lastStart := map[string]int64{}
	ended := map[string]int64{}
	failed := map[string]int64{}
	var flights []flight
	var log []string
	note := func(f string, a ...any) { log = append(log, fmt.Sprintf("%d ", real)+fmt.Sprintf(f, a...)) }
	advance := func(d time.Duration) { real += int64(d); n.now.Advance(d) }
	view := func() []string {
		v := []string{"b"}
		for _, x := range names {
			if alive[x] {
				v = append(v, x)
			}
		}
		return v
	}
	pick := func() string {
		var v []string
		for _, x := range names {
			if alive[x] {
				v = append(v, x)
			}
		}
		if len(v) == 0 {
			return ""
		}
		return v[rng.Intn(len(v))]
	}
	markOf := func(p string) (int64, bool) {
		if in := b.roster.current[p]; in != nil {
			return in.synced, in.hasCut
		}
		return 0, false
	}
	complete := func(f flight) {
		old, had := markOf(f.peer)
		n.pump(f.from, f.out)
		if m, has := markOf(f.peer); has && (!had || m != old) {
			lastStart[f.peer] = f.start
			note("session b-%s (started %d) completed, mark %d", f.peer, f.start, m)
		}
	}
	// Everyone syncs with b first.
	advance(time.Hour)
	for _, x := range names {
		if x != "b" {
			complete(flight{from: "b", out: b.StartSession(x, n.now.Now()), peer: x, start: real})
		}
	}
	for step := 0; step < 200; step++ {
		advance(time.Duration(rng.Intn(300)) * time.Millisecond)
		switch op := rng.Intn(12); op {
		case 0, 1: // a step back
			d := []time.Duration{500 * time.Millisecond, 900 * time.Millisecond, 1500 * time.Millisecond, 10 * time.Second, time.Hour}[rng.Intn(5)]
			n.now.Advance(-d)
			note("step back %v", d)
			if rng.Intn(2) == 0 {
				b.Tick(n.now.Now())
			}
		case 2: // a forward blip, undone
			d := []time.Duration{2 * time.Second, 10 * time.Minute}[rng.Intn(2)]
			n.now.Advance(d)
			b.Tick(n.now.Now())
			n.now.Advance(-d)
			note("blip %v", d)
			if rng.Intn(2) == 0 {
				b.Tick(n.now.Now())
			}
		case 3: // a forward step for good
			d := []time.Duration{500 * time.Millisecond, 3 * time.Second}[rng.Intn(2)]
			n.now.Advance(d)
			ahead += int64(d)
			note("step forward %v", d)
		case 4: // a stale now
			d := []time.Duration{300 * time.Millisecond, 1500 * time.Millisecond, 5 * time.Second}[rng.Intn(3)]
			b.Tick(n.now.Now() - int64(d))
			note("stale now -%v", d)
		case 5, 6: // b starts a session, held in flight after its first message
			p := pick()
			if p == "" {
				continue
			}
			diverge(n, p, rng)
			env := b.StartSession(p, n.now.Now())
			var out []Envelope
			for _, e := range env {
				o, _ := n.nodes[e.To].Receive("b", e.Payload, n.now.Now())
				out = append(out, o...)
			}
			flights = append(flights, flight{from: p, out: out, peer: p, start: real})
			note("b starts with %s", p)
		case 7, 8: // a peer starts a session with b, held after b's first reply
			p := pick()
			if p == "" {
				continue
			}
			diverge(n, p, rng)
			env := n.nodes[p].StartSession("b", n.now.Now())
			start := real
			var out []Envelope
			for _, e := range env {
				o, _ := b.Receive(p, e.Payload, n.now.Now())
				out = append(out, o...)
			}
			flights = append(flights, flight{from: "b", out: out, peer: p, start: start})
			note("%s starts with b", p)
		case 9, 10: // a session in flight goes on
			if len(flights) == 0 {
				continue
			}
			i := rng.Intn(len(flights))
			f := flights[i]
			flights = append(flights[:i], flights[i+1:]...)
			if alive[f.peer] {
				complete(f)
			}
		case 11: // a member leaves, or fails
			p := pick()
			if p == "" || len(ended)+len(failed) >= len(names)-2 {
				continue
			}
			alive[p] = false
			now := n.now.Now()
			b.SetMembers(view(), now)
			if rng.Intn(2) == 0 {
				b.Left(p, false, now)
				ended[p] = real
				note("%s leaves", p)
			} else {
				failed[p] = real
				note("%s fails", p)
			}
		}
		now := n.now.Now()
		for x, at := range ended {
			if countsEnded(b, x, now) {
				continue
			}
			for m := range alive {
				if alive[m] && lastStart[m] <= at {
					return fmt.Sprintf("%s, ended at real %d, retired; %s's last completed session started at real %d\n%s", x, at, m, lastStart[m], join(log))
				}
			}
			delete(ended, x)
		}
		for x, at := range failed {
			counted := false
			for _, k := range b.Known(now) {
				counted = counted || k.Name == x
			}
			if !counted {
				if real-at+ahead+int64(10*time.Minute) < int64(ft) {
					return fmt.Sprintf("%s, failed at real %d, forgotten at real %d\n%s", x, at, real, join(log))
				}
				delete(failed, x)
			}
		}
	}
	_ = crdt.Record{}
	return ""
}

func join(l []string) string {
	s := ""
	for _, x := range l {
		s += x + "\n"
	}
	return s
}

var reviewKey int

// diverge gives p a record b lacks, most of the time: the session takes
// several round trips.
func diverge(n *testNet, p string, rng *rand.Rand) {
	if rng.Intn(4) == 0 {
		return
	}
	reviewKey++
	k := fmt.Sprintf("k%d", reviewKey)
	n.reps[p].recs[k] = crdt.Record{Key: k, Value: []byte("v"), Time: n.nodes[p].cfg.Clock.Now()}
}
