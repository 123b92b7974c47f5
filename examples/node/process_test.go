//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// proc is a node process.
type proc struct {
	name, gossip, http string
	cmd                *exec.Cmd
	log                *syncBuffer
	exited             chan struct{} // closed when cmd.Wait returned, with err set
	err                error
}

// syncBuffer collects a process's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// buildNode builds the command into a temporary directory.
func buildNode(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	bin := filepath.Join(t.TempDir(), "node")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freePort returns a port free on 127.0.0.1 for TCP and, with udp, for UDP
// too. Someone may take it before it is used: callers retry.
func freePort(t *testing.T, udp bool) string {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ok := true
		if udp {
			pc, err := net.ListenPacket("udp", ln.Addr().String())
			if ok = err == nil; ok {
				pc.Close()
			}
		}
		ln.Close()
		if ok {
			return strconv.Itoa(port)
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return ""
}

// startNode starts a node on free ports and waits until it serves HTTP,
// retrying with other ports if it fails to start. The process is killed at
// the end of the test if it still runs.
func startNode(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	var last string
	for range 3 {
		p := launch(t, bin, name, nil, args...)
		if p.waitReady(5 * time.Second) {
			return p
		}
		last = p.log.String()
	}
	t.Fatalf("%s never started; last stderr:\n%s", name, last)
	return nil
}

// launch starts a node on free ports, its stderr to stderr (to its log
// if nil), and kills it at the end of the test if it still runs.
func launch(t *testing.T, bin, name string, stderr io.Writer, args ...string) *proc {
	t.Helper()
	p := &proc{
		name:   name,
		gossip: "127.0.0.1:" + freePort(t, true),
		http:   "127.0.0.1:" + freePort(t, false),
		log:    &syncBuffer{},
		exited: make(chan struct{}),
	}
	p.cmd = exec.Command(bin, append([]string{"-fast", "-name", name, "-bind", p.gossip, "-http", p.http}, args...)...)
	p.cmd.Stderr = p.log
	if stderr != nil {
		p.cmd.Stderr = stderr
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", p.name, p.log)
		}
	})
	return p
}

// waitReady waits until p answers HTTP; false if it exited or the timeout
// passed.
func (p *proc) waitReady(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return false
		default:
		}
		if resp, err := http.Get(p.url("/v1/members")); err == nil {
			resp.Body.Close()
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func (p *proc) url(path string) string { return "http://" + p.http + path }

// members returns the number of members p sees, -1 on an error.
func (p *proc) members() int {
	resp, err := http.Get(p.url("/v1/members"))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var ms []member
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&ms) != nil {
		return -1
	}
	return len(ms)
}

// stop sends SIGTERM and fails unless p exits 0 within a few seconds.
func (p *proc) stop(t *testing.T) { p.stopWith(t, syscall.SIGTERM) }

// stopWith is stop with another signal.
func (p *proc) stopWith(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: %v: %v", p.name, sig, err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("%s: exit after %v: %v", p.name, sig, p.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: still running 5s after %v", p.name, sig)
	}
}

// get returns the status and body of a GET.
func get(p *proc, path string) (int, string) {
	resp, err := http.Get(p.url(path))
	if err != nil {
		return -1, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// send makes a request (PUT or DELETE) with body to path, and fails the
// test unless it is taken (204).
func send(t *testing.T, p *proc, method, path, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, p.url(path), strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

func TestProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the command")
	}
	bin := buildNode(t)

	t.Run("bad key", func(t *testing.T) {
		for _, key := range []string{"xyz", "00112233"} {
			out, err := exec.Command(bin, "-key", key, "-bind", "127.0.0.1:0", "-http", "127.0.0.1:0").CombinedOutput()
			if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 2 {
				t.Fatalf("-key %s: %v, want exit status 2\n%s", key, err, out)
			}
			if !strings.Contains(string(out), "-key") {
				t.Fatalf("-key %s: message does not name the flag: %s", key, out)
			}
		}
	})

	t.Run("three nodes", func(t *testing.T) {
		key := "000102030405060708090a0b0c0d0e0f"
		first := startNode(t, bin, "n0", "-key", key)
		ps := []*proc{first}
		for i := 1; i < 3; i++ {
			ps = append(ps, startNode(t, bin, fmt.Sprintf("n%d", i), "-key", key, "-peers", first.gossip))
		}
		for _, p := range ps {
			await.Until(t, 5*time.Second, func() bool { return p.members() == 3 }, "%s never saw 3 members", p.name)
		}

		send(t, ps[0], "PUT", "/v1/keys/greeting", "hello")
		for _, p := range ps[1:] {
			await.Until(t, 5*time.Second, func() bool {
				status, body := get(p, "/v1/keys/greeting")
				return status == http.StatusOK && body == "hello"
			}, "%s never read the value", p.name)
		}

		send(t, ps[2], "DELETE", "/v1/keys/greeting", "")
		for _, p := range ps {
			await.Until(t, 5*time.Second, func() bool {
				status, _ := get(p, "/v1/keys/greeting")
				return status == http.StatusNotFound
			}, "%s still holds the deleted value", p.name)
		}

		ps[0].stop(t)
		for _, p := range ps[1:] {
			await.Until(t, 5*time.Second, func() bool { return p.members() == 2 }, "%s never saw 2 members after n0 left", p.name)
		}
		for _, p := range ps[1:] {
			p.stop(t)
		}
	})

	t.Run("restart from a snapshot", func(t *testing.T) {
		snap := filepath.Join(t.TempDir(), "edge.snap")
		edge := startNode(t, bin, "edge", "-snapshot", snap)
		send(t, edge, "PUT", "/v1/keys/kept", "across restarts")
		// SIGHUP (its terminal closed) stops it as SIGTERM does: it ended
		// the process without its last snapshot (found by review).
		edge.stopWith(t, syscall.SIGHUP)
		// Back with a peer that does not answer: it serves its snapshot.
		edge = startNode(t, bin, "edge", "-snapshot", snap, "-peers", "127.0.0.1:"+freePort(t, true))
		if status, body := get(edge, "/v1/keys/kept"); status != http.StatusOK || body != "across restarts" {
			t.Fatalf("after the restart: %d %q, want the value from before", status, body)
		}
		edge.stop(t)
	})

	t.Run("Ctrl-C stops it with its last snapshot", func(t *testing.T) {
		// A test binary run by itself in a script's background job runs
		// with SIGINT ignored, which its children would inherit (go test
		// handles SIGINT, so its test binaries do not): told of it here,
		// this process handles it, and a child starts with the default,
		// as one started from a terminal does.
		interrupts := make(chan os.Signal, 1)
		signal.Notify(interrupts, os.Interrupt)
		defer signal.Stop(interrupts)
		snap := filepath.Join(t.TempDir(), "edge.snap")
		edge := startNode(t, bin, "edge", "-snapshot", snap)
		send(t, edge, "PUT", "/v1/keys/kept", "across Ctrl-C")
		edge.stopWith(t, syscall.SIGINT)
		if !strings.Contains(edge.log.String(), "shutting down") {
			t.Fatalf("stopped by SIGINT without shutting down:\n%s", edge.log.String())
		}
		edge = startNode(t, bin, "edge", "-snapshot", snap)
		if status, body := get(edge, "/v1/keys/kept"); status != http.StatusOK || body != "across Ctrl-C" {
			t.Fatalf("after Ctrl-C and a restart: %d %q, want the value from before", status, body)
		}
		edge.stop(t)
	})

	t.Run("a last snapshot that fails exits 1", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "gone")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		edge := startNode(t, bin, "edge", "-snapshot", filepath.Join(dir, "edge.snap"))
		send(t, edge, "PUT", "/v1/keys/lost", "acknowledged")
		// The snapshot has nowhere to go. The node may write a file there
		// as the directory goes (its founder's mark, once it has looked
		// for peers): then the directory is not empty, and goes at the
		// next try (a flake of CI's).
		var err error
		await.Until(t, 10*time.Second, func() bool { err = os.RemoveAll(dir); return err == nil }, "removing %s: %v", dir, err)
		if err := edge.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		<-edge.exited
		if ee, ok := errors.AsType[*exec.ExitError](edge.err); !ok || ee.ExitCode() != 1 {
			t.Fatalf("exit after a failed last snapshot: %v, want status 1 (it was 0)", edge.err)
		}
	})

	t.Run("kill -9 with -sync write", func(t *testing.T) {
		snap := filepath.Join(t.TempDir(), "edge.snap")
		edge := startNode(t, bin, "edge", "-snapshot", snap, "-sync", "write")
		send(t, edge, "PUT", "/v1/keys/kept", "acknowledged")
		edge.cmd.Process.Signal(syscall.SIGKILL) // no snapshot: the write log holds it
		<-edge.exited
		edge = startNode(t, bin, "edge", "-snapshot", snap, "-sync", "write")
		if status, body := get(edge, "/v1/keys/kept"); status != http.StatusOK || body != "acknowledged" {
			t.Fatalf("after kill -9: %d %q, want the acknowledged write", status, body)
		}
		edge.stop(t)
	})
}

// TestHangupIgnoredStaysIgnored: a node started with SIGHUP ignored (by
// nohup, or a supervisor) keeps running at a SIGHUP (asking to be told of
// it undid the ignoring: found by review), and stops at SIGTERM as ever;
// so does one started with SIGINT ignored (a script's background job).
// A signal that does nothing cannot be awaited: the node is given two
// seconds to stop, and must not.
func TestHangupIgnoredStaysIgnored(t *testing.T) {
	bin := buildNode(t)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT} {
		name := map[syscall.Signal]string{syscall.SIGHUP: "HUP", syscall.SIGINT: "INT"}[sig]
		wrapper := filepath.Join(t.TempDir(), "ignoring-node")
		if err := os.WriteFile(wrapper, []byte("#!/bin/sh\ntrap '' "+name+"\nexec "+bin+" \"$@\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		p := startNode(t, wrapper, "n0")
		if err := p.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.exited:
			t.Fatalf("started with SIG%s ignored, the node stopped at a SIG%s: %v", name, name, p.err)
		case <-time.After(2 * time.Second):
		}
		p.stop(t)
	}
}

// TestLogReaderGoneStopsCleanly: a node whose stderr's reader went away
// (a log shipper restarted, "node 2>&1 | tee" with tee killed) stops at
// SIGTERM as ever, with its last snapshot and exit 0: Go ends a process
// writing to a broken pipe on fd 2 with SIGPIPE, and the "shutting down"
// line did so before the snapshot was written, losing every write since
// the last one.
func TestLogReaderGoneStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the command")
	}
	bin := buildNode(t)
	snap := filepath.Join(t.TempDir(), "edge.snap")
	var p *proc
	for range 3 {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		p = launch(t, bin, "edge", w, "-snapshot", snap)
		w.Close()
		// Read its log until it serves, then go away.
		buf := make([]byte, 64<<10)
		var got []byte
		for !bytes.Contains(got, []byte("http listening")) {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		r.Close()
		if p.waitReady(5 * time.Second) {
			break
		}
		p = nil
	}
	if p == nil {
		t.Fatal("the node never started")
	}
	send(t, p, "PUT", "/v1/keys/kept", "acknowledged")
	p.stop(t)
	p = startNode(t, bin, "edge", "-snapshot", snap)
	if status, body := get(p, "/v1/keys/kept"); status != http.StatusOK || body != "acknowledged" {
		t.Fatalf("after SIGTERM with its log's reader gone: %d %q, want the acknowledged write", status, body)
	}
	p.stop(t)
}
