package transport

import "testing"

// TestSipHash24: the reference vector of SipHash-2-4 (its paper's
// appendix: key 00..0f, message 00..0e), and sipWords agrees with
// sipHash24 on 16-byte messages.
func TestSipHash24(t *testing.T) {
	const k0, k1 = 0x0706050403020100, 0x0f0e0d0c0b0a0908
	msg := make([]byte, 15)
	for i := range msg {
		msg[i] = byte(i)
	}
	if got := sipHash24(k0, k1, string(msg)); got != 0xa129ca6149be45e5 {
		t.Fatalf("SipHash-2-4 of the reference vector = %#x, want 0xa129ca6149be45e5", got)
	}
	for _, w := range [][2]uint64{{0, 0}, {1, 2}, {0x0706050403020100, 0x0f0e0d0c0b0a0908}, {^uint64(0), 1 << 63}} {
		var b [16]byte
		for i := range 8 {
			b[i], b[8+i] = byte(w[0]>>(8*i)), byte(w[1]>>(8*i))
		}
		if got, want := sipWords(k0, k1, w[0], w[1]), sipHash24(k0, k1, string(b[:])); got != want {
			t.Errorf("sipWords(%#x, %#x) = %#x, sipHash24 of its bytes %#x", w[0], w[1], got, want)
		}
	}
}
