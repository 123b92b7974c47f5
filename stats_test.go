package bcache

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/gossip"
)

// TestEveryLowerCounterIsReachable: Stats carries every counter of the
// layers below, so none is lost on the way up: the store's by name (copied
// here, and checked to flow), the network's and the protocol's whole.
func TestEveryLowerCounterIsReachable(t *testing.T) {
	top := reflect.TypeFor[Stats]()
	for f := range reflect.TypeFor[store.Stats]().Fields() {
		if _, ok := top.FieldByName(f.Name); !ok {
			t.Errorf("the store's %s is not in Stats", f.Name)
		}
	}
	if f, ok := top.FieldByName("Replication"); !ok || f.Type != reflect.TypeFor[gossip.Stats]() {
		t.Error("Stats does not carry gossip.Stats whole")
	}
	if f, ok := reflect.TypeFor[gossip.Stats]().FieldByName("Protocol"); !ok || f.Type != reflect.TypeFor[transport.Stats]() {
		t.Error("gossip.Stats does not carry transport.Stats whole")
	}

	c := newCache(t, Config{BindAddr: "127.0.0.1:0", MaxKeys: 1})
	c.Set("a", []byte("1"), 0)
	c.Set("b", []byte("22"), 0)
	c.Delete("c")
	c.Get("b")
	c.Get("a")
	got, st := c.Stats(), c.store.Stats()
	for f := range reflect.TypeFor[store.Stats]().Fields() {
		want := reflect.ValueOf(st).FieldByName(f.Name)
		if have := reflect.ValueOf(got).FieldByName(f.Name); have.Interface() != want.Interface() {
			t.Errorf("Stats.%s = %v, the store says %v", f.Name, have, want)
		}
	}
	if got.Records != 3 || got.Tombstones != 1 || got.Evicted != 1 || got.Evictions != 1 || got.Hits != 1 || got.Misses != 1 {
		t.Errorf("after two sets under MaxKeys 1, a delete and two reads: %+v", got)
	}
}

// TestProtocolCountersNeverGoDown: the replication's counters, read while
// three members write, never go down between two reads. Copies of them
// taken in one order were published in another (by the goroutines that
// apply frames and send writes), and the counters went back, which
// Prometheus reads as a reset (found by review: FramesSent from 998 to
// 678).
func TestProtocolCountersNeverGoDown(t *testing.T) {
	cs := cluster(t, 3)
	var writers, readers sync.WaitGroup
	var done atomic.Bool
	for i, c := range cs {
		for w := range 2 {
			writers.Go(func() {
				for n := range 40000 {
					c.Set(fmt.Sprintf("k%d-%d-%d", i, w, n%500), []byte("v"), 0)
				}
			})
		}
	}
	went := make(chan string, len(cs))
	for _, c := range cs {
		readers.Go(func() {
			prev := c.Stats().Replication.Protocol
			for !done.Load() {
				cur := c.Stats().Replication.Protocol
				pv, cv := reflect.ValueOf(prev), reflect.ValueOf(cur)
				for f := range pv.NumField() {
					if pv.Field(f).Kind() == reflect.Uint64 && cv.Field(f).Uint() < pv.Field(f).Uint() {
						went <- fmt.Sprintf("%s: %s went from %d to %d", c.Name(), pv.Type().Field(f).Name, pv.Field(f).Uint(), cv.Field(f).Uint())
						return
					}
				}
				prev = cur
			}
		})
	}
	writers.Wait()
	done.Store(true)
	readers.Wait()
	close(went)
	for msg := range went {
		t.Error(msg)
	}
}

// TestStatsJSONIsSnakeCaseThroughout: every name in the JSON of Stats,
// the replication's and the protocol's counters included, is snake_case,
// as the member's own are (the nested ones had no tags: /v1/stats mixed
// "fills" with "FramesSent").
func TestStatsJSONIsSnakeCaseThroughout(t *testing.T) {
	b, err := json.Marshal(Stats{})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for k, sub := range m {
			if !snake.MatchString(k) {
				t.Errorf("%s%s is not snake_case", path, k)
			}
			walk(path+k+".", sub)
		}
	}
	walk("", doc)
	if _, ok := doc["replication"].(map[string]any)["protocol"].(map[string]any)["frames_sent"]; !ok {
		t.Errorf("no replication.protocol.frames_sent in %s", b)
	}
}
