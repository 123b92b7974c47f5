package gossip

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// WriteTo sends to an IP:port, which it parses itself, and to a host name
// and port, which it resolves.
func TestWriteToAddressesAndNames(t *testing.T) {
	nt, err := listen("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Shutdown()
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	port := strconv.Itoa(peer.LocalAddr().(*net.UDPAddr).Port)
	buf := make([]byte, 16)
	for _, addr := range []string{"127.0.0.1:" + port, "localhost:" + port} {
		if _, err := nt.WriteTo([]byte(addr), addr); err != nil {
			t.Fatalf("WriteTo %s: %v", addr, err)
		}
		peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := peer.ReadFromUDP(buf)
		if err != nil || string(buf[:n]) != addr[:min(len(addr), len(buf))] {
			t.Fatalf("sent to %s, read %q, %v", addr, buf[:n], err)
		}
	}
	if _, err := nt.WriteTo([]byte("x"), "127.0.0.1"); err == nil {
		t.Fatal("WriteTo an address without a port returned no error")
	}
}
