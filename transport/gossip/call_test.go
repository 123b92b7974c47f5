package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// callPair starts two members on an in-memory network; b answers calls
// with serve.
func callPair(t *testing.T, serve func(from string, payload []byte) []byte) (*memnet.Network, *node, *node) {
	t.Helper()
	net := memnet.NewNetwork(1)
	start := func(name string, peers []string, on func(string, []byte) []byte) *node {
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		return startNode(t, name, peers, func(c *Config) { c.Transport, c.OnCall = tr, on })
	}
	a := start("a", nil, nil)
	b := start("b", []string{a.r.Addr()}, serve)
	waitMembers(t, 2, a, b)
	return net, a, b
}

// TestCallAnswers: a call reaches the peer's OnCall with the caller's
// name and payload and returns its answer, small (a datagram) or large (a
// stream); a call to no live member fails at once.
func TestCallAnswers(t *testing.T) {
	_, a, _ := callPair(t, func(from string, p []byte) []byte {
		return append([]byte(from+":"), p...)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range []int{3, 100_000} {
		payload := bytes.Repeat([]byte("x"), n)
		got, err := a.r.Call(ctx, "b", payload)
		if err != nil || !bytes.Equal(got, append([]byte("a:"), payload...)) {
			t.Fatalf("%d bytes: answer of %d bytes, %v", n, len(got), err)
		}
	}
	if _, err := a.r.Call(ctx, "nobody", nil); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("a call to nobody: %v", err)
	}
}

// TestCallResendsALostRequest: a request that gets no answer (here, the
// first is never answered, as if it or its answer were lost) is sent
// again, and the call is answered.
func TestCallResendsALostRequest(t *testing.T) {
	var served atomic.Int32
	release := make(chan struct{})
	defer close(release)
	_, a, _ := callPair(t, func(string, []byte) []byte {
		if served.Add(1) == 1 {
			<-release
		}
		return []byte("ok")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := a.r.Call(ctx, "b", []byte("q")); err != nil || string(got) != "ok" {
		t.Fatalf("%q, %v", got, err)
	}
	if n := served.Load(); n < 2 {
		t.Fatalf("served %d times: the request was not sent again", n)
	}
}

// TestCallsServedAreBounded: past 256 calls served at once, a call fails
// with ErrBusy rather than start another goroutine.
func TestCallsServedAreBounded(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	_, a, _ := callPair(t, func(string, []byte) []byte { <-release; return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, maxCallsServed+1)
	for i := range maxCallsServed + 1 {
		go func() {
			_, err := a.r.Call(ctx, "b", []byte(fmt.Sprint(i)))
			errs <- err
		}()
	}
	if err := <-errs; !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("the first call to end: %v, want ErrBusy", err)
	}
}
