package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache"
	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/metrics"
)

// member is the JSON form of a bcache.Member.
type member struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
}

// newHandler serves the HTTP API of c (see the package comment). maxValue
// bounds the request bodies read by PUT; it should be c's MaxValueSize.
// The errors of the server's own (5xx) go to log, not to the client.
func newHandler(c *bcache.Cache, maxValue int, log zerolog.Logger) *nodeHandler {
	return newHandlerWith(c, maxValue, &bodyBudget{max: max(maxBodyBytes, int64(maxValue))}, log) // one body of -max-value always fits
}

// newHandlerWith is newHandler with the budget of the PUT bodies being
// read.
func newHandlerWith(c *bcache.Cache, maxValue int, bodies *bodyBudget, log zerolog.Logger) *nodeHandler {
	fail, flushLogs := failer(log)
	reg := prometheus.NewRegistry()
	m := newNodeMetrics()
	reg.MustRegister(metrics.New(c), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.watches, m.watchEnds)
	mux := http.NewServeMux()
	// A write's key is bounded by the Cache's own MaxKeySize: refused
	// before its body is read (it was read first, up to -max-value from
	// the bodies' budget, and a client sending Expect: 100-continue was
	// told to send it all for a 414: found by review).
	maxPutKey := c.Config().MaxKeySize
	mux.HandleFunc("PUT /v1/keys/{key...}", func(w http.ResponseWriter, r *http.Request) {
		key, ok := keyOf(r)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if len(key) > maxPutKey {
			fail(w, fmt.Errorf("put %q...: %w (%d bytes, limit %d)", key[:min(len(key), 32)], bcache.ErrKeyTooLarge, len(key), maxPutKey))
			return
		}
		put(w, r, c, key, maxValue, bodies, fail)
	})
	waits := make(chan struct{}, maxTokenWaits)
	// A read takes any key a member may have written: the Cache's
	// MaxKeySize bounds its own writes, and a peer with a larger one may
	// have written a longer key, which the Cache serves (it was 414 here:
	// found by review).
	maxKey := bcache.DefaultMaxKeySize
	mux.HandleFunc("GET /v1/keys/{key...}", func(w http.ResponseWriter, r *http.Request) {
		key, ok := keyOf(r)
		if !ok {
			http.NotFound(w, r)
			return
		}
		v, ok, err := read(w, r, c, key, maxKey, waits)
		if err != nil {
			fail(w, err)
			return
		}
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(v)))
		_, _ = w.Write(v)
	})
	mux.HandleFunc("DELETE /v1/keys/{key...}", func(w http.ResponseWriter, r *http.Request) {
		key, ok := keyOf(r)
		if !ok {
			http.NotFound(w, r)
			return
		}
		// A query that does not parse is a 400, as on the other routes
		// (it was ignored here, and the key deleted).
		q, err := query(r)
		if err != nil {
			fail(w, err)
			return
		}
		// A DELETE takes no parameter: "/v1/keys/?prefix=user:" deleted
		// the empty key, 204, as if the keys under user: were gone.
		if err := onlyParams(q, "a DELETE takes none"); err != nil {
			fail(w, err)
			return
		}
		tok, err := c.DeleteWithToken(key)
		answerWrite(w, tok, err, fail)
	})
	// The status routes take no parameter either, as every route under
	// /v1: one given is a 400 (they were ignored, and "?name=a" answered
	// every member, as if filtered). /metrics and /readyz, read by tools
	// that may add their own, ignore them.
	mux.HandleFunc("GET /v1/members", func(w http.ResponseWriter, r *http.Request) {
		if !noParams(w, r, fail) {
			return
		}
		ms := c.Members()
		out := make([]member, 0, len(ms))
		for _, m := range ms {
			out = append(out, member{Name: m.Name, Addr: m.Addr})
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		if !noParams(w, r, fail) {
			return
		}
		writeJSON(w, c.Stats())
	})
	watches := make(chan struct{}, maxWatches)
	mux.HandleFunc("GET /v1/watch", func(w http.ResponseWriter, r *http.Request) {
		// A query that does not parse is a 400 here too, as on the other
		// routes: "?prefix=user:;" watched the prefix "user:;", 200,
		// and streamed none of the keys asked for (found by review). The
		// prefix itself is decoded as a key in the path (pathParam).
		q, err := query(r)
		if err == nil {
			err = onlyParams(q, "a watch takes prefix alone", "prefix")
		}
		if err != nil {
			fail(w, err)
			return
		}
		prefix, err := pathParam(r.URL.RawQuery, "prefix")
		if err != nil {
			fail(w, fmt.Errorf("%w: %v", errBadRequest, err))
			return
		}
		tooMany := func() {
			w.Header().Set("Retry-After", retryAfter)
			http.Error(w, fmt.Sprintf("%d watch streams open already", maxWatches), http.StatusTooManyRequests)
		}
		if r.Method == http.MethodHead {
			// The headers alone: a stream behind a HEAD is written to
			// no one, so nothing ends it, and it held its place and the
			// connection until shutdown (found by review). With the
			// status its GET would have: it answered 200 to a bad
			// prefix, a closed member and every place taken (found by
			// review).
			if len(watches) == cap(watches) {
				tooMany()
				return
			}
			sub, err := c.Subscribe(prefix, 0)
			if err != nil {
				fail(w, err)
				return
			}
			sub.Close()
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			return
		}
		select {
		case watches <- struct{}{}:
			defer func() { <-watches }()
		default:
			tooMany()
			return
		}
		m.watches.Inc()
		defer m.watches.Dec()
		if end := watch(w, r, c, prefix, fail); end != "" {
			m.watchEnds.WithLabelValues(end).Inc()
		}
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		if !noParams(w, r, fail) {
			return
		}
		writeJSON(w, c.Status())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		s := c.Status()
		switch {
		case s.Ready():
			fmt.Fprintln(w, "ready")
		case s.Closed:
			http.Error(w, "not ready: closed", http.StatusServiceUnavailable)
		case s.Alone:
			http.Error(w, "not ready: alone, with peers to join", http.StatusServiceUnavailable)
		default:
			http.Error(w, "not ready: not synced with a peer yet", http.StatusServiceUnavailable)
		}
	})
	return &nodeHandler{Handler: m.counted(cleanKeys(mux)), flushLogs: flushLogs}
}

// cleanKeys answers 404 to a path that is not clean (".", "..", an empty
// segment anywhere), and to /v1/keys, which Go's router would redirect to
// the cleaned path: "/v1/keys/." (and "/v1/./keys/.", "/v1//keys/") went
// to "/v1/keys/", the empty key, and a client following the redirect (a
// 307 keeps the method and body) wrote or deleted it (found by review).
// The node serves no path that needs a redirect; escaped dots (%2E) are
// keys like any other.
func cleanKeys(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		esc := escapedPath(r.URL)
		if esc != r.URL.EscapedPath() {
			r = r.Clone(r.Context())
			r.URL.RawPath = esc // what the router and keyOf read
		}
		if esc == "/v1/keys" || esc != "/v1/keys/" && path.Clean(esc) != esc {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// escapedPath is u's path as its client sent it, with the bytes it should
// have escaped escaped (curl sends a UTF-8 key as it is): EscapedPath
// gives up on such a path and escapes the decoded one, whose %2F is a
// slash by then ("café%2Fmenu" was two segments: 404 to every method, a
// key held read as a miss; found by review).
func escapedPath(u *url.URL) string {
	raw := u.RawPath
	if raw == "" {
		return u.EscapedPath()
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~!$&'()*+,;=:@[]/%", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// counted counts the requests next answers, by status code and method.
func (m nodeMetrics) counted(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &codeWriter{ResponseWriter: w}
		next.ServeHTTP(cw, r)
		method := strings.ToLower(r.Method)
		switch r.Method {
		case http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodHead, http.MethodPost:
		default:
			method = "other" // a label value for each a client makes up: without bound
		}
		m.requests.WithLabelValues(strconv.Itoa(cmp.Or(cw.code, http.StatusOK)), method).Inc()
	})
}

// codeWriter notes the status code written through it. It flushes with
// its writer's error (FlushError): promhttp's wrapper flushed with none,
// and a watch stream whose flush failed went on until a later write
// failed, 15 to 30 s on a quiet stream (found by review).
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *codeWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *codeWriter) FlushError() error { return http.NewResponseController(w.ResponseWriter).Flush() }

func (w *codeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// nodeMetrics are the HTTP node's own metrics, beside the member's: the
// requests answered, by status code and method (its refusals, 4xx and
// 429, were counted nowhere: found by review), the watch streams open,
// and why those that ended ended.
type nodeMetrics struct {
	requests  *prometheus.CounterVec
	watches   prometheus.Gauge
	watchEnds *prometheus.CounterVec
}

func newNodeMetrics() nodeMetrics {
	return nodeMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bcache_http_requests_total",
			Help: "HTTP requests answered, by status code and method."}, []string{"code", "method"}),
		watches: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bcache_http_watch_streams",
			Help: "Watch streams (GET /v1/watch) open."}),
		watchEnds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bcache_http_watch_ended_total",
			Help: "Watch streams ended: client_gone (its request's context ended), write_failed (a write failed, or waited 30 s for a client not reading), closed (the member or the server closed)."},
			[]string{"reason"}),
	}
}

// uploadEndGrace is how long a PUT's body may take to come once the
// server has begun to shut down: well within shutdownTimeout, with the
// half second net/http waits before closing a connection it did not read
// to its end.
const uploadEndGrace = time.Second

// retryAfter is the Retry-After of a 429, in seconds.
const retryAfter = "1"

// keyOf returns the key of a request to /v1/keys/: the one path segment
// after it, unescaped (the empty key for none); false for more than one
// segment. (A "{key}" pattern matched no segment that unescapes to "/",
// nor an empty one: the keys "/" and "" were 404 to every method, a key
// held looking like a miss, found by review.)
func keyOf(r *http.Request) (string, bool) {
	raw, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1/keys/")
	if !ok || strings.Contains(raw, "/") {
		return "", false
	}
	key, err := url.PathUnescape(raw)
	return key, err == nil
}

// put stores the request body under the key, with the optional ttl. A
// body over maxValue is refused with 413: at once when its Content-Length
// says so, otherwise after maxValue+1 bytes, never reading the rest. The
// bytes read are taken from bodies as they come, until the value is
// stored: past it, 429.
func put(w http.ResponseWriter, r *http.Request, c *bcache.Cache, key string, maxValue int, bodies *bodyBudget, fail func(http.ResponseWriter, error)) {
	q, err := query(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// A parameter other than ttl is a 400: a ttl misspelt ("?TTL=10s")
	// was ignored, and the value stored with no expiry.
	if err := onlyParams(q, "a PUT takes ttl alone", "ttl"); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s, err := single(q, "ttl")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ttl, err := parseTTL(s)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tooLarge := fmt.Sprintf("value larger than %d bytes", maxValue)
	if r.ContentLength > int64(maxValue) {
		http.Error(w, tooLarge, http.StatusRequestEntityTooLarge)
		return
	}
	// As the server shuts down, the body has uploadEndGrace more to come:
	// Shutdown waited out its timeout (3 s) for a client that had sent
	// part of it, then closed the connection, and the client got no
	// answer (found by review: TestStopAnswersAClientMidUpload). One
	// still sending finishes; one that does not gets a 503.
	rc := http.NewResponseController(w)
	graceSet := make(chan struct{})
	stopGrace := context.AfterFunc(r.Context(), func() {
		defer close(graceSet)
		if errors.Is(context.Cause(r.Context()), errShutdown) {
			_ = rc.SetReadDeadline(time.Now().Add(uploadEndGrace))
		}
	})
	defer func() {
		if !stopGrace() {
			<-graceSet // set before the server takes the connection back
		}
	}()
	body := &budgeted{r: http.MaxBytesReader(w, r.Body, int64(maxValue)), b: bodies}
	defer func() { bodies.give(body.took) }()
	value, err := io.ReadAll(body)
	if err != nil && errors.Is(context.Cause(r.Context()), errShutdown) && errors.Is(err, os.ErrDeadlineExceeded) {
		http.Error(w, "the server is shutting down: the body did not come in time; retry on another member", http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, tooLarge, http.StatusRequestEntityTooLarge)
			return
		}
		if errors.Is(err, errTooMany) {
			fail(w, err)
			return
		}
		// net's errors name the connection's addresses, the server's
		// among them (its socket's path with -http unix:PATH): not sent.
		if _, ok := errors.AsType[*net.OpError](err); ok {
			msg := "reading body: the connection failed"
			if errors.Is(err, os.ErrDeadlineExceeded) {
				msg = "reading body: not received within the server's read timeout"
			}
			http.Error(w, msg, http.StatusBadRequest)
			return
		}
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	tok, err := c.SetWithToken(key, value, ttl)
	answerWrite(w, tok, err, fail)
}

// answerWrite answers a PUT or DELETE: 204 with its token, or the error,
// with the token if the write was applied (a write log that failed to
// take it: ErrNotDurable).
func answerWrite(w http.ResponseWriter, tok bcache.Token, err error, fail func(http.ResponseWriter, error)) {
	if tok != "" {
		w.Header().Set(tokenHeader, string(tok))
	}
	if err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// nodeHandler is the node's HTTP API.
type nodeHandler struct {
	http.Handler
	// flushLogs writes the log lines the rate limit holds back, each
	// kind's last with the count of the others: the server calls it once
	// it has stopped, so that lines held back in the last second before
	// the process exits are not lost (they were: found by review).
	flushLogs func()
}

// failer returns the function that answers a request that failed with
// err: with err's text for the client's errors (4xx) and those that say
// why the server cannot answer now (503, 504); with a fixed text for the
// others (5xx), whose errors go to log: a write log's named the server's
// files (found by review). A write applied but not durable says so.
//
// Each kind of line (its message and its error's text, quoted keys
// aside; see logLimits) is written at most once a second, the next one
// carrying a "suppressed" count: a line for every failed request wrote
// 1,600 lines a second from four clients writing to a member whose disk
// was full (found by review), filling the log's disk too, often the same.
// Lines held back when a burst ends are written a second after the last
// one written: the last of them, with the count of the others; flush
// writes those held back at once.
func failer(log zerolog.Logger) (fail func(http.ResponseWriter, error), flush func()) {
	return failerAt(log, time.Now, func(d time.Duration, f func()) { time.AfterFunc(d, f) })
}

// failerAt is failer with the clock its rate limit reads, and the timer
// that writes what a burst held back.
func failerAt(log zerolog.Logger, now func() time.Time, after func(time.Duration, func())) (fail func(http.ResponseWriter, error), flush func()) {
	lines := logLimits{now: now, after: after, write: func(err error, msg string, suppressed int) {
		e := log.Error().Err(err)
		if suppressed > 0 {
			e = e.Int("suppressed", suppressed)
		}
		e.Msg(msg)
	}}
	logged := func(err error, msg string) {
		lines.line(msg+"\x00"+errorShape(err), err, msg)
	}
	return func(w http.ResponseWriter, err error) {
		code := statusOf(err)
		switch {
		case code < 500 || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
			if code == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", retryAfter)
			}
			http.Error(w, err.Error(), code)
		case errors.Is(err, bcache.ErrNotDurable):
			logged(err, "write not durable")
			http.Error(w, notDurable, code)
		default:
			logged(err, "request failed")
			http.Error(w, http.StatusText(code), code)
		}
	}, lines.flushAll
}

// logInterval is the least time between two log lines of one kind.
const logInterval = time.Second

// A kind of line is its message and its error's shape: the error's text
// with its quoted parts (keys) emptied, cut at maxShapeLen. Per message
// alone, one error that kept coming (a full disk under every write) held
// back the first line of any other (found by review).
const maxShapeLen = 256

// maxLogKinds bounds the kinds a failer keeps apart; past them (errors of
// that many shapes in a second), the others share one limit.
const maxLogKinds = 64

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// errorShape is err's text with its quoted parts emptied, cut at
// maxShapeLen bytes.
func errorShape(err error) string {
	s := quoted.ReplaceAllString(err.Error(), `""`)
	if len(s) > maxShapeLen {
		s = s[:maxShapeLen]
	}
	return s
}

// logLimits are the rate limits of the kinds of log lines, at most
// maxLogKinds of them and one for the rest. A limit that holds a line
// back has after run a flush when its interval ends, which writes the
// last line held back if no line of the kind came since to carry the
// count: a burst's count went out only with the next line of its kind,
// a day later or never (found by review).
type logLimits struct {
	mu    sync.Mutex
	kinds map[string]*logLimit
	rest  logLimit
	now   func() time.Time
	after func(time.Duration, func())
	// write writes a line: err and msg, and the count of lines held back
	// (those it does not stand for itself).
	write func(err error, msg string, suppressed int)
}

// line writes the line err, msg of kind, or holds it back.
func (ls *logLimits) line(kind string, err error, msg string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l, ok, suppressed := ls.admit(kind, ls.now())
	if ok {
		ls.write(err, msg, suppressed)
		return
	}
	l.heldErr, l.heldMsg = err, msg
	if !l.flushing {
		l.flushing = true
		ls.after(l.last.Add(logInterval).Sub(ls.now()), func() { ls.flush(l) })
	}
}

// flush writes the last line l held back, if it still holds lines back.
func (ls *logLimits) flush(l *logLimit) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l.flushing = false
	if l.suppressed == 0 { // a line of its kind carried the count
		return
	}
	n := l.suppressed
	l.last, l.suppressed = ls.now(), 0
	ls.write(l.heldErr, l.heldMsg, n-1)
	l.heldErr = nil
}

// flushAll writes the last line each limit holds back, with the count of
// the others, and arms no timer.
func (ls *logLimits) flushAll() {
	ls.mu.Lock()
	limits := slices.Collect(maps.Values(ls.kinds))
	ls.mu.Unlock()
	for _, l := range append(limits, &ls.rest) {
		ls.flush(l)
	}
}

// admit is logLimit's admit for a line of kind, with the limit it counts
// in. Called with ls.mu held.
func (ls *logLimits) admit(kind string, now time.Time) (*logLimit, bool, int) {
	l, ok := ls.kinds[kind]
	if !ok {
		if ls.kinds == nil {
			ls.kinds = map[string]*logLimit{}
		}
		if len(ls.kinds) >= maxLogKinds {
			for k, old := range ls.kinds { // those that hold nothing back now limit nothing
				if old.suppressed == 0 && !old.flushing && now.Sub(old.last) >= logInterval {
					delete(ls.kinds, k)
				}
			}
		}
		if len(ls.kinds) >= maxLogKinds {
			ok, n := ls.rest.admit(now)
			return &ls.rest, ok, n
		}
		l = &logLimit{}
		ls.kinds[kind] = l
	}
	ok, n := l.admit(now)
	return l, ok, n
}

// logLimit is the rate limit of one kind of log line.
type logLimit struct {
	last       time.Time // when a line was last written
	suppressed int       // lines held back since
	flushing   bool      // a flush is on its way
	// The last line held back.
	heldErr error
	heldMsg string
}

// admit reports whether a line may be written at now, and how many were
// held back since the last one written.
func (l *logLimit) admit(now time.Time) (bool, int) {
	if !l.last.IsZero() && now.Sub(l.last) < logInterval {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	l.heldErr = nil
	return true, n
}

// notDurable is the answer to a write that was applied, but that the
// write log failed to take.
const notDurable = "write applied here and sent to the peers, but not durable: the write log failed (the server's log says why)"

// tokenHeader carries a write's token: the answer to a PUT or DELETE, and
// a GET's demand to read nothing older.
const tokenHeader = "Bcache-Token"

// maxWait bounds the wait query parameter of a GET with a token;
// answerTime is what the answer may take to write once the wait is over:
// the server's write timeout, as for a GET without a token.
const (
	maxWait    = time.Minute
	answerTime = writeTimeout
)

// errNotYet is a GET with a token that timed out: 504.
var errNotYet = errors.New("the write of the token has not reached this member yet")

// read reads the key; with a Bcache-Token header, nothing older than that
// write, waiting for it up to the wait query parameter (default 5 s), for
// which it moves the response's write deadline (the server's would end a
// longer wait with no answer at all).
func read(w http.ResponseWriter, r *http.Request, c *bcache.Cache, key string, maxKey int, waits chan struct{}) ([]byte, bool, error) {
	toks := r.Header.Values(tokenHeader)
	if len(toks) > 1 {
		// Which one the caller meant is not for this member to guess: an
		// empty header before the token read as none, and the read could
		// answer older than the write (found by review).
		return nil, false, fmt.Errorf("%w: %d %s headers, want one", errBadRequest, len(toks), tokenHeader)
	}
	tok := r.Header.Get(tokenHeader)
	if len(toks) == 1 && tok == "" {
		// A header present but empty is no token the library takes
		// (ErrBadToken), not a read without one: read as none, it
		// answered older than the write its client meant to wait for.
		return nil, false, fmt.Errorf("%w: empty %s header", errBadRequest, tokenHeader)
	}
	if len(key) > maxKey {
		// As a PUT's and a read with a token's: 414, not a miss (a GET
		// without a token said 404: found by review).
		return nil, false, fmt.Errorf("get %q...: %w (%d bytes, limit %d)", key[:min(len(key), 32)], bcache.ErrKeyTooLarge, len(key), maxKey)
	}
	q, err := query(r)
	if err == nil {
		err = onlyParams(q, "a GET takes wait alone", "wait")
	}
	if err != nil {
		return nil, false, err
	}
	wait := 5 * time.Second
	s, err := single(q, "wait")
	if err != nil {
		return nil, false, err
	}
	if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > maxWait {
			return nil, false, fmt.Errorf("%w: wait %q: want a duration from 0 to %v", errBadRequest, clipped(s), maxWait)
		}
		wait = d
	}
	if tok == "" {
		v, ok := c.Get(key)
		return v, ok, nil
	}
	select {
	case waits <- struct{}{}:
		defer func() { <-waits }()
	default:
		return nil, false, fmt.Errorf("%w: %d reads with a token under way", errTooMany, cap(waits))
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + answerTime))
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	v, ok, err := c.GetAfter(ctx, key, bcache.Token(tok))
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, false, fmt.Errorf("%w (waited %v)", errNotYet, wait)
	}
	return v, ok, err
}

// query returns r's query parameters; a query that does not parse (a
// pair with a semicolon, "ttl=10s;", or a bad escape, "ttl=10s%") is a
// 400: r.URL.Query drops such a pair, and a PUT whose ttl it dropped
// stored its value with no expiry (found by review).
func query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: query %q: %v", errBadRequest, clipped(r.URL.RawQuery), err)
	}
	return q, nil
}

// onlyParams is a 400 for a parameter of q other than those allowed
// (says is what the request takes, for the error): one misspelt was
// ignored, and the request did what its caller had not asked ("?TTL=10s"
// stored a value with no expiry, a watch of "?prefx=user:" streamed
// every key: found by review).
func onlyParams(q url.Values, says string, allowed ...string) error {
	for _, name := range slices.Sorted(maps.Keys(q)) { // the same one named each time
		if !slices.Contains(allowed, name) {
			return fmt.Errorf("%w: unknown parameter %q: %s", errBadRequest, clipped(name), says)
		}
	}
	return nil
}

// noParams answers a 400 through fail, and returns false, for a request
// with a query: the route takes none.
func noParams(w http.ResponseWriter, r *http.Request, fail func(http.ResponseWriter, error)) bool {
	q, err := query(r)
	if err == nil {
		err = onlyParams(q, "this route takes none")
	}
	if err != nil {
		fail(w, err)
		return false
	}
	return true
}

// single returns q's parameter name, "" if absent; given more than once,
// it is a 400: which one the caller meant is not for the node to guess
// (the first was taken, and "?ttl=&ttl=10s" stored a value with no expiry:
// found by review).
func single(q url.Values, name string) (string, error) {
	if vs := q[name]; len(vs) > 1 {
		return "", fmt.Errorf("%w: %d %s parameters, want one", errBadRequest, len(vs), name)
	}
	return q.Get(name), nil
}

// errBadRequest is a malformed parameter: 400.
var errBadRequest = errors.New("bad request")

// maxTokenWaits bounds the reads with a token under way at once: each may
// wait up to maxWait, and pulls the key from every peer while it does
// (without a bound, a client with a token no member holds opened as many
// as it liked: found by review). Past it, 429.
const maxTokenWaits = 1024

// maxBodyBytes bounds the bytes of the PUT bodies read and not stored
// yet, all together (without a bound, as many slow uploads as clients
// liked each held up to -max-value: found by review). Bytes are counted
// as they are read, not as a Content-Length announces them: headers
// alone, from idle clients, took the whole bound (found by the next
// review).
const maxBodyBytes = 256 << 20

// bodyBudget counts the bytes of the PUT bodies read and not stored yet.
type bodyBudget struct {
	mu        sync.Mutex
	used, max int64
}

// take takes n bytes, if they fit.
func (b *bodyBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

func (b *bodyBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// budgeted reads a body, taking what it reads from b (took, given back by
// its reader): past b, it fails with errTooMany. (io.ReadAll's buffer may
// be up to twice what it read.)
type budgeted struct {
	r    io.Reader
	b    *bodyBudget
	took int64
}

func (r *budgeted) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		if !r.b.take(int64(n)) {
			return 0, fmt.Errorf("%w: the request bodies being read take up the %d bytes allowed them: retry later", errTooMany, r.b.max)
		}
		r.took += int64(n)
	}
	return n, err
}

// clipped is a caller's parameter as an error quotes it: its first 32
// bytes (a parameter of 64 KiB was quoted whole, four times its size
// with its escapes: found by review).
func clipped(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// durationSyntax matches what time.ParseDuration takes, whatever its
// size.
var durationSyntax = regexp.MustCompile(`^[-+]?((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$`)

// errTooMany is a request past a bound of the server's: 429.
var errTooMany = errors.New("too many requests")

// parseTTL parses the ttl query parameter, a Go duration such as 10s; ""
// and zero ("0", "0s") mean no expiry. A negative ttl is refused, and so
// is one that rounds to zero (0.1ns): the Cache would read it as no
// expiry. One past the longest duration (about 292 years) is the
// longest, which the Cache takes as no expiry, as it takes any ttl whose
// expiry falls past 2262 (it was refused as not a duration: found by
// review).
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil && durationSyntax.MatchString(s) { // a duration, past the longest
		if s[0] == '-' {
			return 0, fmt.Errorf("bad ttl %q: negative", clipped(s))
		}
		return math.MaxInt64, nil
	}
	switch {
	case err != nil:
		return 0, fmt.Errorf("bad ttl %q: want a duration such as 10s or 1m30s", clipped(s))
	case d < 0:
		return 0, fmt.Errorf("bad ttl %q: negative", clipped(s))
	case d == 0 && strings.ContainsAny(s, "123456789"):
		return 0, fmt.Errorf("bad ttl %q: under 1ns, which would mean no expiry; give 0 for none", clipped(s))
	}
	return d, nil
}

// statusOf maps the Cache's errors to HTTP statuses. A key too large is 414
// (URI Too Long), since the key is in the path.
func statusOf(err error) int {
	switch {
	case errors.Is(err, bcache.ErrInvalidTTL), errors.Is(err, bcache.ErrBadToken), errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, errNotYet):
		return http.StatusGatewayTimeout
	case errors.Is(err, errTooMany):
		return http.StatusTooManyRequests
	case errors.Is(err, bcache.ErrKeyTooLarge):
		return http.StatusRequestURITooLong
	case errors.Is(err, bcache.ErrValueTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, bcache.ErrClosed), errors.Is(err, context.Canceled): // the member or the server closing
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// writeJSON writes v as a 200 JSON response.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// versionString is a change's version in the watch stream: the wall time
// in UTC to the nanosecond, the logical counter and the writing member's
// incarnation, each of fixed width, so that two versions of a key compare
// as their strings do (crdt.Timestamp's String, for logs, gave the time
// of day alone: found by review).
func versionString(t crdt.Timestamp) string {
	return fmt.Sprintf("%s+%010d@%016x", time.Unix(0, t.Wall).UTC().Format("2006-01-02T15:04:05.000000000Z"), t.Logical, uint64(t.Node))
}

// change is the JSON form of a bcache.Change in the watch stream.
type change struct {
	Key string `json:"key"`
	// KeyBase64 is the key's bytes, for a key that is not UTF-8 (Key
	// then has U+FFFD for the bytes that are not, and two such keys may
	// read the same).
	KeyBase64 []byte `json:"key_base64,omitempty"`
	Cause     string `json:"cause"`
	Here      bool   `json:"here"`
	Version   string `json:"version,omitempty"` // none for an overflow
	// Value is a set's value, also an empty one (omitted, it read as
	// none to a client of "data.value": found by review); other causes
	// have none.
	Value      *[]byte    `json:"value,omitempty"`
	Expires    *time.Time `json:"expires,omitempty"`
	Superseded bool       `json:"superseded,omitempty"`
}

// maxWatches bounds the watch streams open at once (each a subscription
// holding what its client has not read yet); watchWriteTimeout is the
// longest a stream's write may wait for a client that does not read. A
// write waits only once the socket's buffers are full: a client that
// opens a quiet stream and never reads holds its place until it goes
// (one gone is found when a write fails: a quiet stream is written a
// comment every watchPing), so 64 such clients hold every place (found
// by review).
const (
	maxWatches        = 64
	watchWriteTimeout = 30 * time.Second
)

// watchEndGrace is how long a stream's writes may take once its request's
// context has ended: enough for a client that reads to get the stream's
// clean end, well within the node's shutdownTimeout.
const watchEndGrace = time.Second

// watchPing is how long a stream may go quiet before it is written a
// comment: a client gone is found by the write failing (net/http stops
// watching a connection for its close once a client sends a byte after
// its request, so a quiet stream of a client gone held its place for
// good, found by review). A variable: tests shorten it.
var watchPing = 15 * time.Second

// pathParam returns the query parameter name of rawQuery, decoded as a
// key in the path is: a "+" stays a "+" (decoded as a form, it became a
// space, and a watch of "c++:" matched none of the keys "c++:..."
// written: found by review); "" if there is none. Given more than once,
// it is an error, as single's (the first was taken: "?prefix=&prefix=a"
// watched every key, found by review).
func pathParam(rawQuery, name string) (string, error) {
	var raw string
	n := 0
	for part := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		if key, err := url.QueryUnescape(k); err != nil || key != name {
			continue
		}
		if n++; n > 1 {
			return "", fmt.Errorf("%d or more %s parameters, want one", n, name)
		}
		raw = v
	}
	return url.PathUnescape(raw)
}

// watch streams the changes to keys with prefix (the query parameter) as
// Server-Sent Events, one event per change named by its cause, with the
// change as JSON data (the value in base64), until the client goes away,
// stops reading for watchWriteTimeout, or the member closes; a quiet
// stream gets a comment every watchPing.
func watch(w http.ResponseWriter, r *http.Request, c *bcache.Cache, prefix string, fail func(http.ResponseWriter, error)) (end string) {
	const gone, writeFailed, closed = "client_gone", "write_failed", "closed"
	sub, err := c.Subscribe(prefix, 0)
	if err != nil {
		fail(w, err)
		return ""
	}
	defer sub.Close()
	ctx := r.Context()
	// ended is why the stream ends once its request's context has.
	ended := func() string {
		if errors.Is(context.Cause(ctx), errShutdown) {
			return closed // the server shuts down, the client is there (it was counted gone)
		}
		return gone
	}
	// failed is why the stream ends at a write that failed.
	failed := func() string {
		if ctx.Err() != nil {
			return ended()
		}
		return writeFailed
	}
	// Each write may wait watchWriteTimeout for its client; once the
	// request's context has ended (Shutdown, the client gone),
	// watchEndGrace from then at most: a write waiting on a client that
	// had stopped reading went on waiting for its 30 s, and held Shutdown
	// to its timeout, the stream open (found by review:
	// TestShutdownEndsAStalledWatchStream).
	rc := http.NewResponseController(w)
	var deadlineMu sync.Mutex
	deadline := func() bool { // before every change and ping
		deadlineMu.Lock()
		defer deadlineMu.Unlock()
		if ctx.Err() != nil {
			return false
		}
		_ = rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
		return true
	}
	graceSet := make(chan struct{})
	stopGrace := context.AfterFunc(ctx, func() {
		defer close(graceSet)
		deadlineMu.Lock()
		defer deadlineMu.Unlock()
		_ = rc.SetWriteDeadline(time.Now().Add(watchEndGrace))
	})
	defer func() {
		if !stopGrace() {
			<-graceSet // set before the server takes the connection back
		}
	}()
	_ = deadline() // or the grace, the context having ended: the loop sees it
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	// A stream starts with an event of its own: a client that reconnects
	// (an EventSource does so by itself) learns that the changes made
	// while it was away are not in the new stream, and re-reads what it
	// needs (they were lost without a word: found by review).
	if _, err := io.WriteString(w, "event: start\ndata: {}\n\n"); err != nil || rc.Flush() != nil {
		return failed()
	}
	ping := time.NewTicker(watchPing)
	defer ping.Stop()
	for {
		select {
		case <-ping.C:
			if !deadline() {
				return ended()
			}
			if _, err := io.WriteString(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return failed()
			}
		case batch, ok := <-sub.C:
			if !ok {
				return closed
			}
			for _, ch := range batch {
				// Each change's write may wait watchWriteTimeout: a
				// deadline for the whole batch (up to the subscription's
				// bound, megabytes) cut clients that read slowly but
				// kept reading (found by review).
				if !deadline() {
					return ended()
				}
				out := change{Key: ch.Key, Cause: ch.Cause.String(), Here: ch.Here, Superseded: ch.Superseded}
				switch ch.Cause {
				case bcache.CauseOverflow: // no version: a client keeping each key's newest saw it go back
				case bcache.CauseSet:
					v := ch.Value
					if v == nil {
						v = []byte{}
					}
					out.Value = &v
					fallthrough
				default:
					out.Version = versionString(ch.Version)
				}
				if !utf8.ValidString(ch.Key) {
					out.KeyBase64 = []byte(ch.Key)
				}
				if !ch.Expires.IsZero() {
					out.Expires = &ch.Expires
				}
				b, _ := json.Marshal(out)
				// Written as it is, not through fmt, which copied a large
				// value's JSON once more (found by review).
				if _, err := io.WriteString(w, "event: "+out.Cause+"\ndata: "); err != nil {
					return failed()
				}
				if _, err := w.Write(b); err != nil {
					return failed()
				}
				if _, err := io.WriteString(w, "\n\n"); err != nil {
					return failed()
				}
			}
			if rc.Flush() != nil {
				return failed()
			}
			ping.Reset(watchPing) // a stream that is written to needs none
		case <-ctx.Done():
			return ended()
		}
	}
}
