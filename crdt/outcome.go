package crdt

import "fmt"

// Outcome says what a replica did with a record it was handed.
type Outcome uint8

const (
	// Stale: the replica already held this record or a newer one; nothing
	// changed.
	Stale Outcome = iota
	// Applied: the record was new to the replica and is now its record for
	// the key.
	Applied
	// Rejected: the replica holds nothing for the key and the record is at
	// or below its bucket's GC watermark, so it may be a write the replica
	// has seen deleted and collected. Nothing changed. A replica that sent
	// the record should forget it (see package lww).
	Rejected
	// Late: a delta older than the GC horizon. Nothing changed; old records
	// travel by anti-entropy.
	Late
	// Refused: the record's timestamp is further ahead of the receiver's
	// physical clock than its maximum drift. Nothing changed.
	Refused
)

func (o Outcome) String() string {
	switch o {
	case Stale:
		return "stale"
	case Applied:
		return "applied"
	case Rejected:
		return "rejected"
	case Late:
		return "late"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}
