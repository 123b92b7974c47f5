package gossip

import "github.com/hashicorp/memberlist"

// delegate receives memberlist's callbacks, on memberlist's goroutines. A
// frame is handed to the protocol there and then (NotifyMsg applies its
// records under the protocol's lock): memberlist handles one user message
// at a time per handler, so a slow apply delays the next frame, and the
// bounds on what one frame may ask for (package transport/wire) bound that
// delay. On the default UDP transport most frames skip memberlist's
// goroutines: the transport's reader opens them and calls the protocol
// itself (direct.go), one frame at a time too. Membership events only
// note the change and wake the loop.
type delegate struct{ r *Replicator }

// NodeMeta implements memberlist.Delegate. A member's metadata says that
// it is leaving (Close), so that the others tell its leave from a failure
// (memberlist's own notice of either looks the same); until then it is a
// number drawn at Start, so that a member that restarts under the same
// name and address before the others declared it dead (and so takes its
// old place without a join) changes its metadata: memberlist then tells
// the others (NotifyUpdate), and they take its new delegate protocol
// range, which memberlist changes in place without a word.
func (d delegate) NodeMeta(int) []byte {
	if d.r.leaving.Load() {
		if d.r.cfg.KeepsState {
			return leavingKeepsMeta
		}
		return leavingMeta
	}
	if d.r.holds.Load() {
		return d.r.meta[1]
	}
	return d.r.meta[0]
}

// leavingMeta is the metadata of a member that is leaving; leavingKeepsMeta
// of one that comes back under its name with the state it holds
// (Config.KeepsState). A member of a release before the second takes it
// for a member that failed: it waits for it for FailedTimeout, which is
// safe.
var (
	leavingMeta      = []byte("leaving")
	leavingKeepsMeta = []byte("leaving, keeping its state")
)

// NotifyMsg implements memberlist.Delegate: a frame from a peer.
func (d delegate) NotifyMsg(b []byte) { d.r.received(b) }

// GetBroadcasts implements memberlist.Delegate. bcache never rides on
// memberlist's piggyback queue: it carries a few dozen messages a second.
func (delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate. The cache is never shipped in
// memberlist's push/pull: anti-entropy runs in bcache's own messages.
func (delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (delegate) MergeRemoteState([]byte, bool) {}

// NotifyJoin implements memberlist.EventDelegate.
func (d delegate) NotifyJoin(n *memberlist.Node) { d.r.memberChanged(n, true) }

// NotifyLeave implements memberlist.EventDelegate.
func (d delegate) NotifyLeave(n *memberlist.Node) { d.r.memberChanged(n, false) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.r.memberChanged(n, true) }

// NotifyConflict implements memberlist.ConflictDelegate: a member
// announced itself under a name that a live member at another address
// has. memberlist ignores the newcomer; the member whose name it is
// reports it (see Replicator.nameConflict).
func (d delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.r.nameConflict(existing, other)
}
