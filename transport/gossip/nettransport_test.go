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

// TestAcceptBacksOffOnErrors: an accept that fails (out of file
// descriptors, a connection waiting: it fails at once, again and again)
// is retried after 5 ms, doubling to a second. It was retried at once,
// and the loop took a whole CPU (found by review).
// TestReadBacksOffOnErrors: a datagram socket whose every read fails is
// read again after a wait, 5 ms doubling to a second, not at once (a CPU
// spent on a loop of failures).
func TestReadBacksOffOnErrors(t *testing.T) {
	var waits []time.Duration // written by the reading goroutine alone
	enough := make(chan struct{})
	old := readPause
	readPause = func(d time.Duration, done <-chan struct{}) bool {
		if waits = append(waits, d); len(waits) == 10 {
			close(enough)
			<-done
			return false
		}
		return true
	}
	defer func() { readPause = old }()
	nt, err := listen("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	nt.udp.Close() // every read fails at once, while the transport runs
	select {
	case <-enough:
	case <-time.After(10 * time.Second):
		t.Fatal("no ten failed reads")
	}
	nt.Shutdown()
	ms := time.Millisecond
	want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits after failed reads: %v, want %v", waits, want)
	}
}

func TestAcceptBacksOffOnErrors(t *testing.T) {
	var waits []time.Duration // written by the accept goroutine alone
	enough := make(chan struct{})
	old := acceptPause
	acceptPause = func(d time.Duration, done <-chan struct{}) bool {
		if waits = append(waits, d); len(waits) == 10 {
			close(enough)
			<-done
			return false
		}
		return true
	}
	defer func() { acceptPause = old }()
	nt, err := listen("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	nt.tcp.Close() // every accept fails at once, while the transport runs
	select {
	case <-enough:
	case <-time.After(10 * time.Second):
		t.Fatal("no ten failed accepts")
	}
	nt.Shutdown()
	ms := time.Millisecond
	want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits after failed accepts: %v, want %v", waits, want)
	}
}
