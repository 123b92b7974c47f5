package bcache

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/clusterfill"
)

// runningIn returns the stacks of this process's goroutines that are in
// any of the functions fns.
func runningIn(fns ...string) []string {
	buf := make([]byte, 4<<20)
	var in []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		for _, fn := range fns {
			if strings.Contains(g, fn) {
				in = append(in, g)
				break
			}
		}
	}
	return in
}

// TestCloseWaitsForGetOrFillsAsk: GetOrFill asks on a goroutine of the
// member's, which fills on its own member (it owns the key) or asks the
// owner; Close ends that goroutine before it returns, even while a Filler
// that does not heed its ctx goes on (Close does not wait for a Filler's
// call). Close did not wait for it; it ended soon after, on the member's
// life cancelled, and this passed without Close waiting too, so the ask's
// end is held back (askEndHook) until the member has left the cluster,
// and 50 ms after that unless Close returns meanwhile: without the wait
// it did, at once. It also guards that the ask never waits on the
// Filler's call or a peer.
func TestCloseWaitsForGetOrFillsAsk(t *testing.T) {
	for _, owner := range []string{"f0", "f1"} {
		t.Run("owner="+owner, func(t *testing.T) {
			var cs []*Cache
			closed, ended := make(chan struct{}), make(chan struct{})
			var early atomic.Bool
			askEndHook = func() {
				defer close(ended)
				<-cs[0].left // Close's wait for its goroutines comes next
				select {
				case <-closed: // an absence cannot be awaited: 50 ms of it
					early.Store(true)
				case <-time.After(50 * time.Millisecond):
				}
			}
			defer func() { askEndHook = func() {} }()
			release := make(chan struct{})
			defer close(release)
			started := make(chan struct{}, 2)
			filler := func(ctx context.Context, key string) ([]byte, error) {
				started <- struct{}{}
				<-release // a source that does not heed ctx
				return []byte("v"), nil
			}
			cs = fillCluster(t, 2, filler, time.Minute, slowProbes)
			key := ""
			for i := 0; key == ""; i++ {
				if k := fmt.Sprint("key", i); clusterfill.Owner(k, "f0", []string{"f0", "f1"}) == owner {
					key = k
				}
			}
			asked := make(chan error, 1)
			go func() { _, err := cs[0].GetOrFill(context.Background(), key); asked <- err }()
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("the filler did not start")
			}
			err := cs[0].Close()
			close(closed)
			if err != nil {
				t.Fatal(err)
			}
			<-ended
			if early.Load() {
				t.Fatal("Close returned while GetOrFill's ask still ran")
			}
			if gs := runningIn("(*Cache).clusterFill", "(*Cache).forward"); len(gs) > 0 {
				t.Fatalf("after Close, %d goroutines of GetOrFill's ask:\n%s", len(gs), strings.Join(gs, "\n\n"))
			}
			if err := <-asked; !errors.Is(err, ErrClosed) {
				t.Fatalf("GetOrFill: %v, want ErrClosed", err)
			}
		})
	}
}
