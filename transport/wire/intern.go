package wire

import "sync"

// An Interner lets the codecs of many members in one process share the
// keys and values they decode: a key or value equal to one decoded before
// is the earlier one, not a new copy. Decoded records are never modified
// (the replicas keep their values as they are), so sharing them is safe.
// It is for simulations (proptest's scale simulator runs a thousand
// members, each holding every record, in one process); a member of a real
// cluster has no one to share with. It holds everything it has seen until
// it is dropped. Safe for concurrent use.
type Interner struct {
	mu   sync.Mutex
	strs map[string]string
	bins map[string][]byte
}

// NewInterner returns an empty Interner.
func NewInterner() *Interner {
	return &Interner{strs: map[string]string{}, bins: map[string][]byte{}}
}

func (in *Interner) str(b []byte) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if s, ok := in.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	in.strs[s] = s
	return s
}

func (in *Interner) bin(b []byte) []byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.bins[string(b)]; ok {
		return v
	}
	v := append(make([]byte, 0, len(b)), b...)
	in.bins[string(v)] = v
	return v
}

// Intern makes c share what it decodes through in (nil: copy each key and
// value, the default).
func (c *Codec) Intern(in *Interner) { c.intern = in }
