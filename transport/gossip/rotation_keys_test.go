package gossip

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestRotationSealsWithTheSecretKeyAndOpensWithAnyAccepted: during a key
// rotation, what the transport seals itself (a datagram, a direct delta's
// own datagram, a stream) goes under the member's SecretKey, and a member
// that accepts that key, first or not in its keyring, opens it whole, with
// one opener for senders of either key; a member that does not hold the
// key opens nothing and hands the bytes to memberlist as they came.
func TestRotationSealsWithTheSecretKeyAndOpensWithAnyAccepted(t *testing.T) {
	old, nu := []byte("0123456789abcdef"), []byte("fedcba9876543210fedcba98")
	ring := func(primary []byte, others ...[]byte) *memberlist.Keyring {
		kr, err := memberlist.NewKeyring(others, primary)
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	const label = "edge-7"
	rings := map[string]*memberlist.Keyring{
		"old":          ring(old),
		"old+accepted": ring(old, nu),
		"new+accepted": ring(nu, old),
		"new":          ring(nu),
	}
	holds := func(name string, key []byte) bool {
		for _, k := range rings[name].GetKeys() {
			if bytes.Equal(k, key) {
				return true
			}
		}
		return false
	}
	named := []byte("\x01\x01a frame of bcache's")
	direct := append(directHeader[:], "a direct delta's body"...)
	openers := map[string]*opener{}
	readers := map[string]*streamReader{}
	var got [][]byte
	for name, kr := range rings {
		openers[name] = &opener{label: label, keyring: kr}
		readers[name] = &streamReader{label: label, keyring: kr, deliver: func(b []byte) { got = append(got, bytes.Clone(b)) }}
	}
	for round := range 2 { // the openers' ciphers cached from the round before
		for from, skr := range rings {
			key := skr.GetPrimaryKey()
			s := &sealer{label: []byte(label), keyring: skr}
			for to, o := range openers {
				want := holds(to, key)
				for _, c := range []struct {
					frame []byte
					raw   bool
				}{{named, false}, {named, true}, {direct, false}, {direct, true}} {
					what := fmt.Sprintf("round %d, %s to %s, raw %v, direct %v", round, from, to, c.raw, isDirect(c.frame))
					bp, err := s.seal(c.frame, c.raw)
					if err != nil {
						t.Fatal(err)
					}
					sent := bytes.Clone(*bp)
					s.release(bp)
					buf := append(make([]byte, directRoom), sent...)
					msg, ok := o.userMessage(buf, directRoom)
					switch {
					case want && (!ok || !bytes.Equal(msg, c.frame)):
						t.Fatalf("%s: opened to %q, %v; want the frame", what, msg, ok)
					case !want && ok:
						t.Fatalf("%s: opened to %q without the key", what, msg)
					case !want && !bytes.Equal(buf[directRoom:], sent):
						t.Fatalf("%s: the datagram changed before it went to memberlist", what)
					}
				}
				// A frame too large for a datagram, on a stream.
				frame := bytes.Repeat([]byte("a repair "), 50_000)
				a, b := net.Pipe()
				go func() { s.writeReliable(a, frame); a.Close() }()
				got = nil
				rest := readers[to].take(b)
				switch {
				case want && (rest != nil || len(got) != 1 || !bytes.Equal(got[0], frame)):
					t.Fatalf("round %d, %s to %s: stream left to memberlist %v, %d messages delivered; want the frame", round, from, to, rest != nil, len(got))
				case !want && (rest == nil || len(got) != 0):
					t.Fatalf("round %d, %s to %s: a stream under a key not held was delivered (%d) or not handed on (%v)", round, from, to, len(got), rest == nil)
				case !want:
					io.Copy(io.Discard, rest)
				}
				b.Close()
			}
		}
	}
}

// TestKeysAreCopiedFromTheConfig: a caller that clears its key buffers
// once the member started (as code handling secrets does) leaves the
// member's keys as they were: memberlist's keyring kept the Config's
// slices, and a member whose caller cleared them sealed with zeros, which
// its peers could not open (found by review; bcache.New copied them, a
// direct user of this package did not).
func TestKeysAreCopiedFromTheConfig(t *testing.T) {
	secret, accepted := []byte("0123456789abcdef"), []byte("fedcba9876543210")
	keys := func(c *Config) { c.SecretKey, c.AcceptKeys = bytes.Clone(secret), [][]byte{bytes.Clone(accepted)} }
	nodes := startCluster(t, 2, keys)
	var given []byte // n1's own buffers, cleared below
	n1 := startNode(t, "n1b", []string{nodes[0].r.Addr()}, func(c *Config) {
		given = bytes.Clone(secret)
		c.SecretKey, c.AcceptKeys = given, [][]byte{bytes.Clone(accepted)}
	})
	waitMembers(t, 3, append(nodes, n1)...)
	clear(given)
	n1.rep.write(n1.r, "k", []byte("v"), false)
	waitValue(t, 5*time.Second, "k", []byte("v"), append(nodes, n1)...)
}
