package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// TestBoundCollectionsReplayToHeldState: stores under MaxDeadBytes (and
// at times MaxDead, MaxKeys) with long keys, whose collections the bounds
// drive (the horizon is an hour away), report what they hold to their
// watcher: after every operation, replaying the events from an empty
// start gives exactly the values (versions, expiries) held, and Get
// answers as the replay says. A collection reports an expired value's
// EventExpire once, for the version the replay holds, expired at the
// collection's now, and nothing else (a tombstone's collection changes
// no value); records written again, deleted again, evicted or refilled
// between the walk and the bound's scan, or between the scan and the
// collection (the race of TestARevivedLongKeyMakesTheBoundCollectNothing),
// change none of that. Seeded: a failure replays by its seed.
func TestBoundCollectionsReplayToHeldState(t *testing.T) {
	runs, byBound, raced := 300, uint64(0), 0
	if raceEnabled || testing.Short() {
		runs = 40
	}
	for seed := uint64(1); seed <= uint64(runs); seed++ {
		n, r, failure := boundFeedRunRaced(seed, intact)
		if failure != "" {
			t.Fatalf("seed %d: %s", seed, failure)
		}
		byBound, raced = byBound+n, raced+r
	}
	if byBound == 0 || raced == 0 {
		t.Fatalf("%d records collected by the bounds, %d operations between their scan and collection: the runs miss a path", byBound, raced)
	}
	t.Logf("%d records collected by the bounds in %d runs, %d operations between their scan and collection", byBound, runs, raced)
}

// TestBoundFeedPropertyCatchesUnreportedCollections: the property above,
// run on stores whose bound collections take expired values without
// reporting them (unpublish skipped), fails, by the replay.
func TestBoundFeedPropertyCatchesUnreportedCollections(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		if _, failure := boundFeedRun(seed, boundUnreported); failure != "" {
			if !strings.Contains(failure, "replay") {
				t.Fatalf("seed %d caught the broken store, not by the replay: %s", seed, failure)
			}
			t.Logf("caught at seed %d: %s", seed, failure)
			return
		}
	}
	t.Fatal("300 runs passed a store whose bound collections report nothing")
}

// boundFeedRun runs one seed's operations and returns how many records
// the bounds collected, and the first failure ("" for none).
func boundFeedRun(seed uint64, broken brokenRule) (byBound uint64, failure string) {
	byBound, _, failure = boundFeedRunRaced(seed, broken)
	return byBound, failure
}

// boundFeedRunRaced is boundFeedRun, and says how many times an operation
// ran between the bound's scan and its collection.
func boundFeedRunRaced(seed uint64, broken brokenRule) (byBound uint64, raced int, failure string) {
	rng := rand.New(rand.NewPCG(seed, 383))
	const maxKeyLen = 4000
	lens := []int{8, 100, 900, maxKeyLen}
	keys := make([]string, 10)
	for i := range keys {
		keys[i] = fmt.Sprintf("%02d", i) + strings.Repeat("k", lens[rng.IntN(len(lens))])
	}
	cfg := Config{Shards: []int{1, 16}[rng.IntN(2)], DigestBits: 8, Horizon: time.Hour, Founder: true,
		MaxDeadBytes: int64(1 + rng.IntN(3*maxKeyLen))}
	if rng.IntN(2) == 0 {
		cfg.MaxDead = 1 + rng.IntN(4)
	}
	if rng.IntN(3) == 0 {
		cfg.MaxKeys = 2 + rng.IntN(5)
	}
	if rng.IntN(2) == 0 {
		cfg.MaxClockSkew = time.Duration(1+rng.IntN(5)) * time.Millisecond
	}
	s, err := New(cfg)
	if err != nil {
		return 0, 0, err.Error()
	}
	s.broken = broken

	now := testNow
	var logical uint32
	stamp := func(node crdt.NodeID, back int64) crdt.Timestamp {
		logical++
		return crdt.Timestamp{Wall: now - back, Logical: logical, Node: node}
	}
	written := map[crdt.Timestamp]crdt.Record{} // every value made, for refills

	replayed := map[string]crdt.Record{}
	var fail string
	failf := func(format string, args ...any) {
		if fail == "" {
			fail = fmt.Sprintf(format, args...)
		}
	}
	collecting, collectNow := false, int64(0) // a collection's own events, not an op's in a hook
	var expired map[crdt.Timestamp]int        // versions reported expired
	s.Watch(func(ev *Event) {
		k := ev.Record.Key
		if collecting {
			if ev.Kind != EventExpire {
				failf("a collection reported %v of %.8q", ev.Kind, k)
			}
			r, ok := replayed[k]
			switch {
			case !ok || r.Time != ev.Record.Time:
				failf("a collection reported the expiry of %.8q %v, the replay holding %v (%v)", k, ev.Record.Time, r.Time, ok)
			case r.Expires == 0 || r.Expires > collectNow:
				failf("a collection reported the expiry of %.8q expiring at %d, collected at %d", k, r.Expires, collectNow)
			}
			if expired[ev.Record.Time]++; expired[ev.Record.Time] > 1 {
				failf("%.8q %v reported expired twice", k, ev.Record.Time)
			}
		}
		switch ev.Kind {
		case EventSet:
			r := ev.Record
			r.Value = bytes.Clone(r.Value)
			replayed[k] = r
		default:
			delete(replayed, k)
		}
	})
	defer func() { afterOldestScan, betweenSteps = nil, nil }()

	var trace []string
	op := func(inHook bool) {
		k := keys[rng.IntN(len(keys))]
		was := collecting
		collecting = false
		defer func() { collecting = was }()
		switch r := rng.IntN(10); {
		case r < 3: // a local value, often with a TTL
			rec := crdt.Record{Key: k, Value: fmt.Appendf(nil, "v%d", logical), Time: stamp(1, 0)}
			if rng.IntN(3) > 0 {
				rec.Expires = now + int64(rng.IntN(8)-2)*int64(time.Millisecond)
			}
			written[rec.Time] = rec
			s.Write(rec)
			trace = append(trace, fmt.Sprintf("write %.3s %v exp %d", k, rec.Time, max(rec.Expires-now, -1)))
		case r < 5: // a delete
			s.Write(crdt.Record{Key: k, Tombstone: true, Time: stamp(1, 0)})
			trace = append(trace, fmt.Sprintf("delete %.3s", k))
		case r < 7: // a peer's record, maybe old (under a watermark)
			back := int64(rng.IntN(20)) * int64(time.Millisecond)
			rec := crdt.Record{Key: k, Time: stamp(2, back)}
			if rng.IntN(3) == 0 {
				rec.Tombstone = true
			} else {
				rec.Value = fmt.Appendf(nil, "p%d", logical)
				if rng.IntN(2) == 0 {
					rec.Expires = now + int64(rng.IntN(8)-3)*int64(time.Millisecond)
				}
				written[rec.Time] = rec
			}
			o := s.Apply(rec, rng.IntN(2) == 0, now)
			trace = append(trace, fmt.Sprintf("apply %.3s back %d tomb %v: %v", k, back, rec.Tombstone, o))
		case r < 8:
			ok := s.Evict(k)
			trace = append(trace, fmt.Sprintf("evict %.3s: %v", k, ok))
		case r < 9: // a refill of the stub's version
			if held, ok := s.Lookup(k); ok && held.Evicted {
				if w, ok := written[held.Time]; ok {
					o := s.Refill(w, now)
					trace = append(trace, fmt.Sprintf("refill %.3s: %v", k, o))
				}
			}
		default:
			if inHook {
				return
			}
			now += int64(rng.IntN(4)) * int64(time.Millisecond)
			trace = append(trace, fmt.Sprintf("tick %d", now-testNow))
		}
	}
	collect := func() {
		if rng.IntN(2) == 0 {
			afterOldestScan = func() {
				afterOldestScan = nil
				raced++
				trace = append(trace, "after the scan:")
				op(true)
			}
		}
		if rng.IntN(2) == 0 {
			at := rng.IntN(4)
			betweenSteps = func(int, bool) {
				if at--; at == 0 {
					trace = append(trace, "between steps:")
					op(true)
				}
			}
		}
		before := s.Stats().CollectedByBound
		collecting, collectNow, expired = true, now, map[crdt.Timestamp]int{}
		n := len(s.Collect(now, false, lww.NoStable))
		collecting = false
		afterOldestScan, betweenSteps = nil, nil
		byBound += s.Stats().CollectedByBound - before
		trace = append(trace, fmt.Sprintf("collect at %d: %d", now-testNow, n))
	}
	check := func() {
		if fail != "" {
			return
		}
		held := map[string]crdt.Record{}
		s.Range(func(r crdt.Record) bool {
			if !r.Tombstone && !r.Evicted {
				held[r.Key] = r
			}
			return true
		})
		for k, h := range held {
			r, ok := replayed[k]
			if !ok || r.Time != h.Time || r.Expires != h.Expires || !bytes.Equal(r.Value, h.Value) {
				failf("the replay holds %.8q %v exp %d (%v); the store %v exp %d", k, r.Time, r.Expires, ok, h.Time, h.Expires)
				return
			}
		}
		for k, r := range replayed {
			if _, ok := held[k]; !ok {
				failf("the replay holds %.8q %v exp %d; the store no value of it", k, r.Time, r.Expires-now)
				return
			}
		}
		for _, k := range keys {
			v, ok := s.Get(k, func() int64 { return now })
			r, in := replayed[k]
			want := in && (r.Expires == 0 || now < r.Expires)
			if ok != want || ok && !bytes.Equal(v, r.Value) {
				failf("Get(%.8q) = %q, %v; the replay holds %q (%v) expiring at %d, now %d", k, v, ok, r.Value, in, r.Expires-now, 0)
				return
			}
		}
	}
	for range 150 {
		if rng.IntN(4) == 0 {
			collect()
		} else {
			op(false)
		}
		check()
		if fail != "" {
			if len(trace) > 12 {
				trace = trace[len(trace)-12:]
			}
			return byBound, raced, fail + "\n\t" + strings.Join(trace, "\n\t")
		}
	}
	return byBound, raced, ""
}
