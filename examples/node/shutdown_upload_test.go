package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache"
	"github.com/bcache-go/bcache/internal/await"
)

// TestStopAnswersAClientMidUpload: a PUT whose client has sent part of
// its body when the node stops, and sends no more for now, gets an
// answer (503: retry elsewhere) and a clean close, within the stop's
// bound; serve waited out shutdownTimeout for the body, then closed the
// connection, and the client got no response at all.
func TestStopAnswersAClientMidUpload(t *testing.T) {
	u := startUpload(t)
	bodies, cancel, served, pw, req := u.bodies, u.stop, u.served, u.body, u.req
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	client := &http.Client{Transport: &http.Transport{}}
	go func() {
		resp, err := client.Do(req)
		done <- result{resp, err}
	}()
	if _, err := pw.Write(make([]byte, size/2)); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { return bodies.inUse() > 0 }, "the server has read none of the body")
	start := time.Now()
	cancel()
	select {
	case code := <-served:
		if code != 0 {
			t.Errorf("serve returned %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve has not returned 10 s after the stop")
	}
	stopped := time.Since(start)
	// The client's body has stalled: its transport waits for it before it
	// reports a failure, not before it returns a response.
	var res result
	select {
	case res = <-done:
	case <-time.After(time.Second):
		pw.CloseWithError(io.ErrUnexpectedEOF)
		res = <-done
	}
	if stopped >= shutdownTimeout {
		t.Errorf("the stop took %v, its bound is %v: it waited for the body", stopped.Round(time.Millisecond), shutdownTimeout)
	}
	if res.err != nil {
		t.Fatalf("the client mid-upload got no response: %v (after %v)", res.err, time.Since(start).Round(time.Millisecond))
	}
	b, _ := io.ReadAll(res.resp.Body)
	res.resp.Body.Close()
	if res.resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d (%q), want 503", res.resp.StatusCode, b)
	}
}

// TestStopLetsAClientMidUploadFinish: a client that goes on sending its
// body as the node stops has it stored (204), not cut off.
func TestStopLetsAClientMidUploadFinish(t *testing.T) {
	u := startUpload(t)
	c, bodies, cancel, served, pw, req := u.c, u.bodies, u.stop, u.served, u.body, u.req
	done := make(chan error, 1)
	client := &http.Client{Transport: &http.Transport{}}
	go func() {
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				err = &statusErr{resp.StatusCode, string(b)}
			}
		}
		done <- err
	}()
	if _, err := pw.Write(make([]byte, size/2)); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { return bodies.inUse() > 0 }, "the server has read none of the body")
	cancel()
	if _, err := pw.Write(make([]byte, size/2)); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("the client that finished its upload as the node stopped: %v", err)
	}
	<-served
	if v, ok := c.Get("up"); !ok || len(v) != size {
		t.Errorf("stored %d bytes (%v), want %d", len(v), ok, size)
	}
}

// upload is a node serving on 127.0.0.1 and a PUT of size bytes to it
// whose body the test writes (body), not yet sent.
type upload struct {
	c      *bcache.Cache
	bodies *bodyBudget
	stop   context.CancelFunc // stops the node
	served chan int           // serve's exit code
	body   *io.PipeWriter
	req    *http.Request
}

// size is the length of an upload's body.
const size = 64 << 10

func startUpload(t *testing.T) upload {
	t.Helper()
	u := upload{c: newCache(t, bcache.Config{}), bodies: &bodyBudget{max: maxBodyBytes}, served: make(chan int, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(newHandlerWith(u.c, bcache.DefaultMaxValueSize, u.bodies, zerolog.Nop()), defaultHTTPTimeouts())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	u.stop = cancel
	go func() { u.served <- serve(ctx, zerolog.Nop(), limitConns(ln, defaultMaxConns), srv) }()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	u.body = pw
	if u.req, err = http.NewRequest(http.MethodPut, "http://"+ln.Addr().String()+"/v1/keys/up", pr); err != nil {
		t.Fatal(err)
	}
	u.req.ContentLength = size
	return u
}

type statusErr struct {
	code int
	body string
}

func (e *statusErr) Error() string { return strconv.Itoa(e.code) + ": " + strings.TrimSpace(e.body) }
