package crdt

import (
	"fmt"
	"strings"
	"time"
)

// Record is one write to one key: a value with an optional absolute expiry,
// or a tombstone. The record with the greater Time wins; Expires never takes
// part in the comparison (a later Set with a shorter TTL beats an earlier
// Set with a longer one).
type Record struct {
	Key   string
	Value []byte
	Time  Timestamp
	// Expires is the absolute expiry in Unix nanoseconds; 0 means never.
	Expires int64
	// Tombstone marks a delete. A tombstone carries no value.
	Tombstone bool
	// Evicted marks a record whose value was dropped by local eviction. It
	// still takes part in merges and digests with its Time, so it shadows
	// older versions, but it cannot be served: reads of it are misses.
	Evicted bool
}

// Version is what merges and digests need of a record: which key, which
// write, and whether it is a delete.
type Version struct {
	Key       string
	Time      Timestamp
	Tombstone bool
}

// Compare orders versions of one key: by timestamp, and for equal
// timestamps (which no honest replica issues twice, but a member holding
// the cluster key can forge) a tombstone after a value, so that every
// replica keeps the same one whatever the order they arrive in. It returns
// -1 if v is older than u, +1 if newer, 0 if they are the same version.
func (v Version) Compare(u Version) int {
	if c := v.Time.Compare(u.Time); c != 0 || v.Tombstone == u.Tombstone {
		return c
	}
	if v.Tombstone {
		return 1
	}
	return -1
}

// String describes r for people: key, value (at most 32 bytes of it) or
// delete, timestamp, expiry, eviction.
func (r Record) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q", r.Key)
	switch {
	case r.Tombstone:
		b.WriteString(" deleted")
	case r.Evicted:
		b.WriteString(" evicted")
	case len(r.Value) > 32:
		fmt.Fprintf(&b, " = %q... (%d bytes)", r.Value[:32], len(r.Value))
	default:
		fmt.Fprintf(&b, " = %q", r.Value)
	}
	fmt.Fprintf(&b, " at %v", r.Time)
	if r.Expires != 0 && !r.Tombstone {
		fmt.Fprintf(&b, ", expires %s", time.Unix(0, r.Expires).UTC().Format("2006-01-02 15:04:05.000000000"))
	}
	return b.String()
}

// String describes v for people: key, timestamp, and whether a delete.
func (v Version) String() string {
	if v.Tombstone {
		return fmt.Sprintf("%q deleted at %v", v.Key, v.Time)
	}
	return fmt.Sprintf("%q written at %v", v.Key, v.Time)
}

// Version returns the version of r.
func (r *Record) Version() Version {
	return Version{Key: r.Key, Time: r.Time, Tombstone: r.Tombstone}
}

// Expired reports whether r has an expiry that is due at now.
func (r *Record) Expired(now int64) bool { return r.Expires != 0 && now >= r.Expires }

// Live reports whether r holds a value that may be served at now: not a
// tombstone, not expired and not evicted.
func (r *Record) Live(now int64) bool {
	return !r.Tombstone && !r.Evicted && !r.Expired(now)
}

// DeadSince returns the time from which r is garbage and false for a
// record that never dies. A tombstone is dead from its write time; an
// expiring value from its expiry, but never before its write time: a
// record whose expiry lies before its write (a wrapped TTL, a peer's odd
// fields) must not look dead for longer than it has existed, or collecting
// it would raise its bucket's watermark past what the rules of package lww
// allow.
func (r *Record) DeadSince() (int64, bool) {
	switch {
	case r.Tombstone:
		return r.Time.Wall, true
	case r.Expires != 0:
		return max(r.Expires, r.Time.Wall), true
	}
	return 0, false
}

// Hash returns the digest hash of r: a function of its key, timestamp and
// tombstone flag, identical on every replica.
func (r *Record) Hash() uint64 { return RecordHash(HashKey(r.Key), r.Time, r.Tombstone) }

// recordOverhead approximates the bytes a record costs beyond its key and
// value: timestamp, expiry and flags.
const recordOverhead = 40

// Size approximates the bytes r occupies, for size limits and accounting.
func (r *Record) Size() int { return len(r.Key) + len(r.Value) + recordOverhead }
