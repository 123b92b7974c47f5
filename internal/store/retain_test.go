package store

import (
	"runtime"
	"testing"
	"weak"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// TestDroppedValueIsNotKeptByItsKey: the key a watcher gets for a value
// dropped here (evicted, deleted, expired, pushed out by a bound) is not
// the dropped item's bytes: such a string kept the item, and its value,
// alive for as long as the watcher kept the key (a subscriber's list of
// evicted keys kept every evicted value; found by review).
func TestDroppedValueIsNotKeptByItsKey(t *testing.T) {
	for _, how := range []string{"evict", "delete", "expire", "bound"} {
		t.Run(how, func(t *testing.T) {
			cfg := Config{Shards: 1, Horizon: 1, Founder: true}
			if how == "bound" {
				cfg.MaxKeys = 1
			}
			s := mustStore(t, cfg)
			var kept []string // what a subscriber may keep: the keys of the changes
			s.Watch(func(ev *Event) { kept = append(kept, ev.Record.Key) })
			v := make([]byte, 1<<20)
			value := weak.Make(&v[0])
			var expires int64
			if how == "expire" {
				expires = testNow + 1
			}
			if _, err := s.Write(crdt.Record{Key: "user:42", Value: v, Expires: expires, Time: crdt.Timestamp{Wall: testNow, Node: 1}}); err != nil {
				t.Fatal(err)
			}
			v = nil
			switch how {
			case "evict":
				s.Evict("user:42")
			case "delete":
				r, err := s.Write(crdt.Record{Key: "user:42", Tombstone: true, Time: crdt.Timestamp{Wall: testNow + 1, Node: 1}})
				if err != nil {
					t.Fatal(err)
				}
				kept = append(kept, r.Key)
			case "expire":
				s.Collect(testNow+10, true, lww.NoStable)
			case "bound":
				if _, err := s.Write(crdt.Record{Key: "other", Value: []byte("x"), Time: crdt.Timestamp{Wall: testNow + 1, Node: 1}}); err != nil {
					t.Fatal(err)
				}
			}
			if _, ok := s.Get("user:42", func() int64 { return testNow }); ok {
				t.Fatal("the dropped value is still served")
			}
			runtime.GC()
			runtime.GC()
			if value.Value() != nil {
				t.Errorf("the dropped value is still reachable, through the keys %q", kept)
			}
			runtime.KeepAlive(kept)
		})
	}
}

// TestReportedValueIsNotKeptByTheStore: the shard's event slot that a
// change is reported in lets go of the value once the watcher returns: a
// value written while watched, then deleted with no watcher left, is not
// kept alive by the store.
func TestReportedValueIsNotKeptByTheStore(t *testing.T) {
	s := mustStore(t, Config{Shards: 1})
	s.Watch(func(*Event) {})
	v := make([]byte, 1<<20)
	value := weak.Make(&v[0])
	if _, err := s.Write(crdt.Record{Key: "user:42", Value: v, Time: crdt.Timestamp{Wall: testNow, Node: 1}}); err != nil {
		t.Fatal(err)
	}
	v = nil
	s.Watch(nil)
	if _, err := s.Write(crdt.Record{Key: "user:42", Tombstone: true, Time: crdt.Timestamp{Wall: testNow + 1, Node: 1}}); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.GC()
	if value.Value() != nil {
		t.Error("the deleted value is still reachable: the store kept the event it was reported in")
	}
	runtime.KeepAlive(s)
}
