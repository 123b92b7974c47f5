// Package gossip carries bcache's sync protocol (package transport) over
// hashicorp/memberlist on real UDP and TCP sockets.
//
// A [Replicator] owns one memberlist instance and the goroutines that drive
// a transport.Node: membership and failure detection come from memberlist;
// deltas and anti-entropy are bcache's own messages, sent directly to the
// members that need them, never through memberlist's piggyback broadcast
// queue (which carries a few dozen messages a second) and never in its
// full-state push/pull (the cache is not shipped there at all).
//
// # Frames
//
// memberlist user messages do not say who sent them, so each frame carries
// the sender's name first, except a direct delta (a write sent straight to
// every other member of a small cluster), which its receiver applies and
// neither relays nor answers: it goes to members of this release with a
// two-byte header instead (frame.go). A frame that fits the packet size (memberlist's
// UDPBufferSize, 1400 bytes by default, LoopbackPacketSize for a member
// reached at a loopback address, minus what memberlist adds around it)
// goes as one datagram: in memberlist's packet format, built and
// written by bcache's own UDP transport, and opened by it on arrival
// (direct.go), so that a frame skips memberlist's send path and its
// receiving goroutines; on another transport (memnet), through
// SendBestEffort and memberlist's handler. An anti-entropy frame of up
// to 16 datagrams (of the default size, whatever the member's) goes as
// fragments, each sent twice, that the receiver
// puts back together (a lost frame costs the session a retry, or its
// completion on the responder's side, not a stalled TCP connection; see
// fragment.go); a larger one (a batch of big values, a
// far-behind member's repair, a value of up to the decoder's limit, a
// call's request or answer) goes over a stream of its own, written as
// memberlist's SendReliable writes one, without its copies (reliable.go),
// and read by the peer's transport as memberlist reads one, into a buffer
// it reuses (streamin.go; memberlist gets every other stream). Each peer with such frames waiting has a sender
// goroutine of its own, which writes them in order, one stream at a time,
// and ends once they are sent: a peer that stops reading holds up only its
// own frames. Every stream gets a deadline of TCPTimeout from its dial
// (memberlist sets none on the streams it dials for user messages), and Close cuts the streams
// still open. The frames waiting for a stream are bounded in bytes: 16 MiB
// per peer (a single larger frame is taken when nothing is queued for that
// peer) and 64 MiB in all, a frame broadcast to several peers counting
// once; past a bound a frame is dropped and counted (Stats.StreamsDropped,
// and StreamsDroppedPeer when its peer's bound refused it; a call's frame
// in Stats.CallsDropped).
//
// A received frame is handed to the protocol node directly (under the
// node's lock), with no queue of ours in between: on the reader goroutine
// of this package's transport for a datagram (see Frames), on memberlist's
// handler goroutine for a stream or on a Transport of the caller's; local writes reach it through a bounded queue; a writer that
// finds it half full yields to the protocol goroutine, so that a burst on
// one CPU is slowed rather than dropped. What a full queue drops
// (memberlist's handler queue, our write and stream queues) is counted and
// anti-entropy repairs.
//
// # Membership
//
// Start returns as soon as memberlist listens: joining the configured peers
// happens in the background, so a node booting while its peers are
// unreachable (an edge node offline) starts anyway, serves local reads and
// writes, and joins once a peer answers. memberlist never re-contacts
// members it declared dead, so every RejoinInterval (a second with
// LANTimings) the Replicator tries to join the seed peers and every member
// it has seen that is no longer alive, each on its own with at most one
// attempt in flight (a member lost for longer than the protocol's
// FailedTimeout less and less often, up to every 5 minutes; one whose
// address a member of another name took is forgotten): that is what
// reunites the two sides of a healed partition, and one member that does
// not answer holds up no other. A member that has lost no one looks at its
// seeds all the same, and joins those that are not members' addresses:
// two sides that never met (a cluster booted while split, or seed lists
// that differed at first) are no one's lost members. It looks after ten
// intervals, then twice as long each time, up to every 5 minutes, while
// it meets no one new (a seed that is a load balancer's address is
// joined at each look, a whole exchange of state). At most 32 join
// attempts are in flight at a time; the rest wait for a round. Members that
// left on purpose are not chased, and the protocol stops waiting for them
// (transport.Node.Left); memberlist's notice of a leave looks like that of
// a failure, so a member about to leave says so first in its metadata.
// Close does that, leaves the cluster, shuts memberlist down and waits for
// every goroutine.
//
// # Security
//
// With a SecretKey, memberlist encrypts every packet and stream with
// AES-GCM and drops what does not decrypt: a process without the key, or
// with another, can neither join nor inject a write. A Label separates
// clusters that share a network. Frames that do reach the protocol are
// still size-capped and decoded against their grammar, each length checked
// before anything is allocated for it (package transport/wire).
//
// # Logs
//
// Config.Logger (silent unless given) receives the Replicator's events and
// memberlist's own log lines, as events at their level with a "peer" field
// for the address a line names, without memberlist's timestamp and
// prefix. memberlist logs a line for each packet it refuses, so a process
// without the cluster key could flood the log: the lines of one kind (the
// message with its numbers and addresses blanked) are written at most once
// a second, the next one written carrying a "suppressed" count, and
// Stats.MemberlistErrors and MemberlistWarnings count them all.
//
// # Testing without sockets
//
// Package memnet is an in-memory memberlist transport with partitions,
// directional loss and delay, so that real memberlist runs in one process
// under the faults a test chooses (Config.Transport). Production code does
// not import it.
package gossip
