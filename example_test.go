package bcache_test

import (
	"context"
	"fmt"
	"log"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/bcache-go/bcache"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// member starts a member called name on an in-memory network (no
// sockets), joining peers.
func member(net *memnet.Network, name string, peers ...string) *bcache.Cache {
	t, err := net.NewTransport(name)
	if err != nil {
		log.Fatal(err)
	}
	c, err := bcache.New(bcache.Config{NodeName: name, Network: t, Peers: peers, Timings: bcache.FastTimings()})
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// until waits, without sleeping, for cond to hold: replication happens on
// the members' own goroutines.
func until(cond func() bool) {
	for deadline := time.Now().Add(10 * time.Second); !cond(); runtime.Gosched() {
		if time.Now().After(deadline) {
			log.Fatal("timed out")
		}
	}
}

// A member needs only an address to listen on (here an in-memory network
// stands in for UDP and TCP); Peers joins an existing cluster.
func ExampleNew() {
	net := memnet.NewNetwork(1)
	first := member(net, "first")
	defer first.Close()
	second := member(net, "second", first.Addr())
	defer second.Close()
	until(func() bool { return len(second.Members()) == 2 })
	for _, m := range second.Members() {
		fmt.Println(m.Name)
	}
	// Output:
	// first
	// second
}

// A value written on one member is read on the others: the point of the
// library.
func ExampleCache_Set() {
	net := memnet.NewNetwork(1)
	a := member(net, "a")
	defer a.Close()
	b := member(net, "b", a.Addr())
	defer b.Close()
	until(func() bool { return len(a.Members()) == 2 && len(b.Members()) == 2 })

	if err := a.Set("greeting", []byte("hello"), 10*time.Minute); err != nil {
		log.Fatal(err)
	}
	until(func() bool { _, ok := b.Get("greeting"); return ok })
	v, _ := b.Get("greeting")
	fmt.Println("b reads:", string(v))
	// Output: b reads: hello
}

// A delete is a tombstone that wins on every member.
func ExampleCache_Delete() {
	net := memnet.NewNetwork(1)
	a := member(net, "a")
	defer a.Close()
	b := member(net, "b", a.Addr())
	defer b.Close()
	until(func() bool { return len(a.Members()) == 2 && len(b.Members()) == 2 })

	a.Set("session", []byte("token"), 0)
	until(func() bool { _, ok := b.Get("session"); return ok })
	if err := b.Delete("session"); err != nil {
		log.Fatal(err)
	}
	until(func() bool { _, ok := a.Get("session"); return !ok })
	_, ok := a.Get("session")
	fmt.Println("a still has it:", ok)
	// Output: a still has it: false
}

// A TTL becomes an absolute expiry carried with the write. The clock here
// is moved by hand.
func ExampleCache_Set_ttl() {
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixNano())
	t, err := memnet.NewNetwork(1).NewTransport("solo")
	if err != nil {
		log.Fatal(err)
	}
	c, err := bcache.New(bcache.Config{Network: t, Clock: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Set("otp", []byte("493817"), 5*time.Minute)
	_, ok := c.Get("otp")
	fmt.Println("at once:", ok)
	now.Add(int64(6 * time.Minute))
	_, ok = c.Get("otp")
	fmt.Println("six minutes later:", ok)
	// Output:
	// at once: true
	// six minutes later: false
}

// One fill per key per member at a time; the filled value replicates like
// any other write.
func ExampleCache_GetWithFiller() {
	net := memnet.NewNetwork(1)
	c := member(net, "solo")
	defer c.Close()
	loadUser := func(ctx context.Context, key string) ([]byte, error) {
		fmt.Println("loading", key, "from the database")
		return []byte("Ada"), nil
	}
	for range 2 { // the second call is a hit
		v, err := c.GetWithFiller(context.Background(), "user:42", loadUser, time.Minute)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(v))
	}
	// Output:
	// loading user:42 from the database
	// Ada
	// Ada
}
