package bcache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// TestAFillJoinedAfterADeleteServesNoValueFromBeforeIt: a service that
// updates its source and then deletes the key (cache-aside) reads next,
// after the Delete returned, through GetWithFiller (and GetOrFill, whose
// fills here are the same). A fill of the key that began before the
// Delete, reading the source's old value, is superseded by it and does
// not store its value, but it served it, unstored, to every caller it
// had: the read made after the Delete joined it and got the old value.
// That caller now waits for that fill and takes the next one's, which
// reads the source after the Delete. The caller whose read overlapped the
// Delete may get either.
func TestAFillJoinedAfterADeleteServesNoValueFromBeforeIt(t *testing.T) {
	for _, how := range []string{"GetWithFiller", "GetOrFill"} {
		t.Run(how, func(t *testing.T) {
			var source atomic.Value
			source.Store("old")
			started, release := make(chan struct{}, 16), make(chan struct{})
			var calls atomic.Int32
			fill := func(ctx context.Context, key string) ([]byte, error) {
				v := source.Load().(string) // read before it waits: the old value, for the first
				calls.Add(1)
				started <- struct{}{}
				<-release
				return []byte(v), nil
			}
			c, get, joined := cacheAside(t, how, fill)
			var wg sync.WaitGroup
			var first []byte
			wg.Go(func() {
				v, err := get()
				if err != nil {
					t.Error(err)
				}
				first = v
			})
			<-started // the first fill read "old"
			<-joined
			if how == "GetOrFill" {
				<-joined // its ask, then its fill here
			}
			source.Store("new")
			if err := c.Delete("k"); err != nil {
				t.Fatal(err)
			}
			var late []byte
			wg.Go(func() {
				v, err := get()
				if err != nil {
					t.Error(err)
				}
				late = v
			})
			<-joined // the late caller joined the fill under way
			close(release)
			wg.Wait()
			if string(late) != "new" {
				t.Errorf("a read made after the Delete returned got %q, the source's value from before it (filler calls: %d)", late, calls.Load())
			}
			if string(first) != "old" && string(first) != "new" {
				t.Errorf("the read that overlapped the Delete got %q", first)
			}
			if v, ok := c.Get("k"); ok && string(v) != "new" {
				t.Errorf("the key holds %q after the fills", v)
			}
		})
	}
}

// cacheAside starts a member whose Filler is fill, with the fill-join
// hook sending on joined, and returns it and a read of "k" by how
// (GetWithFiller, or GetOrFill, whose fills here are the same).
func cacheAside(t *testing.T, how string, fill Filler) (c *Cache, get func() ([]byte, error), joined chan string) {
	t.Helper()
	joined = make(chan string, 16)
	prev := fillJoinHook
	t.Cleanup(func() { fillJoinHook = prev }) // before newCache's Close
	fillJoinHook = func(key string) { joined <- key }
	c = newCache(t, Config{BindAddr: "127.0.0.1:0", Filler: fill})
	return c, func() ([]byte, error) {
		if how == "GetOrFill" {
			return c.GetOrFill(context.Background(), "k")
		}
		return c.GetWithFiller(context.Background(), "k", fill, 0)
	}, joined
}

// TestAFillStoredBeforeADeleteServesNoValueToACallerAfterIt: a fill whose
// filler read the source's old value and stored it, not superseded, has
// its result but has not yet handed it to its callers when the service
// updates the source and deletes the key (cache-aside). A read made after
// the Delete returned joins that fill (the fill map entry is gone, so it
// is not "late") and got the old value, deleted before it began.
func TestAFillStoredBeforeADeleteServesNoValueToACallerAfterIt(t *testing.T) {
	for _, how := range []string{"GetWithFiller", "GetOrFill"} {
		t.Run(how, func(t *testing.T) {
			prevResult := fillResultHook
			t.Cleanup(func() { fillResultHook = prevResult }) // before newCache's Close
			resulted, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			fillResultHook = func(string) {
				once.Do(func() {
					close(resulted)
					<-release
				})
			}
			var source atomic.Value
			source.Store("old")
			fill := func(ctx context.Context, key string) ([]byte, error) {
				return []byte(source.Load().(string)), nil
			}
			c, get, joined := cacheAside(t, how, fill)
			var wg sync.WaitGroup
			wg.Go(func() {
				if _, err := get(); err != nil {
					t.Error(err)
				}
			})
			<-resulted // the first fill stored "old" and has its result
			if v, ok := c.Get("k"); !ok || string(v) != "old" {
				t.Fatalf("the first fill stored %q, %v", v, ok)
			}
			source.Store("new")
			if err := c.Delete("k"); err != nil {
				t.Fatal(err)
			}
			<-joined // the first caller's join
			if how == "GetOrFill" {
				<-joined // its ask, then its fill here
			}
			var late []byte
			wg.Go(func() {
				v, err := get()
				if err != nil {
					t.Error(err)
				}
				late = v
			})
			<-joined // the late caller joined the fill (or ask) under way
			close(release)
			wg.Wait()
			if string(late) != "new" {
				t.Errorf("a read made after the Delete returned got %q, the source's value from before it", late)
			}
		})
	}
}
