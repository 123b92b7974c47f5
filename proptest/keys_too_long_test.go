package proptest

import (
	"strings"
	"testing"

	"github.com/bcache-go/bcache/internal/rapidfail"
)

// TestKeysBcacheRefusesAreRefused: a Config.Keys key longer than bcache's
// wire carries (64 KiB: a Cache refuses it, ErrKeyTooLarge), given to
// bcache's store (the default Factory, or StoreFactory), is refused with
// an error naming Keys, at once. The store took the write, no peer could
// be sent it, and the harness reported a counterexample of bcache's
// replication ("not converged") that no Cache could run (found by
// review).
func TestKeysBcacheRefusesAreRefused(t *testing.T) {
	t.Parallel() // rapidfail alone: two at once on two cores (see rapidfail.setFlags)
	long := strings.Repeat("k", 64<<10+1)
	for name, cfg := range map[string]Config{
		"default": {Keys: []string{long, "a"}},
		"store":   {Keys: []string{"a", long}, Factory: StoreFactory(DefaultStoreConfig())},
	} {
		f := rapidfail.Unshrunk(t, "keys_too_long_"+name, Property(cfg))
		if !strings.Contains(f, "Keys") || !strings.Contains(f, "65536") {
			t.Errorf("%s: a key of %d bytes: %.300s; want an error naming Keys and the limit", name, len(long), f)
		}
	}
	// The limit itself is taken.
	at := strings.Repeat("k", 64<<10)
	if f := rapidfail.Unshrunk(t, "keys_at_limit", Property(Config{Keys: []string{at, "a"}, MaxNodes: 2})); strings.Contains(f, "Keys") {
		t.Errorf("a key of %d bytes, the limit: %.300s", len(at), f)
	}
}
