package bcache

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// TestKeyRotationUnderLoad changes a 3-member cluster's key from k1 to k2
// in the three steps the README gives, restarting one member at a time
// (from its snapshot) at every step, while writes go on through the
// members that are up: the members keep meeting, and every write that
// returned is on every member at the end.
func TestKeyRotationUnderLoad(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 32)
	dir := t.TempDir()
	var addrs []string
	for range 3 {
		addrs = append(addrs, "127.0.0.1:"+freeTCPUDPPort(t))
	}
	config := func(i int, key []byte, accept ...[]byte) Config {
		var peers []string
		for j, a := range addrs {
			if j != i {
				peers = append(peers, a)
			}
		}
		return Config{NodeName: fmt.Sprint("m", i), BindAddr: addrs[i], Peers: peers, Timings: FastTimings(),
			SecretKey: key, AcceptKeys: accept, SnapshotPath: filepath.Join(dir, fmt.Sprint("m", i)),
			SnapshotInterval: -1, AntiEntropyInterval: 100 * time.Millisecond}
	}

	var mu sync.Mutex
	members := make([]*Cache, 3)
	for i := range members {
		members[i] = mustNew(t, config(i, k1))
	}
	defer func() {
		for _, c := range members {
			c.Close()
		}
	}()
	waitMet := func(step string) {
		for _, c := range members {
			await.Until(t, 20*time.Second, func() bool { return len(c.Members()) == 3 },
				"%s: %s sees %d members", step, c.Name(), len(c.Members()))
		}
	}
	waitMet("start")

	stop := make(chan struct{})
	var acked []string
	var writer sync.WaitGroup
	writer.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			c := members[n%3]
			mu.Unlock()
			key := "w" + strconv.Itoa(n)
			if err := c.Set(key, []byte(key), 0); err == nil {
				acked = append(acked, key)
			} else if !errors.Is(err, ErrClosed) {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	})

	for _, step := range []struct {
		name   string
		key    []byte
		accept [][]byte
	}{
		{"1: accept k2", k1, [][]byte{k2}},
		{"2: encrypt with k2, accept k1", k2, [][]byte{k1}},
		{"3: k2 alone", k2, nil},
	} {
		for i := range members {
			mu.Lock()
			old := members[i]
			mu.Unlock()
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			c := mustNew(t, config(i, step.key, step.accept...))
			mu.Lock()
			members[i] = c
			mu.Unlock()
			waitMet(fmt.Sprintf("step %s, m%d restarted", step.name, i))
		}
	}
	close(stop)
	writer.Wait()
	if len(acked) < 100 {
		t.Fatalf("only %d writes went through", len(acked))
	}
	for _, c := range members {
		await.Until(t, 20*time.Second, func() bool {
			for _, k := range acked {
				if _, ok := c.Get(k); !ok {
					return false
				}
			}
			return true
		}, "%s lacks acknowledged writes", c.Name())
	}
	t.Logf("%d writes acknowledged during the rotation, all on every member", len(acked))
	// The old key is out: a member that knows only k1 is refused.
	old := mustNew(t, Config{NodeName: "old", BindAddr: "127.0.0.1:0", Timings: FastTimings(), SecretKey: k1, Peers: addrs[:1]})
	defer old.Close()
	await.Until(t, 10*time.Second, func() bool { return len(old.Status().Joining) > 0 }, "a member with the old key never failed to join")
	if cause := old.Status().Joining[0].Cause; cause != "wrong key" || len(old.Members()) != 1 {
		t.Fatalf("a member with the old key: join failure %q, %d members", cause, len(old.Members()))
	}
}

// TestSkippedRotationStepSplitsTheCluster: a member that goes from k1
// straight to k2 (steps skipped) cannot reach members that know only k1:
// the steps are needed; a member of step 1 (k1, accepting k2) can.
func TestSkippedRotationStepSplitsTheCluster(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 32)
	a := mustNew(t, Config{NodeName: "a", BindAddr: "127.0.0.1:0", Timings: FastTimings(), SecretKey: k1})
	defer a.Close()
	b := mustNew(t, Config{NodeName: "b", BindAddr: "127.0.0.1:0", Timings: FastTimings(), SecretKey: k2, Peers: []string{a.Addr()}})
	defer b.Close()
	await.Until(t, 10*time.Second, func() bool { return len(b.Status().Joining) > 0 }, "b never reported a failed join")
	if len(a.Members()) != 1 || len(b.Members()) != 1 {
		t.Fatalf("members met across keys: %d, %d", len(a.Members()), len(b.Members()))
	}
	if cause := b.Status().Joining[0].Cause; cause != "wrong key" {
		t.Fatalf("join failure cause %q, want wrong key", cause)
	}
	// Step 1's member (k1, accepting k2) meets a member that knows only k1.
	c := mustNew(t, Config{NodeName: "c", BindAddr: "127.0.0.1:0", Timings: FastTimings(), SecretKey: k1, AcceptKeys: [][]byte{k2},
		Peers: []string{a.Addr()}})
	defer c.Close()
	await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 2 }, "a member accepting k2 never met one using k1 alone")
}

// TestMemberWithAStaleKeyIsRefused: during a rotation (members on k2,
// accepting k1), a member restarted with k1 alone is refused by the
// others, who say so (Status: "wrong key", Stats: KeyRefusals), as it
// reports them. Its frames decrypt, so they listed it alive though it
// read nothing they sent: probed, declared dead, back at every re-join, a
// phantom that a cluster-wide fill picked as the owner of its share of
// the keys and waited for (found by review). A member that skipped a step
// (k2 alone, among members on k1 accepting k2) is refused alike.
func TestMemberWithAStaleKeyIsRefused(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 32)
	for _, tc := range []struct {
		name          string
		key, accepted []byte // the cluster's
		stale         []byte
	}{
		{"old key", k2, k1, k1},
		{"a step skipped", k1, k2, k2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mustNew(t, Config{NodeName: "a", BindAddr: "127.0.0.1:0", Timings: FastTimings(), SecretKey: tc.key, AcceptKeys: [][]byte{tc.accepted}})
			defer a.Close()
			b := mustNew(t, Config{NodeName: "b", BindAddr: "127.0.0.1:0", Timings: FastTimings(), SecretKey: tc.key, AcceptKeys: [][]byte{tc.accepted},
				Peers: []string{a.Addr()}})
			defer b.Close()
			await.Until(t, 10*time.Second, func() bool { return len(a.Members()) == 2 }, "a and b never met")
			stale := mustNew(t, Config{NodeName: "stale", BindAddr: "127.0.0.1:0", Timings: FastTimings(), SecretKey: tc.stale,
				Peers: []string{a.Addr()}})
			defer stale.Close()
			// Until a has refused it a few times (it comes back at every
			// re-join), a never lists it.
			await.Until(t, 20*time.Second, func() bool {
				for _, c := range []*Cache{a, b} {
					for _, m := range c.Members() {
						if m.Name == "stale" {
							t.Fatalf("%s lists the member with other keys as alive", c.Name())
						}
					}
				}
				return a.Stats().Replication.KeyRefusals >= 3
			}, "a refused the member with other keys %d times", a.Stats().Replication.KeyRefusals)
			if !slices.ContainsFunc(a.Status().Joining, func(f JoinFailure) bool { return f.Cause == "wrong key" && f.Addr == stale.Addr() }) {
				t.Fatalf("a does not report the member it refused: %+v", a.Status().Joining)
			}
		})
	}
}

// TestMemberBackWithTheRightKeyLeavesJoining: a member refused for its
// keys, restarted at its address with the cluster's key, is taken, and
// its address leaves the refusing member's Status.Joining as it does: it
// stayed there, "wrong key", for a minute after it came back right
// (found by review).
func TestMemberBackWithTheRightKeyLeavesJoining(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16)
	a := mustNew(t, Config{NodeName: "a", BindAddr: "127.0.0.1:0", Timings: FastTimings(), SecretKey: k1, AcceptKeys: [][]byte{k2}})
	defer a.Close()
	at := "127.0.0.1:" + freeTCPUDPPort(t)
	refusedAt := func() bool {
		return slices.ContainsFunc(a.Status().Joining, func(f JoinFailure) bool { return f.Addr == at })
	}
	// The next key alone, a key rotation's step skipped: a opens its
	// frames (it accepts k2), it does not open a's, and a refuses it for
	// the keys its metadata names.
	stale := mustNew(t, Config{NodeName: "m", BindAddr: at, Timings: FastTimings(), SecretKey: k2, Peers: []string{a.Addr()}})
	defer stale.Close() // closed below; this for a failure before
	await.Until(t, 20*time.Second, refusedAt, "a never listed the member with other keys: %v", func() any { return a.Status().Joining })
	if err := stale.Close(); err != nil {
		t.Fatal(err)
	}
	back := mustNew(t, Config{NodeName: "m", BindAddr: at, Timings: FastTimings(), SecretKey: k1, Peers: []string{a.Addr()}})
	defer back.Close()
	await.Until(t, 20*time.Second, func() bool { return len(a.Members()) == 2 }, "a never took the member back with its key")
	// Taken and its refusal forgotten in one hold of a's lock: no wait.
	if refusedAt() {
		t.Fatalf("a lists the member it took as refused: %+v", a.Status().Joining)
	}
}

// freeTCPUDPPort returns a port free on 127.0.0.1 for both TCP and UDP,
// below the kernel's ephemeral range. The members bind it again at every
// restart; a port of that range (where ":0" binds and outgoing
// connections land) was taken in between by another test process in one
// run of the whole suite ("bind: address already in use"). Below it, only
// a fixed bind can take it.
func freeTCPUDPPort(t *testing.T) string {
	t.Helper()
	low := 32768 // Linux's default start of the ephemeral range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11_000 {
				low = n
			}
		}
	}
	for range 100 {
		port := strconv.Itoa(10_000 + rand.IntN(low-10_000))
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+port)
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return ""
}
