package bcache

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Every call on a closed Cache returns ErrClosed, whatever else is wrong
// with its arguments (Close's doc and ErrClosed's).
func TestEveryCallOnAClosedCacheIsErrClosed(t *testing.T) {
	c := newCache(t, testConfig("solo"))
	c.Set("k", []byte("v"), 0)
	sub, err := c.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range sub.C { // closed by the Cache's Close
	}
	ctx := context.Background()
	fill := func(context.Context, string) ([]byte, error) { return []byte("x"), nil }
	errs := map[string]error{}
	errs["Set"] = c.Set("k", nil, 0)
	errs["Set, negative ttl"] = c.Set("k", nil, -1)
	errs["Set, key too large"] = c.Set(strings.Repeat("k", DefaultMaxKeySize+1), nil, 0)
	errs["Delete"] = c.Delete("k")
	_, errs["SetWithToken"] = c.SetWithToken("k", nil, 0)
	_, errs["DeleteWithToken"] = c.DeleteWithToken("k")
	_, errs["GetWithFiller"] = c.GetWithFiller(ctx, "k", fill, 0)
	_, errs["GetWithFiller, nil filler"] = c.GetWithFiller(ctx, "k", nil, 0)
	_, errs["GetOrFill"] = c.GetOrFill(ctx, "k")
	_, _, errs["GetAfter, empty token"] = c.GetAfter(ctx, "k", "")
	_, errs["Subscribe"] = c.Subscribe("", 0)
	_, errs["Subscribe, negative buffer"] = c.Subscribe("", -1)
	errs["WaitSynced"] = c.WaitSynced(ctx)
	for name, err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if _, ok := c.Get("k"); ok || c.Len() != 0 || c.Members() != nil {
		t.Error("a closed Cache serves")
	}
	if st := c.Status(); !st.Closed || st.Ready() || len(st.Peers) != 0 {
		t.Errorf("status after Close: %+v", st)
	}
}

// The edge values of the API behave as documented: an empty key and a nil
// value are a key and a value, a negative ttl is ErrInvalidTTL, the size
// limits are inclusive, a token names one key.
func TestEdgeValuesOfTheAPI(t *testing.T) {
	c := newCache(t, testConfig("solo"))
	ctx := context.Background()
	if err := c.Set("", []byte("v"), 0); err != nil {
		t.Errorf("Set of the empty key: %v", err)
	}
	if v, ok := c.Get(""); !ok || string(v) != "v" {
		t.Errorf("Get of the empty key: %q %v", v, ok)
	}
	if err := c.Delete(""); err != nil {
		t.Errorf("Delete of the empty key: %v", err)
	}
	if _, ok := c.Get(""); ok {
		t.Error("the empty key, deleted, hits")
	}
	if err := c.Set("nil", nil, 0); err != nil {
		t.Errorf("Set of a nil value: %v", err)
	}
	if v, ok := c.Get("nil"); !ok || len(v) != 0 {
		t.Errorf("Get of a nil value: %q %v, want an empty hit", v, ok)
	}
	if err := c.Set("neg", []byte("v"), -1); !errors.Is(err, ErrInvalidTTL) {
		t.Errorf("Set, negative ttl: %v", err)
	}
	if tok, err := c.SetWithToken("neg", []byte("v"), -1); !errors.Is(err, ErrInvalidTTL) || tok != "" {
		t.Errorf("SetWithToken, negative ttl: %q %v", tok, err)
	}
	if _, err := c.GetWithFiller(ctx, "neg", func(context.Context, string) ([]byte, error) { return nil, nil }, -time.Second); !errors.Is(err, ErrInvalidTTL) {
		t.Errorf("GetWithFiller, negative ttl: %v", err)
	}
	if err := c.Set(strings.Repeat("k", DefaultMaxKeySize), nil, 0); err != nil {
		t.Errorf("a key at MaxKeySize: %v", err)
	}
	if err := c.Set(strings.Repeat("k", DefaultMaxKeySize+1), nil, 0); !errors.Is(err, ErrKeyTooLarge) {
		t.Errorf("a key over MaxKeySize: %v", err)
	}
	if err := c.Set("big", make([]byte, DefaultMaxValueSize), 0); err != nil {
		t.Errorf("a value at MaxValueSize: %v", err)
	}
	if err := c.Set("big", make([]byte, DefaultMaxValueSize+1), 0); !errors.Is(err, ErrValueTooLarge) {
		t.Errorf("a value over MaxValueSize: %v", err)
	}
	tok, err := c.SetWithToken("t", []byte("v"), 0)
	if err != nil || len(tok) > MaxTokenLen {
		t.Fatalf("token %q (%d characters): %v", tok, len(tok), err)
	}
	if v, ok, err := c.GetAfter(ctx, "t", tok); err != nil || !ok || string(v) != "v" {
		t.Errorf("GetAfter on the writer: %q %v %v", v, ok, err)
	}
	if _, _, err := c.GetAfter(ctx, "other", tok); !errors.Is(err, ErrBadToken) {
		t.Errorf("a token of another key: %v", err)
	}
	if _, err := c.Subscribe("", -1); !errors.Is(err, ErrConfig) {
		t.Errorf("Subscribe, negative buffer: %v", err)
	}
	if _, err := c.GetOrFill(ctx, "nofill"); !errors.Is(err, ErrNilFiller) {
		t.Errorf("GetOrFill without Config.Filler: %v", err)
	}
	if _, err := c.GetWithFiller(ctx, "nofill", nil, 0); !errors.Is(err, ErrNilFiller) {
		t.Errorf("GetWithFiller without a filler: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.WaitSynced(wctx); err != nil {
		t.Errorf("WaitSynced of a member without peers: %v", err)
	}
	if !c.Status().Ready() {
		t.Error("a member without peers is not ready")
	}
}

// A horizon shorter than the default MaxClockDrift, set alone, is refused
// naming TombstoneHorizon, the field the caller set, not MaxClockDrift.
func TestShortHorizonIsRefusedByItsOwnName(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{BindAddr: "127.0.0.1:0", TombstoneHorizon: 10 * time.Second}, "TombstoneHorizon: 10s"},
		{Config{BindAddr: "127.0.0.1:0", MaxClockDrift: 2 * time.Hour}, "MaxClockDrift: 2h0m0s"},
		{Config{BindAddr: "127.0.0.1:0", TombstoneHorizon: time.Minute, MaxClockDrift: time.Hour}, "TombstoneHorizon: 1m0s"},
	} {
		_, err := New(tc.cfg)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "invalid config: "+tc.field+",") {
			t.Errorf("horizon %v, drift %v: %v, want it to name %q", tc.cfg.TombstoneHorizon, tc.cfg.MaxClockDrift, err, tc.field)
		}
	}
}
