package gossip

import (
	"bytes"
	"fmt"
	"testing"
)

// heldAsReleaseBefore reads a member's holding block as the release
// before metaRestored does: it knows metaHolds and metaNewcome alone, and
// takes metadata ending in neither for a member of a release before the
// block, which it counts as holding its cluster's state (a sync source, a
// first sync, a member that may pull from one that leaves).
func heldAsReleaseBefore(meta []byte) (holds, said bool) {
	if len(meta) < 8+keyIDLen || (len(meta)-8)%keyIDLen != 0 {
		return false, false
	}
	switch last := meta[len(meta)-keyIDLen:]; {
	case bytes.Equal(last, metaHolds):
		return true, true
	case bytes.Equal(last, metaNewcome):
		return false, true
	}
	return false, false
}

// TestARestoredMemberIsANewcomerToTheReleaseBefore: a member restored from
// state built with others, not synced yet, says so apart (metaRestored),
// and still says, to a member of the release before, that it holds
// nothing: said as metaRestored alone, that release read it as a member
// of a release before the block, holding its cluster's state, and a
// newcomer of it took an exchange with the restored member, which holds
// only an old snapshot, for its first sync (and said it was synced), and
// a member of it leaving had the restored member pull from it as a
// holder (found by review). Its key ids read as they did.
func TestARestoredMemberIsANewcomerToTheReleaseBefore(t *testing.T) {
	for _, keys := range []int{0, 2, maxKeyIDs} { // the most ids, and the block before the last: within memberlist's 512 bytes
		keyed := keys > 0
		n := startNode(t, "r", []string{freeAddr(t)}, func(c *Config) {
			c.Restored = true
			for i := range keys {
				k := []byte(fmt.Sprintf("key %12d", i))
				if i == 0 {
					c.SecretKey = k
				} else {
					c.AcceptKeys = append(c.AcceptKeys, k)
				}
			}
		})
		if len(n.r.keyIDs) != keys*keyIDLen {
			t.Fatalf("%d keys, %d bytes of ids", keys, len(n.r.keyIDs))
		}
		meta := delegate{n.r}.NodeMeta(512)
		if holds, said := heldAsReleaseBefore(meta); holds || !said {
			t.Errorf("keyed %v: the release before reads a restored member, not synced, as holding %v, saying so %v; want a newcomer", keyed, holds, said)
		}
		if _, holds, said := withoutHolding(meta); holds || !said || !saysRestored(meta) {
			t.Errorf("keyed %v: this release reads it as holding %v, saying so %v, restored %v; want restored, a newcomer", keyed, holds, said, saysRestored(meta))
		}
		if ids := metaKeyIDs(meta); !bytes.Equal(ids, n.r.keyIDs) {
			t.Errorf("keyed %v: key ids %x, want %x", keyed, ids, n.r.keyIDs)
		}
		n.r.becomeHolder()
		synced := delegate{n.r}.NodeMeta(512)
		if saysRestored(synced) {
			t.Errorf("keyed %v: synced, it still says it is restored and not synced", keyed)
		} else if holds, said := heldAsReleaseBefore(synced); !holds || !said {
			t.Errorf("keyed %v: synced, the release before reads it as holding %v, saying so %v", keyed, holds, said)
		}
	}
}
