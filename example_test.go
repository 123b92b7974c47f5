package bcache_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/bcache-go/bcache"
)

// A member needs only an address to listen on; port 0 picks a free one.
// Peers joins an existing cluster.
func ExampleNew() {
	first, err := bcache.New(bcache.Config{NodeName: "first", BindAddr: "127.0.0.1:0", Timings: bcache.FastTimings()})
	if err != nil {
		log.Fatal(err)
	}
	defer first.Close()
	second, err := bcache.New(bcache.Config{
		NodeName: "second", BindAddr: "127.0.0.1:0", Peers: []string{first.Addr()}, Timings: bcache.FastTimings(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer second.Close()
	for len(second.Members()) < 2 { // joining takes a few milliseconds
		time.Sleep(time.Millisecond)
	}
	for _, m := range second.Members() {
		fmt.Println(m.Name)
	}
	// Output:
	// first
	// second
}

func ExampleCache_Set() {
	c, err := bcache.New(bcache.Config{BindAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Set("greeting", []byte("hello"), 10*time.Minute); err != nil {
		log.Fatal(err)
	}
	v, ok := c.Get("greeting")
	fmt.Println(string(v), ok)
	// Output: hello true
}

func ExampleCache_Delete() {
	c, err := bcache.New(bcache.Config{BindAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Set("session", []byte("token"), 0)
	if err := c.Delete("session"); err != nil {
		log.Fatal(err)
	}
	_, ok := c.Get("session")
	fmt.Println(ok)
	// Output: false
}

func ExampleCache_GetWithFiller() {
	c, err := bcache.New(bcache.Config{BindAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
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
