// Command simulate runs a large simulated bcache cluster deterministically
// and prints what replication costs: rounds to converge, traffic per node
// per round, bytes per write in total and on the busiest node, and the
// repair traffic after a partition heals. The same flags give the same
// output.
//
//	go run ./proptest/cmd/simulate -nodes 1000 -keys 10000 -writes 10000
//	go run ./proptest/cmd/simulate -sweep 10,100,1000
//	go run ./proptest/cmd/simulate -nodes 300 -cpuprofile sim.prof
//
// A round is one network step: every frame in flight is delivered (or lost
// or duplicated, at the given rates) in a seeded random order, and every
// node's timers run after one millisecond of simulated time. -workers
// goroutines (one per processor by default) deliver the frames, whole
// nodes each; the output does not depend on how many.
//
// Memory: at 1000 nodes the nodes hold ten million records, about a
// gigabyte live, and Go's collector lets the heap grow to twice what was
// live at its last cycle before the next, so a run peaked near 2 GB. The
// command sets a soft limit of the heap (-memlimit, 1.5 GiB; GOMEMLIMIT,
// if set, wins): near it the collector runs more often, which cost 1000
// nodes little (see the README), and keeps the peak under 1.6 GB. A
// cluster that holds more than the limit still runs, with the collector
// taking up to half the processors: raise the limit, or set it to 0.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bcache-go/bcache/lww"
	"github.com/bcache-go/bcache/proptest"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/wire"
)

func main() {
	o, err := parseArgs(os.Args[1:], os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return
	case err != nil:
		os.Exit(2) // the flag set printed why
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && o.memLimit > 0 {
		debug.SetMemoryLimit(o.memLimit)
	}
	// The heap profile's file is made before the run: a path that cannot
	// be written fails at once, not after a long run (whose CPU profile
	// it then cut short).
	var memFile *os.File
	if o.memProfile != "" {
		var err error
		if memFile, err = os.Create(o.memProfile); err != nil {
			fmt.Fprintln(os.Stderr, "simulate:", err)
			os.Exit(1)
		}
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "simulate:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := run(os.Stdout, o.params, o.sizes); err != nil {
		fmt.Fprintln(os.Stderr, "simulate:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	if o.memProfile != "" {
		// No collection first: the profile's in-use figures are those of
		// the last one, when the cluster was still alive.
		err := pprof.Lookup("heap").WriteTo(memFile, 0)
		if cerr := memFile.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "simulate:", err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
	}
}

// check refuses values out of their range: -nodes counts only when no
// -sweep replaces it; a rate must be a number in its range (NaN compared
// false, and ran as 0); -fanout 0 is the default (found by review).
func check(p params, sizes []int) error {
	if len(sizes) == 0 || slices.Min(sizes) < 2 || p.keys < 1 || p.writes < 1 || p.perRound < 1 || !(p.loss >= 0 && p.loss < 1) ||
		!(p.dup >= 0 && p.dup <= 1) || !(p.split >= 0 && p.split <= 1) || p.workers < 1 || p.fanout < 0 ||
		p.maxRounds < 0 || p.sessionEvery < 0 || p.maxBytesInFlight < 0 {
		return fmt.Errorf("need -nodes (or each -sweep size) >= 2, -keys, -writes, -rate, -workers >= 1, 0 <= -loss < 1, 0 <= -dup <= 1, 0 <= -partition-writes <= 1, -fanout, -max-rounds, -session-every, -max-bytes-in-flight >= 0")
	}
	return nil
}

func run(w io.Writer, p params, sizes []int) error {
	if err := check(p, sizes); err != nil {
		return err
	}
	if p.fanout == 0 {
		p.fanout = transport.DefaultFanout // which the header says
	}
	// The rates as given (%g): at three decimals, -loss 0.0004 read 0.000.
	fmt.Fprintf(w, "keys=%d writes=%d rate=%d/round fanout=%d loss=%g dup=%g seed=%d partition-writes=%d\n",
		p.keys, p.writes, p.perRound, p.fanout, p.loss, p.dup, p.seed, 2*max(1, int(p.split*float64(p.keys))))
	fmt.Fprintln(w, header)
	for _, n := range sizes {
		p.nodes = n
		res, err := simulate(p)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", n, err)
		}
		fmt.Fprintln(w, row(res, n))
	}
	return nil
}

// options are the command's flags.
type options struct {
	params
	sweep, cpuProfile, memProfile string
	memLimit                      int64 // bytes, once parsed (-memlimit's MiB)
	sizes                         []int // -sweep's, or -nodes
}

// parseArgs parses the command's flags, on a flag set of its own: those
// the packages it imports register on the default set (rapid's, by
// proptest) are no flags of this command, and -h listed them (found by
// review). Errors and -h's usage go to stderr.
func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.nodes, "nodes", 100, "cluster size")
	fs.IntVar(&o.keys, "keys", 10_000, "distinct keys written")
	fs.IntVar(&o.writes, "writes", 10_000, "writes, spread over the first rounds")
	fs.IntVar(&o.perRound, "rate", 100, "writes issued per round")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of every random choice")
	fs.Float64Var(&o.loss, "loss", 0, "fraction of frames lost")
	fs.Float64Var(&o.dup, "dup", 0, "fraction of frames duplicated")
	fs.IntVar(&o.fanout, "fanout", transport.DefaultFanout, "broadcast tree degree")
	fs.Float64Var(&o.split, "partition-writes", 0.01, "writes of the partition phase, as a fraction of -keys, twice that in all, to members drawn at random (the header prints how many in all)")
	fs.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "goroutines that deliver frames (the table does not depend on it)")
	fs.IntVar(&o.maxRounds, "max-rounds", 0, "rounds each phase may run after its last write before the run fails as not agreeing (0: 100,000)")
	fs.IntVar(&o.sessionEvery, "session-every", 0, "every node also starts an anti-entropy session with a random peer every this many rounds (0: the replicas' own timers alone)")
	fs.Int64Var(&o.maxBytesInFlight, "max-bytes-in-flight", 0, "payload bytes the frames of a round, and those in flight, may hold before the run fails (0: 256 MiB + nodes x (1 MiB + rate KiB))")
	fs.StringVar(&o.sweep, "sweep", "", "comma-separated cluster sizes to run in turn instead of -nodes")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.Int64Var(&o.memLimit, "memlimit", 1536, "soft limit of the heap in MiB, unless GOMEMLIMIT is set (0: none); see the package doc")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile to this file at the end, as of the run's last collection (what the nodes held then)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "simulate: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.sizes = []int{o.nodes}
	if o.sweep != "" {
		// Here, before a CPU profile starts: an exit on a bad size left
		// it cut short (found by review).
		o.sizes = o.sizes[:0]
		for _, s := range strings.Split(o.sweep, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 2 {
				fmt.Fprintf(stderr, "simulate: bad size %q in -sweep\n", s)
				return o, fmt.Errorf("bad size %q in -sweep", s)
			}
			o.sizes = append(o.sizes, n)
		}
	}
	// Values out of range are usage errors, exit 2 as a flag that does
	// not parse, refused before a profile's file is made; they exited 1
	// after it (found by review).
	if err := check(o.params, o.sizes); err != nil {
		fmt.Fprintln(stderr, "simulate:", err)
		return o, err
	}
	// A negative limit ran with none; MiB past what bytes hold overflowed
	// (1<<44 to a limit of 0 bytes, the collector running without end).
	if o.memLimit < 0 {
		fmt.Fprintln(stderr, "simulate: need -memlimit >= 0")
		return o, errors.New("need -memlimit >= 0")
	}
	if o.memLimit > math.MaxInt64>>20 {
		o.memLimit = math.MaxInt64
	} else {
		o.memLimit <<= 20
	}
	return o, nil
}

// replicaConfig is the replica every simulated node runs: production
// protocol settings, a digest sized for tens of thousands of keys, and
// anti-entropy every 50 rounds so that lost deltas are repaired. A member
// batches the writes of one round, as a host's group commit batches what
// arrives while it sends: the simulator hands the node one write at a
// time, and a flush interval of one round groups them.
func replicaConfig(fanout int) proptest.MapConfig {
	return proptest.MapConfig{
		Map: lww.Config{DigestBits: 12},
		Transport: transport.Config{
			FlushInterval:       time.Millisecond,
			Fanout:              fanout,
			AntiEntropyInterval: 50 * time.Millisecond,
			SessionTimeout:      20 * time.Millisecond,
			// Every member of the run shares the keys and values it decodes:
			// a thousand copies of each in one process were most of its heap.
			Intern: wire.NewInterner(),
		},
	}
}
