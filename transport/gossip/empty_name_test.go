package gossip

import (
	"io"
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
	"github.com/hashicorp/memberlist"
)

// TestAMemberWithAnEmptyNameIsRefused: a member announced with the empty
// name, which no member may have (Config.Name), is refused as one whose
// name is not valid UTF-8 is ("bad name"), not taken into the view: its
// frames could not name their sender (parseFrame refuses a name of
// length 0), so no exchange with it ever completes, and while it is
// listed the protocol's anti-entropy turn that picks it (the ring's ""
// reads as no peer) starts nothing, and it holds up the stable bound.
func TestAMemberWithAnEmptyNameIsRefused(t *testing.T) {
	mn := memnet.NewNetwork(1)
	tr, err := mn.NewTransport("a")
	if err != nil {
		t.Fatal(err)
	}
	a := startNode(t, "a", nil, func(c *Config) { c.Transport = tr })
	mt, err := mn.NewTransport("x")
	if err != nil {
		t.Fatal(err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.Transport, mc.LogOutput, mc.Label = "", mt, io.Discard, processLabel
	mc.EnableCompression = false // as members write: a compressed stream is refused
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	if _, err := ml.Join([]string{a.r.Addr()}); err != nil {
		t.Fatal(err)
	}
	listed := func() bool {
		return slices.ContainsFunc(a.r.Members(), func(m Member) bool { return m.Name == "" })
	}
	refused := func() bool {
		return slices.ContainsFunc(a.r.Status().Joining, func(f JoinFailure) bool { return f.Cause == "bad name" })
	}
	await.Until(t, 10*time.Second, func() bool { return listed() || refused() }, "a neither lists nor refuses the member named \"\"")
	if listed() {
		t.Fatalf("a lists a member named \"\": %v", a.r.Members())
	}
}
