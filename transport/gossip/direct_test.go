package gossip

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"net"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/wire"
	"github.com/hashicorp/memberlist"
)

// TestDatagramsAsMemberlistMakesThem: with and without a label and a key,
// the datagrams the member seals itself are opened by memberlist's own
// receiving (the peer's direct opening off), and the datagrams memberlist
// seals (SendBestEffort) are opened by the transport (DirectFrames), with
// nothing refused as not ours and no error from memberlist. (Members of
// the release before this one: a direct delta in a datagram of its own,
// which memberlist would refuse, goes only to members whose transport
// opens it, which TestDirectDeltasGoWithoutTheSendersName covers.)
func TestDatagramsAsMemberlistMakesThem(t *testing.T) {
	saved := delegateMax
	delegateMax = directVersion
	defer func() { delegateMax = saved }()
	key := func(c *Config) { c.SecretKey = []byte("0123456789abcdef") }
	label := func(c *Config) { c.Label = "edge-7" }
	plain := func(c *Config) { c.Label = "" }
	for name, opts := range map[string][]nodeOption{
		"plain": {plain}, "label": {label}, "key": {plain, key}, "key and label": {key, label},
	} {
		t.Run(name, func(t *testing.T) {
			nodes := startCluster(t, 2, opts...)
			a, b := nodes[0], nodes[1]
			saved := b.r.out.t.direct.Swap(nil) // b: memberlist opens everything
			before := b.r.Stats().DirectFrames
			for i := range 20 {
				a.rep.write(a.r, fmt.Sprint("k", i), []byte("v"), false)
			}
			waitValue(t, 5*time.Second, "k19", []byte("v"), b)
			// At most the datagram the reader held as the opener went off.
			if n := b.r.Stats().DirectFrames - before; n > 1 {
				t.Fatalf("%d frames opened directly with the opener off", n)
			}
			opened := make(chan []byte, 256)
			tapDirect(b, saved.open, opened)
			frame := appendCall(nil, a.r.cfg.Name, callReply, 1<<60, []byte{0}) // an answer nobody waits for
			if err := a.r.ml.SendBestEffort(a.r.lookup(b.r.cfg.Name), frame); err != nil {
				t.Fatal(err)
			}
			for found := false; !found; {
				select {
				case m := <-opened:
					found = bytes.Equal(m, frame)
				case <-time.After(5 * time.Second):
					t.Fatal("the datagram memberlist sealed was not opened by the transport")
				}
			}
			for _, nd := range nodes {
				if s := nd.r.Stats(); s.BadFrames != 0 || s.MemberlistErrors != 0 {
					t.Fatalf("%s: bad frames %d, memberlist errors %d", nd.r.cfg.Name, s.BadFrames, s.MemberlistErrors)
				}
			}
		})
	}
}

// tapDirect makes n's transport open datagrams with open and hand a copy
// of each frame it opens to frames, when there is room, before the
// protocol gets it as before.
func tapDirect(n *node, open opener, frames chan<- []byte) {
	n.r.out.t.direct.Store(&direct{open: open, deliver: func(m []byte) {
		select {
		case frames <- bytes.Clone(m):
		default:
		}
		n.r.receivedDirect(m)
	}})
}

// TestSealerMakesWhatOpenerOpens: what the sealer makes for a frame, with
// and without a label and a key, opens to that frame; the ciphertext does
// not hold it in the clear, and a datagram sealed with a key opens only
// with it. A direct delta sealed raw goes in a datagram of its own type,
// four bytes shorter, and opens to the same frame; any other frame sealed
// raw is a user message as before.
func TestSealerMakesWhatOpenerOpens(t *testing.T) {
	key, other := []byte("0123456789abcdef"), []byte("fedcba9876543210")
	ring := func(k []byte) *memberlist.Keyring {
		kr, err := memberlist.NewKeyring(nil, k)
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	named := []byte("\x01\x01a frame of bcache's")
	direct := append(directHeader[:], "a frame of bcache's"...)
	for _, c := range []struct {
		label string
		key   []byte
	}{{"", nil}, {"l", nil}, {"", key}, {"edge-7", key}} {
		s := &sealer{label: []byte(c.label)}
		o := opener{label: c.label}
		if c.key != nil {
			s.keyring, o.keyring = ring(c.key), ring(c.key)
		}
		for i := range 6 { // the cached cipher, and pooled buffers
			frame, raw := named, i%2 == 1
			if i >= 2 {
				frame = direct
			}
			bp, err := s.seal(frame, raw)
			if err != nil {
				t.Fatal(err)
			}
			short := raw && i >= 2
			if user, _ := s.seal(frame, false); len(*bp) != len(*user)-4*btoi(short) {
				t.Fatalf("label %q, key %v, raw %v: %d bytes against %d as a user message", c.label, c.key != nil, raw, len(*bp), len(*user))
			} else {
				s.release(user)
			}
			got, ok := o.userMessage(*bp, 0)
			if !ok || !bytes.Equal(got, frame) {
				t.Fatalf("label %q, key %v: opened %q, %v", c.label, c.key != nil, got, ok)
			}
			if c.key != nil {
				if bytes.Contains(*bp, []byte("a frame")) {
					t.Fatalf("label %q: the frame is in the clear", c.label)
				}
				if _, ok := (&opener{label: c.label, keyring: ring(other)}).userMessage(*bp, 0); ok {
					t.Fatalf("label %q: opened with another key", c.label)
				}
			}
			s.release(bp)
		}
	}
}

// datagram builds a datagram as memberlist's sending does: a message of
// type typ, a checksum header if crc, encrypted with key if any (the label
// as additional data), a label header if label.
// TestDirectDatagramsOfAnotherWireVersionAreNotOpened: the type byte of a
// direct delta's own datagram stands for the wire version; one of
// another version goes to memberlist (which refuses it), never to the
// protocol as a frame of this one.
func TestDirectDatagramsOfAnotherWireVersionAreNotOpened(t *testing.T) {
	var o opener
	body := []byte("a direct delta's body")
	if f, ok := o.userMessage(append([]byte{mlDirectMsg}, body...), 0); !ok || !bytes.Equal(f, append(directHeader[:], body...)) {
		t.Fatalf("this version's direct datagram opened to %q, %v", f, ok)
	}
	if f, ok := o.userMessage(append([]byte{mlDirectMsg + 1}, body...), 0); ok {
		t.Fatalf("another version's direct datagram opened to %q", f)
	}
}

// TestDirectDatagramsOpenInPlace: a direct delta's own datagram, read
// after room for the frame's header, opens to its frame without an
// allocation: plain, over the datagram's own buffer (the header in the
// room before the type byte, which it overwrites); encrypted, in the
// opener's plaintext buffer. Without the room, a plain one is copied.
func TestDirectDatagramsOpenInPlace(t *testing.T) {
	kr, err := memberlist.NewKeyring(nil, []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	frame := append(directHeader[:], "a direct delta's body"...)
	for _, c := range []struct {
		name  string
		label string
		ring  *memberlist.Keyring
	}{{"plain", "", nil}, {"label", "edge-7", nil}, {"key", "", kr}, {"key and label", "edge-7", kr}} {
		t.Run(c.name, func(t *testing.T) {
			s, o := &sealer{label: []byte(c.label), keyring: c.ring}, &opener{label: c.label, keyring: c.ring}
			bp, err := s.seal(frame, true)
			if err != nil {
				t.Fatal(err)
			}
			buf := append(make([]byte, directRoom), *bp...)
			got, ok := o.userMessage(buf, directRoom)
			if !ok || !bytes.Equal(got, frame) {
				t.Fatalf("opened %q, %v", got, ok)
			}
			if inBuf := &got[len(got)-1] == &buf[len(buf)-1]; inBuf != (c.ring == nil) {
				t.Fatalf("frame over the datagram's buffer: %v", inBuf)
			}
			if n := testing.AllocsPerRun(100, func() {
				copy(buf[directRoom:], *bp) // the header went over the datagram's bytes
				o.userMessage(buf, directRoom)
			}); n != 0 {
				t.Fatalf("%.0f allocations to open a direct datagram, want 0", n)
			}
			if c.ring != nil {
				return
			}
			if got, ok := o.userMessage(*bp, 0); !ok || !bytes.Equal(got, frame) || &got[0] == &(*bp)[0] {
				t.Fatalf("without room: opened %q, %v, over the datagram: %v", got, ok, &got[0] == &(*bp)[0])
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func datagram(t testing.TB, label string, key []byte, crc bool, typ byte, msg []byte) []byte {
	t.Helper()
	b := append([]byte{typ}, msg...)
	if crc {
		h := []byte{mlHasCrcMsg, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(h[1:], crc32.ChecksumIEEE(b))
		b = append(h, b...)
	}
	if key != nil {
		nonce := bytes.Repeat([]byte{7}, mlNonceSize)
		b = testGCM(t, key).Seal(append([]byte{mlGCMVersion}, nonce...), nonce, b, []byte(label))
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
			for _, room := range []int{0, directRoom} {
				in := append(make([]byte, room), c.dgram...)
				got, ok := c.open.userMessage(in, room)
				if ok != c.want || ok && !bytes.Equal(got, msg) {
					t.Fatalf("room %d: userMessage: %q, %v; want %v", room, got, ok, c.want)
				}
				if ok {
					clear(in)
					clear(c.open.plain[:cap(c.open.plain)]) // reused for the next datagram
					if !bytes.Equal(got, msg) {
						t.Fatal("the message shares memory with the datagram, or the opener, which the reader reuses")
					}
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
// message that is not what follows a user message's type byte, or a
// direct delta's frame; it opens a datagram read after room for the
// frame's header as it opens one without.
func FuzzOpener(f *testing.F) {
	key := []byte("0123456789abcdef")
	f.Add(datagram(f, "l", key, true, mlUserMsg, []byte("frame")))
	f.Add(datagram(f, "", nil, true, mlUserMsg, []byte("frame")))
	f.Add([]byte{mlHasLabelMsg, 200, 'x'})
	f.Add([]byte{mlHasCrcMsg, 1, 2})
	f.Add(datagram(f, "l", key, true, mlDirectMsg, []byte("body")))
	f.Add([]byte{mlDirectMsg, 'b'})
	kr, err := memberlist.NewKeyring(nil, key)
	if err != nil {
		f.Fatal(err)
	}
	openers := []opener{{}, {label: "l"}, {label: "l", keyring: kr}, {keyring: kr}}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, o := range openers {
			msg, ok := o.userMessage(bytes.Clone(b), 0)
			frame := bytes.HasPrefix(msg, directHeader[:]) && bytes.HasSuffix(b, msg[len(directHeader):])
			if ok && o.keyring == nil && !bytes.HasSuffix(b, msg) && !frame {
				t.Fatalf("%q from %q: not the datagram's tail, or a direct delta's frame of it", msg, b)
			}
			msg = bytes.Clone(msg)
			inPlace, okInPlace := o.userMessage(append(make([]byte, directRoom), b...), directRoom)
			if okInPlace != ok || !bytes.Equal(inPlace, msg) {
				t.Fatalf("%q: opened to %q, %v after room, %q, %v without", b, inPlace, okInPlace, msg, ok)
			}
		}
	})
}

// TestReceivedDirectDeltaAllocatesOnlyItsRecords: from the datagram the
// reader read to the records applied, a direct delta costs its records'
// keys and values and the decoded message: the datagram opens in place
// (TestDirectDatagramsOpenInPlace), and its records are decoded into a
// reused slice. Each of those was an allocation of every datagram; at
// 100,000 writes a second on three members, the copies of the datagrams
// and the records' slices were three tenths of the bytes a member
// allocated, so of the collector's work.
func TestReceivedDirectDeltaAllocatesOnlyItsRecords(t *testing.T) {
	// AllocsPerRun counts the whole process's allocations: the members'
	// probes, push-pulls and sessions wait an hour, and the least of a few
	// measurements is taken (memberlist's gossip ticks every 20 ms).
	nodes := startCluster(t, 2, func(c *Config) {
		c.Timings.ProbeInterval, c.Timings.PushPullInterval = time.Hour, time.Hour
		c.Protocol.AntiEntropyInterval = time.Hour
	})
	a, b := nodes[0], nodes[1]
	saved := b.r.out.t.direct.Load()
	frames := make(chan []byte, 64)
	tapDirect(b, saved.open, frames)
	for i := range 8 {
		a.rep.write(a.r, fmt.Sprintf("k%015d", i), make([]byte, 100), false)
	}
	var frame []byte
	for frame == nil { // the members' first exchange opens too: a named frame
		select {
		case f := <-frames:
			if isAnonymous(f) {
				frame = f
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no direct delta came")
		}
	}
	b.r.out.t.direct.Store(saved)
	m, err := wire.NewCodec(wire.Limits{}).Decode(frame[len(anonymousHeader):])
	if err != nil {
		t.Fatal(err)
	}
	d, ok := m.(*wire.Direct)
	if !ok || len(d.Records) == 0 {
		t.Fatalf("the datagram held %T, not a Direct of the writes", m)
	}
	k := len(d.Records)
	allocs := math.Inf(1)
	for range 5 {
		allocs = min(allocs, testing.AllocsPerRun(100, func() { b.r.receivedDirect(frame) }))
	}
	if allocs > float64(2*k+1) {
		t.Fatalf("receiving a direct delta of %d records: %.0f allocations, want at most %d", k, allocs, 2*k+1)
	}
}

// A datagram of encryption version 0 whose padding says more than it
// holds makes memberlist's pkcs7decode slice past the start, and the
// panic took the process down (found by review): the opener refuses it
// (nil, true: counted and dropped). A version 0 datagram memberlist reads
// without a panic still goes to it.
func TestOpenerRefusesWhatCrashesMemberlist(t *testing.T) {
	key := []byte("0123456789abcdef")
	kr, err := memberlist.NewKeyring(nil, key)
	if err != nil {
		t.Fatal(err)
	}
	o := opener{label: "l", keyring: kr}
	v0 := func(plain []byte) []byte {
		nonce := bytes.Repeat([]byte{7}, mlNonceSize)
		b := testGCM(t, key).Seal(append([]byte{0}, nonce...), nonce, plain, []byte("l"))
		return append([]byte{mlHasLabelMsg, 1, 'l'}, b...)
	}
	msg, ok := o.userMessage(v0(append(make([]byte, 15), 200)), 0)
	if !ok || msg != nil {
		t.Fatalf("padding past the start: %q, %v; want nil, true", msg, ok)
	}
	for name, plain := range map[string][]byte{
		"padding alone":  bytes.Repeat([]byte{16}, 16),
		"a user message": append([]byte{mlUserMsg, 'f', 'r', 'a', 'm', 'e'}, bytes.Repeat([]byte{10}, 10)...),
	} {
		if msg, ok := o.userMessage(v0(plain), 0); ok {
			t.Fatalf("%s: taken (%q), not left to memberlist", name, msg)
		}
	}
}

// A datagram the opener refuses (one memberlist would panic on) is
// counted as a frame that does not parse, and not as a frame opened
// direct: DirectFrames counts the datagrams holding one of bcache's
// messages, and a refused one holds none (found by review).
func TestRefusedDatagramIsNotADirectFrame(t *testing.T) {
	key := []byte("0123456789abcdef")
	nd := startNode(t, "a", nil, func(c *Config) { c.SecretKey = key })
	before := nd.r.Stats()
	nonce := bytes.Repeat([]byte{7}, mlNonceSize)
	label := []byte(processLabel)
	crash := testGCM(t, key).Seal(append([]byte{0}, nonce...), nonce, append(make([]byte, 15), 200), label)
	crash = append(append([]byte{mlHasLabelMsg, byte(len(label))}, label...), crash...)
	conn, err := net.Dial("udp", nd.r.ml.LocalNode().FullAddress().Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	await.Until(t, 5*time.Second, func() bool {
		conn.Write(crash) // again until one is read: UDP may drop it
		return nd.r.Stats().BadFrames != before.BadFrames
	}, "the datagram was not counted")
	if after := nd.r.Stats(); after.DirectFrames != before.DirectFrames {
		t.Fatalf("DirectFrames %d -> %d for datagrams refused", before.DirectFrames, after.DirectFrames)
	}
}
