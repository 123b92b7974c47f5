package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
	"github.com/hashicorp/memberlist"
)

// callPair starts two members on an in-memory network; b answers calls
// with serve.
func callPair(t *testing.T, serve func(from string, payload []byte) []byte) (*memnet.Network, *node, *node) {
	t.Helper()
	net := memnet.NewNetwork(1)
	start := func(name string, peers []string, on func(string, []byte) []byte) *node {
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		return startNode(t, name, peers, func(c *Config) { c.Transport, c.OnCall = tr, on })
	}
	a := start("a", nil, nil)
	b := start("b", []string{a.r.Addr()}, serve)
	waitMembers(t, 2, a, b)
	return net, a, b
}

// TestCallAnswers: a call reaches the peer's OnCall with the caller's
// name and payload and returns its answer, small (a datagram) or large (a
// stream); a call to no live member fails at once.
func TestCallAnswers(t *testing.T) {
	_, a, _ := callPair(t, func(from string, p []byte) []byte {
		return append([]byte(from+":"), p...)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range []int{3, 100_000} {
		payload := bytes.Repeat([]byte("x"), n)
		got, err := a.r.Call(ctx, "b", payload)
		if err != nil || !bytes.Equal(got, append([]byte("a:"), payload...)) {
			t.Fatalf("%d bytes: answer of %d bytes, %v", n, len(got), err)
		}
	}
	if _, err := a.r.Call(ctx, "nobody", nil); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("a call to nobody: %v", err)
	}
}

// TestCallResendsALostRequest: a call whose answer is lost sends its
// request again, and gets the answer the peer sent, again, without the
// peer serving the request a second time: a repeat that came after the
// answer was served again, and a fill ran twice (found by the tests). A
// request larger than a datagram (it goes by stream) is sent again too,
// once the call's wait has grown to a second: it was never sent again,
// and the call waited for its context's end (last notes' item).
func TestCallResendsALostRequest(t *testing.T) {
	for _, size := range []int{1, 10_000} {
		t.Run(fmt.Sprint("bytes=", size), func(t *testing.T) {
			var served atomic.Int32
			var net *memnet.Network
			net, a, b := callPair(t, func(string, []byte) []byte {
				if served.Add(1) == 1 {
					net.SetLoss("b", "a", 1) // the answer is lost
				}
				return []byte("ok")
			})
			done := callAsync(t, a, "b", bytes.Repeat([]byte("q"), size))
			await.Until(t, 10*time.Second, func() bool { return b.r.counters.callRepeats.Load() >= 1 }, "the request never came again")
			net.SetLoss("b", "a", 0)
			if r := <-done; r.err != nil || string(r.answer) != "ok" {
				t.Fatalf("%q, %v", r.answer, r.err)
			}
			if n := served.Load(); n != 1 {
				t.Fatalf("served %d times, want once: a repeat gets the answer sent", n)
			}
		})
	}
}

// TestCallResendingForStopsResending: a call that may resend its request
// only within 250 ms of the first send, its copies lost until a second
// has passed, is never served (Call, resending for as long as it waits,
// is served by the copy it sends after that): a caller that bounds what
// the peer does with the request knows by when an answer can come (a
// fill's asker gave up on an owner that got a late copy, and ran the
// filler too: found by review).
func TestCallResendingForStopsResending(t *testing.T) {
	for _, bounded := range []bool{true, false} {
		t.Run(fmt.Sprint("bounded=", bounded), func(t *testing.T) {
			var served atomic.Int32
			net, a, _ := callPair(t, func(string, []byte) []byte {
				served.Add(1)
				return []byte("ok")
			})
			net.SetLoss("a", "b", 1)
			heal := time.AfterFunc(time.Second, func() { net.SetLoss("a", "b", 0) })
			defer heal.Stop()
			// Unbounded, the call waits as long as it must: its copies
			// after the heal (at about 1.5 s and 2.5 s) must not race
			// its deadline on a loaded machine.
			wait, resend := 10*time.Second, time.Duration(0)
			if bounded {
				wait, resend = 2500*time.Millisecond, 250*time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			var sends atomic.Int32
			got, err := a.r.CallResendingFor(ctx, "b", []byte("q"), resend, 0, func(time.Time) { sends.Add(1) })
			switch {
			case bounded && (err == nil || served.Load() != 0):
				t.Fatalf("resending for 250 ms, its copies lost for a second: %q, %v, served %d times; want no answer, never served", got, err, served.Load())
			case !bounded && (err != nil || string(got) != "ok"):
				t.Fatalf("resending as long as it waits: %q, %v; want the answer to a copy sent after the loss ended", got, err)
			case bounded && (sends.Load() < 1 || sends.Load() > 2):
				// 2 (at 0 and 100 ms; the copies after 250 ms are
				// repeats), or 1 if the 100 ms copy's timer fired more
				// than 150 ms late (a loaded machine: it is a repeat then).
				t.Fatalf("onSent called %d times, want 2 (at 0 and 100 ms; the copies after 250 ms are repeats)", sends.Load())
			}
		})
	}
}

// TestCallRepeatsGetALostAnswer: past its resend window, a call goes on
// sending copies that the peer does not serve but answers with the answer
// it kept: an answer lost after the window is had again (the call waited
// for its context's end: found by review).
func TestCallRepeatsGetALostAnswer(t *testing.T) {
	var served atomic.Int32
	var net *memnet.Network
	net, a, _ := callPair(t, func(string, []byte) []byte {
		served.Add(1)
		net.SetLoss("b", "a", 1) // the answer is lost
		return []byte("ok")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan callResult, 1)
	go func() {
		got, err := a.r.CallResendingFor(ctx, "b", []byte("q"), time.Millisecond, 0, nil) // every later copy a repeat
		done <- callResult{got, err}
	}()
	await.Until(t, 10*time.Second, func() bool { return served.Load() == 1 }, "the request was never served")
	net.SetLoss("b", "a", 0)
	if r := <-done; r.err != nil || string(r.answer) != "ok" {
		t.Fatalf("%q, %v; want the kept answer, asked for again", r.answer, r.err)
	}
	if n := served.Load(); n != 1 {
		t.Fatalf("served %d times, want once: repeats are not served", n)
	}
}

// TestAnswersKeptAreBounded: the answers a member keeps for repeats go
// after answeredFor, past answeredCalls and past answeredBytes.
func TestAnswersKeptAreBounded(t *testing.T) {
	var c calls
	now := time.Now()
	for i := range answeredCalls + 10 {
		c.remember(servedCall{"a", uint64(i)}, []byte("x"), now)
	}
	if len(c.answered) != answeredCalls || len(c.answeredOrder) != answeredCalls {
		t.Fatalf("%d answers kept (%d in order), want %d", len(c.answered), len(c.answeredOrder), answeredCalls)
	}
	if _, ok := c.answered[servedCall{"a", 0}]; ok {
		t.Fatal("the oldest answer was kept")
	}
	c.remember(servedCall{"b", 1}, make([]byte, answeredBytes/2), now)
	c.remember(servedCall{"b", 2}, make([]byte, answeredBytes/2), now)
	if c.answeredSize > answeredBytes {
		t.Fatalf("%d bytes kept, want at most %d", c.answeredSize, answeredBytes)
	}
	c.remember(servedCall{"b", 3}, nil, now.Add(answeredFor))
	if len(c.answered) != 1 || c.answeredSize != 0 {
		t.Fatalf("after answeredFor: %d answers, %d bytes kept; want the last alone", len(c.answered), c.answeredSize)
	}
	// A call answered again, its first answer too old to use: the new
	// answer is kept and counted once. The older entry deleted the new
	// answer and left its bytes counted, for good (found by review).
	var d calls
	call := servedCall{"a", 1}
	d.remember(call, make([]byte, 1000), now)
	later := now.Add(answeredFor + time.Second)
	d.remember(call, make([]byte, 1000), later)
	if a, ok := d.answered[call]; !ok || !a.at.Equal(later) || d.answeredSize != 1000 {
		t.Fatalf("answered again: kept %v (at %v), %d bytes counted; want the new answer, 1000", ok, a.at, d.answeredSize)
	}
	for i := range 3 * answeredCalls { // its stale entry reaches the front and goes
		d.remember(servedCall{"b", uint64(i)}, nil, later)
	}
	if d.answeredSize != 0 || len(d.answeredOrder) > answeredCalls {
		t.Fatalf("%d bytes counted, %d in order; want 0 and at most %d", d.answeredSize, len(d.answeredOrder), answeredCalls)
	}
}

// TestCallResentWhileServedIsServedOnce: the copies of a request that
// the caller sends while the first is being served (a fill can take
// seconds; the datagram goes again at 0.1, 0.3, 0.7 s...) are not served
// again: each would run the work again and take one of the places
// maxCallsServed bounds.
func TestCallResentWhileServedIsServedOnce(t *testing.T) {
	var served atomic.Int32
	_, a, b := callPair(t, func(string, []byte) []byte {
		served.Add(1)
		time.Sleep(800 * time.Millisecond) // a slow fill: the caller resends meanwhile
		return []byte("ok")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := a.r.Call(ctx, "b", []byte("q")); err != nil || string(got) != "ok" {
		t.Fatalf("%q, %v", got, err)
	}
	if n, repeats := served.Load(), b.r.counters.callRepeats.Load(); n != 1 || repeats == 0 {
		t.Fatalf("one call served %d times, %d copies received while served", n, repeats)
	}
	// The served call's place is freed once its answer is sent (or
	// queued for its stream): after the caller may have it.
	await.Until(t, 10*time.Second, func() bool { return b.r.calls.serving.Load() == 0 }, "a served call keeps its place")
}

// TestCallsServedAreBounded: past 256 calls served at once, a call fails
// with ErrBusy rather than start another goroutine.
func TestCallsServedAreBounded(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	_, a, _ := callPair(t, func(string, []byte) []byte { <-release; return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, maxCallsServed+1)
	for i := range maxCallsServed + 1 {
		go func() {
			_, err := a.r.Call(ctx, "b", []byte(fmt.Sprint(i)))
			errs <- err
		}()
	}
	if err := <-errs; !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("the first call to end: %v, want ErrBusy", err)
	}
}

// TestCallBytesServedAreBounded: the requests being served hold at most
// maxCallBytesServed of payloads at once (a request alone is served
// whatever its size); past it a call fails with ErrBusy. The places alone
// let 256 requests of 20 MiB each be held while served.
func TestCallBytesServedAreBounded(t *testing.T) {
	was := maxCallBytesServed
	t.Cleanup(func() { maxCallBytesServed = was }) // after the nodes' Close, registered after it
	maxCallBytesServed = 100 << 10
	release := make(chan struct{})
	defer close(release)
	var serving atomic.Int32
	_, a, b := callPair(t, func(string, []byte) []byte { serving.Add(1); <-release; return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 2 { // 80 KiB held: within
		go a.r.Call(ctx, "b", bytes.Repeat([]byte{byte(i)}, 40<<10))
	}
	await.Until(t, 10*time.Second, func() bool { return serving.Load() == 2 }, "two calls of 40 KiB not served")
	if _, err := a.r.Call(ctx, "b", bytes.Repeat([]byte{2}, 40<<10)); !errors.Is(err, ErrBusy) {
		t.Fatalf("a third call of 40 KiB past 100 KiB held: %v, want ErrBusy", err)
	}
	b.r.calls.mu.Lock()
	got := b.r.calls.servedBytes
	b.r.calls.mu.Unlock()
	if got != 80<<10 {
		t.Fatalf("%d bytes counted as served, want %d", got, 80<<10)
	}
}

// TestAskAnswersOnceUnlessCancelled: an Ask's answer comes to its func,
// once, small (a datagram) or large (a stream); a cancelled Ask's answer
// is dropped, and forgotten; an Ask of no live member fails at once.
func TestAskAnswersOnceUnlessCancelled(t *testing.T) {
	release := make(chan struct{})
	_, a, _ := callPair(t, func(from string, p []byte) []byte {
		if string(p) == "late" {
			<-release
		}
		return append([]byte(from+":"), p...)
	})
	for _, n := range []int{3, 100_000} {
		payload := bytes.Repeat([]byte("x"), n)
		answers := make(chan []byte, 2)
		cancel, err := a.r.Ask("b", payload, func(b []byte, err error) {
			if err != nil {
				t.Error(err)
			}
			answers <- bytes.Clone(b)
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-answers:
			if !bytes.Equal(got, append([]byte("a:"), payload...)) {
				t.Fatalf("%d bytes: an answer of %d bytes", n, len(got))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d bytes: no answer", n)
		}
		cancel()
		if n := callsWaiting(a.r); n != 0 {
			t.Fatalf("%d calls remembered after an answered Ask", n)
		}
	}
	answered := make(chan struct{}, 1)
	cancel, err := a.r.Ask("b", []byte("late"), func([]byte, error) { answered <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if n := callsWaiting(a.r); n != 0 {
		t.Fatalf("%d calls remembered after a cancelled Ask", n)
	}
	// b answers now, to an Ask cancelled; a call after, most likely
	// answered after that answer came.
	close(release)
	if _, err := a.r.Call(context.Background(), "b", []byte("after")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-answered:
		t.Fatal("a cancelled Ask was answered")
	default:
	}
	if _, err := a.r.Ask("nobody", nil, func([]byte, error) {}); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("an Ask of nobody: %v", err)
	}
}

// callsWaiting returns the calls r remembers.
func callsWaiting(r *Replicator) int {
	r.calls.mu.Lock()
	defer r.calls.mu.Unlock()
	return len(r.calls.waiting)
}

// TestCallIDsAreUnpredictable: a call's id is drawn at random, not
// counted, so that a member that saw one of this member's calls cannot
// answer its other calls (with ErrBusy, or a value) in their peers' names.
func TestCallIDsAreUnpredictable(t *testing.T) {
	_, a, _ := callPair(t, func(string, []byte) []byte { return nil })
	var ids []uint64
	for range 100 {
		_, id, err := a.r.register(pendingCall{peer: "b"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for i := 1; i < len(ids); i++ {
		if ids[i]-ids[i-1] <= 1 {
			t.Fatalf("call ids %d and %d: counted, not drawn", ids[i-1], ids[i])
		}
	}
}

// TestRequestsOfNonMembersAreNotServed: a request in the name of no
// member is refused and counted, not served: its answer would go nowhere
// (it was served, a fill run, and the answer dropped; found by review).
func TestRequestsOfNonMembersAreNotServed(t *testing.T) {
	var served atomic.Int32
	_, _, b := callPair(t, func(from string, p []byte) []byte {
		served.Add(1)
		return []byte("ok")
	})
	before := b.r.Stats().BadFrames
	for i := range 100 {
		b.r.receivedCall(appendCall(nil, "mallory", callRequest, uint64(i+1), []byte{1, 'k'})[1:])
	}
	if got := b.r.Stats().BadFrames - before; got != 100 || served.Load() != 0 {
		t.Fatalf("%d of 100 requests of a non-member refused, %d served", got, served.Load())
	}
}

// TestRequestsInTheReceiversOwnNameAreNotServed: a request that names
// the member receiving it as its asker comes from no one (a member never
// calls itself: register refuses it), and its answer would go back to
// the member itself, which drops it; served, it took a serving place and
// ran OnCall (a fill) for nobody, as a made-up name did before it was
// refused. So is a repeat. (A reply in its own name answers no call: a
// member calls no one in its own name, register refuses it.)
func TestRequestsInTheReceiversOwnNameAreNotServed(t *testing.T) {
	var served atomic.Int32
	_, _, b := callPair(t, func(from string, p []byte) []byte {
		served.Add(1)
		return []byte("ok")
	})
	before := b.r.Stats().BadFrames
	for i := range 10 {
		b.r.receivedCall(appendCall(nil, "b", callRequest, uint64(i+1), []byte{1, 'k'})[1:])
		// A repeat too (the comment said so; only requests were sent).
		b.r.receivedCall(appendCall(nil, "b", callRepeat, uint64(i+100), nil)[1:])
	}
	// A request admitted takes its serving place before its goroutine
	// runs OnCall: none may have been taken.
	if got, serving := b.r.Stats().BadFrames-before, b.r.calls.serving.Load(); got != 20 || serving != 0 || served.Load() != 0 {
		t.Fatalf("%d of 20 requests and repeats in the receiver's own name refused, %d admitted, %d served", got, serving, served.Load())
	}
}

// stallingPair starts two members on an in-memory network whose
// transports can stall the streams they open (stallingTransport), with
// streams timing out after tcpTimeout; b answers calls with serve.
func stallingPair(t *testing.T, tcpTimeout time.Duration, serve func(from string, payload []byte) []byte) (a, b *node, sa, sb *stallingTransport) {
	t.Helper()
	net := memnet.NewNetwork(1)
	start := func(name string, peers []string, on func(string, []byte) []byte) (*node, *stallingTransport) {
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		st := &stallingTransport{Transport: tr}
		return startNode(t, name, peers, func(c *Config) {
			c.Transport, c.OnCall = st, on
			c.Timings.TCPTimeout = tcpTimeout
		}), st
	}
	a, sa = start("a", nil, nil)
	b, sb = start("b", []string{a.r.Addr()}, serve)
	waitMembers(t, 2, a, b)
	return a, b, sa, sb
}

// bigAnswer answers "big" with 100,000 bytes (over a stream), anything
// else with "pong" (a datagram).
func bigAnswer() func(string, []byte) []byte {
	big := bytes.Repeat([]byte("v"), 100_000)
	return func(_ string, p []byte) []byte {
		if string(p) == "big" {
			return big
		}
		return []byte("pong")
	}
}

// answered reports whether r keeps an answer to from's call id.
func answered(r *Replicator, from string, id uint64) bool {
	r.calls.mu.Lock()
	defer r.calls.mu.Unlock()
	_, ok := r.calls.answered[servedCall{from, id}]
	return ok
}

// TestRepeatOfALargeAnswerDoesNotStallTheReceiver: a request that comes
// again after its answer went gets that answer again; one larger than a
// datagram goes over a stream, which the goroutine that delivers
// datagrams must not write: a peer whose streams stall (or one replaying
// its request) held it for TCPTimeout per repeat, and every datagram
// (pings, deltas, other calls) waited behind (found by review).
func TestRepeatOfALargeAnswerDoesNotStallTheReceiver(t *testing.T) {
	a, b, _, sb := stallingPair(t, 10*time.Second, bigAnswer())
	req := appendCall(nil, "a", callRequest, 42, []byte("big"))
	nb := a.r.lookup("b")
	if err := a.r.sendPacket(nb, req); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { return answered(b.r, "a", 42) }, "the request was never answered")
	sb.stall(a.r.Addr()) // b's streams to a stall from now on
	for range 3 {        // a replays its request
		if err := a.r.sendPacket(nb, req); err != nil {
			t.Fatal(err)
		}
	}
	await.Until(t, 10*time.Second, func() bool { return b.r.counters.callRepeats.Load() >= 1 }, "the request never came again")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if got, err := a.r.Call(ctx, "b", []byte("ping")); err != nil || string(got) != "pong" {
		t.Fatalf("a call of one datagram after the repeats: %q, %v (after %v): b's datagrams wait for the repeats' streams", got, err, time.Since(start))
	}
}

// TestRepeatsOfALargeAnswerAreBounded: a request replayed many times
// gets its large answer again at most once per answerResendGap: each
// copy of a datagram of a few bytes had the member send 100 kB again.
func TestRepeatsOfALargeAnswerAreBounded(t *testing.T) {
	a, b, _, _ := stallingPair(t, 10*time.Second, bigAnswer())
	req := appendCall(nil, "a", callRequest, 42, []byte("big"))
	nb := a.r.lookup("b")
	if err := a.r.sendPacket(nb, req); err != nil {
		t.Fatal(err)
	}
	// The answer is remembered before it is queued: wait until it went.
	await.Until(t, 10*time.Second, func() bool {
		return answered(b.r, "a", 42) && b.r.Stats().WireStreamBytes >= 100_000 && b.r.streams.bytes() == 0
	}, "the request was never answered")
	before := b.r.Stats().WireStreamBytes
	const replays = 20
	for range replays {
		if err := a.r.sendPacket(nb, req); err != nil {
			t.Fatal(err)
		}
	}
	await.Until(t, 10*time.Second, func() bool { return b.r.counters.callRepeats.Load() >= replays }, "%d of %d replays came", b.r.counters.callRepeats.Load(), replays)
	await.Until(t, 10*time.Second, func() bool { return b.r.streams.bytes() == 0 }, "b's streams never went")
	// The replays take well under answerResendGap: one resend, two if
	// the gap ended among them.
	if sent := b.r.Stats().WireStreamBytes - before; sent > 2*100_000+10_000 {
		t.Fatalf("%d replays of a request had b send %d bytes over streams: its 100 kB answer %d times", replays, sent, sent/100_000)
	}
}

// TestLostLargeAnswerIsSentAgain: an answer over a stream that failed is
// sent again when the caller repeats its request, once answerResendGap
// has passed, and the call is served once.
func TestLostLargeAnswerIsSentAgain(t *testing.T) {
	var served atomic.Int32
	big := bigAnswer()
	var sb *stallingTransport
	var a *node
	a, b, _, sb := stallingPair(t, 200*time.Millisecond, func(from string, p []byte) []byte {
		if served.Add(1) == 1 {
			sb.stall(a.r.Addr()) // the answer's stream fails
		}
		return big(from, p)
	})
	done := callAsync(t, a, "b", []byte("big"))
	await.Until(t, 10*time.Second, func() bool { return b.r.Stats().SendErrors >= 1 }, "the answer's stream never failed")
	sb.stall("")
	if r := <-done; r.err != nil || len(r.answer) != 100_000 {
		t.Fatalf("answer of %d bytes, %v", len(r.answer), r.err)
	}
	if n := served.Load(); n != 1 {
		t.Fatalf("served %d times, want once", n)
	}
}

// refusingDials wraps a member's transport so that the streams it opens
// are refused at once until a time, as by a peer whose port is closed
// for a while (a restart, a firewall's change).
type refusingDials struct {
	Transport
	mu    sync.Mutex
	until time.Time
}

// refuseFor refuses the streams dialled from now on for d.
func (s *refusingDials) refuseFor(d time.Duration) {
	s.mu.Lock()
	s.until = time.Now().Add(d)
	s.mu.Unlock()
}

func (s *refusingDials) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	s.mu.Lock()
	refused := time.Now().Before(s.until)
	s.mu.Unlock()
	if refused {
		return nil, errors.New("dial: connection refused")
	}
	return s.Transport.DialAddressTimeout(a, timeout)
}

func (s *refusingDials) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return s.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// refusingPair starts members a and b on an in-memory network, b serving
// calls with serve, given b's transport, whose streams serve may refuse.
func refusingPair(t *testing.T, serve func(rb *refusingDials, from string, p []byte) []byte) (a, b *node) {
	t.Helper()
	mn := memnet.NewNetwork(1)
	ta, err := mn.NewTransport("a")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := mn.NewTransport("b")
	if err != nil {
		t.Fatal(err)
	}
	rb := &refusingDials{Transport: tb}
	a = startNode(t, "a", nil, func(c *Config) { c.Transport = ta })
	b = startNode(t, "b", []string{a.r.Addr()}, func(c *Config) {
		c.Transport = rb
		c.OnCall = func(from string, p []byte) []byte { return serve(rb, from, p) }
	})
	waitMembers(t, 2, a, b)
	return a, b
}

// TestLostLargeAnswerOutlivesAStreamOutage: the owner's streams are
// refused for 4 s from the moment it answers 100 kB; its copies fail, and
// the copy after the outage reaches the caller, whose context has time
// left. Three copies, a second apart whatever became of them, were spent
// by the caller's repeats within 3.5 s, and the call ran to its context's
// end (found by review).
func TestLostLargeAnswerOutlivesAStreamOutage(t *testing.T) {
	const outage = 4 * time.Second
	big := bigAnswer()
	var served atomic.Int32
	a, b := refusingPair(t, func(rb *refusingDials, from string, p []byte) []byte {
		served.Add(1)
		rb.refuseFor(outage)
		return big(from, p)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*outage)
	defer cancel()
	start := time.Now()
	got, err := a.r.Call(ctx, "b", []byte("big"))
	if err != nil || len(got) != 100_000 {
		t.Fatalf("answer of %d bytes, %v after %v (b's failed sends: %d)", len(got), err, time.Since(start), b.r.Stats().SendErrors)
	}
	if n := served.Load(); n != 1 {
		t.Fatalf("served %d times, want once", n)
	}
	if b.r.Stats().SendErrors < 2 {
		t.Fatalf("b's sends failed %d times during the outage: the test tested nothing", b.r.Stats().SendErrors)
	}
}

// fillStreamQueue fills r's stream queue for peer, whose streams must
// stall: one frame being written, one of nearly maxPeerStreamBytes queued
// behind it, so that the queue refuses a frame of 1000 bytes or more
// until they are gone.
func fillStreamQueue(t *testing.T, r *Replicator, peer string) {
	t.Helper()
	if err := r.streams.push(peer, &streamFrame{b: []byte("stalled")}); err != nil {
		t.Fatal(err)
	}
	if err := r.streams.push(peer, &streamFrame{b: make([]byte, maxPeerStreamBytes-1000)}); err != nil {
		t.Fatal(err)
	}
}

// TestRefusedLargeAnswerGoesAtTheNextRepeat: an answer the stream queue
// refuses (the queue for its peer full) was not sent, so it goes at the
// next repeat of its request once there is room: it started the
// answerResendGap as though sent (found by review).
func TestRefusedLargeAnswerGoesAtTheNextRepeat(t *testing.T) {
	// The repeat must come within answerResendGap of the answer, or any
	// copy would be due: a minute here, whatever the machine's load. The
	// queue stays full until released: with a TCPTimeout of 200 ms, a
	// loaded machine emptied it before the answer came (the test failed).
	defer func(gap time.Duration) { answerResendGap = gap }(answerResendGap)
	answerResendGap = time.Minute
	a, b, _, sb := stallingPair(t, time.Minute, bigAnswer())
	sb.stall(a.r.Addr())
	fillStreamQueue(t, b.r, "a")
	req := appendCall(nil, "a", callRequest, 42, []byte("big"))
	nb := a.r.lookup("b")
	if err := a.r.sendPacket(nb, req); err != nil {
		t.Fatal(err)
	}
	// The answer is remembered before it is queued: wait for the refusal
	// itself (read right after answered, it had not come yet under load).
	await.Until(t, 10*time.Second, func() bool { return b.r.Stats().CallsDropped >= 1 }, "the answer was never refused")
	if !answered(b.r, "a", 42) {
		t.Fatal("the answer was refused but not remembered as answered")
	}
	if n := b.r.Stats().CallsDropped; n != 1 {
		t.Fatalf("%d call frames refused, want the answer's", n)
	}
	sb.release() // the frames queued fail at once
	await.Until(t, 10*time.Second, func() bool { return b.r.streams.bytes() == 0 }, "b's queue for a never emptied")
	before := b.r.Stats().WireStreamBytes
	if err := a.r.sendPacket(nb, req); err != nil { // well within answerResendGap of the answer
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { return b.r.Stats().WireStreamBytes-before >= 100_000 },
		"the repeat after the refused answer had b send %d bytes over streams", b.r.Stats().WireStreamBytes-before)
}

// TestLargeAnswerInFlightIsNotSentAgain: while a copy of a large answer
// is queued or being written (its stream stalls), the repeats of its
// request, past answerResendGap, queue no other copy: copies a second
// apart piled up behind a slow stream, and spent the resends that a
// lost answer needed later (found by review).
func TestLargeAnswerInFlightIsNotSentAgain(t *testing.T) {
	a, b, _, sb := stallingPair(t, 10*time.Second, bigAnswer())
	sb.stall(a.r.Addr())
	req := appendCall(nil, "a", callRequest, 42, []byte("big"))
	nb := a.r.lookup("b")
	if err := a.r.sendPacket(nb, req); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { return answered(b.r, "a", 42) }, "the request was never answered")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(answerResendGap * 3 / 2); time.Now().Before(end); <-tick.C { // a repeats its request
		if err := a.r.sendPacket(nb, req); err != nil {
			t.Fatal(err)
		}
	}
	await.Until(t, 10*time.Second, func() bool { return b.r.counters.callRepeats.Load() >= 10 }, "the repeats never came")
	if held := b.r.streams.bytes(); held > 100_000+1000 {
		t.Fatalf("b holds %d bytes for its stalled stream to a: copies of one answer piled up", held)
	}
}

// TestCallFramesRefusedAreCountedApart: a call's frame the stream queue
// refuses is counted in CallsDropped, not among the sync protocol's
// frames (StreamsDropped, StreamsDroppedPeer: a peer that reads slower
// than the protocol sends to it), whose queue it shares.
func TestCallFramesRefusedAreCountedApart(t *testing.T) {
	a, _, sa, _ := stallingPair(t, 2*time.Second, bigAnswer())
	sa.stall(a.r.lookup("b").Address())
	fillStreamQueue(t, a.r, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.r.Call(ctx, "b", bytes.Repeat([]byte("x"), 100_000)); err == nil || ctx.Err() != nil {
		t.Fatalf("a call of 100 kB, the queue for its peer full: %v (its context: %v)", err, ctx.Err())
	}
	if st := a.r.Stats(); st.CallsDropped != 1 || st.StreamsDropped != 0 || st.StreamsDroppedPeer != 0 {
		t.Fatalf("a call's request refused: CallsDropped %d, StreamsDropped %d, StreamsDroppedPeer %d; want 1, 0, 0",
			st.CallsDropped, st.StreamsDropped, st.StreamsDroppedPeer)
	}
}

// TestRequestRefusedForRoomIsBusy: a request the stream queue refuses
// (the frames queued for its peer at their bound) fails with ErrBusy, as
// a peer with no room to serve it does: the owner may be asked again
// later. It failed with the queue's own error, which a cluster fill took
// for the owner's silence and filled the key itself (found by review).
func TestRequestRefusedForRoomIsBusy(t *testing.T) {
	a, _, sa, _ := stallingPair(t, 2*time.Second, bigAnswer())
	sa.stall(a.r.lookup("b").Address())
	fillStreamQueue(t, a.r, "b")
	big := bytes.Repeat([]byte("x"), 100_000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.r.Call(ctx, "b", big); !errors.Is(err, ErrBusy) {
		t.Fatalf("a call of 100 kB, the queue for its peer full: %v, want ErrBusy", err)
	}
	if _, err := a.r.Ask("b", big, func([]byte, error) {}); !errors.Is(err, ErrBusy) {
		t.Fatalf("an ask of 100 kB, the queue for its peer full: %v, want ErrBusy", err)
	}
}

// TestLargeRequestsDoNotWaitForTheStream: a request larger than a
// datagram goes to the peer's stream sender; Ask returns at once and Call
// at its context's end while the stream hangs (both wrote the stream
// themselves, for up to TCPTimeout: GetAfter and GetOrFill overran their
// contexts; found by review), and Call fails once the stream does.
func TestLargeRequestsDoNotWaitForTheStream(t *testing.T) {
	const tcpTimeout = time.Second
	a, _, sa, _ := stallingPair(t, tcpTimeout, func(string, []byte) []byte { return []byte("ok") })
	sa.stall(a.r.lookup("b").Address())
	big := bytes.Repeat([]byte("x"), 100_000)
	start := time.Now()
	cancelAsk, err := a.r.Ask("b", big, func([]byte, error) {})
	if err != nil {
		t.Fatal(err)
	}
	defer cancelAsk()
	if took := time.Since(start); took > tcpTimeout/2 {
		t.Fatalf("Ask of %d bytes returned after %v: it waited for the stream", len(big), took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := a.r.Call(ctx, "b", big); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > tcpTimeout/2 {
		t.Fatalf("a call of %d bytes with a 50 ms context: %v after %v", len(big), err, time.Since(start))
	}
	// The stream sender writes a's frames to b one at a time: this one
	// fails after the two before, a TCPTimeout each.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.r.Call(ctx, "b", big); err == nil || ctx.Err() != nil {
		t.Fatalf("a call whose stream fails: %v (its context: %v)", err, ctx.Err())
	}
}

// callResult is what a Call returned.
type callResult struct {
	answer []byte
	err    error
}

// callAsync calls member to from n with payload and a context of 10 s,
// and returns the channel its result comes on.
func callAsync(t *testing.T, n *node, to string, payload []byte) <-chan callResult {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	done := make(chan callResult, 1)
	go func() {
		got, err := n.r.Call(ctx, to, payload)
		done <- callResult{got, err}
	}()
	return done
}

// TestKeptAnswerIsWrittenFewTimes: a kept answer larger than a datagram,
// its request repeated every 100 ms for the 30 s it is kept, is written
// at most 5 times (the gap doubles after each copy written), and a copy
// that failed goes at the next repeat whatever the gap: once a second for
// 30 s, a replayed datagram of a few bytes was worth a stream and up to
// 4 MiB a second (found by review).
func TestKeptAnswerIsWrittenFewTimes(t *testing.T) {
	start := time.Now()
	a := &keptAnswer{inflight: true, started: start}
	end := func(at time.Time, err error) {
		a.inflight, a.failed, a.ended = false, err != nil, at
		a.written += b2i(err == nil)
	}
	end(start.Add(10*time.Millisecond), nil) // the first copy
	copies := 1
	for at := start; at.Sub(start) < answeredFor; at = at.Add(100 * time.Millisecond) {
		if a.resendDue(at) {
			a.inflight, a.started = true, at
			end(at.Add(10*time.Millisecond), nil)
			copies++
		}
	}
	if copies > 5 {
		t.Fatalf("written %d times in %v", copies, answeredFor)
	}
	now := start.Add(answeredFor)
	a.inflight, a.started = true, now
	end(now.Add(10*time.Millisecond), errors.New("refused"))
	if !a.resendDue(now.Add(answerResendGap)) {
		t.Fatal("a copy that failed is not sent again at the next repeat a gap after it began")
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestOneAskerTakesAtMostItsShare: one member's requests take at most
// maxCallsServedPeer of the places to serve calls; past them they are
// refused with ErrBusy and counted, so that one member cannot keep every
// place (and the fills they run) to itself (found by review).
func TestOneAskerTakesAtMostItsShare(t *testing.T) {
	release := make(chan struct{})
	var served atomic.Int32
	_, _, b := callPair(t, func(string, []byte) []byte {
		served.Add(1)
		<-release
		return []byte("done")
	})
	defer close(release)
	for id := range uint64(maxCallsServedPeer + 8) {
		b.r.receivedCall(appendCall(nil, "a", callRequest, 1000+id, []byte("x"))[1:])
	}
	if st := b.r.Stats(); st.CallsBusy != 8 {
		t.Fatalf("%d requests refused busy, want 8", st.CallsBusy)
	}
	await.Until(t, 10*time.Second, func() bool { return served.Load() == maxCallsServedPeer }, "served %d, want %d", served.Load(), maxCallsServedPeer)
}

// TestAnswerTooLargeToKeepIsNotServedAgain: a request whose answer is too
// large to keep is remembered as answered all the same: a copy of it
// (replayed, or resent) is not served again (it was, and its answer
// streamed, every time: found by review).
func TestAnswerTooLargeToKeepIsNotServedAgain(t *testing.T) {
	var served atomic.Int32
	big := make([]byte, answeredBytes+1)
	_, _, b := callPair(t, func(string, []byte) []byte { served.Add(1); return big })
	req := appendCall(nil, "a", callRequest, 7, []byte("big"))[1:]
	b.r.receivedCall(req)
	await.Until(t, 10*time.Second, func() bool { return answered(b.r, "a", 7) }, "the call was not answered")
	for range 4 {
		b.r.receivedCall(req)
	}
	if n, st := served.Load(), b.r.Stats(); n != 1 || st.CallRepeats != 4 {
		t.Fatalf("one request served %d times, %d repeats counted; want 1 and 4", n, st.CallRepeats)
	}
}

// TestLostAnswerTooLargeToKeepIsServedAgain: an answer too large to keep
// whose copy failed to go (its stream refused) is forgotten, so that the
// asker's next resend is served again and the call gets its answer. The
// resends were dropped as repeats, and the call ran to its context's end
// (found by review).
func TestLostAnswerTooLargeToKeepIsServedAgain(t *testing.T) {
	huge := bytes.Repeat([]byte("v"), answeredBytes+1)
	var served atomic.Int32
	a, _ := refusingPair(t, func(rb *refusingDials, _ string, _ []byte) []byte {
		if served.Add(1) == 1 {
			rb.refuseFor(time.Second) // the first answer's stream fails
		}
		return huge
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := a.r.Call(ctx, "b", []byte("big"))
	if err != nil || len(got) != len(huge) || served.Load() < 2 {
		t.Fatalf("answer of %d bytes, %v, served %d times; want the answer, served again", len(got), err, served.Load())
	}
}

// TestBusyCallIsNotServedLater: a call refused as busy is not served by a
// later copy of it (one that left before the refusal came back) once a
// place frees: the refusal is kept as the call's answer. Its caller, told
// busy, had given it up (a fill's asks again under a new id, or fills
// itself), and a fill ran twice (found by review).
func TestBusyCallIsNotServedLater(t *testing.T) {
	gate := make(chan struct{})
	var servedX, blocked atomic.Int32
	net, a, b := callPair(t, func(from string, p []byte) []byte {
		if string(p) == "x" {
			servedX.Add(1)
			return []byte("x")
		}
		blocked.Add(1)
		<-gate
		return []byte("ok")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range maxCallsServedPeer {
		wg.Go(func() { a.r.Call(ctx, "b", []byte(fmt.Sprint("block", i))) })
	}
	defer wg.Wait()
	defer close(gate)
	await.Until(t, 10*time.Second, func() bool { return blocked.Load() == maxCallsServedPeer }, "%d calls being served, want %d", blocked.Load(), maxCallsServedPeer)
	net.SetDelay(150 * time.Millisecond) // a round trip of 300 ms: a second copy leaves (at 100 ms) before the refusal comes
	defer net.SetDelay(0)
	free := time.AfterFunc(200*time.Millisecond, func() { gate <- struct{}{} }) // a place frees between the copies' arrivals
	defer free.Stop()
	repeats := b.r.counters.callRepeats.Load()
	if _, err := a.r.CallResendingFor(ctx, "b", []byte("x"), time.Second, 0, nil); !errors.Is(err, ErrBusy) {
		t.Skipf("the call returned %v, not ErrBusy: the delays were not met on this machine", err)
	}
	await.Until(t, 10*time.Second, func() bool { return servedX.Load() > 0 || b.r.counters.callRepeats.Load() > repeats }, "the second copy never reached the peer")
	if n := servedX.Load(); n != 0 {
		t.Fatalf("the call was refused as busy, and the peer served it %d time(s) after", n)
	}
}

// TestRepeatsOfALargeRequestTakeNoStream: a call's repeats carry its id
// alone, in a datagram, whatever the request's size: a long one's went by
// stream, payload and all, a dial each, once a second for as long as the
// call waited (found by review).
func TestRepeatsOfALargeRequestTakeNoStream(t *testing.T) {
	_, a, _ := callPair(t, func(string, []byte) []byte {
		time.Sleep(3 * time.Second) // a slow fill: repeats go meanwhile
		return []byte("ok")
	})
	var streamed atomic.Int64
	send := a.r.streams.send
	a.r.streams.send = func(peer string, frame []byte) error {
		if len(frame) > 0 && frame[0] == callMarker {
			if _, kind, _, _, err := parseCall(frame[1:]); err == nil && kind == callRepeat {
				streamed.Add(1)
			}
		}
		return send(peer, frame)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := a.r.CallResendingFor(ctx, "b", bytes.Repeat([]byte("k"), 60<<10), time.Second, 0, nil)
	if err != nil || string(got) != "ok" {
		t.Fatalf("%q, %v", got, err)
	}
	if n := streamed.Load(); n > 0 {
		t.Fatalf("%d repeats went by stream", n)
	}
}

// refusingPeer returns b of a call pair, a function that hands b a
// request of a's (its id and payload) as if received, the count of the
// requests "x" b served, and a gate that holds the others' serving until
// sent to (closed at the test's end).
func refusingPeer(t *testing.T) (*node, func(uint64, string), *atomic.Int32, chan struct{}) {
	_, b, inject, servedX, gate := gatedPair(t)
	return b, inject, servedX, gate
}

// gatedPair is refusingPeer, with a too.
func gatedPair(t *testing.T) (a, b *node, inject func(uint64, string), servedX *atomic.Int32, gate chan struct{}) {
	gate = make(chan struct{})
	servedX = new(atomic.Int32)
	_, a, b = callPair(t, func(from string, p []byte) []byte {
		if string(p) == "x" {
			servedX.Add(1)
			return []byte("x")
		}
		<-gate
		return []byte("ok")
	})
	t.Cleanup(func() { close(gate) })
	inject = func(id uint64, payload string) {
		f := appendCall(nil, "a", callRequest, id, []byte(payload))
		b.r.receivedCall(f[1:])
	}
	return a, b, inject, servedX, gate
}

// TestRefusalsKeepNoAnswerOut: refusals for want of a place are kept
// apart from the answers kept for repeats: kept with them, a burst of
// refusals (answeredCalls of them) pushed a served call's answer out, and
// a copy of that call (its answer lost) was served again (found by
// review).
func TestRefusalsKeepNoAnswerOut(t *testing.T) {
	b, inject, servedX, gate := refusingPeer(t)
	inject(1, "x")
	// Its place freed too: x's answer is remembered before its place is
	// let go of, and a block injected in between was refused (the asker's
	// places all but one taken), and the places never all taken (CI343).
	await.Until(t, 5*time.Second, func() bool {
		return servedX.Load() == 1 && answered(b.r, "a", 1) && b.r.calls.serving.Load() == 0
	}, "x never answered")
	for i := range maxCallsServedPeer {
		inject(uint64(100+i), "block")
	}
	await.Until(t, 5*time.Second, func() bool { return b.r.calls.serving.Load() == maxCallsServedPeer }, "the places were not taken")
	for i := range answeredCalls {
		inject(uint64(10_000+i), fmt.Sprint("block", i)) // each refused
	}
	gate <- struct{}{}
	await.Until(t, 5*time.Second, func() bool { return b.r.calls.serving.Load() == maxCallsServedPeer-1 }, "no place freed")
	repeats := b.r.counters.callRepeats.Load()
	inject(1, "x") // a copy of the call served (its answer lost)
	await.Until(t, 5*time.Second, func() bool { return servedX.Load() > 1 || b.r.counters.callRepeats.Load() > repeats }, "the copy was never handled")
	if n := servedX.Load(); n != 1 {
		t.Fatalf("a copy of a call answered was served again (%d times) after %d refusals", n, answeredCalls)
	}
}

// TestRefusalsAreKeptWhileNeeded: a refusal is kept as long as a copy of
// its call may come, whatever the refusals after it: dropped at a bound
// of 4,096, one still needed was, and a copy of its call, whose asker had
// been told busy, was served once a place freed (found by review). Past
// maxRefusedPeer of one asker's, every request of it is refused.
func TestRefusalsAreKeptWhileNeeded(t *testing.T) {
	b, inject, servedX, gate := refusingPeer(t)
	for i := range maxCallsServedPeer {
		inject(uint64(100+i), "block")
	}
	await.Until(t, 5*time.Second, func() bool { return b.r.calls.serving.Load() == maxCallsServedPeer }, "the places were not taken")
	busy := b.r.counters.callsBusy.Load()
	inject(1, "x") // refused: its asker is told busy
	if b.r.counters.callsBusy.Load() != busy+1 {
		t.Fatal("x was not refused")
	}
	for i := range 5 * maxRefusedPeer { // past the 4,096 kept before
		inject(uint64(10_000+i), fmt.Sprint("block", i))
	}
	gate <- struct{}{}
	await.Until(t, 5*time.Second, func() bool { return b.r.calls.serving.Load() == maxCallsServedPeer-1 }, "no place freed")
	repeats := b.r.counters.callRepeats.Load()
	inject(1, "x") // a copy of it, sent before the refusal came back
	inject(2, "x") // a new call of an asker past its refusals: refused too
	await.Until(t, 5*time.Second, func() bool { return servedX.Load() > 0 || b.r.counters.callRepeats.Load() >= repeats+2 }, "the copies were never handled")
	if n := servedX.Load(); n != 0 {
		t.Fatalf("a call refused (its asker told busy) was served %d times after %d more refusals", n, 5*maxRefusedPeer)
	}
	b.r.calls.mu.Lock()
	kept := len(b.r.calls.refused)
	b.r.calls.mu.Unlock()
	if kept > maxRefusedPeer {
		t.Fatalf("%d refusals of one asker kept, want at most %d", kept, maxRefusedPeer)
	}
}

// TestQueuedCopiesAreWithdrawn: a request larger than a datagram, its
// peer's stream stalled, has at most one copy waiting in the stream queue
// (a copy queued behind another goes after it, and adds nothing), and
// none once its Call has returned or its Ask was cancelled: a stalled
// stream kept a copy of a plain Call every second, each sent, once the
// stream moved, to a peer that served it for no one (found by review).
func TestQueuedCopiesAreWithdrawn(t *testing.T) {
	_, a, _ := callPair(t, func(string, []byte) []byte { return []byte("ok") })
	gate := make(chan struct{})
	var opened atomic.Bool
	t.Cleanup(func() {
		if !opened.Load() {
			close(gate)
		}
	})
	var requests atomic.Int32
	send := a.r.streams.send
	a.r.streams.send = func(peer string, frame []byte) error {
		if len(frame) > 0 && frame[0] == callMarker {
			if _, kind, _, _, err := parseCall(frame[1:]); err == nil && kind == callRequest {
				<-gate // the stream stalls
				requests.Add(1)
			}
		}
		return send(peer, frame)
	}
	big := bytes.Repeat([]byte("k"), 60<<10)
	frame := len(appendCall(nil, "a", callRequest, 1, big))
	// Copies of a large request go 2.5 s and 3.5 s after the first.
	ctx, cancel := context.WithTimeout(context.Background(), 3800*time.Millisecond)
	defer cancel()
	if _, err := a.r.Call(ctx, "b", big); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call whose stream stalls: %v", err)
	}
	if held := a.r.streams.bytes(); held != frame {
		t.Fatalf("after the call returned, the stream queue holds %d bytes, want %d: the copy being written alone", held, frame)
	}
	cancelAsk, err := a.r.Ask("b", big, func([]byte, error) {})
	if err != nil {
		t.Fatal(err)
	}
	if held := a.r.streams.bytes(); held != 2*frame {
		t.Fatalf("with an Ask queued, the stream queue holds %d bytes, want %d", held, 2*frame)
	}
	cancelAsk()
	if held := a.r.streams.bytes(); held != frame {
		t.Fatalf("after the Ask was cancelled, the stream queue holds %d bytes, want %d", held, frame)
	}
	opened.Store(true)
	close(gate)
	await.Until(t, 10*time.Second, func() bool { return a.r.streams.bytes() == 0 }, "the stream queue never emptied")
	if n := requests.Load(); n != 1 {
		t.Fatalf("%d copies of requests written, want 1: the one being written when the call returned", n)
	}
}

// TestRefuseAllEndsOnceTheAskerSlowsDown: an asker that went past
// maxRefusedPeer refusals once (a burst while the owner was busy) is
// refused whatever it asks, until it has been quiet enough; every new
// request pushed the end back by the whole window, so that an asker
// calling at a modest rate (here one request every window/3) was refused
// for good, the owner's places all free (found by review).
func TestRefuseAllEndsOnceTheAskerSlowsDown(t *testing.T) {
	b, inject, servedX, gate := refusingPeer(t)
	const window = 600 * time.Millisecond
	b.r.calls.mu.Lock()
	b.r.calls.refusedFor = window
	b.r.calls.mu.Unlock()
	for i := range maxCallsServedPeer {
		inject(uint64(100+i), "block")
	}
	await.Until(t, 5*time.Second, func() bool { return b.r.calls.serving.Load() == maxCallsServedPeer }, "the places were not taken")
	for i := range maxRefusedPeer + 1 { // a burst: refused, the asker past its refusals
		inject(uint64(10_000+i), fmt.Sprint("block", i))
	}
	for range maxCallsServedPeer { // every place frees
		gate <- struct{}{}
	}
	await.Until(t, 5*time.Second, func() bool { return b.r.calls.serving.Load() == 0 }, "the places never freed")
	// The asker goes on at one new call every window/3, for 6 windows.
	deadline := time.Now().Add(6 * window)
	for id := uint64(1_000_000); time.Now().Before(deadline) && servedX.Load() == 0; id++ {
		inject(id, "x")
		time.Sleep(window / 3)
	}
	if servedX.Load() == 0 {
		t.Fatalf("no new call of the asker served in %v (%d windows) after its burst, every place free: refused for good", 6*window, 6)
	}
}

// TestACallBeingServedIsNotToldBusy: a copy of a call the owner is
// serving, resent by its asker once the asker is refused whatever it asks
// (refuseAll), is a repeat: it was told busy, and the asker gave the call
// up (and filled itself) while the owner still served it (found by
// review).
func TestACallBeingServedIsNotToldBusy(t *testing.T) {
	a, b, inject, _, gate := gatedPair(t)
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		got, err := a.r.Call(ctx, "b", []byte("real"))
		done <- result{got, err}
	}()
	await.Until(t, 5*time.Second, func() bool { return b.r.calls.serving.Load() == 1 }, "the call was never served")
	for i := range maxCallsServedPeer - 1 {
		inject(1<<40+uint64(i), "block")
	}
	await.Until(t, 5*time.Second, func() bool { return b.r.calls.serving.Load() == maxCallsServedPeer }, "the places were not taken")
	for i := range maxRefusedPeer + 1 { // the asker past its refusals: refuseAll
		inject(1<<41+uint64(i), fmt.Sprint("block", i))
	}
	select {
	case r := <-done:
		t.Fatalf("the call, still being served (%d serving), returned %q, %v: its asker was told busy", b.r.calls.serving.Load(), r.b, r.err)
	case <-time.After(4 * time.Second): // several resends
	}
	for range maxCallsServedPeer {
		gate <- struct{}{}
	}
	if r := <-done; r.err != nil || string(r.b) != "ok" {
		t.Fatalf("the call served: %q, %v", r.b, r.err)
	}
}
