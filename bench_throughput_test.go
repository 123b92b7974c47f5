package bcache

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/netstat"
	"github.com/bcache-go/bcache/internal/store"
)

// BenchmarkThroughputAcrossProcesses is BenchmarkThroughput of package
// transport/gossip with every member a Cache in a process of its own:
// writes offered at a fixed rate in all, spread over every member (member
// i writes numbers i, i+n, i+2n, ... each when it is due), for two
// seconds; it reports the rate the members reached, how long after the
// last write every member held every write (lag-ms), what their senders
// dropped (dropped: left to anti-entropy), what the kernel dropped for
// full socket buffers (rcvbuf-drops, machine-wide, Linux), the wire
// bytes per write and the CPU time all members spent from the first write
// until each held every write, per write (cpu-us/write: the members share
// the machine's cores, so on two cores no rate above 2 s / cpu-us/write
// per second can converge).
//
//	go test -run '^$' -bench ThroughputAcrossProcesses -benchtime 1x -count 3 .
func BenchmarkThroughputAcrossProcesses(b *testing.B) {
	for _, tc := range []struct{ n, rate int }{{3, 100_000}, {3, 200_000}, {5, 50_000}, {5, 100_000}} {
		b.Run(fmt.Sprintf("nodes=%d/rate=%d", tc.n, tc.rate), func(b *testing.B) {
			for b.Loop() {
				throughputAcross(b, tc.n, tc.rate, 2*time.Second)
			}
		})
	}
}

func throughputAcross(b *testing.B, n, rate int, d time.Duration) {
	b.StopTimer()
	defer b.StartTimer()
	writes := int(float64(rate) * d.Seconds())
	w, err := New(Config{NodeName: "m0", BindAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	all := holdsAll(w, writes)
	members := spawnMembers(b, w, n, throughputChildEnv, func(i int, _ string) string {
		return fmt.Sprintf("m%d %s %d %d %d %d", i, w.Addr(), i, n, rate, writes)
	})
	rcvbuf, rcvbufOK := netstat.UDPRcvbufErrors()
	wire, dropped := sentAndDropped(w)
	for _, m := range members {
		fmt.Fprintln(m.stdin, "start")
	}
	start, cpu := time.Now(), processCPU()
	if err := writeShare(w, 0, n, rate, writes, start); err != nil {
		b.Fatal(err)
	}
	issued := time.Now()
	select {
	case <-all:
	case <-time.After(time.Minute):
		b.Fatal("m0 does not hold every write a minute after the last")
	}
	held := time.Now()
	cpu = processCPU() - cpu
	wire1, dropped1 := sentAndDropped(w)
	wire, dropped = wire1-wire, dropped1-dropped
	for _, m := range members {
		ns := m.expectAll(b, "done") // held at, issued at, wire bytes, dropped, CPU ns
		if len(ns) != 5 {
			b.Fatalf("member %s: %d numbers after done, want 5", m.file, len(ns))
		}
		if t := time.Unix(0, int64(ns[0])); t.After(held) {
			held = t
		}
		if t := time.Unix(0, int64(ns[1])); t.After(issued) {
			issued = t
		}
		wire += ns[2]
		dropped += ns[3]
		cpu += time.Duration(ns[4])
	}
	b.ReportMetric(float64(writes)/issued.Sub(start).Seconds(), "offered-writes/s")
	b.ReportMetric(float64(held.Sub(issued).Milliseconds()), "lag-ms")
	b.ReportMetric(float64(dropped), "dropped")
	if after, ok := netstat.UDPRcvbufErrors(); ok && rcvbufOK {
		b.ReportMetric(float64(after-rcvbuf), "rcvbuf-drops")
	}
	b.ReportMetric(float64(wire)/float64(writes), "wire-B/write")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(writes), "cpu-us/write")
	}
}

// throughputChildEnv names the variable that makes the test binary a
// member of BenchmarkThroughputAcrossProcesses; its value is "NAME PEER
// INDEX N RATE WRITES". The member joins PEER and prints "ready" once it
// sees all N members. On a line on its standard input it writes its share
// of the writes numbered 0 to WRITES-1 (INDEX, INDEX+N, ...) at RATE
// writes a second in all, counted from then; once it holds all of them it
// prints "done", when it held them and when it issued its last (Unix
// nanoseconds), the bytes it put on the wire and the writes its
// replication dropped meanwhile, and the CPU time it spent (nanoseconds).
// It exits when its standard input closes.
const throughputChildEnv = "BCACHE_BENCH_THROUGHPUT"

func throughputChild(arg string) {
	var name, peer string
	var index, n, rate, writes int
	_, err := fmt.Sscanf(arg, "%s %s %d %d %d %d", &name, &peer, &index, &n, &rate, &writes)
	childMust(err)
	c := childCache(name, peer, n)
	all := holdsAll(c, writes)
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		os.Exit(0)
	}
	wire, dropped := sentAndDropped(c)
	cpu := processCPU()
	stop := profileMember(name)
	childMust(writeShare(c, index, n, rate, writes, time.Now()))
	issued := time.Now()
	<-all
	held := time.Now()
	stop()
	cpu = processCPU() - cpu
	wire1, dropped1 := sentAndDropped(c)
	fmt.Println("done", held.UnixNano(), issued.UnixNano(), wire1-wire, dropped1-dropped, cpu.Nanoseconds())
	io.Copy(io.Discard, os.Stdin)
	c.Close()
}

// throughputProfileEnv, if set, names a directory where each child
// member of BenchmarkThroughputAcrossProcesses writes a CPU profile of
// its run, from its first write until it holds every write (NAME.prof):
//
//	BCACHE_THROUGHPUT_CPUPROFILE=/tmp/prof go test -run '^$' -bench 'ThroughputAcrossProcesses/nodes=3/rate=200000' -benchtime 1x .
const throughputProfileEnv = "BCACHE_THROUGHPUT_CPUPROFILE"

// profileMember starts the CPU profile throughputProfileEnv asks for, if
// any, and returns what stops it.
func profileMember(name string) (stop func()) {
	dir := os.Getenv(throughputProfileEnv)
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name+".prof"))
	childMust(err)
	childMust(pprof.StartCPUProfile(f))
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// throughputKey is the key of write number i.
func throughputKey(i int) string { return fmt.Sprintf("t%015d", i) }

// writeShare writes c's share of the writes numbered 0 to writes-1 (index,
// index+n, ...), each when it is due at rate writes a second in all,
// counted from start.
func writeShare(c *Cache, index, n, rate, writes int, start time.Time) error {
	value := make([]byte, 100)
	for i := index; i < writes; {
		due := min(writes, int(time.Since(start).Seconds()*float64(rate))+1)
		for ; i < due; i += n {
			if err := c.Set(throughputKey(i), value, 0); err != nil {
				return err
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
	return nil
}

// holdsAll returns a channel closed once c holds every write numbered 0
// to writes-1, its own and its peers' (its store's watcher notes each:
// nothing else watches it).
func holdsAll(c *Cache, writes int) <-chan struct{} {
	seen := make([]atomic.Bool, writes)
	var held atomic.Int64
	all := make(chan struct{})
	c.store.Watch(func(ev *store.Event) {
		k := ev.Record.Key
		if len(k) != 16 || k[0] != 't' {
			return
		}
		i, err := strconv.Atoi(k[1:])
		if err != nil || i < 0 || i >= writes || !seen[i].CompareAndSwap(false, true) {
			return
		}
		if held.Add(1) == int64(writes) {
			close(all)
		}
	})
	return all
}

// sentAndDropped returns the bytes c has put on the wire and the writes
// its replication has dropped (left to anti-entropy), so far.
func sentAndDropped(c *Cache) (wire, dropped uint64) {
	r := c.Stats().Replication
	return r.WirePacketBytes + r.WireStreamBytes, r.WritesDropped + r.StreamsDropped + r.Protocol.DeltasDropped
}
