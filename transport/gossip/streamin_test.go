package gossip

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
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
// not is handed on with every byte as it came. Never a panic.
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
			return
		}
		theirs := ml.read(stream)
		if len(*got) != 1 || len(theirs) != 1 || !bytes.Equal((*got)[0], theirs[0]) {
			t.Fatalf("read %d messages, memberlist %d", len(*got), len(theirs))
		}
	})
}
