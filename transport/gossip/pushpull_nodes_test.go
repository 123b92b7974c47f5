package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// pushPullHead returns memberlist's push/pull message (its type byte and
// header, as memberlist's codec writes it) claiming nodes members and a
// user state of userState bytes, and holding none of them.
func pushPullHead(t testing.TB, nodes, userState int) []byte {
	t.Helper()
	var b []byte
	header := struct {
		Nodes        int
		UserStateLen int
		Join         bool
	}{Nodes: nodes, UserStateLen: userState, Join: true}
	if err := codec.NewEncoderBytes(&b, &codec.MsgpackHandle{}).Encode(header); err != nil {
		t.Fatal(err)
	}
	return append([]byte{mlPushPullMsg}, b...)
}

// TestStreamReaderRefusesOversizedStates: a push/pull state whose header
// claims more members than maxPushNodes is closed unread, with and
// without a key, and so is a compressed message (which no member sends);
// one that claims maxPushNodes goes to memberlist as it came. memberlist
// made room for as many members as the header said, up to 1,048,576 of
// 112 bytes, before it read one: 52 bytes from anyone who could reach a
// member with no key held 112 MiB until the stream's deadline (found by
// review).
func TestStreamReaderRefusesOversizedStates(t *testing.T) {
	label := []byte{mlHasLabelMsg, 1, 'l'}
	for _, keyed := range []bool{false, true} {
		stream := func(msg []byte) []byte {
			if keyed {
				return sealStream(t, "l", streamKey, mlGCMVersion, msg)
			}
			return append(bytes.Clone(label), msg...)
		}
		for _, c := range []struct {
			name    string
			msg     []byte
			refused bool
		}{
			{"a million members", pushPullHead(t, 1<<20, 0), true},
			{"one past the bound", pushPullHead(t, maxPushNodes+1, 0), true},
			{"the bound", pushPullHead(t, maxPushNodes, 0), false},
			{"none", pushPullHead(t, 0, 0), false},
			{"compressed", []byte{mlCompressMsg, 0x82}, true},
		} {
			t.Run(fmt.Sprintf("key=%v/%s", keyed, c.name), func(t *testing.T) {
				sr, got := testStreamReader(t, "l", keyed)
				s := stream(c.msg)
				rest := sr.take(newBytesConn(s))
				if c.refused {
					if rest != nil || len(*got) != 1 || (*got)[0] != nil {
						t.Fatalf("left to memberlist: %v; delivered %d (want one refusal, counted)", rest != nil, len(*got))
					}
					return
				}
				if rest == nil || len(*got) != 0 {
					t.Fatalf("not left to memberlist (delivered %d)", len(*got))
				}
				if all, _ := io.ReadAll(rest); !bytes.Equal(all, s) {
					t.Fatalf("memberlist reads %d bytes, the stream had %d", len(all), len(s))
				}
			})
		}
	}
}

// TestDialedStreamsRepliesAreChecked: the first message memberlist reads
// from a stream this member dialed (a push and pull's reply, a ping's
// ack) is checked as an accepted stream's is: an encrypted reply that
// opens empty, or to padding past its start, would panic memberlist's
// readStream (a member holding the key could take this process down by
// answering its push and pull so), and a state claiming more than
// maxPushNodes members would make it allocate for them; both are refused
// with an error and counted. Any other reply reaches memberlist byte for
// byte.
func TestDialedStreamsRepliesAreChecked(t *testing.T) {
	// A reply has no label header; the label is in the additional data.
	sealReply := func(vsn byte, plain []byte) []byte {
		return sealStream(t, "l", streamKey, vsn, plain)[3:]
	}
	padded := func(plain []byte, pad byte) []byte { // version 0's padding, the last byte saying how much
		return append(bytes.Clone(plain), bytes.Repeat([]byte{pad}, 16-len(plain)%16)...)
	}
	for _, c := range []struct {
		name    string
		keyed   bool
		reply   []byte
		refused bool
	}{
		{"empty, encrypted", true, sealReply(mlGCMVersion, nil), true},
		{"padding past its start, version 0", true, sealReply(0, padded(nil, 200)), true},
		{"a million members, encrypted", true, sealReply(mlGCMVersion, pushPullHead(t, 1<<20, 0)), true},
		{"a million members, version 0", true, sealReply(0, padded(pushPullHead(t, 1<<20, 0), byte(16-(len(pushPullHead(t, 1<<20, 0)))%16))), true},
		{"a million members", false, pushPullHead(t, 1<<20, 0), true},
		{"compressed", false, []byte{mlCompressMsg, 0x82}, true},
		{"a state, encrypted", true, sealReply(mlGCMVersion, pushPullHead(t, 3, 0)), false},
		{"a state", false, pushPullHead(t, maxPushNodes, 0), false},
		{"an error", false, []byte{13, 0x81}, false},
		{"nothing", false, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			sr, got := testStreamReader(t, "l", c.keyed)
			conn := &replyConn{countingConn: &countingConn{Conn: newBytesConn(c.reply), stats: &wireStats{}}, sr: sr}
			all, err := io.ReadAll(conn)
			if c.refused {
				if !errors.Is(err, errRefusedReply) || len(all) != 0 || len(*got) != 1 || (*got)[0] != nil {
					t.Fatalf("read %d bytes, %v; counted %d (want refused, counted)", len(all), err, len(*got))
				}
				return
			}
			if err != nil || !bytes.Equal(all, c.reply) || len(*got) != 0 {
				t.Fatalf("read %d bytes of %d, %v; counted %d", len(all), len(c.reply), err, len(*got))
			}
		})
	}
}

// TestAJoinAnsweredWithAnEmptyMessageFails: a member joining an address
// whose answer to its push and pull is an encrypted message that opens
// empty (only a holder of the key can write one) gets an error from the
// join; memberlist's readStream, reading it, indexed its type byte with
// no check, and its panic took the process down.
func TestAJoinAnsweredWithAnEmptyMessageFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reply := sealStream(t, processLabel, streamKey, mlGCMVersion, nil)[2+len(processLabel):] // no label header
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.Write(reply)
				io.Copy(io.Discard, conn) // until the member closes
			}()
		}
	}()
	a := startNode(t, "a", nil, func(c *Config) { c.SecretKey = streamKey })
	var n int
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("the join panicked: %v", p)
			}
		}()
		n, err = a.r.ml.Join([]string{ln.Addr().String()})
	}()
	if err == nil || n != 0 {
		t.Fatalf("joined %d, %v: want an error", n, err)
	}
}
