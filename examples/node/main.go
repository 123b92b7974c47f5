// Command node is a long-running bcache member with a small HTTP API, to
// start a few times and try by hand.
//
// Three members on one machine, each in its own terminal (-fast detects
// failures in about a second; a -bind host name is resolved once):
//
//	go run ./examples/node -fast -name n1 -bind 127.0.0.1:7946 -http 127.0.0.1:8081
//	go run ./examples/node -fast -name n2 -bind 127.0.0.1:7947 -http 127.0.0.1:8082 -peers 127.0.0.1:7946
//	go run ./examples/node -fast -name n3 -bind 127.0.0.1:7948 -http 127.0.0.1:8083 -peers 127.0.0.1:7946
//
// To encrypt, give every member the same -key, e.g. from openssl rand -hex 16
// (or -key-file, to keep it off the command line, which other processes
// on the host may read).
// With -snapshot FILE a member keeps its data across restarts, as an edge
// device would: stop it, start it again with the same flags, and it serves
// what it held even when no peer answers. Add -sync write and it loses no
// write it acknowledged, even to kill -9 (see the README's "Durability").
// Then, from a fourth terminal:
//
//	curl -s localhost:8081/v1/members
//	curl -X PUT --data-binary 'hello' localhost:8081/v1/keys/greeting
//	curl -s localhost:8082/v1/keys/greeting                 # hello
//	curl -X PUT --data-binary 'bye' 'localhost:8083/v1/keys/short?ttl=10s'
//	curl -X DELETE localhost:8083/v1/keys/greeting
//	curl -i localhost:8081/v1/keys/greeting                 # 404
//	curl -s localhost:8082/v1/stats
//
// Replication is asynchronous (a millisecond or so on one machine): a read
// on another member sent right after a write or delete, as above, may still
// see what the key held before; send the write's Bcache-Token header with
// the read to wait for it.
//
// The API (node -h lists it too):
//
//	PUT    /v1/keys/{key}[?ttl=10s]  body is the value: 204 with the write's Bcache-Token header; 400 bad ttl, 413 value too large, 414 key too large, 503 closed;
//	                                 500 with the token if applied but the write log failed to take it (-sync);
//	                                 429 while the bodies read and not stored yet take 256 MiB
//	GET    /v1/keys/{key}[?wait=5s]  200 with the value, or 404; with a Bcache-Token header, nothing older than that write:
//	                                 it waits for it up to wait (default 5s, at most 1m), then 504; 400 a bad token;
//	                                 429 past 1024 such reads at once; 414 key too large, 503 closed
//	DELETE /v1/keys/{key}            204 with the delete's Bcache-Token header; 414 key too large, 503 closed; 500 as PUT
//	GET    /v1/members               200, JSON [{"name","addr"}]
//	GET    /v1/stats                 200, JSON bcache.Stats
//	GET    /v1/status                200, JSON bcache.Status: peers, last syncs, first sync, join failures
//	GET    /metrics                  Prometheus metrics (package metrics), with Go's and the process's, and the node's:
//	                                 bcache_http_requests_total{code,method}, bcache_http_watch_streams,
//	                                 bcache_http_watch_ended_total{reason="client_gone|write_failed|closed"}
//	GET    /readyz                   200 once synced with a peer, or with no peers but itself, or as the founder of its cluster; 503 before, or alone
//	GET    /v1/watch[?prefix=p]      the changes to keys with prefix p (decoded as a key in the path: "+" is "+") as Server-Sent Events, after "event: start" (a client
//	                                 that reconnects misses what changed meanwhile: re-read): "event: set|delete|expire|evict|drop|overflow",
//	                                 data {"key","cause","here","version","value" (base64, a set's alone, "" for an empty value),
//	                                 "expires","superseded"} ("version": "2006-01-02T15:04:05.000000000Z+0000000000@0123456789abcdef",
//	                                 UTC wall time, logical counter, writer's incarnation: versions of a key
//	                                 compare as strings; an overflow's key is the first change it stands for, and it has no version),
//	                                 and "key_base64" for a key that is not UTF-8;
//	                                 64 streams at once (429 past them); a stream one of whose changes waits 30 s
//	                                 to be written (its client not reading, its buffers full) is dropped, but a client that keeps a
//	                                 quiet stream open without reading holds its place until it closes (a quiet
//	                                 stream gets a comment, ": ping", every 15 s: a client gone is found by
//	                                 the write failing); HEAD gets the headers alone, with the status a GET would have
//
// A ttl, wait or prefix parameter given twice is a 400, and so is a
// PUT's parameter other than ttl (a ttl misspelt would store no expiry),
// and any DELETE's (it deletes the one key in its path) or /v1/members',
// /v1/stats' and /v1/status' (/readyz and /metrics take any).
//
// A 429 comes with Retry-After: 1.
//
// A key is one path segment: escape a slash in it as %2F, and the keys "."
// and ".." as %2E and %2E%2E (their plain paths, and any other path under
// /v1/keys that is not clean, are 404); /v1/keys/ is the empty key, and
// /v1/keys/%2F the key "/". A ttl is a Go
// duration; absent or zero (0, 0s) means no expiry, and a negative one or
// one under a nanosecond (0.1ns, which would round to no expiry) is a 400.
// A body over -max-value is a 413, at once when its Content-Length says
// so, otherwise once that many bytes are read; of the rest, net/http
// reads at most 512 KiB more (a chunked body: 256 KiB looking for its
// end before the 413 goes, and 256 KiB as it closes the body, so that
// the client reads the 413 rather than a reset connection), within the
// 30 s a request has.
//
// -http unix:PATH serves the API on a Unix socket instead, which a process
// in another network namespace can reach (the fault suite, package faults,
// does); a socket file there that no process listens on is removed first.
// Errors of the server's own (500) are logged, not sent to the client
// (a line a second at most of each error, keys aside, the next, or the last held back a second later, carrying a "suppressed" count). -clock-offset runs the member's clock ahead or behind, for fault
// tests only.
//
// The HTTP server gives a client 10 s to send a request's headers (256
// KiB of them at most, the longest key escaped whole among them; 431
// past them), 30 s
// for the whole request, 45 s from its headers to the end of the response
// (a GET with a token: its wait and then 45 s; a watch stream: 30 s for
// each change),
// and closes a kept-alive connection idle for 60 s, so that slow clients
// cannot hold connections open; past -max-conns connections open at once
// (1024), new clients wait for one to close. Logs are JSON lines on stderr; the
// "listening" lines carry the gossip and HTTP addresses (useful with port
// 0). SIGINT, SIGTERM or SIGHUP (the terminal it ran in closed: it
// ended the node without its last snapshot; SIGHUP or SIGINT ignored at
// start, as by nohup or a script's background job, it leaves so) stops the HTTP server (watch streams and
// reads waiting for a token end at once, a stream's write within a second, an upload
// within a second, answered 503 if its body has not come by then, as is a request not yet
// read (on unix); a response still being
// written 3 s later, its client not reading, has its connection closed), leaves the cluster, writes
// the snapshot (with -snapshot) and exits 0, or 1 if that last snapshot
// failed; a second signal kills it at once. A stderr whose reader went
// away (SIGPIPE) loses the log lines, not the process. Flag and configuration errors
// exit 2, other failures 1.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache"
)

func main() {
	sigs := []os.Signal{syscall.SIGTERM}
	// One ignored at start stays ignored: SIGHUP under nohup, SIGINT in a
	// script's background job (asked for, they were not: found by review).
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGHUP} {
		if !signal.Ignored(sig) {
			sigs = append(sigs, sig)
		}
	}
	// A log line written to a stderr whose reader went away (a log
	// shipper restarted, "node 2>&1 | tee" with tee killed) ended the
	// process with SIGPIPE: the "shutting down" line did so before the
	// last snapshot, and every write since the one before was lost (found
	// by review). Ignored, the line is lost instead.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process at once
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// usage is what -h prints before the flags.
const usage = `Usage: node [flags]

A bcache member: an in-memory cache replicated to the members it joins,
served over HTTP:

  PUT    /v1/keys/{key}[?ttl=10s]  store the request body (ttl 0 or none: no expiry);
                                   204 with the write's Bcache-Token header
  GET    /v1/keys/{key}[?wait=5s]  the value, or 404; with a Bcache-Token header, nothing
                                   older than that write: waits up to wait (at most 1m), then 504
  DELETE /v1/keys/{key}            delete it on every member; 204 with its Bcache-Token
  GET    /v1/members               the live members, JSON
  GET    /v1/stats                 the member's counters, JSON
  GET    /v1/status                peers, last syncs, first sync, join failures, JSON
  GET    /readyz                   200 once synced with a peer (or with no peers but itself, or as its cluster's founder)
  GET    /metrics                  Prometheus metrics
  GET    /v1/watch[?prefix=p]      the changes to keys with prefix p, as Server-Sent Events

A key is one path segment: escape a slash in it as %2F, and the keys "."
and ".." as %2E and %2E%2E (a path that is not clean is 404); /v1/keys/
is the empty key.

Flags:
`

// defaultWatchBytes is -watch-bytes's default: 64 watch streams whose
// clients stop reading hold about 1 GiB with 1 MiB values (at the
// library's default of 64 MiB a subscription, 12 GiB: found by review),
// at the price of an overflow for every client when a peer's frame brings
// more than 4 MiB of values (see bcache.Config.SubscriptionBytes).
const defaultWatchBytes = 4 << 20

// options are the parsed flags.
type options struct {
	cfg      bcache.Config
	httpAddr string
	maxConns int
	// fileFlags names the file flag that set a Config field read from a
	// file (-key-file, -accept-keys-file), for flagOf.
	fileFlags map[string]string
}

// parseFlags turns the command line into options; its errors mean exit 2.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "member name, unique in the cluster (default: hostname-port of -bind; with port 0, one drawn at random)")
	bind := fs.String("bind", "127.0.0.1:7946", "gossip `ip:port`, UDP and TCP (port 0 picks one)")
	advertise := fs.String("advertise", "", "gossip `ip:port` other members reach this one at, when it differs from -bind (a wildcard -bind, NAT)")
	httpAddr := fs.String("http", "127.0.0.1:8080", "HTTP `host:port` (port 0 picks one), or unix:PATH for a Unix socket")
	peers := fs.String("peers", "", "comma-separated members to join: ip:port, name:port (every address of the name) or srv:NAME (a DNS SRV name)")
	key := fs.String("key", "", "cluster key, hex of 16, 24 or 32 bytes (default: no encryption)")
	accept := fs.String("accept-keys", "", "comma-separated keys (hex) accepted besides -key, to rotate it (see the README's \"Key rotation\")")
	keyFile := fs.String("key-file", "", "`file` holding -key (hex), so that the key is not on the command line, which other processes may read")
	acceptFile := fs.String("accept-keys-file", "", "`file` holding -accept-keys (hex, separated by commas or lines); missing or empty: none")
	maxKeys := fs.Int("max-keys", 0, "values held before eviction, S3-FIFO (0: unbounded)")
	maxBytes := fs.Int64("max-bytes", 0, "key and value bytes held before eviction, S3-FIFO (0: unbounded); with a container's memory limit, well under it")
	maxValue := fs.Int("max-value", bcache.DefaultMaxValueSize, "largest value in bytes, at most -max-bytes (not given, -max-bytes if lower than the default; 0: the library's default, which does the same)")
	maxConns := fs.Int("max-conns", defaultMaxConns, "HTTP connections open at once; past them, new clients wait for one to close")
	watchBytes := fs.Int("watch-bytes", defaultWatchBytes, "keys and values waiting for one /v1/watch client before it gets an overflow event (0: the library's 64 MiB); each of the 64 streams holds up to three times this, or three values if larger, while its client does not read; a peer's frame of more large values than this overflows a client however fast it reads")
	snapshot := fs.String("snapshot", "", "`file` that keeps this member's data across restarts (default: none)")
	packetSize := fs.Int("packet-size", 0, "largest datagram sent, in bytes, 512 to 65507 (default: 1400, or 8192 with a loopback -advertise, else -bind); raise it where every path between members carries jumbo frames")
	fast := fs.Bool("fast", false, "fast failure detection, for one machine (default: LAN timings)")
	offset := fs.Duration("clock-offset", 0, "for fault tests only: run this member's clock this far ahead (negative: behind)")
	snapshotEvery := fs.Duration("snapshot-interval", 0, "how often to rewrite the -snapshot file (default: bcache's, 5m; negative: only at shutdown and, with -sync, once the write log outgrows the snapshot)")
	var sync bcache.SyncPolicy
	fs.TextVar(&sync, "sync", bcache.SyncNone, "with -snapshot, when writes reach the disk between snapshots, a `policy`: write (before each returns), interval (every -sync-interval) or none")
	syncEvery := fs.Duration("sync-interval", 0, "how often -sync interval syncs the write log (default: bcache's, 100ms)")
	var onDamage bcache.DamagePolicy
	fs.TextVar(&onDamage, "on-damage", bcache.DamageFail, "a `policy` for a damaged -snapshot file or write log: fail, or reset (move them aside, keeping the 3 newest sets, and start empty; a file that cannot be read is read again, and then fails either way and is not moved, but for the device's EIO, which is damage); and with records of them too far ahead of the clock: fail (start again once the clock is set), or reset (skip them)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *maxConns < 1 {
		return options{}, fmt.Errorf("-max-conns %d: want 1 or more", *maxConns)
	}
	if *maxBytes < 0 {
		return options{}, fmt.Errorf("-max-bytes %d: want 0 or more", *maxBytes)
	}
	// -max-value not given follows -max-bytes below 1 MiB, as the
	// library's default does: its own default, passed as given, was over
	// such a -max-bytes, and the node refused to start (found by review).
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "max-value" })
	if !given && *maxBytes > 0 && *maxBytes < int64(*maxValue) {
		*maxValue = int(*maxBytes)
	}
	if *watchBytes < 0 {
		return options{}, fmt.Errorf("-watch-bytes %d: want 0 or more", *watchBytes)
	}
	// A flag that qualifies another one not given would be ignored: said
	// so instead (found by review).
	switch {
	case *snapshotEvery != 0 && *snapshot == "":
		return options{}, errors.New("-snapshot-interval: needs -snapshot")
	case sync != bcache.SyncNone && *snapshot == "":
		return options{}, fmt.Errorf("-sync %v: needs -snapshot, beside which the write log is kept", sync)
	case *syncEvery != 0 && sync != bcache.SyncInterval:
		return options{}, errors.New("-sync-interval: needs -sync interval")
	case onDamage != bcache.DamageFail && *snapshot == "":
		return options{}, errors.New("-on-damage: needs -snapshot")
	}
	if err := checkHTTPAddr(*httpAddr); err != nil {
		return options{}, err
	}
	cfg := bcache.Config{
		NodeName: *name, BindAddr: *bind, MaxKeys: *maxKeys, MaxBytes: *maxBytes, MaxValueSize: *maxValue, SubscriptionBytes: *watchBytes,
		SnapshotPath: *snapshot, SnapshotInterval: *snapshotEvery,
		Sync: sync, SyncEvery: *syncEvery, OnDamage: onDamage, AdvertiseAddr: *advertise, PacketSize: *packetSize,
	}
	if d := *offset; d != 0 {
		if err := checkClockOffset(d, time.Now()); err != nil {
			return options{}, err
		}
		cfg.Clock = func() time.Time { return time.Now().Add(d) }
	}
	if cfg.NodeName == "" {
		cfg.NodeName = defaultName(*bind)
	}
	for p := range strings.SplitSeq(*peers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Peers = append(cfg.Peers, p)
		}
	}
	if *keyFile != "" {
		if *key != "" {
			return options{}, errors.New("-key and -key-file: give one")
		}
		b, err := readKeys(*keyFile)
		if err != nil {
			return options{}, fmt.Errorf("-key-file: %w", err)
		}
		*key = strings.TrimSpace(string(b))
		if *key == "" {
			return options{}, fmt.Errorf("-key-file: %s is empty", *keyFile)
		}
	}
	if *acceptFile != "" {
		if *accept != "" {
			return options{}, errors.New("-accept-keys and -accept-keys-file: give one")
		}
		// A rotation's Secret may not hold the entry at all outside one.
		b, err := readKeys(*acceptFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return options{}, fmt.Errorf("-accept-keys-file: %w", err)
		}
		*accept = strings.Join(strings.Fields(strings.ReplaceAll(string(b), ",", " ")), ",")
	}
	// A key read from a file is named by that flag and file in errors:
	// "-key: not hex" named a flag the manifest never passes.
	keyFlag, acceptFlag := "-key", "-accept-keys"
	fileFlags := map[string]string{}
	if *keyFile != "" {
		keyFlag = "-key-file: " + *keyFile
		fileFlags["SecretKey"] = "-key-file"
	}
	if *acceptFile != "" {
		acceptFlag = "-accept-keys-file: " + *acceptFile
		fileFlags["AcceptKeys"] = "-accept-keys-file"
	}
	if *key != "" {
		k, err := parseKey(keyFlag, *key)
		if err != nil {
			return options{}, err
		}
		cfg.SecretKey = k
	}
	for a := range strings.SplitSeq(*accept, ",") {
		if a = strings.TrimSpace(a); a != "" {
			k, err := parseKey(acceptFlag, a)
			if err != nil {
				return options{}, err
			}
			cfg.AcceptKeys = append(cfg.AcceptKeys, k)
		}
	}
	if *fast {
		cfg.Timings = bcache.FastTimings()
	}
	return options{cfg: cfg, httpAddr: *httpAddr, maxConns: *maxConns, fileFlags: fileFlags}, nil
}

// checkHTTPAddr checks -http's form: a malformed one is a flag error
// (exit 2), as a malformed -bind is; it was a failure to listen (exit 1).
func checkHTTPAddr(addr string) error {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return errors.New("-http unix: needs a socket's path")
		}
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil {
		return fmt.Errorf("-http %q: %v", clipped(addr), err)
	}
	return nil
}

// The clock times a member can stamp: its timestamps are nanoseconds
// since 1970 in an int64, from 1677 to 2262, with a year to spare for
// the process to run.
var (
	earliestClock = time.Unix(0, math.MinInt64).AddDate(1, 0, 0)
	latestClock   = time.Unix(0, math.MaxInt64).AddDate(-1, 0, 0)
)

// checkClockOffset refuses a -clock-offset that moves the clock, at now,
// out of the times a member can stamp: the clock wrapped (2500000h ahead
// ran the member in 1727, its writes losing to every other member's),
// and the node started as if the flag were good.
func checkClockOffset(d time.Duration, now time.Time) error {
	if t := now.Add(d); t.Before(earliestClock) || t.After(latestClock) {
		return fmt.Errorf("-clock-offset %v: puts the clock at %s, past the times a member can stamp (%d to %d)",
			d, t.UTC().Format(time.DateOnly), earliestClock.Year(), latestClock.Year())
	}
	return nil
}

// maxKeysFile bounds what a key file is read for: a few dozen keys in
// hex. A path given by mistake (a device, a large file) was read whole,
// /dev/zero without end.
const maxKeysFile = 64 << 10

// readKeys reads a key file of at most maxKeysFile bytes.
func readKeys(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeysFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeysFile {
		return nil, fmt.Errorf("%s: over %d bytes: not a key file", path, maxKeysFile)
	}
	return b, nil
}

// parseKey decodes a hex cluster key given to flag.
func parseKey(flag, s string) ([]byte, error) {
	k, err := hex.DecodeString(s)
	if err != nil {
		// Where, never what: encoding/hex's error quotes the byte it could
		// not read, a byte of the secret, which went to stderr (the log).
		var bad hex.InvalidByteError
		if errors.As(err, &bad) {
			return nil, fmt.Errorf("%s: not hex: a byte that is no hex digit at offset %d", flag, strings.IndexByte(s, byte(bad)))
		}
		return nil, fmt.Errorf("%s: not hex (%d characters)", flag, len(s))
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("%s: %d bytes, want 16, 24 or 32 (32, 48 or 64 hex digits)", flag, n)
	}
	return k, nil
}

// defaultName is hostname-port, unique per port on one machine; empty (a
// random name from bcache) when either is unknown.
func defaultName(bind string) string {
	host, _ := os.Hostname()
	_, port, err := net.SplitHostPort(bind)
	if host == "" || err != nil || port == "0" {
		return ""
	}
	return host + "-" + port
}

// nameOf returns c's member name, the one bcache drew if none was given.
func nameOf(c *bcache.Cache) string {
	for _, m := range c.Members() {
		if m.Addr == c.Addr() {
			return m.Name
		}
	}
	return ""
}

// run is the whole command; it returns the exit status.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		fmt.Fprintln(stderr, "node:", err)
		return 2
	}
	log := zerolog.New(stderr).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	opts.cfg.Logger = log
	l, err := listenHTTP(opts.httpAddr)
	if err != nil {
		log.Error().Err(err).Msg("http listen")
		return 1
	}
	ln := limitConns(l, opts.maxConns)
	c, err := bcache.New(opts.cfg)
	if err != nil {
		ln.Close()
		if errors.Is(err, bcache.ErrConfig) {
			// Named by the flag that set the field: "BindAddr: ..." left
			// the user of -bind to guess.
			log.Error().Err(err).Str("flag", opts.flagOf(err)).Msg("start")
			return 2
		}
		log.Error().Err(err).Msg("start")
		return 1
	}
	log = log.With().Str("node", nameOf(c)).Logger() // the Cache adds it to its own lines
	log.Info().Str("gossip", c.Addr()).Msg("gossip listening")
	log.Info().Str("http", ln.Addr().String()).Msg("http listening")
	h := newHandler(c, c.Config().MaxValueSize, log)
	defer h.flushLogs() // after the Cache's Close, which requests still running may wait for
	status := serve(ctx, log, ln, newServer(h, defaultHTTPTimeouts()))
	if err := c.Close(); err != nil {
		// Its final snapshot, most likely: writes since the last one may
		// be lost, which a supervisor should hear of.
		log.Error().Err(err).Msg("close")
		return 1
	}
	return status
}

// configFlags names the flag that sets each Config field the node sets.
var configFlags = map[string]string{
	"NodeName": "-name", "BindAddr": "-bind", "AdvertiseAddr": "-advertise", "Peers": "-peers",
	"SecretKey": "-key", "AcceptKeys": "-accept-keys", "MaxKeys": "-max-keys", "MaxBytes": "-max-bytes",
	"MaxValueSize": "-max-value", "SubscriptionBytes": "-watch-bytes", "SnapshotPath": "-snapshot",
	"SnapshotInterval": "-snapshot-interval", "Sync": "-sync", "SyncEvery": "-sync-interval",
	"OnDamage": "-on-damage", "Timings": "-fast", "Clock": "-clock-offset", "PacketSize": "-packet-size",
}

// flagOf returns the flag behind a bcache.ErrConfig error, which names
// its field after "invalid config: "; empty if none. A field read from a
// file is named by its file flag (a key that bcache.New refused named
// -accept-keys, which the operator had not passed: found by review).
func (o options) flagOf(err error) string {
	_, rest, ok := strings.Cut(err.Error(), bcache.ErrConfig.Error()+": ")
	if !ok {
		return ""
	}
	field, _, _ := strings.Cut(rest, ":")
	if f, ok := o.fileFlags[field]; ok {
		return f
	}
	return configFlags[field]
}

// listenHTTP listens on addr, a TCP address or "unix:" and a socket's
// path. A socket file that refuses connections, no process listening on
// it (left by a process killed with SIGKILL), is removed first: it made
// every restart fail, "address already in use" (found by review). One a
// process listens on is left, also when it cannot take a connection now
// (its backlog full: a process stopped or overloaded); so is anything
// else at the path. Two nodes started at once on one stale path may
// both remove it: give each node its own.
func listenHTTP(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	if path == "" {
		return nil, errors.New("-http unix: needs a socket's path")
	}
	if info, err := os.Lstat(path); err == nil && info.Mode()&os.ModeSocket != 0 {
		c, err := net.Dial("unix", path)
		switch {
		case err == nil:
			c.Close()
		case errors.Is(err, syscall.ECONNREFUSED):
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("remove the stale socket %s: %w", path, err)
			}
		}
	}
	return net.Listen("unix", path)
}
