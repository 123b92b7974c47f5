//go:build linux

package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// A lab is n members in network namespaces of their own, each with one
// veth whose other end is a port of a bridge in a further namespace. A
// partition moves ports between bridges of that namespace; packet loss is
// an nftables table in a member's namespace; nothing is set up in the
// host's namespace, and everything is removed when the test ends.
type lab struct {
	t       testing.TB
	id      string // prefix of the namespaces' names
	dir     string
	bin     string
	nft     bool
	bridges string // the bridges' namespace
	members []*member
	// seen is every read of a key the lab made of a member (by read), in
	// order: what the members served during the run, judged with the
	// history (history.judgeReads).
	seenMu sync.Mutex
	seen   []seen
}

type member struct {
	l      *lab
	i      int
	name   string
	ns     string
	ip     string
	sock   string
	snap   string
	offset time.Duration
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	client *http.Client
	paused bool
	life   atomic.Int32 // the member's process, counted from 1 at each start
}

// labs numbers the labs of this process, for unique namespace names.
var labs atomic.Int32

// nsPattern matches the names of this package's namespaces: bcf, the pid
// of the test process that made it, then its lab's number or "probe".
var nsPattern = regexp.MustCompile(`^bcf([0-9]+)-`)

var probe struct {
	once    sync.Once
	err     error
	removed []string
}

// needLab skips the test unless it can build a lab: root, the ip command,
// and the right to create network namespaces (root in a container
// without CAP_SYS_ADMIN has not), found by making one; on Linux. The
// first call also removes the namespaces of this package that a test
// process now dead left (one killed before it could remove them).
func needLab(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the fault suite needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the fault suite needs the ip command (iproute2)")
	}
	if testing.Short() {
		t.Skip("the fault suite runs real processes for minutes; -short skips it")
	}
	probe.once.Do(func() {
		name := fmt.Sprintf("bcf%d-probe", os.Getpid())
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			probe.err = fmt.Errorf("ip netns add %s: %v: %s", name, err, bytes.TrimSpace(out))
			return
		}
		exec.Command("ip", "netns", "del", name).Run()
		probe.removed = sweep(func(pid int) bool { return pid != os.Getpid() && !alive(pid) })
	})
	if probe.err != nil {
		t.Skipf("the fault suite cannot create network namespaces here: %v", probe.err)
	}
	if len(probe.removed) > 0 {
		t.Logf("removed namespaces left by test processes now dead: %s", strings.Join(probe.removed, " "))
		probe.removed = nil
	}
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	return syscall.Kill(pid, 0) != syscall.ESRCH
}

// sweep removes this package's namespaces made by the processes whose pid
// remove accepts, killing any process still in them first, and returns
// their names.
func sweep(remove func(pid int) bool) []string {
	out, _ := exec.Command("ip", "netns", "list").Output()
	var removed []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := nsPattern.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		if pid, err := strconv.Atoi(m[1]); err != nil || !remove(pid) {
			continue
		}
		pids, _ := exec.Command("ip", "netns", "pids", f[0]).Output()
		for _, p := range strings.Fields(string(pids)) {
			if pid, err := strconv.Atoi(p); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		// A namespace goes with its last process; its name (a mount) is
		// removed at once.
		exec.Command("ip", "netns", "del", f[0]).Run()
		removed = append(removed, f[0])
	}
	return removed
}

// openLabs are the labs not closed yet, closed by TestMain on SIGINT or
// SIGTERM.
var openLabs struct {
	sync.Mutex
	labs map[*lab]bool
}

// newLab builds the network of n members and the node binary; it starts
// no process.
func newLab(t testing.TB, n int) *lab {
	t.Helper()
	needLab(t)
	if err := startJanitor(); err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, id: fmt.Sprintf("bcf%d-%d", os.Getpid(), labs.Add(1)), bin: nodeBinary(t)}
	dir, err := os.MkdirTemp("", "bcache-faults-"+l.id+"-")
	if err != nil {
		t.Fatal(err)
	}
	l.dir = dir
	if !*keep {
		tellJanitor("dir", dir)
	}
	t.Cleanup(func() { // kept when the test fails: the members' logs, the verdict's details
		if !t.Failed() && !*keep {
			os.RemoveAll(dir)
		}
		tellJanitor("done", dir)
	})
	_, err = exec.LookPath("nft")
	l.nft = err == nil
	openLabs.Lock()
	if openLabs.labs == nil {
		openLabs.labs = map[*lab]bool{}
	}
	openLabs.labs[l] = true
	openLabs.Unlock()
	t.Cleanup(l.close)
	l.bridges = l.id + "-br"
	l.ip("netns", "add", l.bridges)
	for g := range n {
		l.ip("-n", l.bridges, "link", "add", fmt.Sprint("br", g), "type", "bridge")
		l.ip("-n", l.bridges, "link", "set", fmt.Sprint("br", g), "up")
	}
	for i := range n {
		m := &member{
			l: l, i: i, name: fmt.Sprint("n", i), ns: fmt.Sprintf("%s-n%d", l.id, i),
			ip:   fmt.Sprintf("10.213.0.%d", i+1),
			sock: filepath.Join(l.dir, fmt.Sprintf("n%d.sock", i)),
			snap: filepath.Join(l.dir, fmt.Sprintf("n%d.snap", i)),
		}
		m.client = &http.Client{
			Timeout: 2 * time.Second,
			Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", m.sock)
			}},
		}
		l.members = append(l.members, m)
		l.ip("netns", "add", m.ns)
		l.ip("link", "add", "v0", "netns", m.ns, "type", "veth", "peer", "name", fmt.Sprint("p", i), "netns", l.bridges)
		l.ip("-n", l.bridges, "link", "set", fmt.Sprint("p", i), "master", "br0", "up")
		l.ip("-n", m.ns, "addr", "add", m.ip+"/24", "dev", "v0")
		l.ip("-n", m.ns, "link", "set", "v0", "up")
		l.ip("-n", m.ns, "link", "set", "lo", "up")
	}
	return l
}

// ip runs the ip command and fails the test if it fails.
func (l *lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// close kills every process and removes every namespace.
func (l *lab) close() {
	openLabs.Lock()
	delete(openLabs.labs, l)
	openLabs.Unlock()
	l.close1()
}

// close1 is close, for a caller holding openLabs.
func (l *lab) close1() {
	for _, m := range l.members {
		m.kill()
	}
	for _, m := range l.members {
		exec.Command("ip", "netns", "del", m.ns).Run()
	}
	exec.Command("ip", "netns", "del", l.bridges).Run()
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// nodeBinary builds examples/node once per test process.
func nodeBinary(t testing.TB) string {
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", fmt.Sprintf("bcache-faults-node%d-", os.Getpid()))
		if err != nil {
			binErr = err
			return
		}
		tellJanitor("dir", dir)
		binPath = filepath.Join(dir, "node")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/bcache-go/bcache/examples/node").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build examples/node: %v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// A test process can end without running its cleanups: go test -timeout
// panics in a goroutine of its own, as does any panic outside a test's
// goroutine, and SIGKILL ends it outright. Each member's process gets
// SIGKILL when the test process ends (Pdeathsig; strictly when the OS
// thread that started it ends, which Go does only for a goroutine that
// exits locked to its thread, which these tests never do), but network
// namespaces and directories outlive it. So the first lab starts a
// janitor: this test binary again, in a process group of its own (a
// Ctrl-C on the terminal does not reach it), reading a pipe whose other
// end only this process holds. The janitor learns the directories to
// remove and those no longer its business; at the pipe's end (this
// process has ended, however) it kills whatever runs in this process's
// namespaces, removes them and the directories it still holds. On SIGINT
// and SIGTERM, TestMain closes the labs itself.

// janitorEnv names the pid whose labs a janitor cleans up after.
const janitorEnv = "BCACHE_FAULTS_JANITOR_OF"

var janitor struct {
	once sync.Once
	err  error
	mu   sync.Mutex
	w    *os.File
}

// startJanitor starts this process's janitor, once.
func startJanitor() error {
	janitor.once.Do(func() {
		r, w, err := os.Pipe()
		if err != nil {
			janitor.err = err
			return
		}
		defer r.Close()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", janitorEnv, os.Getpid()))
		cmd.Stdin = r
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			w.Close()
			janitor.err = fmt.Errorf("starting the janitor: %v", err)
			return
		}
		go cmd.Wait() // it outlives this process, unless something kills it
		janitor.w = w
	})
	return janitor.err
}

// tellJanitor tells the janitor to remove dir at the end ("dir") or that
// it is none of its business now ("done").
func tellJanitor(what, dir string) {
	janitor.mu.Lock()
	defer janitor.mu.Unlock()
	if janitor.w != nil {
		fmt.Fprintf(janitor.w, "%s %s\n", what, dir)
	}
}

// janitorMain is the janitor's life: it returns when the process it
// cleans up after has ended.
func janitorMain(of string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	pid, err := strconv.Atoi(of)
	if err != nil {
		return 2
	}
	dirs := map[string]bool{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		what, dir, _ := strings.Cut(sc.Text(), " ")
		dirs[dir] = what == "dir"
	}
	sweep(func(p int) bool { return p == pid })
	for dir, remove := range dirs {
		if remove {
			os.RemoveAll(dir)
		}
	}
	return 0
}

// TestMain is the janitor when asked to be; otherwise it runs the tests,
// closes the labs on SIGINT or SIGTERM, and removes the node binary.
func TestMain(m *testing.M) {
	if of := os.Getenv(janitorEnv); of != "" {
		os.Exit(janitorMain(of))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		openLabs.Lock()
		for l := range openLabs.labs {
			l.close1()
			if !*keep {
				os.RemoveAll(l.dir)
			}
		}
		if binPath != "" {
			os.RemoveAll(filepath.Dir(binPath))
		}
		fmt.Fprintf(os.Stderr, "faults: %v: labs closed\n", s)
		os.Exit(1)
	}()
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
		tellJanitor("done", filepath.Dir(binPath))
	}
	os.Exit(code)
}

// suspicions counts the times m's memberlist suspected a peer, over every
// run of m's process in this lab (its log).
func (m *member) suspicions() int {
	b, _ := os.ReadFile(filepath.Join(m.l.dir, m.name+".log"))
	return bytes.Count(b, []byte(`"message":"Suspect `))
}

// start starts member m's process (again, after a kill: from its
// snapshot if snapshot) and waits until its HTTP socket answers.
func (m *member) start(snapshot bool) {
	l := m.l
	l.t.Helper()
	var peers []string
	for _, o := range l.members {
		if o != m {
			peers = append(peers, o.ip+":7946")
		}
	}
	if !snapshot {
		// The snapshot and everything bcache keeps beside it: a members
		// file (.members) naming a snapshot that is gone is damage, and
		// New refused to start; the founder mark, the write log.
		others, _ := filepath.Glob(m.snap + ".*")
		for _, f := range append(others, m.snap) {
			os.Remove(f)
		}
	}
	os.Remove(m.sock)
	args := []string{"netns", "exec", m.ns, l.bin, "-name", m.name, "-bind", m.ip + ":7946",
		"-http", "unix:" + m.sock, "-peers", strings.Join(peers, ","),
		"-snapshot", m.snap, "-snapshot-interval", "500ms"}
	if m.offset != 0 {
		args = append(args, "-clock-offset", m.offset.String())
	}
	logf, err := os.OpenFile(filepath.Join(l.dir, m.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	m.cmd = exec.Command("ip", args...) // ip execs the node in the namespace: the process is the node's
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	// Killed when this process ends, however (see TestMain).
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", m.name, err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); logf.Close(); close(done) }(m.cmd, m.done)
	m.paused = false
	m.life.Add(1)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := m.members(); err == nil {
			return
		}
		select {
		case <-m.done:
			l.t.Fatalf("%s exited at start; see %s", m.name, filepath.Join(l.dir, m.name+".log"))
		case <-time.After(20 * time.Millisecond): // polling a socket that will exist
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s did not answer on %s", m.name, m.sock)
		}
	}
}

// kill sends SIGKILL and waits for the process to go.
func (m *member) kill() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	if m.paused {
		m.cmd.Process.Signal(syscall.SIGCONT)
	}
	m.cmd.Process.Kill()
	<-m.done
	m.cmd = nil
}

// pause sends SIGSTOP, resume SIGCONT.
func (m *member) pause() { m.cmd.Process.Signal(syscall.SIGSTOP); m.paused = true }

func (m *member) resume() { m.cmd.Process.Signal(syscall.SIGCONT); m.paused = false }

// partition puts the members of each group on a bridge of their own;
// members in no group stay on the first.
func (l *lab) partition(groups ...[]int) {
	l.t.Helper()
	for g, group := range groups {
		for _, i := range group {
			l.ip("-n", l.bridges, "link", "set", fmt.Sprint("p", i), "master", fmt.Sprint("br", g))
		}
	}
}

// heal puts every member back on the first bridge.
func (l *lab) heal() {
	l.t.Helper()
	for i := range l.members {
		l.ip("-n", l.bridges, "link", "set", fmt.Sprint("p", i), "master", "br0")
	}
}

// loss drops pct percent of the packets each member receives (nftables
// numgen random, on the input hook: a drop on the output hook is an error
// to the sender, EPERM, not a loss it must find out about), 0 to stop:
// every direction between two members loses pct percent. It reports
// false, doing nothing, without nft.
func (l *lab) loss(pct int) bool {
	l.t.Helper()
	if !l.nft {
		return false
	}
	for _, m := range l.members {
		exec.Command("ip", "netns", "exec", m.ns, "nft", "delete", "table", "inet", "faults").Run()
		if pct == 0 {
			continue
		}
		rules := fmt.Sprintf(`table inet faults {
	chain in { type filter hook input priority 0; policy accept; iifname "v0" numgen random mod 100 < %d drop; }
}
`, pct)
		cmd := exec.Command("ip", "netns", "exec", m.ns, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			l.t.Fatalf("nft in %s: %v: %s", m.ns, err, out)
		}
	}
	return true
}

// The member's HTTP API.

func (m *member) do(method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://member"+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// set writes key on m and returns the write's version; a nil error means
// acknowledged.
func (m *member) set(key, value string) (crdt.Timestamp, error) {
	return m.write(http.MethodPut, key, []byte(value))
}

// del deletes key on m and returns the delete's version; a nil error
// means acknowledged.
func (m *member) del(key string) (crdt.Timestamp, error) {
	return m.write(http.MethodDelete, key, nil)
}

// write sends a PUT or DELETE and decodes the version in its answer's
// Bcache-Token header: an answer without one is not an acknowledgement.
func (m *member) write(method, key string, body []byte) (crdt.Timestamp, error) {
	req, err := http.NewRequest(method, "http://member/v1/keys/"+key, bytes.NewReader(body))
	if err != nil {
		return crdt.Timestamp{}, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return crdt.Timestamp{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		return crdt.Timestamp{}, fmt.Errorf("%s %s on %s: %d %s", method, key, m.name, resp.StatusCode, b)
	}
	ver, err := tokenVersion(key, resp.Header.Get("Bcache-Token"))
	if err != nil {
		return crdt.Timestamp{}, fmt.Errorf("%s %s on %s: %w", method, key, m.name, err)
	}
	return ver, nil
}

// tokenVersion decodes the version a write's token names, as bcache's
// Token.parse does (token.go): unpadded URL base64 of the version's wall
// time (varint), logical counter and node id (uvarints), then four bytes
// of the key's hash, checked against key.
func tokenVersion(key, tok string) (crdt.Timestamp, error) {
	bad := func(why string) (crdt.Timestamp, error) {
		return crdt.Timestamp{}, fmt.Errorf("token %q: %s", tok, why)
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if tok == "" || err != nil {
		return bad("not base64")
	}
	var ts crdt.Timestamp
	var n int
	if ts.Wall, n = binary.Varint(b); n <= 0 {
		return bad("no wall time")
	}
	b = b[n:]
	logical, n := binary.Uvarint(b)
	if n <= 0 || logical > 1<<32-1 {
		return bad("no logical counter")
	}
	b = b[n:]
	node, n := binary.Uvarint(b)
	if n <= 0 || len(b[n:]) != 4 {
		return bad("no node id")
	}
	if binary.LittleEndian.Uint32(b[n:]) != uint32(crdt.HashKey(key)) {
		return bad("made for another key")
	}
	ts.Logical, ts.Node = uint32(logical), crdt.NodeID(node)
	return ts, nil
}

// get reads key on m.
func (m *member) get(key string) (value string, ok bool, err error) {
	code, b, err := m.do(http.MethodGet, "/v1/keys/"+key, nil)
	switch {
	case err != nil:
		return "", false, err
	case code == http.StatusNotFound:
		return "", false, nil
	case code != http.StatusOK:
		return "", false, fmt.Errorf("GET %s on %s: %d %s", key, m.name, code, b)
	}
	return string(b), true, nil
}

// members returns how many members m sees.
func (m *member) members() (int, error) {
	code, b, err := m.do(http.MethodGet, "/v1/members", nil)
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("members: %d", code)
	}
	return bytes.Count(b, []byte(`"name"`)), nil
}

// stats returns m's /v1/stats body.
func (m *member) stats() string {
	_, b, _ := m.do(http.MethodGet, "/v1/stats", nil)
	return string(b)
}

// waitMembers waits until each of ms sees n members.
func (l *lab) waitMembers(n int, timeout time.Duration, ms ...*member) error {
	deadline := time.Now().Add(timeout)
	for _, m := range ms {
		for {
			got, err := m.members()
			if err == nil && got == n {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s sees %d members, want %d (%v)", m.name, got, n, err)
			}
			time.Sleep(50 * time.Millisecond) // polling another process's view
		}
	}
	return nil
}

var errPaused = errors.New("paused")
