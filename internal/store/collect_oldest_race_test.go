package store

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// TestMaxDeadCollectsOnlyTheRecordItFoundOldest: a key that collectOldest
// found among the oldest dead records and that took a newer record
// before it was collected (a delete made again, a value that has just
// expired) is not collected in its stead: that record is not among the
// oldest, and its watermark, raised to a recent time, rejected a write
// of its bucket still on its way, stamped long after the oldest dead
// record (lost everywhere, lww rule 3), and a value that expired within
// MaxClockSkew, which the bound takes last.
func TestMaxDeadCollectsOnlyTheRecordItFoundOldest(t *testing.T) {
	now := testNow + int64(time.Hour)
	cases := []struct {
		name  string
		again crdt.Record
	}{
		{"deleted again", crdt.Record{Key: "old", Tombstone: true, Time: crdt.Timestamp{Wall: now - int64(time.Second), Node: 2}}},
		{"a value just expired", crdt.Record{Key: "old", Value: []byte("v"), Expires: now - 1, Time: crdt.Timestamp{Wall: now - int64(time.Second), Node: 2}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustStore(t, Config{Shards: 1, DigestBits: 4, Horizon: 2 * time.Hour, MaxDead: 1, MaxClockSkew: time.Second, Founder: true})
			s.MarkSynced(now)
			s.Write(crdt.Record{Key: "old", Tombstone: true, Time: crdt.Timestamp{Wall: now - int64(50*time.Minute), Node: 1}})
			s.Write(crdt.Record{Key: "newer", Tombstone: true, Time: crdt.Timestamp{Wall: now - int64(40*time.Minute), Node: 1}})
			afterOldestScan = func() {
				afterOldestScan = nil
				if o := s.Apply(c.again, false, now); o != crdt.Applied {
					t.Fatalf("again: %v", o)
				}
			}
			defer func() { afterOldestScan = nil }()
			s.Collect(now, false, lww.NoStable)
			if r, ok := s.Lookup("old"); !ok || r.Time != c.again.Time {
				t.Errorf("the newer record of a key found oldest was collected (held %+v, %v)", r, ok)
			}
			// A write of the same bucket on its way, stamped after the
			// oldest dead record.
			for i := range 64 {
				key := string(rune('a'+i%26)) + string(rune('a'+i/26))
				rec := crdt.Record{Key: key, Value: []byte("w"), Time: crdt.Timestamp{Wall: now - int64(10*time.Minute), Node: 3}}
				if o := s.Apply(rec, false, now); o == crdt.Rejected {
					t.Fatalf("a write stamped 10 minutes ago, after the oldest dead record, was rejected")
				}
			}
		})
	}
}
