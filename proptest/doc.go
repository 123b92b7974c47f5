// Package proptest is bcache's property-test harness for replicated state,
// exported so that it can be pointed at other replicas and CRDTs too.
//
// # What it does
//
// [Check] and [Property] run a rapid state machine over a simulated
// cluster ([Cluster]): 2 to 4 members at the start (configurable; more
// may join), each reading its own
// manually driven clock, on a step-driven [sim.Network] whose frames are
// real encoded protocol messages. By default the members are the replica
// bcache runs in production ([StoreReplica]: the sharded store of package
// internal/store synchronized by a transport.Node, asking a peer for its
// watermarks once synced as a member does), configured by
// [DefaultStoreConfig]: one founder, members that disagree about their
// bounds, and membership views that follow partitions and crashes as
// failure detection would. Every step draws one action:
//
//	set, delete          a write on a live member (with or without a TTL,
//	                     expiries at the int64 extremes, empty values)
//	stall                a write stamped, then applied after a round of
//	                     sessions and collections (replicas that implement
//	                     [StalledWriter]; weight 0 unless set); or after
//	                     deletes of other keys, made meanwhile, delivered
//	                     and collected (stall past deletes): a write
//	                     applied must be held by its member
//	tick                 time moves on 1 ms to 5 s; every member's timers run
//	deliver, deliver all one frame in flight, or everything until quiet
//	drop, duplicate,     loss, duplication and reordering of a frame
//	reorder
//	partition, heal      any grouping of the members into three sides
//	skew                 one member's clock set up to MaxSkew from the others
//	                     (forwards or backwards)
//	crash, leave,        a member loses its state (leave: the others are
//	restart              told it left on purpose ([Leaver]), and whether
//	                     it keeps its state, as it does if it ever saved
//	                     a snapshot ([KeepsLeaver])); it comes back empty
//	                     with a new incarnation. Its frames in flight, to
//	                     and from it, stay in flight: one delivered while
//	                     it is down is lost, one to it delivered after it
//	                     came back reaches the new incarnation, and one
//	                     from it delivered later than LateFrames after
//	                     its end (a crash's: its restart) may be refused
//	hand over            a live member leaves as a Cache's Close has it
//	                     leave: a live member it reaches pulls from it
//	                     first ([Puller]: a session, the frames between
//	                     the two delivered alone), and once that has
//	                     completed, every record it held must be held by
//	                     a live member, or a newer version (weight 0
//	                     unless set)
//	bounce               a live member restarts in place: it comes back
//	                     empty with a new incarnation before any view saw
//	                     it go, and the others are told ([Restarter]) at
//	                     once or at the next tick, or learn it from its
//	                     sessions (weight 0 unless set);
//	                     or back from its last snapshot, however old (bounce
//	                     from snapshot, a Cache with a snapshot file;
//	                     weight 0 unless set)
//	join                 a member that was never in the cluster joins (up
//	                     to MaxNodes)
//	snapshot, restore    a live member saves its state; a crashed one comes
//	                     back from its last snapshot, however old (replicas
//	                     that implement [Snapshotter]; a [MemberKeeper]
//	                     counts again the members it counted when it saved
//	                     it, as a bcache member does from its members file)
//	absence              a member is cut off while the rest write, sync and
//	                     collect garbage for 1.25 to 3 GC horizons
//	gc, evict            garbage collection, local eviction of a value
//	get                  a read on a live member, checked (see below)
//	fill, outage         a caller on a live member gets or fills a key once
//	                     in the cluster, as a Cache's GetOrFill (replicas
//	                     that implement [ClusterFiller]); the Source, the
//	                     database behind the cache, loses a key or has it
//	                     again
//	slow fill            a member's fill held open while it applies frames
//	                     in flight to it and writes, then ended: it must
//	                     store nothing if and only if its key changed
//	                     meanwhile, and be stamped when its filler began
//	                     (or again as it is written, newer than all the
//	                     member issued, and only past a cut: [Restamper])
//	                     (replicas that implement [SlowFiller]; weight 0
//	                     unless set)
//	antientropy          an anti-entropy session between two members
//	round                anti-entropy from every live member to every
//	                     other, each session delivered before the next
//	forge, attack,       an adversary holding the cluster key: forged
//	capture, replay      frames of its choosing, as itself or claiming
//	                     another name; a whole forged session with
//	                     rejections; frames captured in flight, replayed
//
// After every step it checks invariants that must always hold: a write
// returns the record it was asked for, stamped by the member, newer than
// the version of its key the member held (its clock saw that); each member's
// clock issues strictly increasing timestamps; no member ever holds (and
// so serves) a version of a key older than one it held before since its last
// restart, which is what a resurrection looks like locally; no member holds
// a version nobody wrote (records of the adversary a member accepted are
// the adversary's writes, and the tombstones with which members answer
// records they reject); a member holds a write as it was written (expiry,
// and value unless evicted; of the adversary's versions, one of the copies
// it sent); no member holds a record as evicted when none may evict (see
// Evictor); a bounded member holds no more values or bytes than its
// bounds (see Bounded); and a live newest write a member drops, because a
// peer answered it with a tombstone or without a word, is at least a
// horizon old, less the clock drift and skew (package lww, rule 3, allows
// no sooner). A member
// restored from a snapshot must hold its every record (but those too far
// ahead of its clock to take), issue timestamps newer than every record it
// restored, and never go back on a version it held or collected when the
// snapshot was taken. A fill call that ends must give its caller a value
// some write gave the key, with that write's version, never older than
// the version the member held when the call began (what it could already
// read), or the Source's error; and at the end, after the heal, every
// call must end. A read (Get) must serve the value of the record of
// the key the member holds, and only while that record is live (not a
// tombstone, not expired at the member's time, not evicted); a miss is
// right only without a live record. A member's first sync (a Syncer's)
// must hold every record its peer in that exchange had held, in one
// version, since before the exchange began (for a responder, since
// before the peer sent its opening), and be with a member that
// holds the cluster's state while one is in its view (the harness tells
// the members which are newcomers: those that joined or restarted and
// have made no first sync; the cluster's first members are not). A first
// sync the peer acknowledged (an UnackedSyncer's) must serve no value held
// since before the exchange that is older than a record of its key the
// peer had collected by then (unless the peer holds a newer version of
// the key, which superseded the member's push unanswered, or which the
// member refused, too far ahead of its clock); it is checked as each
// frame is delivered.
// After the run it
// heals the network, delivers everything, runs one anti-entropy session
// between two live members alone and checks that it completed on both
// sides (unless deferred, which a SessionCounter says) and left both
// holding the same records
// (Config.OneWaySessions leaves this out), runs anti-entropy
// between every pair of live members until a whole round changes nothing,
// and checks
// convergence against a reference model: every live member holds the same
// records; no key holds a value older than a dead record a live member
// collected; and every key holds its newest write, or, if that write is a
// delete or has expired, nothing or a tombstone that answered it; and
// every key read on every member is served as its record says; and no
// member refused a frame another member sent (the adversary's it may).
// A live newest write may leave a member only by collection (GC) or by a
// tombstone that answers it (package lww, rule 3); one that vanishes
// otherwise fails the run. The model excuses these losses, each up to
// the version lost (a newer write of the key, made later or elsewhere,
// must survive): a write that only a crashed member knew (not one its
// delta, in flight as it crashed, then brought to a live member that
// could take it); a write a
// member dropped because a peer could no longer tell it from a deleted
// one, once it is old enough for a watermark to cover (a horizon, less
// MaxDrift and twice MaxSkew: package lww, rule 3), or, earlier, if its
// writer's name (whichever incarnation) was missing from a member's view
// for longer than FailedTimeout at some time from the write on (the
// member gave up on it before it saw it again), unless that member held
// the write (or a newer version of its key) as the separation began (it
// cannot reject what it holds), or if its writer was
// unknown to a side of the network when it wrote or since (rule 6:
// the README's "a member the others have not seen"). A value past its
// expiry on every live member's clock, or a delete, is not lost.
//
// # Shaping the runs, reading the failures
//
// [Config.Weights] sets how often each action is drawn (the default,
// [DefaultWeights], favours writes, reads, ticks and deliveries; a weight of
// 0 leaves an action out, as [Config.Disable] does, and a name that is no
// action fails the run), [Config.Loss] and [Config.Duplication] lose or
// double that share of the frames as they are delivered (their fates drawn
// from a generator the run seeds), and [Config.Coverage] sums what the
// runs did; [Check] logs it (go test -v), so that a shallow run shows.
//
// Every step narrates what it did in rapid's log, after the draws that
// chose it: who wrote or read what, every frame delivered, lost or
// duplicated with what it carries ([Config.Describe]; [DescribeFrame]
// decodes bcache's), the parts of a long absence and of the final
// convergence. rapid prints that log for the counterexample it shrank
// to, so a failure reads top to bottom as the events that led to it.
//
// # Running it longer
//
// At rapid's default of 30 steps a run draws about 16 actions, too few
// for many faults to meet: over 20 seeds of 100 runs each, a replica that
// collected tombstones at once (a resurrection) passed 7 times at 30
// steps and never at 100. Search with more. The harness takes rapid's
// flags:
//
//	go test ./proptest -run TestConvergence -rapid.checks=10000 -rapid.steps=200
//
// A failure prints a seed and writes a fail file; replay it with the same
// -rapid.steps (the number of steps is part of what is replayed):
//
//	go test ./proptest -run TestConvergence -rapid.steps=200 -rapid.seed=<seed>
//
// # Plugging in your own replica
//
// A [Replica] is a member as the harness sees it: local writes that return
// the record written and the frames to send, frame handling, timers, and
// introspection (Records, GC, Drops). Write a [Factory] that builds yours
// and pass it in [Config.Factory]; the harness does the rest. Its frames
// need not be bcache's: the network only carries bytes (disable the
// adversary's actions, which speak bcache's wire format). To experiment
// with rules on bcache's own store and protocol, set [StoreConfig.Wrap]
// (or, on the simpler [MapReplica], [MapConfig.Merge]). The tests in this
// package run the harness against broken variants of the production store
// (the longest expiry winning, received deletes ignored, every rejection
// trusted, received versions restamped) and against replicas whose reads
// serve deleted or expired values, and require it to find counterexamples.
//
// # A data type of your own
//
// The harness above checks a last-writer-wins map deeply (its model knows
// bcache's rules of loss). For any other replicated data type, describe it
// in a [Spec] and run [CheckType]: the replica is an [Object] that
// declares its operations ([OpKind]: a counter's inc, dec and read; a
// set's add, remove and contains) and speaks its own frames; a [Model]
// learns every operation with what it returned, may refuse a result the
// specification forbids (a read is an operation like any other), is told
// which incarnations crashed, and judges the state the members converge
// to; an optional invariant runs after every step. The run draws the
// operations and the faults ([TypeActions]: loss, duplication, reordering,
// partitions, crashes and restarts as new incarnations, syncs, and clock
// skew with Spec.MaxSkew), with weights, rates and coverage as in
// [Config], and ends by syncing every pair until nothing changes (at
// most 8 rounds: past them the run fails with [ErrNoFixpoint]): the
// members must then hold equal states.
// Package proptest/examples has a PN-counter and an add-wins set written
// this way, with the broken variants the harness catches (a counter that
// sums what it receives, one that takes the last count received, a set
// whose removes remove adds they never saw).
//
// [ExploreType] complements the random search at small scope: given a
// script of a few operations on two members, it runs every interleaving
// of the operations with every delivery, loss and duplication of every
// frame in flight, and time passing (every member's Tick) at any point
// (up to one loss, one duplication and one tick by default: see
// [Explore]), in the spirit of a model checker; a failure lists the run's
// events. Each run converging is not all: for a type whose operations
// are blind (their effect does not depend on the state they run on),
// Explore.SameOutcome requires every run to converge to the same state,
// which a merge that is not associative does not. Two members with four operations are about 410,000 runs, 20
// seconds, or 41,000, 2 seconds, without the tick (MaxTicks -1, for a
// type that sends nothing from Tick). [StoreSpec] is bcache's own store
// as such a data type, with [LWWModel], so that the exhaustive search
// runs on the replica that ships too: without the tick (its anti-entropy
// sessions take the scope past a million runs).
//
// [SimulateType] runs a Spec at scale instead, deterministically: hundreds
// of nodes, operations at a rate, loss, duplication, periodic exchanges
// and a partition phase; it measures the rounds and bytes until the
// nodes' states are equal, and the Model judges the state they agree on.
//
// # Scale
//
// Command simulate (proptest/cmd/simulate) drives a [Cluster] of up to
// thousands of members deterministically, with seeded loss and
// duplication, and prints rounds to converge, traffic per member and per
// write, and repair traffic after a partition heals.
package proptest
