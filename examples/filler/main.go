// Command filler shows GetWithFiller in front of a slow database: a
// stampede of concurrent readers of a missing key makes one call to the
// database, and the filled value is then served from the cache, here and on
// the other member.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bcache-go/bcache"
)

// database is the slow source of truth the cache stands in front of.
type database struct {
	queries  atomic.Int32
	answered atomic.Int64 // when the last query answered, Unix nanoseconds
}

func (db *database) load(ctx context.Context, key string) ([]byte, error) {
	db.queries.Add(1)
	select {
	case <-time.After(200 * time.Millisecond): // a slow query
		db.answered.Store(time.Now().UnixNano())
		return []byte("profile of " + key), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "filler:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := bcache.New(bcache.Config{NodeName: "a", BindAddr: "127.0.0.1:0", Timings: bcache.FastTimings()})
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := bcache.New(bcache.Config{NodeName: "b", BindAddr: "127.0.0.1:0", Peers: []string{a.Addr()}, Timings: bcache.FastTimings()})
	if err != nil {
		return err
	}
	defer b.Close()

	db := &database{}
	const readers = 1000
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.GetWithFiller(context.Background(), "user:42", db.load, time.Minute); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("%d concurrent readers of a missing key: %d database query, %d errors, %v\n",
		readers, db.queries.Load(), failed.Load(), time.Since(start).Round(time.Millisecond))

	start = time.Now()
	v, _ := a.GetWithFiller(context.Background(), "user:42", db.load, time.Minute)
	fmt.Printf("the next read is a hit: %q in %v, database queries still %d\n", v, time.Since(start), db.queries.Load())

	// From the fill, not from now: the value has been on its way since
	// the query answered (timed from here, the replication "took" the 1 µs
	// of the Get that found it there already).
	start = time.Unix(0, db.answered.Load())
	for {
		if v, ok := b.Get("user:42"); ok {
			fmt.Printf("the filled value replicated to the other member in %v: %q\n", time.Since(start).Round(time.Microsecond), v)
			break
		}
		if time.Since(start) > 10*time.Second {
			return fmt.Errorf("the filled value never reached member b")
		}
		time.Sleep(time.Millisecond)
	}
	s := a.Stats()
	fmt.Printf("member a: %d hits, %d misses, %d fills\n", s.Hits, s.Misses, s.Fills)
	return nil
}
