package gossip

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// A member with a key says in its metadata which keys it reads: an id of
// its SecretKey, then one of each of its AcceptKeys. memberlist lists a
// member alive as soon as one of its frames decrypts, though that member
// may not read a word sent back (during a rotation, a member restarted
// with the old key alone, or one that went a step too far): the others
// listed it alive, probed it, declared it dead, and it joined again at
// every re-join interval, a phantom that a cluster-wide fill picked as
// the owner of its share of the keys, and waited for (found by review).
// A member now refuses one whose keys do not read its own, or whose own
// key it does not read (NotifyAlive), and says so in Status, as the
// member refused does ("wrong key").

// keyIDLen is the length of a key's id.
const keyIDLen = 8

// maxKeyIDs bounds the ids in a member's metadata (memberlist's 512
// bytes, after the 8 of its seed).
const maxKeyIDs = 60

// keyID is a key's id: a MAC of a fixed text under the key, which tells
// nothing of the key.
func keyID(key []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("bcache key id"))
	return mac.Sum(nil)[:keyIDLen]
}

// keyIDs returns the ids of the keys a member with cfg reads, its
// SecretKey's first, each once; none without a key, or with more than
// maxKeyIDs keys, whose ids do not fit (cut short, the list left out a
// key the member reads, and a member using it was refused: found by
// review), a Config that fill refuses.
func keyIDs(cfg *Config) []byte {
	if len(cfg.SecretKey) == 0 {
		return nil
	}
	ids := keyID(cfg.SecretKey)
	for _, k := range cfg.AcceptKeys {
		if id := keyID(k); !readsID(ids, id) {
			ids = append(ids, id...)
		}
	}
	if len(ids) > maxKeyIDs*keyIDLen {
		return nil
	}
	return ids
}

// A member's metadata ends with a block of a key id's length that says
// whether it holds its cluster's state (see transport.Node.SetNewcomers):
// a release before the block reads it as the id of a key it does not
// know, which it ignores (it checks the first id, the member's own key,
// and whether its own is among them).
//
// A member not synced yet that restored state built with others
// (Config.Restored) says so apart (metaRestored): it holds nothing a
// newcomer may sync from, as metaNewcome says, but it comes from a
// cluster, with that cluster's watermarks, so a founder that meets it
// first founded wrongly, or met another cluster (see Founded). Said as
// metaNewcome, it left the founder saying it founded: a newcomer took the
// founder's marks, none of the restored member's, for complete, and served
// a value whose delete its cluster had collected (found by review:
// TestANewcomerAsksAgainAFounderThatMetARestoredMember). It goes before
// metaNewcome, which still ends the metadata: a release that knows only
// the two blocks reads it as a key id it does not know, and the member as
// a newcomer. Ending the metadata alone, it made the member one of a
// release before the block to that release, taken as holding its
// cluster's state: a newcomer of it took its exchange with the restored
// member, holding an old snapshot, for its first sync, and said it was
// synced (found by review: TestARestoredMemberIsANewcomerToTheReleaseBefore).
var (
	metaHolds    = []byte("bcache:H") // synced since it started, or its cluster's founder
	metaNewcome  = []byte("bcache:N") // neither yet
	metaRestored = []byte("bcache:R") // before metaNewcome: neither yet, and restored state built with others
)

// withoutHolding returns meta without its holding block, and what the
// block says: said false when there is none (a release before it, or a
// member leaving).
func withoutHolding(meta []byte) (rest []byte, holds, said bool) {
	if len(meta) < 8+keyIDLen || (len(meta)-8)%keyIDLen != 0 {
		return meta, false, false
	}
	switch last := meta[len(meta)-keyIDLen:]; {
	case string(last) == string(metaHolds):
		return meta[:len(meta)-keyIDLen], true, true
	case string(last) == string(metaNewcome):
		rest := meta[:len(meta)-keyIDLen]
		if restoredBlock(rest) {
			rest = rest[:len(rest)-keyIDLen]
		}
		return rest, false, true
	}
	return meta, false, false
}

// restoredBlock reports whether meta, its holding block cut, ends with
// metaRestored (after the seed).
func restoredBlock(meta []byte) bool {
	return len(meta) >= 8+keyIDLen && string(meta[len(meta)-keyIDLen:]) == string(metaRestored)
}

// saysRestored reports whether meta's holding block says the member
// restored state built with others and has not synced yet.
func saysRestored(meta []byte) bool {
	_, holds, said := withoutHolding(meta)
	return said && !holds && restoredBlock(meta[:len(meta)-keyIDLen])
}

// metaKeyIDs returns the key ids in a member's metadata, nil if it has
// none (no key, a release before them, or leaving).
func metaKeyIDs(meta []byte) []byte {
	meta, _, _ = withoutHolding(meta)
	if len(meta) <= 8 || (len(meta)-8)%keyIDLen != 0 {
		return nil
	}
	return meta[8:]
}

// readsID reports whether ids holds id.
func readsID(ids, id []byte) bool {
	for i := 0; i+keyIDLen <= len(ids); i += keyIDLen {
		if string(ids[i:i+keyIDLen]) == string(id) {
			return true
		}
	}
	return false
}

// errNameTooLong is a member refused for a name longer than MaxNameLen.
var errNameTooLong = errors.New("refused: its name is longer than a member's may be")

// errNameNotUTF8 is a member refused for a name that is empty or not
// valid UTF-8: the members file beside a snapshot (JSON) keeps a name
// not valid as another ("\ufffd" for each bad byte), and a member
// restarted from it counted a member of that other name, never seen, as
// lost until the horizon, its early collection held up that long (found
// by review); one named "" can complete no exchange. No member may have
// such a name (Config.Name).
var errNameNotUTF8 = errors.New("refused: its name is empty or not valid UTF-8")

// errKeys is a member refused for its keys.
var errKeys = errors.New("refused: its keys and this member's do not read each other (a key rotation's step skipped, or a member with an old key)")

// NotifyAlive implements memberlist.AliveDelegate: a member whose keys do
// not read this member's key, or whose key this member does not read, is
// refused (see above). A member that says nothing of its keys is taken.
func (d delegate) NotifyAlive(peer *memberlist.Node) error {
	r := d.r
	if len(peer.Name) > MaxNameLen {
		// A name no member may have (Config.Name), whose frames could not
		// name their sender: memberlist takes names of any length (a
		// push/pull carries up to 20 MiB), and one of 3 MiB, kept among
		// the members counted, made the members file beside a snapshot
		// too long for its next start to read (found by review).
		short := peer.Name[:MaxNameLen]
		if log, unlogged := r.refused(peer, "name too long", fmt.Sprintf("the member at %s announces a name of %d bytes (limit %d), starting %q", peer.Address(), len(peer.Name), MaxNameLen, short)); log {
			r.log.Error().Str("peer", peer.Address()).Str("name", short).Int("name_bytes", len(peer.Name)).Int("refusals_unlogged", unlogged).Msg("a member with a name too long")
		}
		return errNameTooLong
	}
	if peer.Name == "" || !utf8.ValidString(peer.Name) {
		// The empty name, too, is one no member may have (Config.Name):
		// its frames could not name their sender (parseFrame), and the
		// protocol reads the name "" as no peer.
		if log, unlogged := r.refused(peer, "bad name", fmt.Sprintf("the member at %s announces the name %q, which is empty or not valid UTF-8", peer.Address(), peer.Name)); log {
			r.log.Error().Str("peer", peer.Address()).Str("name", peer.Name).Int("refusals_unlogged", unlogged).Msg("a member with a name that is empty or not valid UTF-8")
		}
		return errNameNotUTF8
	}
	theirs, ours := metaKeyIDs(peer.Meta), r.keyIDs
	if peer.Name == r.cfg.Name || len(theirs) == 0 || len(ours) == 0 { // a member saying nothing, or this one
		return nil
	}
	if readsID(theirs, ours[:keyIDLen]) && readsID(ours, theirs[:keyIDLen]) {
		return nil
	}
	r.counters.keyRefusals.Add(1)
	if log, unlogged := r.refused(peer, "wrong key", fmt.Sprintf("the member %q at %s is %v", peer.Name, peer.Address(), errKeys)); log {
		r.log.Error().Str("peer", peer.Address()).Str("name", peer.Name).Err(errKeys).Int("refusals_unlogged", unlogged).Msg("a member with other keys")
	}
	return errKeys
}
