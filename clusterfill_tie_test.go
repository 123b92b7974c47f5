package bcache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestAnOwnersOtherValueOfAnEvictedVersionIsNotServed: an asker holding a
// key's version evicted, its stub knowing the value it stood for (package
// lww's fingerprint), is answered by the owner with another value of that
// very version (a forged tie: a peer holding the cluster key, or two
// writers of one stamp), one that loses the tie (every map that gets
// both keeps the asker's). The store refuses to put it back on the stub
// (Refill: "a Refill with the value that lost ... served it for ever");
// the caller must not be served it either. It was: clusterfill.Served
// served the answer's value for any stub of its version, so the caller
// got, at every miss, a value the member's own store refused (found by
// review).
func TestAnOwnersOtherValueOfAnEvictedVersionIsNotServed(t *testing.T) {
	filler := func(_ context.Context, key string) ([]byte, error) { return []byte("filled"), nil }
	cs := fillCluster(t, 2, filler, 5*time.Second, slowProbes)
	asker, owner := cs[0], cs[1]
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprint("k", i); asker.owner(k) == owner.Name() {
			key = k
		}
	}
	v := owner.clock.Now()
	winner, loser := []byte("zz-winner"), []byte("aa-loser") // a tie goes to the greater bytes
	if o := asker.store.Apply(crdt.Record{Key: key, Time: v, Value: winner}, false, asker.phys()); o != crdt.Applied {
		t.Fatalf("asker: %v", o)
	}
	if !asker.store.Evict(key) {
		t.Fatal("nothing evicted")
	}
	if o := owner.store.Apply(crdt.Record{Key: key, Time: v, Value: loser}, false, owner.phys()); o != crdt.Applied {
		t.Fatalf("owner: %v", o)
	}
	got, err := asker.GetOrFill(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) == string(loser) {
		held, _ := asker.store.Lookup(key)
		t.Fatalf("GetOrFill served %q, the owner's value of version %v that lost the tie and that the store refused (holds %+v)", got, v, held)
	}
}
