package gossip

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"

	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/wallclock"
	"github.com/bcache-go/bcache/lww"
)

// testReplica is an lww.Map behind one lock: the smallest replica a
// Replicator can keep in sync while tests read and write it.
type testReplica struct {
	mu      sync.Mutex
	m       *lww.Map
	clock   *crdt.HLC
	onApply func(crdt.Record) // called, under the lock, for every record applied from a peer
}

func newTestReplica(t testing.TB, id crdt.NodeID) *testReplica {
	return newTestReplicaBits(t, id, 12)
}

// newTestReplicaBits is newTestReplica with a digest of the given width.
func newTestReplicaBits(t testing.TB, id crdt.NodeID, bits int) *testReplica {
	m, err := lww.New(lww.Config{DigestBits: bits})
	if err != nil {
		t.Fatal(err)
	}
	return &testReplica{m: m, clock: crdt.NewHLC(id, wallclock.New().Now, 0)}
}

func (t *testReplica) DigestBits() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m.DigestBits()
}

func (t *testReplica) AppendHashes(dst []uint64, level int, parents []uint32) []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m.AppendHashes(dst, level, parents)
}

func (t *testReplica) AppendVersions(dst []crdt.Version, leaf uint32) []crdt.Version {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m.AppendVersions(dst, leaf)
}

func (t *testReplica) AppendRecords(dst []crdt.Record, leaf uint32) []crdt.Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m.AppendRecords(dst, leaf)
}

func (t *testReplica) Apply(r crdt.Record, delta bool, now int64) crdt.Outcome {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, _ := t.m.Merge(r, delta, now, nil)
	if o == crdt.Applied && t.onApply != nil {
		t.onApply(r)
	}
	return o
}

func (t *testReplica) Lookup(key string) (crdt.Record, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m.Lookup(key)
}

func (t *testReplica) Tombstone(key string) crdt.Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m.Tombstone(key)
}

func (t *testReplica) MarkSynced(at int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m.MarkSynced(at)
}

// write applies a local record and hands it to the replicator.
func (t *testReplica) write(r *Replicator, key string, value []byte, del bool) {
	t.mu.Lock()
	rec := crdt.Record{Key: key, Value: value, Time: t.clock.Now(), Tombstone: del}
	t.m.Merge(rec, false, 0, nil)
	t.mu.Unlock()
	r.Write(rec)
}

func (t *testReplica) get(key string) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m.Get(key, t.clock.Physical())
}

// versions returns every version held, sorted by key.
func (t *testReplica) versions() []crdt.Version {
	t.mu.Lock()
	defer t.mu.Unlock()
	var vs []crdt.Version
	t.m.Range(func(r crdt.Record) bool {
		vs = append(vs, r.Version())
		return true
	})
	slices.SortFunc(vs, func(a, b crdt.Version) int { return strings.Compare(a.Key, b.Key) })
	return vs
}

// node is one member of a test cluster.
type node struct {
	r   *Replicator
	rep *testReplica
}

type nodeOption func(*Config)

var nextID crdt.NodeID // incarnation ids for test replicas; tests in a package run one at a time

// startNode starts a member on 127.0.0.1 with a free port and fast timings,
// closed when the test ends.
func startNode(t testing.TB, name string, peers []string, opts ...nodeOption) *node {
	t.Helper()
	return startNodeBits(t, name, peers, 12, opts...)
}

// processLabel is the cluster label of this test process's members: the
// test processes of other packages, run at the same time, start members
// on 127.0.0.1 too, and one of theirs that retries a port this process
// has since bound must not join a cluster here.
var processLabel = fmt.Sprintf("gossip-test-%d", os.Getpid())

// startNodeBits is startNode with a replica digest of the given width.
func startNodeBits(t testing.TB, name string, peers []string, bits int, opts ...nodeOption) *node {
	t.Helper()
	nextID++
	rep := newTestReplicaBits(t, nextID, bits)
	// The datagrams of members on different hosts (1400 bytes), which
	// this package's tests were written for; on 127.0.0.1 a member takes
	// LoopbackPacketSize by default (TestLoopbackMembersSendLargerDatagrams).
	cfg := Config{
		Name: name, BindAddr: "127.0.0.1:0", Peers: peers, Timings: FastTimings(),
		Replica: rep, Clock: rep.clock, Logger: zerolog.Nop(), Label: processLabel,
		PacketSize: defaultPacketSize,
	}
	cfg.Protocol.AntiEntropyInterval = 200 * time.Millisecond
	for _, o := range opts {
		o(&cfg)
	}
	r, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &node{r: r, rep: rep}
}

// waitMembers waits until every node sees exactly n live members.
func waitMembers(t testing.TB, n int, nodes ...*node) {
	t.Helper()
	for _, nd := range nodes {
		await.Until(t, 10*time.Second, func() bool { return len(nd.r.Members()) == n },
			"%s sees %d members, want %d", nd.r.cfg.Name, len(nd.r.Members()), n)
	}
}

// waitProtocolMembers waits until every node's protocol sends its deltas
// to n members (itself included): memberlist tells the protocol of a
// member that joined a little after Members shows it, and a write made
// between the two reaches that member by anti-entropy, not by a delta.
func waitProtocolMembers(t testing.TB, n int, nodes ...*node) {
	t.Helper()
	for _, nd := range nodes {
		members := func() int {
			nd.r.nodeMu.Lock()
			defer nd.r.nodeMu.Unlock()
			return nd.r.node.Members()
		}
		await.Until(t, 10*time.Second, func() bool { return members() == n },
			"%s's protocol sends to %d members, want %d", nd.r.cfg.Name, lazy(func() string { return fmt.Sprint(members()) }), n)
	}
}

// waitConverged waits until every node holds the same versions.
func waitConverged(t testing.TB, timeout time.Duration, nodes ...*node) {
	t.Helper()
	await.Until(t, timeout, func() bool {
		first := nodes[0].rep.versions()
		for _, nd := range nodes[1:] {
			if !slices.Equal(nd.rep.versions(), first) {
				return false
			}
		}
		return true
	}, "replicas did not converge: %s", describe(nodes))
}

func describe(nodes []*node) string {
	var b strings.Builder
	for _, nd := range nodes {
		fmt.Fprintf(&b, "%s holds %d records; ", nd.r.cfg.Name, len(nd.rep.versions()))
	}
	return b.String()
}

// waitValue waits until key reads value on every node (nil: a miss).
func waitValue(t testing.TB, timeout time.Duration, key string, value []byte, nodes ...*node) {
	t.Helper()
	for _, nd := range nodes {
		await.Until(t, timeout, func() bool {
			v, ok := nd.rep.get(key)
			return ok == (value != nil) && bytes.Equal(v, value)
		}, "%s: %q never read %q", nd.r.cfg.Name, key, value)
	}
}

// freeAddr returns an address of 127.0.0.1 on which nobody listens: a
// join to it is refused at once (the port was free a moment ago; another
// process may take it, as for any port a test picks).
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
