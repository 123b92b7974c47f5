package bcache

import (
	"errors"
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/gossip"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
	"github.com/hashicorp/memberlist"
)

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
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	if _, err := ml.Join([]string{b.Addr()}); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool {
		return slices.ContainsFunc(b.repl.Known(), func(k transport.Known) bool { return k.Name == name }) ||
			slices.ContainsFunc(b.repl.Status().Joining, func(f gossip.JoinFailure) bool { return f.Cause == "bad name" })
	}, "b neither counts nor refuses the member %q", name)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	tr2, err := net.NewTransport("b2")
	if err != nil {
		t.Fatal(err)
	}
	back, err := New(Config{NodeName: "b", Network: tr2, Timings: FastTimings(),
		AntiEntropyInterval: 100 * time.Millisecond, SnapshotPath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	for _, k := range back.repl.Known() {
		if k.Name != "b" && k.Name != name {
			t.Errorf("restarted, b counts %q, a member that never was (it counted %q)", k.Name, name)
		}
	}
}
