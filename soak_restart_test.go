package bcache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// soakOp is one acknowledged write or delete of the soak.
type soakOp struct {
	key     string
	member  int
	n       int // its number in the run
	ts      crdt.Timestamp
	tok     Token
	val     []byte // nil: a delete
	expires time.Time
	certain bool // acknowledged and durable or replicated for sure
	inc     int  // the writer's incarnation
}

func (o *soakOp) dead(now time.Time) bool {
	return o.val == nil || (!o.expires.IsZero() && !now.Before(o.expires))
}

type soakMember struct {
	name   string
	cfg    Config
	path   string
	c      *Cache
	inc    int
	own    map[string]*soakOp // the last write of each key made here, on these files
	policy SyncPolicy
	bound  bool
}

// TestSoakRestartsFromDisk runs 3 or 4 members on memnet with snapshots
// and write logs, some bounded, under writes, deletes, TTLs, partitions,
// clean restarts and crashes (restarts from a crash image), and checks
// that once healed they converge on the last surviving write of every key.
// BCACHE_SOAK_SEEDS=first:count picks the seeds (default 1:2).
func TestSoakRestartsFromDisk(t *testing.T) {
	first, count := uint64(1), 2
	if s := os.Getenv("BCACHE_SOAK_SEEDS"); s != "" {
		a, b, _ := strings.Cut(s, ":")
		var err1, err2 error
		first, err1 = strconv.ParseUint(a, 10, 64)
		count, err2 = strconv.Atoi(b)
		if err1 != nil || err2 != nil || count < 1 {
			t.Fatalf("BCACHE_SOAK_SEEDS=%q: want first:count, count at least 1", s)
		}
	}
	steps := 300
	if s := os.Getenv("BCACHE_SOAK_STEPS"); s != "" {
		var err error
		if steps, err = strconv.Atoi(s); err != nil || steps < 1 {
			t.Fatalf("BCACHE_SOAK_STEPS=%q: want a number of steps, at least 1", s)
		}
	}
	for seed := first; seed < first+uint64(count); seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { soakRun(t, seed, steps) })
	}
}

func soakRun(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 344))
	net := memnet.NewNetwork(seed)
	n := 3 + r.IntN(2)
	nkeys := 20 + r.IntN(31)
	ms := make([]*soakMember, n)
	var ops []*soakOp
	byTime := map[crdt.Timestamp]*soakOp{}
	lastShortTTL := time.Time{}
	counts := map[string]int{}

	addrs := func(except int) []string {
		var p []string
		for j, m := range ms {
			if j != except && m != nil && m.c != nil {
				p = append(p, m.c.Addr())
			}
		}
		return p
	}
	start := func(i int, peers []string) {
		m := ms[i]
		tr, err := net.NewTransport(m.name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := m.cfg
		cfg.SnapshotPath, cfg.Network, cfg.Peers = m.path, tr, peers
		c, err := New(cfg)
		if err != nil {
			t.Fatalf("seed %d: start %s (inc %d): %v", seed, m.name, m.inc, err)
		}
		m.c = c
		m.inc++
	}
	for i := range ms {
		policy := []SyncPolicy{SyncWrite, SyncInterval}[r.IntN(2)]
		cfg := Config{NodeName: fmt.Sprint("m", i), Timings: FastTimings(),
			AntiEntropyInterval: 50 * time.Millisecond, GCInterval: 100 * time.Millisecond,
			MaxClockSkew: 10 * time.Millisecond, Sync: policy, SyncEvery: 20 * time.Millisecond,
			SnapshotInterval: []time.Duration{-1, 150 * time.Millisecond, time.Second}[r.IntN(3)]}
		cfg.LogReceived = r.IntN(3) == 0
		bound := i > 0 && r.IntN(2) == 0
		if bound {
			cfg.MaxKeys = 5 + r.IntN(10)
		}
		ms[i] = &soakMember{name: cfg.NodeName, cfg: cfg, path: filepath.Join(t.TempDir(), "c.snap"),
			own: map[string]*soakOp{}, policy: policy, bound: bound}
		start(i, addrs(i))
		t.Logf("seed %d: %s %v MaxKeys %d SnapshotInterval %v", seed, ms[i].name, policy, cfg.MaxKeys, cfg.SnapshotInterval)
	}
	t.Cleanup(func() {
		for _, m := range ms {
			if m.c != nil {
				m.c.Close()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range ms[1:] {
		if err := m.c.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var groups [][]string // the partition in force
	groupOf := func(name string) int {
		for g, names := range groups {
			for _, x := range names {
				if x == name {
					return g
				}
			}
		}
		return -1
	}

	// checkOwn: every write m made on its files before the image (or
	// Close) is in the member restarted from them, or a newer one.
	checkOwn := func(m *soakMember, before map[string]crdt.Record, how string) {
		now := time.Now()
		for key, o := range m.own {
			rec, ok := lookup(m.c, key)
			if ok && !rec.Time.Less(o.ts) {
				continue
			}
			if !ok {
				if pre, held := before[key]; !held || o.dead(now) || pre.Tombstone {
					continue // collected before the image, or dead
				}
			}
			t.Errorf("seed %d: %s after %s (inc %d): %q holds %v (%v), its own acknowledged op %d at %v lost (%s)",
				seed, m.name, how, m.inc, key, rec.Time, ok, o.n, o.ts, m.policy)
		}
	}

	for step := range steps {
		p := r.IntN(100)
		i := r.IntN(n)
		m := ms[i]
		key := fmt.Sprint("k", r.IntN(nkeys))
		switch {
		case p < 50: // set
			val := []byte(fmt.Sprintf("s%d-%d", seed, step))
			ttl := time.Duration(0)
			switch q := r.IntN(10); {
			case q < 2:
				ttl = time.Hour
			case q < 3:
				ttl = 100 * time.Millisecond
			}
			now := time.Now()
			tok, err := m.c.SetWithToken(key, val, ttl)
			if err != nil && !errors.Is(err, ErrNotDurable) {
				t.Fatalf("seed %d step %d: set on %s: %v", seed, step, m.name, err)
			}
			ts, perr := tok.parse(key)
			if perr != nil {
				t.Fatal(perr)
			}
			o := &soakOp{key: key, member: i, n: step, ts: ts, tok: tok, val: val, certain: err == nil, inc: m.inc}
			if ttl > 0 {
				o.expires = now.Add(ttl)
				if ttl < time.Second {
					lastShortTTL = now.Add(ttl)
				}
			}
			ops, byTime[ts], m.own[key] = append(ops, o), o, o
			counts["set"]++
			if !m.bound && ttl != 100*time.Millisecond {
				if v, ok := m.c.Get(key); !ok || string(v) != string(val) {
					t.Errorf("seed %d step %d: %s reads %q, %v just after writing %q", seed, step, m.name, v, ok, val)
				}
			}
		case p < 65: // delete
			tok, err := m.c.DeleteWithToken(key)
			if err != nil && !errors.Is(err, ErrNotDurable) {
				t.Fatalf("seed %d step %d: delete on %s: %v", seed, step, m.name, err)
			}
			ts, perr := tok.parse(key)
			if perr != nil {
				t.Fatal(perr)
			}
			o := &soakOp{key: key, member: i, n: step, ts: ts, tok: tok, certain: err == nil, inc: m.inc}
			ops, byTime[ts], m.own[key] = append(ops, o), o, o
			counts["delete"]++
		case p < 82: // get
			m.c.Get(key)
			counts["get"]++
		case p < 87: // partition
			var a, b []string
			for _, x := range ms {
				if r.IntN(2) == 0 {
					a = append(a, x.name)
				} else {
					b = append(b, x.name)
				}
			}
			groups = [][]string{a, b}
			net.Partition(groups...)
			counts["partition"]++
		case p < 92: // heal
			groups = nil
			net.Heal()
			counts["heal"]++
		case p < 97: // restart
			crash := r.IntN(2) == 0
			before := map[string]crdt.Record{}
			for key := range m.own {
				if rec, ok := lookup(m.c, key); ok {
					before[key] = rec
				}
			}
			how := "close"
			if crash {
				how = "crash"
				// A writer goes on on m while the image is taken.
				var imaging atomic.Bool
				stop, done := make(chan struct{}), make(chan []*soakOp)
				wr := rand.New(rand.NewPCG(seed, uint64(step)))
				go func() {
					var got []*soakOp
					for j := 0; ; j++ {
						select {
						case <-stop:
							done <- got
							return
						default:
						}
						key := fmt.Sprint("k", wr.IntN(nkeys))
						var tok Token
						var err error
						val := []byte(fmt.Sprintf("s%d-%d-%d", seed, step, j))
						if wr.IntN(4) == 0 {
							val = nil
							tok, err = m.c.DeleteWithToken(key)
						} else {
							tok, err = m.c.SetWithToken(key, val, 0)
						}
						pre := !imaging.Load()
						if err != nil && !errors.Is(err, ErrNotDurable) {
							t.Errorf("seed %d step %d: concurrent write on %s: %v", seed, step, m.name, err)
							done <- got
							return
						}
						ts, _ := tok.parse(key)
						got = append(got, &soakOp{key: key, member: i, n: step, ts: ts, tok: tok, val: val, certain: err == nil && pre, inc: m.inc})
					}
				}()
				for range 3 + r.IntN(20) {
					m.c.Get(key) // let it write a little
				}
				imaging.Store(true)
				image := crashImage(t, m.path)
				close(stop)
				for _, o := range <-done {
					ops, byTime[o.ts] = append(ops, o), o
					if o.certain {
						m.own[o.key] = o
					}
					counts["concurrent"]++
				}
				// As a crash: nothing more from it reaches the others.
				net.Partition(append(groups, []string{m.name})...)
				if err := m.c.Close(); err != nil {
					t.Logf("seed %d step %d: close %s: %v", seed, step, m.name, err)
				}
				net.Partition(groups...)
				if groups == nil {
					net.Heal()
				}
				m.path = image
				if m.policy != SyncWrite {
					// What it wrote since its last sync may be lost with
					// it, unless it reached a peer: no longer certain.
					for _, o := range ops {
						if o.member == i {
							o.certain = false
						}
					}
					m.own = map[string]*soakOp{}
				}
			} else if err := m.c.Close(); err != nil {
				t.Fatalf("seed %d step %d: close %s: %v", seed, step, m.name, err)
			}
			m.c = nil
			start(i, addrs(i))
			checkOwn(m, before, how)
			counts[how]++
		default: // GetAfter where the writer is reachable
			var last *soakOp
			for _, o := range ops {
				if o.key == key && o.certain && (last == nil || last.ts.Less(o.ts)) {
					last = o
				}
			}
			if last == nil || groupOf(m.name) != groupOf(ms[last.member].name) {
				break
			}
			gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
			v, ok, err := m.c.GetAfter(gctx, key, last.tok)
			gcancel()
			counts["getafter"]++
			if err != nil {
				t.Errorf("seed %d step %d: %s GetAfter(%q, op %d by %s): %v", seed, step, m.name, key, last.n, ms[last.member].name, err)
				break
			}
			if ok {
				o := soakValueOp(ops, key, v)
				if o == nil || o.ts.Less(last.ts) {
					t.Errorf("seed %d step %d: %s GetAfter(%q, op %d) = %q: older", seed, step, m.name, key, last.n, v)
				}
			}
		}
		if t.Failed() {
			return
		}
	}

	// Heal and quiesce.
	net.Heal()
	await.Until(t, 20*time.Second, func() bool {
		for _, m := range ms {
			if len(m.c.Members()) != n {
				return false
			}
		}
		return true
	}, "seed %d: the members never saw each other again", seed)
	for range 2 {
		after := time.Now()
		for _, m := range ms {
			for _, x := range ms {
				if x != m {
					awaitExchangeAfter(t, m.c, x.name, after)
				}
			}
		}
	}
	await.Until(t, 5*time.Second, func() bool { return time.Now().After(lastShortTTL) }, "")

	view := func(key string) string {
		var b strings.Builder
		for _, m := range ms {
			v, ok := m.c.Get(key)
			rec, held := lookup(m.c, key)
			fmt.Fprintf(&b, " %s:%q/%v rec %v held %v tomb %v evicted %v;", m.name, v, ok, rec.Time, held, rec.Tombstone, rec.Evicted)
		}
		return b.String()
	}
	agree := func(key string) bool {
		var ref *[]byte
		var refOK bool
		var liveTime *crdt.Timestamp
		for _, m := range ms {
			v, ok := m.c.Get(key)
			if m.bound && !ok {
				continue
			}
			if ref == nil {
				ref, refOK = &v, ok
			} else if ok != refOK || string(v) != string(*ref) {
				return false
			}
			if rec, held := lookup(m.c, key); held && !rec.Tombstone && !rec.Evicted {
				if liveTime == nil {
					liveTime = &rec.Time
				} else if *liveTime != rec.Time {
					return false
				}
			}
		}
		return true
	}
	for k := range nkeys {
		key := fmt.Sprint("k", k)
		await.Until(t, 10*time.Second, func() bool { return agree(key) }, "seed %d: %q diverges:%s", seed, key, func() string { return view(key) })
	}
	now := time.Now()
	for k := range nkeys {
		key := fmt.Sprint("k", k)
		var last *soakOp
		for _, o := range ops {
			if o.key == key && o.certain && (last == nil || last.ts.Less(o.ts)) {
				last = o
			}
		}
		if last == nil {
			continue
		}
		for _, m := range ms {
			v, ok := m.c.Get(key)
			if ok {
				o := soakValueOp(ops, key, v)
				if o == nil || o.ts.Less(last.ts) {
					t.Errorf("seed %d: %s serves %q for %q, older than op %d (%v by %s, %q):%s", seed, m.name, v, key, last.n, last.ts, ms[last.member].name, last.val, view(key))
				}
			} else {
				rec, held := lookup(m.c, key)
				switch {
				case held && rec.Time.Less(last.ts):
					t.Errorf("seed %d: %s holds %v for %q, older than op %d (%v):%s", seed, m.name, rec.Time, key, last.n, last.ts, view(key))
				case !held && !last.dead(now) && !soakNewerDead(ops, last, now):
					t.Errorf("seed %d: %s holds nothing for %q, whose op %d (%q by %s) is live:%s", seed, m.name, key, last.n, last.val, ms[last.member].name, view(key))
				case held && !m.bound && !rec.Tombstone && !rec.Evicted && rec.Expires > now.UnixNano():
					t.Errorf("seed %d: %s misses live %q:%s", seed, m.name, key, view(key))
				}
			}
			gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
			gv, gok, err := m.c.GetAfter(gctx, key, last.tok)
			gcancel()
			if err != nil {
				t.Errorf("seed %d: %s GetAfter(%q, op %d): %v:%s", seed, m.name, key, last.n, err, view(key))
			} else if gok && (string(gv) != string(v) && !m.bound) {
				t.Errorf("seed %d: %s GetAfter(%q) = %q, Get %q", seed, m.name, key, gv, v)
			}
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("seed %d: %d members, %d keys, %d steps: %v", seed, n, nkeys, steps, counts)
}

// soakValueOp is the op that wrote v to key (values are unique).
func soakValueOp(ops []*soakOp, key string, v []byte) *soakOp {
	for _, o := range ops {
		if o.key == key && o.val != nil && string(o.val) == string(v) {
			return o
		}
	}
	return nil
}

// soakNewerDead reports whether a dead op of last's key, newer than last, was acknowledged.
func soakNewerDead(ops []*soakOp, last *soakOp, now time.Time) bool {
	for _, o := range ops {
		if o.key == last.key && last.ts.Less(o.ts) && o.dead(now) {
			return true
		}
	}
	return false
}
