package bcache

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/rs/zerolog"
)

// TestMemberRestartedWithAnOldKeyUnderItsNameIsRefused: a member restarted
// from its snapshot, under its name and at its address (the others knew it,
// and try it again as a member lost), with an old config: the old key alone
// mid-rotation (every member on k2, accepting k1), or step 2's keys once the
// cluster is on k2 alone (it reads them, they cannot read it). The others stop
// listing it and report it ("wrong key"), it reports them and is alone and
// unready, and the side that decrypts the other's state counts and logs the
// refusal.
func TestMemberRestartedWithAnOldKeyUnderItsNameIsRefused(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 32)
	for _, tc := range []struct {
		name                  string
		key, accept           []byte // the cluster's
		staleKey, staleAccept []byte
		clusterRefuses        bool // the cluster reads the stale member's state, and refuses it
	}{
		{"old key mid-rotation", k2, k1, k1, nil, true},
		{"step 2 after step 3", k2, nil, k1, k2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restartedWithOldKey(t, tc.key, tc.accept, tc.staleKey, tc.staleAccept, tc.clusterRefuses)
		})
	}
}

func restartedWithOldKey(t *testing.T, key, accept, staleKey, staleAccept []byte, clusterRefuses bool) {
	dir := t.TempDir()
	var addrs []string
	for range 3 {
		addrs = append(addrs, "127.0.0.1:"+freeTCPUDPPort(t))
	}
	logs := make([]*lockedBuffer, 3)
	config := func(i int, key []byte, accept []byte) Config {
		var peers []string
		for j, a := range addrs {
			if j != i {
				peers = append(peers, a)
			}
		}
		logs[i] = new(lockedBuffer)
		return Config{NodeName: fmt.Sprint("m", i), BindAddr: addrs[i], Peers: peers, Timings: FastTimings(),
			SecretKey: key, AcceptKeys: slices.DeleteFunc([][]byte{accept}, func(k []byte) bool { return k == nil }), SnapshotPath: filepath.Join(dir, fmt.Sprint("m", i)),
			SnapshotInterval: -1, Logger: zerolog.New(logs[i])}
	}
	members := make([]*Cache, 3)
	for i := range members {
		members[i] = mustNew(t, config(i, key, accept))
	}
	defer func() {
		for _, c := range members {
			c.Close()
		}
	}()
	for _, c := range members {
		await.Until(t, 20*time.Second, func() bool { return len(c.Members()) == 3 }, "%s sees %d members", c.Name(), len(c.Members()))
	}
	if err := members[2].Set("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	mustClose(t, members[2])
	members[2] = mustNew(t, config(2, staleKey, staleAccept))
	stale := members[2]
	await.Until(t, 30*time.Second, func() bool {
		for _, c := range members[:2] {
			if len(c.Members()) != 2 || clusterRefuses && c.Stats().Replication.KeyRefusals == 0 {
				return false
			}
			if !slices.ContainsFunc(c.Status().Joining, func(f JoinFailure) bool { return f.Cause == "wrong key" && f.Addr == addrs[2] }) {
				return false
			}
		}
		return len(stale.Members()) == 1 && (clusterRefuses || stale.Stats().Replication.KeyRefusals > 0) && slices.ContainsFunc(stale.Status().Joining, func(f JoinFailure) bool { return f.Cause == "wrong key" })
	}, "m0 %d members %+v refusals %d; m1 %d members %+v; stale %d members %+v",
		len(members[0].Members()), members[0].Status().Joining, members[0].Stats().Replication.KeyRefusals,
		len(members[1].Members()), members[1].Status().Joining, len(stale.Members()), stale.Status().Joining)
	if stale.Status().Ready() {
		t.Fatal("the member with the old key is ready")
	}
	refusers := []int{2}
	if clusterRefuses {
		refusers = []int{0, 1}
	}
	// The refusal is counted and listed before it is logged (on the
	// refusing goroutine, after both): awaited, not read at once.
	for _, i := range refusers {
		await.Until(t, 10*time.Second, func() bool {
			return strings.Contains(strings.Join(logs[i].lines(), "\n"), "a member with other keys")
		}, "m%d logged no refusal", i)
	}
	// Stays so: held for a few seconds.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range members[:2] {
			for _, m := range c.Members() {
				if m.Name == "m2" {
					t.Fatalf("%s lists m2 with the old key", c.Name())
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}
