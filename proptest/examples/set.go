package examples

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/bcache-go/bcache/proptest"
	"github.com/bcache-go/bcache/transport"
)

// Set is an add-wins observed-remove set of keys: every add creates a tag
// of its own ("n1#0.3": member, incarnation, number), a remove removes the
// tags of the key it has seen, and a key is in the set while one of its
// tags is not removed. So an add concurrent with a remove wins. The state
// only grows (tags and removed tags, merged by union); after each
// operation the replica sends what changed to every member it sees, and
// Sync sends everything.
type Set struct {
	name    string
	prefix  string
	seq     int
	members []string
	state   SetState
	// removeUnseen is the broken variant's mistake: a remove received
	// removes every tag of its key, also those its sender had not seen.
	removeUnseen bool
}

// SetState is a Set's state: per key, its tags, and the removed tags.
type SetState struct {
	Tags    map[string]map[string]bool
	Removed map[string]bool
}

// setMessage is a Set's frame: tags added, tags removed, and, in the
// broken variant, the keys of the removes.
type setMessage struct {
	Tags        map[string][]string `json:"tags,omitempty"`
	Removed     []string            `json:"removed,omitempty"`
	RemovedKeys []string            `json:"removed_keys,omitempty"`
}

// SetOps are the operations of a Set: add (its result: the new tag),
// remove (its result: the tags it removed, sorted) and contains (its
// result: whether the key is in the set).
func SetOps() []proptest.OpKind {
	return []proptest.OpKind{{Name: "add"}, {Name: "remove"}, {Name: "contains"}}
}

// NewSet returns member name's Set in incarnation inc.
func NewSet(name string, inc int, _ func() int64) (proptest.Object, error) {
	return newSet(name, inc), nil
}

func newSet(name string, inc int) *Set {
	return &Set{name: name, prefix: fmt.Sprintf("%s#%d", name, inc),
		state: SetState{Tags: map[string]map[string]bool{}, Removed: map[string]bool{}}}
}

// live returns key's tags not removed, sorted.
func (s *Set) live(key string) []string {
	var tags []string
	for tag := range s.state.Tags[key] {
		if !s.state.Removed[tag] {
			tags = append(tags, tag)
		}
	}
	slices.Sort(tags)
	return tags
}

// Do implements proptest.Object.
func (s *Set) Do(op proptest.Op) (any, []transport.Envelope) {
	switch op.Name {
	case "contains":
		return len(s.live(op.Key)) > 0, nil
	case "add":
		s.seq++
		tag := fmt.Sprintf("%s.%d", s.prefix, s.seq)
		s.merge(setMessage{Tags: map[string][]string{op.Key: {tag}}})
		return tag, s.broadcast(setMessage{Tags: map[string][]string{op.Key: {tag}}})
	case "remove":
		tags := s.live(op.Key)
		m := setMessage{Removed: tags}
		if s.removeUnseen {
			m.RemovedKeys = []string{op.Key}
		}
		s.merge(m)
		return tags, s.broadcast(m)
	}
	panic("set: no operation " + op.Name)
}

// merge adds what m carries to the state.
func (s *Set) merge(m setMessage) {
	for key, tags := range m.Tags {
		if s.state.Tags[key] == nil {
			s.state.Tags[key] = map[string]bool{}
		}
		for _, tag := range tags {
			s.state.Tags[key][tag] = true
		}
	}
	for _, tag := range m.Removed {
		s.state.Removed[tag] = true
	}
	for _, key := range m.RemovedKeys {
		for tag := range s.state.Tags[key] {
			s.state.Removed[tag] = true
		}
	}
}

func (s *Set) broadcast(m setMessage) []transport.Envelope {
	b, _ := json.Marshal(m)
	var out []transport.Envelope
	for _, to := range s.members {
		if to != s.name {
			out = append(out, transport.Envelope{To: to, Payload: b})
		}
	}
	return out
}

// Receive implements proptest.Object: it merges what a member sent.
func (s *Set) Receive(_ string, payload []byte) []transport.Envelope {
	var m setMessage
	if json.Unmarshal(payload, &m) == nil {
		s.merge(m)
	}
	return nil
}

// Tick implements proptest.Object: a Set has no timers.
func (s *Set) Tick() []transport.Envelope { return nil }

// Sync implements proptest.Object: it sends peer everything it holds.
func (s *Set) Sync(peer string) []transport.Envelope {
	m := setMessage{Tags: map[string][]string{}}
	for key, tags := range s.state.Tags {
		m.Tags[key] = slices.Sorted(maps.Keys(tags))
	}
	m.Removed = slices.Sorted(maps.Keys(s.state.Removed))
	b, _ := json.Marshal(m)
	return []transport.Envelope{{To: peer, Payload: b}}
}

// SetMembers implements proptest.Object.
func (s *Set) SetMembers(names []string) { s.members = slices.Clone(names) }

// State implements proptest.Object: a copy of the tags and removed tags.
func (s *Set) State() any {
	tags := make(map[string]map[string]bool, len(s.state.Tags))
	for k, v := range s.state.Tags {
		tags[k] = maps.Clone(v)
	}
	return SetState{Tags: tags, Removed: maps.Clone(s.state.Removed)}
}

// SetModel is the specification of an add-wins set, tag by tag: in the
// converged state a tag is removed exactly when some remove saw it (a
// remove by an incarnation that crashed may be lost with it), and a tag
// is there when its add survived (an add by an incarnation that crashed
// may be lost). Reads are judged too: contains is true only for a key
// someone added, and never false for a key whose add, made on the same
// member, no remove has seen.
type SetModel struct {
	adds    map[string]setAdd   // by tag
	seenBy  map[string][]string // tag -> incarnations of the removes that saw it
	crashed map[string]bool     // incarnations
}

type setAdd struct {
	key, by string
}

// NewSetModel returns an empty SetModel.
func NewSetModel() proptest.Model {
	return &SetModel{adds: map[string]setAdd{}, seenBy: map[string][]string{}, crashed: map[string]bool{}}
}

// Did implements proptest.Model.
func (m *SetModel) Did(member string, inc int, op proptest.Op, result any) error {
	by := fmt.Sprintf("%s#%d", member, inc)
	switch op.Name {
	case "add":
		// A tag is one add's alone: one made again (a member's tag per
		// key, say) lets a remove that saw the first take the second too
		// (found by review: such a set passed).
		if _, again := m.adds[result.(string)]; again {
			return fmt.Errorf("the add of %q made tag %s, which an earlier add made", op.Key, result)
		}
		m.adds[result.(string)] = setAdd{key: op.Key, by: by}
	case "remove":
		for _, tag := range result.([]string) {
			if a, ok := m.adds[tag]; !ok || a.key != op.Key {
				return fmt.Errorf("the remove saw tag %s, which no add of %q made", tag, op.Key)
			}
			m.seenBy[tag] = append(m.seenBy[tag], by)
		}
	case "contains":
		has := result.(bool)
		for tag, a := range m.adds {
			if !has && a.key == op.Key && a.by == by && len(m.seenBy[tag]) == 0 {
				return fmt.Errorf("%q is not in the set, though this member added it (%s) and no remove saw that", op.Key, tag)
			}
			// In the set here only by an add this member's removes have
			// not seen: one they saw is gone from its state for good (a
			// set whose contains ignored removes passed, found by review).
			if has && a.key == op.Key && !slices.Contains(m.seenBy[tag], by) {
				return nil
			}
		}
		if has {
			return fmt.Errorf("%q is in the set, though nobody added it, or every add of it was seen by a remove of this member", op.Key)
		}
	}
	return nil
}

// DidOn implements proptest.StateModel: contains must also say whether
// the member held a live tag of the key, and a remove must remove the
// live tags it held (a set whose contains ignored every add but its own
// passed Did: found by review).
func (m *SetModel) DidOn(member string, inc int, op proptest.Op, result any, before any) error {
	held := &Set{state: before.(SetState)}
	switch op.Name {
	case "contains":
		if want := len(held.live(op.Key)) > 0; result.(bool) != want {
			return fmt.Errorf("%s says contains %q is %v, but holds live tags %v", member, op.Key, result, held.live(op.Key))
		}
	case "remove":
		if want := held.live(op.Key); !slices.Equal(result.([]string), want) {
			return fmt.Errorf("%s's remove of %q saw tags %v, but held live tags %v", member, op.Key, result, want)
		}
	}
	return m.Did(member, inc, op, result)
}

// Crashed implements proptest.Model.
func (m *SetModel) Crashed(member string, inc int) {
	m.crashed[fmt.Sprintf("%s#%d", member, inc)] = true
}

// Check implements proptest.Model. It looks at keys and tags in order:
// a failure must say the same each time its run is replayed, or rapid
// cannot shrink it (found by review).
func (m *SetModel) Check(state any) error {
	s := state.(SetState)
	held := map[string]string{} // tag -> key
	for _, key := range slices.Sorted(maps.Keys(s.Tags)) {
		tags := s.Tags[key]
		for _, tag := range slices.Sorted(maps.Keys(tags)) {
			if a, ok := m.adds[tag]; !ok || a.key != key {
				return fmt.Errorf("%q holds tag %s, which no add of it made", key, tag)
			}
			held[tag] = key
		}
	}
	for _, tag := range slices.Sorted(maps.Keys(m.adds)) {
		a := m.adds[tag]
		key, ok := held[tag]
		if !ok {
			if !m.crashed[a.by] {
				return fmt.Errorf("the add of %q by %s (tag %s) is lost", a.key, a.by, tag)
			}
			continue
		}
		removed, seen := s.Removed[tag], m.seenBy[tag]
		switch {
		case removed && len(seen) == 0:
			return fmt.Errorf("%q lost tag %s, which no remove saw", key, tag)
		case !removed && slices.ContainsFunc(seen, func(by string) bool { return !m.crashed[by] }):
			return fmt.Errorf("%q kept tag %s, which a remove by %v saw", key, tag, seen)
		}
	}
	return nil
}
