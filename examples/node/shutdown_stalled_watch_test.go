package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache"
	"github.com/bcache-go/bcache/internal/await"
)

// TestShutdownEndsAStalledWatchStream: Shutdown ends a watch stream whose
// client stopped reading, its write waiting on full buffers, as it ends a
// quiet one, within watchEndGrace: the request's context ending did not
// end the write, which waited out its 30 s deadline, and Shutdown hit its
// own timeout (shutdownTimeout, 3 s, in the node) with the stream open
// (found by review).
func TestShutdownEndsAStalledWatchStream(t *testing.T) {
	c := newCache(t, bcache.Config{})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &writesListener{Listener: inner}
	srv := newServer(newHandler(c, bcache.DefaultMaxValueSize, zerolog.Nop()), defaultHTTPTimeouts())
	go srv.Serve(ln)
	defer srv.Close()
	conn, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(conn, "GET /v1/watch?prefix=big/ HTTP/1.1\r\nHost: node\r\n\r\n")
	// Subscribed once the stream's first event comes; then the client
	// reads no more.
	rd := bufio.NewReaderSize(conn, 512)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "event: start") {
			break
		}
	}
	value := bytes.Repeat([]byte("x"), 1<<20)
	for i := range 24 { // more than the sockets' buffers hold: the stream's write waits
		if err := c.Set(fmt.Sprintf("big/%d", i), value, 0); err != nil {
			t.Fatal(err)
		}
	}
	await.Until(t, 20*time.Second, func() bool {
		since := ln.writing.Load()
		return since != 0 && time.Since(time.Unix(0, since)) > 100*time.Millisecond
	}, "no write of the stream waits for its client")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a stalled watch stream open: %v after %v", err, time.Since(start).Round(time.Millisecond))
	}
}

// writesListener's connections record when the write under way, if any,
// began (the server's side of the test's one connection).
type writesListener struct {
	net.Listener
	writing atomic.Int64 // UnixNano; 0: no write under way
}

func (l *writesListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &writesConn{Conn: conn, l: l}, nil
}

type writesConn struct {
	net.Conn
	l *writesListener
}

func (c *writesConn) Write(p []byte) (int, error) {
	c.l.writing.Store(time.Now().UnixNano())
	defer c.l.writing.Store(0)
	return c.Conn.Write(p)
}

// TestServeCutsAResponseStalledPastShutdown: a GET of a large value whose
// client stopped reading waits on its write past Shutdown's timeout;
// serve then closes its connection, and the write ends, where the
// handler went on waiting for its write timeout (45 s) as the member
// closed (found by review).
func TestServeCutsAResponseStalledPastShutdown(t *testing.T) {
	const size = 16 << 20 // more than the sockets' buffers hold
	c := newCache(t, bcache.Config{MaxValueSize: size})
	if err := c.Set("big", bytes.Repeat([]byte("x"), size), 0); err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &writesListener{Listener: inner}
	srv := newServer(newHandler(c, size, zerolog.Nop()), defaultHTTPTimeouts())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan int, 1)
	go func() { served <- serve(ctx, zerolog.Nop(), ln, srv) }()
	conn, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(conn, "GET /v1/keys/big HTTP/1.1\r\nHost: node\r\n\r\n")
	await.Until(t, 20*time.Second, func() bool {
		since := ln.writing.Load()
		return since != 0 && time.Since(time.Unix(0, since)) > 100*time.Millisecond
	}, "the response's write does not wait for its client")
	cancel()
	if code := <-served; code != 0 {
		t.Fatalf("serve returned %d", code)
	}
	await.Until(t, 5*time.Second, func() bool { return ln.writing.Load() == 0 },
		"serve returned, and the response's write still waits for its client")
}
