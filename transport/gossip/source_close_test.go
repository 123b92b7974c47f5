package gossip

import (
	"context"
	"testing"
	"time"
)

// TestALookEndsAtCloseWithoutTheAnswerOfASourceThatIgnoresItsContext: a
// look at the seeds whose PeerSource ignores its context ends as the
// Replicator closes (r.done), without the source's answer: it waited for
// that answer until a second past the look's deadline, its goroutine
// left running up to 3 s past Close (found by review). The source's call
// itself goes on in its own code until it returns, its answer dropped.
func TestALookEndsAtCloseWithoutTheAnswerOfASourceThatIgnoresItsContext(t *testing.T) {
	called, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	src := func(context.Context) ([]string, error) {
		close(called)
		<-release // ignores its context
		return []string{"127.0.0.1:7946"}, nil
	}
	r := &Replicator{cfg: Config{PeerSource: src}, done: make(chan struct{})}
	// A deadline the look never reaches: what ends it is Close.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	type look struct {
		addrs  []string
		failed map[string]error
	}
	looked := make(chan look, 1)
	go func() {
		addrs, failed := r.seeds(ctx, ctx)
		looked <- look{addrs, failed}
	}()
	<-called
	close(r.done) // as Close does
	select {
	case l := <-looked:
		if len(l.addrs) != 0 {
			t.Fatalf("a look ended by Close gave %v to join", l.addrs)
		}
	case <-time.After(10 * time.Second): // a bound, not a wait: the look ends at once
		t.Fatal("the look did not end at Close: it waits for a PeerSource that ignores its context")
	}
}
