//go:build unix

package main

import (
	"net"
	"path/filepath"
	"syscall"
	"testing"
)

// TestStaleSocketIsRemoved: a socket file no process listens on (left by
// a SIGKILL) no longer keeps the node from starting; one a process listens
// on is left alone; "unix:" without a path is refused (found by review).
func TestStaleSocketIsRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, as a process killed leaves it
	ln, err = listenHTTP("unix:" + path)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	defer ln.Close()
	if _, err := listenHTTP("unix:" + path); err == nil {
		t.Fatal("a second listener took the socket of a live one")
	}
	if c, err := net.Dial("unix", path); err != nil {
		t.Fatalf("the live listener's socket was removed: %v", err)
	} else {
		c.Close()
	}
	if _, err := listenHTTP("unix:"); err == nil {
		t.Fatal("unix: without a path was taken")
	}
}

// TestLiveSocketWithAFullBacklogIsKept: a socket whose listener takes no
// connection now (its backlog full: a process stopped or overloaded) is
// not taken for a stale one: its path is left to it (it was removed and
// taken: found by review).
func TestLiveSocketWithAFullBacklogIsKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // accepts none
		t.Fatal(err)
	}
	for i := 0; ; i++ { // fill its backlog
		c, err := net.Dial("unix", path)
		if err != nil {
			break
		}
		defer c.Close()
		if i == 1000 {
			t.Skip("the backlog never filled")
		}
	}
	if ln, err := listenHTTP("unix:" + path); err == nil {
		ln.Close()
		t.Fatal("listenHTTP took the path of a live listener")
	}
}
