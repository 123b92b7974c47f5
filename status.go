package bcache

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Status is where a member stands with the rest of the cluster: whom it
// sees, when it last synced with each, whether it has synced at all since
// it started, what it has not sent yet, what it holds, and the peers it
// cannot reach with the reason.
type Status struct {
	Name string `json:"name"`
	// At is when the status was taken, on this member's clock
	// (Config.Clock), as FirstSync and each peer's LastSync are: an age
	// is At less one of them.
	At time.Time `json:"at"`
	// Closed says the Cache was closed: it serves nothing, and is not
	// ready; it lists no peer then, and is alone (Synced, FirstSync,
	// Founder and Founding keep what they were: they say what happened
	// while it ran, as the metrics' bcache_synced and bcache_founder do).
	Closed bool `json:"closed,omitempty"`
	// Alone says that no other member is live in this member's view.
	Alone bool `json:"alone"`
	// PeersConfigured says Config.Peers or the PeerSource may name a
	// member other than this one: such a member is not ready (see Ready)
	// while alone. It is false for a member configured with no peers, and
	// for one whose peers, as last looked up, were none but itself (the
	// first member of a cluster found by a DNS name or a PeerSource),
	// until a lookup finds another; it is true until a lookup settles it,
	// and while every lookup fails before one has (a failed lookup
	// settles nothing: after one that found this member alone, it stays
	// false).
	PeersConfigured bool `json:"peers_configured"`
	// Founder says this member founded its cluster and has met no other
	// member since: a lookup of its peers found none but itself before it
	// had met any, and its state is of a lineage that met no other member
	// (it restored nothing, or its lineage mark, a file beside its
	// snapshot, SnapshotPath and ".founder", says so); or that mark says
	// it founded its cluster (a founder that restarted, under the NodeName
	// it had, or, if New drew it, on the same files). What it holds is all
	// the cluster
	// has, so it is ready without a sync, and stays so while its peers
	// name others that have not come (the next pod of a StatefulSet,
	// listed before it runs, or one that never starts). Once it meets
	// another member it is not a founder again in this process (and
	// removes its mark): from then on it is ready
	// when synced and not alone, as any member. A member that finds only
	// itself while the others are out of reach, having restored nothing
	// (restarted empty during a partition, behind a stale DNS answer),
	// takes itself for a founder too, until it meets them.
	Founder bool `json:"founder,omitempty"`
	// Founding says this member was a founder in this process, met
	// another member less than 30 s ago, and has not completed an
	// exchange since: it still holds all the cluster had, and stays ready
	// until that first exchange, or for the 30 s (not ready from the
	// moment it met the newcomer, a founder scaled from one member to two
	// left no member ready until it had synced, found by review). Not
	// once it has met a member that said it held its cluster's state (or
	// restored state built with others): it did not hold all its cluster
	// had then (it took itself for a founder wrongly, restarted empty
	// during a partition, or its PeerSource answered nothing before it
	// named the cluster), and is ready once synced, as any member.
	Founding bool `json:"founding,omitempty"`
	// Synced says that an anti-entropy exchange with a peer has completed
	// since New (FirstSync is when), with a peer that held its cluster's
	// state, unless none live did (see WaitSynced): from then on the
	// member holds everything that peer held when the exchange began, a
	// restored snapshot brought up to date included (but a key hidden by
	// another of its 64-bit key hash that the member holds, not older:
	// only keys chosen to collide; it comes at the next exchange). An
	// exchange in which this member sent the peer records (a restored
	// member's values) completes once the peer has acknowledged them,
	// with the deletes of those it had collected (or, from a peer of an
	// earlier release, which sends no acknowledgement, at the exchange's
	// timeout: four AntiEntropyIntervals, 2 s at least).
	Synced    bool      `json:"synced"`
	FirstSync time.Time `json:"first_sync,omitzero"`
	// Peers are the other live members, by name, each with when an
	// exchange with it last completed (zero: none yet).
	Peers []PeerStatus `json:"peers"`
	// Joining are the addresses this member tries to join and failed to
	// the last time (none once closed): its Peers while it is alone,
	// members it lost; and
	// those of members it refused in the last minute and has not taken
	// since (a name conflict, other keys: at most 256 addresses, and 16
	// lines logged a minute). A member refused for its keys is one whose
	// messages this member read (a rotation's step skipped, a member
	// restarted with a stale key):
	// those it cannot read at all (a key it does not know, or none where
	// it has one) are dropped by memberlist, which logs an error for
	// each, and are not listed; the member they come from lists this one
	// ("wrong key").
	Joining []JoinFailure `json:"joining,omitempty"`
	// PendingDeltas counts local writes not yet sent to the peers.
	PendingDeltas int `json:"pending_deltas"`
	// Records, Tombstones and Evicted are as in Stats.
	Records    int `json:"records"`
	Tombstones int `json:"tombstones"`
	Evicted    int `json:"evicted"`
}

// PeerStatus is another live member and when this one last completed an
// anti-entropy exchange with it.
type PeerStatus struct {
	Name     string    `json:"name"`
	Addr     string    `json:"addr"`
	LastSync time.Time `json:"last_sync,omitzero"`
}

// JoinFailure is an address a member failed to join, the last time it
// tried: Cause is "refused", "timed out", "wrong key", "closed" (the peer
// hung up without answering: most often another cluster Label), "name
// conflict" (the member there has this member's name, or a live member's),
// "name too long" or "bad name" (the member there announces a name over
// 255 bytes, or one empty or not UTF-8: refused, as a conflict is),
// "lookup" (a peer's name did not resolve, or the PeerSource failed) or
// "failed", Err the error; Failures counts the failures in a row, from
// Since to At (on the member's clock, as Status.At).
type JoinFailure struct {
	Addr     string    `json:"addr"`
	Cause    string    `json:"cause"`
	Err      string    `json:"error"`
	Failures int       `json:"failures"`
	Since    time.Time `json:"since"`
	At       time.Time `json:"at"`
}

// Ready reports whether a load balancer should send this member traffic:
// it has synced with a peer since it started, or it was configured
// without peers, or it founded its cluster and has met no other member
// (Founder) or not synced with one since (Founding); and it is not alone
// while it has peers to join, unless it is a founder.
func (s Status) Ready() bool {
	if s.Closed {
		return false
	}
	if !s.PeersConfigured || s.Founder || s.Founding {
		return true
	}
	return s.Synced && !s.Alone
}

// Status returns where this member stands (see Status). It does not wait
// for a frame being applied: the replication's part is as of the last
// frame, write or timer it handled; the counts of records take each
// shard's lock a moment.
func (c *Cache) Status() Status {
	// Founder and Founding are read before the first sync: a founder's
	// first sync closes the channel FoundedUnsynced reads after it records
	// the sync, so read in this order a Status that finds Founding over
	// finds Synced; read after, one taken across that sync could find
	// neither, and a founder ready before and after it read as not ready
	// (found by review).
	founder, founding := c.repl.Founder(), c.repl.FoundedUnsynced()
	rs := c.repl.Status()
	closed := c.closed.Load()
	if closed {
		// Closed: no live peer, as Members says (the replication's last
		// view listed them, and the metrics with them: found by review),
		// and no address it tries to join (its last failures were
		// listed, and counted by the metrics, as if it still tried).
		rs.Members, rs.Joining = nil, nil
	}
	others, _ := c.peersConfigured()
	st := c.store.Stats()
	s := Status{
		Name: c.cfg.NodeName, At: time.Unix(0, c.phys()), Closed: closed, Alone: len(rs.Members) == 0, PeersConfigured: others, Founder: founder, Founding: founding,
		Synced: !rs.FirstSync.IsZero(), FirstSync: rs.FirstSync, PendingDeltas: rs.Pending,
		Records: st.Records, Tombstones: st.Tombstones, Evicted: st.Evicted,
		Peers: make([]PeerStatus, len(rs.Members)),
	}
	for i, m := range rs.Members {
		s.Peers[i] = PeerStatus{Name: m.Name, Addr: m.Addr, LastSync: m.LastSync}
	}
	// The replication notes its join failures on the process's clock;
	// they are given on the member's, as At is (they read an hour in the
	// future of At on a member whose Config.Clock ran an hour behind:
	// found by review).
	skew := s.At.Sub(time.Now())
	for _, f := range rs.Joining {
		s.Joining = append(s.Joining, JoinFailure{Addr: f.Addr, Cause: f.Cause, Err: f.Err, Failures: f.Failures,
			Since: f.Since.Add(skew).Round(0), At: f.At.Add(skew).Round(0)})
	}
	return s
}

// peersConfigured reports whether Config.Peers or the PeerSource may name
// a member other than this one (see gossip's SeedsElsewhere), with the
// channel closed when that changes.
func (c *Cache) peersConfigured() (bool, <-chan struct{}) {
	if c.cfg.PeerSource == nil && !slices.ContainsFunc(c.cfg.Peers, func(p string) bool { return p != c.Addr() }) {
		return false, nil
	}
	return c.repl.SeedsElsewhere()
}

// WaitSynced returns when this member has completed an anti-entropy
// exchange with a peer since New, or when it has no peers to sync with:
// configured without any, or its peers, as last looked up, name no member
// but itself (the first member of a cluster found by a DNS name or a
// PeerSource), or it is a founder (see Status.Founder) or a founder that
// met members and has not synced with one yet (Status.Founding); or with
// ctx's error, or ErrClosed once Close is called, first. Writes do not
// wait for it: a member takes them from the start.
// It tells when reads stop missing what the cluster held before this
// member came (or came back: restarted, its process new). An exchange
// with a member that holds none of its cluster's state yet (a newcomer
// too: members say which they are in their metadata) is no first sync
// while one that holds it is live: two members that joined at the same
// time, both empty, took their exchange with each other for one, and
// were synced before they had met the member holding the cluster's data
// (8 of 30 newcomers starting three at a time beside a member of 20,000
// keys; found by review). A member of the release before is taken as
// holding its cluster's state. It says nothing
// of a partition healed since: a member cut off from its peers and back
// has synced already, and is ready (Status.Ready) from the moment it sees
// a peer again, before the exchange that brings it what it missed, which
// starts at once.
func (c *Cache) WaitSynced(ctx context.Context) error {
	for {
		if c.closed.Load() {
			return fmt.Errorf("bcache: wait synced: %w", ErrClosed)
		}
		others, changed := c.peersConfigured()
		if !others || c.repl.Founder() || c.repl.FoundedUnsynced() {
			return nil
		}
		select { // synced already: nil, whatever ctx says (a select took either at random)
		case <-c.repl.Synced():
			return nil
		default:
		}
		select {
		case <-c.repl.Synced():
			return nil
		case <-changed: // looked up again: ask again
		case <-ctx.Done():
			return fmt.Errorf("bcache: wait synced: %w%s", ctx.Err(), c.notSyncedWhy())
		case <-c.done:
			return fmt.Errorf("bcache: wait synced: %w", ErrClosed)
		}
	}
}

// notSyncedWhy says, for WaitSynced's error, why no first sync came: the
// peers it cannot join, with their causes, when it is alone.
func (c *Cache) notSyncedWhy() string {
	st := c.Status()
	if !st.Alone || len(st.Joining) == 0 {
		return ""
	}
	f := st.Joining[0]
	why := fmt.Sprintf(" (alone: cannot join %s: %s", f.Addr, f.Cause)
	if n := len(st.Joining) - 1; n > 0 {
		why += fmt.Sprintf(", and %d more: see Status().Joining", n)
	}
	return why + ")"
}
