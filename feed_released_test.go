package bcache

import (
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/bcache-go/bcache/internal/await"
)

// TestClosedSubscriptionLetsGoOfItsCache: a closed subscription its owner
// still holds keeps nothing of its Cache alive once the Cache is closed and
// dropped: neither the Cache nor its store's values. A closed Cache alone
// is collected; held through a closed subscription (its feed is a field of
// the Cache), it stayed, with every value its store held.
func TestClosedSubscriptionLetsGoOfItsCache(t *testing.T) {
	collected := func(cache weak.Pointer[Cache], value weak.Pointer[byte]) bool {
		runtime.GC()
		return cache.Value() == nil && value.Value() == nil
	}
	// The control: with nothing held, a closed Cache goes.
	_, cache, value := closedSubscription(t)
	await.Until(t, 10*time.Second, func() bool { return collected(cache, value) }, "a closed Cache and its values are still reachable")
	sub, cache, value := closedSubscription(t)
	await.Until(t, 10*time.Second, func() bool { return collected(cache, value) }, "a closed Cache and its values are still reachable through a closed subscription its owner holds")
	runtime.KeepAlive(sub)
}

// closedSubscription returns a subscription closed with its Cache, and
// weak pointers to the Cache and to a value it held.
func closedSubscription(t *testing.T) (*Subscription, weak.Pointer[Cache], weak.Pointer[byte]) {
	c, err := New(testConfig("solo"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set("k", make([]byte, 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	held, _ := c.store.Lookup("k")
	value := weak.Make(&held.Value[0])
	sub, err := c.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range sub.C {
	}
	return sub, weak.Make(c), value
}
