package gossip

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// refusingTransport fails every datagram it is asked to write.
type refusingTransport struct{ memberlist.NodeAwareTransport }

func (refusingTransport) WriteTo([]byte, string) (time.Time, error) {
	return time.Time{}, errFailedWrite
}

func (refusingTransport) WriteToAddress([]byte, memberlist.Address) (time.Time, error) {
	return time.Time{}, errFailedWrite
}

// TestFailedDatagramsAreNotCountedAsSent: Stats.WirePackets and
// WirePacketBytes (bcache_network_sent_bytes_total{transport="udp"}) count
// what was handed to the network. A datagram the transport failed to
// write, through memberlist's transport or written straight to the socket
// (sendPacket), was counted before the write, as sent.
func TestFailedDatagramsAreNotCountedAsSent(t *testing.T) {
	ws := &wireStats{}
	c := &countingTransport{NodeAwareTransport: refusingTransport{}, stats: ws}
	if _, err := c.WriteTo([]byte("datagram"), "127.0.0.1:1"); err == nil {
		t.Fatal("WriteTo of a failing transport succeeded")
	}
	if _, err := c.WriteToAddress([]byte("datagram"), memberlist.Address{Addr: "127.0.0.1:1"}); err == nil {
		t.Fatal("WriteToAddress of a failing transport succeeded")
	}
	if p, b, l := ws.packets.Load(), ws.packetBytes.Load(), ws.largest.Load(); p != 0 || b != 0 || l != 0 {
		t.Errorf("two datagrams failed to write: counted %d packets, %d bytes, largest %d; want none", p, b, l)
	}

	nt, err := listen("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	nt.Shutdown() // its socket closed: every write fails
	r := &Replicator{out: &directOut{t: nt}}
	to := &memberlist.Node{Name: "peer", Addr: net.IPv4(127, 0, 0, 1), Port: 1}
	if err := r.sendPacket(to, []byte("frame")); err == nil {
		t.Fatal("sendPacket on a closed socket succeeded")
	}
	if p, b := r.wire.packets.Load(), r.wire.packetBytes.Load(); p != 0 || b != 0 {
		t.Errorf("a datagram failed to write to the socket: counted %d packets, %d bytes; want none", p, b)
	}
}
