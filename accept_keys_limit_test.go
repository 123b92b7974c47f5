package bcache

import (
	"errors"
	"strings"
	"testing"
)

// TestMoreKeysThanMetadataCanNameAreAConfigError: a member names each key
// it reads in its metadata, which holds the ids of 60 keys; with more,
// New took the config and the member named none, so that the others took
// any keys of it: one holding the old key alone (and 60 others) was
// listed alive by a cluster on the new key, never refused (KeyRefusals 0),
// and it said nothing of whether it held its cluster's state. 60 distinct
// keys (repeats, and SecretKey among AcceptKeys, counted once) start; 61
// are an error naming AcceptKeys.
func TestMoreKeysThanMetadataCanNameAreAConfigError(t *testing.T) {
	key := func(i int) []byte { k := make([]byte, 16); k[0], k[1] = 0xa5, byte(i); return k }
	secret := key(0)
	accept := [][]byte{secret}
	for i := 1; i < 60; i++ {
		accept = append(accept, key(i), key(i))
	}
	c, err := New(Config{BindAddr: "127.0.0.1:0", Timings: FastTimings(), SecretKey: secret, AcceptKeys: accept})
	if err != nil {
		t.Fatalf("60 distinct keys: %v", err)
	}
	mustClose(t, c)
	accept = append(accept, key(60))
	c, err = New(Config{BindAddr: "127.0.0.1:0", Timings: FastTimings(), SecretKey: secret, AcceptKeys: accept})
	if err == nil {
		c.Close()
		t.Fatal("61 distinct keys: started, naming none of them to its peers")
	}
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "AcceptKeys") {
		t.Fatalf("61 distinct keys: %v, want an ErrConfig naming AcceptKeys", err)
	}
}
