package crdt

import (
	"fmt"
	"time"
)

// NodeID identifies one incarnation of a replica. A replica picks a fresh id
// every time it starts with empty state, so that a restarted node whose
// physical clock is behind its previous life can never issue a timestamp
// equal to one issued before.
type NodeID uint64

// Timestamp is a hybrid logical clock reading. The zero Timestamp is older
// than every timestamp a [HLC] with a non-zero node id issues from a
// physical time at or after the Unix epoch.
//
// Timestamps are totally ordered by [Timestamp.Compare]: Wall first, then
// Logical, then Node. Two different writes carry different timestamps
// because a node never issues the same (Wall, Logical) twice and node ids
// are unique per incarnation; the one exception is a clock that reached the
// last timestamp there is (see [HLC]), which issues it again for every
// write.
type Timestamp struct {
	// Wall is physical time in nanoseconds since the Unix epoch, as seen by
	// the issuing clock (possibly moved forward by timestamps it received).
	Wall int64
	// Logical orders timestamps that share a Wall reading.
	Logical uint32
	// Node is the incarnation that issued the timestamp; it breaks ties.
	Node NodeID
}

// Compare returns -1 if t is older than u, +1 if it is newer and 0 if they
// are equal.
func (t Timestamp) Compare(u Timestamp) int {
	switch {
	case t.Wall != u.Wall:
		return cmp3(t.Wall < u.Wall)
	case t.Logical != u.Logical:
		return cmp3(t.Logical < u.Logical)
	case t.Node != u.Node:
		return cmp3(t.Node < u.Node)
	}
	return 0
}

func cmp3(less bool) int {
	if less {
		return -1
	}
	return 1
}

// Less reports whether t is older than u.
func (t Timestamp) Less(u Timestamp) bool { return t.Compare(u) < 0 }

// IsZero reports whether t is the zero Timestamp.
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

// String formats t for logs and test failures.
func (t Timestamp) String() string {
	return fmt.Sprintf("%s+%d@%x", time.Unix(0, t.Wall).UTC().Format("15:04:05.000000000"), t.Logical, uint64(t.Node))
}
