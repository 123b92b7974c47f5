package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache"
	"github.com/rs/zerolog"
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

// TestReadsWithAnUnknownParameterAreRefused: a GET takes wait alone, a
// watch prefix alone; another parameter is a 400: a watch of
// "?prefx=user:" streamed every key, 200, and a GET's "?Wait=30s" waited
// the default 5 s.
func TestReadsWithAnUnknownParameterAreRefused(t *testing.T) {
	c := newCache(t, bcache.Config{})
	if err := c.Set("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	h := newHandler(c, 1<<20, zerolog.Nop())
	serve := func(method, target string) *httptest.ResponseRecorder {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second) // a watch answered 200 ends with it
		defer cancel()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, target, nil).WithContext(ctx))
		return w
	}
	for _, target := range []string{"/v1/keys/k?Wait=30s", "/v1/keys/k?wait=1s&prefix=k", "/v1/watch?prefx=user:", "/v1/watch?prefix=user:&wait=1s"} {
		for _, method := range []string{"GET", "HEAD"} {
			if w := serve(method, target); w.Code != http.StatusBadRequest {
				t.Errorf("%s %s: %d %q; want 400", method, target, w.Code, clipped(w.Body.String()))
			}
		}
	}
	if w := serve("GET", "/v1/keys/k?wait=1s"); w.Code != http.StatusOK || w.Body.String() != "v" {
		t.Errorf("GET /v1/keys/k?wait=1s: %d %q, want 200 v", w.Code, clipped(w.Body.String()))
	}
}

// TestStatusRoutesWithAParameterAreRefused: the status routes under /v1
// take no parameter; one given is a 400, as on every other route there
// ("/v1/members?name=a" answered every member, 200, as if filtered).
// /readyz and /metrics, read by tools that may add their own, take any.
func TestStatusRoutesWithAParameterAreRefused(t *testing.T) {
	c := newCache(t, bcache.Config{})
	h := newHandler(c, 1<<20, zerolog.Nop())
	serve := func(target string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		return w
	}
	for _, route := range []string{"/v1/members", "/v1/stats", "/v1/status"} {
		for _, query := range []string{"?name=a", "?pretty", "?x=1%"} {
			if w := serve(route + query); w.Code != http.StatusBadRequest {
				t.Errorf("GET %s%s: %d %q; want 400", route, query, w.Code, clipped(w.Body.String()))
			}
		}
		if w := serve(route); w.Code != http.StatusOK {
			t.Errorf("GET %s: %d %q; want 200", route, w.Code, clipped(w.Body.String()))
		}
	}
	if w := serve("/metrics?x=1"); w.Code != http.StatusOK {
		t.Errorf("GET /metrics?x=1: %d; want 200", w.Code)
	}
}
