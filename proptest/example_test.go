package proptest_test

import (
	"fmt"

	"github.com/bcache-go/bcache/proptest"
)

// A simulated cluster replays any schedule of faults deterministically.
// Here one member is cut off while a key is written, misses the delta,
// and catches up through anti-entropy once the partition heals.
func ExampleCluster() {
	c, err := proptest.NewCluster(3, proptest.MapFactory(proptest.DefaultMapConfig()), 1_750_000_000_000_000_000)
	if err != nil {
		panic(err)
	}
	c.Partition([]string{"n2"})
	c.Set(0, "greeting", []byte("hello"), 0)
	if err := c.DeliverAll(1000); err != nil {
		panic(err)
	}
	_, ok := c.Replica(2).Get("greeting")
	fmt.Println("n2 has it while cut off:", ok)

	if _, err := c.Converge(4, 1000); err != nil { // heals, then anti-entropy
		panic(err)
	}
	v, ok := c.Replica(2).Get("greeting")
	fmt.Println("n2 after the heal:", string(v), ok)
	// Output:
	// n2 has it while cut off: false
	// n2 after the heal: hello true
}
