package main

import (
	"bufio"
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache"
	"github.com/bcache-go/bcache/internal/await"
)

// TestWatchersGoneLeaveNoGoroutine: every place's stream, opened and
// then left by its client (a request canceled, its connection closed),
// lets go of its goroutines, its subscription's among them, and of its
// place: the goroutines come back to what they were before.
func TestWatchersGoneLeaveNoGoroutine(t *testing.T) {
	c := newCache(t, bcache.Config{NodeName: "solo"})
	base := startServer(t, c, bcache.DefaultMaxValueSize)
	tr := &http.Transport{MaxIdleConnsPerHost: maxWatches + 1}
	client := &http.Client{Transport: tr}
	// Warm: one watch opened and closed, so that the pools are there.
	open := func() (*http.Response, context.CancelFunc) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/watch?prefix=w/", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("watch: %d", resp.StatusCode)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "event: start") {
			t.Fatalf("first line %q, %v", line, err)
		}
		return resp, cancel
	}
	resp, cancel := open()
	cancel()
	resp.Body.Close()
	tr.CloseIdleConnections()
	before := runtime.NumGoroutine()
	for round := range 3 {
		var cancels []context.CancelFunc
		var resps []*http.Response
		for range maxWatches {
			resp, cancel := open()
			resps, cancels = append(resps, resp), append(cancels, cancel)
		}
		if err := c.Set("w/x", []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		for i := range cancels {
			cancels[i]()
			resps[i].Body.Close()
		}
		tr.CloseIdleConnections()
		await.Until(t, 10*time.Second, func() bool { return runtime.NumGoroutine() <= before },
			"round %d: %d goroutines, %d before the streams", round, runtime.NumGoroutine(), before)
	}
}
