package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestNewRefusesShardsThatLeaveNoDigestBits: a digest no wider than its
// shards' prefix leaves each shard's own tree no bits, which Config says
// must be at least crdt.MinTreeBits. lww.Config takes 0 bits for its
// default (16), so the store was made with shard maps of 65,536 leaves
// under a digest that asks each for its leaf 0 alone: a peer's Versions
// request for a leaf missed every record outside the shard's first leaf,
// and anti-entropy never repaired them.
func TestNewRefusesShardsThatLeaveNoDigestBits(t *testing.T) {
	for _, c := range []struct{ shards, bits int }{{16, 4}, {256, 8}} {
		s, err := New(Config{Shards: c.shards, DigestBits: c.bits})
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Errorf("%d shards over %d bits: %v, want ErrConfig", c.shards, c.bits, err)
			}
			continue
		}
		// Accepted: the digest's leaves must then hold every record.
		now := time.Now().UnixNano()
		for i := range 200 {
			if _, err := s.Write(crdt.Record{Key: fmt.Sprint("k", i), Value: []byte("v"), Time: crdt.Timestamp{Wall: now, Node: 1}}); err != nil {
				t.Fatal(err)
			}
		}
		n := 0
		for leaf := range s.Leaves() {
			n += len(s.AppendVersions(nil, leaf))
		}
		t.Errorf("%d shards over %d bits accepted; its leaves list %d of the 200 records held", c.shards, c.bits, n)
	}
}

// TestNewRefusesDigestsOfNoTreeShape: a digest width that is no tree's
// (past 24 bits, where the count of leaves wrapped in 32 bits, or not a
// multiple of four) is refused, as the transport refuses it.
func TestNewRefusesDigestsOfNoTreeShape(t *testing.T) {
	for _, bits := range []int{28, 32, 10} {
		if _, err := New(Config{Shards: 1, DigestBits: bits}); !errors.Is(err, ErrConfig) {
			t.Errorf("DigestBits %d: %v, want ErrConfig", bits, err)
		}
	}
}
