package gossip

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
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
// datagram of its own type: its protocol frame less one byte (the type
// byte standing for the wire header's two); to a peer of the release
// before, which takes the short form, it is a user message of the short
// direct delta (three bytes more than the frame: memberlist's type and
// the two of a frame without its sender's name, wire.Direct); to a peer
// of an earlier release, which would refuse all of them, a Delta with
// the name as before (two bytes and the name more); either way the write
// arrives, through the peer's transport's own opening. Members with
// 200-byte names make the difference plain: each write is sent on its
// own, and the writer's bytes per write are measured, with neither
// anti-entropy nor memberlist's probes and push/pull running meanwhile,
// over a batch of writes in which memberlist sent nothing.
func TestDirectDeltasGoWithoutTheSendersName(t *testing.T) {
	label := 2 + len(processLabel) // the datagrams' label header
	for _, tc := range []struct {
		name     string
		peerMax  uint8 // the peer's delegate protocol range tops out here
		kind     wire.Kind
		overhead int // a datagram's bytes beyond its frame's
	}{
		{"peer of this release", rawVersion, wire.KindDirect, label - 1},
		{"peer of the release before", directVersion, wire.KindDirect, label + 3},
		{"peer of an earlier release", 0, wire.KindDelta, label + 2 + 200},
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
			// A batch measured while memberlist still gossips the join
			// (and the members' metadata, which changes as they meet)
			// counts its datagrams too: 36 bytes a write more in a CI run
			// on a busy machine. The batch measured is the first in which
			// the writer sent nothing but its frames, one datagram each.
			var st0, st Stats
			var opened uint64
			from := writes
			for clean := false; !clean; from += writes {
				if from > 20*writes {
					t.Fatalf("memberlist sent datagrams beside the writes in 20 batches of %d", writes)
				}
				st0, opened = a.r.Stats(), b.r.Stats().DirectFrames
				write(from)
				st = a.r.Stats()
				clean = st.WirePackets-st0.WirePackets == st.Protocol.FramesSentByKind[tc.kind]-st0.Protocol.FramesSentByKind[tc.kind]
			}
			datagrams := float64(st.WirePacketBytes-st0.WirePacketBytes) / writes
			frames := float64(st.Protocol.BytesSentByKind[tc.kind]-st0.Protocol.BytesSentByKind[tc.kind]) / writes
			if datagrams != frames+float64(tc.overhead) {
				t.Fatalf("the writer sent %.2f bytes a write for frames of %.2f, want %d more", datagrams, frames, tc.overhead)
			}
			short, full := st.Protocol.FramesSentByKind[wire.KindDirect], st.Protocol.FramesSentByKind[wire.KindDelta]
			if takes := tc.peerMax >= directVersion; takes && (short < writes || full != 0) || !takes && (short != 0 || full < writes) {
				t.Fatalf("the writer sent %d short direct deltas and %d Deltas to a peer whose range tops out at %d", short, full, tc.peerMax)
			}
			if n := b.r.Stats().DirectFrames - opened; n < writes {
				t.Fatalf("the peer's transport opened %d of the %d writes' datagrams", n, writes)
			}
			t.Logf("%.0f bytes a write", datagrams)
		})
	}
}

// TestOtherTransportsGetNoRawDatagrams: a member whose transport is not
// the default UDP one (memberlist would refuse a datagram of a type not
// its own) says so in its delegate protocol range.
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
	if v := leastVersion(a.r); v != directVersion {
		t.Fatalf("members on another transport: least version %d, want %d", v, directVersion)
	}
}

// leastVersion returns the lowest top of the delegate protocol ranges of
// r's live members, as r sees them.
func leastVersion(r *Replicator) uint8 {
	r.mu.Lock()
	defer r.mu.Unlock()
	least := uint8(255)
	for _, n := range r.alive {
		least = min(least, n.DMax)
	}
	return least
}

// TestRestartAsAnEarlierReleaseStopsRawDatagrams: a member that stops
// without leaving and comes back at once under its name and address as a
// member of the release before (which would refuse direct deltas in their
// own datagrams) takes its old place without a join; its new metadata
// tells the others, which then send it user messages again, and its
// writes arrive.
func TestRestartAsAnEarlierReleaseStopsRawDatagrams(t *testing.T) {
	a := startNode(t, "a", nil)
	b := startNode(t, "b", []string{a.r.Addr()})
	waitMembers(t, 2, a, b)
	await.Until(t, 5*time.Second, a.r.raw.Load, "a never sent raw datagrams")
	addr := b.r.Addr()
	if err := b.r.stop(false); err != nil { // a crash: no leave
		t.Fatal(err)
	}
	saved := delegateMax
	delegateMax = directVersion
	b2 := startNode(t, "b", []string{a.r.Addr()}, func(c *Config) { c.BindAddr = addr })
	delegateMax = saved
	await.Until(t, 10*time.Second, func() bool { return !a.r.raw.Load() },
		"a still sends raw datagrams to b, back as the release before (its range as a sees it: %d)", leastVersion(a.r))
	a.rep.write(a.r, "after", []byte("v"), false)
	waitValue(t, 5*time.Second, "after", []byte("v"), b2)
	if n := b2.r.Stats().MemberlistErrors; n != 0 {
		t.Fatalf("b, back, logged %d memberlist errors", n)
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
// (47-56 and 180 here), with 16-bit digests (an even depth, as a Cache's)
// that agree; its peer starts none (an hour apart), as the member's
// answers to them counted too, and with fewer of them in a busy CI run the
// earlier release's figure fell under its bound.
func TestSessionsOpenWithTheRootAmongCurrentMembers(t *testing.T) {
	for _, tc := range []struct {
		name        string
		peerMax     uint8
		least, most float64
	}{
		{"peer of this release", directVersion, 0, 100},
		{"peer of an earlier release", 0, 150, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			often := func(c *Config) { c.Protocol.AntiEntropyInterval = 20 * time.Millisecond }
			a := startNodeBits(t, "a", nil, 16, often)
			saved := delegateMax
			delegateMax = tc.peerMax
			seldom := func(c *Config) { c.Protocol.AntiEntropyInterval = time.Hour }
			b := startNodeBits(t, "b", []string{a.r.Addr()}, 16, seldom)
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

// A member on a transport of the caller's (Config.Transport) gets its
// datagrams through memberlist, not the default transport's opener: one
// of encryption version 0 whose padding says more than it holds, from a
// holder of the key, panicked in memberlist's packet goroutine and took
// the process down as it did on the default transport before its opener
// refused it (found by review). Run in a child process, which the panic
// would end.
func TestOtherTransportsRefuseWhatCrashesMemberlist(t *testing.T) {
	if os.Getenv("BCACHE_CRASH_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOtherTransportsRefuseWhatCrashesMemberlist$", "-test.count=1")
		cmd.Env = append(os.Environ(), "BCACHE_CRASH_CHILD=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the member's process: %v\n%s", err, out)
		}
		return
	}
	key := []byte("0123456789abcdef")
	network := memnet.NewNetwork(1)
	tr, err := network.NewTransport("a")
	if err != nil {
		t.Fatal(err)
	}
	a := startNode(t, "a", nil, func(c *Config) { c.Transport, c.SecretKey = tr, key })
	evil, err := network.NewTransport("evil")
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Shutdown()
	nonce := bytes.Repeat([]byte{7}, mlNonceSize)
	label := []byte(processLabel)
	crash := testGCM(t, key).Seal(append([]byte{0}, nonce...), nonce, append(make([]byte, 15), 200), label)
	crash = append(append([]byte{mlHasLabelMsg, byte(len(label))}, label...), crash...)
	before := a.r.Stats().BadFrames
	await.Until(t, 5*time.Second, func() bool {
		evil.WriteTo(crash, a.r.Addr()) // again until one arrives: the network may drop it
		return a.r.Stats().BadFrames != before
	}, "the datagram was not counted")
}
