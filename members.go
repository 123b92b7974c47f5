package bcache

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/bcache-go/bcache/internal/journal"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/gossip"
)

// A member with a SnapshotPath keeps, beside each snapshot, the members it
// counts for early collection (transport.Node.Known): those alive, those
// lost and not yet given up on, and incarnations that ended and still
// count. Restarted, it counts them again: each as lost, from when it was
// lost (from the restart for one alive then), until it is seen again or
// the horizon has passed. Without them, a member absent while every member
// that had seen it restarted (a rolling redeploy while an edge member is
// cut off) was counted by none: they collected early, and its writes made
// meanwhile were rejected on its return (found by review). The list is as
// of the last snapshot: a member lost after it and before a crash is not
// in it (a Close writes one).
const knownSuffix = ".members"

// maxKnown bounds the members read back, and maxKnownBytes the file read:
// each member's entry, its name at most 255 bytes, is under 2 KiB, its
// name's bytes escaped (six bytes each at most: "\u0001", "\u003c",
// "\ufffd"), its numbers at their longest. (The bound was 1 KiB an entry:
// a file of the most members, named with such bytes, was written at 27
// MB and refused at the next start, found by review.)
const (
	maxKnown      = 1 << 14
	maxKnownBytes = maxKnown << 11
)

type knownFile struct {
	Version int               `json:"version"`
	Members []transport.Known `json:"members"`
	// LogFrom is the first segment of the write log that the snapshot
	// written with this file does not hold (0: unknown, or no log): a
	// start that finds the log's oldest segment naming it or a later one
	// as its predecessor knows segments the snapshot does not hold are
	// missing (see logGap). Releases before it ignore the field.
	LogFrom uint64 `json:"log_from,omitempty"`
	// Log says the write log's segments from LogFrom on had been started
	// when the file was written (a member with a log, not closing; with
	// LogFrom and Snapshot 0, from its first start on, before any
	// snapshot): a start that finds no segment knows they were lost whole
	// (see logLost). Releases before it ignore the field.
	Log bool `json:"log,omitempty"`
	// Snapshot names the snapshot this file was written beside by the
	// time it was written (store.Snapshot.Written; 0: none, or a release
	// before it), and Pending the snapshots that may have been written
	// over it since: the one being written as the file was (the file is
	// written again before each snapshot, naming it), and the one before
	// a snapshot renamed into place whose directory's sync failed (a
	// power cut may bring it back). No two snapshots of one
	// path share a time (writeSnapshot), so a snapshot that is neither is
	// not the one this member last wrote: an older one put back, or
	// another member's (found by review: an old snapshot restored alone
	// beside a newer members file and log passed every check, and the
	// writes between were lost without a word). Releases before it
	// ignore both.
	Snapshot int64   `json:"snapshot,omitempty"`
	Pending  []int64 `json:"pending,omitempty"`
	// newer (read only) says the file holds a field that only files with
	// a checksum hold (see knownSumKey).
	newer bool
}

// maxPending bounds knownFile.Pending as read: a member writes two at
// most.
const maxPending = 8

// names reports whether a snapshot written at written is one the file
// names, or whether the file names none (a first start, or a file of a
// release before snapshots were named).
func (f *knownFile) names(written int64) bool {
	return f.Snapshot == 0 && len(f.Pending) == 0 || written == f.Snapshot || slices.Contains(f.Pending, written)
}

// latest returns the latest snapshot time the file names (0: none).
func (f *knownFile) latest() int64 {
	t := f.Snapshot
	for _, p := range f.Pending {
		t = max(t, p)
	}
	return t
}

// readKnown returns the members kept beside the snapshot, none if there
// is no file. held says the member restored state (a snapshot or a write
// log); without it (moved aside as damaged, or removed), it holds none of
// the records the cuts say it held: the members count, but with no cut,
// until a session gives one (a member restarted empty with its old cuts
// collected early: found by review).
//
// A file it cannot read is under the damage policy, like the snapshot:
// without it, early collection counts only the members this run sees, and
// may reject, on its return, what a member absent since before the
// restart wrote meanwhile. DamageFail fails New; DamageReset moves the
// file aside (with suffix, the reset's: see pruneAside), counts it and
// goes on without it. (A damaged file was logged and ignored whatever
// the policy: found by review.) A file that could not be read, for a
// reason that is not damage (notDamage), fails New under either policy,
// and stays.
func (c *Cache) readKnown(f knownFile, err error, held bool, suffix string) ([]transport.Known, error) {
	path := c.cfg.SnapshotPath + knownSuffix
	if err != nil {
		unreadable := notDamage(err)
		err = fmt.Errorf("%w: the members kept beside it, %s: %w", ErrSnapshot, path, err)
		if unreadable {
			return nil, notMoved(err, path)
		}
		if c.cfg.OnDamage != DamageReset {
			return nil, err
		}
		aside := path + suffix
		if merr := os.Rename(path, aside); merr != nil {
			return nil, fmt.Errorf("%w (and moving it aside: %v)", err, merr)
		}
		// Synced as the snapshot's move is (journal.MoveAside): undone
		// by a power cut, the next start moved it aside and counted it
		// again (found by review).
		if serr := syncDir(filepath.Dir(path)); serr != nil {
			return nil, fmt.Errorf("%w (moved aside to %s, and syncing its directory: %v)", err, aside, serr)
		}
		c.stats.damageResets.Add(1)
		c.log.Error().Err(err).Str("moved_to", aside).
			Msg("the members kept beside the snapshot are damaged: moved aside; early collection counts only the members this run sees")
		c.pruneAside(suffix)
		return nil, nil
	}
	if !held {
		for i := range f.Members {
			k := &f.Members[i]
			k.Cut, k.HasCut = transport.NoStable, k.Ended // an ended incarnation's cut: the lowest
		}
	}
	return f.Members, nil
}

// readKnownFile reads the members file at path: an empty file, and no
// error, if there is none. Its errors are the file's, unwrapped.
func readKnownFile(path string) (knownFile, error) {
	b, err := readKnownBytes(path, maxKnownBytes)
	if errors.Is(err, os.ErrNotExist) {
		return knownFile{Version: 1}, nil
	}
	var f knownFile
	summed := false
	if err == nil {
		summed, err = checkKnownSum(b)
	}
	if err == nil {
		f, err = decodeKnown(b)
	}
	switch {
	case err != nil:
	case !summed && f.newer:
		// A file of this release whose sum a flipped bit unmade: files
		// without a sum, of the releases before, hold no other fields.
		err = errors.New("fields of a file with a checksum, and no checksum")
	case f.Version != 1:
		err = fmt.Errorf("version %d, want 1", f.Version)
	case f.LogFrom > journal.MaxFrom:
		// No log numbers its segments so far; started from it, the log's
		// segments would soon pass what a start reads (found by review).
		err = fmt.Errorf("log_from %d, past %d", f.LogFrom, uint64(journal.MaxFrom))
	}
	return f, err
}

// decodeKnown decodes a members file, counting the members as it goes: a
// file within maxKnownBytes of entries as short as "{}," held 5.6 million,
// each decoded (56 bytes) before the count was checked, 1.8 GiB allocated
// (found by review). Fields other than version and members are skipped,
// as json.Unmarshal would; a repeated one counts as its last.
func decodeKnown(b []byte) (knownFile, error) {
	var f knownFile
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := expectDelim(dec, '{'); err != nil {
		return f, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return f, err
		}
		switch tok {
		case "version":
			err = dec.Decode(&f.Version)
		case "log_from":
			err = dec.Decode(&f.LogFrom)
		case "log":
			err = dec.Decode(&f.Log)
		case "snapshot":
			f.newer = true
			err = dec.Decode(&f.Snapshot)
		case "pending":
			f.newer = true
			f.Pending, err = decodePending(dec)
		case "members":
			f.Members, err = decodeMembers(dec)
		default: // "sum", checked before (checkKnownSum), or a later release's
			f.newer = true
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return f, err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return f, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return f, errors.New("data after the members")
	}
	return f, nil
}

// decodeMembers decodes the members' array (or null), at most maxKnown.
func decodeMembers(dec *json.Decoder) ([]transport.Known, error) {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return nil, fmt.Errorf("members: %v, want an array", tok)
	}
	members := []transport.Known{} // as json.Unmarshal makes an empty array
	for dec.More() {
		if len(members) == maxKnown {
			return nil, fmt.Errorf("more than %d members", maxKnown)
		}
		var k transport.Known
		if err := dec.Decode(&k); err != nil {
			return nil, err
		}
		members = append(members, k)
	}
	return members, expectDelim(dec, ']')
}

// decodePending decodes the pending snapshots' array (or null), at most
// maxPending, counted as they are decoded: decoded whole first, a file
// within maxKnownBytes of "0," took hundreds of MiB before its count was
// checked (TestMembersFilePendingIsCountedAsItIsDecoded).
func decodePending(dec *json.Decoder) ([]int64, error) {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return nil, fmt.Errorf("pending: %v, want an array", tok)
	}
	pending := []int64{}
	for dec.More() {
		if len(pending) == maxPending {
			return nil, fmt.Errorf("more than %d pending snapshots", maxPending)
		}
		var p int64
		if err := dec.Decode(&p); err != nil {
			return nil, err
		}
		pending = append(pending, p)
	}
	return pending, expectDelim(dec, ']')
}

// expectDelim reads the next token, which must be d.
func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err == nil && tok != d {
		err = fmt.Errorf("%v, want %v", tok, d)
	}
	return err
}

// The members file ends with a checksum, its last field: "sum", the
// CRC-32C of every byte before the comma that precedes it, as 8 hex
// digits (a flipped bit read as a good file: a member renamed, a cut
// raised, log_from zeroed; found by review). Files of the releases before
// have none, and hold only version, members, log_from and log: a file
// with any other field must have a sum that checks, so that one flipped
// bit of the sum's own name cannot pass the file for an older one.
const knownSumKey = `,"sum":"`

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendKnownSum ends body, a members file's JSON object without its
// closing brace, with its checksum, the brace and a newline.
func appendKnownSum(body []byte) []byte {
	return fmt.Appendf(body, knownSumKey+"%08x\"}\n", crc32.Checksum(body, castagnoli))
}

// checkKnownSum reports whether the members file b ends with a checksum,
// and an error if that checksum does not check.
func checkKnownSum(b []byte) (bool, error) {
	i := bytes.LastIndex(b, []byte(knownSumKey))
	if i < 0 {
		return false, nil
	}
	if !bytes.Equal(appendKnownSum(slices.Clip(b[:i])), b) {
		return true, errors.New("checksum mismatch (file corrupt or truncated)")
	}
	return true, nil
}

// readAtMost reads the file at path, failing without reading it all if it
// holds more than limit bytes (a file grown by damage, or by hand, was
// read whole into memory before its count was checked).
func readAtMost(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("over %d bytes", limit)
	}
	return b, err
}

// readKnownBytes reads the members file, and syncDir syncs a directory
// (variables: tests make them fail, or watch them).
var (
	readKnownBytes = readAtMost
	syncDir        = store.SyncDir
)

// b2i is 1 for true, 0 for false.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// knownNow returns the members this member counts, or nil before it runs.
func (c *Cache) knownNow() []transport.Known {
	if c.repl == nil {
		return nil
	}
	return c.repl.Known()
}

// writeKnown writes known (knownNow's, taken before the snapshot it goes
// beside) next to the snapshot, with logFrom, the first log segment the
// snapshot does not hold. A failure is logged and returned: the file of
// the last snapshot stays.
func (c *Cache) writeKnown(known []transport.Known, logFrom uint64, log bool) error {
	if slices.ContainsFunc(known, longName) {
		// No member has such a name (gossip refuses them), but one read
		// from a file of a release before may: its entry has no bound
		// (one of 3 MiB made the file too long to read back).
		known = slices.DeleteFunc(slices.Clone(known), longName)
	}
	if len(known) > maxKnown {
		// More than its next start reads (and, under DamageFail, takes
		// for damage: found by review): the members that are current
		// first, incarnations that ended after them.
		known = slices.Clone(known)
		slices.SortStableFunc(known, func(a, b transport.Known) int { return cmp.Compare(b2i(a.Ended), b2i(b.Ended)) })
		c.log.Warn().Int("members", len(known)).Int("kept", maxKnown).Msg("more members counted than the members file keeps: the incarnations that ended are left out first")
		known = known[:maxKnown]
	}
	f := knownFile{Version: 1, Members: known, LogFrom: logFrom, Log: log, Snapshot: c.snapWritten, Pending: c.unsure}
	err := c.saveKnown(f)
	if err != nil {
		c.log.Warn().Err(err).Msg("writing the members kept beside the snapshot failed: those of the last snapshot stay, and so do the log segments it covers")
	}
	return err
}

// longName reports whether k's name is longer than a member's may be.
func longName(k transport.Known) bool { return len(k.Name) > gossip.MaxNameLen }

// saveKnown writes f as the members file, and keeps it as the file on
// disk (c.kf) once it is.
func (c *Cache) saveKnown(f knownFile) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	b = appendKnownSum(b[:len(b)-1]) // json.Marshal's object, its brace off
	err = saveFile(c.cfg.SnapshotPath+knownSuffix, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	if err == nil {
		c.kf = f
	}
	return err
}

// saveFile writes the members file (a variable: tests make it fail).
var saveFile = store.WriteFileAtomic

// knownBefore writes the members file again, as it stands, naming the
// snapshot about to be written at written as pending: a crash that
// leaves that snapshot beside the file leaves it named.
func (c *Cache) knownBefore(written int64) error {
	f := c.kf
	f.Version = 1
	f.Snapshot = c.snapWritten
	f.Pending = append(slices.Clone(c.unsure), written)
	return c.saveKnown(f)
}

// logLost returns the damage of a write log lost whole: the members file
// says segments had been started after its snapshot (kf.Log), and there
// is none. Their writes, acknowledged, are in no file (a log directory
// removed or not restored beside its snapshot: the start read as one
// after a clean Close, and went on without them; found by review).
func logLost(lst journal.ReadStats, kf knownFile, path string) error {
	if !kf.Log || lst.Segments > 0 {
		return nil
	}
	if kf.LogFrom == 0 && kf.Snapshot == 0 { // from a first start on: no snapshot was written
		return fmt.Errorf("%w: the write log beside %s is missing: it held every write since the member first started, and no snapshot does (to start empty, remove %s%s too)",
			journal.ErrDamaged, path, path, knownSuffix)
	}
	return fmt.Errorf("%w: the write log beside %s is missing: segments from %d on held writes the snapshot may not hold (to start from the snapshot alone, remove %s%s too)",
		journal.ErrDamaged, path, kf.LogFrom, path, knownSuffix)
}

// logGap returns the damage of a write log whose oldest segment names as
// its predecessor (lst.Predecessor) a segment the snapshot does not hold
// (logFrom, the members file's, or later), nil if there is none or it
// cannot tell: those segments, and the writes acknowledged in them, are
// missing (lost whole, or an older snapshot and its members file put
// back beside a newer log, as from a backup: both read as whole, and the
// writes in between were lost without a word; found by review).
func logGap(lst journal.ReadStats, logFrom uint64) error {
	if lst.Predecessor == 0 || logFrom == 0 || lst.Predecessor < logFrom {
		return nil
	}
	return fmt.Errorf("%w: the snapshot holds the writes before log segment %d, and the oldest segment left follows segment %d: segments %d to %d are missing (a snapshot older than the log, put back from a backup?)",
		journal.ErrDamaged, logFrom, lst.Predecessor, logFrom, lst.Predecessor)
}
