package transport

import (
	"fmt"
	"testing"
)

// TestBroadcastTreeCoversEveryoneOnce walks the broadcast tree of every
// origin in clusters of many sizes and fan-outs: every other member must be
// reached exactly once, nobody may send more than fanout copies, and the
// depth must be ceil(log_fanout(n)).
func TestBroadcastTreeCoversEveryoneOnce(t *testing.T) {
	for _, n := range []int{1, 2, 3, 9, 10, 64, 100, 1000} {
		for _, fanout := range []int{1, 2, 8} {
			if n == 1000 && fanout == 1 {
				continue // a 1000-hop chain: correct, but slow to walk for every origin
			}
			t.Run(fmt.Sprintf("n=%d/fanout=%d", n, fanout), func(t *testing.T) {
				names := make([]string, n)
				for i := range names {
					names[i] = fmt.Sprintf("member-%d", i)
				}
				r := newRing(names)
				for _, origin := range names {
					checkTree(t, r, origin, fanout, n)
				}
			})
		}
	}
}

func checkTree(t *testing.T, r *ring, origin string, fanout, n int) {
	t.Helper()
	got := map[string]int{origin: 1}
	level := []string{origin}
	depth := 0
	for len(level) > 0 {
		var next []string
		for _, m := range level {
			kids := r.children(nil, origin, m, fanout)
			if len(kids) > fanout {
				t.Fatalf("origin %s: %s sends %d copies, fanout %d", origin, m, len(kids), fanout)
			}
			for _, k := range kids {
				got[k]++
				next = append(next, k)
			}
		}
		if len(next) > 0 {
			depth++
		}
		level = next
	}
	for _, m := range r.names {
		if got[m] != 1 {
			t.Fatalf("origin %s: %s received %d copies", origin, m, got[m])
		}
	}
	want, reach := 0, 1
	for covered := 1; covered < n; want++ {
		reach *= fanout
		covered += reach
	}
	if depth != want {
		t.Fatalf("origin %s: depth %d, want %d", origin, depth, want)
	}
}

func TestRingAfterSkipsSelf(t *testing.T) {
	r := newRing([]string{"a", "b", "c"})
	seen := map[string]bool{}
	for i := range 4 {
		p := r.after("a", i)
		if p == "a" || p == "" {
			t.Fatalf("after(a, %d) = %q", i, p)
		}
		seen[p] = true
	}
	if len(seen) != 2 {
		t.Fatalf("after cycles through %v, want b and c", seen)
	}
	if p := newRing([]string{"a"}).after("a", 0); p != "" {
		t.Fatalf("after on a lone member = %q, want none", p)
	}
}
