package wire

import (
	"slices"
	"testing"
	"unsafe"

	"github.com/bcache-go/bcache/crdt"

	"pgregory.net/rapid"
)

// Two codecs sharing an Interner decode a frame to the same message a
// codec of its own decodes, not aliasing the frame, and the second
// decode's keys and values are the first's, not copies.
func TestInternedDecodeSharesKeysAndValues(t *testing.T) {
	for k := KindDelta; k <= KindDirect; k++ {
		t.Run(k.String(), func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				m := drawMessage(t, k)
				frame, err := NewCodec(Limits{}).Encode(nil, m)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				in := NewInterner()
				a, b := NewCodec(Limits{}), NewCodec(Limits{})
				a.Intern(in)
				b.Intern(in)
				first, err := a.Decode(slices.Clone(frame))
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				again := slices.Clone(frame)
				second, err := b.Decode(again)
				if err != nil {
					t.Fatalf("Decode again: %v", err)
				}
				clear(again) // neither may alias a frame
				if want := normalize(m); !equalMessages(first, want) || !equalMessages(second, want) {
					t.Fatalf("interned decodes: got %#v and %#v, want %#v", first, second, want)
				}
				firsts, seconds := recordsOf(first), recordsOf(second)
				for i, r := range seconds {
					f := firsts[i]
					if len(r.Key) > 0 && unsafe.StringData(r.Key) != unsafe.StringData(f.Key) {
						t.Fatalf("record %d: key %q decoded twice into two copies", i, r.Key)
					}
					if len(r.Value) > 0 && &r.Value[0] != &f.Value[0] {
						t.Fatalf("record %d: value decoded twice into two copies", i)
					}
				}
			})
		})
	}
}

// recordsOf returns the records a message carries, if any.
func recordsOf(m Message) []crdt.Record {
	switch m := m.(type) {
	case *Delta:
		return m.Records
	case *Repair:
		return m.Records
	case *Reject:
		return m.Records
	}
	return nil
}
