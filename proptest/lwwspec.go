package proptest

import (
	"fmt"
	"maps"
	"slices"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
	"pgregory.net/rapid"
)

// StoreSpec is bcache's production replica (StoreReplica, configured by
// cfg) as a Spec, with LWWModel as its model: the LWW map as one data type
// among others, for CheckType and ExploreType. Its operations are set (a
// value drawn from a few), delete and get. The harness of Check judges the
// same replica much more deeply (collection, absences, snapshots, an
// adversary); this one lets the exhaustive search run on it. The model
// knows no eviction: cfg's bounds (and Vary) are left out.
func StoreSpec(cfg StoreConfig) Spec {
	cfg.Vary, cfg.MaxKeys, cfg.MaxBytes, cfg.MaxValueSize = nil, 0, 0, 0
	return Spec{
		New: func(name string, inc int, phys func() int64) (Object, error) {
			var i int
			if _, err := fmt.Sscanf(name, "n%d", &i); err != nil {
				return nil, fmt.Errorf("proptest: member name %q", name)
			}
			r, err := NewStoreReplica(name, crdt.NodeID(inc<<16|i+1), phys, cfg)
			if err != nil {
				return nil, err
			}
			return storeObject{r}, nil
		},
		Ops: []OpKind{
			{Name: "set", Arg: func(t *rapid.T) any { return rapid.SampledFrom([]string{"x", "y", "z"}).Draw(t, "value") }},
			{Name: "delete"},
			{Name: "get"},
		},
		Model:    func() Model { return &LWWModel{} },
		Describe: DescribeFrame,
	}
}

// storeObject adapts a StoreReplica to Object.
type storeObject struct{ r *StoreReplica }

func (o storeObject) Do(op Op) (any, []transport.Envelope) {
	switch op.Name {
	case "set":
		return o.r.Set(op.Key, []byte(op.Arg.(string)), 0)
	case "delete":
		return o.r.Delete(op.Key)
	case "get":
		v, ok := o.r.Get(op.Key)
		if !ok {
			return nil, nil
		}
		return string(v), nil
	}
	panic("store: no operation " + op.Name)
}

func (o storeObject) Receive(from string, payload []byte) []transport.Envelope {
	return o.r.Receive(from, payload)
}
func (o storeObject) Tick() []transport.Envelope            { return o.r.Tick() }
func (o storeObject) Sync(peer string) []transport.Envelope { return o.r.StartSession(peer) }
func (o storeObject) SetMembers(names []string)             { o.r.SetMembers(names) }

// State is the versions the replica holds, sorted: members agree on them.
func (o storeObject) State() any { return Versions(o.r) }

// LWWModel is the specification of a last-writer-wins map without
// collection or expiry: every key holds its newest write (by timestamp),
// or, if the member that made it crashed before anyone received it, a
// newer write than every surviving one or the newest surviving one; and a
// read on a member serves its own newest write of a key unless a newer
// write of the key by anyone (which the member may have received) exists.
type LWWModel struct {
	writes  map[string][]lwwWrite
	crashed map[string]bool
}

type lwwWrite struct {
	rec crdt.Record
	by  string
}

// Did implements Model.
func (m *LWWModel) Did(member string, inc int, op Op, result any) error {
	if m.writes == nil {
		m.writes, m.crashed = map[string][]lwwWrite{}, map[string]bool{}
	}
	by := fmt.Sprintf("%s#%d", member, inc)
	switch op.Name {
	case "set", "delete":
		m.writes[op.Key] = append(m.writes[op.Key], lwwWrite{rec: result.(crdt.Record), by: by})
	case "get":
		var own, newest *lwwWrite
		for i, w := range m.writes[op.Key] {
			if w.by == by && (own == nil || own.rec.Time.Less(w.rec.Time)) {
				own = &m.writes[op.Key][i]
			}
			if newest == nil || newest.rec.Time.Less(w.rec.Time) {
				newest = &m.writes[op.Key][i]
			}
		}
		if result != nil && !m.wrote(op.Key, result.(string)) {
			return fmt.Errorf("served %q for %q, which nobody wrote", result, op.Key)
		}
		if own != nil && own == newest { // nothing newer exists: the member must serve its own write
			switch {
			case own.rec.Tombstone && result != nil:
				return fmt.Errorf("served %q for %q after its own delete, the newest write", result, op.Key)
			case !own.rec.Tombstone && result != string(own.rec.Value):
				return fmt.Errorf("served %v for %q, not its own newest write %v", result, op.Key, own.rec)
			}
		}
	}
	return nil
}

func (m *LWWModel) wrote(key, value string) bool {
	for _, w := range m.writes[key] {
		if !w.rec.Tombstone && string(w.rec.Value) == value {
			return true
		}
	}
	return false
}

// Crashed implements Model.
func (m *LWWModel) Crashed(member string, inc int) {
	if m.crashed == nil {
		m.writes, m.crashed = map[string][]lwwWrite{}, map[string]bool{}
	}
	m.crashed[fmt.Sprintf("%s#%d", member, inc)] = true
}

// Check implements Model: state is the sorted versions every member holds.
func (m *LWWModel) Check(state any) error {
	held := map[string]crdt.Version{}
	for _, v := range state.([]crdt.Version) {
		held[v.Key] = v
	}
	keys := slices.Collect(maps.Keys(held)) // held keys nobody wrote too, and in order: a failure says the same at each replay
	for key := range m.writes {
		if _, ok := held[key]; !ok {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	for _, key := range keys {
		ws := m.writes[key]
		var survivor *crdt.Version // the newest write no crash can have lost
		for _, w := range ws {
			if v := w.rec.Version(); !m.crashed[w.by] && (survivor == nil || survivor.Compare(v) < 0) {
				survivor = &v
			}
		}
		v, ok := held[key]
		switch {
		case !ok && survivor != nil:
			return fmt.Errorf("%q holds nothing; its newest surviving write is %v", key, *survivor)
		case !ok:
			continue
		case survivor != nil && v.Compare(*survivor) < 0:
			return fmt.Errorf("%q holds %v, older than its surviving write %v", key, v, *survivor)
		}
		written := false
		for _, w := range ws {
			written = written || w.rec.Version() == v
		}
		if !written {
			return fmt.Errorf("%q holds %v, which nobody wrote", key, v)
		}
		if survivor != nil && v != *survivor && !m.crashed[byOf(ws, v)] {
			return fmt.Errorf("%q holds %v, not its newest write %v", key, v, *survivor)
		}
	}
	return nil
}

// byOf returns who wrote version v among ws.
func byOf(ws []lwwWrite, v crdt.Version) string {
	for _, w := range ws {
		if w.rec.Version() == v {
			return w.by
		}
	}
	return ""
}
