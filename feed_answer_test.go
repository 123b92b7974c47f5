package bcache

import (
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestAnAnswerForAKeyNeverHeldIsNoChange: a peer's answer tombstone (node
// 0) for a key this member holds no record of (anti-entropy passes
// answers on like any record, to every member) drops nothing here: the
// subscribers get no change of the key. They got a CauseDrop, whose doc
// says the member's record was dropped, for a key it never held.
func TestAnAnswerForAKeyNeverHeldIsNoChange(t *testing.T) {
	c := newCache(t, testConfig("solo"))
	sub, err := c.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if o := c.store.Apply(crdt.Record{Key: "k", Tombstone: true, Time: crdt.Timestamp{Wall: c.phys()}}, false, c.phys()); o != crdt.Applied {
		t.Fatalf("the answer: %v", o)
	}
	c.feed.flush()
	if err := c.Set("marker", nil, 0); err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		for _, ch := range <-sub.C {
			if ch.Key == "k" {
				t.Fatalf("got %v of a key this member never held", ch.Cause)
			}
			done = done || ch.Key == "marker"
		}
	}
}
