package gossip

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/bcache-go/bcache/transport/gossip/memnet"
	"github.com/bcache-go/bcache/transport/wire"
)

// failingWrites fails the datagrams that hold marker, as many as fails
// says (then it lets them go).
type failingWrites struct {
	memberlist.NodeAwareTransport
	marker []byte
	fails  atomic.Int64
}

func (f *failingWrites) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if bytes.Contains(b, f.marker) && f.fails.Add(-1) >= 0 {
		return time.Now(), errFailedWrite
	}
	return f.NodeAwareTransport.WriteToAddress(b, a)
}

func (f *failingWrites) WriteTo(b []byte, addr string) (time.Time, error) {
	return f.WriteToAddress(b, memberlist.Address{Addr: addr})
}

var errFailedWrite = &failedWrite{}

type failedWrite struct{}

func (*failedWrite) Error() string { return "write failed (test)" }

// TestAFragmentedFrameCountsOneSendErrorAtMost: SendErrors counts the
// frames the transport failed to send (bcache_frames_dropped_total
// {reason="send_error"}). A frame sent as fragments, each sent twice, was
// counted once per datagram that failed: a frame of 3 fragments none of
// which went counted 6, and one whose every fragment went on its second
// copy, sent, counted 3.
func TestAFragmentedFrameCountsOneSendErrorAtMost(t *testing.T) {
	net := memnet.NewNetwork(1)
	marker := bytes.Repeat([]byte{0x5a}, 16)
	var fw *failingWrites
	start := func(name string, peers []string, wrap bool) *node {
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		var mt memberlist.NodeAwareTransport = tr
		if wrap {
			fw = &failingWrites{NodeAwareTransport: tr, marker: marker}
			mt = fw
		}
		return startNode(t, name, peers, func(c *Config) {
			c.Transport = mt
			c.Protocol.AntiEntropyInterval = time.Hour // no frame of the protocol's meanwhile
		})
	}
	a := start("a", nil, false)
	s := start("s", []string{a.r.Addr()}, true)
	waitMembers(t, 2, a, s)
	to := s.r.lookup("a")
	if to == nil {
		t.Fatal("a not alive at s")
	}
	frame := append([]byte{byte(wire.KindRepair)}, bytes.Repeat([]byte{0x5a}, 3*s.r.fragmentSize()-1)...)
	count := (len(frame) + s.r.fragmentSize() - 1) / s.r.fragmentSize()
	for _, c := range []struct {
		fails int64
		want  uint64
	}{
		{fails: int64(count), want: 0},     // every fragment's first copy lost, every second one sent: sent
		{fails: int64(2 * count), want: 1}, // none sent: one frame not sent
	} {
		fw.fails.Store(c.fails)
		before := s.r.Stats().SendErrors
		if !s.r.sendFragments(to, wire.KindRepair, frame) {
			t.Fatal("the frame did not go as fragments")
		}
		if got := s.r.Stats().SendErrors - before; got != c.want {
			t.Errorf("%d of the %d datagrams of a frame of %d fragments failed: %d send errors counted, want %d",
				c.fails, 2*count, count, got, c.want)
		}
	}
}

// TestACallRequestThatFailsToGoIsCounted: a call's request, a datagram
// the transport failed to send, is counted in SendErrors ("calls'
// included", as its answers were): it was counted nowhere.
func TestACallRequestThatFailsToGoIsCounted(t *testing.T) {
	net := memnet.NewNetwork(1)
	marker := bytes.Repeat([]byte{0x5a}, 16)
	tr, err := net.NewTransport("a")
	if err != nil {
		t.Fatal(err)
	}
	a := startNode(t, "a", nil, func(c *Config) {
		c.Transport = tr
		c.OnCall = func(string, []byte) []byte { return []byte("ok") }
	})
	tr2, err := net.NewTransport("s")
	if err != nil {
		t.Fatal(err)
	}
	fw := &failingWrites{NodeAwareTransport: tr2, marker: marker}
	s := startNode(t, "s", []string{a.r.Addr()}, func(c *Config) { c.Transport = fw })
	waitMembers(t, 2, a, s)
	fw.fails.Store(1)
	before := s.r.Stats().SendErrors
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.r.Call(ctx, "a", marker); err == nil {
		t.Fatal("a call whose request failed to go answered")
	}
	if got := s.r.Stats().SendErrors - before; got != 1 {
		t.Errorf("a call's request failed to go: %d send errors counted, want 1", got)
	}
}
