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
	"strings"
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
	a, err := New(Config{NodeName: "holder", BindAddr: "127.0.0.1:0"})
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
// (received/key: 1 when every record came once).
//
//	go test -run '^$' -bench CatchUpFromAnotherProcess -benchtime 1x .
func BenchmarkCatchUpFromAnotherProcess(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var total, received float64
			for b.Loop() {
				d, r := catchUpFromChild(b, n)
				total, received = total+d, received+r
			}
			b.ReportMetric(total/float64(b.N), "catch-up-s")
			b.ReportMetric(received/float64(b.N), "received/key")
		})
	}
}

// holderChildEnv names the variable that makes the test binary a holder:
// a member with that many keys, which prints "ready ADDR" and runs until
// its standard input closes.
const holderChildEnv = "BCACHE_HOLDER_KEYS"

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
	a, err := New(Config{NodeName: "holder", BindAddr: "127.0.0.1:0"})
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
	fmt.Printf("ready %s\n", a.Addr())
	io.Copy(io.Discard, os.Stdin)
	a.Close()
}

func catchUpFromChild(b *testing.B, n int) (seconds, receivedPerKey float64) {
	b.StopTimer()
	defer b.StartTimer()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", holderChildEnv, n))
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
	addr, ok := "", lines.Scan()
	if ok {
		addr, ok = strings.CutPrefix(lines.Text(), "ready ")
	}
	if !ok {
		b.Fatalf("the holder did not start: %q", lines.Text())
	}
	start := time.Now()
	j, err := New(Config{NodeName: "joiner", BindAddr: "127.0.0.1:0", Peers: []string{addr}})
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
	seconds = time.Since(start).Seconds()
	return seconds, float64(j.Stats().Replication.Protocol.RepairRecordsReceived) / float64(n)
}
