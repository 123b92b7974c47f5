package gossip

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// ErrClosed is returned by calls on a closed Replicator.
var ErrClosed = errors.New("gossip: replicator closed")

// Member is a live member of the cluster.
type Member struct {
	Name string
	Addr string
}

// Replicator runs the sync protocol over memberlist: membership, failure
// detection and encryption from memberlist, frames of the protocol as
// datagrams or, when larger than a packet, over streams. It owns the
// goroutines that drive the protocol; Close stops them all. It is safe for
// concurrent use.
type Replicator struct {
	cfg   Config
	frags reassembly
	log   zerolog.Logger
	ml    *memberlist.Memberlist
	// nodeMu guards node: the loop drives its writes and timers, memberlist's
	// handler goroutines hand it received frames directly.
	nodeMu sync.Mutex
	node   *transport.Node
	// loopWaits says the loop waits for nodeMu, or is about to: it takes
	// no write until it has had it (tests await it to know which writes
	// the loop takes together).
	loopWaits atomic.Bool
	statsSeq  uint64 // under nodeMu: the copies made of the node's counters
	// statsMu guards protocol, a copy of the node's counters made at the
	// end of every section under nodeMu (protocolSeq its number: only a
	// newer one replaces it): Stats never waits behind a frame being
	// applied.
	statsMu     sync.Mutex
	protocol    transport.Stats
	protocolSeq uint64
	// nodeView is the node's part of Status, copied as protocol is (and
	// under the same rule, by its own number viewSeq: it is published
	// before the section's frames go) for the same reason: a /readyz
	// never waits behind a large repair's frame. Its syncs are cloned
	// only when the node's change (syncsSeen, under nodeMu), and
	// published by their own number (syncsSeq): a newer copy that cloned
	// nothing must not hide an older one that did.
	nodeView  nodeView
	viewSeq   uint64
	syncs     map[string]int64
	syncsSeq  uint64
	syncsSeen uint64
	// drops holds the records the node dropped, in the order dropped
	// (queued under nodeMu), for Config.OnDrop (see dropQueue).
	drops dropQueue
	wire  wireStats
	ct    *countingTransport // memberlist's transport, wrapped
	// out, set before memberlist starts when the member runs the default
	// UDP transport, builds and sends bcache's datagrams (see direct.go).
	out *directOut
	// envs is the loop's slice for the envelopes of the writes' groups,
	// reused from one group to the next; only the loop touches it (see
	// keepEnvelopes).
	envs []transport.Envelope
	// reliable, set before memberlist starts, writes the frames that go
	// over streams (see reliable.go).
	reliable *sealer

	writes  *writeQueue
	streams *streamQueue
	changed chan struct{}
	holding chan struct{} // this member holds its cluster's state since (becomeHolder)
	// updating serializes memberlist's UpdateNode (advertise, and the
	// leaving notice): two at once race in memberlist, which reads its
	// own node's state unlocked (found by the race detector in CI).
	updating sync.Mutex
	// kick wakes the loop when a frame moved the node's next deadline
	// before the one its timer waits for (a session that ended early:
	// the next starts an interval after it, not at its timeout).
	kick chan struct{}
	// sweepArmed says the loop's wait ends within partialTTL (it holds
	// partial frames to sweep), or a fragment has kicked it to.
	sweepArmed atomic.Bool
	deadline   atomic.Int64 // what the loop's timer waits for
	done       chan struct{}
	leaving    atomic.Bool // Close has begun: the metadata says so
	wg         sync.WaitGroup
	close      sync.Once
	closed     atomic.Bool
	// current says every member in the view is of this release (frame.go),
	// as of the node's last view: its direct deltas then go without this
	// member's name.
	current atomic.Bool
	// raw says, likewise, every member takes a direct delta in a datagram
	// of its own (frame.go, rawVersion), and this one sends such.
	raw atomic.Bool
	// meta is this member's metadata while it is not leaving (NodeMeta):
	// a number drawn at Start, the ids of the keys it reads (keyIDs), and
	// whether it holds its cluster's state (metaHolds, metaNewcome), before
	// and after holds is set (see becomeHolder).
	meta   [2][]byte
	keyIDs []byte
	holds  atomic.Bool

	self string // this member's address

	mu    sync.Mutex
	alive map[string]*memberlist.Node // live members by name, self included
	gone  bool                        // closed: alive is empty for good
	// peered says alive holds a member other than this one; Write
	// queues nothing while it does not (see Write).
	peered atomic.Bool
	// selfAddr is this member's address, as memberlist announced it.
	selfAddr string
	// met counts the members seen alive for the first time (see rejoin).
	met   atomic.Uint64
	known map[string]knownMember // every member seen and not forgotten, by name (see rejoin)
	// byAddr holds the names in known by address (see putKnown).
	byAddr map[string][]string
	// logOut is memberlist's log writer, told each member's name.
	logOut *logWriter
	calls  calls    // in flight from here, and being served
	left   []leaver // members that left on purpose, for the loop to tell the node
	// restarted are members seen alive again with a new start number (a
	// restart under the same name that the view never saw leave), for
	// the loop to tell the node (transport.Node.Restarted).
	restarted []string
	// failedMeta holds the metadata of the members that failed since the
	// last view: one back before it with another start number is a
	// restart the view never saw go (see memberChanged).
	failedMeta map[string][]byte
	// quietLeave, set by tests before Close, leaves out the leave notice
	// (leaving.go) or the leaving metadata: a member whose notice or
	// metadata reached no one.
	quietLeave struct{ notice, meta bool }
	// pulls counts the pulls from members that leave under way
	// (leaving.go), each added under mu while pullsEnded is false; stop
	// sets it, then waits for them.
	pulls      sync.WaitGroup
	pullsEnded bool
	// pullTurn is held by the pull whose session is in flight: one at a
	// time, as Pull abandons the session in flight (members leaving
	// together had their pulls from one peer abandon each other).
	pullTurn chan struct{}
	// leaveNotices holds the leave notices of live members (leaving.go),
	// by name.
	leaveNotices map[string]leaveNotice
	// joinFailures are the addresses the last attempt to join failed, by
	// address; joinLogged when each was last logged.
	joinFailures map[string]*JoinFailure
	joinLogged   map[string]time.Time
	capLogged    atomic.Int64            // when a look's cut of addresses was last logged (see capped)
	conflicts    map[string]*JoinFailure // name conflicts seen lately, by the other's address
	refusalLogs  logBudget               // the log lines of refused members (see refused)
	joinLogs     logBudget               // the log lines of join failures (see joinFailed)
	bound        netip.AddrPort          // the address bound, on the default transport (see isSelf)
	localIPs     map[netip.Addr]bool     // this host's addresses, read at each lookup of the seeds
	sourcing     atomic.Int32            // the PeerSource's calls that have not returned (see seeds)
	lookHung     sync.Map                // names whose lookup has not returned, by kind (see lookupBounded)
	lookups      atomic.Int32            // the lookups that have not returned (see lookupBounded)
	// onlySelf says the last lookup of the seed peers that settled it
	// found no member but this one; seedsChanged is closed (and replaced)
	// when it changes (see SeedsElsewhere).
	onlySelf     bool
	seedsChanged chan struct{}
	// founder: see Founder. metAt is when it stopped being one, meeting
	// another member (see FoundedUnsynced); metHolder that, a founder
	// in this process, it met a member that said, when first seen, that
	// it held its cluster's state (see Founded).
	founder   bool
	metAt     time.Time
	metHolder bool
	// heldBy are the last members (at most maxHeldBy) that this member,
	// synced or a founder that met another, saw for the first time
	// holding their cluster's state already, or restored state (see
	// Status.MetHolders).
	heldBy []string
	// heldSeq numbers each member of heldBy's last listing (heldN the
	// last number given): a member listed again, gone and back holding,
	// has a new number, and is asked for its marks again (see
	// Status.MetHoldersSeq).
	heldSeq map[string]uint64
	heldN   uint64
	// stoppedAt is when stop began: FoundedUnsynced is read as of then
	// on a stopped member, whose founding keeps what it was (it turned
	// false foundingFor after the meeting, on a member closed before:
	// found by review).
	stoppedAt time.Time

	synced     chan struct{} // closed at the node's first sync
	syncedOnce sync.Once

	counters  counters
	logCounts logCounts
}

type counters struct {
	writesDropped, streamsDropped, peerStreamsDropped atomic.Uint64
	callsDropped                                      atomic.Uint64 // call frames the stream queue refused
	sendErrors, badFrames, noRoute                    atomic.Uint64
	joins, joinFailures, lookupFailures               atomic.Uint64
	fragmentedFrames, fragmentsDropped                atomic.Uint64
	directFrames                                      atomic.Uint64
	keyRefusals                                       atomic.Uint64 // members refused for their keys (NotifyAlive)
	callRepeats                                       atomic.Uint64 // requests received again while served or once answered
	callsBusy                                         atomic.Uint64 // requests refused with ErrBusy: no place to serve them
	peersLeft, peersFailed                            atomic.Uint64 // other members' ends, taken for a leave or a failure
	leavePulls, leavePullsFailed                      atomic.Uint64 // pulls for leaving members that completed, and the others
}

// Start joins (or founds) a cluster and starts replicating. It returns once
// memberlist is listening; joining the peers happens in the background, so
// a member whose peers are all unreachable starts anyway and joins as soon
// as one answers.
//
// Start takes cfg.Transport: Close shuts it down, and so does a Start
// that fails, at whatever stage (one failing before memberlist started
// left it open, one failing after shut it down).
func Start(cfg Config) (*Replicator, error) {
	r, err := start(cfg)
	if err == nil {
		return r, nil
	}
	if r == nil && cfg.Transport != nil {
		if serr := cfg.Transport.Shutdown(); serr != nil {
			err = errors.Join(err, fmt.Errorf("gossip: shutting down the Transport: %w", serr))
		}
	}
	return nil, err
}

// start is Start; failing, it returns the Replicator too once memberlist
// was started, which shut the transport down.
func start(cfg Config) (*Replicator, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	// The member's own copies: memberlist's keyring keeps the slices it
	// is given, and a caller that cleared its key buffers once the member
	// started (as code handling secrets does) left it sealing with zeros
	// (found by review).
	cfg.SecretKey = bytes.Clone(cfg.SecretKey)
	cfg.AcceptKeys = slices.Clone(cfg.AcceptKeys)
	for i, k := range cfg.AcceptKeys {
		cfg.AcceptKeys[i] = bytes.Clone(k)
	}
	r := &Replicator{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("node", cfg.Name).Logger(),
		writes:  newWriteQueue(cfg.QueueSize * 4),
		changed: make(chan struct{}, 1),
		holding: make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		alive:   map[string]*memberlist.Node{},
		known:   map[string]knownMember{},
		byAddr:  map[string][]string{},
		synced:  make(chan struct{}),

		joinFailures: map[string]*JoinFailure{},
		conflicts:    map[string]*JoinFailure{},
		seedsChanged: make(chan struct{}),
		founder:      cfg.Founder,
		joinLogged:   map[string]time.Time{},
	}
	r.calls.refusedFor = refusalWindow(cfg.Timings.TCPTimeout)
	r.pullTurn = make(chan struct{}, 1)
	r.streams = newStreamQueue(r.sendStream, maxStreamBytes, maxPeerStreamBytes)
	pc := cfg.Protocol
	pc.Name, pc.Replica, pc.Clock = cfg.Name, cfg.Replica, cfg.Clock
	pc.Seed = randomSeed()
	r.keyIDs = keyIDs(&cfg)
	start := append(binary.LittleEndian.AppendUint64(nil, randomSeed()), r.keyIDs...)
	newcome := metaNewcome
	if cfg.Restored {
		newcome = slices.Concat(metaRestored, metaNewcome) // metaNewcome last, for the release before
	}
	r.meta = [2][]byte{slices.Concat(start, newcome), slices.Concat(start, metaHolds)}
	// A founder holds its state from the start, and so does a member
	// with no seed to join: it serves what it holds as all there is
	// (WaitSynced), before the look at its seeds settles (a few
	// milliseconds after Start; a newcomer met before then made it no
	// founder, and it said it held nothing until an exchange completed,
	// while newcomers took each other for their first sync: found by
	// review).
	r.holds.Store(cfg.Founder || len(cfg.Peers) == 0 && cfg.PeerSource == nil)
	pc.PacketBudget = r.datagramRoom() - 1 - len(cfg.Name)
	pc.Headroom = 1 + len(cfg.Name) // the frame header: see appendFrame
	// What a stream message holds, and memberlist reads: a larger
	// MaxFrame is cut to it (see streamOverhead).
	if limit := maxMessage(pc.Headroom); pc.Limits.MaxFrame <= 0 || pc.Limits.MaxFrame > limit {
		pc.Limits.MaxFrame = limit
	}
	// A frame of a process that died reaches a peer within about two
	// TCPTimeouts of its death when the peer accepts its streams
	// promptly: a datagram arrives within milliseconds, and a stream,
	// dialed before the death, is read within TCPTimeout of its accept.
	// The accept is not bounded: a stream written and closed waits, its
	// bytes in the peer's kernel, until the peer accepts it (an accept
	// loop backing off out of descriptors, a listen backlog full, the
	// handshake's last ACK lost in a partition and completed by a
	// retransmission: a review delivered one 600 ms after its sender
	// closed, with a TCPTimeout of 200 ms), and a frame accepted later
	// than EndedFor may be refused, or taken
	// and then overwritten by an answer, as the harness's late frames are.
	// The node counts an incarnation that ended that long (at least a
	// SessionTimeout), so that such a frame's writes are kept.
	if pc.EndedFor == 0 {
		pc.EndedFor = twice(cfg.Timings.TCPTimeout)
	}
	var err error
	if r.node, err = transport.New(pc); err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	if err := r.startMemberlist(); err != nil {
		return r, err // the transport shut down
	}
	r.wg.Add(2)
	go r.loop()
	go r.rejoin()
	return r, nil
}

// startMemberlist creates the transport (counting what it sends) and the
// memberlist instance.
func (r *Replicator) startMemberlist() error {
	base := r.cfg.Transport
	var boundPort int
	var nt *netTransport
	if base == nil {
		host, port, _ := splitHostPort(r.cfg.BindAddr)
		var err error
		if nt, err = listen(host, port); err != nil {
			return err
		}
		base, boundPort = nt, nt.port()
		r.bound = nt.tcp.Addr().(*net.TCPAddr).AddrPort()
		if readBufferShort(nt.readBuffer, udpReadBuffer) {
			r.log.Warn().Int("bytes", readBufferUsable(nt.readBuffer)).Int("asked", udpReadBuffer).
				Msgf("the kernel gave the UDP socket less receive buffer than asked for: under load it may drop datagrams before this member reads them (anti-entropy repairs them, later); raise the system's limit, %s", readBufferLimit(udpReadBuffer))
		}
	}
	ct := newCountingTransport(base, &r.wire, len(r.cfg.SecretKey) > 0)
	r.ct = ct
	logOut := newLogWriter(r.log, time.Now, &r.logCounts)
	r.logOut = logOut
	mc := r.cfg.memberlistConfig(delegate{r}, ct, logOut)
	if nt == nil { // memberlist would refuse a direct delta's own datagram
		mc.DelegateProtocolMax = min(mc.DelegateProtocolMax, directVersion)
		if mc.Keyring != nil {
			ct.filterPackets(opener{label: mc.Label, keyring: mc.Keyring}, r.received)
		}
	}
	if boundPort != 0 {
		mc.BindPort = boundPort
		if r.cfg.AdvertiseAddr == "" {
			mc.AdvertisePort = boundPort
		}
	}
	if nt != nil {
		r.out = &directOut{seal: sealer{label: []byte(mc.Label), keyring: mc.Keyring}, t: nt}
	}
	r.reliable = &sealer{label: []byte(mc.Label), keyring: mc.Keyring}
	ml, err := memberlist.Create(mc)
	if err != nil {
		ct.Shutdown()
		return fmt.Errorf("gossip: start memberlist: %w", err)
	}
	r.ml = ml
	r.self = ml.LocalNode().Address() // read once: memberlist changes the node in place
	if nt != nil {
		nt.direct.Store(&direct{open: opener{label: mc.Label, keyring: mc.Keyring}, deliver: r.receivedDirect})
	}
	ct.reader.Store(&streamReader{label: mc.Label, keyring: mc.Keyring, timeout: mc.TCPTimeout, deliver: r.received, refused: func() { r.wire.refused.Add(1) }})
	return nil
}

// randomSeed draws the protocol's Seed, which keeps session ids and tokens
// unpredictable to other members.
func randomSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// Addr returns the address other members reach this one at.
func (r *Replicator) Addr() string { return r.self }

// Members returns the live members, this one included, sorted by name;
// none after Close. (memberlist's own Members hands out nodes it changes in place.)
func (r *Replicator) Members() []Member {
	r.mu.Lock()
	out := make([]Member, 0, len(r.alive))
	for _, n := range r.alive {
		out = append(out, Member{Name: n.Name, Addr: n.Address()})
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Write hands a record the replica has just applied locally to the
// protocol. It never blocks: when the queue is full the record is dropped
// (anti-entropy will carry it) and Write returns false. r.Value must not be
// modified afterwards.
func (r *Replicator) Write(rec crdt.Record) bool {
	if r.closed.Load() {
		return false
	}
	if !r.peered.Load() {
		// Alone: there is nobody to send the delta to, and the protocol
		// would find no child to send it to when it flushed (anti-entropy
		// carries the write to the members that come). Queued, every
		// write of a member alone (an edge member offline for hours)
		// took a third longer at one processor, three times as long at
		// two, for nothing (BenchmarkSet, package bcache). The record is in
		// the store already (the caller applied it): a member whose
		// arrival this Write did not see yet is told of it by the
		// exchange its arrival starts, which reads the store after.
		return true
	}
	if !r.writes.push(rec) {
		r.counters.writesDropped.Add(1)
		return false
	}
	return true
}

// received hands a frame from memberlist to the protocol and sends the
// answers. It runs on memberlist's handler goroutine (datagrams, in order)
// or on a stream's, and only takes the node's lock: no queue and no extra
// goroutine between a frame's arrival and its records being applied.
// receivedDirect is received for a user message the transport's reader
// opened itself, counted.
func (r *Replicator) receivedDirect(b []byte) {
	if b == nil {
		// Refused by the opener (what memberlist would panic on): no
		// message of bcache's, only a bad frame (found by review).
		r.counters.badFrames.Add(1)
		return
	}
	r.counters.directFrames.Add(1)
	r.received(b)
}

func (r *Replicator) received(b []byte) {
	var from string
	var payload []byte
	switch {
	case isAnonymous(b): // the protocol takes only a direct delta so
		payload = b[len(anonymousHeader):]
	case len(b) > 0 && b[0] == callMarker:
		r.receivedCall(b[1:])
		return
	default:
		var err error
		if from, payload, err = parseFrame(b); err != nil {
			r.counters.badFrames.Add(1)
			return
		}
	}
	if r.closed.Load() {
		return
	}
	var err error
	r.locked(func() (out []transport.Envelope) {
		out, err = r.node.Receive(from, payload, r.now())
		return out
	})
	if err != nil {
		r.log.Debug().Err(err).Str("peer", from).Msg("frame refused")
	}
	if r.cfg.AfterReceive != nil {
		r.cfg.AfterReceive()
	}
}

// putKnown records k as the member name's, keeping the index by address
// (byAddr) and the transport's members' addresses (see maxInbound) in
// step, at a cost that does not grow with the members known: a pass over
// them at each change (the set of addresses rebuilt, the members at an
// address looked for) made a member that announced n members cost n²,
// 16,000 of them a minute of memberlist's lock (found by review). Called
// with r.mu held; so are forgetKnown and unindex.
func (r *Replicator) putKnown(name string, k knownMember) {
	if old, ok := r.known[name]; ok {
		if old.addr == k.addr {
			r.known[name] = k
			return
		}
		r.unindex(name, old.addr)
	}
	r.known[name] = k
	r.byAddr[k.addr] = append(r.byAddr[k.addr], name)
	r.countMember(k.addr, 1)
}

// forgetKnown forgets the member name.
func (r *Replicator) forgetKnown(name string) {
	if old, ok := r.known[name]; ok {
		delete(r.known, name)
		r.unindex(name, old.addr)
	}
}

// unindex takes name off the members known at addr.
func (r *Replicator) unindex(name, addr string) {
	names := r.byAddr[addr]
	i := slices.Index(names, name)
	if i < 0 {
		return
	}
	if names = slices.Delete(names, i, i+1); len(names) == 0 {
		delete(r.byAddr, addr)
	} else {
		r.byAddr[addr] = names
	}
	r.countMember(addr, -1)
}

// countMember tells the transport of d more members known at addr.
func (r *Replicator) countMember(addr string, d int) {
	if r.ct == nil {
		return
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		r.ct.addMember(bare(ap.Addr()), d)
	}
}

// alivePeers sets peered from alive. Called with r.mu held.
func (r *Replicator) alivePeers() {
	_, self := r.alive[r.cfg.Name]
	r.peered.Store(len(r.alive) > 1 || len(r.alive) == 1 && !self)
}

// memberChanged records a membership event and wakes the loop. memberlist
// calls it under its own lock and changes *n in place later, so it keeps a
// copy.
func (r *Replicator) memberChanged(in *memberlist.Node, alive bool) {
	n := new(memberlist.Node)
	*n = *in
	r.mu.Lock()
	if r.gone {
		r.mu.Unlock()
		return
	}
	if alive && n.Name == r.cfg.Name {
		r.selfAddr = n.Address()
	}
	if alive && n.Name != r.cfg.Name && n.Address() == r.selfAddr {
		// Another name at this member's own address: an earlier process
		// here (restarted under a new name) that the others have not
		// declared dead yet. It cannot be alive (this process holds the
		// port); listed, it made this member a peer of itself, not
		// alone, and its own address a lost member's (found by review).
		delete(r.alive, n.Name)
		r.forgetKnown(n.Name)
		r.alivePeers()
		r.mu.Unlock()
		return
	}
	leaving := bytes.Equal(n.Meta, leavingMeta) || bytes.Equal(n.Meta, leavingKeepsMeta)
	if _, taken := r.alive[n.Name]; leaving && !taken && n.Name != r.cfg.Name {
		if _, known := r.known[n.Name]; !known {
			// A member this one never took, seen as it leaves (its
			// leaving metadata says nothing of its keys: one refused for
			// them was taken as it left, and held back early collection
			// as a leaver that keeps its state; found by review). Taken
			// by memberlist all the same, whose newer incarnation then
			// outranks any older message of it; nothing here.
			r.mu.Unlock()
			return
		}
	}
	// A member whose notice of its leave came (leaving.go) left, whatever
	// its last metadata says.
	keeps := bytes.Equal(n.Meta, leavingKeepsMeta)
	if !alive && !leaving {
		var said bool
		if said, keeps = r.saidLeaving(n); said {
			leaving = true
		}
	}
	var change string // what the log line says, none for a change of metadata alone
	switch {
	case alive:
		first := false
		_, seen := r.known[n.Name]
		if !seen && n.Name != r.cfg.Name {
			first = r.met.Add(1) == 1
		}
		if r.founder && n.Name != r.cfg.Name {
			r.founder, first = false, true
			r.metAt = time.Now()
		}
		if !r.metAt.IsZero() && !seen && n.Name != r.cfg.Name {
			// A member met for the first time that holds its cluster's
			// state already: it synced with none of this founder's
			// cluster (a newcomer joins saying it holds nothing), so
			// this one founded wrongly, or another cluster (Founded).
			// So does one that restored state built with others: it
			// holds its cluster's watermarks, which this founder's marks
			// lack (see metaRestored).
			if _, holds, _ := withoutHolding(n.Meta); holds || saysRestored(n.Meta) {
				r.metHolder = true
			}
		}
		if f := r.cfg.OnFounder; f != nil && first {
			go f()
		}
		prev := r.alive[n.Name]
		// A member that left (Close) and is back before the next view:
		// a new process, whose leave the view drops (it is alive), so
		// the node is told of the restart instead (it took the new
		// process for the old one, whose last exchange stayed its last
		// sync: found by review,
		// TestAMemberThatLeftAndIsBackBeforeTheViewIsARestart).
		// So is one that failed (a crash) and is back, another process
		// by its start number, before the next view.
		// So is one seen leaving (its leaving notice came, its leave did
		// not) and back with metadata that does not leave: a process
		// never takes back its leaving notice (restartedUnder says
		// nothing of leaving metadata, and the member was in no list of
		// leavers: found by review, TestAMemberSeenLeavingAndBackIsARestart).
		back := prev == nil && (slices.ContainsFunc(r.left, func(l leaver) bool { return l.name == n.Name }) ||
			restartedUnder(r.failedMeta[n.Name], n.Meta)) ||
			prev != nil && !leaving && (bytes.Equal(prev.Meta, leavingMeta) || bytes.Equal(prev.Meta, leavingKeepsMeta))
		delete(r.failedMeta, n.Name)
		restarted := back || prev != nil && restartedUnder(prev.Meta, n.Meta)
		if (!seen || prev == nil) && n.Name != r.cfg.Name && (!r.metAt.IsZero() || r.syncedYet()) {
			// The same of any member: a member of this one's cluster
			// that joined after this one synced is first seen saying it
			// holds nothing, so one first seen holding may be of another
			// cluster, met as the two merge, and hold its watermarks,
			// which this member's lack (see Status.MetHolders). Founded
			// said so of the founder alone: its members, and the founder
			// once it had taken a peer's answer, kept their own
			// cluster's marks for complete and asked no member of the
			// other, and a value whose delete the other had collected
			// came back on them (found by review:
			// TestAMemberOfAMergedClusterRefusesTheOthersCollectedDelete).
			// So may a member seen before, gone, and back holding: one
			// restarted under its name behind a stale lookup founded a
			// cluster of its own and collected there; known, it was
			// never asked, and what it collected came back here (found
			// by review:
			// TestAMemberRefusesWhatARestartedMemberCollectedInAClusterOfItsOwn).
			// Listed once: a member that comes and goes would push the
			// others out.
			if _, holds, _ := withoutHolding(n.Meta); holds || saysRestored(n.Meta) {
				r.heldBy = slices.DeleteFunc(r.heldBy, func(name string) bool { return name == n.Name })
				r.heldBy = append(r.heldBy, n.Name)
				if len(r.heldBy) > maxHeldBy {
					for _, name := range r.heldBy[:len(r.heldBy)-maxHeldBy] {
						delete(r.heldSeq, name)
					}
					r.heldBy = slices.Delete(r.heldBy, 0, len(r.heldBy)-maxHeldBy)
				}
				if r.heldSeq == nil {
					r.heldSeq = map[string]uint64{}
				}
				r.heldN++
				r.heldSeq[n.Name] = r.heldN
			}
		}
		if n.Name != r.cfg.Name && restarted && !slices.Contains(r.restarted, n.Name) {
			r.restarted = append(r.restarted, n.Name)
		}
		switch {
		case restarted:
			change = "restarted"
		case leaving: // its leave follows, logged
		case prev == nil:
			change = "joined"
		}
		r.alive[n.Name] = n
		addr := n.Address()
		if n.Name != r.cfg.Name {
			// The member at addr is taken now: a refusal of it (other
			// keys, a name taken) is over. Its address stayed in
			// Status.Joining for a minute after it came back right
			// (found by review).
			delete(r.conflicts, addr)
		}
		r.putKnown(n.Name, knownMember{addr: addr})
		for _, name := range slices.Clone(r.byAddr[addr]) { // a member that had its address is gone
			if name != n.Name {
				r.forgetKnown(name)
			}
		}
		if r.logOut != nil {
			r.logOut.named(n.Address(), n.Name)
		}
	case leaving: // left on purpose: do not chase it
		change = "left"
		if _, was := r.alive[n.Name]; was && n.Name != r.cfg.Name {
			r.counters.peersLeft.Add(1)
		}
		delete(r.alive, n.Name)
		delete(r.leaveNotices, n.Name)
		r.forgetKnown(n.Name)
		r.left = append(r.left, leaver{n.Name, keeps})
	default:
		change = "failed"
		if prev := r.alive[n.Name]; prev != nil && n.Name != r.cfg.Name {
			r.counters.peersFailed.Add(1)
			if r.failedMeta == nil {
				r.failedMeta = map[string][]byte{}
			}
			r.failedMeta[n.Name] = prev.Meta
		}
		delete(r.alive, n.Name)
		if k, ok := r.known[n.Name]; ok && k.lost.IsZero() {
			k.lost = time.Now()
			r.known[n.Name] = k
		}
	}
	r.alivePeers()
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
	// One line a change: a member's metadata that changes as it comes to
	// hold its cluster's state, and its leaving notice before its leave,
	// each made a line "alive" of their own (a join logged twice, a leave
	// as alive then gone: found by review).
	if n.Name != r.cfg.Name && change != "" {
		r.log.Info().Str("peer", n.Name).Str("addr", n.Address()).Bool("alive", alive).Str("change", change).Msg("membership changed")
	}
}

// leaver is a member that left on purpose, and whether it keeps its state
// (see Config.KeepsState).
type leaver struct {
	name  string
	keeps bool
}

// view returns the live members' names and the lowest top of their
// delegate protocol ranges (frame.go: at directVersion every member takes
// direct deltas in their short form and answers a session opened with the
// digest's root; at rawVersion, direct deltas in datagrams of their own;
// at printsVersion, sessions' Versions with their keys' prints), the
// names of those whose range reaches printsVersion, and takes the names
// of those that left on purpose since the last call.
// restartedUnder reports whether metadata now, of a member alive before
// with prev, says a new process (its start number, the first 8 bytes,
// changed); leaving metadata says nothing of that.
func restartedUnder(prev, now []byte) bool {
	return len(prev) >= 8 && len(now) >= 8 && !bytes.Equal(prev[:8], now[:8]) &&
		!bytes.Equal(now, leavingMeta) && !bytes.Equal(now, leavingKeepsMeta) &&
		!bytes.Equal(prev, leavingMeta) && !bytes.Equal(prev, leavingKeepsMeta)
}

func (r *Replicator) view() (alive []string, left []leaver, newcomers, prints []string, least uint8) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// A member that left and is back (a restart under its name) since
	// the last view is alive, not gone: telling the node it left after
	// its new members would drop it from the roster.
	left = slices.DeleteFunc(r.left, func(l leaver) bool { _, back := r.alive[l.name]; return back })
	r.left = nil
	r.failedMeta = nil // the view sees them go: back later, they are new to it
	least = 255
	for _, n := range r.alive {
		alive = append(alive, n.Name)
		least = min(least, n.DMax)
		if n.DMax >= printsVersion {
			prints = append(prints, n.Name)
		}
		if _, holds, said := withoutHolding(n.Meta); said && !holds && n.Name != r.cfg.Name {
			newcomers = append(newcomers, n.Name)
		}
	}
	return alive, left, newcomers, prints, least
}

// becomeHolder says, from now on, that this member holds its cluster's
// state (its first exchange completed, or it founded its cluster): its
// metadata changes, and memberlist tells the others (see
// transport.Node.SetNewcomers). At most once.
func (r *Replicator) becomeHolder() {
	if r.holds.CompareAndSwap(false, true) {
		select {
		case r.holding <- struct{}{}: // the loop tells memberlist (advertise)
		default:
		}
	}
}

// advertise has memberlist tell the others this member's metadata, on a
// goroutine of its own: the update is queued at once and goes with the
// next gossip, and the wait is for its acknowledgement, which changes
// nothing. Called by the loop, so that Close, which waits for both, is
// not waiting already (becomeHolder runs on memberlist's goroutines too).
func (r *Replicator) advertise() {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.updating.Lock()
		defer r.updating.Unlock()
		// Not while leaving: the leaving metadata would go before the
		// notices, and a peer that saw it first would take the notices for
		// another process's (found by review).
		if !r.closed.Load() && !r.leaving.Load() {
			_ = r.ml.UpdateNode(twice(r.cfg.Timings.ProbeInterval))
		}
	}()
}

func (r *Replicator) lookup(name string) *memberlist.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.alive[name]
}

// minLeaveWait is the least time Close gives each step of its leave: the
// peers' answers to its leave notice (leaving.go), memberlist's broadcast
// of the leaving metadata, and of the leave (memberlist waits only while
// peers are alive, and only until they are sent). Twice a probe interval
// of FastTimings, 200 ms, is short for a busy process (CI, under the race
// detector).
const minLeaveWait = time.Second

// twice is 2d, saturating: a Timings field of time.Duration(math.MaxInt64),
// a common "forever", doubled wrapped negative (a TCPTimeout so made the
// protocol's EndedFor negative, and Start failed; a ProbeInterval made
// memberlist's leave wait without a bound: found by review).
func twice(d time.Duration) time.Duration { return time.Duration(crdt.AddSat(int64(d), int64(d))) }

// Close leaves the cluster, stops every goroutine the Replicator started and
// waits for them. It is idempotent.
func (r *Replicator) Close() error { return r.stop(true) }

// stop stops the Replicator, after leaving the cluster if leave; without,
// the others see it as they see a crash.
func (r *Replicator) stop(leave bool) error {
	var err error
	r.close.Do(func() {
		r.mu.Lock()
		r.stoppedAt = time.Now()
		r.mu.Unlock()
		// A member that leaves stays open to the protocol's frames (and
		// writes) while it tells its peers and one pulls from it
		// (leaving.go); closed is set after.
		r.closed.Store(!leave)
		// Say that we are leaving (in our metadata, gossiped like any
		// update), then leave. A leave nobody acknowledges in time (the
		// others are leaving too) is no failure of ours: the peers will
		// declare us dead instead, and wait for us as for a failed member.
		if leave {
			r.mu.Lock()
			r.leaving.Store(true) // under mu: no pull starts after it (receivedLeaving looks under mu)
			r.mu.Unlock()
			// The writes queued go now, their flush due or not: after
			// the loop stopped they went nowhere, and a member that
			// keeps nothing took them away (found by review,
			// TestCloseSendsTheWritesQueued). Those the loop took and
			// has yet to hand the protocol it flushes itself, leaving
			// being set.
			r.locked(func() []transport.Envelope {
				now := r.now()
				out := r.node.WriteGroups(r.writes.take(nil), now)
				return append(out, r.node.Flush(now)...)
			})
			// The pulls under way end first (within their wait): what this
			// member pulls from another that leaves must be here before
			// its own peers pull from it (members closing together: a
			// write reached the next leaver only after that one had been
			// pulled from).
			r.pulls.Wait()
			wait := max(twice(r.cfg.Timings.ProbeInterval), minLeaveWait)
			said := r.sayLeaving(wait)
			if said.untold > 0 {
				r.log.Warn().Int("told", said.told).Int("untold", said.untold).Msg("leave notice not answered by every peer")
			}
			if said.asked > 0 && said.pulled == 0 {
				r.log.Warn().Int("asked", said.asked).Msg("no peer pulled this member's records before it left: a write whose delta was lost is lost")
			}
			r.closed.Store(true) // before advertise's check, under updating
			r.updating.Lock()    // after advertise's, if one runs (its check of closed is under the lock)
			if r.quietLeave.meta {
				// A test's: the metadata's broadcast reached no one.
			} else if e := r.ml.UpdateNode(wait); e != nil {
				r.log.Warn().Err(e).Msg("leaving notice not acknowledged")
			}
			if e := r.ml.Leave(wait); e != nil {
				r.log.Warn().Err(e).Msg("leave not acknowledged")
			}
			r.updating.Unlock() // before the wait for advertise's goroutine
		}
		if r.logOut != nil {
			r.logOut.shutting.Store(true) // its gossip loop's sends on the closed transport: see logWriter
		}
		if e := r.ml.Shutdown(); e != nil {
			err = fmt.Errorf("gossip: shutdown: %w", e)
		}
		r.streams.close()
		close(r.done)
		r.wg.Wait()
		r.mu.Lock()
		r.pullsEnded = true
		r.mu.Unlock()
		r.pulls.Wait()
		// A closed member is no member: Members and Status list no
		// member and no address it fails to join (they went on listing
		// its last view: found by review).
		r.mu.Lock()
		r.gone = true
		clear(r.alive)
		clear(r.joinFailures)
		clear(r.conflicts)
		r.mu.Unlock()
	})
	return err
}

// Stats are a Replicator's counters.
type Stats struct {
	// Protocol holds the sync protocol's counters.
	Protocol transport.Stats `json:"protocol"`
	// Wire counts everything sent, memberlist's own traffic included:
	// datagrams written without an error and their bytes (one the
	// socket refused is not counted), streams opened and the bytes
	// written to them.
	WirePackets     uint64 `json:"wire_packets"`
	WirePacketBytes uint64 `json:"wire_packet_bytes"`
	WireStreams     uint64 `json:"wire_streams"`
	WireStreamBytes uint64 `json:"wire_stream_bytes"`
	// Dropped for lack of room: writes not handed to the protocol, frames
	// not sent over a stream. (memberlist counts, and logs, the received
	// frames its handler queue had no room for.) StreamsDropped counts the
	// sync protocol's frames; StreamsDroppedPeer those among them refused
	// because too much was already queued for their peer (16 MiB, calls'
	// frames included): that peer reads slower than it is sent to, or not
	// at all. The others found all streams' frames at their bound (64
	// MiB). CallsDropped counts the frames of calls (requests and answers
	// larger than a datagram, which share the peers' queues) refused for
	// either bound; a call whose request is refused fails with ErrBusy.
	WritesDropped      uint64 `json:"writes_dropped"`
	StreamsDropped     uint64 `json:"streams_dropped"`
	StreamsDroppedPeer uint64 `json:"streams_dropped_peer"`
	CallsDropped       uint64 `json:"calls_dropped"`
	// CallsBusy counts the peers' requests refused with ErrBusy, every
	// place to serve one taken (256, 32 for one asker); CallRepeats those
	// received again while served or once answered (resends, replays),
	// not served again.
	CallsBusy   uint64 `json:"calls_busy"`
	CallRepeats uint64 `json:"call_repeats"`
	// StreamsRefused counts the streams closed as soon as they were
	// accepted, because as many as allowed were open already from their
	// address or their IPv6 /64, or in all, and, with a key, the oldest
	// stream from an address of no member closed to make room for a
	// newer one (see maxInbound); and the streams closed unread because
	// the streams being read held 256 MiB (see maxHeldStreamBytes).
	StreamsRefused uint64 `json:"streams_refused"`
	// StreamBytes is the bytes of the frames queued for, or being written
	// to, a stream now.
	StreamBytes uint64 `json:"stream_bytes"`
	// SendErrors counts frames the transport failed to send; NoRoute frames
	// for members no longer alive; BadFrames received messages that were not
	// frames of ours.
	SendErrors uint64 `json:"send_errors"`
	NoRoute    uint64 `json:"no_route"`
	BadFrames  uint64 `json:"bad_frames"`
	// FragmentedFrames counts the anti-entropy frames sent as datagram
	// fragments (larger than a datagram, at most 16 of them);
	// FragmentsDropped the frames received in part and given up (a
	// fragment lost, or no room: the session resends the step).
	FragmentedFrames uint64 `json:"fragmented_frames"`
	FragmentsDropped uint64 `json:"fragments_dropped"`
	// Joins and JoinFailures count re-join attempts that reached a member
	// and those that reached none; LookupFailures the peers that could not
	// be looked up when the member looked at its seeds (a name that did
	// not resolve, a PeerSource that failed or did not answer in time),
	// each once per look; KeyRefusals the times a member's message
	// was refused for its keys (its keys and this member's do not read
	// each other: a key rotation's step skipped, or a member with an old
	// key): every alive message of it, relayed ones too, not once per
	// member; Status lists such a member with the cause "wrong key".
	Joins          uint64 `json:"joins"`
	JoinFailures   uint64 `json:"join_failures"`
	LookupFailures uint64 `json:"lookup_failures"`
	KeyRefusals    uint64 `json:"key_refusals"`
	// DirectFrames counts the datagrams holding one of bcache's messages
	// that the member's transport opened itself (label, decryption,
	// checksum) and handed straight to the protocol, rather than through
	// memberlist's goroutines: on the default UDP transport, every one
	// its peers send (see direct.go).
	DirectFrames uint64 `json:"direct_frames"`
	// ReadBuffer is the receive buffer of the member's UDP socket in bytes,
	// as the kernel reports it (Linux: twice what it set, its bookkeeping
	// included); 0 with another transport or where it is not read. The
	// member asks for 16 MiB and logs a warning at start when it gets
	// less (Linux caps it at net.core.rmem_max).
	ReadBuffer int `json:"read_buffer"`
	// MemberlistErrors and MemberlistWarnings count memberlist's error and
	// warning lines (a process without the cluster key sending garbage
	// makes one error per datagram); MemberlistSuppressed the lines of all
	// levels held back by the log's rate limit, one line a second for each
	// kind of message.
	MemberlistErrors     uint64 `json:"memberlist_errors"`
	MemberlistWarnings   uint64 `json:"memberlist_warnings"`
	MemberlistSuppressed uint64 `json:"memberlist_suppressed"`
	// PeersLeft and PeersFailed count the ends of other members this
	// member saw: a leave (the member closed, and said so), or a failure
	// (a crash, a partition, a leave it heard nothing of: early
	// collection then waits for the member up to FailedTimeout).
	PeersLeft   uint64 `json:"peers_left"`
	PeersFailed uint64 `json:"peers_failed"`
	// LeavePulls counts the pulls this member made from members that
	// closed and asked it to (a closing member hands over the writes its
	// deltas may have lost): the pulls that completed, by which this
	// member holds every write the leaver acknowledged, and
	// LeavePullsFailed the others (the leaver gone first, the leave's
	// wait over, this member closing).
	LeavePulls       uint64 `json:"leave_pulls"`
	LeavePullsFailed uint64 `json:"leave_pulls_failed"`
}

// Known returns the members this member counts for early collection
// (transport.Node.Known), for the host to keep beside its snapshot and
// give back at its next start (Config.Protocol.Known).
func (r *Replicator) Known() []transport.Known {
	r.nodeMu.Lock()
	defer r.nodeMu.Unlock()
	return r.node.Known(r.now())
}

// Overtaken is the node's (transport.Node.Overtaken): whether a cut it
// reported since passed t, the stamp of a write of this member's about to
// be applied. It takes no lock.
func (r *Replicator) Overtaken(t crdt.Timestamp) bool { return r.node.Overtaken(t) }

// Writer returns the name of the live member whose clock id is id, as its
// delta batches here said (transport.Node.Writer): a hint of whom to ask
// for its write first. It takes no lock of the protocol's.
func (r *Replicator) Writer(id crdt.NodeID) (string, bool) { return r.node.Writer(id) }

// Stable returns the protocol's stable bound at now (transport.Node.Stable):
// records dead since before it (a tombstone written before it, a value
// expired before it) may be collected at once.
func (r *Replicator) Stable() int64 {
	r.nodeMu.Lock()
	defer r.nodeMu.Unlock()
	return r.node.Stable(r.now())
}

// Stats returns the counters. It never waits for the protocol's lock: the
// protocol's counters are as of the last frame, write or timer handled.
func (r *Replicator) Stats() Stats {
	s := Stats{
		WirePackets: r.wire.packets.Load(), WirePacketBytes: r.wire.packetBytes.Load(),
		WireStreams: r.wire.streams.Load(), WireStreamBytes: r.wire.streamBytes.Load(),
		WritesDropped:  r.counters.writesDropped.Load(),
		StreamsDropped: r.counters.streamsDropped.Load(), StreamsDroppedPeer: r.counters.peerStreamsDropped.Load(),
		CallsDropped:   r.counters.callsDropped.Load(),
		CallsBusy:      r.counters.callsBusy.Load(),
		CallRepeats:    r.counters.callRepeats.Load(),
		StreamsRefused: r.wire.refused.Load(),
		StreamBytes:    uint64(r.streams.bytes()), SendErrors: r.counters.sendErrors.Load(),
		NoRoute: r.counters.noRoute.Load(), BadFrames: r.counters.badFrames.Load(),
		FragmentedFrames: r.counters.fragmentedFrames.Load(), FragmentsDropped: r.counters.fragmentsDropped.Load(),
		DirectFrames: r.counters.directFrames.Load(),
		Joins:        r.counters.joins.Load(), JoinFailures: r.counters.joinFailures.Load(), LookupFailures: r.counters.lookupFailures.Load(), KeyRefusals: r.counters.keyRefusals.Load(),
		MemberlistErrors: r.logCounts.errors.Load(), MemberlistWarnings: r.logCounts.warnings.Load(),
		MemberlistSuppressed: r.logCounts.suppressed.Load(),
		PeersLeft:            r.counters.peersLeft.Load(), PeersFailed: r.counters.peersFailed.Load(),
		LeavePulls: r.counters.leavePulls.Load(), LeavePullsFailed: r.counters.leavePullsFailed.Load(),
	}
	if r.out != nil {
		s.ReadBuffer = r.out.t.readBuffer
	}
	r.statsMu.Lock()
	s.Protocol = r.protocol
	r.statsMu.Unlock()
	return s
}

// maxHeldBy bounds Status.MetHolders.
const maxHeldBy = 16

// syncedYet reports whether this member's first sync has completed.
func (r *Replicator) syncedYet() bool {
	select {
	case <-r.synced:
		return true
	default:
		return false
	}
}
