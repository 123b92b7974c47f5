package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bcache-go/bcache"
)

// TestPutWithAnUnknownParameterIsRefused: a PUT's parameter other than
// ttl is a 400, the value not stored: a ttl misspelt or in another case
// ("?TTL=10s", "?tll=10s") was ignored, and the value stored with no
// expiry at all, 204, as a ttl dropped by the query's parse was.
func TestPutWithAnUnknownParameterIsRefused(t *testing.T) {
	c := newCache(t, bcache.Config{})
	base := startServer(t, c, bcache.DefaultMaxValueSize)
	for key, query := range map[string]string{"upper": "TTL=10s", "typo": "tll=10s", "space": "ttl%20=10s", "beside": "ttl=10s&wait=1s"} {
		code, body, _ := do(t, "PUT", base+"/v1/keys/"+key+"?"+query, "v")
		if code != http.StatusBadRequest {
			t.Errorf("PUT ?%s: %d %q; want 400", query, code, strings.TrimSpace(body))
		}
		if _, ok := c.Get(key); ok {
			t.Errorf("PUT ?%s: stored", query)
		}
	}
	expect(t, "PUT", base+"/v1/keys/fine?ttl=10s", "v", http.StatusNoContent)
	expect(t, "PUT", base+"/v1/keys/plain", "v", http.StatusNoContent)
}

// TestDeleteWithAParameterIsRefused: a DELETE takes no parameter; one
// given is a 400, the key kept: "DELETE /v1/keys/?prefix=user:" deleted
// the empty key and answered 204, as if the keys under user: were gone.
func TestDeleteWithAParameterIsRefused(t *testing.T) {
	c := newCache(t, bcache.Config{})
	base := startServer(t, c, bcache.DefaultMaxValueSize)
	for _, key := range []string{"", "user:1"} {
		if err := c.Set(key, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	code, body, resp := do(t, "DELETE", base+"/v1/keys/?prefix=user:", "")
	if code != http.StatusBadRequest || resp.Header.Get(tokenHeader) != "" {
		t.Errorf("DELETE /v1/keys/?prefix=user:: %d %q (token %q); want 400", code, strings.TrimSpace(body), resp.Header.Get(tokenHeader))
	}
	if _, ok := c.Get(""); !ok {
		t.Errorf("DELETE /v1/keys/?prefix=user: deleted the empty key")
	}
	expect(t, "DELETE", base+"/v1/keys/user:1", "", http.StatusNoContent)
}
