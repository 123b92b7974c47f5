// Package transport is bcache's sync protocol: a deterministic state machine
// that turns local writes, received frames and the passage of time into
// frames to send (their messages and codec are package transport/wire). It
// does no I/O, starts no goroutines and reads no clock: the host (the root
// package over memberlist, or a simulated network in tests) calls
// [Node.Write], [Node.Receive] and [Node.Tick] and sends what they return.
//
// The protocol talks to the replicated state through the [Replica]
// interface, so it never depends on package lww; the root package and the
// proptest harness adapt an lww.Map to it.
//
// # Deltas
//
// Every local change is handed to [Node.Write], which queues it in a bounded
// buffer coalesced per key: only the newest record of a key is shipped. The
// buffer is flushed as one or more batches that each fit the packet budget.
// By default nothing waits for a timer (group commit): the host hands the
// node, with [Node.WriteGroup], every write that arrived while it was
// sending the previous group, and the group leaves at once. An isolated
// write is sent as soon as it is made; under load the groups grow by
// themselves, as long as sending takes. With a FlushInterval, a write that
// finds the node idle (nothing flushed for that long) is sent at once and
// later ones are batched and flushed at most every FlushInterval. Either
// way a full packet's worth leaves as soon as it is queued, and a full
// buffer never blocks a write: the record is counted as dropped and left
// to anti-entropy.
//
// Fan-out. A batch must reach all N members. Sending it directly to all of
// them is optimal in total bytes (N-1 copies) but makes the writer's send
// load grow linearly with N; epidemic relays bound each node's load but
// multiply the total bytes by the gossip fan-out and reach everyone only
// with high probability. bcache uses a broadcast tree in the spirit of
// Plumtree's eager-push tree, but computed instead of negotiated: every
// member sorts the membership into the same ring (by key hash of the member
// name), and the batch of origin o travels down the Fanout-ary tree rooted
// at o's position on that ring: the member q places after o forwards the
// frame, unchanged, to the members q*Fanout+1 .. q*Fanout+Fanout places
// after o. With agreeing membership views every member receives each batch
// exactly once (N-1 copies in total, the minimum), no member sends more than
// Fanout copies of any batch, and a batch crosses ceil(log_Fanout(N)) hops.
// Trees of different origins are rotations of each other, so relay load
// spreads evenly. With Fanout 8, clusters of up to 9 members get direct
// sends, one hop. When views disagree or a relay is down, a subtree may miss
// a batch (anti-entropy repairs it) or get it twice: a batch that brings a
// member nothing new goes no further (batch numbers, which any member
// holding the key can forge, decide nothing). A batch never loops: each
// relay hands it to members further round the ring from its origin.
//
// # Anti-entropy
//
// Every AntiEntropyInterval a node starts a session with one peer, chosen
// at distances 1, 2, 4, ... along the ring as in a hypercube, so that a
// difference held by one member reaches all N in about log2(N) intervals
// even if every delta was lost. The two compare their digests top-down: each message
// carries the hashes of the children of the nodes that differed in the
// previous one, so a converged pair exchanges the root's 16 children and an
// empty reply, a few hundred bytes whatever the number of keys, and d
// differences among n keys cost O(d log n) hashes. The levels are arranged
// so that the initiator learns which leaves differ; it then sends the
// versions (key hash and timestamp) it holds in a bounded number of them at
// a time, the responder answers with its newer records and the key hashes
// it wants, and the initiator sends those. Two such chunks are in flight at
// once, so that the responder gathers the next chunk's records while the
// initiator applies the last's (one at a time, a member far behind left
// one core idle at each end in turn). Records travel in ascending
// timestamp order (a bucket's records across messages too: a message cut
// to its size limit is cut by time).
//
// Versions are matched by key hash (crdt.HashKey: 64 bits, unkeyed, so a
// caller choosing keys can make two share one). A side that holds keys of
// one hash lists the hash once, as collided, and the responder then sends
// its every record of that hash and asks for the initiator's; a side that
// holds one of them cannot tell, so the side that receives a record of a
// key it lacks, at a hash it held, sends its own records of that hash
// back in the same session (the initiator with its next Repair, the
// responder in a Reject). Listed as one of the keys, the other was never
// repaired. A Reject is awaited by nothing: the answer to the final
// Repair lost (or that Repair), the initiator completed lacking the
// responder's key. So a Versions carries, to a peer that takes them
// (Node.ListPrints, Node.ListPrintsTo), a second hash of each key, keyed by the session's
// id so that keys chosen beforehand cannot share it (wire.KeyVersion.Print):
// a responder that holds another key of a listed hash sees that the keys
// differ, and sends its record in the reply the initiator awaits and
// asks again for when lost. A repair that carries such records gets room for them beyond
// MaxRepairBytes (each ask sends them all again), up to 16 MiB and what a
// frame holds; keys of one hash whose records outgrow that are not
// repaired past it, and a session that meets them, moving nothing else,
// ends without completing after a few such replies.
//
// A leaf whose versions alone take more than a frame (a caller can choose
// keys into one leaf: the hash is public) is listed in parts, each a range
// of its key hashes that the responder compares its versions within
// (wire.Versions.Part), one part in flight at a time, the next once the
// last is answered in full; listed whole, it failed to encode at every
// try, and no session that reached it completed (found by review). A
// release before parts refuses such a step (malformed), as it could not
// list such a leaf at all.
//
// To a Versions that holds no versions for a leaf (the initiator holds
// nothing there) the responder answers with all its records of the leaf,
// without gathering its versions. When a member that holds nothing opens
// a session with one that holds something (a member that joins, as both
// see the other arrive), the latter starts no session with it while that
// one is in progress, and abandons its own if it is still comparing
// digests: two sessions moved most records twice (a joiner received 1.2
// to 1.7 repair records per key), and the one the empty member started
// moves them once, in one pass over the other's records. The empty side
// never gives way, so one of the two always proceeds.
//
// Both sides keep a little state. The initiator numbers its messages
// (Step) and accepts only replies to the steps it awaits: a duplicated or
// late reply is ignored, so no session completes early. A step whose reply
// does not come (a datagram lost, either way) is sent again as a new step
// after an eighth of the session timeout (at most 500 ms), then after
// twice as long each time (a digest level's, cheap to answer, every
// eighth), until the timeout (four anti-entropy intervals, at least 2 s): on
// a network that loses a fifth of its packets a session of a dozen
// datagrams would otherwise rarely complete. A reply to any of a step's
// sendings answers it (the first to come; the others are stray): when the
// reply was only slow (a busy responder gathering a large chunk), the
// answer already on its way is used, not thrown away for the one the
// responder is asked to work out again. The responder
// answers a peer's first message by drawing a random Token that every
// later message of the session must carry, and answers each step once;
// a frame that names another member as its sender, without that member's
// token, gets at most the first level of hashes back, and a member outside
// the view gets nothing. Each side marks its replica synced (package lww,
// rule 2) at its own time at the start of the session, when it has
// received all the other's records: no number a peer sends ever becomes a
// synced mark. A session found in step at its opening marks its initiator
// alone: the responder has seen only the opening, which carries no token
// and may come from anyone with the key under any member's name, and
// counts it (SessionsResponded) and no more: no synced mark, cut or
// exchange time (found by review). The initiator's Repairs await no reply, and a large one
// goes on a stream while the small final one goes as a datagram: the
// final one says how many the initiator sent before it, and the responder
// completes only once it has applied them all (it completed on the final
// one, and a Repair it overtook, or one lost, left it taken for holding
// records it lacked: found by review). A Repair lost is not sent again;
// the responder then does not complete, and the next session repairs.
//
// Every list a request carries is strictly ascending (the codec refuses
// anything else), Versions lists at most wire.MaxLeavesPerStep leaves, and
// a Digest's parents are nodes of the level above: the work a frame asks
// for is bounded by the replica's own tree and buckets, whatever the frame.
// A Reject, the answer to records a responder could not apply because they
// fell below its GC watermark, is honoured only as the answer to a step of
// the session it belongs to; what it carries are records like any other:
// the tombstones that answer the rejections (package lww, rule 3). A
// responder also acknowledges the completion, on its side, of a session
// whose Repairs brought records, with a Reject of the final Repair's step
// that carries again the answers of the session's earlier Rejects (empty
// if there were none): an initiator whose first sync pushed records
// takes it only then (or at the session's deadline, from a responder of
// an earlier release, which sends none), so that a member restored from
// an old snapshot is not synced while it serves values whose deletes its
// peer had collected (Node.FirstSync).
//
// # Stability
//
// A session's opening Digest and its first reply carry each side's cut
// (its clock's reading as it entered the session) and its coverage (the
// lowest cut it holds of the members it counts). Once a session completes,
// each side holds every record the other wrote below its cut. From these,
// Node.Stable derives a bound below which every member that counts holds
// every record, and a replica collects at once the records dead since
// before it (a tombstone written before it, a value expired before it:
// package lww, rule 6). roster.go says which members count: those in
// the view, those that vanished (for FailedTimeout), and incarnations that
// ended, until every member has synced since and for Config.EndedFor at
// least after this node learned of the end.
//
// # Safety at the edge
//
// Every received timestamp goes through the replica's clock first: a record
// stamped more than MaxClockDrift ahead of local time is refused and
// counted, so a node with a bad clock cannot pin keys. A record a peer
// answers with a tombstone replaces the sender's, which reports a live
// value so replaced through Node.Dropped. Deltas older than the GC horizon
// are not applied.
// Frames are size-capped and decoded against their grammar, each length
// checked before anything is allocated for it; bad frames are counted by
// reason and never partially applied.
package transport
