package gossip

import (
	"math"
	"math/big"
	"testing"
	"time"
)

// TestForeverTimingsFitMemberlistsProducts: memberlist multiplies
// ProbeInterval by SuspicionMult and a thousand times the log of the
// members (its suspicion timeout, then by SuspicionMaxTimeoutMult), scales
// ProbeInterval and ProbeTimeout by up to 9 (awareness) and
// PushPullInterval by the members' log, without saturating: a "forever"
// ProbeInterval wrapped its suspicion timeout negative, and a suspected
// member was declared dead at once. FillTimings lowers what would wrap,
// and leaves alone what would not.
func TestForeverTimingsFitMemberlistsProducts(t *testing.T) {
	forever := time.Duration(math.MaxInt64)
	tm := Timings{ProbeInterval: forever, ProbeTimeout: forever, PushPullInterval: forever, SuspicionMult: math.MaxInt, RetransmitMult: math.MaxInt}
	if err := FillTimings(&tm); err != nil {
		t.Fatal(err)
	}
	fits := func(what string, factors ...int64) {
		p := big.NewInt(1)
		for _, f := range factors {
			p.Mul(p, big.NewInt(f))
		}
		if !p.IsInt64() {
			t.Errorf("%s: %v overflows a Duration", what, p)
		}
	}
	const billionMembers = 9000 // memberlist's 1000 x log10 of the members
	fits("suspicion timeout", int64(tm.SuspicionMult), billionMembers, int64(tm.ProbeInterval))
	fits("longest suspicion", int64(tm.SuspicionMult), billionMembers, int64(tm.ProbeInterval)/1000, 6)
	fits("scaled probe interval", int64(tm.ProbeInterval), 9)
	fits("scaled probe timeout", int64(tm.ProbeTimeout), 9)
	fits("push-pull interval", int64(tm.PushPullInterval), 31)
	// Its retransmit limit, RetransmitMult x the log of the members
	// rounded up (an int): at ten members a "forever" wrapped to -2, and
	// every broadcast (a suspicion's refutation too) went out once.
	fits("retransmit limit", int64(tm.RetransmitMult), 10)

	sane := Timings{ProbeInterval: 10 * time.Minute, ProbeTimeout: time.Minute, PushPullInterval: 30 * time.Minute, SuspicionMult: 8, RetransmitMult: 16}
	want := sane
	if err := FillTimings(&sane); err != nil {
		t.Fatal(err)
	}
	if sane.ProbeInterval != want.ProbeInterval || sane.ProbeTimeout != want.ProbeTimeout || sane.PushPullInterval != want.PushPullInterval || sane.SuspicionMult != want.SuspicionMult || sane.RetransmitMult != want.RetransmitMult {
		t.Fatalf("FillTimings changed timings that fit: %+v, set %+v", sane, want)
	}
}

// TestClampKeepsProbeTimeoutBelowProbeInterval: memberlist waits
// ProbeTimeout for a direct ack, then gives indirect probes and the TCP
// fallback until ProbeInterval from the ping; a ProbeTimeout at or past
// ProbeInterval leaves them no time, and one lost datagram suspects a
// member. FillTimings lowering ProbeInterval to MaxInterval must not turn
// a ProbeTimeout set below ProbeInterval into one at or above it.
func TestClampKeepsProbeTimeoutBelowProbeInterval(t *testing.T) {
	for _, tm := range []Timings{
		{ProbeInterval: 3 * time.Hour, ProbeTimeout: 90 * time.Minute},
		{ProbeInterval: time.Duration(math.MaxInt64), ProbeTimeout: 2 * time.Hour},
	} {
		set := tm
		if err := FillTimings(&tm); err != nil {
			t.Fatal(err)
		}
		if tm.ProbeTimeout >= tm.ProbeInterval {
			t.Errorf("set ProbeInterval %v, ProbeTimeout %v: filled as %v, %v: no time left for indirect probes",
				set.ProbeInterval, set.ProbeTimeout, tm.ProbeInterval, tm.ProbeTimeout)
		}
	}
}
