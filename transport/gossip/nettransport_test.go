package gossip

import (
	"net"
	"slices"
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

// TestFailuresBackOff: an accept that fails (out of file descriptors, a
// connection waiting: it fails at once, again and again) is retried
// after 5 ms, doubling to a second; so is a read of a datagram socket
// whose every read fails. Each was retried at once, and its loop took a
// whole CPU (found by review; the reads' by the last notes).
func TestFailuresBackOff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pause *func(time.Duration, <-chan struct{}) bool
		fail  func(*netTransport) // makes every call of the loop fail at once, while the transport runs
	}{
		{"accept", &acceptPause, func(nt *netTransport) { nt.tcp.Close() }},
		{"read", &readPause, func(nt *netTransport) { nt.udp.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var waits []time.Duration // written by the loop's goroutine alone
			enough := make(chan struct{})
			old := *tc.pause
			*tc.pause = func(d time.Duration, done <-chan struct{}) bool {
				if waits = append(waits, d); len(waits) == 10 {
					close(enough)
					<-done
					return false
				}
				return true
			}
			defer func() { *tc.pause = old }()
			nt, err := listen("127.0.0.1", 0)
			if err != nil {
				t.Fatal(err)
			}
			tc.fail(nt)
			select {
			case <-enough:
			case <-time.After(10 * time.Second):
				t.Fatal("no ten failures")
			}
			nt.Shutdown()
			ms := time.Millisecond
			want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second}
			if !slices.Equal(waits, want) {
				t.Fatalf("waits after failures: %v, want %v", waits, want)
			}
		})
	}
}
