package bcache

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/gossip"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
	"github.com/hashicorp/memberlist"
)

// TestAPeersLongNameDoesNotBreakTheMembersFile: a member (one holding
// the key, or anyone without one) joins under a name of 3 MiB of bytes
// that JSON escapes six bytes each: the member it joins counts it, writes
// it in its members file, and must start again from that file.
func TestAPeersLongNameDoesNotBreakTheMembersFile(t *testing.T) {
	strangerJoins(t, strings.Repeat("\x01", 3<<20), "name too long")
}

// TestAMemberNameThatIsNotUTF8IsNotCountedUnderAnother: a member named
// with bytes that are not UTF-8 joins b, which keeps its members beside
// its snapshot. The file is JSON, which writes each bad byte as U+FFFD:
// b, restarted, counted a member of that other name, which never comes,
// as lost until the horizon (an hour without early collection), and not
// the member it had counted. Such a name is now refused, from a peer as
// over-long ones are, and as a NodeName.
func TestAMemberNameThatIsNotUTF8IsNotCountedUnderAnother(t *testing.T) {
	const name = "x\xff"
	if c, err := New(Config{NodeName: name, BindAddr: "127.0.0.1:0"}); !errors.Is(err, ErrConfig) {
		t.Errorf("New with NodeName %q: %v, want ErrConfig", name, err)
		if c != nil {
			c.Close()
		}
	}
	back := strangerJoins(t, name, "bad name")
	for _, k := range back.repl.Known() {
		if k.Name != "b" && k.Name != name {
			t.Errorf("restarted, b counts %q, a member that never was (it counted %q)", k.Name, name)
		}
	}
}

// strangerJoins starts b, keeping its members beside its snapshot, has a
// bare memberlist named name join it until b counts it or refuses it for
// cause, closes b and starts it again from its files: the member back,
// closed when the test ends.
func strangerJoins(t *testing.T, name, cause string) *Cache {
	t.Helper()
	net := memnet.NewNetwork(1)
	path := filepath.Join(t.TempDir(), "b.snap")
	tr, err := net.NewTransport("b")
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{NodeName: "b", Network: tr, Timings: FastTimings(),
		AntiEntropyInterval: 100 * time.Millisecond, SnapshotPath: path})
	if err != nil {
		t.Fatal(err)
	}
	mt, err := net.NewTransport("x")
	if err != nil {
		t.Fatal(err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.Transport, mc.LogOutput = name, mt, io.Discard
	mc.EnableCompression = false // as members write: a compressed stream is refused
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	if _, err := ml.Join([]string{b.Addr()}); err != nil {
		t.Fatal(err)
	}
	// b counts it (as it did) or refuses it; either way its next start
	// must read what it writes.
	await.Until(t, 10*time.Second, func() bool {
		return slices.ContainsFunc(b.repl.Known(), func(k transport.Known) bool { return k.Name == name }) ||
			slices.ContainsFunc(b.repl.Status().Joining, func(f gossip.JoinFailure) bool { return f.Cause == cause })
	}, "b neither counts nor refuses the member named %.20q", name)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path + knownSuffix); err == nil {
		t.Logf("members file: %d bytes (read limit %d)", st.Size(), maxKnownBytes)
	}
	tr2, err := net.NewTransport("b2")
	if err != nil {
		t.Fatal(err)
	}
	back, err := New(Config{NodeName: "b", Network: tr2, Timings: FastTimings(),
		AntiEntropyInterval: 100 * time.Millisecond, SnapshotPath: path})
	if err != nil {
		t.Fatalf("restart from the members file b wrote: %v", err)
	}
	t.Cleanup(func() { back.Close() })
	return back
}

// TestMembersFileOfTheMostMembersWithEscapedNamesIsRead: as many members
// as the file keeps, each named with 255 bytes that JSON escapes six
// bytes each (a name of the longest a member may have), are written and
// read back: the file's read limit counts entries of 1 KiB, which such
// an entry passes.
func TestMembersFileOfTheMostMembersWithEscapedNamesIsRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.snap")
	cfg := testConfig("m")
	cfg.SnapshotPath = path
	c := newCache(t, cfg)
	known := make([]transport.Known, maxKnown)
	for i := range known {
		name := []byte(strings.Repeat("<", 255))
		for j := range 4 {
			name[j] = byte('a' + i>>(4*j)&15)
		}
		known[i] = transport.Known{Name: string(name), Cut: -1 << 63, Coverage: -1 << 63, Since: -1 << 63}
	}
	if err := c.writeKnown(known, 0, false); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path + knownSuffix)
	f, err := readKnownFile(path + knownSuffix)
	back, err := c.readKnown(f, err, true, asideSuffix+"test")
	if err != nil || len(back) != maxKnown {
		t.Fatalf("a members file of %d bytes: read %d members, %v; want %d", st.Size(), len(back), err, maxKnown)
	}
}
