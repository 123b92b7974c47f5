package bcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/clusterfill"
)

// TestFillerStampede: many concurrent callers for one missing key call the
// filler once; the filled value replicates to another member.
func TestFillerStampede(t *testing.T) {
	cs := cluster(t, 2)
	var calls atomic.Int32
	release := make(chan struct{})
	fill := func(ctx context.Context, key string) ([]byte, error) {
		calls.Add(1)
		<-release // hold the fill until every caller is waiting
		return []byte("from-db:" + key), nil
	}
	const callers = 100
	var wg sync.WaitGroup
	var started sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			v, err := cs[0].GetWithFiller(context.Background(), "user:1", fill, 0)
			if err == nil && string(v) != "from-db:user:1" {
				err = errors.New("wrong value " + string(v))
			}
			errs <- err
		}()
	}
	started.Wait()
	await.Until(t, 5*time.Second, func() bool { return calls.Load() == 1 }, "filler calls: %d", calls.Load())
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("filler called %d times for %d concurrent callers, want 1", n, callers)
	}
	waitValue(t, "user:1", []byte("from-db:user:1"), cs[1])
	if s := cs[0].Stats(); s.Fills != 1 {
		t.Fatalf("Stats.Fills = %d, want 1", s.Fills)
	}
}

func TestFillerErrorsAreNotCached(t *testing.T) {
	c := newCache(t, Config{BindAddr: "127.0.0.1:0"})
	boom := errors.New("database down")
	var calls int
	fail := func(context.Context, string) ([]byte, error) { calls++; return nil, boom }
	for range 2 {
		if _, err := c.GetWithFiller(context.Background(), "k", fail, 0); !errors.Is(err, boom) {
			t.Fatalf("GetWithFiller: %v, want the filler's error", err)
		}
	}
	if calls != 2 {
		t.Fatalf("filler called %d times, want 2 (errors are not cached)", calls)
	}
	if _, ok := c.Get("k"); ok {
		t.Fatal("a failed fill stored a value")
	}
	if s := c.Stats(); s.FillErrors != 2 {
		t.Fatalf("Stats.FillErrors = %d, want 2", s.FillErrors)
	}
}

func TestFillerHit(t *testing.T) {
	c := newCache(t, Config{BindAddr: "127.0.0.1:0"})
	c.Set("k", []byte("cached"), 0)
	v, err := c.GetWithFiller(context.Background(), "k", func(context.Context, string) ([]byte, error) {
		t.Fatal("filler called on a hit")
		return nil, nil
	}, 0)
	if err != nil || string(v) != "cached" {
		t.Fatalf("GetWithFiller = %q, %v", v, err)
	}
}

// TestNoFillForADoneContext: a caller whose context is done gets its error
// and runs no filler: no one waits for what it would load (it ran, a
// database load for nothing, found by review). A hit is still served.
func TestNoFillForADoneContext(t *testing.T) {
	c := newCache(t, Config{BindAddr: "127.0.0.1:0", Filler: func(context.Context, string) ([]byte, error) {
		t.Error("the cluster filler ran for a done context")
		return []byte("v"), nil
	}})
	done, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.GetWithFiller(done, "k", func(context.Context, string) ([]byte, error) {
		t.Error("the filler ran for a done context")
		return []byte("v"), nil
	}, 0)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("GetWithFiller with a done context: %v, want context.Canceled", err)
	}
	if _, err := c.GetOrFill(done, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("GetOrFill with a done context: %v, want context.Canceled", err)
	}
	c.Set("k", []byte("cached"), 0)
	if v, err := c.GetWithFiller(done, "k", unusedFiller, 0); err != nil || string(v) != "cached" {
		t.Fatalf("a hit with a done context: %q, %v", v, err)
	}
}

func unusedFiller(context.Context, string) ([]byte, error) { return nil, errors.New("not called") }

// TestFillerWaiterCancellation: a waiter whose context ends stops waiting;
// the fill goes on and serves the others.
func TestFillerWaiterCancellation(t *testing.T) {
	c := newCache(t, Config{BindAddr: "127.0.0.1:0"})
	release := make(chan struct{})
	entered := make(chan struct{})
	fill := func(ctx context.Context, key string) ([]byte, error) {
		close(entered)
		<-release
		return []byte("v"), nil
	}
	patient := make(chan error, 1)
	go func() {
		_, err := c.GetWithFiller(context.Background(), "k", fill, 0)
		patient <- err
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	impatient := make(chan error, 1)
	go func() {
		_, err := c.GetWithFiller(ctx, "k", fill, 0)
		impatient <- err
	}()
	cancel()
	if err := <-impatient; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-patient; err != nil {
		t.Fatalf("patient caller: %v", err)
	}
	if v, ok := c.Get("k"); !ok || string(v) != "v" {
		t.Fatal("the fill did not complete after a waiter left")
	}
}

func TestFillerPanicAndMisuse(t *testing.T) {
	c := newCache(t, Config{BindAddr: "127.0.0.1:0"})
	_, err := c.GetWithFiller(context.Background(), "k", func(context.Context, string) ([]byte, error) { panic("oops") }, 0)
	if !errors.Is(err, ErrFillerPanic) {
		t.Fatalf("panicking filler: %v, want ErrFillerPanic", err)
	}
	if _, err := c.GetWithFiller(context.Background(), "k", nil, 0); !errors.Is(err, ErrNilFiller) {
		t.Fatalf("nil filler: %v, want ErrNilFiller", err)
	}
	ok := func(context.Context, string) ([]byte, error) { return []byte("v"), nil }
	if _, err := c.GetWithFiller(context.Background(), "k", ok, -time.Second); !errors.Is(err, ErrInvalidTTL) {
		t.Fatalf("negative ttl: %v, want ErrInvalidTTL", err)
	}
	c.Close()
	if _, err := c.GetWithFiller(context.Background(), "k", ok, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

// TestTimedOutFillIsNotStored: a fill past its FillTimeout (the key freed,
// a later fill done and stored) does not store what its filler returns at
// last: written then, with a newer timestamp, it replaced the later fill's
// value everywhere (found by review). It is a fill error instead.
func TestTimedOutFillIsNotStored(t *testing.T) {
	cfg := testConfig("solo")
	cfg.FillTimeout = 200 * time.Millisecond
	c := newCache(t, cfg)
	release := make(chan struct{})
	var n atomic.Int32
	fill := func(ctx context.Context, key string) ([]byte, error) {
		if n.Add(1) == 1 {
			<-release                 // a slow source,
			<-ctx.Done()              // done after its deadline,
			return []byte("old"), nil // which it ignores
		}
		return []byte("new"), nil
	}
	if _, err := c.GetWithFiller(context.Background(), "k", fill, 0); !errors.Is(err, ErrFillTimeout) {
		t.Fatalf("first fill: %v, want ErrFillTimeout", err)
	}
	if v, err := c.GetWithFiller(context.Background(), "k", fill, 0); err != nil || string(v) != "new" {
		t.Fatalf("second fill: %q, %v", v, err)
	}
	close(release)
	await.Until(t, 10*time.Second, func() bool { return c.Stats().FillErrors == 1 }, "the first fill has not ended as an error")
	if v, _ := c.Get("k"); string(v) != "new" {
		t.Fatalf("after the timed-out fill returned: Get = %q, want the later fill's", v)
	}
}

// TestCloseEndsGetWithFiller: Close cancels a GetWithFiller fill running
// and ends its callers with ErrClosed; they waited through Close for
// FillTimeout, and the fill ran on (found by review).
func TestCloseEndsGetWithFiller(t *testing.T) {
	cfg := testConfig("solo")
	cfg.FillTimeout = time.Minute
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	started, canceled := make(chan struct{}), make(chan struct{})
	fill := func(ctx context.Context, key string) ([]byte, error) {
		close(started)
		<-ctx.Done()
		close(canceled)
		return nil, ctx.Err()
	}
	res := make(chan error, 1)
	go func() { _, err := c.GetWithFiller(context.Background(), "k", fill, 0); res <- err }()
	<-started
	c.Close()
	if err := <-res; !errors.Is(err, ErrClosed) {
		t.Fatalf("GetWithFiller across Close: %v, want ErrClosed", err)
	}
	<-canceled // else the test times out: Close left the fill running
}

// TestEmptyFillReadsAsAGet: a filler that returns nil fills an empty
// value, which GetWithFiller returns as Get does: empty, not nil (found by
// review).
func TestEmptyFillReadsAsAGet(t *testing.T) {
	c := newCache(t, testConfig("solo"))
	v, err := c.GetWithFiller(context.Background(), "k", func(context.Context, string) ([]byte, error) { return nil, nil }, 0)
	if err != nil || v == nil || len(v) != 0 {
		t.Fatalf("filled nil: %q (nil %v), %v; want an empty value", v, v == nil, err)
	}
	if g, ok := c.Get("k"); !ok || g == nil {
		t.Fatalf("Get: %q, %v", g, ok)
	}
}

// TestErrorsNameALongKeyClipped: an error names its key's first bytes
// only, as ErrKeyTooLarge's does: a key of 64 KiB (within MaxKeySize)
// made errors of 256 KiB, %q-quoted whole, in callers' logs and owners'
// answers (found by review).
func TestErrorsNameALongKeyClipped(t *testing.T) {
	down := func(context.Context, string) ([]byte, error) { return nil, errors.New("db down") }
	hangs := func(ctx context.Context, _ string) ([]byte, error) { <-ctx.Done(); return nil, ctx.Err() }
	c := newCache(t, Config{BindAddr: "127.0.0.1:0", Filler: down, FillTimeout: 50 * time.Millisecond, MaxValueSize: 16})
	nofill := newCache(t, Config{BindAddr: "127.0.0.1:0"})
	key := strings.Repeat("\x00", c.cfg.MaxKeySize) // %q makes each byte four
	done, cancel := context.WithCancel(context.Background())
	cancel()
	ctx := context.Background()
	for name, f := range map[string]func() error{
		"a filler's error": func() error { _, err := c.GetWithFiller(ctx, key, down, 0); return err },
		"a fill timed out": func() error { _, err := c.GetWithFiller(ctx, key, hangs, 0); return err },
		"no filler":        func() error { _, err := c.GetWithFiller(ctx, key, nil, 0); return err },
		"a context done":   func() error { _, err := c.GetWithFiller(done, key, down, 0); return err },
		"GetOrFill's fill": func() error { _, err := c.GetOrFill(ctx, key); return err },
		"GetOrFill's done": func() error { _, err := c.GetOrFill(done, key); return err },
		"no Config.Filler": func() error { _, err := nofill.GetOrFill(ctx, key); return err },
		"a value too long": func() error { return c.Set(key, make([]byte, 17), 0) },
		"a negative TTL":   func() error { return c.Set(key, nil, -1) },
		"an owner's error": func() error {
			return ownerError(key, &clusterfill.FailedError{Why: clusterfill.Failed, Text: fmt.Sprintf("bcache: fill %q: db down", clip(key))})
		},
	} {
		if err := f(); err == nil || len(err.Error()) > 200 {
			t.Errorf("%s: an error of %d bytes: %.200v", name, len(fmt.Sprint(err)), err)
		}
	}
}

// lockedBuffer is a log's output, written from any goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(b.buf.String(), "\n")
}

// TestDropLogNamesALongKeyClipped: the warning of a value dropped after
// a long absence names its key's first bytes, as errors do: it logged a
// key of 64 KiB whole (found by review).
func TestDropLogNamesALongKeyClipped(t *testing.T) {
	out := new(lockedBuffer)
	cfg := testConfig("a")
	cfg.Logger = zerolog.New(out)
	c := newCache(t, cfg)
	c.dropped(crdt.Version{Key: strings.Repeat("\x00", c.cfg.MaxKeySize)})
	for _, line := range out.lines() {
		if strings.Contains(line, "dropped a value") {
			if len(line) > 1000 { // 32 bytes, JSON-escaped, and the rest
				t.Fatalf("a line of %d bytes: %.1000s", len(line), line)
			}
			return
		}
	}
	t.Fatal("no line for the value dropped")
}

// TestFillKeepsWhatWasWrittenMeanwhile: a Set or a Delete of the key made
// while the filler runs (the source changed, and the writer invalidated
// the key) is newer than what the filler read: the fill does not store
// its value over it, whether it runs through GetWithFiller or GetOrFill.
// The fill was stamped when the filler returned, and its older value won
// everywhere until its TTL ended (found by review).
func TestFillKeepsWhatWasWrittenMeanwhile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		meanwhile func(c *Cache) error
		want      string // held after the fill; "" for nothing
		got       string // what the callers get
	}{
		{"delete", func(c *Cache) error { return c.Delete("k") }, "", "read before"},
		{"set", func(c *Cache) error { return c.Set("k", []byte("new"), 0) }, "new", "new"},
		// A peer's, stamped by a clock a second behind this member's: by
		// its stamp alone it lost to the fill (found by review).
		{"peer's delete behind", func(c *Cache) error { return applyBehind(c, crdt.Record{Key: "k", Tombstone: true}) }, "", "read before"},
		{"peer's set behind", func(c *Cache) error { return applyBehind(c, crdt.Record{Key: "k", Value: []byte("peer")}) }, "peer", "peer"},
	} {
		for _, through := range []string{"GetWithFiller", "GetOrFill"} {
			t.Run(tc.name+"/"+through, func(t *testing.T) {
				started, release := make(chan struct{}), make(chan struct{})
				filler := func(context.Context, string) ([]byte, error) {
					close(started)
					<-release
					return []byte("read before"), nil
				}
				cfg := testConfig("solo")
				cfg.Filler = filler
				c := newCache(t, cfg)
				type result struct {
					v   []byte
					err error
				}
				done := make(chan result, 1)
				go func() {
					var r result
					if through == "GetOrFill" {
						r.v, r.err = c.GetOrFill(context.Background(), "k")
					} else {
						r.v, r.err = c.GetWithFiller(context.Background(), "k", filler, 0)
					}
					done <- r
				}()
				<-started
				if err := tc.meanwhile(c); err != nil {
					t.Fatal(err)
				}
				close(release)
				r := <-done
				if r.err != nil || string(r.v) != tc.got {
					t.Fatalf("the caller got %q, %v; want %q", r.v, r.err, tc.got)
				}
				if v, ok := c.Get("k"); string(v) != tc.want || ok != (tc.want != "") {
					t.Fatalf("held after the fill: %q (%v), want %q: the fill replaced what was written meanwhile", v, ok, tc.want)
				}
				if n := c.Stats().FillsSuperseded; n != 1 {
					t.Fatalf("%d fills superseded, want 1", n)
				}
			})
		}
	}
}

// TestFillOverTheLimitsServesWhatWasWrittenMeanwhile: a filler that
// returns a value over MaxValueSize after a valid Set of the key landed
// while it ran gives its callers the value Set, as any fill a write
// superseded does (they got ErrValueTooLarge); with nothing written
// meanwhile they still get ErrValueTooLarge.
func TestFillOverTheLimitsServesWhatWasWrittenMeanwhile(t *testing.T) {
	for _, written := range []bool{true, false} {
		t.Run(fmt.Sprintf("written=%v", written), func(t *testing.T) {
			cfg := testConfig("solo")
			cfg.MaxValueSize = 8
			c := newCache(t, cfg)
			filler := func(context.Context, string) ([]byte, error) {
				if written {
					if err := c.Set("k", []byte("set"), 0); err != nil {
						return nil, err
					}
				}
				return make([]byte, 9), nil
			}
			v, err := c.GetWithFiller(context.Background(), "k", filler, 0)
			switch {
			case written && (err != nil || string(v) != "set"):
				t.Fatalf("the caller got %q, %v; want the value Set while the filler ran", v, err)
			case !written && !errors.Is(err, ErrValueTooLarge):
				t.Fatalf("the caller got %q, %v; want ErrValueTooLarge", v, err)
			}
			if n, want := c.Stats().FillsSuperseded, map[bool]uint64{true: 1}[written]; n != want {
				t.Fatalf("%d fills superseded, want %d", n, want)
			}
		})
	}
}

// TestFillLosesToADeleteThatArrivesAfterIt: a delete made on a peer while
// a fill ran, by a clock in step with this member's, that arrives only
// after the fill stored its value, wins: the fill's value is stamped when
// its filler began, not when it returned (it was, and the late delete lost
// to it, here and on every member: found by review).
func TestFillLosesToADeleteThatArrivesAfterIt(t *testing.T) {
	c := newCache(t, testConfig("solo"))
	var late crdt.Record
	filled, err := c.GetWithFiller(context.Background(), "k", func(context.Context, string) ([]byte, error) {
		now := c.clock.Now() // the peer's clock, in step: its delete comes after the filler began
		late = crdt.Record{Key: "k", Tombstone: true, Time: crdt.Timestamp{Wall: now.Wall, Logical: now.Logical, Node: now.Node + 1}}
		return []byte("read before"), nil
	}, 0)
	if err != nil || string(filled) != "read before" {
		t.Fatalf("GetWithFiller = %q, %v", filled, err)
	}
	if v, ok := c.Get("k"); !ok || string(v) != "read before" {
		t.Fatalf("the fill did not store its value: %q, %v", v, ok)
	}
	if o := c.store.Apply(late, true, c.phys()); o != crdt.Applied {
		t.Fatalf("the late delete: %v; want it applied over the fill's value", o)
	}
	if v, ok := c.Get("k"); ok {
		t.Fatalf("the fill's value %q outlived a delete made after the filler began", v)
	}
}

// TestFillAcrossASessionKeepsItsStamp: a session's cut reported while a
// filler runs (about twice a second on every member) does not stamp the
// fill again unless it passed the fill's stamp by the stable margin: it
// did at every cut, and the delete made while the filler ran lost to the
// fill (found by review). Past the margin, it is stamped again, as any
// write a cut overtook.
func TestFillAcrossASessionKeepsItsStamp(t *testing.T) {
	for _, past := range []time.Duration{time.Millisecond, DefaultMaxClockSkew + time.Millisecond} {
		c := newCache(t, testConfig("solo"))
		var cut atomic.Int64
		c.store.Overtaken(func(ts crdt.Timestamp) bool { return ts.Wall < cut.Load() }, c.clock.Now)
		var late crdt.Record
		var since crdt.Timestamp
		if _, err := c.GetWithFiller(context.Background(), "k", func(context.Context, string) ([]byte, error) {
			now := c.clock.Now() // a peer's delete, in step with this clock
			since = now
			late = crdt.Record{Key: "k", Tombstone: true, Time: crdt.Timestamp{Wall: now.Wall, Logical: now.Logical, Node: now.Node + 1}}
			cut.Store(now.Wall + int64(past)) // a session's cut, reported while the filler runs
			return []byte("read before"), nil
		}, 0); err != nil {
			t.Fatal(err)
		}
		restamped := c.store.Stats().Restamped
		o := c.store.Apply(late, true, c.phys())
		switch {
		case past < DefaultMaxClockSkew && (restamped != 0 || o != crdt.Applied):
			t.Fatalf("a cut %v past the fill's stamp: restamped %d, the late delete %v; want none, and applied", past, restamped, o)
		case past > DefaultMaxClockSkew && restamped != 1:
			t.Fatalf("a cut %v past the fill's stamp (began about %v): restamped %d; want 1", past, since, restamped)
		}
	}
}

// TestFillTTLRunsFromItsReturn: a filled value's TTL runs from when its
// filler returned, not from its stamp: a filler slower than the TTL
// stored a value expired already, and every call ran it again (found by
// review).
func TestFillTTLRunsFromItsReturn(t *testing.T) {
	var now atomic.Int64
	c := clockedCache(t, &now)
	const ttl = 5 * time.Second
	var returned int64
	if _, err := c.GetWithFiller(context.Background(), "k", func(context.Context, string) ([]byte, error) {
		returned = now.Add(int64(2 * ttl)) // the filler took twice the TTL
		return []byte("v"), nil
	}, ttl); err != nil {
		t.Fatal(err)
	}
	rec, ok := c.store.Lookup("k")
	if !ok || rec.Expires < returned+int64(ttl) {
		t.Fatalf("filled record %+v (found %v): want it to expire a TTL after %d", rec, ok, returned)
	}
}

// applyBehind applies rec as received from a peer whose clock is a second
// behind c's.
func applyBehind(c *Cache, rec crdt.Record) error {
	now := c.clock.Now()
	rec.Time = crdt.Timestamp{Wall: now.Wall - int64(time.Second), Node: now.Node + 1}
	if o := c.store.Apply(rec, true, c.phys()); o != crdt.Applied {
		return fmt.Errorf("the peer's record was not applied: %v", o)
	}
	return nil
}

// TestFillerThatExitsItsGoroutineFails: a filler that ends its goroutine
// with runtime.Goexit (a test's t.FailNow in its filler) returned no
// value: the fill fails as a panicking one does, and stores nothing. An
// empty value was stored and served (found by review).
func TestFillerThatExitsItsGoroutineFails(t *testing.T) {
	c := newCache(t, testConfig("solo"))
	fill := func(context.Context, string) ([]byte, error) {
		runtime.Goexit()
		return []byte("never"), nil
	}
	if v, err := c.GetWithFiller(context.Background(), "k", fill, 0); !errors.Is(err, ErrFillerPanic) {
		t.Fatalf("GetWithFiller after the filler's Goexit: %q, %v; want ErrFillerPanic", v, err)
	}
	if v, ok := c.Get("k"); ok {
		t.Fatalf("the filler that exited its goroutine left %q stored", v)
	}
}

// TestKeyOverMaxBytesRunsNoFiller: a key longer than MaxBytes can hold
// no value: a fill of it fails at once with ErrValueTooLarge, without
// running the filler, which ran at every call and had its value refused
// after.
func TestKeyOverMaxBytesRunsNoFiller(t *testing.T) {
	cfg := testConfig("solo")
	cfg.MaxBytes = 64
	var runs atomic.Int32
	cfg.Filler = func(context.Context, string) ([]byte, error) { runs.Add(1); return []byte("v"), nil }
	c := newCache(t, cfg)
	key := strings.Repeat("k", 65)
	if _, err := c.GetWithFiller(context.Background(), key, cfg.Filler, 0); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("GetWithFiller: %v, want ErrValueTooLarge", err)
	}
	if _, err := c.GetOrFill(context.Background(), key); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("GetOrFill: %v, want ErrValueTooLarge", err)
	}
	if n := runs.Load(); n != 0 {
		t.Fatalf("the filler ran %d times for a key no value fits with", n)
	}
	if v, err := c.GetWithFiller(context.Background(), strings.Repeat("k", 63), cfg.Filler, 0); err != nil || string(v) != "v" {
		t.Fatalf("a key with room for the value: %q, %v", v, err)
	}
}

// TestFillerAskingForItsOwnKeyFailsAtOnce: a filler that asks, with its
// context, for the key it is filling (itself, or through the fill of
// another key) gets ErrFillCycle at once; the fill it runs in goes on. It
// waited for itself until FillTimeout, and its caller got ErrFillTimeout
// (found by review).
func TestFillerAskingForItsOwnKeyFailsAtOnce(t *testing.T) {
	cfg := testConfig("solo")
	cfg.FillTimeout = 2 * time.Second
	var inner []error
	var mu sync.Mutex
	note := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		inner = append(inner, err)
	}
	var c *Cache
	cfg.Filler = func(ctx context.Context, key string) ([]byte, error) {
		_, err := c.GetOrFill(ctx, key)
		note(err)
		return []byte("owned"), nil
	}
	c = newCache(t, cfg)
	var fill Filler
	fill = func(ctx context.Context, key string) ([]byte, error) {
		switch key {
		case "self":
			_, err := c.GetWithFiller(ctx, key, fill, 0)
			note(err)
		case "a": // a asks for b, whose filler asks for a
			v, err := c.GetWithFiller(ctx, "b", fill, 0)
			if err != nil {
				return nil, err
			}
			return append([]byte("a:"), v...), nil
		case "b":
			_, err := c.GetWithFiller(ctx, "a", fill, 0)
			note(err)
		}
		return []byte(key), nil
	}
	for _, tc := range []struct{ key, want string }{{"self", "self"}, {"a", "a:b"}} {
		v, err := c.GetWithFiller(context.Background(), tc.key, fill, 0)
		if err != nil || string(v) != tc.want {
			t.Fatalf("GetWithFiller(%q) = %q, %v; want %q", tc.key, v, err, tc.want)
		}
	}
	if v, err := c.GetOrFill(context.Background(), "owned"); err != nil || string(v) != "owned" {
		t.Fatalf("GetOrFill = %q, %v", v, err)
	}
	if len(inner) != 3 {
		t.Fatalf("%d inner calls, want 3", len(inner))
	}
	for _, err := range inner {
		if !errors.Is(err, ErrFillCycle) {
			t.Fatalf("a filler's call for its own key: %v, want ErrFillCycle", err)
		}
	}
	// Another key, asked for with a filler's context, is no cycle.
	v, err := c.GetWithFiller(context.Background(), "outer", func(ctx context.Context, key string) ([]byte, error) {
		return c.GetWithFiller(ctx, "other", func(context.Context, string) ([]byte, error) { return []byte("o"), nil }, 0)
	}, 0)
	if err != nil || string(v) != "o" {
		t.Fatalf("a fill within a fill of another key: %q, %v", v, err)
	}
}

// TestFillCycleIsSeenWhileTheFillRunsAlone: a context kept from a filler
// (for a refresh later) is no cycle once its fill has ended (it was
// ErrFillCycle for good: found by review); a cycle through GetOrFill's
// fills of other keys is seen (it waited for FillTimeout: found by
// review); and a filler asking GetOrFill for its key gets ErrFillCycle
// whoever owns it (a peer owning it that could not fill it made this
// member fill it, waiting for itself until FillTimeout: found by
// review).
func TestFillCycleIsSeenWhileTheFillRunsAlone(t *testing.T) {
	cfg := testConfig("solo")
	cfg.FillTimeout = 2 * time.Second
	var c *Cache
	inner := make(chan error, 1)
	cfg.Filler = func(ctx context.Context, key string) ([]byte, error) {
		switch key {
		case "a":
			return c.GetOrFill(ctx, "b")
		case "b":
			_, err := c.GetOrFill(ctx, "a")
			inner <- err
			return []byte("b"), nil
		}
		return nil, fmt.Errorf("no %q", key)
	}
	c = newCache(t, cfg)
	if v, err := c.GetOrFill(context.Background(), "a"); err != nil || string(v) != "b" {
		t.Fatalf("GetOrFill(a) = %q, %v", v, err)
	}
	if err := <-inner; !errors.Is(err, ErrFillCycle) {
		t.Fatalf("b's filler asking for a, which is filling: %v, want ErrFillCycle", err)
	}

	kept := make(chan context.Context, 1)
	if _, err := c.GetWithFiller(context.Background(), "k", func(ctx context.Context, key string) ([]byte, error) {
		kept <- context.WithoutCancel(ctx)
		return []byte("v1"), nil
	}, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("k"); err != nil {
		t.Fatal(err)
	}
	v, err := c.GetWithFiller(<-kept, "k", func(context.Context, string) ([]byte, error) { return []byte("v2"), nil }, 0)
	if err != nil || string(v) != "v2" {
		t.Fatalf("a refresh with a context kept from an ended fill: %q, %v", v, err)
	}

	cs := cluster(t, 2, func(i int, c *Config) {
		if i == 0 { // the owner, b, has none
			c.Filler = func(context.Context, string) ([]byte, error) { return []byte("a's"), nil }
		}
		c.FillTimeout = 2 * time.Second
	})
	a, b := cs[0], cs[1]
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprint("k", i); a.owner(k) == b.Name() {
			key = k
		}
	}
	_, err = a.GetWithFiller(context.Background(), key, func(ctx context.Context, key string) ([]byte, error) {
		return a.GetOrFill(ctx, key)
	}, 0)
	if !errors.Is(err, ErrFillCycle) {
		t.Fatalf("GetOrFill of a key a peer owns and cannot fill, from a filler of it: %v, want ErrFillCycle", err)
	}
}

// TestAFilledValueTooLargeNamesTheFill: a filler's value over MaxValueSize
// fails the fill with ErrValueTooLarge, named as a fill's errors are
// ("fill", see the package's errors), not as a Set the caller never made.
func TestAFilledValueTooLargeNamesTheFill(t *testing.T) {
	cfg := testConfig("solo")
	cfg.MaxValueSize = 16
	c := newCache(t, cfg)
	_, err := c.GetWithFiller(context.Background(), "k", func(context.Context, string) ([]byte, error) {
		return make([]byte, 17), nil
	}, 0)
	if !errors.Is(err, ErrValueTooLarge) || !strings.HasPrefix(err.Error(), `bcache: fill "k": `) {
		t.Fatalf("GetWithFiller of a value too large: %v; want ErrValueTooLarge named as the fill's", err)
	}
}
