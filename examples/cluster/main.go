// Command cluster is the demo of the README. It starts three bcache members
// on 127.0.0.1 in one process, writes on one and reads on the others,
// deletes, lets a TTL expire, then runs three more members on an in-memory
// network where it cuts one off, writes on both sides and heals, and
// prints how long each step took and what the members counted.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/bcache-go/bcache"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run() error {
	fmt.Println("== three members on 127.0.0.1")
	cs, err := start(3, func(i int, c *bcache.Config) { c.BindAddr = "127.0.0.1:0" })
	if err != nil {
		return err
	}
	defer closeAll(cs)
	for _, c := range cs {
		fmt.Printf("   %-3s listening on %s\n", c.Name(), c.Addr())
	}

	if err := cs[0].Set("greeting", []byte("hello"), 0); err != nil {
		return err
	}
	if err := step("set greeting on m0, visible on all", cs, "greeting", []byte("hello")); err != nil {
		return err
	}
	if err := cs[1].Delete("greeting"); err != nil {
		return err
	}
	if err := step("delete greeting on m1, gone on all", cs, "greeting", nil); err != nil {
		return err
	}
	if err := cs[2].Set("session", []byte("token"), 300*time.Millisecond); err != nil {
		return err
	}
	if err := step("set session on m2 with a 300ms TTL", cs, "session", []byte("token")); err != nil {
		return err
	}
	if err := step("session expired on all", cs, "session", nil); err != nil {
		return err
	}
	printStats(cs)

	fmt.Println("\n== three members on an in-memory network with fault injection")
	net := memnet.NewNetwork(1)
	ms, err := start(3, func(i int, c *bcache.Config) {
		t, _ := net.NewTransport(fmt.Sprintf("m%d", i))
		c.Network = t
	})
	if err != nil {
		return err
	}
	defer closeAll(ms)
	net.Partition([]string{"m2"})
	if err := wait("m2 cut off: the others see 2 members", func() bool { return len(ms[0].Members()) == 2 && len(ms[1].Members()) == 2 }); err != nil {
		return err
	}
	if err := ms[0].Set("color", []byte("blue"), 0); err != nil {
		return err
	}
	if err := ms[2].Set("shape", []byte("circle"), 0); err != nil {
		return err
	}
	if err := step("color written on m0 reaches m1, not m2", ms[:2], "color", []byte("blue")); err != nil {
		return err
	}
	if _, ok := ms[2].Get("color"); ok {
		return fmt.Errorf("m2 got a write while cut off")
	}
	net.Heal()
	if err := wait("healed: m2 back by itself", func() bool { return len(ms[0].Members()) == 3 && len(ms[2].Members()) == 3 }); err != nil {
		return err
	}
	if err := step("color converged on all", ms, "color", []byte("blue")); err != nil {
		return err
	}
	if err := step("shape, written on the island, converged on all", ms, "shape", []byte("circle")); err != nil {
		return err
	}
	printStats(ms)
	return nil
}

// start builds n members, each joining the first, and waits until they all
// see each other.
func start(n int, edit func(i int, c *bcache.Config)) ([]*bcache.Cache, error) {
	var cs []*bcache.Cache
	for i := range n {
		cfg := bcache.Config{NodeName: fmt.Sprintf("m%d", i), Timings: bcache.FastTimings(), AntiEntropyInterval: 100 * time.Millisecond}
		edit(i, &cfg)
		if i > 0 {
			cfg.Peers = []string{cs[0].Addr()}
		}
		c, err := bcache.New(cfg)
		if err != nil {
			closeAll(cs)
			return nil, err
		}
		cs = append(cs, c)
	}
	err := wait(fmt.Sprintf("%d members joined", n), func() bool {
		for _, c := range cs {
			if len(c.Members()) != n {
				return false
			}
		}
		return true
	})
	if err != nil {
		return cs, err
	}
	// A member that joined has caught up once its first exchange with a
	// peer completes: WaitSynced says when (a load balancer asks the
	// HTTP node's /readyz).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	for _, c := range cs[1:] {
		if err := c.WaitSynced(ctx); err != nil {
			return cs, fmt.Errorf("%s not synced: %w", c.Name(), err)
		}
	}
	fmt.Printf("   %-52s %8.2f ms\n", "every member synced with a peer", float64(time.Since(start).Microseconds())/1000)
	return cs, nil
}

// step waits until key reads want (nil: a miss) on every member.
func step(what string, cs []*bcache.Cache, key string, want []byte) error {
	return wait(what, func() bool {
		for _, c := range cs {
			v, ok := c.Get(key)
			if ok != (want != nil) || !bytes.Equal(v, want) {
				return false
			}
		}
		return true
	})
}

// wait polls cond for up to ten seconds and prints how long it took.
func wait(what string, cond func() bool) error {
	start := time.Now()
	for !cond() {
		if time.Since(start) > 10*time.Second {
			return fmt.Errorf("%s: not after 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("   %-52s %8.2f ms\n", what, float64(time.Since(start).Microseconds())/1000)
	return nil
}

func printStats(cs []*bcache.Cache) {
	fmt.Println("   member  values  deltas sent/received  anti-entropy rounds  repaired  wire bytes")
	for _, c := range cs {
		s := c.Stats()
		r, p := s.Replication, s.Replication.Protocol
		fmt.Printf("   %-6s  %6d  %9d/%-9d  %19d  %8d  %10d\n", c.Name(), s.Keys, p.DeltaBatchesSent, p.DeltaBatchesReceived,
			p.SessionsCompleted, p.RepairRecordsReceived, r.WirePacketBytes+r.WireStreamBytes)
	}
	fmt.Println("   (an expired value counts until it is collected)")
}

func closeAll(cs []*bcache.Cache) {
	for _, c := range cs {
		c.Close()
	}
}
