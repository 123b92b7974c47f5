package gossip

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestPacketSizeDefaultsToLoopbacksOnLoopback: a member reached at a
// loopback address takes LoopbackPacketSize unless it sets PacketSize
// (every member that can reach it runs on its host); one reached at any
// other address, or named by a host name, or on a transport of its own,
// takes the 1400 bytes that fit a real network's path.
func TestPacketSizeDefaultsToLoopbacksOnLoopback(t *testing.T) {
	tr, err := memnet.NewNetwork(1).NewTransport("m")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown()
	rep := newTestReplicaBits(t, 1, 12)
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want int
	}{
		{"bound to 127.0.0.1", func(c *Config) { c.BindAddr = "127.0.0.1:0" }, LoopbackPacketSize},
		{"bound to 127.0.0.2", func(c *Config) { c.BindAddr = "127.0.0.2:7946" }, LoopbackPacketSize},
		{"bound to ::1", func(c *Config) { c.BindAddr = "[::1]:0" }, LoopbackPacketSize},
		{"bound everywhere", func(c *Config) { c.BindAddr = "0.0.0.0:0" }, defaultPacketSize},
		{"bound to a host's address", func(c *Config) { c.BindAddr = "10.1.2.3:0" }, defaultPacketSize},
		{"bound to localhost by name", func(c *Config) { c.BindAddr = "localhost:0" }, defaultPacketSize},
		{"bound to loopback, advertising another address", func(c *Config) {
			c.BindAddr, c.AdvertiseAddr = "127.0.0.1:0", "10.1.2.3:7946"
		}, defaultPacketSize},
		{"bound everywhere, advertising loopback", func(c *Config) {
			c.BindAddr, c.AdvertiseAddr = "0.0.0.0:0", "127.0.0.1:7946"
		}, LoopbackPacketSize},
		{"its own size on loopback", func(c *Config) { c.BindAddr, c.PacketSize = "127.0.0.1:0", 2000 }, 2000},
		{"a transport of its own", func(c *Config) { c.BindAddr, c.Transport = "127.0.0.1:0", tr }, defaultPacketSize},
	} {
		c := Config{Name: "m", Replica: rep, Clock: rep.clock}
		tc.set(&c)
		if err := c.fill(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.PacketSize != tc.want {
			t.Errorf("%s: PacketSize %d, want %d", tc.name, c.PacketSize, tc.want)
		}
	}
}

// TestLoopbackMembersSendLargerDatagrams: two members on 127.0.0.1 at
// the default packet size fill datagrams past a real network's 1400
// bytes, up to LoopbackPacketSize and no further, with a burst of deltas
// and with anti-entropy's repairs, and converge; a member of the 1400
// bytes beside them takes their datagrams and catches up.
func TestLoopbackMembersSendLargerDatagrams(t *testing.T) {
	loopback := func(c *Config) { c.PacketSize = 0 } // the helpers' 1400 off: the default
	a := startNode(t, "a", nil, loopback)
	for i := range 300 { // written before b joins: anti-entropy moves them
		a.rep.write(a.r, fmt.Sprintf("old-%d", i), bytes.Repeat([]byte("o"), 100), false)
	}
	b := startNode(t, "b", []string{a.r.Addr()}, loopback)
	waitMembers(t, 2, a, b)
	waitConverged(t, 10*time.Second, a, b)
	for i := range 2000 { // faster than one datagram a write
		a.rep.write(a.r, fmt.Sprintf("new-%d", i), bytes.Repeat([]byte("n"), 100), false)
	}
	waitConverged(t, 10*time.Second, a, b)
	c := startNode(t, "c", []string{a.r.Addr()}) // 1400 bytes
	waitMembers(t, 3, a, b, c)
	waitConverged(t, 10*time.Second, a, b, c)
	for _, n := range []*node{a, b} {
		if n.r.cfg.PacketSize != LoopbackPacketSize {
			t.Fatalf("%s: PacketSize %d, want %d", n.r.cfg.Name, n.r.cfg.PacketSize, LoopbackPacketSize)
		}
	}
	if got := a.r.wire.largest.Load(); got <= defaultPacketSize || got > LoopbackPacketSize {
		t.Fatalf("a's largest datagram %d bytes, want more than %d and at most %d", got, defaultPacketSize, LoopbackPacketSize)
	}
	if got := c.r.wire.largest.Load(); got > defaultPacketSize {
		t.Fatalf("c's largest datagram %d bytes, its packet size %d", got, defaultPacketSize)
	}
	if st := c.r.Stats(); st.BadFrames != 0 {
		t.Fatalf("c refused %d frames as bad", st.BadFrames)
	}
}

// TestLoopbackDeltaBatchesFillTheLargerDatagram: a group of small writes
// on a member on 127.0.0.1 at the default packet size goes in delta
// batches filled past a real network's 1400 bytes, up to
// LoopbackPacketSize, each one datagram (the protocol's PacketBudget
// follows the packet size). With anti-entropy an hour away, nothing but
// the deltas can send a datagram that large. (TestLoopbackMembersSend-
// LargerDatagrams passed with the batches cut at 1400 bytes: its repairs'
// fragments alone were past them.)
func TestLoopbackDeltaBatchesFillTheLargerDatagram(t *testing.T) {
	loopbackQuiet := func(c *Config) { c.PacketSize, c.Protocol.AntiEntropyInterval = 0, time.Hour }
	a := startNode(t, "a", nil, loopbackQuiet)
	b := startNode(t, "b", []string{a.r.Addr()}, loopbackQuiet)
	waitMembers(t, 2, a, b)
	waitProtocolMembers(t, 2, a)
	var group []crdt.Record
	for i := range 400 {
		rec := crdt.Record{Key: fmt.Sprintf("key-%04d", i), Value: []byte("v"), Time: a.rep.clock.Now()}
		// Held by a, as its own writes are: a session between the two in
		// the window below (one a join starts, under load) then has
		// nothing for a to pull. CI308 counted 27,790 bytes over a's
		// streams there, about what a pull of 400 records that b held
		// alone takes (not confirmed: it did not fail in 40 runs here).
		a.rep.Apply(rec, false, a.r.now())
		group = append(group, rec)
	}
	a.r.nodeMu.Lock()
	out := a.r.node.WriteGroup(group, a.r.now())
	a.r.nodeMu.Unlock()
	if len(out) == 0 {
		t.Fatal("a sent nothing for the group")
	}
	before := a.r.Stats()
	a.r.send(out)
	waitValue(t, 10*time.Second, "key-0399", []byte("v"), b)
	if got := a.r.wire.largest.Load(); got <= defaultPacketSize || got > LoopbackPacketSize {
		t.Fatalf("a's largest datagram %d bytes in %d delta frames, want more than %d and at most %d", got, len(out), defaultPacketSize, LoopbackPacketSize)
	}
	if after := a.r.Stats(); after.WireStreamBytes != before.WireStreamBytes {
		t.Fatalf("a sent %d bytes of the group over streams, want every batch a datagram", after.WireStreamBytes-before.WireStreamBytes)
	}
}

// TestLoopbackFragmentsKeepTheDefaultSize: a member of a larger packet
// size sends larger single datagrams but fragments of the default's
// share, so that a frame in fragments stays within maxFragments of the
// default's datagrams (16 of 8 KiB, sent twice, filled most of a stock
// socket buffer of 208 KiB: found by review); a member of a smaller size
// keeps its own.
func TestLoopbackFragmentsKeepTheDefaultSize(t *testing.T) {
	std := startNode(t, "f1", nil)
	lo := startNode(t, "f2", nil, func(c *Config) { c.PacketSize = 0 })
	small := startNode(t, "f3", nil, func(c *Config) { c.PacketSize = 600 })
	if got, want := lo.r.fragmentSize(), std.r.fragmentSize(); got != want || lo.r.datagramRoom() <= std.r.datagramRoom() {
		t.Fatalf("on loopback: a fragment carries %d bytes, want %d, the default's (datagram room %d against %d)",
			got, want, lo.r.datagramRoom(), std.r.datagramRoom())
	}
	if got, want := small.r.fragmentSize(), small.r.datagramRoom()-fragmentHead("f3"); got != want {
		t.Fatalf("PacketSize 600: a fragment carries %d bytes, want %d", got, want)
	}
}
