package proptest

import (
	"testing"
	"time"
)

// fuzzMember is a production replica, n0, holding a few records, in a
// cluster view of n0, n1 and the adversary.
func fuzzMember(t testing.TB) *StoreReplica {
	r, err := NewStoreReplica("n0", 1, func() int64 { return start }, DefaultStoreConfig())
	if err != nil {
		t.Fatal(err)
	}
	r.SetMembers([]string{"n0", "n1", adversaryName})
	for i, k := range DefaultKeys() {
		if i%3 == 2 {
			r.Delete(k)
		} else {
			r.Set(k, []byte(k), 0)
		}
	}
	return r
}

// seedFrames returns frames a small cluster sends while it writes, syncs
// and repairs: every kind of message, well formed.
func seedFrames(t testing.TB) [][]byte {
	c, err := NewCluster(2, StoreFactory(DefaultStoreConfig()), start)
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	take := func() {
		for _, p := range c.Net.InFlight() {
			frames = append(frames, p.Payload)
		}
	}
	c.Partition([]string{"n0"}, []string{"n1"})
	for i, k := range DefaultKeys() {
		c.Set(i%2, k, []byte(k), 0)
	}
	c.Heal()
	c.Advance(time.Second)
	c.Tick()
	for c.Net.Len() > 0 {
		take()
		if _, err := c.Deliver(0); err != nil {
			t.Fatal(err)
		}
	}
	return frames
}

// FuzzMemberReceive feeds arbitrary frames, from a member or from the
// adversary, to the receive path of a whole production member: the
// protocol node over the real store. It must never panic, and whatever it
// applied must leave the store consistent: its incremental digest equals
// one built afresh from its records, and it serves exactly its live values.
func FuzzMemberReceive(f *testing.F) {
	for _, frame := range seedFrames(f) {
		f.Add(false, frame)
		f.Add(true, frame)
	}
	f.Fuzz(func(t *testing.T, fromAdversary bool, frame []byte) {
		r := fuzzMember(t)
		from := "n1"
		if fromAdversary {
			from = adversaryName
		}
		r.Receive(from, frame)
		r.Receive(from, frame) // and once more, as a duplicate
		checkStore(t, r)
	})
}

// checkStore checks a replica's store against its records: the digest it
// keeps up to date on every change equals the digest of a fresh store
// given the same records, and Get serves exactly the live ones.
func checkStore(t *testing.T, r *StoreReplica) {
	t.Helper()
	fresh, err := NewStoreReplica("check", 2, r.phys, DefaultStoreConfig())
	if err != nil {
		t.Fatal(err)
	}
	recs := r.Records()
	for _, rec := range recs {
		fresh.s.Apply(rec, false, r.phys())
	}
	if got, want := r.s.AppendHashes(nil, 0, nil), fresh.s.AppendHashes(nil, 0, nil); got[0] != want[0] {
		t.Fatalf("digest root %x, but its %d records make %x", got[0], len(recs), want[0])
	}
	for _, rec := range recs {
		v, ok := r.Get(rec.Key)
		if live := rec.Live(r.phys()); ok != live || (ok && string(v) != string(rec.Value)) {
			t.Fatalf("%q held as %+v is served as %q, %v", rec.Key, rec, v, ok)
		}
	}
}
