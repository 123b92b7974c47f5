package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache"
)

// TestPutOfAnOverlongKeyIsRefusedUpFront: a PUT whose key is over the
// member's limit is answered 414 before its body is read, as one whose
// Content-Length is over the value limit is answered 413. The body was
// read first (up to -max-value, taken from the bodies' budget) and the
// key refused after: a client that asked to send it (Expect:
// 100-continue, as curl does for a large body) was told to go on, and
// sent the whole value for nothing.
func TestPutOfAnOverlongKeyIsRefusedUpFront(t *testing.T) {
	c := newCache(t, bcache.Config{MaxKeySize: 8})
	addr := strings.TrimPrefix(startServer(t, c, 1024), "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /v1/keys/%s HTTP/1.1\r\nHost: node\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n", strings.Repeat("k", 9))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a PUT of an overlong key whose body was not sent: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestURITooLong {
		t.Fatalf("status %d, want 414 (and no body asked for)", resp.StatusCode)
	}
}

// TestRequestHeadersAreBounded: a request's line and headers are bounded
// by what the longest key takes escaped whole (3 bytes a byte), not by
// net/http's default of 1 MiB: with 1024 connections, clients held 1 GiB
// or more in headers alone, four times the bound on the bodies being
// read.
func TestRequestHeadersAreBounded(t *testing.T) {
	c := newCache(t, bcache.Config{})
	addr := startHTTP(t, newHandler(c, bcache.DefaultMaxValueSize, zerolog.Nop()), defaultHTTPTimeouts())
	send := func(path, headers string) int {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: node\r\n%s\r\n", path, headers)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("GET %.40s...: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The longest key, every byte escaped, with a token: read (a miss).
	longest := "/v1/keys/" + strings.Repeat("%6B", bcache.DefaultMaxKeySize)
	if code := send(longest, "Bcache-Token: "+strings.Repeat("A", bcache.MaxTokenLen)+"\r\n"); code != http.StatusBadRequest {
		t.Fatalf("the longest key escaped whole: %d, want 400 (the token is none)", code)
	}
	if code := send(longest, ""); code != http.StatusNotFound {
		t.Fatalf("the longest key escaped whole: %d, want 404", code)
	}
	if code := send("/v1/status", "X-Junk: "+strings.Repeat("j", 512<<10)+"\r\n"); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("512 KiB of headers: %d, want 431", code)
	}
}
