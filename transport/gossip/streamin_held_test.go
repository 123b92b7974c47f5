package gossip

import (
	"net"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// TestStreamsBeingReadAreBoundedTogether: the streams being read hold at
// most their bound in all, whatever their addresses (the bounds per
// address let each grow to 20 MiB, and a member holding the key that
// announced members at many addresses held that much per stream with no
// bound in all: found by review). A stream that has sent part of a
// message, and waits, holds its bytes; a second one whose bytes would
// take the two past the bound is closed unread, and counted; the first,
// once whole, is delivered; nothing is held once both end.
func TestStreamsBeingReadAreBoundedTogether(t *testing.T) {
	const limit = 256 << 10
	var delivered [][]byte
	refused := 0
	sr := &streamReader{limit: limit, deliver: func(b []byte) { delivered = append(delivered, b) }, refused: func() { refused++ }}
	msg := make([]byte, 200<<10)
	head := userMsgHead(nil, len(msg))

	first, firstSend := net.Pipe()
	defer firstSend.Close()
	firstDone := make(chan net.Conn)
	go func() { firstDone <- sr.take(first) }()
	if _, err := firstSend.Write(append(head, msg[:150<<10]...)); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { return sr.held.Load() >= 150<<10 }, "the first stream never held what it sent")

	second, secondSend := net.Pipe()
	defer secondSend.Close()
	secondDone := make(chan net.Conn)
	go func() { secondDone <- sr.take(second) }()
	go secondSend.Write(append(head, msg...)) // ends with the pipe: take closes nothing, the test does
	select {
	case rest := <-secondDone:
		if rest != nil || refused != 1 {
			t.Fatalf("the stream past the bound: handed on %v, %d refused; want closed unread, 1 refused", rest != nil, refused)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the stream past the bound was read on (held %d of %d)", sr.held.Load(), limit)
	}
	second.Close()

	if _, err := firstSend.Write(msg[150<<10:]); err != nil {
		t.Fatal(err)
	}
	if rest := <-firstDone; rest != nil || len(delivered) != 1 || len(delivered[0]) != len(msg) {
		t.Fatalf("the first stream: handed on %v, delivered %d messages", rest != nil, len(delivered))
	}
	if h := sr.held.Load(); h != 0 {
		t.Fatalf("%d bytes still held with no stream read", h)
	}
}
