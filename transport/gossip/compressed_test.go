package gossip

import (
	"bytes"
	"compress/lzw"
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// compressedMsg returns memberlist's compressed message (after its type
// byte) of plain, as its compressPayload writes it.
func compressedMsg(t testing.TB, plain []byte) []byte {
	t.Helper()
	var lz bytes.Buffer
	w := lzw.NewWriter(&lz, lzw.LSB, 8)
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var out []byte
	if err := codec.NewEncoderBytes(&out, &codec.MsgpackHandle{}).Encode(struct {
		Algo int
		Buf  []byte
	}{0, lz.Bytes()}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOpenerRefusesCompressedDatagrams: a datagram memberlist would
// decompress (a compressed message, alone or a part of a compound one),
// which no member sends, is refused by the opener (nil, true: counted and
// dropped) and by the filter of a caller's transport, with or without a
// key, a label and a checksum, and under encryption version 0. Handed to
// memberlist, a datagram of a few KiB became a user message of a MiB
// (up to 40 MiB, past every datagram's bound), allocated for each
// datagram; the stream reader refused compressed messages already.
func TestOpenerRefusesCompressedDatagrams(t *testing.T) {
	key := []byte("0123456789abcdef")
	kr, err := memberlist.NewKeyring(nil, key)
	if err != nil {
		t.Fatal(err)
	}
	big := append([]byte{mlUserMsg}, bytes.Repeat([]byte{'x'}, 1<<20)...)
	comp := compressedMsg(t, big)
	if len(comp) > 8<<10 {
		t.Fatalf("the compressed message is %d bytes", len(comp))
	}
	part := append([]byte{mlCompressMsg}, comp...)
	compound := []byte{2, 0, 2, 0, 0, mlUserMsg, 'a'}
	binary.BigEndian.PutUint16(compound[3:], uint16(len(part)))
	compound = append(compound, part...)
	nested := []byte{1, 0, 0, mlCompoundMsg}
	binary.BigEndian.PutUint16(nested[1:], uint16(1+len(compound)))
	nested = append(nested, compound...)
	for _, c := range []struct {
		name  string
		typ   byte
		body  []byte
		label string
		key   []byte
		o     opener
	}{
		{"plain", mlCompressMsg, comp, "", nil, opener{}},
		{"label", mlCompressMsg, comp, "l", nil, opener{label: "l"}},
		{"key", mlCompressMsg, comp, "l", key, opener{label: "l", keyring: kr}},
		{"compound", mlCompoundMsg, compound, "l", key, opener{label: "l", keyring: kr}},
		{"compound in a compound", mlCompoundMsg, nested, "", nil, opener{}},
	} {
		for _, crc := range []bool{false, true} {
			d := datagram(t, c.label, c.key, crc, c.typ, c.body)
			if msg, ok := c.o.userMessage(bytes.Clone(d), 0); !ok || msg != nil {
				t.Errorf("%s (checksum %v): %d bytes, %v; want nil, true", c.name, crc, len(msg), ok)
			}
			if !c.o.refuses(bytes.Clone(d)) {
				t.Errorf("%s (checksum %v): not refused by the filter", c.name, crc)
			}
		}
	}
	// Encryption version 0, padded as memberlist pads it.
	o := opener{label: "l", keyring: kr}
	plain := append([]byte{mlCompressMsg}, comp...)
	pad := 16 - len(plain)%16
	plain = append(plain, bytes.Repeat([]byte{byte(pad)}, pad)...)
	nonce := bytes.Repeat([]byte{7}, mlNonceSize)
	v0 := testGCM(t, key).Seal(append([]byte{0}, nonce...), nonce, plain, []byte("l"))
	v0 = append([]byte{mlHasLabelMsg, 1, 'l'}, v0...)
	if msg, ok := o.userMessage(bytes.Clone(v0), 0); !ok || msg != nil {
		t.Errorf("version 0: %d bytes, %v; want nil, true", len(msg), ok)
	}
	if !o.refuses(bytes.Clone(v0)) {
		t.Error("version 0: not refused by the filter")
	}
	// What is not compressed is untouched.
	for _, d := range [][]byte{
		datagram(t, "l", key, true, mlUserMsg, []byte("frame")),
		datagram(t, "l", key, false, mlCompoundMsg, []byte{1, 0, 2, mlUserMsg, 'a'}),
		datagram(t, "l", key, false, mlCompoundMsg, []byte{1, 0, 9, mlCompressMsg}), // truncated: memberlist handles no part
	} {
		if o.refuses(bytes.Clone(d)) {
			t.Errorf("%x: refused", d)
		}
		if msg, ok := o.userMessage(bytes.Clone(d), 0); ok && msg == nil {
			t.Errorf("%x: refused by the opener", d)
		}
	}
}

// TestCompressedDatagramIsRefused: a datagram of under 2 KiB that
// memberlist decompressed to a call request of a MiB from a live member
// had the request served (OnCall got the MiB, past every datagram's
// bound); it is refused, counted as a bad frame.
func TestCompressedDatagramIsRefused(t *testing.T) {
	var served atomic.Int64
	a := startNode(t, "a", nil, func(c *Config) {
		c.OnCall = func(_ string, p []byte) []byte { served.Store(int64(len(p)) + 1); return nil }
	})
	b := startNode(t, "b", []string{a.r.Addr()})
	waitMembers(t, 2, a, b)
	req := appendCall(nil, "b", callRequest, 77, make([]byte, 1<<20))
	d := append([]byte{mlCompressMsg}, compressedMsg(t, append([]byte{mlUserMsg}, req...))...)
	label := []byte(processLabel)
	d = append(append([]byte{mlHasLabelMsg, byte(len(label))}, label...), d...)
	conn, err := net.Dial("udp", a.r.ml.LocalNode().FullAddress().Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	before := a.r.Stats().BadFrames
	await.Until(t, 5*time.Second, func() bool {
		conn.Write(d) // again until one is read: UDP may drop it
		return served.Load() != 0 || a.r.Stats().BadFrames != before
	}, "the datagram was neither served nor refused")
	if n := served.Load(); n != 0 {
		t.Fatalf("a request of %d bytes served from a datagram of %d", n-1, len(d))
	}
}
