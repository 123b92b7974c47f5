// Package clusterfill holds the rules of bcache's cluster-wide fills,
// shared by a Cache and by the property harness that checks them: which
// member owns a key, what a request and an answer carry, what an owner
// answers, and what a member that asked does with the answer and after a
// silence. The waiting is not here: a Cache waits with goroutines and
// timers over memberlist, the harness with its own clock and simulated
// network, and both call these rules at the same points.
package clusterfill

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// Owner returns the member that fills key, from this member's view: self
// and the members it sees (which may include self). It is the member
// whose name, hashed with the key, ranks highest (rendezvous hashing: a
// member that leaves moves only its own keys); members that see the same
// members agree on it.
func Owner(key, self string, members []string) string {
	best, bestScore := self, score(self, key)
	for _, m := range members {
		if s := score(m, key); s > bestScore || (s == bestScore && cmp.Less(m, best)) {
			best, bestScore = m, s
		}
	}
	return best
}

func score(member, key string) uint64 { return crdt.HashKey(member + "\x00" + key) }

// The payloads of a call: a request is its kind and the key (which may be
// empty); an answer is Value and a record, Error and the filler's error,
// or NotHeld. An Error's text starts with a tag, "#" and why (a Failure)
// and a space: releases before the tag read it as part of the text (an
// answer of another kind, they took for none, and ran the filler again:
// found by review); an Error without it is theirs.
const (
	FillRequest  = 1 // fill the key, as its owner
	FetchRequest = 2 // the record held for the key (GetAfter's pull)
	// MarksRequest asks for the member's watermarks, with no key (a
	// member synced for the first time: see store.OfferMarks). A member
	// of a release before it answers NotHeld, and counts the request
	// among the bad ones.
	MarksRequest = 3

	answerValue   = 1
	answerError   = 2
	answerNotHeld = 3
	answerMarks   = 4
)

// Failure is why an owner's fill failed, as its answer carries it, so that
// the asker's caller gets the error it would get from a fill of its own.
type Failure byte

const (
	Failed   Failure = iota + 1 // the filler returned an error
	TimedOut                    // it ran past the fill timeout
	Panicked                    // it panicked
	TooLarge                    // its value was over the owner's bounds
)

// A FailedError is an owner's failed fill, as Take returns it: why, and
// the owner's error text.
type FailedError struct {
	Why  Failure
	Text string
}

func (e *FailedError) Error() string { return e.Text }

// Request returns a request payload of kind for key.
func Request(kind byte, key string) []byte { return append([]byte{kind}, key...) }

// NotHeld is the answer of a member that holds no live record of the key,
// or cannot serve yet: the asker asks elsewhere.
func NotHeld() []byte { return []byte{answerNotHeld} }

// Member is what serving and taking answers need of the member.
type Member interface {
	// Lookup returns the record held for key, whatever its state.
	Lookup(key string) (crdt.Record, bool)
	// Receive applies rec as a record received from a peer: through the
	// clock's drift check, and only if it is newer than what is held (or
	// of the version held, its value evicted there). It returns the value
	// served for rec's key then, if any: the value held, or rec's own if
	// the member holds rec's version without its value (evicted, and
	// perhaps evicted again as it was put back: a member that had evicted
	// the key missed it, and filled it again, found by review).
	Receive(rec crdt.Record) ([]byte, bool)
}

// goner is a Member that can say, of a key it holds no record of, below
// what every write of it is dead or lost there (store.Store.Gone): it
// answers a fetch of such a key with that tombstone, of node 0, rather
// than NotHeld.
type goner interface {
	Gone(key string) (crdt.Record, bool)
}

// Served returns the value a member serves for rec's key after receiving
// rec, an answer: the value held (held, if ok) if live at now, or rec's
// own if the member holds rec's very version (time and expiry) without
// its value (evicted) and taken says the stub stands for rec's value:
// the member took rec (applied it, or put its value back on the stub,
// evicted again since) or cannot hold its value (over its bounds); else
// none. A stub that refused rec's value (it stands for another value of
// the version, which every map that gets both keeps: a forged tie, see
// lww.Map.Refill) serves none: it served the value its store refused, at
// every miss (found by review,
// TestAnOwnersOtherValueOfAnEvictedVersionIsNotServed).
func Served(held crdt.Record, ok bool, rec crdt.Record, taken bool, now int64) ([]byte, bool) {
	switch {
	case !ok:
	case held.Live(now):
		return held.Value, true
	case taken && held.Evicted && !held.Tombstone && held.Time == rec.Time && held.Expires == rec.Expires && rec.Live(now):
		return rec.Value, true
	}
	return nil, false
}

// ErrNotStored is what a fill given to Serve returns for a value it filled
// and did not store (the key was written or deleted while its filler
// ran): such a value has no version to send, and the asker is told the
// owner holds nothing (it asks the next owner, or fills itself).
var ErrNotStored = errors.New("clusterfill: the filled value was not stored")

// Serve answers a peer's request payload. fill is this member's fill of a
// key (one at a time per key, shared with its own callers), which returns
// the record it wrote or found live; nil when the member has no filler.
// why classifies fill's errors. maxKey bounds the key of a fill request
// (the member's own bound on keys it writes); a fetch takes any key up to
// MaxKey, the protocol's limit, which a peer with a larger bound may have
// written (a member refused a pull of a long key it held: found by
// review). An owner never
// forwards: one hop at most. A request this member cannot serve (no
// filler, a key over its bound, a kind it does not know) is answered
// NotHeld: the asker fills itself, as it would with no owner to ask (an
// error, as releases before answered, failed the asker's caller).
//
// Serve does not check that this member owns the key: members' views
// differ for a while (a member joining is seen by some first), and the
// owner in the asker's view, refusing, would make it fill itself, twice
// in the cluster. So any member holding the cluster key can have this
// member run its filler for any key, bounded by the calls served at once
// (gossip.Config.OnCall: 256, 32 of one asker, past which the asker is
// told ErrBusy, and asks again until its fill timeout) and by one fill at
// a time per key.
func Serve(m Member, payload []byte, maxKey int, fill func(key string) (crdt.Record, error), why func(error) Failure) []byte {
	if BadRequest(payload, maxKey) {
		return NotHeld()
	}
	key := string(payload[1:])
	switch payload[0] {
	case FetchRequest:
		r, ok := m.Lookup(key)
		if !ok {
			// A member that collected the key's writes says so: the
			// asker, which may never have held any (it joined after),
			// waited for a write dead or lost everywhere until its
			// context ended (found by review).
			if g, is := m.(goner); is {
				if t, gone := g.Gone(key); gone {
					return store.AppendRecord([]byte{answerValue}, &t)
				}
			}
		}
		if !ok || r.Evicted {
			return NotHeld()
		}
		return store.AppendRecord([]byte{answerValue}, &r)
	case MarksRequest:
		if mk, ok := m.(marker); ok {
			ms, complete := mk.Marks()
			return AppendMarks(ms, complete)
		}
		return NotHeld()
	case FillRequest:
		if fill == nil {
			return NotHeld()
		}
		rec, err := fill(key)
		if errors.Is(err, ErrNotStored) {
			return NotHeld()
		}
		if err != nil {
			return fmt.Appendf([]byte{answerError}, "#%d %s", why(err), ClipText(err.Error()))
		}
		return store.AppendRecord([]byte{answerValue}, &rec)
	}
	return NotHeld()
}

// MaxErrorText bounds the text of a failed fill's answer, and what an
// asker shows of one: a filler's error went whole, however long (a
// megabyte an answer, kept among the answers sent again for copies of
// the request, and one over what a stream carries never arrived, the
// asker filling again at each of its requests: found by review).
const MaxErrorText = 512

// ClipText cuts s to MaxErrorText bytes, at the start of a rune, and
// says so.
func ClipText(s string) string {
	if len(s) <= MaxErrorText {
		return s
	}
	cut := MaxErrorText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// BadRequest reports whether a peer's request payload is one Serve
// cannot read: empty, of a kind it does not know, with a key over MaxKey,
// or a fill of a key over maxKey (answered NotHeld; the caller counts
// it).
func BadRequest(payload []byte, maxKey int) bool {
	switch {
	case len(payload) < 1 || len(payload)-1 > MaxKey:
		return true
	case payload[0] == FillRequest:
		return len(payload)-1 > maxKey
	case payload[0] == MarksRequest:
		return len(payload) != 1
	}
	return payload[0] != FetchRequest
}

// marker is a Member that answers a MarksRequest with its watermarks
// (store.Store.Marks), and whether they are complete: it has taken a
// complete answer itself, or founded its cluster. One that is not a
// marker answers NotHeld.
type marker interface {
	Marks() (marks []store.Mark, complete bool)
}

// AppendMarks returns a marks answer of marks, in ascending leaf order:
// a byte that says whether they are complete, then, for each, the leaf,
// the wall time and the logical counter as varints (the node is every
// node's: see lww's drop).
func AppendMarks(marks []store.Mark, complete bool) []byte {
	dst := []byte{answerMarks, 0}
	if complete {
		dst[1] = 1
	}
	for _, m := range marks {
		dst = binary.AppendUvarint(dst, uint64(m.Leaf))
		dst = binary.AppendVarint(dst, m.Time.Wall)
		dst = binary.AppendUvarint(dst, uint64(m.Time.Logical))
	}
	return dst
}

// Marks returns the watermarks of a marks answer b, checked whole (a
// completeness byte of 0 or 1, every leaf below leaves and above the one
// before, every counter within 32 bits, nothing after the last), and
// whether the answering member said they are complete. ok is false for
// any other answer (NotHeld too: see MarksMalformed) and for a malformed
// one, of which nothing is taken.
func Marks(b []byte, leaves uint32) (marks []store.Mark, complete, ok bool) {
	if len(b) < 2 || b[0] != answerMarks || b[1] > 1 {
		return nil, false, false
	}
	complete, b = b[1] == 1, b[2:]
	var out []store.Mark
	for len(b) > 0 {
		leaf, n := binary.Uvarint(b)
		if n <= 0 || leaf >= uint64(leaves) || len(out) > 0 && leaf <= uint64(out[len(out)-1].Leaf) {
			return nil, false, false
		}
		b = b[n:]
		wall, n := binary.Varint(b)
		if n <= 0 {
			return nil, false, false
		}
		b = b[n:]
		logical, n := binary.Uvarint(b)
		if n <= 0 || logical > math.MaxUint32 {
			return nil, false, false
		}
		b = b[n:]
		out = append(out, store.Mark{Leaf: uint32(leaf), Time: crdt.Timestamp{Wall: wall, Logical: uint32(logical), Node: math.MaxUint64}})
	}
	return out, complete, true
}

// MarksMalformed reports whether b, the answer to a MarksRequest, is
// neither NotHeld, nor an Error (the answer of the releases before
// NotHeld to a request of a kind they did not know: taken for malformed,
// it was counted as a bad answer and never among those after which the
// asker stops, which asked such a peer again at every collection, for
// ever), nor a marks answer Marks takes.
func MarksMalformed(b []byte, leaves uint32) bool {
	if len(b) == 1 && b[0] == answerNotHeld || len(b) > 0 && b[0] == answerError {
		return false
	}
	_, _, ok := Marks(b, leaves)
	return !ok
}

// MaxKey is the protocol's limit on keys: no member writes a longer one.
const MaxKey = 64 << 10

// Record returns the record in a value answer b for key: false for any
// other answer, a record of another key, or an evicted one.
func Record(b []byte, key string) (crdt.Record, bool) {
	if len(b) == 0 || b[0] != answerValue {
		return crdt.Record{}, false
	}
	rec, n, err := store.DecodeRecord(b[1:])
	if err != nil || n != len(b)-1 || rec.Key != key || rec.Evicted {
		return crdt.Record{}, false
	}
	return rec, true
}

// Malformed reports whether an owner's answer b to a's request is none
// of an answer's forms: not a record of the key, not an error, not
// NotHeld. Take takes it as NotHeld; the caller counts it.
//
// A delete is none: an owner answers a fill with the value it wrote or
// holds live, or that it holds none (it was taken as no answer and not
// counted: found by review).
func (a *Ask) Malformed(b []byte) bool {
	if len(b) == 1 && b[0] == answerNotHeld || len(b) > 0 && b[0] == answerError {
		return false
	}
	rec, ok := Record(b, a.Key)
	return !ok || rec.Tombstone
}

// FetchMalformed reports whether a peer's answer b to a fetch of key is
// none of its forms: the record of key it holds (a delete too), NotHeld,
// or an Error (a member with a smaller MaxKeySize, or of an earlier
// release, could not read the request: counted as a bad answer, it made
// FillAnswersBad an alarm about peers that were only configured
// otherwise; found by review).
func FetchMalformed(b []byte, key string) bool {
	if len(b) == 1 && b[0] == answerNotHeld || len(b) > 0 && b[0] == answerError {
		return false
	}
	_, ok := Record(b, key)
	return !ok
}

// Ask is one member's fill of a key in the cluster: whom it asked. The
// zero Ask has asked nobody.
type Ask struct {
	Key, Self string
	asked     string
	n         int
}

// Next returns the member to ask, given the key's owner in this member's
// view now, or "" to fill here: this member is the owner; or the owner it
// asked did not answer and still is the owner (it is silent: not asked
// twice); or it asked two owners already (the first left while asked).
// fallback reports that filling here is a fall back, after an owner was
// asked.
func (a *Ask) Next(owner string) (peer string, fallback bool) {
	switch {
	case owner == a.Self:
		// Also when this member owns the key since: the owner asked
		// left, silent (it was not counted a fallback: found by review).
		return "", a.n > 0
	case owner == a.asked || a.n == 2:
		return "", true
	}
	a.asked = owner
	a.n++
	return owner, false
}

// Outcome is what a member does with an owner's answer.
type Outcome int

const (
	// Done: the caller has its value, or the filler's error.
	Done Outcome = iota
	// FillHere: the owner's value is older than what this member holds (a
	// newer delete the owner has not received, or the owner's clock is
	// behind): filling here gives the caller a value after it.
	FillHere
	// AskNext: no fill's answer (the owner could not serve): call Next.
	AskNext
)

// Take takes the answer b of the owner asked to a's request: it applies
// the record answered as a received one (so that a newer version here is
// not overwritten) and reads the key back, so the caller never gets a
// version older than one it could read here.
// An owner's failed fill is a *FailedError.
func (a *Ask) Take(m Member, b []byte) ([]byte, error, Outcome) {
	if len(b) > 0 && b[0] == answerError {
		text := string(b[1:])
		if len(text) >= 3 && text[0] == '#' && text[1] >= '1' && text[1] <= '9' && text[2] == ' ' {
			why := Failure(text[1] - '0')
			if why > TooLarge { // a reason of a later release: its filler failed all the same
				why = Failed
			}
			return nil, &FailedError{Why: why, Text: text[3:]}, Done
		}
		// A release before the tag: these two meant it could not serve
		// the request (NotHeld now); any other is its filler's error, the
		// reason known by the start of its text after the key (the key,
		// or the filler's own text, may hold the words: found by review).
		if text == "no filler" || text == "bad request" {
			return nil, nil, AskNext
		}
		why := Failed
		switch rest, _ := strings.CutPrefix(text, fmt.Sprintf("bcache: fill %q: ", a.Key)); {
		case strings.HasPrefix(rest, "fill timed out ("):
			why = TimedOut
		case strings.HasPrefix(rest, "filler panicked: "):
			why = Panicked
		}
		return nil, &FailedError{Why: why, Text: text}, Done
	}
	rec, ok := Record(b, a.Key)
	if !ok || rec.Tombstone {
		return nil, nil, AskNext
	}
	if v, ok := m.Receive(rec); ok {
		return v, nil, Done
	}
	return nil, nil, FillHere
}
