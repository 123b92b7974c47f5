package bcache

import (
	"context"
	"testing"
	"time"
)

// TestTokenOfACollectedDeleteOnAMemberThatJoinedAfter: a delete is
// collected on every member; a member that joins afterwards (or restarts
// empty) holds nothing of the key and no watermark of it. A read there
// with the delete's token must answer a miss, as it does on the members
// that collected it, not wait out its context (an HTTP node's 504 for
// every such read, for as long as the key stays unwritten).
func TestTokenOfACollectedDeleteOnAMemberThatJoinedAfter(t *testing.T) {
	a, b, join := quickCollectorsJoin(t)
	tok := collectedDelete(t, a, b, "k")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := join("c")
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	short, stop := context.WithTimeout(context.Background(), 3*time.Second)
	defer stop()
	v, ok, err := c.GetAfter(short, "k", tok)
	if err != nil || ok {
		t.Fatalf("GetAfter on a member that joined after the delete was collected = %q, %v, %v; want a miss", v, ok, err)
	}
}
