package gossip

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// bytesConn is a stream that reads b and then EOF, takes every write, and
// says when it is closed.
type bytesConn struct {
	r      *bytes.Reader
	once   sync.Once
	closed chan struct{}
}

func newBytesConn(b []byte) *bytesConn {
	return &bytesConn{r: bytes.NewReader(b), closed: make(chan struct{})}
}

func (c *bytesConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *bytesConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *bytesConn) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *bytesConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *bytesConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (c *bytesConn) SetDeadline(time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }

var (
	streamKey      = []byte("0123456789abcdef")
	streamOtherKey = []byte("fedcba9876543210")
)

// streamKeyring returns a keyring whose primary key is primary and which
// also takes others.
func streamKeyring(t testing.TB, primary []byte, others ...[]byte) *memberlist.Keyring {
	t.Helper()
	kr, err := memberlist.NewKeyring(others, primary)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// testStreamReader returns a stream reader with label and, if keyed, a
// keyring of streamKey and streamOtherKey, and the messages it delivers.
func testStreamReader(t testing.TB, label string, keyed bool) (*streamReader, *[][]byte) {
	var got [][]byte
	sr := &streamReader{label: label, deliver: func(b []byte) { got = append(got, bytes.Clone(b)) }}
	if keyed {
		sr.keyring = streamKeyring(t, streamKey, streamOtherKey)
	}
	return sr, &got
}

// A user message on a stream, as memberlist's SendReliable and this
// package's sender write it, is read and delivered whole, and nothing goes
// to memberlist: with and without a label and a key (the keyring's other
// key too), at every size of its length's encoding, with a buffer reused
// across messages of growing and shrinking sizes.
func TestStreamReaderReadsUserMessages(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		for _, label := range []string{"", processLabel} {
			t.Run(fmt.Sprintf("key=%v/label=%q", keyed, label), func(t *testing.T) {
				nd := startNode(t, "sender", nil, func(c *Config) {
					c.Label = label
					if keyed {
						c.SecretKey = streamKey
					}
				})
				sr, got := testStreamReader(t, label, keyed)
				other := &sealer{label: []byte(label)}
				if keyed {
					other.keyring = streamKeyring(t, streamOtherKey)
				}
				for _, size := range []int{1, 127, 128, 32767, 32768, 1 << 20, 5 << 20, 300} {
					frame := make([]byte, size)
					rand.Read(frame)
					streams := [][]byte{
						captureStream(t, func(to *memberlist.Node) error { return nd.r.ml.SendReliable(to, frame) }),
						captureStream(t, func(to *memberlist.Node) error { return nd.r.sendReliable(to, frame) }),
						captureStream(t, func(to *memberlist.Node) error { return writeTo(to, other, frame) }),
					}
					for i, s := range streams {
						*got = nil
						if rest := sr.take(newBytesConn(s)); rest != nil {
							t.Fatalf("%d bytes, stream %d: left to memberlist", size, i)
						}
						if len(*got) != 1 || !bytes.Equal((*got)[0], frame) {
							t.Fatalf("%d bytes, stream %d: delivered %d messages, want the frame", size, i, len(*got))
						}
					}
				}
				if n := sr.read.Load(); n != 24 {
					t.Fatalf("%d messages counted read, want 24", n)
				}
			})
		}
	}
}

// writeTo writes frame with s to a stream dialed to the node to.
func writeTo(to *memberlist.Node, s *sealer, frame []byte) error {
	conn, err := net.Dial("tcp", to.FullAddress().Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	return s.writeReliable(conn, frame)
}

// Whatever the reader does not read whole as a user message goes to
// memberlist with every byte it read in front, so that memberlist reads
// the stream as it came: memberlist's own messages, another label, a key
// not in the keyring, a plain stream to a keyed member and the other way
// round, a stream cut short, a header written another way, an empty
// message, one over memberlist's limit, an empty stream.
func TestStreamReaderLeavesTheRestToMemberlist(t *testing.T) {
	frame := make([]byte, 5000)
	rand.Read(frame)
	write := func(label string, kr *memberlist.Keyring, frame []byte) []byte {
		a, b := net.Pipe()
		out := make(chan []byte, 1)
		go func() { all, _ := io.ReadAll(b); out <- all }()
		if err := (&sealer{label: []byte(label), keyring: kr}).writeReliable(a, frame); err != nil {
			t.Fatal(err)
		}
		a.Close()
		return <-out
	}
	plain := write("l", nil, frame)
	keyed := write("l", streamKeyring(t, streamKey), frame)
	otherKey := write("l", streamKeyring(t, []byte("0000000000000000")), frame)
	otherLabel := write("m", nil, frame)
	// The length as a uint16 (0xcd), which memberlist's decoder takes and
	// its encoder never writes.
	head := append(append([]byte{mlHasLabelMsg, 1, 'l', mlUserMsg}, userMsgHeader...), 0xcd, 0x13, 0x88)
	otherHeader := append(head, frame...)
	tooLong := append(append([]byte{mlHasLabelMsg, 1, 'l', mlUserMsg}, userMsgHeader...), 0xd2, 0x02, 0, 0, 0)
	empty := append(append([]byte{mlHasLabelMsg, 1, 'l', mlUserMsg}, userMsgHeader...), 0)
	pushPull := []byte{mlHasLabelMsg, 1, 'l', 6, 0x83, 0xa5}
	encLong := binary.BigEndian.AppendUint32([]byte{mlHasLabelMsg, 1, 'l', mlEncryptMsg}, mlMaxStreamMsg+1)
	cases := []struct {
		name   string
		keyed  bool
		stream []byte
	}{
		{"memberlist's push and pull", false, pushPull},
		{"another label", false, otherLabel},
		{"no label", false, plain[3:]},
		{"a key not in the keyring", true, otherKey},
		{"plain to a keyed member", true, plain},
		{"encrypted to a member with no key", false, keyed},
		{"cut short", false, plain[:len(plain)-1]},
		{"encrypted, cut short", true, keyed[:len(keyed)-1]},
		{"encrypted, a byte changed", true, flip(bytes.Clone(keyed), len(keyed)-20)},
		{"encrypted, its length changed", true, flip(bytes.Clone(keyed), 7)},
		{"a header written another way", false, otherHeader},
		{"an empty message", false, empty},
		{"over memberlist's limit", false, tooLong},
		{"encrypted, over memberlist's limit", true, encLong},
		{"empty", false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sr, got := testStreamReader(t, "l", c.keyed)
			rest := sr.take(newBytesConn(c.stream))
			if rest == nil {
				t.Fatalf("read as a user message: %d delivered", len(*got))
			}
			if len(*got) != 0 {
				t.Fatal("delivered, and left to memberlist")
			}
			if all, _ := io.ReadAll(rest); !bytes.Equal(all, c.stream) {
				t.Fatalf("memberlist reads %d bytes, the stream had %d", len(all), len(c.stream))
			}
		})
	}
}

// A stream that says its message is long and sends little holds a
// buffer of little more than what it sent, not of what it said.
func TestStreamReaderGrowsWithWhatComes(t *testing.T) {
	sent := append(append([]byte{mlUserMsg}, userMsgHeader...), 0xd2, 0x01, 0, 0, 0) // 16 MiB
	sent = append(sent, make([]byte, 10_000)...)
	in := inStream{conn: newBytesConn(sent)}
	if in.fill(len(sent) + 1) {
		t.Fatal("filled past the stream's end")
	}
	if len(in.buf) != len(sent) || cap(in.buf) > 2*len(sent)+4096 {
		t.Fatalf("read %d bytes into a buffer of %d", len(in.buf), cap(in.buf))
	}
}

// memberlistReader is a memberlist that reads the streams the test hands
// it, as it reads those its transport accepts, and records the user
// messages it delivers.
type memberlistReader struct {
	streams chan net.Conn
	mu      sync.Mutex
	got     [][]byte
}

func (m *memberlistReader) NodeMeta(int) []byte             { return nil }
func (m *memberlistReader) GetBroadcasts(int, int) [][]byte { return nil }
func (m *memberlistReader) LocalState(bool) []byte          { return nil }
func (m *memberlistReader) MergeRemoteState([]byte, bool)   {}
func (m *memberlistReader) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return net.IPv4(127, 0, 0, 1), 7946, nil
}
func (m *memberlistReader) WriteTo([]byte, string) (time.Time, error) { return time.Now(), nil }
func (m *memberlistReader) PacketCh() <-chan *memberlist.Packet       { return nil }
func (m *memberlistReader) DialTimeout(string, time.Duration) (net.Conn, error) {
	return nil, fmt.Errorf("no dialing here")
}
func (m *memberlistReader) StreamCh() <-chan net.Conn { return m.streams }
func (m *memberlistReader) Shutdown() error           { return nil }
func (m *memberlistReader) NotifyMsg(b []byte) {
	m.mu.Lock()
	m.got = append(m.got, bytes.Clone(b))
	m.mu.Unlock()
}

// newMemberlistReader starts a memberlist with label and, if keyed, the
// test reader's keyring.
func newMemberlistReader(t testing.TB, label string, keyed bool) *memberlistReader {
	m := &memberlistReader{streams: make(chan net.Conn)}
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.Transport, mc.Delegate, mc.Label = "reader", m, m, label
	mc.LogOutput = io.Discard
	if keyed {
		mc.Keyring = streamKeyring(t, streamKey, streamOtherKey)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	return m
}

// read hands memberlist b as a stream, waits until it is done with it,
// and returns what it delivered.
func (m *memberlistReader) read(b []byte) [][]byte {
	c := newBytesConn(b)
	m.streams <- c
	<-c.closed
	m.mu.Lock()
	defer m.mu.Unlock()
	got := m.got
	m.got = nil
	return got
}

// FuzzStreamReader feeds the stream reader arbitrary streams, beside a
// memberlist with the same label and keyring: a stream the reader reads as
// a user message is one memberlist reads as that message, and one it does
// not is handed on with every byte as it came, and memberlist reads it.
// Never a panic, the reader's or memberlist's (two of memberlist's took
// the process down: see TestStreamReaderKeepsWhatCrashesMemberlist).
func FuzzStreamReader(f *testing.F) {
	frame := []byte("a frame of bcache's")
	for _, label := range []string{"", "l"} {
		for _, kr := range []*memberlist.Keyring{nil, streamKeyring(f, streamKey), streamKeyring(f, streamOtherKey)} {
			a, b := net.Pipe()
			out := make(chan []byte, 1)
			go func() { all, _ := io.ReadAll(b); out <- all }()
			(&sealer{label: []byte(label), keyring: kr}).writeReliable(a, frame)
			a.Close()
			f.Add(<-out, kr != nil, label != "")
		}
	}
	f.Add([]byte{mlHasLabelMsg, 1, 'l', 6, 0x80}, false, true)
	readers := map[[2]bool]*memberlistReader{}
	for _, keyed := range []bool{false, true} {
		readers[[2]bool{keyed, false}] = newMemberlistReader(f, "", keyed)
		readers[[2]bool{keyed, true}] = newMemberlistReader(f, "l", keyed)
	}
	f.Fuzz(func(t *testing.T, stream []byte, keyed, labelled bool) {
		label := ""
		if labelled {
			label = "l"
		}
		ml := readers[[2]bool{keyed, labelled}]
		sr, got := testStreamReader(t, label, keyed)
		rest := sr.take(newBytesConn(stream))
		if rest != nil {
			if len(*got) != 0 {
				t.Fatal("delivered, and left to memberlist")
			}
			if all, _ := io.ReadAll(rest); !bytes.Equal(all, stream) {
				t.Fatalf("memberlist reads %d bytes, the stream had %d", len(all), len(stream))
			}
			ml.read(stream)
			return
		}
		if len(*got) == 1 && (*got)[0] == nil {
			return // refused: memberlist would panic on it
		}
		theirs := ml.read(stream)
		if len(*got) != 1 || len(theirs) != 1 || !bytes.Equal((*got)[0], theirs[0]) {
			t.Fatalf("read %d messages, memberlist %d", len(*got), len(theirs))
		}
	})
}

// sealStream returns a stream of memberlist's encrypted stream message,
// of encryption version vsn, whose plaintext is plain, sealed with key
// under label.
func sealStream(t testing.TB, label string, key []byte, vsn byte, plain []byte) []byte {
	t.Helper()
	var b []byte
	if label != "" {
		b = append(b, mlHasLabelMsg, byte(len(label)))
		b = append(b, label...)
	}
	at := len(b)
	b = binary.BigEndian.AppendUint32(append(b, mlEncryptMsg), uint32(1+mlNonceSize+len(plain)+16))
	aad := append(append([]byte(nil), b[at:at+5]...), label...)
	b = append(b, vsn)
	nonce := make([]byte, mlNonceSize)
	rand.Read(nonce)
	b = append(b, nonce...)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return g.Seal(b, nonce, plain, aad)
}

// A stream that a holder of a key seals so that memberlist panics on it
// (its readStream reads the plaintext's type byte without a check, and its
// pkcs7decode slices off what version 0's last byte says) is closed, not
// handed to memberlist: handed on, it took the process down (memberlist
// v0.7.0's net.go:1198 and security.go:56). One that memberlist reads
// without a panic still goes to it.
func TestStreamReaderKeepsWhatCrashesMemberlist(t *testing.T) {
	pad := func(b []byte) []byte { // PKCS7, as memberlist's version 0 pads
		n := 16 - len(b)%16
		return append(b, bytes.Repeat([]byte{byte(n)}, n)...)
	}
	user := userMsgLen(append([]byte{mlUserMsg}, userMsgHeader...), 3)
	user = append(user, "abc"...)
	for _, label := range []string{"", "l"} {
		crash := map[string][]byte{
			"empty":                    sealStream(t, label, streamKey, mlGCMVersion, nil),
			"empty, the other key":     sealStream(t, label, streamOtherKey, mlGCMVersion, nil),
			"version 0, padding alone": sealStream(t, label, streamKey, 0, pad(nil)),
			"version 0, padding past":  sealStream(t, label, streamKey, 0, append(make([]byte, 15), 200)),
		}
		for name, stream := range crash {
			sr, got := testStreamReader(t, label, true)
			if rest := sr.take(newBytesConn(stream)); rest != nil {
				t.Errorf("label %q, %s: handed to memberlist, which panics on it", label, name)
			}
			if len(*got) != 1 || (*got)[0] != nil {
				t.Errorf("label %q, %s: delivered %q; want it refused (nil, counted as a bad frame)", label, name, *got)
			}
		}
		ml := newMemberlistReader(t, label, true)
		for name, stream := range map[string][]byte{
			"version 0, a user message": sealStream(t, label, streamKey, 0, pad(bytes.Clone(user))),
			"version 0, too short":      sealStream(t, label, streamKey, 0, nil),
		} {
			sr, got := testStreamReader(t, label, true)
			rest := sr.take(newBytesConn(stream))
			if rest == nil || len(*got) != 0 {
				t.Fatalf("label %q, %s: not handed to memberlist", label, name)
			}
			all, _ := io.ReadAll(rest)
			theirs := ml.read(all)
			if want := name == "version 0, a user message"; want != (len(theirs) == 1 && string(theirs[0]) == "abc") {
				t.Fatalf("label %q, %s: memberlist delivered %q", label, name, theirs)
			}
		}
	}
}

// A stream handed to memberlist is held, all in all, for one TCPTimeout
// from its accept, as memberlist alone held it: memberlist's deadline,
// set when it gets the stream, stops at the one set when the reader took
// it. (A stream whose first bytes, not a user message, came just before
// the reader's deadline was held for a second TCPTimeout by memberlist.)
func TestStreamReaderHandsOnTheDeadline(t *testing.T) {
	for i, name := range []string{"SetDeadline", "SetReadDeadline", "SetWriteDeadline"} {
		conn := &deadlineConn{bytesConn: newBytesConn([]byte{6})} // memberlist's push and pull
		sr, _ := testStreamReader(t, "", false)
		sr.timeout = time.Minute
		rest := sr.take(conn)
		if rest == nil || len(conn.set) != 1 {
			t.Fatalf("taken, or deadlines %v", conn.set)
		}
		first := conn.set[0]
		set := []func(time.Time) error{rest.SetDeadline, rest.SetReadDeadline, rest.SetWriteDeadline}[i]
		set(first.Add(time.Minute)) // as memberlist's handleConn does, later
		if got := conn.set[len(conn.set)-1]; !got.Equal(first) {
			t.Fatalf("%s: memberlist's deadline is %v, after the reader's %v", name, got, first)
		}
		// The next is memberlist's own (sendLocalState's, for its reply).
		set(first.Add(2 * time.Minute))
		if got := conn.set[len(conn.set)-1]; !got.Equal(first.Add(2 * time.Minute)) {
			t.Fatalf("%s: memberlist's second deadline became %v", name, got)
		}
	}
	conn := &deadlineConn{bytesConn: newBytesConn([]byte{6})}
	sr, _ := testStreamReader(t, "", false)
	sr.timeout = time.Minute
	rest := sr.take(conn)
	first := conn.set[0]
	rest.SetDeadline(first.Add(-time.Second))
	if got := conn.set[len(conn.set)-1]; !got.Equal(first.Add(-time.Second)) {
		t.Fatalf("an earlier deadline became %v", got)
	}
}

// deadlineConn is a bytesConn that records the deadlines set on it.
type deadlineConn struct {
	*bytesConn
	set []time.Time
}

func (c *deadlineConn) SetDeadline(t time.Time) error      { c.set = append(c.set, t); return nil }
func (c *deadlineConn) SetReadDeadline(t time.Time) error  { c.set = append(c.set, t); return nil }
func (c *deadlineConn) SetWriteDeadline(t time.Time) error { c.set = append(c.set, t); return nil }

// A stream that no key opens, as large as memberlist reads (a stranger's,
// in a cluster with a key), costs the reader little more than its bytes
// before memberlist gets it: 125 MiB were allocated for one of 20 MiB (its
// buffer doubled past it, grown again for the plaintext, then copied for
// memberlist; found by review).
func TestStreamReaderAllocatesLittleForAStreamNoKeyOpens(t *testing.T) {
	stream := binary.BigEndian.AppendUint32([]byte{mlEncryptMsg}, mlMaxStreamMsg)
	stream = append(stream, mlGCMVersion)
	stream = append(stream, make([]byte, mlMaxStreamMsg-1)...)
	sr, _ := testStreamReader(t, "", true)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rest := sr.take(newBytesConn(stream))
	runtime.ReadMemStats(&after)
	if rest == nil {
		t.Fatal("taken")
	}
	if all, _ := io.ReadAll(rest); !bytes.Equal(all, stream) {
		t.Fatal("memberlist reads another stream")
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4*mlMaxStreamMsg {
		t.Fatalf("%d MiB allocated for a stream of %d MiB", got>>20, len(stream)>>20)
	}
}

// A push and pull handed to memberlist gets, for its reply, the deadline
// memberlist's sendLocalState sets (TCPTimeout from the reply), as it did
// before the reader: only handleConn's deadline, set as it starts, stops
// at the reader's. With every deadline clamped to the accept, a joiner
// whose state took most of TCPTimeout to come had its reply cut short,
// though the joiner itself waits a fresh TCPTimeout for it (found by
// review).
func TestStreamReaderGivesThePushPullReplyItsDeadline(t *testing.T) {
	const timeout = 2 * time.Second // each side's slowness leaves 0.8 s to spare
	m := &memberlistReader{streams: make(chan net.Conn)}
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.Transport, mc.Delegate = "reader", m, m
	mc.LogOutput, mc.TCPTimeout = io.Discard, timeout
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	sr, _ := testStreamReader(t, "", false)
	sr.timeout = timeout
	// memberlist's push and pull of no nodes and no user state.
	header := []byte{0x83, 0xa5, 'N', 'o', 'd', 'e', 's', 0, 0xac, 'U', 's', 'e', 'r', 'S', 't', 'a', 't', 'e', 'L', 'e', 'n', 0, 0xa4, 'J', 'o', 'i', 'n', 0xc2}
	joiner, accepted := net.Pipe()
	defer joiner.Close()
	go func() {
		if rest := sr.take(accepted); rest != nil {
			m.streams <- rest
		}
	}()
	joiner.SetDeadline(time.Now().Add(timeout))
	joiner.Write([]byte{6}) // pushPullMsg
	time.Sleep(6 * timeout / 10)
	if _, err := joiner.Write(header); err != nil {
		t.Fatal(err)
	}
	// The joiner waits a fresh TCPTimeout for the reply (memberlist's
	// sendAndReceiveState), and reads it after a while.
	joiner.SetDeadline(time.Now().Add(timeout))
	time.Sleep(6 * timeout / 10)
	reply := make([]byte, 1) // its state: pushPullMsg, compressed (compressMsg) by default
	if _, err := io.ReadFull(joiner, reply); err != nil || (reply[0] != 6 && reply[0] != 9) {
		t.Fatalf("no reply to the push and pull: %v, %q", err, reply)
	}
}
