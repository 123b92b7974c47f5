package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache"
)

// TestBodyReadErrorNamesNoServerAddress: a PUT whose body stops coming
// is answered 400 with a text that names neither of the connection's
// addresses: net's error, sent as it was, named the server's own address
// (its socket's path on the server's disk, with -http unix:PATH).
func TestBodyReadErrorNamesNoServerAddress(t *testing.T) {
	to := httpTimeouts{ReadHeader: 200 * time.Millisecond, Read: 300 * time.Millisecond, Write: 2 * time.Second, Idle: 300 * time.Millisecond}
	addr := startHTTP(t, newHandler(newCache(t, bcache.Config{}), bcache.DefaultMaxValueSize, zerolog.Nop()), to)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /v1/keys/slow HTTP/1.1\r\nHost: node\r\nContent-Length: 100000\r\n\r\nabc")
	answer := readUntilClosed(t, conn, 5*time.Second)
	if !strings.HasPrefix(answer, "HTTP/1.1 400 ") {
		t.Fatalf("answer %q, want a 400", answer)
	}
	if strings.Contains(answer, addr) || strings.Contains(answer, conn.LocalAddr().String()) {
		t.Fatalf("the answer names the connection's addresses: %q", answer)
	}
}
