package gossip

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

// TestMetadataSaysWhetherTheMemberHoldsItsState: the block that ends a
// member's metadata says whether it holds its cluster's state, and is no
// key id; metadata of a release before it (a seed and key ids, or a seed
// alone) says nothing of it, and keeps its ids.
func TestMetadataSaysWhetherTheMemberHoldsItsState(t *testing.T) {
	seed := binary.LittleEndian.AppendUint64(nil, 42)
	ids := slices.Concat(keyID([]byte("k1")), keyID([]byte("k2")))
	for _, tc := range []struct {
		name        string
		meta        []byte
		holds, said bool
		ids         []byte
	}{
		{"holds, with keys", slices.Concat(seed, ids, metaHolds), true, true, ids},
		{"newcomer, with keys", slices.Concat(seed, ids, metaNewcome), false, true, ids},
		{"holds, no key", slices.Concat(seed, metaHolds), true, true, nil},
		{"newcomer, no key", slices.Concat(seed, metaNewcome), false, true, nil},
		{"release before, with keys", slices.Concat(seed, ids), false, false, ids},
		{"release before, no key", seed, false, false, nil},
		{"leaving", leavingMeta, false, false, nil},
	} {
		_, holds, said := withoutHolding(tc.meta)
		if holds != tc.holds || said != tc.said || !bytes.Equal(metaKeyIDs(tc.meta), tc.ids) {
			t.Errorf("%s: holds %v, said %v, ids %x; want %v, %v, %x", tc.name, holds, said, metaKeyIDs(tc.meta), tc.holds, tc.said, tc.ids)
		}
	}
}
