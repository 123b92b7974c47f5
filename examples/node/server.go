package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache"
)

// The HTTP server's timeouts. With ReadHeaderTimeout alone, a client that
// sent its headers and then trickled the body held its connection for as
// long as it liked: 50 of 50 such connections were still held after 13 s.
const (
	// readHeaderTimeout bounds reading a request's headers.
	readHeaderTimeout = 10 * time.Second
	// readTimeout bounds reading a whole request, body included: a value
	// of the default limit (1 MiB) takes 16 s at 64 KiB/s.
	readTimeout = 30 * time.Second
	// writeTimeout bounds a request from the end of its headers to the end
	// of its response; net/http starts it when the headers are read, so it
	// covers reading the body too and must exceed readTimeout.
	writeTimeout = 45 * time.Second
	// idleTimeout bounds how long a kept-alive connection waits for its
	// next request.
	idleTimeout = 60 * time.Second
	// shutdownTimeout bounds the wait for in-flight HTTP requests on exit.
	shutdownTimeout = 3 * time.Second
	// maxHeaderBytes bounds a request's line and headers: the longest
	// key, each byte escaped (3 bytes), and 64 KiB for the rest.
	// net/http's default, 1 MiB, let the clients of -max-conns
	// connections hold 1 GiB and more in headers (found by review).
	maxHeaderBytes = 3*bcache.DefaultMaxKeySize + 64<<10
)

// httpTimeouts are the HTTP server's timeouts (see http.Server): the
// defaults above, shorter in tests.
type httpTimeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// defaultHTTPTimeouts returns the timeouts the command serves with.
func defaultHTTPTimeouts() httpTimeouts {
	return httpTimeouts{ReadHeader: readHeaderTimeout, Read: readTimeout, Write: writeTimeout, Idle: idleTimeout}
}

// errShutdown is the cause of a request's context ended by the server's
// Shutdown (see newServer).
var errShutdown = errors.New("the server is shutting down")

// newServer returns an HTTP server of h with timeouts to. Its requests'
// contexts end when Shutdown starts, with errShutdown as their cause: a
// watch stream or a read waiting for a token ends then, rather than
// holding Shutdown to its timeout and being cut off.
func newServer(h http.Handler, to httpTimeouts) *http.Server {
	base, cancel := context.WithCancelCause(context.Background())
	stop := func() { cancel(errShutdown) }
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: to.ReadHeader,
		ReadTimeout:       to.Read,
		WriteTimeout:      to.Write,
		IdleTimeout:       to.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	srv.RegisterOnShutdown(stop)
	return srv
}

// serve runs srv on ln until ctx ends, then shuts it down gracefully; it
// returns the exit status.
func serve(ctx context.Context, log zerolog.Logger, ln net.Listener, srv *http.Server) int {
	if l, ok := ln.(*limitListener); ok {
		srv.RegisterOnShutdown(l.closeUnread)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			// A response whose client stopped reading waits on its
			// write until the write timeout (45 s), past Shutdown's
			// timeout: its connection is cut, or the handler went on
			// running as the member closed (found by review).
			log.Warn().Err(err).Msg("http shutdown: closing the connections left")
			srv.Close()
		}
		return 0
	case err := <-served:
		log.Error().Err(err).Msg("http serve")
		return 1
	}
}

// defaultMaxConns is -max-conns's default: connections open at once.
const defaultMaxConns = 1024

// limitListener accepts at most cap(slots) connections open at once: past
// them, Accept waits for one to close, and the next clients wait in the
// kernel's backlog (each connection holds a goroutine and its buffers,
// and a server that accepted every one let any number of clients hold
// memory and file descriptors, up to the process's limit: found by
// review). Close ends a wait.
type limitListener struct {
	net.Listener
	slots  chan struct{}
	closed chan struct{}
	once   sync.Once
	// The connections open, for closeUnread; shut once it has run.
	mu    sync.Mutex
	conns map[*limitConn]struct{}
	shut  bool
}

// limitConns returns ln accepting at most n connections open at once.
func limitConns(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), closed: make(chan struct{}), conns: map[*limitConn]struct{}{}}
}

// closeUnread closes the connections on which the client has sent
// nothing yet, and those accepted from then on: the server's Shutdown
// runs it. Such a connection is idle, but Shutdown takes it as busy for
// its first 5 s (net/http's StateNew), and the node waited out
// shutdownTimeout (3 s) for one, logging that it was "closing the
// connections left" (found by review: a load balancer's TCP check, a
// browser's preconnect). One whose request the kernel holds, not yet
// read, is refused: closed with the bytes unread, it was reset, and its
// client could not tell a request never read from one cut off as it was
// handled (found by review). A request arriving just as its connection
// is closed may go unanswered, as on an idle kept-alive connection that
// Shutdown closes.
func (l *limitListener) closeUnread() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shut = true
	for c := range l.conns {
		if !c.read.Load() {
			closeOrRefuse(c.Conn)
		}
	}
}

// stoppingResponse answers a request the server has not read as it shuts
// down.
var stoppingResponse = func() string {
	const body = "the server is shutting down: the request was not read; retry on another member\n"
	return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}()

// closeOrRefuse closes c, from which the server has read nothing, as it
// shuts down; if the kernel holds bytes of a request on it, it answers
// 503 and half closes c instead. net/http drops a request it reads once
// Shutdown has begun, unanswered (it is not handled: retrying it applies
// it once), and closes the connection: as the request is read first,
// the close is clean, and the client gets the 503 and then the end.
func closeOrRefuse(c net.Conn) {
	if !hasUnread(c) {
		c.Close() // its reads fail: net/http drops it
		return
	}
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, stoppingResponse); err != nil {
		c.Close()
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	lc := &limitConn{Conn: c}
	lc.release = sync.OnceFunc(func() {
		l.mu.Lock()
		delete(l.conns, lc)
		l.mu.Unlock()
		<-l.slots
	})
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	if l.shut {
		closeOrRefuse(c)
	}
	l.mu.Unlock()
	return lc, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitConn gives its slot back when closed, once; read is whether a
// byte has been read from it.
type limitConn struct {
	net.Conn
	release func()
	read    atomic.Bool
}

func (c *limitConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.read.Load() {
		c.read.Store(true)
	}
	return n, err
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// CloseWrite half closes the connection, as net/http does before it
// closes one whose request body it did not read (closeWriteAndWait):
// hidden by the wrapper, no FIN went, and a client still sending got a
// reset after the 413 rather than its end (found by review).
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
