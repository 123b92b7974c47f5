package store

import (
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestAnswerOverNoRecordIsUnseen: a peer's answer tombstone (node 0) for
// a key this member holds no record of (anti-entropy passes answers on
// like any record) drops nothing here: its event says so (Unseen), and
// the feed passes it to no subscriber. It was a plain drop, which every
// subscriber got, of a key the member never held. Over a value it is a
// drop as before.
func TestAnswerOverNoRecordIsUnseen(t *testing.T) {
	s := mustStore(t, Config{})
	s.Write(crdt.Record{Key: "live", Value: []byte("v"), Time: crdt.Timestamp{Wall: testNow, Node: 1}})
	var got []Event
	s.Watch(func(ev *Event) { got = append(got, *ev) })
	for _, key := range []string{"never", "live"} {
		if o := s.Apply(crdt.Record{Key: key, Tombstone: true, Time: crdt.Timestamp{Wall: testNow, Logical: 1}}, false, testNow); o != crdt.Applied {
			t.Fatalf("answer over %s: %v", key, o)
		}
	}
	if len(got) != 2 || got[0].Kind != EventDrop || !got[0].Unseen || got[1].Kind != EventDrop || got[1].Unseen {
		t.Fatalf("events %+v, want an unseen drop of never, then a drop of live", got)
	}
}
