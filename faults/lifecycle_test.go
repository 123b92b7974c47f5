//go:build linux

package faults

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache"
	"github.com/bcache-go/bcache/internal/await"
)

// childEnv makes a test of this package the child of another.
const childEnv = "BCACHE_FAULTS_CHILD"

// TestAbnormalEndChild is the child of TestAbnormalEndLeavesNothing: it
// builds a lab, starts a member, and dies the way go test -timeout ends a
// test binary: a panic in a goroutine of its own, which runs no cleanup.
func TestAbnormalEndChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestAbnormalEndLeavesNothing")
	}
	l := newLab(t, 2)
	l.members[0].start(false)
	fmt.Println("LAB", l.id, l.dir, l.bin)
	go func() { panic("test timed out (as testing's alarm panics)") }()
	select {}
}

// TestAbnormalEndLeavesNothing: a test process that ends without running
// its cleanups leaves no namespace, no node process and no directory: its
// nodes die with it and its janitor removes the rest.
func TestAbnormalEndLeavesNothing(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("child")
	}
	needLab(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestAbnormalEndChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, _ := cmd.CombinedOutput()
	t.Cleanup(func() { // whatever is left of the child's, reported below
		sweep(func(pid int) bool { return pid == cmd.Process.Pid })
	})
	var id, dir, bin string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "LAB" {
			id, dir, bin = f[1], f[2], f[3]
		}
	}
	if id == "" {
		t.Fatalf("the child did not build its lab:\n%s", out)
	}
	t.Cleanup(func() { os.RemoveAll(dir); os.RemoveAll(filepath.Dir(bin)) })
	left := func() []string {
		var left []string
		ns, _ := exec.Command("ip", "netns", "list").Output()
		for _, line := range strings.Split(string(ns), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], id+"-") {
				left = append(left, "namespace "+f[0])
			}
		}
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(dir)) {
				left = append(left, "process "+filepath.Base(filepath.Dir(p))+": "+string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
			}
		}
		for _, d := range []string{dir, filepath.Dir(bin)} {
			if _, err := os.Stat(d); err == nil {
				left = append(left, "directory "+d)
			}
		}
		return left
	}
	await.Until(t, 30*time.Second, func() bool { return len(left()) == 0 },
		"a test process that ended the way -timeout ends it left behind: %v", left)
}

// TestSkipsWhereNamespacesCannotBeMade: where root may not create network
// namespaces (a container without CAP_SYS_ADMIN), the suite skips, saying
// why, instead of failing.
func TestSkipsWhereNamespacesCannotBeMade(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("child")
	}
	needLab(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	cmd := exec.Command(setpriv, "--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin",
		os.Args[0], "-test.run=^TestPartitionHeals$/^production_timings$", "-test.v")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- SKIP") || !strings.Contains(string(out), "cannot create network namespaces") {
		t.Errorf("without CAP_SYS_ADMIN the fixed schedule should skip; it ended %v:\n%s", err, out)
	}
}

// TestTokenVersionIsTheWritesVersion: the version the checker decodes
// from a write's token is the one the member applied (its change feed
// says), for a write and a delete.
func TestTokenVersionIsTheWritesVersion(t *testing.T) {
	c, err := bcache.New(bcache.Config{NodeName: "solo", BindAddr: "127.0.0.1:0", Timings: bcache.FastTimings()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	set, err := c.SetWithToken("k", []byte("v"), 0)
	if err != nil {
		t.Fatal(err)
	}
	del, err := c.DeleteWithToken("k")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var changes []bcache.Change
	for len(changes) < 2 {
		select {
		case batch := <-sub.C:
			changes = append(changes, batch...)
		case <-ctx.Done():
			t.Fatalf("the feed gave %v", changes)
		}
	}
	for i, tok := range []bcache.Token{set, del} {
		ver, err := tokenVersion("k", string(tok))
		if err != nil {
			t.Fatal(err)
		}
		if ver != changes[i].Version {
			t.Errorf("token %q: version %v, the feed's %v", tok, ver, changes[i].Version)
		}
	}
	if _, err := tokenVersion("other", string(set)); err == nil {
		t.Error("a token of k decoded for another key")
	}
}

// TestBeyondDriftWritesWinLater: the fixed schedule with the member that
// takes side 1's writes 2 minutes ahead. At the heal the others refuse
// its writes, and the run is ok with them left out; once the writes are
// within MaxClockDrift of the others' clocks (90 s after they were sent)
// the others take them, all five members agree, and the writes win over
// the other side's later ones: the checker, judging then, holds them to
// it. Over 2 minutes: -faults.late runs it.
func TestBeyondDriftWritesWinLater(t *testing.T) {
	if !*late {
		t.Skip("-faults.late runs it (over 2 minutes)")
	}
	l := newLab(t, members)
	sc := scenario{name: "a clock 2 minutes ahead", offsets: map[int]time.Duration{0: 2 * time.Minute}}
	v, h := run(t, l, sc, rand.New(rand.NewPCG(1, 1)), false)
	t.Log("at the heal: ", v.line())
	if !v.ok() {
		t.Fatalf("%s\ndetails: %s", v.line(), v.write(l.dir, h))
	}
	var last int64 // the greatest version beyond MaxClockDrift
	for _, o := range h.ops {
		if o.beyondDrift() {
			last = max(last, o.ver.Wall)
		}
	}
	if last == 0 {
		t.Fatal("no write was beyond MaxClockDrift")
	}
	keys := keysOf(h)
	taken := time.Unix(0, last-int64(maxDrift)+int64(takeGrace))
	if _, agreed := l.agree(l.members, keys, time.Until(taken)+patience); !agreed {
		t.Fatalf("the five members did not agree once the writes ahead were within MaxClockDrift")
	}
	// They agree once the others took the writes ahead; the checker holds
	// them to it after takeGrace, a time to pass, not a condition.
	time.Sleep(time.Until(taken))
	final, agreed := l.agree(l.members, keys, patience)
	at := time.Now()
	reads := l.reads()
	later := verdict{name: sc.name + ", later", heal: v.heal + at.Sub(v.at), agreed: agreed, final: final, at: at, fates: h.judge(final, nil, at.UnixNano()), unacked: h.unacked(),
		reads: len(reads), readFaults: h.judgeReads(reads)}
	t.Logf("%.0f s after the heal, all five members: %s", later.heal.Seconds(), later.line())
	if !later.ok() {
		t.Fatalf("%s\ndetails: %s", later.line(), later.write(l.dir, h))
	}
	// The bad clock's writes won over writes sent after them.
	won := 0
	for _, k := range keys {
		for _, o := range h.ops {
			if o.key != k || !o.beyondDrift() || o.del == final[k].present || !o.del && o.value != final[k].value {
				continue
			}
			if slices.ContainsFunc(h.ops, func(p op) bool { return p.key == k && p.acked && !p.beyondDrift() && p.sent > o.sent }) {
				won++
				break
			}
		}
	}
	t.Logf("%d keys hold a write of the member 2 minutes ahead over a write sent after it", won)
	if won == 0 {
		t.Error("no write of the member ahead won over a later one: the schedule shows nothing")
	}
}

// keysOf returns the keys of h, in order of their first op.
func keysOf(h *history) []string {
	var keys []string
	for _, o := range h.ops {
		if !slices.Contains(keys, o.key) {
			keys = append(keys, o.key)
		}
	}
	return keys
}

// TestRestartEmptyAfterASnapshot: a member killed and restarted empty
// (start(false), half the victims of TestRandomSchedules) starts. Only
// its snapshot was removed, and the members file written beside it
// (SnapshotPath.members) then named a snapshot that was not there: New
// refused to start, ErrSnapshot, and the run failed with "exited at
// start" (seed 2 of -faults.mix=random).
func TestRestartEmptyAfterASnapshot(t *testing.T) {
	l := newLab(t, 1)
	m := l.members[0]
	m.start(false)
	if _, err := m.set("k", "v"); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool {
		_, err1 := os.Stat(m.snap)
		_, err2 := os.Stat(m.snap + ".members")
		return err1 == nil && err2 == nil
	}, "no snapshot and members file at %s", m.snap)
	m.kill()
	m.start(false) // fails the test if the member exits at start
	if _, ok, err := m.get("k"); err != nil || ok {
		t.Errorf("restarted empty, the member holds k (%v, %v)", ok, err)
	}
}
