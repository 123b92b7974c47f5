package gossip

import "github.com/hashicorp/memberlist"

// delegate receives memberlist's callbacks. They run on memberlist's
// goroutines and must not block: they only queue work for the loop.
type delegate struct{ r *Replicator }

// NodeMeta implements memberlist.Delegate: members carry no metadata.
func (delegate) NodeMeta(int) []byte { return nil }

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
