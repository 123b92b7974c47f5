package gossip

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/bcache-go/bcache/transport"
	"github.com/hashicorp/memberlist"
)

// Status is where this member stands with the rest of the cluster.
type Status struct {
	// Members are the live members other than this one, by name, each with
	// when an anti-entropy exchange with it last completed (zero: none
	// yet).
	Members []PeerStatus
	// FirstSync is when this member's first anti-entropy exchange with a
	// peer completed since it started (zero: not yet). From then on it
	// holds what that peer held when the exchange began.
	FirstSync time.Time
	// FirstSyncWith is the peer of the exchange that made the first sync
	// ("" before it).
	FirstSyncWith string
	// Pending counts local writes not yet sent to the peers.
	Pending int
	// LastExchange is when the last anti-entropy exchange with any member
	// completed; Returned when the last one that came after none for
	// longer than Protocol.FailedTimeout did: this member's return from
	// an absence (zero: none).
	LastExchange, Returned time.Time
	// MetHolders are the last members (at most 16, oldest first) that
	// this member, once synced (or a founder that met another member),
	// saw for the first time holding their cluster's state already, or
	// restored state built with others: most often members of another
	// cluster, met as the two merge, whose watermarks this member lacks.
	MetHolders []string
	// MetHoldersSeq numbers each of MetHolders' listing: a member listed
	// again (seen before, gone, and back holding) has a new number.
	MetHoldersSeq []uint64
	// Joining are the addresses this member is trying to join and could not
	// the last time (the seed peers while it is alone, members it lost),
	// with the cause, and the members it refused in the last minute and
	// has not taken since (a name conflict, other keys: at most 256
	// addresses; a member whose messages this member cannot read at all
	// is memberlist's to drop, not listed).
	Joining []JoinFailure
}

// PeerStatus is a live member as Status shows it.
type PeerStatus struct {
	Name, Addr string
	LastSync   time.Time
}

// JoinFailure is an address this member failed to join, the last time it
// tried.
type JoinFailure struct {
	Addr string
	// Cause is "refused", "timed out", "wrong key" (the peer's frames do
	// not decrypt with this member's key, or the other way round),
	// "closed" (the peer hung up without answering: most often its Label
	// is another, as a member ignores other clusters' members; or it was
	// shutting down), "name conflict" (the member at Addr has this
	// member's name, or a live member's: give each member its own; kept
	// for a minute after it was last seen, or until a member at Addr is
	// taken; "name too long" and "bad name",
	// empty or not valid UTF-8, likewise), "lookup" (a peer's name did
	// not resolve, or the PeerSource failed: Addr is the peer as
	// configured) or "failed"; Err is the error itself.
	Cause, Err string
	// Since is the first failure of the current run of failures, At the
	// last; Failures counts them.
	Since, At time.Time
	Failures  int
}

// nodeView is the node's part of Status, as copied at the end of the
// last section under the node's lock (see Replicator.locked).
type nodeView struct {
	first             int64 // the first sync's time, 0 before
	firstWith         string
	pending           int
	lastAny, returned int64 // see transport.Node.Exchanges
}

// Status returns where this member stands: live members and when each was
// last synced with, the first sync, writes not yet sent, and the addresses
// it fails to join. It never waits for the protocol's lock: the first
// sync, the exchanges and the writes queued in the node are as of the
// last frame, write or timer handled (as Stats's counters).
func (r *Replicator) Status() Status {
	r.statsMu.Lock()
	view, syncs := r.nodeView, r.syncs // syncs is never written once published
	r.statsMu.Unlock()
	first := view.first
	s := Status{Pending: view.pending + r.writes.len(), FirstSyncWith: view.firstWith}
	if first != 0 {
		s.FirstSync = time.Unix(0, first)
	}
	if view.lastAny != 0 {
		s.LastExchange = time.Unix(0, view.lastAny)
	}
	if view.returned != 0 {
		s.Returned = time.Unix(0, view.returned)
	}
	r.mu.Lock()
	s.MetHolders = slices.Clone(r.heldBy)
	for _, name := range r.heldBy {
		s.MetHoldersSeq = append(s.MetHoldersSeq, r.heldSeq[name])
	}
	for name, n := range r.alive {
		if name == r.cfg.Name {
			continue
		}
		p := PeerStatus{Name: name, Addr: n.Address()}
		if at, ok := syncs[name]; ok {
			p.LastSync = time.Unix(0, at)
		}
		s.Members = append(s.Members, p)
	}
	for _, f := range r.joinFailures {
		s.Joining = append(s.Joining, *f)
	}
	for addr, f := range r.conflicts {
		if time.Since(f.At) > conflictMemory {
			delete(r.conflicts, addr)
			continue
		}
		if _, also := r.joinFailures[addr]; !also {
			s.Joining = append(s.Joining, *f)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(s.Members, func(a, b PeerStatus) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Joining, func(a, b JoinFailure) int { return strings.Compare(a.Addr, b.Addr) })
	return s
}

// Hurry starts an anti-entropy exchange with the next peer at once,
// unless one is in flight: for a reader waiting for a write that has not
// arrived.
func (r *Replicator) Hurry() {
	if r.closed.Load() {
		return
	}
	r.locked(func() []transport.Envelope {
		r.node.Hurry(r.now())
		return nil
	})
}

// Synced returns a channel closed when this member's first anti-entropy
// exchange completes.
func (r *Replicator) Synced() <-chan struct{} { return r.synced }

// maxJoinText bounds a join failure's text: a PeerSource's error, or the
// value it panics with, is the application's, of any length (one of
// 1 MiB was kept whole in Status and written whole to the log: found by
// review); memberlist's and the resolver's are short.
const maxJoinText = 2048 // an SRV name's three failing targets of 253-byte names, and the count of the rest, fit

// joinText is a join's error on one line, without the list memberlist
// wraps a single error in ("1 error occurred: * ..."), cut to maxJoinText.
func joinText(err error) string {
	text := strings.Join(strings.Fields(err.Error()), " ")
	if rest, ok := strings.CutPrefix(text, "1 error occurred: * "); ok {
		text = rest
	}
	if len(text) > maxJoinText {
		const more = "..."
		cut := maxJoinText - len(more)
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + more
	}
	return text
}

// joinFailureLogEvery is how often a failure to join one address is
// logged again while it keeps failing.
const joinFailureLogEvery = time.Minute

// joinFailed records a failure to join addr, and logs it at the first
// failure and then once a minute.
func (r *Replicator) joinFailed(addr string, err error) {
	now := time.Now()
	r.mu.Lock()
	if r.gone {
		r.mu.Unlock()
		return
	}
	f := r.joinFailures[addr]
	if f == nil {
		f = &JoinFailure{Addr: addr, Since: now}
		r.joinFailures[addr] = f
	}
	f.Cause, f.Err, f.At = joinCause(err), joinText(err), now
	f.Failures++
	// At most maxRefusalLogs lines a minute in all, as refusals: one a
	// minute per address, peers that change at every look (a source's,
	// a name's) made a line each at every look (found by review).
	log := f.Failures == 1 || now.Sub(r.joinLogged[addr]) >= joinFailureLogEvery
	unlogged := 0
	if log = log && r.joinLogs.take(now); log {
		r.joinLogged[addr] = now
		unlogged, r.joinLogs.unlogged = r.joinLogs.unlogged, 0
	}
	failures, cause, text := f.Failures, f.Cause, f.Err
	r.mu.Unlock()
	if log {
		// The error as Status gives it, on one line: memberlist's
		// "1 error occurred:\n\t* ..." went into the log as it was
		// (found by review).
		r.log.Warn().Str("error", text).Str("peer", addr).Str("cause", cause).Int("failures", failures).
			Int("failures_unlogged", unlogged).Msg("cannot join peer; retrying")
	}
}

// joined clears the failures to join addr.
func (r *Replicator) joined(addr string) {
	r.mu.Lock()
	delete(r.joinFailures, addr)
	delete(r.joinLogged, addr)
	r.mu.Unlock()
}

// forgetJoinFailures drops the failures of addresses no longer tried (a
// member back by another way, a seed while the member has peers).
func (r *Replicator) forgetJoinFailures(targets []string) {
	keep := make(map[string]bool, len(targets)) // not a scan of targets a failure, under the lock (found by review)
	for _, t := range targets {
		keep[t] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for addr := range r.joinFailures {
		if !keep[addr] {
			delete(r.joinFailures, addr)
		}
	}
	// Name conflicts no longer seen go too (Status forgets them as well,
	// but may never be called), and the log times of addresses that are
	// neither: one entry an address a conflict ever came from was kept
	// for good (found by review).
	for addr, f := range r.conflicts {
		if time.Since(f.At) > conflictMemory {
			delete(r.conflicts, addr)
		}
	}
	for addr := range r.joinLogged {
		if r.joinFailures[addr] == nil && r.conflicts[addr] == nil {
			delete(r.joinLogged, addr)
		}
	}
}

// conflictMemory is how long a name conflict stays in Status after it was
// last seen (memberlist sees it again at every exchange while it lasts).
const conflictMemory = time.Minute

// nameConflict records that a member at other's address announced this
// member's name (existing is this member), or that one announced the
// name of a live member (existing), as a join failure of cause "name
// conflict" at the other's address, logged at its first sight and then
// once a minute. Two members of one name split what their peers send
// them between them; the newcomer is ignored by those who knew the first.
func (r *Replicator) nameConflict(existing, other *memberlist.Node) {
	if log, unlogged := r.refused(other, "name conflict", fmt.Sprintf("the member at %s announces the name %q, which the member at %s has", other.Address(), other.Name, existing.Address())); log {
		r.log.Error().Str("peer", other.Address()).Str("name", other.Name).Str("holder", existing.Address()).
			Int("refusals_unlogged", unlogged).Msg("two members have one name: give each member its own")
	}
}

// maxConflicts bounds the refused members' addresses kept for Status;
// maxRefusalLogs the refusals logged a minute, whatever their addresses.
// A member holding the key can announce members at any addresses it
// likes: one entry and one log line each, every minute, grew the map
// (and Status) without bound and flooded the log (found by review).
const (
	maxConflicts   = 256
	maxRefusalLogs = 16
)

// refused records a member refused (a name conflict, wrong keys) for
// Status, and reports whether to log it (the first time, then once a
// minute while it lasts, and at most maxRefusalLogs a minute in all) and
// how many refusals went unlogged since the last line for want of that
// budget. Past maxConflicts addresses, a new one is neither kept nor
// logged, but counted as unlogged. Called under memberlist's lock: it
// takes only r.mu.
func (r *Replicator) refused(n *memberlist.Node, cause, text string) (log bool, unlogged int) {
	now := time.Now()
	addr := n.Address()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return false, 0
	}
	f := r.conflicts[addr]
	if f == nil && len(r.conflicts) >= maxConflicts {
		r.refusalLogs.unlogged++
		return false, 0
	}
	if f == nil || f.Cause != cause {
		f = &JoinFailure{Addr: addr, Since: now, Cause: cause}
		r.conflicts[addr] = f
	}
	f.Err, f.At = text, now
	f.Failures++
	if f.Failures > 1 && now.Sub(r.joinLogged[addr]) < joinFailureLogEvery {
		return false, 0
	}
	if !r.refusalLogs.take(now) {
		return false, 0
	}
	r.joinLogged[addr] = now
	unlogged, r.refusalLogs.unlogged = r.refusalLogs.unlogged, 0
	return true, unlogged
}

// logBudget allows maxRefusalLogs lines a minute, and counts the refusals
// it did not let log.
type logBudget struct {
	start    time.Time // of the minute counted
	lines    int       // logged in it
	unlogged int       // refusals not logged since the last line
}

// take reports whether a line may be logged now, counting it if so and
// the refusal as unlogged if not.
func (b *logBudget) take(now time.Time) bool {
	if now.Sub(b.start) >= time.Minute {
		b.start, b.lines = now, 0
	}
	if b.lines >= maxRefusalLogs {
		b.unlogged++
		return false
	}
	b.lines++
	return true
}

// joinCause classifies an error of memberlist's Join.
func joinCause(err error) string {
	var ne net.Error
	var dnsErr *net.DNSError
	msg := strings.ToLower(strings.TrimSpace(err.Error()))
	switch {
	case errors.As(err, &dnsErr), strings.HasPrefix(msg, "peer source"):
		return "lookup"
	case strings.Contains(msg, "refused"):
		return "refused"
	case errors.As(err, &ne) && ne.Timeout(), strings.Contains(msg, "timeout"), strings.Contains(msg, "timed out"):
		return "timed out"
	case strings.Contains(msg, "decrypt"), strings.Contains(msg, "encryption"), strings.Contains(msg, "keyring"):
		return "wrong key"
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), strings.HasSuffix(msg, ": eof"),
		strings.Contains(msg, "connection reset"):
		// memberlist hangs up on a stream whose label is not its own,
		// without a word.
		return "closed"
	}
	return "failed"
}
