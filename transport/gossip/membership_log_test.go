package gossip

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"
)

// TestMembershipIsLoggedOnceAChange: a member that joins, says it holds
// its cluster's state (its metadata changes), sends its leaving notice
// and leaves is logged joined, then left: one line a change. The
// metadata's change and the leaving notice each made a line "alive" of
// their own (found by review: a join logged twice, a leave as alive then
// gone).
func TestMembershipIsLoggedOnceAChange(t *testing.T) {
	var log syncBuffer
	a := startNode(t, "a", nil, func(c *Config) { c.Logger = zerolog.New(&log) })
	meta := append(bytes.Repeat([]byte{1}, 8), 0)
	b := &memberlist.Node{Name: "b", Addr: net.IPv4(127, 0, 0, 1), Port: 1, Meta: meta}
	a.r.memberChanged(b, true)
	b.Meta = append(meta, 1, 2, 3) // the same process, its metadata changed
	a.r.memberChanged(b, true)
	b.Meta = leavingMeta
	a.r.memberChanged(b, true) // its leaving notice
	a.r.memberChanged(b, false)
	var changes []string
	for _, line := range strings.Split(string(log.Bytes()), "\n") {
		if strings.Contains(line, `"membership changed"`) && strings.Contains(line, `"peer":"b"`) {
			i := strings.Index(line, `"change":"`)
			if i < 0 {
				t.Fatalf("a line without its change: %s", line)
			}
			rest := line[i+len(`"change":"`):]
			changes = append(changes, rest[:strings.Index(rest, `"`)])
		}
	}
	if strings.Join(changes, ",") != "joined,left" {
		t.Fatalf("logged %v, want joined, left", changes)
	}
}
