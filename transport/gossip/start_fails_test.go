package gossip

import (
	"strings"
	"testing"

	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestFailedStartShutsItsTransportDown: Start takes Config.Transport, and
// a Start that fails shuts it down, at its config's check as in
// memberlist (which did): one failing before memberlist started left it
// open (found by review). A memnet transport shut down gives its name to
// the next.
func TestFailedStartShutsItsTransportDown(t *testing.T) {
	n := memnet.NewNetwork(1)
	tr, err := n.NewTransport("a")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := Start(Config{Name: "a", Transport: tr, Label: strings.Repeat("l", 256)}); err == nil {
		r.Close()
		t.Fatal("Start succeeded with a label of 256 bytes")
	}
	if _, err := n.NewTransport("a"); err != nil {
		t.Fatalf("after a Start that failed: %v (its Transport was left open)", err)
	}
}
