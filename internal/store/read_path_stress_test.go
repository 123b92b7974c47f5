package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// stressValue is the value written for key at stamp (wall, node): its
// key's hash, the stamp, and padding of a length that depends on the
// stamp (other size classes, so that a torn pointer and length shows),
// each padding byte derived from the stamp.
func stressValue(key string, wall int64, node crdt.NodeID, expires int64) []byte {
	pad := []int{0, 7, 40, 700, 5000}[uint64(wall)%5]
	v := make([]byte, stressHeader+pad)
	binary.BigEndian.PutUint64(v, keyHash(key))
	binary.BigEndian.PutUint64(v[8:], uint64(wall))
	binary.BigEndian.PutUint64(v[16:], uint64(node))
	binary.BigEndian.PutUint64(v[24:], uint64(expires))
	for i := range pad {
		v[stressHeader+i] = byte(wall) ^ byte(i)
	}
	return v
}

const stressHeader = 32

func keyHash(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return h.Sum64()
}

// parseStress checks v is a whole value written for key and returns its
// stamp.
func parseStress(key string, v []byte) (crdt.Timestamp, int64, error) {
	if len(v) < stressHeader {
		return crdt.Timestamp{}, 0, fmt.Errorf("%d bytes", len(v))
	}
	if h := binary.BigEndian.Uint64(v); h != keyHash(key) {
		return crdt.Timestamp{}, 0, fmt.Errorf("another key's value (hash %x)", h)
	}
	wall := int64(binary.BigEndian.Uint64(v[8:]))
	node := crdt.NodeID(binary.BigEndian.Uint64(v[16:]))
	expires := int64(binary.BigEndian.Uint64(v[24:]))
	pad := []int{0, 7, 40, 700, 5000}[uint64(wall)%5]
	if len(v) != stressHeader+pad {
		return crdt.Timestamp{}, 0, fmt.Errorf("torn: %d bytes for stamp %d, want %d", len(v), wall, stressHeader+pad)
	}
	for i := range pad {
		if v[stressHeader+i] != byte(wall)^byte(i) {
			return crdt.Timestamp{}, 0, fmt.Errorf("torn: byte %d of stamp %d", stressHeader+i, wall)
		}
	}
	return crdt.Timestamp{Wall: wall, Node: node}, expires, nil
}

// TestLockFreeReadsUnderEveryWriter hammers Get while local writes,
// deletes, peers' records (newer and older), evictions by hand and by the
// bounds, refills, collections and index churn (growth and shrinkage of
// the readers' index and of the map's key table) run beside it. Each
// reader checks: a value is whole and its key's; no read serves a stamp
// older than one the same reader read before for the key; no value is
// served past its expiry; a key deleted by the reader itself is not
// served; and, in the unbounded store, a key present throughout (never
// deleted, evicted or expiring) is never missed.
func TestLockFreeReadsUnderEveryWriter(t *testing.T) {
	for _, cfg := range []Config{
		{Shards: 1, Founder: true},
		{Shards: 16, Founder: true},
		{Shards: 1, MaxKeys: 40, Founder: true},
		{Shards: 16, MaxBytes: 40_000, Founder: true},
	} {
		t.Run(fmt.Sprintf("shards=%d,keys=%d,bytes=%d", cfg.Shards, cfg.MaxKeys, cfg.MaxBytes), func(t *testing.T) {
			stressReads(t, cfg)
		})
	}
}

func stressReads(t *testing.T, cfg Config) {
	s := mustStore(t, cfg)
	bounded := cfg.MaxKeys > 0 || cfg.MaxBytes > 0
	var clock atomic.Int64
	clock.Store(testNow)
	now := func() int64 { return clock.Load() }
	const stable, hot, expiring, churn = 32, 8, 8, 3000
	// pick returns a key of one of the first n families: stable, hot,
	// expiring, churning.
	pick := func(r *rand.Rand, n int) string {
		switch r.IntN(n) {
		case 0:
			return fmt.Sprint("s", r.IntN(stable))
		case 1:
			return fmt.Sprint("h", r.IntN(hot))
		case 2:
			return fmt.Sprint("e", r.IntN(expiring))
		}
		return fmt.Sprint("c", r.IntN(churn))
	}
	for k := range stable {
		key := fmt.Sprint("s", k)
		w := clock.Add(1)
		s.Write(crdt.Record{Key: key, Value: stressValue(key, w, 1, 0), Time: crdt.Timestamp{Wall: w, Node: 1}})
	}
	rounds := 60_000
	if raceEnabled {
		rounds = 8_000
	}
	var stop atomic.Bool
	var writers, readers sync.WaitGroup
	fail := func(format string, args ...any) {
		t.Errorf(format, args...)
		stop.Store(true)
	}
	// Local writes and deletes of hot and stable keys, rewrites in place.
	writers.Go(func() {
		r := rand.New(rand.NewPCG(1, 1))
		for !stop.Load() {
			w := clock.Add(1)
			ts := crdt.Timestamp{Wall: w, Node: 1}
			switch r.IntN(5) {
			case 0:
				key := fmt.Sprint("s", r.IntN(stable))
				s.Write(crdt.Record{Key: key, Value: stressValue(key, w, 1, 0), Time: ts})
			case 1:
				key := fmt.Sprint("h", r.IntN(hot))
				s.Write(crdt.Record{Key: key, Tombstone: true, Time: ts})
			case 2, 3:
				key := fmt.Sprint("h", r.IntN(hot))
				s.Write(crdt.Record{Key: key, Value: stressValue(key, w, 1, 0), Time: ts})
			case 4:
				key := fmt.Sprint("e", r.IntN(expiring))
				exp := w + 1 + r.Int64N(300)
				s.Write(crdt.Record{Key: key, Value: stressValue(key, w, 1, exp), Time: ts, Expires: exp})
			}
		}
	})
	// Peers' records (newer and older), evictions, refills, collections.
	writers.Go(func() {
		r := rand.New(rand.NewPCG(2, 2))
		var snaps []*Snapshot
		for !stop.Load() {
			key := pick(r, 3)
			if r.IntN(300) == 0 { // a snapshot of the store, restored into it again later
				var buf bytes.Buffer
				if _, err := s.WriteSnapshot(&buf, clock.Load()); err != nil {
					fail("WriteSnapshot: %v", err)
					return
				}
				snap, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), int64(buf.Len()), s.DigestBits())
				if err != nil {
					fail("ReadSnapshot: %v", err)
					return
				}
				snaps = append(snaps, snap)
				old := snaps[r.IntN(len(snaps))]
				s.Restore(old, crdt.NewHLC(9, now, time.Hour), clock.Load())
				continue
			}
			switch r.IntN(8) {
			case 0, 1: // newer, of a peer
				w := clock.Add(1)
				rec := crdt.Record{Key: key, Time: crdt.Timestamp{Wall: w, Node: 2}}
				if key[0] == 'e' {
					rec.Expires = w + 1 + r.Int64N(300)
				}
				rec.Value = stressValue(key, w, 2, rec.Expires)
				s.Apply(rec, r.IntN(2) == 0, clock.Load())
			case 2, 3: // older, of another peer
				w := clock.Load() - 1 - r.Int64N(200)
				rec := crdt.Record{Key: key, Time: crdt.Timestamp{Wall: w, Node: 3}}
				if key[0] == 'e' {
					rec.Expires = w + 1 + r.Int64N(300)
				}
				rec.Value = stressValue(key, w, 3, rec.Expires)
				s.Apply(rec, false, clock.Load())
			case 4: // an older delete
				w := clock.Load() - 1 - r.Int64N(50)
				if key[0] != 's' {
					s.Apply(crdt.Record{Key: key, Tombstone: true, Time: crdt.Timestamp{Wall: w, Node: 3}}, false, clock.Load())
				}
			case 5:
				if key[0] != 's' || bounded {
					s.Evict(key)
				}
			case 6:
				if rec, ok := s.Lookup(key); ok && rec.Evicted {
					rec.Evicted, rec.Value = false, stressValue(key, rec.Time.Wall, rec.Time.Node, rec.Expires)
					s.Refill(rec, clock.Load())
				}
			case 7:
				c := clock.Load()
				s.Collect(c, true, c-r.Int64N(100))
			}
		}
	})
	// Index churn: many keys added and removed, growing and shrinking the
	// readers' index and the map's key table.
	writers.Go(func() {
		r := rand.New(rand.NewPCG(3, 3))
		for !stop.Load() {
			// A burst of adds, then of deletes, so that the tables grow
			// and shrink again.
			n := 200 + r.IntN(2000)
			base := r.IntN(churn)
			for i := range n {
				key := fmt.Sprint("c", (base+i)%churn)
				w := clock.Add(1)
				s.Write(crdt.Record{Key: key, Value: stressValue(key, w, 4, 0), Time: crdt.Timestamp{Wall: w, Node: 4}})
			}
			for i := range n {
				key := fmt.Sprint("c", (base+i)%churn)
				w := clock.Add(1)
				s.Write(crdt.Record{Key: key, Tombstone: true, Time: crdt.Timestamp{Wall: w, Node: 4}})
			}
			c := clock.Load()
			s.Collect(c, true, c)
			if stop.Load() {
				return
			}
		}
	})
	for g := range 2 {
		readers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(10+g), 4))
			seen := map[string]crdt.Timestamp{}
			for i := 0; i < rounds && !stop.Load(); i++ {
				key := pick(r, 4)
				if r.IntN(5) == 0 { // a key of this reader's own, deleted by it
					key = fmt.Sprintf("own%d-%d", g, i%50)
					w := clock.Add(1)
					s.Write(crdt.Record{Key: key, Value: stressValue(key, w, 5, 0), Time: crdt.Timestamp{Wall: w, Node: crdt.NodeID(5 + g)}})
					w = clock.Add(1)
					s.Write(crdt.Record{Key: key, Tombstone: true, Time: crdt.Timestamp{Wall: w, Node: crdt.NodeID(5 + g)}})
					if v, ok := s.Get(key, now); ok {
						fail("reader %d: Get(%q) after its own delete = %d bytes", g, key, len(v))
						return
					}
					continue
				}
				before := clock.Load()
				v, ok := s.Get(key, now)
				if !ok {
					if key[0] == 's' && !bounded {
						fail("reader %d: Get(%q) missed a key present throughout", g, key)
						return
					}
					continue
				}
				ts, expires, err := parseStress(key, v)
				if err != nil {
					fail("reader %d: Get(%q): %v", g, key, err)
					return
				}
				if last, ok := seen[key]; ok && ts.Less(last) {
					fail("reader %d: Get(%q) served stamp %v after %v", g, key, ts, last)
					return
				}
				seen[key] = ts
				if expires != 0 && expires <= before {
					fail("reader %d: Get(%q) served stamp %v expired at %d, read at %d or later", g, key, ts, expires, before)
					return
				}
			}
		})
	}
	readers.Wait()
	stop.Store(true)
	writers.Wait()
	checkStore(t, s, clock.Load())
}
