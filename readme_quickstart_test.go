package bcache_test

import (
	"context"
	"testing"
	"time"

	"github.com/bcache-go/bcache"
)

type profileDB struct{}

func (profileDB) LoadProfile(ctx context.Context, key string) ([]byte, error) {
	return []byte("profile of " + key), nil
}

// quickStart is the README's quick start, word for word but for the
// addresses (127.0.0.1, port 0, no peers: the first member) and the
// variables it assumes; other, the member the token is carried to, is c.
func quickStart(ctx context.Context, check func(v []byte, ok bool, tok bcache.Token, st bcache.Status)) error {
	key := make([]byte, 32)
	profile := []byte("Ada")
	db := profileDB{}
	loadProfile := func(ctx context.Context, key string) ([]byte, error) { return db.LoadProfile(ctx, key) }

	c, err := bcache.New(bcache.Config{
		NodeName:  "api-1",       // unique; generated if empty
		BindAddr:  "127.0.0.1:0", // UDP and TCP; port 0 picks one
		MaxKeys:   100_000,       // local bound on values (S3-FIFO eviction)
		SecretKey: key,           // optional: 16, 24 or 32 bytes
		Filler:    loadProfile,   // optional: GetOrFill's source, on a miss
		Timings:   bcache.FastTimings(),
	})
	if err != nil {
		return err
	}
	defer c.Close() // leaves the cluster

	err = c.Set("user:42", profile, 10*time.Minute) // replicated; ttl 0 = no expiry
	v, ok := c.Get("user:42")                       // local, lock-free; do not modify v
	check(v, ok, "", bcache.Status{})
	err = c.Delete("user:42") // a tombstone that wins everywhere
	v, err = c.GetWithFiller(ctx, "user:42", func(ctx context.Context, key string) ([]byte, error) {
		return db.LoadProfile(ctx, key) // once per key per member at a time
	}, 10*time.Minute)
	check(v, err == nil, "", bcache.Status{})
	v, err = c.GetOrFill(ctx, "user:42")              // Config.Filler, once in the whole cluster (below)
	tok, err := c.SetWithToken("user:42", profile, 0) // carry tok to another member...
	other := c
	v, ok, err = other.GetAfter(ctx, "user:42", tok) // ...which reads nothing older than that write
	err = c.WaitSynced(ctx)                          // caught up with a peer since New (writes never wait)
	st := c.Status()                                 // peers, last sync with each, join failures and why
	check(v, ok, tok, st)
	return err
}

func TestReadmeQuickStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	err := quickStart(ctx, func(v []byte, ok bool, tok bcache.Token, st bcache.Status) {
		got = append(got, string(v))
		if !ok {
			t.Errorf("quick start: a read missed")
		}
		if tok != "" && !st.Ready() {
			t.Errorf("a member without peers is not ready: %+v", st)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(got)
}
