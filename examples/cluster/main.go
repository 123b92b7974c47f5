// Command cluster is the demo of the README. Until the Cache API lands it
// runs bcache's replica and sync protocol on a simulated network: three
// members, a write that reaches everyone, a delete, a TTL that expires, a
// member cut off while the others write, and its catch-up by anti-entropy
// once the partition heals.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/bcache-go/bcache/proptest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run() error {
	c, err := proptest.NewCluster(3, proptest.MapFactory(proptest.DefaultMapConfig()), time.Now().UnixNano())
	if err != nil {
		return err
	}
	show := func(what, key string) {
		fmt.Printf("%-34s", what)
		for i := range c.Size() {
			v, ok := c.Replica(i).Get(key)
			if !ok {
				v = []byte("(miss)")
			}
			fmt.Printf("  %s=%-8s", c.Name(i), v)
		}
		fmt.Println()
	}
	deliver := func() error { return c.DeliverAll(10_000) }

	c.Set(0, "greeting", []byte("hello"), 0)
	if err := deliver(); err != nil {
		return err
	}
	show("set greeting on n0:", "greeting")

	c.Delete(1, "greeting")
	if err := deliver(); err != nil {
		return err
	}
	show("delete greeting on n1:", "greeting")

	c.Set(2, "session", []byte("token"), c.Phys(2)+int64(2*time.Second))
	if err := deliver(); err != nil {
		return err
	}
	show("set session on n2, TTL 2s:", "session")
	c.Advance(3 * time.Second)
	show("3 seconds later:", "session")

	c.Net.Partition([]string{c.Name(2)})
	c.Set(0, "color", []byte("blue"), 0)
	if err := deliver(); err != nil {
		return err
	}
	show("n2 cut off, set color on n0:", "color")
	if _, err := c.Converge(4, 10_000); err != nil { // heal, then anti-entropy
		return err
	}
	show("healed, after anti-entropy:", "color")
	net := c.Net.Stats()
	fmt.Printf("\nframes sent %d, delivered %d, cut by the partition %d, bytes %d\n", net.Sent, net.Delivered, net.Cut, net.Bytes)
	return nil
}
