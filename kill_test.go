package bcache

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The kill test runs this test binary as a child that writes to a Cache
// with a write log until it is killed with SIGKILL; see killChild.
const killChildEnv = "BCACHE_KILL_CHILD"

var killRuns = flag.Int("kill.runs", 200, "SIGKILLs of TestKillLosesNoAcknowledgedWrite (-short, or under the race detector: 40)")

// killWindow is the generations that run on the same files before the
// test starts again on new ones: enough to kill children while they
// restore, replay and cut torn ends, few enough that the files stay small.
const killWindow = 20

func TestMain(m *testing.M) {
	if arg := os.Getenv(killChildEnv); arg != "" {
		killChild(arg)
		return
	}
	if arg := os.Getenv(holderChildEnv); arg != "" {
		holderChild(arg)
		return
	}
	if arg := os.Getenv(memberChildEnv); arg != "" {
		memberChild(arg)
		return
	}
	if arg := os.Getenv(throughputChildEnv); arg != "" {
		throughputChild(arg)
		return
	}
	flag.Parse()
	if flag.Lookup("test.bench").Value.String() == "" {
		// The members of this process's tests keep to a cluster of their
		// own: the test processes of other packages, run at the same
		// time, start members on 127.0.0.1 too, and one of theirs that
		// retries a port this process has since bound would join a
		// cluster here (and a test counting members fail). Benchmarks
		// keep the default: their figures are a member's as configured.
		unlabelled = fmt.Sprintf("root-test-%d", os.Getpid())
	}
	os.Exit(m.Run())
}

// Each writer of the kill test runs ops 0, 1, 2... on its 50 keys, one at
// a time: op n writes key n%50, a delete if n%7 == 6, else the value n.
const (
	killWriters = 16
	killKeys    = 50
)

func killKey(gen, w, n int) string { return fmt.Sprintf("g%d-w%d-k%d", gen, w, n%killKeys) }

func killDeletes(n int) bool { return n%7 == 6 }

// killChild, in the child process: open the Cache at the snapshot path
// with the sync policy of arg ("<policy> <generation> <path>"), say
// "ready", then run the writers, each printing "w n" on stdout (one write
// call, so lines do not mix) once op n has returned, until killed.
func killChild(arg string) {
	var policy SyncPolicy
	var gen int
	var path string
	parts := strings.SplitN(arg, " ", 3)
	if len(parts) != 3 {
		panic(arg)
	}
	if err := policy.UnmarshalText([]byte(parts[0])); err != nil {
		panic(err)
	}
	gen, _ = strconv.Atoi(parts[1])
	path = parts[2]
	c, err := New(Config{BindAddr: "127.0.0.1:0", SnapshotPath: path, SnapshotInterval: 15 * time.Millisecond,
		Sync: policy, SyncEvery: 20 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Stdout.WriteString("ready\n")
	for w := range killWriters {
		go func() {
			for n := 0; ; n++ {
				var err error
				if k := killKey(gen, w, n); killDeletes(n) {
					err = c.Delete(k)
				} else {
					err = c.Set(k, []byte(strconv.Itoa(n)), 0)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				os.Stdout.WriteString(fmt.Sprintf("%d %d %d\n", w, n, time.Now().UnixNano()))
			}
		}()
	}
	select {}
}

// killGen is what one child's writers were seen to do before the kill.
type killGen struct {
	gen    int
	acked  [killWriters]int     // the last op whose line arrived, -1 if none
	ackedT [killWriters][]int64 // when each op returned
	killed int64
}

// allowed reports whether the value (ok: present) of key number j of
// writer w is one the ops seen allow: the last acknowledged op on that
// key, or the op in flight at the kill.
func (g *killGen) allowed(w, j int, v []byte, ok bool) bool {
	matches := func(n int) bool {
		if killDeletes(n) {
			return !ok
		}
		return ok && string(v) == strconv.Itoa(n)
	}
	last := -1
	for n := g.acked[w]; n >= 0; n-- {
		if n%killKeys == j {
			last = n
			break
		}
	}
	if inflight := g.acked[w] + 1; inflight%killKeys == j && matches(inflight) {
		return true
	}
	if last < 0 {
		return !ok
	}
	return matches(last)
}

// lostAge returns, for a value that is not allowed, how long before the
// kill its key's last acknowledged op returned.
func (g *killGen) lostAge(w, j int) time.Duration {
	for n := g.acked[w]; n >= 0; n-- {
		if n%killKeys == j {
			return time.Duration(g.killed - g.ackedT[w][n])
		}
	}
	return 0
}

// runKillChild starts a child on path, lets it write for a random while,
// kills it with SIGKILL, and returns what it was seen to do.
func runKillChild(t *testing.T, r *rand.Rand, policy SyncPolicy, gen int, path string) *killGen {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %s", killChildEnv, policy, gen, path))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("generation %d: the child did not start: %s", gen, stderr.String())
	}
	g := &killGen{gen: gen}
	for w := range g.acked {
		g.acked[w] = -1
	}
	killAt := time.AfterFunc(time.Duration(5+r.IntN(60))*time.Millisecond, func() {
		g.killed = time.Now().UnixNano()
		cmd.Process.Signal(syscall.SIGKILL)
	})
	defer killAt.Stop()
	for lines.Scan() {
		var w, n int
		var at int64
		if _, err := fmt.Sscanf(lines.Text(), "%d %d %d", &w, &n, &at); err != nil {
			break // a line cut by the kill: not an acknowledgement
		}
		if n != g.acked[w]+1 {
			t.Fatalf("generation %d: writer %d acknowledged op %d after %d", gen, w, n, g.acked[w])
		}
		g.acked[w] = n
		g.ackedT[w] = append(g.ackedT[w], at)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("generation %d: the child ended before the kill: %v: %s", gen, err, stderr.String())
	}
	return g
}

// TestKillLosesNoAcknowledgedWrite kills a process writing from 16
// goroutines with SIGKILL at random moments (during writes, log syncs,
// snapshots and segment changes), again and again on the same files
// (20 children in a row): each child starts from what the last one left. With SyncWrite, after
// every kill the files hold every write and delete whose call returned
// in every generation on those files (or the op in flight). With SyncInterval,
// the writes lost returned within the last SyncEvery (20 ms) of the
// kill, plus one sync's time; the test reports the oldest.
func TestKillLosesNoAcknowledgedWrite(t *testing.T) {
	runs := *killRuns
	if (testing.Short() || raceEnabled) && !flagSet("kill.runs") {
		runs = 40
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for _, policy := range []SyncPolicy{SyncWrite, SyncInterval} {
		t.Run(policy.String(), func(t *testing.T) {
			n := runs
			if policy == SyncInterval {
				n = max(runs/10, 5)
			}
			var path string
			var gens []*killGen
			acked, lost := 0, 0
			var oldest time.Duration
			for gen := range n {
				if gen%killWindow == 0 {
					path, gens = filepath.Join(t.TempDir(), "cache.snap"), nil
				}
				g := runKillChild(t, r, policy, gen, path)
				gens = append(gens, g)
				for _, a := range g.acked {
					acked += a + 1
				}
				c := mustNew(t, Config{BindAddr: "127.0.0.1:0", SnapshotPath: crashImage(t, path), SnapshotInterval: -1})
				check := gens
				if policy == SyncInterval {
					check = gens[len(gens)-1:] // what a generation lost stays lost
				}
				for _, g := range check {
					for w := range killWriters {
						for j := range killKeys {
							v, ok := c.Get(killKey(g.gen, w, j))
							if g.allowed(w, j, v, ok) {
								continue
							}
							if policy == SyncWrite {
								t.Errorf("after kill %d: generation %d writer %d key %d = %q, %v: an acknowledged op was lost", gen, g.gen, w, j, v, ok)
							}
							lost++
							oldest = max(oldest, g.lostAge(w, j))
						}
					}
				}
				mustClose(t, c)
				if t.Failed() {
					return
				}
			}
			t.Logf("%s: %d kills, %d ops acknowledged, %d keys lost their last op (oldest returned %v before the kill)",
				policy, n, acked, lost, oldest)
			if policy == SyncInterval && lost == 0 {
				// The broken variant of SyncWrite (a write that returns
				// before its sync) is what SyncInterval does by design.
				t.Error("the checker found nothing lost with the interval policy: it cannot tell")
			}
			if policy == SyncInterval && oldest > 20*time.Millisecond+250*time.Millisecond {
				t.Errorf("a write that returned %v before the kill was lost: more than an interval (20 ms) and a sync", oldest)
			}
		})
	}
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
