package gossip

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// pushPullHead returns memberlist's push/pull message (its type byte and
// header, as memberlist's codec writes it) claiming nodes members, and
// none of them.
func pushPullHead(t testing.TB, nodes int) []byte {
	t.Helper()
	var b []byte
	header := struct {
		Nodes        int
		UserStateLen int
		Join         bool
	}{Nodes: nodes, Join: true}
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
			{"a million members", pushPullHead(t, 1<<20), true},
			{"one past the bound", pushPullHead(t, maxPushNodes+1), true},
			{"the bound", pushPullHead(t, maxPushNodes), false},
			{"none", pushPullHead(t, 0), false},
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
