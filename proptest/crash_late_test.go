package proptest

import (
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/wire"
)

// lateDeltaOfACrashedMember plays this: n1 writes k, its delta to n0
// lost and the one to n2 held in flight, and crashes, staying down; n0
// deletes k2, a key of k's bucket, just after. After late rounds of
// sessions and collections, n2 receives the held delta; then the cluster
// converges. k and k2 are among the harness's keys. failedFor is the
// members' transport.Config.FailedTimeout (0: the store's, a minute). It
// returns the model's verdict ("" when it passes).
func lateDeltaOfACrashedMember(t *testing.T, failedFor time.Duration, lateFrames time.Duration, late int) string {
	t.Helper()
	k, k2 := "k", sameBucket("k")
	cfg := DefaultStoreConfig()
	cfg.Vary = nil
	if failedFor != 0 {
		cfg.Transport.FailedTimeout = failedFor
	}
	c, err := NewCluster(3, StoreFactory(cfg), start)
	if err != nil {
		t.Fatal(err)
	}
	hcfg := Config{Keys: []string{k, k2}, LateFrames: lateFrames, Horizon: 10 * time.Minute} // its horizon rule (arrivals within Horizon-MaxDrift-2*MaxSkew of the write) past the delivery
	hcfg.fill()
	h := harnessOver(hcfg, c)
	var held uint64
	cutOff := true
	deliver := func() {
		t.Helper()
		for n := 0; ; n++ {
			if n > budget {
				t.Fatal("the network did not drain")
			}
			i := -1
			for j, p := range c.Net.InFlight() {
				if p.ID != held {
					i = j
					break
				}
			}
			if i < 0 {
				return
			}
			p := c.Net.InFlight()[i]
			if cutOff && (p.From == "n0" && p.To == "n1" || p.From == "n1" && p.To == "n0") {
				if err := c.Net.Drop(i); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if _, err := c.Deliver(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	round := func() {
		t.Helper()
		c.Advance(time.Second)
		c.Tick()
		deliver()
		for i := range c.Size() {
			if !c.Down(i) {
				c.Replica(i).GC()
			}
		}
	}
	h.model.write(c.Set(0, k2, []byte("x"), 0))
	cutOff = false
	for range 15 {
		round()
	}
	cutOff = true
	c.Advance(time.Millisecond)
	w := c.Set(1, k, []byte("written before the crash"), 0)
	h.model.write(w)
	for _, p := range c.Net.InFlight() {
		if p.From == "n1" && p.To == "n2" && p.Kind != wire.KindDigest {
			held = p.ID
		}
	}
	if held == 0 {
		t.Fatalf("no delta of n1's in flight to n2: %v", c.Net.InFlight())
	}
	h.model.crashed(h, 1)
	c.Crash(1)
	c.Advance(time.Millisecond)
	h.model.write(c.Delete(0, k2))
	for range late {
		round()
	}
	for j, p := range c.Net.InFlight() {
		if p.ID == held {
			held = 0
			if _, err := c.Deliver(j); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if held != 0 {
		t.Fatal("the late delta is gone")
	}
	kept := false
	for _, r := range c.Replica(2).Records() {
		kept = kept || r.Version() == w.Version()
	}
	t.Logf("FailedTimeout %v, LateFrames %v, late %d s: n2 kept k: %v", failedFor, lateFrames, late, kept)
	for range 10 {
		round()
	}
	if _, err := c.Converge(10, budget); err != nil {
		t.Fatal(err)
	}
	f := &fatalRecorder{}
	h.model.verify(f, h)
	return f.failure
}

// A member that crashed and stays down is counted failed, for
// FailedTimeout (a minute here), by every live member: a delta of it
// delivered 30 s after the crash is kept in production, and the model
// must say so when it is not: members miswired to forget a failed member
// after 2 s lose k, and the model, with k among its keys, reports it.
// Config.LateFrames counted from the crash excused it, and the model
// reported nothing (found by review); it counts from the restart that
// ends a crashed incarnation (Cluster.incarnate).
func TestALateDeltaOfACrashedMemberStillCountedFailedIsChecked(t *testing.T) {
	if f := lateDeltaOfACrashedMember(t, 0, 0, 30); f != "" {
		t.Fatalf("production config: %s", f)
	}
	if f := lateDeltaOfACrashedMember(t, 2*time.Second, time.Hour, 30); !strings.Contains(f, "lost") {
		t.Fatalf("a failed member forgotten after 2 s, LateFrames an hour: the model reports no loss (%q): the scenario shows nothing", f)
	}
	if f := lateDeltaOfACrashedMember(t, 2*time.Second, 0, 30); !strings.Contains(f, "lost") {
		t.Errorf("a failed member forgotten after 2 s: k lost, and the model, LateFrames counted from the crash, excused it (%q)", f)
	}
}
