package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache"
)

// startHTTP serves h with timeouts on a free port, closed at the end of
// the test, and returns its address.
func startHTTP(t *testing.T, h http.Handler, to httpTimeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(h, to)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// readUntilClosed reads conn until the server closes it, and returns what
// it read; it fails the test if conn is still open after wait.
func readUntilClosed(t *testing.T, conn net.Conn, wait time.Duration) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(wait))
	b, err := io.ReadAll(conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection is still open after %v (read %q)", wait, b)
	}
	return string(b)
}

// TestSlowBodyIsCutOff: a client that sends the headers of a PUT and then
// trickles its body is cut off by the read timeout instead of holding the
// connection for as long as it likes.
func TestSlowBodyIsCutOff(t *testing.T) {
	to := httpTimeouts{ReadHeader: 200 * time.Millisecond, Read: 300 * time.Millisecond, Write: 600 * time.Millisecond, Idle: 300 * time.Millisecond}
	addr := startHTTP(t, newHandler(newCache(t, bcache.Config{}), bcache.DefaultMaxValueSize, zerolog.Nop()), to)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /v1/keys/slow HTTP/1.1\r\nHost: node\r\nContent-Length: 100000\r\n\r\n")
	stop := make(chan struct{})
	defer close(stop)
	go trickle(conn, stop)
	start := time.Now()
	readUntilClosed(t, conn, 5*time.Second)
	if d := time.Since(start); d < to.Read/2 {
		t.Fatalf("cut off after %v, before the read timeout %v", d, to.Read)
	}
}

// trickle writes a byte every 20 ms until stop is closed or a write fails.
func trickle(conn net.Conn, stop <-chan struct{}) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
		}
	}
}

// TestHugeBodyRefusedUpFront: a PUT whose Content-Length is over the value
// limit is answered 413 at once, without the server waiting for the body.
func TestHugeBodyRefusedUpFront(t *testing.T) {
	c := newCache(t, bcache.Config{})
	addr := strings.TrimPrefix(startServer(t, c, 1024), "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /v1/keys/huge HTTP/1.1\r\nHost: node\r\nContent-Length: %d\r\n\r\n", 1<<30)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a 1 GiB PUT whose body was not sent: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

// TestTokenWaitOutlastsTheWriteTimeout: a GET with a token may wait
// longer than the server's write timeout (up to maxWait, a minute, against
// 45 s): the wait moves the response's deadline, and the client gets its
// 504. It got no answer at all, the connection cut under it.
func TestTokenWaitOutlastsTheWriteTimeout(t *testing.T) {
	to := httpTimeouts{ReadHeader: time.Second, Read: 200 * time.Millisecond, Write: 300 * time.Millisecond, Idle: time.Second}
	c := newCache(t, bcache.Config{})
	addr := startHTTP(t, newHandler(c, bcache.DefaultMaxValueSize, zerolog.Nop()), to)
	elsewhere := newCache(t, bcache.Config{}) // not joined: its write never comes
	tok, err := elsewhere.SetWithToken("k", []byte("v"), 0)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("GET", "http://"+addr+"/v1/keys/k?wait=1s", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(tokenHeader, string(tok))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET with a token waiting 1 s past a 300 ms write timeout: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
}

// TestShutdownEndsWatchStreams: Shutdown ends the watch streams open
// (their clients read to a clean end) and returns without waiting for
// its timeout. It waited the whole 3 s, logged an error and cut the
// streams off mid-response.
func TestShutdownEndsWatchStreams(t *testing.T) {
	c := newCache(t, bcache.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(c, bcache.DefaultMaxValueSize, zerolog.Nop())
	srv := newServer(h, defaultHTTPTimeouts())
	go srv.Serve(ln)
	defer srv.Close()
	resp, err := http.Get("http://" + ln.Addr().String() + "/v1/watch")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watch: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("the stream ended with %v, not cleanly", err)
	}
	// Ended by the server, its client still reading: not a client gone.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if m := rec.Body.String(); !strings.Contains(m, `bcache_http_watch_ended_total{reason="closed"} 1`) {
		t.Fatalf("the stream's end is not counted closed: %q", regexp.MustCompile(`(?m)^bcache_http_watch_ended_total.*$`).FindAllString(m, -1))
	}
}

// TestServerErrorsStayInTheLog: a write the log failed to take is answered
// with its token and a fixed text (it was applied), any other error of
// the server's with its status text; their errors, which name the
// server's files, go to its log alone. The client's errors keep their
// text (found by review).
func TestServerErrorsStayInTheLog(t *testing.T) {
	var logged strings.Builder
	fail, _ := failer(zerolog.New(&logged))
	secret := "/var/lib/node/cache.snap.log.7: no space left on device"
	for _, tc := range []struct {
		err   error
		tok   bcache.Token
		code  int
		body  string
		token bool
	}{
		{fmt.Errorf("bcache: set %q: %w: write log %s", "k", bcache.ErrNotDurable, secret), "tok", http.StatusInternalServerError, notDurable, true},
		{errors.New(secret), "", http.StatusInternalServerError, http.StatusText(http.StatusInternalServerError), false},
		{fmt.Errorf("bcache: set: %w", bcache.ErrInvalidTTL), "", http.StatusBadRequest, bcache.ErrInvalidTTL.Error(), false},
	} {
		logged.Reset()
		rec := httptest.NewRecorder()
		answerWrite(rec, tc.tok, tc.err, fail)
		body := rec.Body.String()
		if rec.Code != tc.code || !strings.Contains(body, tc.body) || (rec.Header().Get(tokenHeader) != "") != tc.token {
			t.Errorf("%v: %d %q, token %q; want %d, %q, a token: %v", tc.err, rec.Code, body, rec.Header().Get(tokenHeader), tc.code, tc.body, tc.token)
		}
		if tc.code >= 500 && (strings.Contains(body, secret) || !strings.Contains(logged.String(), "no space left")) {
			t.Errorf("%v: the body %q or the log %q", tc.err, body, logged.String())
		}
	}
}

// TestTokenReadsAreBounded: past the reads with a token under way that
// the server takes, one is refused with 429 at once, rather than waiting
// (and pulling from every peer) as many as a client opens (found by
// review); a read without a token is not bounded.
func TestTokenReadsAreBounded(t *testing.T) {
	c := newCache(t, bcache.Config{})
	elsewhere := newCache(t, bcache.Config{}) // not joined: its write never comes
	tok, err := elsewhere.SetWithToken("k", []byte("v"), 0)
	if err != nil {
		t.Fatal(err)
	}
	waits := make(chan struct{}, 1)
	waits <- struct{}{} // the one place taken
	get := func(token string) error {
		req := httptest.NewRequest("GET", "/v1/keys/k?wait=1s", nil)
		if token != "" {
			req.Header.Set(tokenHeader, token)
		}
		_, _, err := read(httptest.NewRecorder(), req, c, "k", bcache.DefaultMaxKeySize, waits)
		return err
	}
	if err := get(string(tok)); statusOf(err) != http.StatusTooManyRequests {
		t.Fatalf("a read with a token past the bound: %v (%d); want 429", err, statusOf(err))
	}
	if err := get(""); err != nil {
		t.Fatalf("a read without a token: %v", err)
	}
	<-waits
	if err := get(string(tok)); statusOf(err) != http.StatusGatewayTimeout || len(waits) != 0 {
		t.Fatalf("a read with a token within the bound: %v (%d), %d places taken after; want 504, none", err, statusOf(err), len(waits))
	}
}

// TestConnectionsPastTheBoundWait: with -max-conns 2, a third client's
// request waits while two connections are open, and is served once one
// closes; closing the server ends a wait for a slot. The server accepted
// every connection, so that any number of clients held memory and file
// descriptors.
func TestConnectionsPastTheBoundWait(t *testing.T) {
	c := newCache(t, bcache.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(newHandler(c, bcache.DefaultMaxValueSize, zerolog.Nop()), defaultHTTPTimeouts())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(limitConns(ln, 2)) }()
	get := func(conn net.Conn, wait time.Duration) (*http.Response, error) {
		if _, err := fmt.Fprint(conn, "GET /v1/members HTTP/1.1\r\nHost: node\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		return http.ReadResponse(bufio.NewReader(conn), nil)
	}
	var held []net.Conn
	for range 3 {
		conn, err := net.Dial("tcp", ln.Addr().String()) // the kernel's backlog takes the third
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		held = append(held, conn)
	}
	for _, conn := range held[:2] {
		resp, err := get(conn, 10*time.Second)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("a request within the bound: %v, %v", resp, err)
		}
	}
	// Served within the bound, it would answer at once (on loopback, in
	// well under the wait): not an answer slow to come.
	if resp, err := get(held[2], 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a third connection past the bound of 2 was served: %v, %v", resp, err)
	}
	held[0].Close()
	held[2].SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(held[2]), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the third connection once one closed: %v, %v", resp, err)
	}
	// Both slots held again (held[1] and held[2] kept alive): Close ends
	// the wait of the next Accept.
	srv.Close()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
}

// TestBoundedConnectionsKeepTheHalfClose: a body over the limit is
// answered 413 and the connection half closed (net/http's
// closeWriteAndWait: a FIN, then the full close some time later), so that
// a client still sending reads the 413 and then a clean end. The
// connections of limitConns hid the TCP connection's CloseWrite from
// net/http: no FIN was sent, and a client reading past the 413 got a
// reset instead (found by review of -max-conns).
func TestBoundedConnectionsKeepTheHalfClose(t *testing.T) {
	c := newCache(t, bcache.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(newHandler(c, 1024, zerolog.Nop()), defaultHTTPTimeouts())
	go srv.Serve(limitConns(ln, 4))
	defer srv.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A chunked body over the limit, not ended: the client goes on
	// sending (from a goroutine of its own: the server stops reading).
	chunk := strings.Repeat("x", 1<<20) // past what net/http reads after the handler
	go fmt.Fprintf(conn, "PUT /v1/keys/k HTTP/1.1\r\nHost: node\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(chunk), chunk)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after the 413: %v, want the server's half close (io.EOF)", err)
	}
}

// countingConn counts the bytes the server reads.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.n}, nil
}

// TestReadsPastA413AreAsDocumented: of a chunked body past -max-value,
// net/http reads at most 512 KiB more, as the command's doc says: up to
// 256 KiB before it sends the 413 (looking for the body's end), and up to
// 256 KiB more as it closes the body. The doc said 256 KiB: a client that
// stopped sending after 300 KiB waited for the server's ReadTimeout.
func TestReadsPastA413AreAsDocumented(t *testing.T) {
	c := newCache(t, bcache.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var read atomic.Int64
	const maxValue = 1024
	srv := newServer(newHandler(c, maxValue, zerolog.Nop()), defaultHTTPTimeouts())
	go srv.Serve(countingListener{ln, &read})
	defer srv.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	chunk := strings.Repeat("x", 4<<20)
	go fmt.Fprintf(conn, "PUT /v1/keys/k HTTP/1.1\r\nHost: node\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(chunk), chunk)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil && !errors.Is(err, syscall.ECONNRESET) { // to the server's close
		t.Fatal(err)
	}
	// The request's head, the value's bound, a bufio.Reader's slack, and
	// the 512 KiB the doc says.
	if n := read.Load(); n > maxValue+512<<10+16<<10 {
		t.Fatalf("the server read %d bytes of a body over %d: %d KiB past the bound, not at most 512", n, maxValue, (n-maxValue)>>10)
	}
}

// TestServerErrorsAreLoggedAtABoundedRate: the lines of the server's
// errors are written at most once a second per kind, the next one
// carrying how many were held back: a line for every failed request wrote
// 1,600 a second from four clients writing to a member whose disk was full
// (found by review).
func TestServerErrorsAreLoggedAtABoundedRate(t *testing.T) {
	var logged strings.Builder
	now := time.Unix(1e9, 0)
	fail, _ := failerAt(zerolog.New(&logged), func() time.Time { return now }, func(time.Duration, func()) {})
	notDurableErr := fmt.Errorf("bcache: set %q: %w: write log: no space left on device", "k", bcache.ErrNotDurable)
	for range 1000 {
		answerWrite(httptest.NewRecorder(), "tok", notDurableErr, fail)
	}
	fail(httptest.NewRecorder(), errors.New("another kind"))
	if n := strings.Count(logged.String(), "\n"); n != 2 {
		t.Fatalf("1000 writes not durable and another error in a second: %d lines, want 2:\n%s", n, logged.String())
	}
	logged.Reset()
	now = now.Add(time.Second)
	answerWrite(httptest.NewRecorder(), "tok", notDurableErr, fail)
	if got := logged.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, `"suppressed":999`) {
		t.Fatalf("a second later: %q, want one line with the 999 held back", got)
	}
}

// TestABurstsHeldBackLinesAreWrittenWhenItEnds: the lines a burst held
// back are written a second after the last one written, the last of them
// with the count of the others, though no line of the kind comes after:
// the count went out only with the next line of its kind, a day later or
// never. A line of the kind that came first carries the count itself, and
// the flush writes nothing.
func TestABurstsHeldBackLinesAreWrittenWhenItEnds(t *testing.T) {
	var logged strings.Builder
	now := time.Unix(1e9, 0)
	var flushes []func()
	var delays []time.Duration
	fail, _ := failerAt(zerolog.New(&logged), func() time.Time { return now }, func(d time.Duration, f func()) {
		delays, flushes = append(delays, d), append(flushes, f)
	})
	for i := range 100 {
		now = now.Add(time.Millisecond)
		fail(httptest.NewRecorder(), fmt.Errorf("bcache: get %q: store: read failed", fmt.Sprint("k", i)))
	}
	if n := strings.Count(logged.String(), "\n"); n != 1 || len(flushes) != 1 || delays[0] != time.Second-time.Millisecond {
		t.Fatalf("a burst of 100 in 0.1 s: %d lines, %d flushes armed (after %v); want 1, 1 after 999ms:\n%s", n, len(flushes), delays, logged.String())
	}
	now = now.Add(time.Second)
	logged.Reset()
	flushes[0]()
	if got := logged.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, `k99`) || !strings.Contains(got, `"suppressed":98`) {
		t.Fatalf("the flush wrote %q; want the last line held back, with the 98 others", got)
	}
	// Another burst, and a line of its kind after it: that line carries
	// the count, and the flush has nothing to write.
	logged.Reset()
	fail(httptest.NewRecorder(), fmt.Errorf("bcache: get %q: store: read failed", "k"))
	fail(httptest.NewRecorder(), fmt.Errorf("bcache: get %q: store: read failed", "k"))
	if len(flushes) != 2 || logged.Len() != 0 {
		t.Fatalf("a line within the second of the flush's: %d flushes, %q written", len(flushes), logged.String())
	}
	now = now.Add(time.Second)
	fail(httptest.NewRecorder(), fmt.Errorf("bcache: get %q: store: read failed", "k"))
	flushes[1]()
	if got := logged.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, `"suppressed":2`) {
		t.Fatalf("a line after the burst, then its flush: %q; want one line with the 2 held back", got)
	}
}

// The lines a rate limit holds back when the node stops are written as
// it stops (the server calls flush): each kind's last with the count of
// the others. They were never written: the timer that writes them a
// second later did not outlive the process.
func TestHeldBackLinesAreWrittenAsTheNodeStops(t *testing.T) {
	var logged strings.Builder
	now := time.Unix(1e9, 0)
	fail, flush := failerAt(zerolog.New(&logged), func() time.Time { return now }, func(time.Duration, func()) {})
	for i := range 50 {
		now = now.Add(time.Millisecond)
		fail(httptest.NewRecorder(), fmt.Errorf("bcache: get %q: store: read failed", fmt.Sprint("k", i)))
		fail(httptest.NewRecorder(), fmt.Errorf("bcache: set %q: %w", fmt.Sprint("k", i), bcache.ErrNotDurable))
	}
	if n := strings.Count(logged.String(), "\n"); n != 2 {
		t.Fatalf("two bursts of 50: %d lines, want 2:\n%s", n, logged.String())
	}
	logged.Reset()
	flush()
	got := logged.String()
	if strings.Count(got, "\n") != 2 || strings.Count(got, `"suppressed":48`) != 2 || !strings.Contains(got, `\"k49\": store`) {
		t.Fatalf("the flush wrote %q; want each burst's last line, with its 48 others", got)
	}
	logged.Reset()
	flush()
	if logged.Len() != 0 {
		t.Fatalf("a second flush wrote %q", logged.String())
	}
}

// TestADistinctServerErrorIsLoggedInTheSecondOfAnother: the rate limit
// holds back repeats of one error, not the first line of another: a
// server error of a new cause (a read failing while the write log fails
// on every write) was held back for as long as the first kept coming,
// its kind ("request failed", "write not durable") shared by every cause.
// Errors that differ only in their quoted key are one error.
func TestADistinctServerErrorIsLoggedInTheSecondOfAnother(t *testing.T) {
	var logged strings.Builder
	now := time.Unix(1e9, 0)
	fail, _ := failerAt(zerolog.New(&logged), func() time.Time { return now }, func(time.Duration, func()) {})
	for i := range 100 {
		fail(httptest.NewRecorder(), fmt.Errorf("bcache: get %q: store: read failed", fmt.Sprint("k", i)))
		answerWrite(httptest.NewRecorder(), "tok", fmt.Errorf("bcache: set %q: %w: write log: no space left on device", fmt.Sprint("k", i), bcache.ErrNotDurable), fail)
	}
	fail(httptest.NewRecorder(), errors.New("watch: subscribe: too many subscriptions"))
	answerWrite(httptest.NewRecorder(), "tok", fmt.Errorf("bcache: set %q: %w: write log: input/output error", "k", bcache.ErrNotDurable), fail)
	got := logged.String()
	if n := strings.Count(got, "\n"); n != 4 {
		t.Fatalf("two errors repeated 100 times over many keys, then two new ones, in a second: %d lines, want 4:\n%s", n, got)
	}
	for _, want := range []string{"read failed", "no space left", "too many subscriptions", "input/output error"} {
		if !strings.Contains(got, want) {
			t.Fatalf("no line of %q:\n%s", want, got)
		}
	}
}

// TestLogLimitsKeepABoundedNumberOfKinds: errors of ever new shapes (an
// unquoted name in each) keep at most maxLogKinds limits, and past them
// share one: lines at most maxLogKinds+1 a second.
func TestLogLimitsKeepABoundedNumberOfKinds(t *testing.T) {
	var ls logLimits
	now := time.Unix(1e9, 0)
	written := 0
	for i := range 10_000 {
		if _, ok, _ := ls.admit(fmt.Sprint("kind ", i), now); ok {
			written++
		}
		if i%1000 == 999 {
			now = now.Add(time.Second)
		}
	}
	if len(ls.kinds) > maxLogKinds || written > 10*(maxLogKinds+1) {
		t.Fatalf("10,000 kinds over 10 s: %d limits kept, %d lines written; want at most %d and %d", len(ls.kinds), written, maxLogKinds, 10*(maxLogKinds+1))
	}
}
