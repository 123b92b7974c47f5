package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// manifestArgs returns the container args of examples/kubernetes/bcache.yaml,
// with Kubernetes' $(VAR) expanded from vars and the Secret's mount
// directory replaced by dir.
func manifestArgs(t *testing.T, vars map[string]string, dir string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "kubernetes", "bcache.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var args []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "args:":
			in = true
		case in && strings.HasPrefix(line, "- "):
			a := strings.TrimPrefix(line, "- ")
			for k, v := range vars {
				a = strings.ReplaceAll(a, "$("+k+")", v)
			}
			args = append(args, strings.ReplaceAll(a, "/etc/bcache", dir))
		case in && strings.HasPrefix(line, "#"):
		case in:
			in = false
		}
	}
	if len(args) == 0 {
		t.Fatal("no args in bcache.yaml")
	}
	return args
}

// TestKubernetesManifestArgs: the StatefulSet's args parse, on an IPv4
// and on an IPv6 pod (an IPv6 POD_IP pasted before ":7946" is no
// address: bcache.New refused it, ErrConfig, and the pod crash-looped),
// and bound the member's memory, which the manifest's memory limit
// needs (unbounded, a growing cache is OOM-killed, and without a
// snapshot loses everything it held).
func TestKubernetesManifestArgs(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "key"), []byte(strings.Repeat("ab", 16)), 0o400); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"10.1.2.3", "fd00::1:2:3"} {
		args := manifestArgs(t, map[string]string{"POD_NAME": "bcache-0", "POD_IP": ip, "POD_NAMESPACE": "default"}, dir)
		o, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Fatalf("POD_IP %s: %v", ip, err)
		}
		host, port, err := net.SplitHostPort(o.cfg.AdvertiseAddr) // as bcache.New reads it
		if a, perr := netip.ParseAddr(host); err != nil || perr != nil || a.String() != ip || port != "7946" {
			t.Errorf("POD_IP %s: -advertise %q is not that address at 7946 (%v)", ip, o.cfg.AdvertiseAddr, err)
		}
		if o.cfg.MaxBytes <= 0 {
			t.Errorf("POD_IP %s: no -max-bytes: the cache grows past the container's memory limit", ip)
		}
	}
}

// TestKubernetesLivenessIsNotBehindTheConnectionCap: a probe shares the
// listener -max-conns caps; past the cap, its connection waits for one
// to close (limitListener.Accept), and the kubelet's probe (1 s by
// default) times out. A liveness probe there restarts a healthy member,
// empty, whenever clients hold -max-conns connections.
func TestKubernetesLivenessIsNotBehindTheConnectionCap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") })
	srv := newServer(h, defaultHTTPTimeouts())
	go srv.Serve(limitConns(ln, 1))
	t.Cleanup(func() { srv.Close() })
	held, err := net.Dial("tcp", ln.Addr().String()) // a client holding the one slot
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	probe := &http.Client{Timeout: time.Second} // the kubelet's default timeoutSeconds
	if resp, err := probe.Get("http://" + ln.Addr().String() + "/v1/status"); err == nil {
		resp.Body.Close()
		t.Fatal("a probe past the cap was answered: the premise of this test is gone")
	}
	b, err := os.ReadFile(filepath.Join("..", "kubernetes", "bcache.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "livenessProbe:") {
			t.Errorf("bcache.yaml has an HTTP liveness probe on the capped listener: %q", strings.TrimSpace(line))
		}
	}
}
