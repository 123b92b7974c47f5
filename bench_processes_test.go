package bcache

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/store"
)

// BenchmarkReplicationAcrossProcesses is BenchmarkReplication of package
// transport/gossip with every member a Cache in a process of its own, as
// services run it: the writer here, each other member a child process of
// the test binary on 127.0.0.1. It writes at a fixed rate for a second to
// warm up (the cluster has just formed: memberlist is still gossiping the
// joins, and each member's first sessions run), then for two seconds more,
// and measures, for every write of those two seconds, the time from just
// before Set until every other member has applied it (each member's store
// watcher notes the time of the apply: one machine, one clock), and the
// bytes all members put on the wire per write while they ran.
//
//	go test -run '^$' -bench ReplicationAcrossProcesses -benchtime 1x -count 3 .
func BenchmarkReplicationAcrossProcesses(b *testing.B) {
	for _, n := range []int{3, 5} {
		for _, rate := range []int{50, 1000, 10_000} {
			b.Run(fmt.Sprintf("nodes=%d/rate=%d", n, rate), func(b *testing.B) {
				for b.Loop() {
					replicateAcross(b, n, rate, time.Second, 2*time.Second)
				}
			})
		}
	}
}

// memberChildEnv names the variable that makes the test binary a member
// of BenchmarkReplicationAcrossProcesses; its value is "NAME PEER N
// WRITES FILE". The member joins PEER and prints "ready" once it sees all N
// members. On a line on its
// standard input it prints "start BYTES" (what it has put on the wire so
// far); once it has applied the writes "k%015d" numbered 0 to WRITES-1 it
// prints "done BYTES"; when its standard input closes, it writes to FILE
// the time it applied each, in Unix nanoseconds (little-endian int64s),
// and exits.
const memberChildEnv = "BCACHE_BENCH_MEMBER"

func memberChild(arg string) {
	var name, peer, file string
	var n, writes int
	_, err := fmt.Sscanf(arg, "%s %s %d %d %s", &name, &peer, &n, &writes, &file)
	childMust(err)
	c := childCache(name, peer, n)
	at := make([]atomic.Int64, writes)
	var arrived atomic.Int64
	all := make(chan struct{})
	c.store.Watch(func(ev *store.Event) { // nothing else watches this member's store
		now := time.Now().UnixNano()
		k := ev.Record.Key
		if len(k) != 16 || k[0] != 'k' {
			return
		}
		w, err := strconv.Atoi(k[1:])
		if err != nil || w < 0 || w >= writes || !at[w].CompareAndSwap(0, now) {
			return
		}
		if arrived.Add(1) == int64(writes) {
			close(all)
		}
	})
	wire := func() uint64 { r := c.Stats().Replication; return r.WirePacketBytes + r.WireStreamBytes }
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		os.Exit(0)
	}
	fmt.Println("start", wire())
	<-all
	fmt.Println("done", wire())
	io.Copy(io.Discard, os.Stdin)
	out := make([]byte, 0, 8*writes)
	for i := range at {
		out = binary.LittleEndian.AppendUint64(out, uint64(at[i].Load()))
	}
	childMust(os.WriteFile(file, out, 0o644))
	c.Close()
}

// childCache starts a child member's Cache, named name, joining peer, and
// returns once it sees all n members of the cluster: a member that starts
// writing while the others do not know it yet (memberlist's gossip takes
// a few hundred milliseconds to tell every member of every other) has its
// first writes refused and repaired by anti-entropy, which is catch-up,
// not what these benchmarks measure.
func childCache(name, peer string, n int) *Cache {
	c, err := New(Config{NodeName: name, BindAddr: "127.0.0.1:0", Peers: []string{peer}})
	childMust(err)
	await.Until(childTB{}, 30*time.Second, func() bool { return len(c.Members()) == n }, "%s does not see all %d members", name, n)
	return c
}

// childTB is what await.Until needs of a test, for a child member: a
// failure ends the process.
type childTB struct{}

func (childTB) Helper() {}

func (childTB) Fatalf(format string, args ...any) { childMust(fmt.Errorf(format, args...)) }

// childMust ends a child member that meets err.
func childMust(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "member:", err)
		os.Exit(2)
	}
}

// memberProcess is a child process of the benchmarks across processes.
type memberProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
	file  string // its name in messages (and, for some, a file it writes)
}

// spawnMember starts the test binary as a child member: env=arg in its
// environment selects what it runs (see TestMain).
func spawnMember(b *testing.B, env, arg, file string) *memberProcess {
	b.Helper()
	m := &memberProcess{file: file}
	m.cmd = exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	m.cmd.Env = append(os.Environ(), env+"="+arg)
	m.cmd.Stderr = os.Stderr
	var err error
	if m.stdin, err = m.cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	m.lines = bufio.NewScanner(out)
	return m
}

// spawnMembers starts members 1 to n-1 of a cluster whose member 0 is w,
// each the test binary with env=arg(i, file) in its environment (file: a
// path of its own in a temporary directory), waits for each to print
// "ready" and for w to see them all, and stops them when b ends.
func spawnMembers(b *testing.B, w *Cache, n int, env string, arg func(i int, file string) string) []*memberProcess {
	b.Helper()
	dir := b.TempDir()
	var members []*memberProcess
	b.Cleanup(func() {
		for _, m := range members {
			m.stdin.Close()
			m.cmd.Wait()
		}
	})
	for i := 1; i < n; i++ {
		file := filepath.Join(dir, fmt.Sprint("m", i))
		members = append(members, spawnMember(b, env, arg(i, file), file))
	}
	for _, m := range members {
		m.expect(b, "ready")
	}
	await.Until(b, 30*time.Second, func() bool { return len(w.Members()) == n }, "%s does not see all %d members", w.Name(), n)
	return members
}

// expect reads the child's next line, which must start with word, and
// returns the number after it, if any.
func (m *memberProcess) expect(b *testing.B, word string) uint64 {
	b.Helper()
	if ns := m.expectAll(b, word); len(ns) > 0 {
		return ns[0]
	}
	return 0
}

// expectAll reads the child's next line, which must start with word, and
// returns the numbers after it.
func (m *memberProcess) expectAll(b *testing.B, word string) []uint64 {
	b.Helper()
	if !m.lines.Scan() {
		b.Fatalf("member %s: no %q line", m.file, word)
	}
	f := strings.Fields(m.lines.Text())
	if len(f) == 0 || f[0] != word {
		b.Fatalf("member %s: %q, want %q", m.file, m.lines.Text(), word)
	}
	var ns []uint64
	for _, field := range f[1:] {
		n, err := strconv.ParseUint(field, 10, 64)
		if err != nil {
			b.Fatalf("member %s: %q: %v", m.file, m.lines.Text(), err)
		}
		ns = append(ns, n)
	}
	return ns
}

func replicateAcross(b *testing.B, n, rate int, warmup, d time.Duration) {
	b.StopTimer()
	defer b.StartTimer()
	w, err := New(Config{NodeName: "writer", BindAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	warm := int(float64(rate) * warmup.Seconds())
	writes := warm + int(float64(rate)*d.Seconds())
	members := spawnMembers(b, w, n, memberChildEnv, func(i int, file string) string {
		return fmt.Sprintf("m%d %s %d %d %s", i, w.Addr(), n, writes, file)
	})
	value := make([]byte, 100)
	sent := make([]int64, writes)
	writeAt := func(from, to int) { // writes from..to-1 at the rate
		start := time.Now()
		for i := from; i < to; {
			due := min(to, from+int(time.Since(start).Seconds()*float64(rate))+1)
			for ; i < due; i++ {
				sent[i] = time.Now().UnixNano()
				if err := w.Set(fmt.Sprintf("k%015d", i), value, 0); err != nil {
					b.Fatal(err)
				}
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	writeAt(0, warm)
	wire := func() uint64 { r := w.Stats().Replication; return r.WirePacketBytes + r.WireStreamBytes }
	before := wire()
	for _, m := range members {
		fmt.Fprintln(m.stdin, "start")
		before += m.expect(b, "start")
	}
	writeAt(warm, writes)
	after := uint64(0)
	for _, m := range members {
		after += m.expect(b, "done")
	}
	after += wire()
	lat := make([]float64, writes)
	for _, m := range members {
		m.stdin.Close()
		if err := m.cmd.Wait(); err != nil {
			b.Fatalf("member %s: %v", m.file, err)
		}
		at, err := os.ReadFile(m.file)
		if err != nil || len(at) != 8*writes {
			b.Fatalf("member %s: %d bytes of arrival times, %v", m.file, len(at), err)
		}
		for i := range writes {
			applied := int64(binary.LittleEndian.Uint64(at[8*i:]))
			lat[i] = max(lat[i], float64(applied-sent[i])/1e6)
		}
	}
	lat = lat[warm:]
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	bytes := float64(after - before)
	b.ReportMetric(bytes/float64(len(lat)), "wire-B/write")
	b.ReportMetric(bytes/float64(len(lat))/float64((n-1)*(16+100)), "x-min")
}
