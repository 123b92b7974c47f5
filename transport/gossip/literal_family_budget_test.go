package gossip

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestLiteralsOfTheOtherFamilyUseNoBudget: a PeerSource answering 1,024
// IPv6 literals, then IPv4 ones, to a member bound to an IPv4 address:
// the IPv6 ones used up the 1,024 peers a source's answer may give (and
// the look's 1,024 addresses) before they were left out, and the member
// had none of the IPv4 peers, the only ones it could reach. They are
// left out before they count, and the log says so; a source of such
// literals alone is a failure of the source that says what it left out.
func TestLiteralsOfTheOtherFamilyUseNoBudget(t *testing.T) {
	var answer []string
	for i := range maxSourcePeers {
		answer = append(answer, netip.AddrPortFrom(netip.AddrFrom16([16]byte{0: 0xfd, 14: byte(i >> 8), 15: byte(i)}), 7946).String())
	}
	good := []string{"127.0.0.2:7946", "127.0.0.3:7946"}
	answer = append(answer, good...)
	var logs bytes.Buffer
	r := &Replicator{cfg: Config{PeerSource: func(context.Context) ([]string, error) { return answer, nil }},
		bound: netip.MustParseAddrPort("127.0.0.1:7946"), log: zerolog.New(&logs)}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	addrs, failed := r.seeds(ctx, ctx)
	if !slices.Equal(addrs, good) || len(failed) != 0 {
		t.Fatalf("a source of %d IPv6 literals and then %q, to a member bound to 127.0.0.1: %d addresses (%q...), failures %v; want %q and none",
			maxSourcePeers, good, len(addrs), addrs[:min(len(addrs), 3)], failed, good)
	}
	if !strings.Contains(logs.String(), fmt.Sprintf("%d addresses of a family", maxSourcePeers)) {
		t.Fatalf("the literals left out are not logged: %q", logs.String())
	}

	// The IPv6 literals alone: no peer, and a failure naming them (a
	// failure settles nothing: the member does not found a cluster).
	answer = answer[:maxSourcePeers]
	addrs, failed = r.seeds(ctx, ctx)
	err := failed["PeerSource"]
	if len(addrs) != 0 || err == nil || !strings.Contains(err.Error(), "cannot reach from 127.0.0.1") || joinCause(err) != "lookup" {
		t.Fatalf("a source of IPv6 literals alone: %d addresses, failure %v; want none and a lookup failure naming them", len(addrs), err)
	}
}
