package wire

import "github.com/bcache-go/bcache/crdt"

// WireVersion is the version byte every frame starts with. A frame with any
// other version is rejected. Version 2 replaced the anti-entropy messages'
// Echo (the responder's time, carried back and forth) with the responder's
// Token and a Step number, the opening digests carry each side's cut and
// coverage, and rejections are answered with tombstones; members of
// versions 1 and 2 do not exchange frames.
const WireVersion = 2

// Kind names a message type on the wire.
type Kind uint8

// The message kinds.
const (
	KindDelta    Kind = 1
	KindDigest   Kind = 2
	KindVersions Kind = 3
	KindRepair   Kind = 4
	KindReject   Kind = 5
	// KindDirect is a Delta sent straight from its writer (no Origin, no
	// Seq) in a shorter form; see Direct. Members of releases before it
	// refuse it as an unknown kind.
	KindDirect Kind = 6
)

func (k Kind) String() string {
	switch k {
	case KindDelta:
		return "delta"
	case KindDigest:
		return "digest"
	case KindVersions:
		return "versions"
	case KindRepair:
		return "repair"
	case KindReject:
		return "reject"
	case KindDirect:
		return "direct"
	}
	return "unknown"
}

// Message is one of *Delta, *Digest, *Versions, *Repair or *Reject.
type Message interface {
	Kind() Kind
}

// Delta carries fresh local writes of its origin. Each member forwards it,
// unchanged, to its children in the origin's broadcast tree (package
// transport, ring.go).
type Delta struct {
	// Origin is the member name of the writer; it roots the broadcast tree.
	// It is empty in a direct send, which the receiver applies and neither
	// relays nor tracks.
	Origin string
	// OriginID is the writer's incarnation: a member takes a batch of its
	// own for an echo and leaves it.
	OriginID crdt.NodeID
	// Seq numbers the writer's relayed batches within its incarnation, from
	// 1; 0 in a direct send. No receiver reads it: whether a batch is new
	// is what applying its records says (a copy applies nothing and goes
	// no further), so a number a sender chooses changes nothing.
	Seq uint64
	// Records are the newest record of each key written since the previous
	// batch.
	Records []crdt.Record
}

// Session identifies one anti-entropy exchange and where a message stands
// in it. Every anti-entropy message carries one.
type Session struct {
	// ID is the initiator's session id, unpredictable to other members.
	ID uint64
	// Token is the responder's: it draws one when the initiator's first
	// message arrives and sends it in its first reply; the initiator
	// carries it in every later message, which proves that it receives at
	// its address. Zero in the initiator's first message.
	Token uint64
	// Step numbers the initiator's messages from 1; a reply carries the
	// step it answers, so that a duplicate or a late reply is recognised.
	Step uint32
}

// Digest carries digest-tree node hashes during anti-entropy. The initiator
// and the responder alternate, each sending the children of the nodes that
// differed in the message it received, one level further down.
type Digest struct {
	Session
	// Level is the tree level of the nodes carried (0 is the root).
	Level uint8
	// Parents are the nodes at Level-1 whose children are carried,
	// strictly ascending. Empty when Level is 0 (the root is carried
	// alone) and when a reply reports that nothing differs.
	Parents []uint32
	// Hashes holds crdt.Fanout node hashes per parent, in order (one hash, the
	// root's, at Level 0).
	Hashes []uint64
	// Cut is the sender's clock reading when it entered the session, and
	// Coverage the lowest cut it holds of the members it counts (see package
	// transport). Both are carried by the initiator's first message and the
	// responder's first reply, and are zero in the others.
	Cut      crdt.Timestamp
	Coverage int64
}

// KeyVersion is a version identified by its key hash, as exchanged for the
// leaves that differ.
type KeyVersion struct {
	KeyHash   uint64
	Time      crdt.Timestamp
	Tombstone bool
	// Print is a second hash of the key, keyed by the session's ID (a
	// caller choosing keys can make any number share a KeyHash, and two of
	// those share any fixed 32-bit hash at little search), in a Versions
	// whose Prints is set (else 0): the receiver tells two keys of one
	// KeyHash apart by it (see Versions.Prints).
	Print uint32
}

// MaxRecords bounds the records or wants any one list of a frame may
// hold: what a frame may make a member apply, forget or look up under its
// protocol lock is bounded by it as well as by the frame's size. Honest
// senders cut their lists to it. A Versions' versions are bounded by its
// leaves (MaxLeavesPerStep) and the frame's size alone: a chunk of leaves
// of a large replica lists more than MaxRecords, and comparing them costs
// what reading them does.
const MaxRecords = 1 << 14

// MaxLeavesPerStep bounds the leaves one Versions message may list: what
// an honest initiator sends per step is at most this.
const MaxLeavesPerStep = 1024

// Versions lists, for some leaves that differ, every version the sender
// holds in them.
type Versions struct {
	Session
	// Leaves are leaf indexes, strictly ascending, at most
	// MaxLeavesPerStep.
	Leaves []uint32
	// Counts[i] is how many entries of Versions belong to Leaves[i].
	Counts []uint32
	// Versions are grouped by leaf in the order of Leaves, each group
	// strictly ascending by key hash.
	Versions []KeyVersion
	// Part, if set, says the message lists part of a leaf, Leaves' only
	// one: the versions whose key hashes lie in the range, of a leaf whose
	// versions take more than a frame. The receiver compares its versions
	// in the range alone. A release before Part refuses such a message
	// (it takes six fields, this eight), as it could not encode a
	// leaf that large at all.
	Part *KeyRange
	// Prints says each version carries its key's Print: a field more
	// (seven, or nine with Part). A side that holds one key of a KeyHash
	// cannot tell from a version of that hash alone whether the other
	// lists the same key; with the print the receiver can, and sends its
	// own key's record within the reply the sender awaits. A release
	// before Prints refuses such a message: a sender lists prints only
	// to a peer that takes them (transport.Node.ListsPrints).
	Prints bool
}

// KeyRange is the key hashes from From to Through, both included.
type KeyRange struct {
	From, Through uint64
}

// Holds reports whether h is in the range.
func (r KeyRange) Holds(h uint64) bool { return r.From <= h && h <= r.Through }

// Repair carries records one side holds newer than the other, plus what the
// sender wants back, and (from the initiator) the tombstones answering the
// responder's records it rejected.
type Repair struct {
	Session
	// Records are in ascending timestamp order.
	Records []crdt.Record
	// Wants are key hashes, strictly ascending, whose records the sender
	// wants from the receiver: in the responder's Repairs. The initiator
	// wants nothing; in its final Repair, Wants holds one number instead:
	// how many Repairs it sent before that one in the session, so that
	// the responder completes only once it has applied them all (one the
	// final Repair overtook, or one lost, would be missing). A final
	// Repair with no Wants is of a release before the count.
	Wants []uint64
	// Final marks the sender's last Repair of the session.
	Final bool
	// Truncated says Records was cut at the message size limit; the
	// remaining differences are found again in a later step.
	Truncated bool
}

// Reject answers records of the receiver's Repair that the sender rejected
// as below its GC watermark: a tombstone for each key, written just above
// the watermark, which the receiver merges (package lww, rule 3). The
// initiator sends its answers in its next Repair's Records instead.
type Reject struct {
	Session
	Records []crdt.Record
}

// Direct is a Delta sent straight from its writer to each other member
// (a broadcast tree one hop deep): applied, neither relayed nor tracked,
// so it needs neither Origin nor Seq. Its frame is shorter than the
// Delta's by those two fields, the record list's header and, in each
// record with no expiry and no flags, those two fields: five bytes of a
// lone write's datagram.
type Direct struct {
	OriginID crdt.NodeID
	Records  []crdt.Record
}

// Delta returns d as the Delta it stands for.
func (d *Direct) Delta() *Delta { return &Delta{OriginID: d.OriginID, Records: d.Records} }

// Kind implements Message.
func (*Delta) Kind() Kind { return KindDelta }

// Kind implements Message.
func (*Direct) Kind() Kind { return KindDirect }

// Kind implements Message.
func (*Digest) Kind() Kind { return KindDigest }

// Kind implements Message.
func (*Versions) Kind() Kind { return KindVersions }

// Kind implements Message.
func (*Repair) Kind() Kind { return KindRepair }

// Kind implements Message.
func (*Reject) Kind() Kind { return KindReject }
