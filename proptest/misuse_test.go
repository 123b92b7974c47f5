package proptest

import (
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestMisuseIsAnError: a cluster of no members, no factory, a factory
// that returns neither a replica nor an error, and a script naming an
// operation its spec does not have are errors, not panics (the last three
// panicked, the first made an empty cluster: found by review).
func TestMisuseIsAnError(t *testing.T) {
	for _, n := range []int{0, -1} {
		if _, err := NewCluster(n, StoreFactory(DefaultStoreConfig()), 0); err == nil {
			t.Errorf("NewCluster(%d): no error", n)
		}
	}
	if _, err := NewCluster(2, nil, 0); err == nil {
		t.Error("NewCluster with no factory: no error")
	}
	none := func(string, crdt.NodeID, func() int64) (Replica, error) { return nil, nil }
	if _, err := NewCluster(2, none, 0); err == nil || !strings.Contains(err.Error(), "no replica") {
		t.Errorf("NewCluster with a factory of nil replicas: %v", err)
	}
	script := []Scripted{{Member: 0, Op: Op{Name: "bogus", Key: "a"}}}
	if _, err := Exploration(gsetSpec(func(*gset) {}), script, Explore{}); err == nil || !strings.Contains(err.Error(), `no operation "bogus"`) {
		t.Errorf("a script step naming no operation of the spec: %v", err)
	}
	// Two operations of one name: the harness kept the last, the
	// simulator drew both (found by review).
	twice := gsetSpec(func(*gset) {})
	twice.Ops = append(twice.Ops, twice.Ops[0])
	if _, err := Exploration(twice, nil, Explore{}); err == nil || !strings.Contains(err.Error(), "named twice") {
		t.Errorf("two operations of one name: %v", err)
	}
	if _, err := Exploration(gsetSpec(func(*gset) {}), nil, Explore{MaxTicks: -2}); err == nil || !strings.Contains(err.Error(), "MaxTicks") {
		t.Errorf("a negative MaxTicks: %v", err)
	}
}
