package bcache

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestAPeersLongKeysDeletesStayUnderMaxDeadBytes: a peer's deletes of 32
// KiB keys, 100 of them, are far under MaxDeadRecords (10,000 by default
// with MaxBytes 1 MiB) in number, and held 3.2 MB of keys beside 1 MiB of
// values: past MaxDeadBytes (MaxBytes, at least 2,560,000, by default) the
// oldest are collected, counted by the bound, and the newest kept.
func TestAPeersLongKeysDeletesStayUnderMaxDeadBytes(t *testing.T) {
	const keyLen, n = 32 << 10, 100
	c := newCache(t, Config{BindAddr: "127.0.0.1:0", MaxBytes: 1 << 20})
	if got := c.Config().MaxDeadBytes; got != 2_560_000 {
		t.Fatalf("MaxDeadBytes filled as %d, want 2,560,000", got)
	}
	key := func(i int) string { return fmt.Sprintf("%03d", i) + strings.Repeat("k", keyLen-3) }
	now := c.phys()
	for i := range n {
		member{c}.Receive(crdt.Record{Key: key(i), Tombstone: true, Time: crdt.Timestamp{Wall: now - int64(n-i), Node: 7}})
	}
	if got := c.Stats().Tombstones; got != n {
		t.Fatalf("%d tombstones held before the collection, want %d", got, n)
	}
	c.collect() // a founder alone: it may collect under the bounds
	st := c.Stats()
	if held := int64(st.Tombstones) * keyLen; held > 2_560_000 || st.DeadKeyBytes != held {
		t.Fatalf("%d tombstones, %d bytes of keys (DeadKeyBytes %d), held after a collection; MaxDeadBytes 2,560,000",
			st.Tombstones, held, st.DeadKeyBytes)
	}
	if st.CollectedByBound != uint64(n-st.Tombstones) {
		t.Errorf("CollectedByBound %d, want the %d collected", st.CollectedByBound, n-st.Tombstones)
	}
	if _, kept := c.store.Lookup(key(n - 1)); !kept {
		t.Error("the newest delete was collected, not the oldest")
	}
}

// TestMaxDeadBytesDefault: the bound on dead records' keys follows
// MaxBytes, or else MaxDeadRecords and MaxKeySize, and is off when dead
// records are unbounded.
func TestMaxDeadBytesDefault(t *testing.T) {
	tests := []struct {
		maxKeys, maxKeySize, maxDead int
		maxBytes, set, want          int64
	}{
		{0, 0, 0, 0, 0, -1},
		{0, 0, 0, 64 << 20, 0, 64 << 20},
		{0, 0, 0, 1 << 20, 0, 2_560_000},
		{1_000_000, 0, 0, 64 << 20, 0, 256_000_000},
		{50_000, 0, 0, 0, 0, 50_000 * DefaultMaxKeySize},
		{50_000, 200, 0, 0, 0, 50_000 * 200},
		{50_000, 200, 7, 0, 0, 7 * 200},
		{0, 0, -1, 64 << 20, 0, -1},
		{50_000, 0, 0, 64 << 20, -1, -1},
		{50_000, 0, 0, 64 << 20, 5, 5},
	}
	for _, tc := range tests {
		cfg := Config{BindAddr: "127.0.0.1:0", MaxKeys: tc.maxKeys, MaxKeySize: tc.maxKeySize, MaxDeadRecords: tc.maxDead,
			MaxBytes: tc.maxBytes, MaxDeadBytes: tc.set}
		if err := cfg.fill(); err != nil {
			t.Fatal(err)
		}
		if cfg.MaxDeadBytes != tc.want {
			t.Errorf("%+v: MaxDeadBytes filled as %d, want %d", tc, cfg.MaxDeadBytes, tc.want)
		}
		again := cfg
		if err := again.fill(); err != nil || again.MaxDeadBytes != cfg.MaxDeadBytes {
			t.Errorf("%+v: filled again: %d, %v", tc, again.MaxDeadBytes, err)
		}
	}
}

// TestDefaultMaxDeadBytesOfAHugeMaxDeadRecords: without MaxBytes, the
// default is MaxDeadRecords times MaxKeySize, which an int64 holds only
// below 2^47 records of 64 KiB keys; an int holds far more on 64-bit
// platforms. A MaxDeadRecords set as a cap past anything held
// (math.MaxInt) wrapped to -65,536, and 2^47 to math.MinInt64, which fill
// itself refuses (Config() could not be given back to New), and 2^48+1
// wrapped to 65,536: a bound of one 64 KiB key, that collected nearly
// every dead record at once. Past an int64, it is math.MaxInt64.
func TestDefaultMaxDeadBytesOfAHugeMaxDeadRecords(t *testing.T) {
	for _, set := range []int64{1<<31 - 1, 1<<47 - 1, 1 << 47, 1<<48 + 1, math.MaxInt64} {
		if set > math.MaxInt { // 32-bit platforms
			set = math.MaxInt
		}
		maxDead := int(set)
		cfg := Config{BindAddr: "127.0.0.1:0", MaxDeadRecords: maxDead}
		if err := cfg.fill(); err != nil {
			t.Fatal(err)
		}
		if want := int64(math.MaxInt64); set >= 1<<47 && cfg.MaxDeadBytes != want {
			t.Errorf("MaxDeadRecords %d: MaxDeadBytes filled as %d, want %d", maxDead, cfg.MaxDeadBytes, want)
		}
		if cfg.MaxDeadBytes < int64(maxDead) {
			t.Errorf("MaxDeadRecords %d: MaxDeadBytes filled as %d, less than a byte a record", maxDead, cfg.MaxDeadBytes)
		}
		again := cfg
		if err := again.fill(); err != nil {
			t.Errorf("MaxDeadRecords %d: the filled Config refused: %v", maxDead, err)
		}
	}
}
