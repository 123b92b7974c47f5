package gossip

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestWriteToNodeReachesTheMembersAddress: a datagram written to a member
// from its node's address reaches it, for an IPv4 address in either of
// the forms net.IP holds it (memberlist keeps the 16-byte one), and an
// IPv6 one where the host has it.
func TestWriteToNodeReachesTheMembersAddress(t *testing.T) {
	for _, tc := range []struct {
		network, listen string
		ip              func(net.IP) net.IP
	}{
		{"udp4", "127.0.0.1:0", func(ip net.IP) net.IP { return ip.To4() }},
		{"udp4", "127.0.0.1:0", func(ip net.IP) net.IP { return ip.To16() }},
		{"udp6", "[::1]:0", func(ip net.IP) net.IP { return ip }},
	} {
		pc, err := net.ListenPacket(tc.network, tc.listen)
		if err != nil {
			if tc.network == "udp6" {
				t.Logf("no IPv6 loopback here: %v", err)
				continue
			}
			t.Fatal(err)
		}
		defer pc.Close()
		from, err := net.ListenUDP(tc.network, &net.UDPAddr{IP: pc.LocalAddr().(*net.UDPAddr).IP})
		if err != nil {
			t.Fatal(err)
		}
		defer from.Close()
		tr := &netTransport{udp: from}
		at := pc.LocalAddr().(*net.UDPAddr)
		to := &memberlist.Node{Name: "peer", Addr: tc.ip(at.IP), Port: uint16(at.Port)}
		msg := []byte("a datagram for " + to.Address())
		if err := tr.writeToNode(msg, to); err != nil {
			t.Fatalf("%s, %d-byte IP: %v", to.Address(), len(to.Addr), err)
		}
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 100)
		n, _, err := pc.ReadFrom(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("%s, %d-byte IP: read %q, %v", to.Address(), len(to.Addr), buf[:n], err)
		}
	}
}
