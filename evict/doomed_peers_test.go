package evict

import (
	"testing"

	"pgregory.net/rapid"
)

// TestReadValueOutlivesPeersWritesWhenAReturningKeyWins: a key that comes
// back and wins the main queue's next victim's place must not make that
// victim, a value written and read here, go before a peer's write never
// read here (README: "Values written by other members and never read here
// are evicted before anything this member's readers use"). The victim was
// doomed and the doomed went before the peers' writes.
func TestReadValueOutlivesPeersWritesWhenAReturningKeyWins(t *testing.T) {
	b := newBounded(10)
	for range 3 { // "back" written and deleted: the sketch counts it three times
		b.set("back", false)
		b.del("back")
	}
	local := readTwice(b, names("local", 0, 9))
	b.set("x", false)
	b.set("y", false) // over the bound: the read values go to the main queue, x goes
	b.del("y")
	if b.p.main.len() != 9 {
		t.Fatalf("main queue holds %d, want the 9 read values", b.p.main.len())
	}
	b.set("peer", true) // a peer's write, never read here: at the bound
	b.set("back", false)
	if _, ok := b.entries["peer"]; ok {
		for _, k := range local {
			if _, ok := b.entries[k]; !ok {
				t.Fatalf("%s, written and read here, was evicted before the peer's write never read here (evicted %v)", k, b.evicted)
			}
		}
	}
}

// TestPeersUnreadWritesAlwaysGoFirst: under any sequence of writes here
// (new keys and keys back), peers' writes, reads and deletes at a bound,
// no victim is anything but a peer's write never read here while such a
// write is resident, and those go oldest write first.
func TestPeersUnreadWritesAlwaysGoFirst(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 12).Draw(t, "bound")
		b := newBounded(n)
		unread := map[*entry]bool{} // peers' writes never read here nor rewritten here
		key := rapid.SampledFrom(names("k", 0, 30))
		for range rapid.IntRange(1, 400).Draw(t, "steps") {
			k := key.Draw(t, "key")
			switch rapid.IntRange(0, 4).Draw(t, "op") {
			case 0, 1:
				remote := rapid.Bool().Draw(t, "remote")
				if _, ok := b.entries[k]; ok {
					b.del(k) // a new value: removed and added again, as a store's delete then write
				}
				setChecked(t, b, unread, k, remote)
			case 2:
				if e, ok := b.entries[k]; ok {
					Touch(e.Use())
					delete(unread, e)
				}
			case 3, 4:
				if e, ok := b.entries[k]; ok {
					delete(unread, e)
					b.del(k)
				}
			}
		}
	})
}

// setChecked writes k into b, as a peer's write if remote, and fails if
// a victim it made was anything but a peer's write never read here while
// one of those is resident (unread, kept up to date), or one of those
// went before an older one.
func setChecked(t interface{ Fatalf(string, ...any) }, b *bounded, unread map[*entry]bool, k string, remote bool) {
	b.evicted = b.evicted[:0]
	before := map[string]*entry{}
	for name, e := range b.entries {
		before[name] = e
	}
	b.set(k, remote)
	if e := b.entries[k]; remote && e != nil {
		unread[e] = true
	}
	for _, v := range b.evicted {
		e := before[v]
		if e == nil {
			e = b.entries[v]
		}
		if e == nil { // the new entry itself
			continue
		}
		if !unread[e] {
			for o := range unread {
				if b.entries[o.name] == o {
					t.Fatalf("%s evicted (read or written here) while the peer's write %s, never read here, is resident", v, o.name)
				}
			}
		} else {
			for o := range unread {
				if b.entries[o.name] == o && o.written < e.written {
					t.Fatalf("peer's write %s (written %d) evicted before %s (written %d)", v, e.written, o.name, o.written)
				}
			}
		}
		delete(unread, e)
	}
}
