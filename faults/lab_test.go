package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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
}

// labs numbers the labs of this process, for unique namespace names.
var labs atomic.Int32

// needLab skips the test unless it can build a lab: root and the ip
// command, on Linux.
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
}

// newLab builds the network of n members and the node binary; it starts
// no process.
func newLab(t testing.TB, n int) *lab {
	t.Helper()
	needLab(t)
	l := &lab{t: t, id: fmt.Sprintf("bcf%d-%d", os.Getpid()%100000, labs.Add(1)), bin: nodeBinary(t)}
	dir, err := os.MkdirTemp("", "bcache-faults-"+l.id+"-")
	if err != nil {
		t.Fatal(err)
	}
	l.dir = dir
	t.Cleanup(func() { // kept when the test fails: the members' logs, the verdict's details
		if !t.Failed() && !*keep {
			os.RemoveAll(dir)
		}
	})
	_, err = exec.LookPath("nft")
	l.nft = err == nil
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
		dir, err := os.MkdirTemp("", "bcache-faults-")
		if err != nil {
			binErr = err
			return
		}
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

// TestMain removes the node binary when the tests are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
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
		os.Remove(m.snap)
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
	m.cmd = exec.Command("ip", args...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", m.name, err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); logf.Close(); close(done) }(m.cmd, m.done)
	m.paused = false
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

// set writes key on m; nil means acknowledged.
func (m *member) set(key, value string) error {
	code, b, err := m.do(http.MethodPut, "/v1/keys/"+key, []byte(value))
	if err == nil && code != http.StatusNoContent {
		err = fmt.Errorf("PUT %s on %s: %d %s", key, m.name, code, b)
	}
	return err
}

// del deletes key on m; nil means acknowledged.
func (m *member) del(key string) error {
	code, b, err := m.do(http.MethodDelete, "/v1/keys/"+key, nil)
	if err == nil && code != http.StatusNoContent {
		err = fmt.Errorf("DELETE %s on %s: %d %s", key, m.name, code, b)
	}
	return err
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
