package evict

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

// TestReadPeersWriteOutlivesUnreadOnesPastMaxMoves: a Victim call moves
// maxMoves peers' writes read here to the small queue at most; past
// that, the next one went whatever its reads, a value this member's
// readers use evicted while peers' writes never read here were the next
// in the heap (README: those go before anything this member's readers
// use). An unread peer's write near the heap's top goes instead.
func TestReadPeersWriteOutlivesUnreadOnesPastMaxMoves(t *testing.T) {
	const n, read = 300, 2 * maxMoves
	b := newBounded(n)
	for _, k := range names("k", 0, n) {
		b.set(k, true)
	}
	for _, k := range names("k", 0, read) { // the oldest peers' writes, read here
		b.get(k)
	}
	b.set("mine", false) // past the bound
	if len(b.evicted) != 1 {
		t.Fatalf("evicted %v, want one", b.evicted)
	}
	if v, want := b.evicted[0], fmt.Sprint("k", read); v != want {
		t.Fatalf("victim %s, want %s, the oldest peer's write never read here (%s was read)", v, want, v)
	}
	for _, k := range names("k", 0, read) {
		if _, ok := b.entries[k]; !ok {
			t.Fatalf("%s, read here, was evicted", k)
		}
	}
}

// TestPeersUnreadWritesGoFirstAtLargerBounds is
// TestPeersUnreadWritesAlwaysGoFirst at bounds where one Victim call
// meets more than maxMoves peers' writes read here (its bounds of 12 at
// most never did): runs of keys received, read and written here. (At
// these bounds the heap holds maxPeek entries at most: the oldest unread
// one goes.)
func TestPeersUnreadWritesGoFirstAtLargerBounds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 400).Draw(t, "bound")
		b := newBounded(n)
		keys := 2*n + 100
		unread := map[*entry]bool{} // peers' writes never read here nor rewritten here
		for range rapid.IntRange(1, 30).Draw(t, "runs") {
			from := rapid.IntRange(0, keys-1).Draw(t, "from")
			run := rapid.IntRange(1, 2*n+100).Draw(t, "run")
			op := rapid.IntRange(0, 3).Draw(t, "op")
			every := rapid.IntRange(1, 4).Draw(t, "every")
			for i := range run {
				k := fmt.Sprint("k", (from+i)%keys)
				switch op {
				case 0, 1:
					remote := op == 1 || i%every != 0
					b.del(k) // a new value: removed and added again
					setChecked(t, b, unread, k, remote)
				case 2:
					if e, ok := b.entries[k]; ok && i%every == 0 {
						Touch(e.Use())
						delete(unread, e)
					}
				case 3:
					if e, ok := b.entries[k]; ok && i%every == 0 {
						delete(unread, e)
						b.del(k)
					}
				}
			}
		}
	})
}
