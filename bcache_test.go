package bcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// testConfig is a member on 127.0.0.1 with fast timings.
func testConfig(name string, peers ...string) Config {
	return Config{
		NodeName: name, BindAddr: "127.0.0.1:0", Peers: peers,
		Timings: FastTimings(), AntiEntropyInterval: 100 * time.Millisecond,
	}
}

func newCache(t testing.TB, cfg Config) *Cache {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// cluster starts n members on real sockets, edited by opts, and waits until
// they all see each other.
func cluster(t testing.TB, n int, opts ...func(i int, c *Config)) []*Cache {
	t.Helper()
	var cs []*Cache
	for i := range n {
		cfg := testConfig(fmt.Sprintf("m%d", i))
		if i > 0 {
			cfg.Peers = []string{cs[0].Addr()}
		}
		for _, o := range opts {
			o(i, &cfg)
		}
		cs = append(cs, newCache(t, cfg))
	}
	for _, c := range cs {
		await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == n }, "%s sees %d members", c.cfg.NodeName, len(c.Members()))
	}
	return cs
}

// waitValue waits until key reads value on every member (nil: a miss).
func waitValue(t testing.TB, key string, value []byte, cs ...*Cache) {
	t.Helper()
	for _, c := range cs {
		await.Until(t, 5*time.Second, func() bool {
			v, ok := c.Get(key)
			return ok == (value != nil) && bytes.Equal(v, value)
		}, "%s: Get(%q) never gave %q", c.cfg.NodeName, key, value)
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no bind address", Config{}},
		{"negative MaxKeys", Config{BindAddr: "127.0.0.1:0", MaxKeys: -1}},
		{"negative horizon", Config{BindAddr: "127.0.0.1:0", TombstoneHorizon: -time.Second}},
		{"key of 10 bytes", Config{BindAddr: "127.0.0.1:0", SecretKey: make([]byte, 10)}},
		{"huge values", Config{BindAddr: "127.0.0.1:0", MaxValueSize: 1 << 30}},
		// A bare number is nanoseconds: a core's worth of CPU, or every
		// fill failing (found by review).
		{"GCInterval of 1 ns", Config{BindAddr: "127.0.0.1:0", GCInterval: 1}},
		{"AntiEntropyInterval of 1 ns", Config{BindAddr: "127.0.0.1:0", AntiEntropyInterval: 1}},
		{"FillTimeout of 1 ns", Config{BindAddr: "127.0.0.1:0", FillTimeout: 1}},
		{"FillTTL of 5 ns", Config{BindAddr: "127.0.0.1:0", FillTTL: 5}},
		{"SnapshotInterval of 1 ns", Config{BindAddr: "127.0.0.1:0", SnapshotPath: filepath.Join(os.TempDir(), "bcache-never-written.snap"), SnapshotInterval: 1}},
		{"ProbeInterval of 1 ns", Config{BindAddr: "127.0.0.1:0", Timings: Timings{ProbeInterval: 1}}},
		{"drift beyond the horizon", Config{BindAddr: "127.0.0.1:0", MaxClockDrift: time.Hour, TombstoneHorizon: time.Minute}},
		{"bad bind address", Config{BindAddr: "nowhere"}},
		{"snapshot in no directory", Config{BindAddr: "127.0.0.1:0", SnapshotPath: "/nonexistent/dir/cache.snap"}},
		{"MaxDeadRecords below -1", Config{BindAddr: "127.0.0.1:0", MaxDeadRecords: -2}},
		{"MaxDeadBytes below -1", Config{BindAddr: "127.0.0.1:0", MaxDeadBytes: -2}},
		{"negative clock skew", Config{BindAddr: "127.0.0.1:0", MaxClockSkew: -time.Second}},
		// New took these, and every fill failed, or memberlist refused
		// the label without ErrConfig (found by review).
		{"negative FillTTL", Config{BindAddr: "127.0.0.1:0", FillTTL: -time.Second}},
		{"a label past 255 bytes", Config{BindAddr: "127.0.0.1:0", Label: strings.Repeat("l", 256)}},
		{"advertising a host name", Config{BindAddr: "127.0.0.1:0", AdvertiseAddr: "localhost:7946"}},
		// A value over MaxBytes could never be held (found by review).
		{"MaxValueSize over MaxBytes", Config{BindAddr: "127.0.0.1:0", MaxBytes: 1000, MaxValueSize: 2000}},
		{"a negative timing", Config{BindAddr: "127.0.0.1:0", Timings: Timings{ProbeInterval: -time.Second}}},
		{"negative SubscriptionBytes", Config{BindAddr: "127.0.0.1:0", SubscriptionBytes: -1}},
		{"PacketSize under 512", Config{BindAddr: "127.0.0.1:0", PacketSize: 511}},
		{"PacketSize past a UDP payload", Config{BindAddr: "127.0.0.1:0", PacketSize: 65508}},
		{"negative PacketSize", Config{BindAddr: "127.0.0.1:0", PacketSize: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg)
			if err == nil {
				c.Close()
				t.Fatal("New accepted the config")
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("New: %v, want a config error", err)
			}
		})
	}
}

// TestBadTimingsSayEachFieldOnce: two bad fields of Timings are each named
// once, as the root's other errors are, without the transport's prefix
// (the second kept it: "gossip: invalid config: Timings.ProbeTimeout").
func TestBadTimingsSayEachFieldOnce(t *testing.T) {
	_, err := New(Config{BindAddr: "127.0.0.1:0", Timings: Timings{ProbeInterval: -time.Second, ProbeTimeout: -time.Second}})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("New: %v, want a config error", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "gossip") || !strings.Contains(msg, "ProbeInterval") || !strings.Contains(msg, "ProbeTimeout") {
		t.Fatalf("New: %q; want both fields named, without the transport's prefix", msg)
	}
}

// TestTimingsLeftZeroAreDefaults: each field of Timings left zero takes
// LANTimings's value. One field set left the others zero, and the member,
// started, panicked in a ticker of RejoinInterval 0 (found by review).
func TestTimingsLeftZeroAreDefaults(t *testing.T) {
	cfg := testConfig("partial")
	cfg.Timings = Timings{ProbeInterval: 2 * time.Second}
	c := newCache(t, cfg)
	want := LANTimings()
	want.ProbeInterval = 2 * time.Second
	if got := c.Config().Timings; got != want {
		t.Fatalf("timings %+v, want %+v", got, want)
	}
	if err := c.Set("k", []byte("v"), 0); err != nil { // the member runs
		t.Fatal(err)
	}
}

// TestMaxValueSizeFollowsMaxBytes: with MaxBytes under 1 MiB and no
// MaxValueSize, a value larger than MaxBytes is refused (ErrValueTooLarge).
// It was taken, and evicted nearly every value held before itself: one
// Set of 100 KiB under MaxBytes 64 KiB left 9 of 500 values (found by
// review).
func TestMaxValueSizeFollowsMaxBytes(t *testing.T) {
	c := newCache(t, Config{BindAddr: "127.0.0.1:0", MaxBytes: 64 << 10})
	for i := range 500 {
		c.Set(fmt.Sprint("k", i), make([]byte, 100), 0)
	}
	before := c.Len()
	if err := c.Set("big", make([]byte, 100<<10), 0); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("a value over MaxBytes: %v, want ErrValueTooLarge", err)
	}
	if c.Len() != before {
		t.Fatalf("the refused value took %d values with it", before-c.Len())
	}
	if got := c.Config().MaxValueSize; got != 64<<10 {
		t.Fatalf("MaxValueSize %d, want MaxBytes", got)
	}
	// MaxBytes counts keys too: a value of MaxBytes with its key, or a key
	// longer than MaxBytes, could never be held (found by review of the
	// value limit: each emptied the cache).
	if err := c.Set("k", make([]byte, 64<<10), 0); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("a key and value over MaxBytes: %v, want ErrValueTooLarge", err)
	}
	if c.Len() != before {
		t.Fatalf("the refused pair took %d values with it", before-c.Len())
	}
}

// TestMaxDeadRecordsDefault: the bound on dead records follows the bounds
// on values, and is off when they are.
func TestMaxDeadRecordsDefault(t *testing.T) {
	tests := []struct {
		maxKeys  int
		maxBytes int64
		set      int
		want     int
	}{
		{0, 0, 0, -1},
		{50_000, 0, 0, 50_000},
		{100, 0, 0, 10_000},
		{0, 64 << 20, 0, 262_144},
		{50_000, 64 << 20, 0, 50_000},
		{50_000, 0, -1, -1},
		{50_000, 0, 7, 7},
	}
	for _, tc := range tests {
		cfg := Config{BindAddr: "127.0.0.1:0", MaxKeys: tc.maxKeys, MaxBytes: tc.maxBytes, MaxDeadRecords: tc.set}
		if err := cfg.fill(); err != nil {
			t.Fatal(err)
		}
		if cfg.MaxDeadRecords != tc.want {
			t.Errorf("MaxKeys %d, MaxBytes %d, MaxDeadRecords %d: filled as %d, want %d",
				tc.maxKeys, tc.maxBytes, tc.set, cfg.MaxDeadRecords, tc.want)
		}
	}
}

// TestDeadRecordsCollectedWithinSeconds: on a healthy cluster, deletes and
// expired values leave every member once every member is known to hold
// them, long before the horizon of an hour.
func TestDeadRecordsCollectedWithinSeconds(t *testing.T) {
	cs := cluster(t, 3, func(_ int, c *Config) { c.GCInterval = 100 * time.Millisecond })
	for i := range 100 {
		key := fmt.Sprint("k", i)
		if err := cs[i%3].Set(key, []byte("v"), time.Duration(i%2)*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := cs[(i+1)%3].Delete(key); err != nil {
				t.Fatal(err)
			}
		}
	}
	// What each member holds, and its exchanges, at the deadline (read
	// at the call, the figures were those before the wait).
	state := func() any {
		var b strings.Builder
		for _, c := range cs {
			st := c.Stats()
			p := st.Replication.Protocol
			fmt.Fprintf(&b, "\n%s: %d records (%d tombstones), %d collected early, members %d, sessions %d started %d completed %d timed out, frames %d in %d out",
				c.cfg.NodeName, st.Records, st.Tombstones, st.CollectedEarly, len(c.Members()),
				p.SessionsStarted, p.SessionsCompleted, p.SessionsTimedOut, p.FramesReceived, p.FramesSent)
		}
		return b.String()
	}
	for _, c := range cs {
		await.Until(t, 20*time.Second, func() bool { return c.Stats().Records == 0 },
			"%s holds records:%v", c.cfg.NodeName, state)
		if st := c.Stats(); st.CollectedEarly == 0 || st.CollectedByBound != 0 {
			t.Fatalf("%s: %d collected early, %d by the bound", c.cfg.NodeName, st.CollectedEarly, st.CollectedByBound)
		}
	}
}

// leaveAndExpire closes the last of cs (it leaves), waits until the others
// no longer see it, and writes a value that expires at once.
func leaveAndExpire(t *testing.T, cs []*Cache) {
	t.Helper()
	if err := cs[len(cs)-1].Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs[:len(cs)-1] {
		await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == len(cs)-1 }, "%s still sees the member that left", c.cfg.NodeName)
	}
	if err := cs[0].Set("k", []byte("v"), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// TestMemberThatLeftKeepingNothingIsNotWaitedFor: once a member without a
// snapshot has closed (left the cluster on purpose, with nothing to bring
// back), the others collect dead records early without it. (Waited for as
// one with a snapshot is, every Close stopped early collection for the
// horizon: found by review.)
func TestMemberThatLeftKeepingNothingIsNotWaitedFor(t *testing.T) {
	cs := cluster(t, 3, func(_ int, c *Config) { c.GCInterval = 100 * time.Millisecond })
	leaveAndExpire(t, cs)
	for _, c := range cs[:2] {
		await.Until(t, 20*time.Second, func() bool { st := c.Stats(); return st.CollectedEarly > 0 && st.Records == 0 },
			"%s holds %+v", c.cfg.NodeName, c.Stats())
	}
}

// TestMemberThatLeftIsWaitedForUntilItReturns: a member that closed (left
// the cluster on purpose) may hold writes no one else has (a delta lost),
// in its snapshot: the others collect nothing early until it is back under
// its name and has synced, then they do. They used to go on without it as
// soon as they had synced with each other, and a leaver restarted from its
// snapshot had its live writes rejected (found by review).
func TestMemberThatLeftIsWaitedForUntilItReturns(t *testing.T) {
	dir := t.TempDir()
	gc := func(i int, c *Config) {
		c.GCInterval = 100 * time.Millisecond
		if i == 2 {
			c.SnapshotPath = filepath.Join(dir, "m2")
		}
	}
	cs := cluster(t, 3, gc)
	leaveAndExpire(t, cs)
	// Past when the leaver was no longer waited for (its end retired once
	// both had synced after it and EndedFor, two TCPTimeouts, 4 s with
	// FastTimings, and the bound's 1 s margin), exchanges and collections
	// go on: they collected the record then. The fault here is time
	// passing.
	past := time.Now().Add(6 * time.Second)
	await.Until(t, 20*time.Second, func() bool { return time.Now().After(past) }, "time stands still")
	sessions := func(c *Cache) uint64 { return c.Stats().Replication.Protocol.SessionsCompleted }
	from := []uint64{sessions(cs[0]), sessions(cs[1])}
	for i, c := range cs[:2] {
		await.Until(t, 20*time.Second, func() bool { return sessions(c) >= from[i]+3 }, "%s completes no sessions", c.cfg.NodeName)
	}
	for _, c := range cs[:2] {
		if st := c.Stats(); st.CollectedEarly != 0 || st.Records == 0 {
			t.Fatalf("%s collected %d dead records early while a member that left was away", c.cfg.NodeName, st.CollectedEarly)
		}
	}
	cfg := testConfig("m2") // back under its name, from its snapshot
	cfg.Peers, cfg.SnapshotPath, cfg.GCInterval = []string{cs[0].Addr()}, filepath.Join(dir, "m2"), 100*time.Millisecond
	back := newCache(t, cfg)
	for _, c := range append(cs[:2:2], back) {
		await.Until(t, 20*time.Second, func() bool { st := c.Stats(); return st.CollectedEarly > 0 && st.Records == 0 },
			"%s holds %+v", c.cfg.NodeName, c.Stats())
	}
}

func TestZeroConfigPlusBindAddr(t *testing.T) {
	c := newCache(t, Config{BindAddr: "127.0.0.1:0"})
	if c.Addr() == "127.0.0.1:0" || c.cfg.NodeName == "" {
		t.Fatalf("Addr %q, name %q: want a real port and a generated name", c.Addr(), c.cfg.NodeName)
	}
	if err := c.Set("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get("k"); !ok || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, ok)
	}
}

func TestLocalOperations(t *testing.T) {
	c := newCache(t, Config{BindAddr: "127.0.0.1:0", MaxKeySize: 8, MaxValueSize: 16})
	buf := []byte("value")
	if err := c.Set("k", buf, 0); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX") // the cache copied the value
	if v, _ := c.Get("k"); string(v) != "value" {
		t.Fatalf("Get after the caller reused its buffer = %q", v)
	}
	errs := []struct {
		name string
		err  error
		want error
	}{
		{"negative ttl", c.Set("k", nil, -time.Second), ErrInvalidTTL},
		{"key too large", c.Set("123456789", nil, 0), ErrKeyTooLarge},
		{"value too large", c.Set("k", make([]byte, 17), 0), ErrValueTooLarge},
		{"delete key too large", c.Delete("123456789"), ErrKeyTooLarge},
	}
	for _, e := range errs {
		if !errors.Is(e.err, e.want) {
			t.Errorf("%s: %v, want %v", e.name, e.err, e.want)
		}
	}
	if err := c.Delete("k"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("k"); ok {
		t.Fatal("Get after Delete hit")
	}
	if err := c.Delete("nope"); err != nil {
		t.Fatalf("Delete of a key never written: %v", err)
	}
	if c.Len() != 0 {
		t.Fatalf("Len = %d, want 0", c.Len())
	}
}

func TestTTLExpires(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	cfg := Config{BindAddr: "127.0.0.1:0", Clock: func() time.Time { return time.Unix(0, now.Load()) }}
	c := newCache(t, cfg)
	if err := c.Set("k", []byte("v"), time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("k"); !ok {
		t.Fatal("miss before the TTL")
	}
	now.Add(int64(time.Second))
	if _, ok := c.Get("k"); ok {
		t.Fatal("hit at the TTL")
	}
}

// TestSetHugeTTLNeverExpires (no-loss item 1): Set computed wall + ttl,
// which wrapped for a ttl above about 235 years: time.Duration(math.MaxInt64),
// a common "forever", made Set return nil and Get miss at once, and
// GetWithFiller return the value without caching it. Such a TTL is now
// no expiry, as 0: it saturated at the end of Unix nanosecond time,
// expiring never, but with an expiry the value kept its shard's
// collection walking every record at each GCInterval (found by review).
func TestSetHugeTTLNeverExpires(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	c := newCache(t, Config{BindAddr: "127.0.0.1:0", Clock: func() time.Time { return time.Unix(0, now.Load()) }})
	forever := time.Duration(math.MaxInt64)
	if err := c.Set("k", []byte("v"), forever); err != nil {
		t.Fatal(err)
	}
	fills := 0
	fill := func(context.Context, string) ([]byte, error) { fills++; return []byte("filled"), nil }
	for range 2 {
		if _, err := c.GetWithFiller(context.Background(), "f", fill, 2562047*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	now.Add(int64(200 * 365 * 24 * time.Hour))
	if v, ok := c.Get("k"); !ok || string(v) != "v" {
		t.Fatalf("Get two centuries later = %q, %v; want the value", v, ok)
	}
	if fills != 1 {
		t.Fatalf("the filler ran %d times, want 1: its value was not cached", fills)
	}
	for _, key := range []string{"k", "f"} {
		if rec, _ := c.store.Lookup(key); rec.Expires != 0 {
			t.Fatalf("%s held with expiry %d, want none", key, rec.Expires)
		}
	}
}

func TestReplicatesSetAndDelete(t *testing.T) {
	cs := cluster(t, 3)
	if err := cs[0].Set("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	waitValue(t, "k", []byte("v"), cs...)
	if err := cs[2].Delete("k"); err != nil {
		t.Fatal(err)
	}
	waitValue(t, "k", nil, cs...)
}

// TestLaterShortTTLBeatsEarlierLongTTL: the original bcache kept the longest
// expiry; here the later write wins and takes its TTL everywhere.
func TestLaterShortTTLBeatsEarlierLongTTL(t *testing.T) {
	cs := cluster(t, 3)
	cs[0].Set("k", []byte("long"), time.Hour)
	waitValue(t, "k", []byte("long"), cs...)
	cs[1].Set("k", []byte("short"), 200*time.Millisecond)
	waitValue(t, "k", nil, cs...) // expired everywhere, not back to "long"
}

// TestDeleteOnEvictingMemberPropagates: a member that evicted keys still
// deletes them everywhere (the original lost 40 of 50 such deletes).
func TestDeleteOnEvictingMemberPropagates(t *testing.T) {
	cs := cluster(t, 3, func(i int, c *Config) {
		if i == 1 {
			c.MaxKeys = 10
		}
	})
	for i := range 50 {
		cs[0].Set(fmt.Sprint("key-", i), []byte("v"), 0)
	}
	waitValue(t, "key-49", []byte("v"), cs[0], cs[2])
	await.Until(t, 5*time.Second, func() bool { return cs[1].Stats().Evictions >= 40 }, "m1 evicted %d", cs[1].Stats().Evictions)
	if n := cs[1].Len(); n > 10 {
		t.Fatalf("m1 holds %d values, MaxKeys 10", n)
	}
	for i := range 50 {
		cs[1].Delete(fmt.Sprint("key-", i))
	}
	for i := range 50 {
		waitValue(t, fmt.Sprint("key-", i), nil, cs...)
	}
}

// TestEvictionIsLocalAndNotRepaired: evicted values stay evicted on their
// member, are served elsewhere, and anti-entropy does not ship them back.
func TestEvictionIsLocalAndNotRepaired(t *testing.T) {
	cs := cluster(t, 2, func(i int, c *Config) {
		if i == 1 {
			c.MaxKeys = 5
		}
	})
	for i := range 20 {
		cs[0].Set(fmt.Sprint("key-", i), []byte("v"), 0)
	}
	waitValue(t, "key-19", []byte("v"), cs...)
	await.Until(t, 5*time.Second, func() bool { return cs[1].Len() <= 5 }, "m1 holds %d", cs[1].Len())
	// The sessions that ran while the writes were on their way may have
	// repaired some (a session starts as soon as a member arrives); from
	// here on, with every write delivered, none may.
	sessions := func() uint64 { return cs[1].Stats().Replication.Protocol.SessionsCompleted }
	repaired := func() uint64 { return cs[1].Stats().Replication.Protocol.RepairRecordsReceived }
	rounds := sessions()
	await.Until(t, 5*time.Second, func() bool { return sessions() >= rounds+2 }, "no anti-entropy")
	before := repaired()
	rounds = sessions()
	await.Until(t, 5*time.Second, func() bool { return sessions() >= rounds+5 }, "no anti-entropy")
	if n := repaired() - before; n != 0 || cs[1].Len() > 5 {
		t.Fatalf("anti-entropy repaired %d keys onto the evicting member (it holds %d values)", n, cs[1].Len())
	}
	for i := range 20 {
		if v, ok := cs[0].Get(fmt.Sprint("key-", i)); !ok || string(v) != "v" {
			t.Fatalf("m0 lost key-%d", i)
		}
	}
}

// TestBoundedMemberKeepsThePeersNewestWrites: a member bounded at 50
// values, while a peer writes k0..k499 and then all of them again, ends
// with the 50 written last (the CLOCK ring that preceded the current
// policy kept a scatter of old and new, and once not k499).
func TestBoundedMemberKeepsThePeersNewestWrites(t *testing.T) {
	cs := cluster(t, 2, func(i int, c *Config) {
		if i == 1 {
			c.MaxKeys = 50
		}
	})
	for pass := range 2 {
		for i := range 500 {
			if err := cs[0].Set(fmt.Sprint("k", i), []byte(fmt.Sprint(pass)), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	await.Until(t, 10*time.Second, func() bool {
		for i := range 500 {
			a, _ := cs[0].store.Lookup(fmt.Sprint("k", i))
			if b, ok := cs[1].store.Lookup(a.Key); !ok || b.Time != a.Time {
				return false
			}
		}
		return true
	}, "m1 has not received every write")
	var held []string
	for i := range 500 {
		if rec, _ := cs[1].store.Lookup(fmt.Sprint("k", i)); !rec.Evicted {
			held = append(held, rec.Key)
		}
	}
	want := make([]string, 0, 50)
	for i := 450; i < 500; i++ {
		want = append(want, fmt.Sprint("k", i))
	}
	if !slices.Equal(held, want) {
		t.Fatalf("m1 holds %v, want k450..k499; m0 %+v; m1 %+v", held, cs[0].Stats().Replication, cs[1].Stats().Replication)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	cs := cluster(t, 2)
	cs[0].Set("k", []byte("v"), 0)
	waitValue(t, "k", []byte("v"), cs...)
	for _, c := range cs {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	if err := cs[0].Set("k", nil, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Set after Close: %v, want ErrClosed", err)
	}
	if err := cs[0].Delete("k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Delete after Close: %v, want ErrClosed", err)
	}
	if _, ok := cs[0].Get("k"); ok || cs[0].Members() != nil || cs[0].Len() != 0 {
		t.Fatal("a closed cache still serves")
	}
	await.Until(t, 5*time.Second, func() bool { return runtime.NumGoroutine() <= before },
		"%d goroutines after Close, %d before", runtime.NumGoroutine(), before)
}

// TestErrorsReadOnce: an error names the package, the operation and the
// key once, then the sentinel and the numbers.
func TestErrorsReadOnce(t *testing.T) {
	c := newCache(t, Config{BindAddr: "127.0.0.1:0", MaxValueSize: 16})
	tests := []struct {
		err  error
		want string
	}{
		{c.Set("k", make([]byte, 17), 0), `bcache: set "k": value too large (17 bytes, limit 16)`},
		{c.Set(strings.Repeat("k", 70000), nil, 0), `bcache: set "` + strings.Repeat("k", 32) + `...": key too large (70000 bytes, limit 65536)`},
		{c.Set("k", nil, -time.Second), `bcache: set "k": negative ttl (-1s)`},
	}
	for _, tc := range tests {
		if tc.err == nil || tc.err.Error() != tc.want {
			t.Errorf("got %v, want %s", tc.err, tc.want)
		}
	}
	_, err := New(Config{BindAddr: "127.0.0.1:0", MaxKeys: -1})
	if want := "bcache: new: invalid config: MaxKeys: negative (-1)"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestConfigIsDeterministicAndCopied: DefaultConfig is the same on every
// call, and neither the Config passed to New nor the one Config returns
// lets a caller change a running member.
func TestConfigIsDeterministicAndCopied(t *testing.T) {
	if a, b := DefaultConfig(), DefaultConfig(); !reflect.DeepEqual(a, b) {
		t.Fatalf("DefaultConfig differs between calls: %+v, %+v", a, b)
	}
	key := bytes.Repeat([]byte{1}, 16)
	cfg := Config{BindAddr: "127.0.0.1:0", SecretKey: key, Peers: []string{"127.0.0.1:1"}}
	c := newCache(t, cfg)
	key[0], cfg.Peers[0] = 9, "changed"
	got := c.Config()
	if got.SecretKey[0] != 1 || got.Peers[0] != "127.0.0.1:1" {
		t.Fatalf("the caller's slices changed the member's config: %v %v", got.SecretKey, got.Peers)
	}
	got.Peers[0] = "changed again"
	if c.Config().Peers[0] != "127.0.0.1:1" {
		t.Fatal("Config returned the member's own slice")
	}
}

// TestDefaultConfigThenBounds: a DefaultConfig with bounds set afterwards
// runs as a Config with those bounds alone: MaxValueSize and
// MaxDeadRecords follow them. DefaultConfig filled them for no bounds:
// with MaxBytes set, New refused its 1 MiB MaxValueSize; with MaxKeys,
// the dead records stayed unbounded (found by review).
func TestDefaultConfigThenBounds(t *testing.T) {
	for _, bound := range []func(*Config){
		func(c *Config) { c.MaxBytes = 256 << 10 },
		func(c *Config) { c.MaxKeys = 1000 },
	} {
		cfg := DefaultConfig()
		cfg.BindAddr = "127.0.0.1:0"
		bound(&cfg)
		plain := Config{BindAddr: "127.0.0.1:0"}
		bound(&plain)
		c := newCache(t, cfg)
		want := newCache(t, plain).Config()
		if got := c.Config(); got.MaxValueSize != want.MaxValueSize || got.MaxDeadRecords != want.MaxDeadRecords ||
			got.MaxDeadBytes != want.MaxDeadBytes {
			t.Fatalf("from DefaultConfig: MaxValueSize %d MaxDeadRecords %d MaxDeadBytes %d; from a zero Config: %d, %d, %d",
				got.MaxValueSize, got.MaxDeadRecords, got.MaxDeadBytes, want.MaxValueSize, want.MaxDeadRecords, want.MaxDeadBytes)
		}
	}
}

// TestBindAddrWithoutPortIsAConfigError: a BindAddr without a port used to
// be a plain error (the HTTP node exited 1, not 2 as for any other bad
// configuration).
func TestBindAddrWithoutPortIsAConfigError(t *testing.T) {
	_, err := New(Config{BindAddr: "127.0.0.1"})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "BindAddr") {
		t.Fatalf("New: %v, want ErrConfig naming BindAddr", err)
	}
}

// TestMaxKeysPastTheLimitIsTheLimit: a MaxKeys past MaxKeysLimit (a cap
// set past anything held) is taken as MaxKeysLimit, the most the eviction
// policy places, and Config says so.
func TestMaxKeysPastTheLimitIsTheLimit(t *testing.T) {
	c := newCache(t, Config{BindAddr: "127.0.0.1:0", MaxKeys: 1_000_000_000})
	if got := c.Config().MaxKeys; got != MaxKeysLimit {
		t.Fatalf("MaxKeys %d, want %d", got, MaxKeysLimit)
	}
	if err := c.Set("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("k"); !ok {
		t.Fatal("a value written is not held")
	}
}

// TestErrorsNameTheCallAndTheKey: the errors of a closed Cache name the
// call and its key, and are ErrClosed whatever else is wrong with the
// call; a context's error that a call returns is wrapped likewise (some
// were bare, some left out the key, and a call without a filler on a
// closed Cache said ErrNilFiller: found by review).
func TestErrorsNameTheCallAndTheKey(t *testing.T) {
	a := newCache(t, testConfig("a"))
	tok, err := a.SetWithToken("k", []byte("v"), 0)
	if err != nil {
		t.Fatal(err)
	}
	b := newCache(t, testConfig("b", "127.0.0.1:1")) // a peer that is never there
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := b.GetAfter(ctx, "k", tok); !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), `bcache: get after "k": `) {
		t.Errorf("GetAfter with its context ended: %v", err)
	}
	if err := b.WaitSynced(ctx); !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "bcache: wait synced: ") {
		t.Errorf("WaitSynced with its context ended: %v", err)
	}
	b.Close()
	calls := map[string]error{
		"set":             b.Set("k", nil, 0),
		"delete":          b.Delete("k"),
		"get with filler": func() error { _, err := b.GetWithFiller(context.Background(), "k", nil, 0); return err }(),
		"get or fill":     func() error { _, err := b.GetOrFill(context.Background(), "k"); return err }(),
		"get after":       func() error { _, _, err := b.GetAfter(context.Background(), "k", tok); return err }(),
	}
	for op, err := range calls {
		if want := fmt.Sprintf("bcache: %s %q: ", op, "k"); !errors.Is(err, ErrClosed) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s on a closed Cache: %v, want ErrClosed, named %q", op, err, want)
		}
	}
}

// TestDefaultMaxDeadOfAHugeMaxBytes: the default MaxDeadRecords of a
// MaxBytes set as a cap past anything held is MaxBytes/256 as far as an
// int goes, whatever the word size. Where int has 32 bits, it was
// int(MaxBytes/256) wrapped: 512 GiB gave -2^31 (which fill itself refuses:
// Config() could not be given back to New), 1 TiB gave 0 (unbounded), and
// 1 TiB + 1 MiB gave 4,096, below the floor of 10,000.
// (Found by review under qemu-arm; on 64-bit the test passes either way.)
func TestDefaultMaxDeadOfAHugeMaxBytes(t *testing.T) {
	for _, maxBytes := range []int64{1 << 39, 1 << 40, 1<<40 + 1<<20, math.MaxInt64} {
		cfg := Config{BindAddr: "127.0.0.1:0", MaxBytes: maxBytes}
		if err := cfg.fill(); err != nil {
			t.Fatal(err)
		}
		want := int(min(maxBytes/256, math.MaxInt))
		if cfg.MaxDeadRecords != want {
			t.Errorf("MaxBytes %d: MaxDeadRecords filled as %d, want %d", maxBytes, cfg.MaxDeadRecords, want)
		}
		again := cfg
		if err := again.fill(); err != nil {
			t.Errorf("MaxBytes %d: the filled Config refused: %v", maxBytes, err)
		}
	}
}
