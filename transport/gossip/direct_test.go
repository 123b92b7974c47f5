package gossip

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestTransportOpensFramesAsMemberlistSendsThem: with and without a label
// and a key, the frames memberlist sends reach the other member through
// the transport's own opening (DirectFrames), and nothing it opens is
// refused as not ours.
func TestTransportOpensFramesAsMemberlistSendsThem(t *testing.T) {
	key := func(c *Config) { c.SecretKey = []byte("0123456789abcdef") }
	label := func(c *Config) { c.Label = "edge-7" }
	for name, opts := range map[string][]nodeOption{
		"plain": nil, "label": {label}, "key": {key}, "key and label": {key, label},
	} {
		t.Run(name, func(t *testing.T) {
			nodes := startCluster(t, 2, opts...)
			for i := range 20 {
				nodes[0].rep.write(nodes[0].r, fmt.Sprint("k", i), []byte("v"), false)
			}
			waitValue(t, 5*time.Second, "k19", []byte("v"), nodes[1])
			s := nodes[1].r.Stats()
			if s.DirectFrames == 0 || s.BadFrames != 0 || s.MemberlistErrors != 0 {
				t.Fatalf("direct frames %d, bad frames %d, memberlist errors %d: want some, none, none",
					s.DirectFrames, s.BadFrames, s.MemberlistErrors)
			}
		})
	}
}

// datagram builds a datagram as memberlist's sending does: a message of
// type typ, a checksum header if crc, encrypted with key if any (the label
// as additional data), a label header if label.
func datagram(t testing.TB, label string, key []byte, crc bool, typ byte, msg []byte) []byte {
	t.Helper()
	b := append([]byte{typ}, msg...)
	if crc {
		h := []byte{mlHasCrcMsg, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(h[1:], crc32.ChecksumIEEE(b))
		b = append(h, b...)
	}
	if key != nil {
		block, err := aes.NewCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			t.Fatal(err)
		}
		nonce := bytes.Repeat([]byte{7}, mlNonceSize)
		b = aead.Seal(append([]byte{mlGCMVersion}, nonce...), nonce, b, []byte(label))
	}
	if label != "" {
		b = append([]byte{mlHasLabelMsg, byte(len(label))}, append([]byte(label), b...)...)
	}
	return b
}

// TestOpenerTakesOnlyWhatItCanOpen: the opener returns a user message
// that memberlist would hand to NotifyMsg, in memory of its own, and
// leaves every other datagram to memberlist: another label, another key,
// a bad checksum, another message type, truncated or malformed headers.
func TestOpenerTakesOnlyWhatItCanOpen(t *testing.T) {
	key, other := []byte("0123456789abcdef"), []byte("fedcba9876543210")
	ring := func(keys ...[]byte) *memberlist.Keyring {
		kr, err := memberlist.NewKeyring(keys[1:], keys[0])
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	msg := []byte("\x01\x01frame")
	for _, c := range []struct {
		name  string
		open  opener
		dgram []byte
		want  bool
	}{
		{"plain", opener{}, datagram(t, "", nil, false, mlUserMsg, msg), true},
		{"plain with a checksum", opener{}, datagram(t, "", nil, true, mlUserMsg, msg), true},
		{"label, key, checksum", opener{label: "l", keyring: ring(key)}, datagram(t, "l", key, true, mlUserMsg, msg), true},
		{"a key the ring accepts", opener{keyring: ring(other, key)}, datagram(t, "", key, true, mlUserMsg, msg), true},
		{"another label", opener{label: "l"}, datagram(t, "m", nil, true, mlUserMsg, msg), false},
		{"no label where one is set", opener{label: "l"}, datagram(t, "", nil, true, mlUserMsg, msg), false},
		{"a label where none is set", opener{}, datagram(t, "l", nil, true, mlUserMsg, msg), false},
		{"another key", opener{keyring: ring(other)}, datagram(t, "", key, true, mlUserMsg, msg), false},
		{"the label changed under encryption", opener{label: "m", keyring: ring(key)}, relabel(datagram(t, "l", key, true, mlUserMsg, msg), "m"), false},
		{"plaintext where a key is set", opener{keyring: ring(key)}, datagram(t, "", nil, true, mlUserMsg, msg), false},
		{"encrypted where none is set", opener{}, datagram(t, "", key, true, mlUserMsg, msg), false},
		{"bad checksum", opener{}, flip(datagram(t, "", nil, true, mlUserMsg, msg), 9), false},
		{"a ping", opener{}, datagram(t, "", nil, true, 0, msg), false},
		{"a compound message", opener{}, datagram(t, "", nil, true, 7, msg), false},
		{"empty", opener{}, nil, false},
		{"a label header cut short", opener{label: "label"}, []byte{mlHasLabelMsg, 5, 'l', 'a'}, false},
		{"an empty label header", opener{}, []byte{mlHasLabelMsg, 0, mlUserMsg, 1}, false},
		{"ciphertext cut short", opener{keyring: ring(key)}, datagram(t, "", key, true, mlUserMsg, msg)[:20], false},
		{"encryption version 0", opener{keyring: ring(key)}, flipTo(datagram(t, "", key, true, mlUserMsg, msg), 0, 0), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := bytes.Clone(c.dgram)
			got, ok := c.open.userMessage(in)
			if ok != c.want || ok && !bytes.Equal(got, msg) {
				t.Fatalf("userMessage: %q, %v; want %v", got, ok, c.want)
			}
			if ok {
				clear(in)
				if !bytes.Equal(got, msg) {
					t.Fatal("the message shares memory with the datagram, which the reader reuses")
				}
			}
		})
	}
}

func relabel(b []byte, label string) []byte {
	n := int(b[1])
	return append([]byte{mlHasLabelMsg, byte(len(label))}, append([]byte(label), b[2+n:]...)...)
}

func flip(b []byte, i int) []byte { b[i] ^= 0xff; return b }

func flipTo(b []byte, i int, v byte) []byte { b[i] = v; return b }

// FuzzOpener: whatever arrives, the opener neither panics nor returns a
// message that is not what follows a user message's type byte.
func FuzzOpener(f *testing.F) {
	key := []byte("0123456789abcdef")
	f.Add(datagram(f, "l", key, true, mlUserMsg, []byte("frame")))
	f.Add(datagram(f, "", nil, true, mlUserMsg, []byte("frame")))
	f.Add([]byte{mlHasLabelMsg, 200, 'x'})
	f.Add([]byte{mlHasCrcMsg, 1, 2})
	kr, err := memberlist.NewKeyring(nil, key)
	if err != nil {
		f.Fatal(err)
	}
	openers := []opener{{}, {label: "l"}, {label: "l", keyring: kr}, {keyring: kr}}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, o := range openers {
			if msg, ok := o.userMessage(bytes.Clone(b)); ok && o.keyring == nil && !bytes.HasSuffix(b, msg) {
				t.Fatalf("%q from %q: not the datagram's tail", msg, b)
			}
		}
	})
}
