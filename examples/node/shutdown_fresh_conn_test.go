package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache"
)

// TestShutdownDoesNotWaitForAConnectionThatSentNothing: a connection that
// has sent no byte yet (a load balancer's TCP check, a browser's
// preconnect) is closed as the node stops, as an idle kept-alive one is:
// net/http's Shutdown takes such a connection as busy for its first 5 s,
// and the node waited out its whole shutdownTimeout (3 s) for it, then
// logged that it was "closing the connections left" (found by review).
func TestShutdownDoesNotWaitForAConnectionThatSentNothing(t *testing.T) {
	c := newCache(t, bcache.Config{})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := inner.Addr().String()
	srv := newServer(newHandler(c, bcache.DefaultMaxValueSize, zerolog.Nop()), defaultHTTPTimeouts())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan int, 1)
	var logged bytes.Buffer
	go func() { served <- serve(ctx, zerolog.New(&logged), limitConns(inner, defaultMaxConns), srv) }()
	fresh, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	// A request on a connection dialed after it is answered: the fresh
	// one has been accepted (the backlog is taken in order).
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("serve has not returned 10 s after its context ended")
	}
	// Shutdown ended within its timeout: it did not wait the connection
	// out (that is logged, after shutdownTimeout).
	if strings.Contains(logged.String(), "closing the connections left") {
		t.Errorf("shutdown waited out its timeout for a connection that sent nothing: %s", logged.String())
	}
	fresh.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := fresh.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("the connection that sent nothing is still open")
	}
}
