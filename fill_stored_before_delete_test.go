package bcache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// TestAFillStoredBeforeADeleteServesNoValueToACallerAfterIt: a fill whose
// filler read the source's old value and stored it, not superseded, has
// its result but has not yet handed it to its callers when the service
// updates the source and deletes the key (cache-aside). A read made after
// the Delete returned joins that fill (the fill map entry is gone, so it
// is not "late") and got the old value, deleted before it began.
func TestAFillStoredBeforeADeleteServesNoValueToACallerAfterIt(t *testing.T) {
	for _, how := range []string{"GetWithFiller", "GetOrFill"} {
		t.Run(how, func(t *testing.T) {
			joined := make(chan string, 16)
			prevJoin, prevResult := fillJoinHook, fillResultHook
			t.Cleanup(func() { fillJoinHook, fillResultHook = prevJoin, prevResult })
			fillJoinHook = func(key string) { joined <- key }
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
			c := newCache(t, Config{BindAddr: "127.0.0.1:0", Filler: fill})
			get := func() ([]byte, error) {
				if how == "GetOrFill" {
					return c.GetOrFill(context.Background(), "k")
				}
				return c.GetWithFiller(context.Background(), "k", fill, 0)
			}
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
