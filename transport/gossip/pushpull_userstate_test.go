package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// TestPushPullClaimingAUserStateIsRefused: a push/pull state whose header
// claims a user state (no member sends one: LocalState is empty) is
// closed unread, accepted or a dialed stream's reply, with and without a
// key. memberlist (v0.7.0) makes room for the user state the header
// claims, up to 20 MiB, before it reads a byte of it: a stream of a few
// dozen bytes held 20 MiB until its deadline, past maxPushNodes' bound
// and outside maxHeldStreamBytes (64 such streams, 1.3 GiB).
func TestPushPullClaimingAUserStateIsRefused(t *testing.T) {
	label := []byte{mlHasLabelMsg, 1, 'l'}
	for _, keyed := range []bool{false, true} {
		for _, c := range []struct {
			name    string
			msg     []byte
			refused bool
		}{
			{"20 MiB of user state", pushPullHead(t, 0, 20<<20), true},
			{"a byte of user state", pushPullHead(t, 0, 1), true},
			{"no user state", pushPullHead(t, 0, 0), false},
		} {
			t.Run(fmt.Sprintf("key=%v/%s/accepted", keyed, c.name), func(t *testing.T) {
				s := append(bytes.Clone(label), c.msg...)
				if keyed {
					s = sealStream(t, "l", streamKey, mlGCMVersion, c.msg)
				}
				sr, got := testStreamReader(t, "l", keyed)
				rest := sr.take(newBytesConn(s))
				switch {
				case c.refused && (rest != nil || len(*got) != 1 || (*got)[0] != nil):
					t.Fatalf("left to memberlist: %v; delivered %d (want one refusal, counted)", rest != nil, len(*got))
				case !c.refused && (rest == nil || len(*got) != 0):
					t.Fatalf("not left to memberlist (delivered %d)", len(*got))
				}
			})
			t.Run(fmt.Sprintf("key=%v/%s/reply", keyed, c.name), func(t *testing.T) {
				reply := c.msg
				if keyed {
					reply = sealStream(t, "l", streamKey, mlGCMVersion, c.msg)[3:] // no label header on a reply
				}
				sr, got := testStreamReader(t, "l", keyed)
				conn := &replyConn{countingConn: &countingConn{Conn: newBytesConn(reply), stats: &wireStats{}}, sr: sr}
				all, err := io.ReadAll(conn)
				switch {
				case c.refused && (!errors.Is(err, errRefusedReply) || len(*got) != 1):
					t.Fatalf("read %d bytes, %v; counted %d (want refused, counted)", len(all), err, len(*got))
				case !c.refused && (err != nil || !bytes.Equal(all, reply)):
					t.Fatalf("read %d bytes of %d, %v", len(all), len(reply), err)
				}
			})
		}
	}
}
