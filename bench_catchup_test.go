package bcache

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"
)

// BenchmarkCatchUp measures how long a member that joins takes to hold
// what the cluster holds: one member holds n keys (16-byte keys, 100-byte
// values), a second starts with it as its peer, and the time from the
// second's New to its holding all n records is reported (catch-up-s), on
// 127.0.0.1 with the production timings; and how long after that the
// joiner's WaitSynced returned (synced-late-ms; negative: before).
//
//	go test -run '^$' -bench CatchUp -benchtime 1x .
func BenchmarkCatchUp(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var total, late float64
			for b.Loop() {
				d, l := catchUp(b, n)
				total, late = total+d, late+l
			}
			b.ReportMetric(total/float64(b.N), "catch-up-s")
			b.ReportMetric(late/float64(b.N), "synced-late-ms")
		})
	}
}

func catchUp(b *testing.B, n int) (seconds, syncedLateMs float64) {
	b.StopTimer()
	defer b.StartTimer()
	cfg := Config{NodeName: "holder", BindAddr: "127.0.0.1:0"}
	if os.Getenv(holderKeyedEnv) == "1" {
		cfg.SecretKey = benchKey
	}
	a, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	value := make([]byte, 100)
	for i := range n {
		if err := a.Set(fmt.Sprintf("key:%012d", i), value, 0); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	j, err := New(Config{NodeName: "joiner", BindAddr: "127.0.0.1:0", Peers: []string{a.Addr()}})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	synced := make(chan time.Time, 1)
	go func() {
		if j.WaitSynced(context.Background()) == nil {
			synced <- time.Now()
		}
	}()
	for j.Stats().Records < n {
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("the joiner holds %d of %d records after 5 minutes", j.Stats().Records, n)
		}
		time.Sleep(time.Millisecond) // polling a figure, not awaiting an event
	}
	held := time.Now()
	return held.Sub(start).Seconds(), float64((<-synced).Sub(held).Microseconds()) / 1000
}

// BenchmarkCatchUpFromAnotherProcess is BenchmarkCatchUp with the member
// that holds the keys in a child process, as members run: the joiner's
// collections then scan its own heap only, not the holder's too. It also
// reports the repair records the joiner received per key it holds
// (received/key: 1 when every record came once), and the CPU time each
// process used from the joiner's start until it held every key (on Unix;
// 0 elsewhere): steadier figures than the time on a noisy machine. The
// last runs a million keys in a cluster with a key (SecretKey).
//
//	go test -run '^$' -bench CatchUpFromAnotherProcess -benchtime 1x .
func BenchmarkCatchUpFromAnotherProcess(b *testing.B) {
	for _, c := range []struct {
		n     int
		keyed bool
	}{{100_000, false}, {1_000_000, false}, {1_000_000, true}} {
		name := fmt.Sprint(c.n)
		if c.keyed {
			name += "-with-a-key"
		}
		b.Run(name, func(b *testing.B) {
			var total, received, joinerCPU, holderCPU float64
			for b.Loop() {
				r := catchUpFromChild(b, c.n, c.keyed)
				total, received = total+r.seconds, received+r.receivedPerKey
				joinerCPU, holderCPU = joinerCPU+r.joinerCPU, holderCPU+r.holderCPU
			}
			b.ReportMetric(total/float64(b.N), "catch-up-s")
			b.ReportMetric(received/float64(b.N), "received/key")
			b.ReportMetric(joinerCPU/float64(b.N), "joiner-cpu-s")
			b.ReportMetric(holderCPU/float64(b.N), "holder-cpu-s")
		})
	}
}

// holderChildEnv names the variable that makes the test binary a holder:
// a member with that many keys, which prints "ready ADDR CPU" and runs
// until its standard input closes, then prints "cpu CPU" (CPU: the
// process's CPU time so far, in nanoseconds).
const holderChildEnv = "BCACHE_HOLDER_KEYS"

// holderKeyedEnv, set to 1, gives the holder benchKey as its SecretKey.
const holderKeyedEnv = "BCACHE_HOLDER_KEYED"

// benchKey is the cluster key of the catch-up benchmark's keyed runs.
var benchKey = []byte("bench-cluster-key-of-32-bytes!!!")

// holderProfileEnv, when set, names a file where the holder writes a CPU
// profile of its serving (its filling is left out), and beside it
// (".allocs") a profile of what it allocated:
//
//	BCACHE_HOLDER_CPUPROFILE=/tmp/holder.prof go test -run '^$' -bench CatchUpFromAnotherProcess/1000000 -benchtime 1x .
const holderProfileEnv = "BCACHE_HOLDER_CPUPROFILE"

func holderChild(arg string) {
	n, err := strconv.Atoi(arg)
	if err != nil {
		panic(err)
	}
	cfg := Config{NodeName: "holder", BindAddr: "127.0.0.1:0"}
	if os.Getenv(holderKeyedEnv) == "1" {
		cfg.SecretKey = benchKey
	}
	a, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	value := make([]byte, 100)
	for i := range n {
		if err := a.Set(fmt.Sprintf("key:%012d", i), value, 0); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if path := os.Getenv(holderProfileEnv); path != "" {
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
		if f, err := os.Create(path + ".allocs"); err == nil {
			defer f.Close()
			defer pprof.Lookup("allocs").WriteTo(f, 0)
		}
	}
	fmt.Printf("ready %s %d\n", a.Addr(), processCPU())
	io.Copy(io.Discard, os.Stdin)
	fmt.Printf("cpu %d\n", processCPU())
	a.Close()
}

// childCatchUp is what one catch-up from a child holder measured.
type childCatchUp struct {
	seconds, receivedPerKey float64
	joinerCPU, holderCPU    float64 // seconds
}

func catchUpFromChild(b *testing.B, n int, keyed bool) (r childCatchUp) {
	b.StopTimer()
	defer b.StartTimer()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", holderChildEnv, n))
	var key []byte
	if keyed {
		cmd.Env, key = append(cmd.Env, holderKeyedEnv+"=1"), benchKey
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	lines := bufio.NewScanner(out)
	var addr string
	var holderStart int64
	if !lines.Scan() {
		b.Fatal("the holder did not start")
	}
	if _, err := fmt.Sscanf(lines.Text(), "ready %s %d", &addr, &holderStart); err != nil {
		b.Fatalf("the holder did not start: %q", lines.Text())
	}
	start, joinerStart := time.Now(), processCPU()
	j, err := New(Config{NodeName: "joiner", BindAddr: "127.0.0.1:0", Peers: []string{addr}, SecretKey: key})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	for j.Stats().Records < n {
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("the joiner holds %d of %d records after 5 minutes", j.Stats().Records, n)
		}
		time.Sleep(time.Millisecond) // polling a figure, not awaiting an event
	}
	r.seconds = time.Since(start).Seconds()
	r.joinerCPU = (processCPU() - joinerStart).Seconds()
	r.receivedPerKey = float64(j.Stats().Replication.Protocol.RepairRecordsReceived) / float64(n)
	stdin.Close()
	var holderEnd int64
	if !lines.Scan() {
		b.Fatal("the holder did not report its CPU time")
	}
	if _, err := fmt.Sscanf(lines.Text(), "cpu %d", &holderEnd); err != nil {
		b.Fatalf("the holder did not report its CPU time: %q", lines.Text())
	}
	r.holderCPU = time.Duration(holderEnd - holderStart).Seconds()
	return r
}
