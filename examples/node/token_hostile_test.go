package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bcache-go/bcache"
)

// TestHostileTokenHeaders: a GET's Bcache-Token that is malformed, huge,
// or made by a member of another cluster (a write this one never holds)
// is a 400, a 400 whose answer does not echo it whole, and a 504 after
// the wait; on a PUT or DELETE the header is ignored.
func TestHostileTokenHeaders(t *testing.T) {
	c := newCache(t, bcache.Config{NodeName: "solo"})
	base := startServer(t, c, bcache.DefaultMaxValueSize)
	other := newCache(t, bcache.Config{NodeName: "elsewhere"})
	foreign, err := other.SetWithToken("k", []byte("theirs"), 0)
	if err != nil {
		t.Fatal(err)
	}
	get := func(tok, query string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/v1/keys/k"+query, nil)
		req.Header.Set(tokenHeader, tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tok := range []string{"!!!", "AAAA", strings.Repeat("A", 200<<10), string(foreign) + "A"} {
		code, body := get(tok, "")
		if code != http.StatusBadRequest || len(body) > 1024 {
			t.Errorf("token of %d bytes: %d, %d bytes of answer", len(tok), code, len(body))
		}
	}
	if code, body := get(string(foreign), "?wait=50ms"); code != http.StatusGatewayTimeout {
		t.Errorf("another cluster's token: %d %q, want 504", code, body)
	}
	for _, m := range []string{"PUT", "DELETE"} {
		req, _ := http.NewRequest(m, base+"/v1/keys/k", strings.NewReader("v"))
		req.Header.Set(tokenHeader, "!!!")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("%s with a bad token header: %d", m, resp.StatusCode)
		}
	}
}
