package bcache

import (
	"context"
	"math"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestAMarksAnswerSaysCompleteOnlyWithTheMarksItTook: a member's answer
// to a peer's ask (member.Marks) said its marks were complete while
// leaving out the answer it had just taken: it read its watermarks, then
// its own ask's answer was offered and taken, then it read whether it had
// taken one. The newcomer that asked took that answer, without the
// cluster's marks, for complete, and never asked again.
func TestAMarksAnswerSaysCompleteOnlyWithTheMarksItTook(t *testing.T) {
	start1 := marksMembers(t, func(c *Config) { c.GCInterval = time.Hour })
	a := start1("a")
	p := start1("p", a.Addr())
	p.noMarks.Store(true) // its marks are taken below, as its ask would
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if p.repl.Founded() {
		t.Fatal("p founded its cluster")
	}
	far := time.Now().Add(time.Hour).UnixNano() // above p's stable bound: kept offered, and answered
	for i := range 300 {
		p.marks.taken.Store(false)
		mark := store.Mark{Leaf: 7, Time: crdt.Timestamp{Wall: far + int64(i), Node: math.MaxUint64}}
		start := make(chan struct{})
		type answer struct {
			ms       []store.Mark
			complete bool
		}
		got := make(chan answer, 1)
		var asked atomic.Bool
		go func() {
			<-start
			asked.Store(true)
			ms, complete := member{p}.Marks()
			got <- answer{ms, complete}
		}()
		close(start)
		for !asked.Load() { // the answer under way: p's own answer comes as it reads its marks
			runtime.Gosched()
		}
		p.store.OfferMarks([]store.Mark{mark}, math.MaxInt64) // p's own ask's answer, as askMarks takes it (an hour ahead: taken as it came)
		p.marks.taken.Store(true)
		ans := <-got
		if !ans.complete {
			continue
		}
		held := false
		for _, m := range ans.ms {
			if m.Leaf == mark.Leaf && !m.Time.Less(mark.Time) {
				held = true
			}
		}
		if !held {
			t.Fatalf("answer %d said complete without the marks p had taken (leaf 7 at %d)", i, mark.Time.Wall)
		}
	}
}

// TestAMarkFarAheadIsNotKeptOfferedForever: a mark a peer answers with
// far ahead of this member's clock (forged by a key holder, and passed on
// by every member that was offered it) was kept offered until the stable
// bound passed it, which it never did: every collection raised its leaf
// to the bound again and counted the raise, and the member passed the
// mark on to every newcomer that asked it, which kept it in turn. A
// stamp that far ahead is refused (MaxClockDrift); a mark is taken no
// further ahead than a stamp is, and the answer that held it is not
// complete (the marks past the cap are asked for again).
func TestAMarkFarAheadIsNotKeptOfferedForever(t *testing.T) {
	start1 := marksMembers(t, func(c *Config) {
		c.GCInterval, c.MaxClockSkew, c.MaxClockDrift = 50*time.Millisecond, 10*time.Millisecond, 500*time.Millisecond
	})
	a := start1("a")
	forged := store.Mark{Leaf: 7, Time: crdt.Timestamp{Wall: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), Node: math.MaxUint64}}
	a.store.OfferMarks([]store.Mark{forged}, math.MaxInt64) // a key holder's a: it passes the mark on as it came
	m := start1("m", a.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	// a's answer, capped, is not complete (its marks past m's reach):
	// m asks again, and takes none of a's answers for complete.
	await.Until(t, 10*time.Second, func() bool { return m.marks.incomplete.Load() > 0 }, "m never had a's answer")
	if m.marks.taken.Load() {
		t.Fatal("m took a's answer, a mark capped at its clock, for complete")
	}
	for _, mk := range m.store.Marks() {
		if limit := time.Now().Add(500*time.Millisecond + 50*time.Millisecond).UnixNano(); mk.Time.Wall > limit { // MaxClockDrift, and slack for two readings of the clock
			t.Fatalf("m answers leaf %d's mark at %v: taken and passed on however far ahead",
				mk.Leaf, time.Unix(0, mk.Time.Wall).UTC())
		}
	}
	await.Until(t, 10*time.Second, func() bool { return m.store.PendingMarks() == 0 },
		"m keeps a's mark offered, its leaf raised to the bound again at every collection (%d raises)", m.store.WatermarksAdopted())
}

// marksMembers returns a function that starts members of one in-memory
// network, syncing every 50 ms, their configs set by opt.
func marksMembers(t *testing.T, opt func(*Config)) func(name string, peers ...string) *Cache {
	net := memnet.NewNetwork(1)
	return func(name string, peers ...string) *Cache {
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{NodeName: name, Network: tr, Peers: peers, Timings: FastTimings(), AntiEntropyInterval: 50 * time.Millisecond}
		opt(&cfg)
		return newCache(t, cfg)
	}
}
