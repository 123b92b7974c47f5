package crdt

import (
	"strings"
	"testing"
	"time"
)

func TestRecordString(t *testing.T) {
	ts := Timestamp{Wall: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano(), Logical: 1, Node: 0xa}
	for _, tc := range []struct {
		r    Record
		want string
	}{
		{Record{Key: "k", Value: []byte("v"), Time: ts}, `"k" = "v" at 03:04:05.000000000+1@a`},
		{Record{Key: "k", Time: ts, Tombstone: true, Expires: 5}, `"k" deleted at 03:04:05.000000000+1@a`},
		{Record{Key: "k", Value: []byte("v"), Time: ts, Evicted: true}, `"k" evicted at 03:04:05.000000000+1@a`},
		{Record{Key: "k", Value: make([]byte, 40), Time: ts, Expires: ts.Wall + int64(time.Second)},
			`"k" = "` + strings.Repeat(`\x00`, 32) + `"... (40 bytes) at 03:04:05.000000000+1@a, expires 2026-01-02 03:04:06.000000000`},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
	if got, want := (Version{Key: "k", Time: ts, Tombstone: true}).String(), `"k" deleted at 03:04:05.000000000+1@a`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
