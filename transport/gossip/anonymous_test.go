package gossip

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestDirectDeltasGoWithoutTheSendersName: a write's frame to a peer of
// this release carries no sender name and no headers at all, in a
// datagram of its own type (four bytes fewer than the same short direct
// delta as a user message, which a peer of the release before gets); to a
// peer of the release before that, which takes the short form (two header
// bytes instead of one and the name, wire.Direct), it is that; to a peer
// of an earlier release, which would refuse all of them, it is a Delta
// with the name as before; either way the write arrives. Members with
// 200-byte names make the difference plain: each write is sent on its
// own, and the writer's bytes per write are measured, with neither
// anti-entropy nor memberlist's probes and push/pull running meanwhile,
// over a second batch of writes: memberlist's gossip of the join is over
// by then.
func TestDirectDeltasGoWithoutTheSendersName(t *testing.T) {
	perWrite := map[uint8]float64{}
	for _, tc := range []struct {
		name        string
		peerMax     uint8 // the peer's delegate protocol range tops out here
		least, most float64
	}{
		{"peer of this release", rawVersion, 0, 120},
		{"peer of the release before", directVersion, 0, 120},
		{"peer of an earlier release", 0, 200, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			long := func(c string) string { return strings.Repeat(c, 200) }
			quiet := func(c *Config) { // deltas only
				c.Protocol.AntiEntropyInterval = time.Hour
				c.Timings.ProbeInterval, c.Timings.PushPullInterval = time.Hour, time.Hour
			}
			a := startNode(t, long("a"), nil, quiet)
			saved := delegateMax
			delegateMax = tc.peerMax
			b := startNode(t, long("b"), []string{a.r.Addr()}, quiet)
			delegateMax = saved
			waitMembers(t, 2, a, b)
			const writes = 50
			write := func(from int) {
				for i := from; i < from+writes; i++ {
					key := fmt.Sprintf("k%03d", i)
					a.rep.write(a.r, key, []byte("ten bytes!"), false)
					waitValue(t, 5*time.Second, key, []byte("ten bytes!"), b)
				}
			}
			write(0)
			before, opened := a.r.Stats().WirePacketBytes, b.r.Stats().DirectFrames
			write(writes)
			st := a.r.Stats()
			perWrite[tc.peerMax] = float64(st.WirePacketBytes-before) / writes
			if w := perWrite[tc.peerMax]; w < tc.least || w > tc.most {
				t.Fatalf("the writer sent %.0f bytes a write, want %.0f to %.0f", w, tc.least, tc.most)
			}
			short, full := st.Protocol.FramesSentByKind[wire.KindDirect], st.Protocol.FramesSentByKind[wire.KindDelta]
			if takes := tc.peerMax >= directVersion; takes && (short < writes || full != 0) || !takes && (short != 0 || full < writes) {
				t.Fatalf("the writer sent %d short direct deltas and %d Deltas to a peer whose range tops out at %d", short, full, tc.peerMax)
			}
			if n := b.r.Stats().DirectFrames - opened; n < writes {
				t.Fatalf("the peer's transport opened %d of the %d writes' datagrams", n, writes)
			}
			t.Logf("%.0f bytes a write", perWrite[tc.peerMax])
		})
	}
	if raw, user := perWrite[rawVersion], perWrite[directVersion]; raw != user-4 {
		t.Fatalf("a write to a peer of this release took %.2f bytes, %.2f to one of the release before: want four fewer", raw, user)
	}
}

// TestOtherTransportsGetNoRawDatagrams: a member whose transport is not
// the default UDP one (memberlist would refuse a datagram of a type not
// its own) says so in its delegate protocol range, and its peers send it
// user messages.
func TestOtherTransportsGetNoRawDatagrams(t *testing.T) {
	net := memnet.NewNetwork(1)
	start := func(name string, peers []string) *node {
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		return startNode(t, name, peers, func(c *Config) { c.Transport = tr })
	}
	a := start("a", nil)
	b := start("b", []string{a.r.Addr()})
	waitMembers(t, 2, a, b)
	a.rep.write(a.r, "k", []byte("v"), false)
	waitValue(t, 5*time.Second, "k", []byte("v"), b)
	if v := a.r.leastVersion(); v != directVersion {
		t.Fatalf("members on another transport: least version %d, want %d", v, directVersion)
	}
	if a.r.raw.Load() || a.r.out != nil {
		t.Fatalf("a member on another transport sends raw datagrams")
	}
}

// TestAnonymousFrameHeader: a frame without the sender's name starts with
// the two-byte header, written where the name would stand in the room the
// node left (no copy), or in a copy without such room; a named frame has
// the name as before.
func TestAnonymousFrameHeader(t *testing.T) {
	r := &Replicator{cfg: Config{Name: "writer"}}
	payload := []byte("frame")
	buf := append(make([]byte, 1+len("writer")), payload...)
	env := transport.Envelope{To: "peer", Payload: buf[len(buf)-len(payload):], Frame: buf, Anonymous: true}
	if f := r.frame(env, true); string(f) != "\x00\x00frame" || &f[len(f)-1] != &buf[len(buf)-1] || !isAnonymous(f) {
		t.Fatalf("anonymous frame %q, want \\x00\\x00frame in the node's buffer", f)
	}
	if f := r.frame(env, false); string(f) != "\x06writerframe" || isAnonymous(f) {
		t.Fatalf("named frame %q", f)
	}
	if f := r.frame(transport.Envelope{Payload: payload}, true); string(f) != "\x00\x00frame" {
		t.Fatalf("anonymous frame without headroom %q", f)
	}
}

// TestSessionsOpenWithTheRootAmongCurrentMembers: a member opens its
// periodic sessions with the digest's root alone (eight bytes of hashes)
// when every member is of this release, and at level 1 (sixteen hashes)
// when one is of an earlier release, which would misread such an opening.
// Measured by the digest bytes the member sends per session it starts
// (its answers to the peer's sessions included: about 45 bytes each), with
// 16-bit digests (an even depth, as a Cache's) that agree.
func TestSessionsOpenWithTheRootAmongCurrentMembers(t *testing.T) {
	for _, tc := range []struct {
		name        string
		peerMax     uint8
		least, most float64
	}{
		{"peer of this release", directVersion, 0, 150},
		{"peer of an earlier release", 0, 180, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			often := func(c *Config) { c.Protocol.AntiEntropyInterval = 20 * time.Millisecond }
			a := startNodeBits(t, "a", nil, 16, often)
			saved := delegateMax
			delegateMax = tc.peerMax
			b := startNodeBits(t, "b", []string{a.r.Addr()}, 16, often)
			delegateMax = saved
			waitMembers(t, 2, a, b)
			a.rep.write(a.r, "k", []byte("v"), false)
			waitValue(t, 5*time.Second, "k", []byte("v"), b)
			before := a.r.Stats().Protocol
			await.Until(t, 10*time.Second, func() bool { return a.r.Stats().Protocol.SessionsCompleted >= before.SessionsCompleted+20 },
				"a completed %d sessions", a.r.Stats().Protocol.SessionsCompleted-before.SessionsCompleted)
			after := a.r.Stats().Protocol
			perSession := float64(after.BytesSentByKind[wire.KindDigest]-before.BytesSentByKind[wire.KindDigest]) /
				float64(after.SessionsStarted-before.SessionsStarted)
			if perSession < tc.least || perSession > tc.most {
				t.Fatalf("a sent %.0f digest bytes a session, want %.0f to %.0f", perSession, tc.least, tc.most)
			}
			t.Logf("%.0f digest bytes a session", perSession)
		})
	}
}
