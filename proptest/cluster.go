package proptest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
	"unsafe"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/sim"
)

// ErrNoFixpoint is returned by [Cluster.Converge] when anti-entropy keeps
// changing state after its round budget.
var ErrNoFixpoint = errors.New("proptest: anti-entropy reached no fixpoint")

// ErrLivelock is returned when delivering everything in flight does not
// empty the network within the message budget.
var ErrLivelock = errors.New("proptest: network did not drain")

// Cluster is a simulated cluster: named replicas on a [sim.Network], each
// reading its own physical clock, a common base time plus a skew the caller
// sets. It is deterministic: the same calls give the same results. It is
// not safe for concurrent use.
type Cluster struct {
	Net *sim.Network
	// Delivered, if set, is called with every frame taken from the
	// network for delivery, and whether its destination received it (it
	// does not when down: the frame is lost); a trace of the run hooks in
	// here.
	Delivered func(p sim.Packet, received bool)
	// Sent, if set, is called with the frames a member put in flight, and
	// how many more it sent that a partition cut at once.
	Sent func(from string, inFlight []sim.Packet, cut int)
	// Refused, if set, is called with every frame its receiver refused: a
	// Refuser whose count of refused frames rose as it received it.
	Refused func(p sim.Packet)
	base    int64
	members []*member
	byName  map[string]int
	factory Factory
	nextID  crdt.NodeID
	// outsider is a name in the membership with no replica behind it (a
	// member that is buggy or hostile, played by the test); hear gets the
	// packets delivered to it.
	outsider string
	hear     func(sim.Packet)
	// born is when each incarnation started.
	born map[crdt.NodeID]int64
	// seenBy holds, per incarnation, the incarnations (of other members)
	// that count it (see noteUnknown); unknownTo is, per member (by
	// index) and per incarnation, the last time the member's side of the
	// network knew nothing of it.
	seenBy    map[crdt.NodeID]map[crdt.NodeID]bool
	unknownTo map[int]map[crdt.NodeID]int64
	owner     map[crdt.NodeID]int // per incarnation, its member (by index)
	// endedAt is, per incarnation that ended (left, restarted in place,
	// or crashed and replaced by a restart), when it did: a crashed one
	// ends at its restart, the others' roster counting it failed until
	// then.
	endedAt map[crdt.NodeID]int64
	// keptBy holds, per incarnation that left keeping its state (it had
	// saved a snapshot), the incarnations that were told so: a production
	// node counts such a leaver, for its stable bound, until an
	// incarnation of its name has synced with it or for FailedTimeout
	// (transport's roster), so it does not collect early past what the
	// leaver alone held meanwhile (see Counts).
	keptBy map[crdt.NodeID]map[crdt.NodeID]bool
	source Source
	// lostDown counts the frames taken for delivery to a member that was
	// down: lost, not delivered (see Stats). outlived counts the frames
	// received after their sender's incarnation ended, and those received
	// by a later incarnation of their destination than the one current
	// when they were sent (see Crash).
	lostDown uint64
	outlived [2]int
}

// A separation is a time during which a member's view lacked a member's
// name (whichever of its incarnations was the current one): from since
// until until (0: it goes on), and what the member whose view lacked it
// held as it began.
type separation struct {
	since, until int64
	held         holding
}

// A holding is the version of each key a member held when a separation
// began (a tombstone, a value or an evicted one alike); unknown for a
// separation a restore took up again (see RestartFrom).
type holding struct {
	versions map[string]crdt.Version
	unknown  bool
}

// holds reports whether the holding had v or a newer version of its key.
// A member that holds that cannot reject v (package lww merges any
// record of a key it holds, whatever the watermark), so its giving up on
// v's writer never loses v there.
func (h holding) holds(v crdt.Version) bool {
	cur, ok := h.versions[v.Key]
	return !h.unknown && ok && cur.Compare(v) >= 0
}

// holdingOf returns what member i holds now.
func (c *Cluster) holdingOf(i int) holding {
	h := holding{versions: map[string]crdt.Version{}}
	for _, r := range c.members[i].r.Records() {
		h.versions[r.Key] = r.Version()
	}
	return h
}

type member struct {
	name string
	id   crdt.NodeID // of the current incarnation
	r    Replica
	skew int64
	down bool
	// missing maps the members whose views lack this member to when it
	// went missing from them (from an earlier incarnation, if the
	// separation went on across a restart); ended holds the separations
	// that ended.
	missing map[string]int64
	held    map[string]holding // per observer in missing, what it held as the separation began
	ended   []separation
	// firstID is the newest id of the frames in flight when the current
	// incarnation started: those with an id up to it were sent before it
	// (ids only grow), and one sent before it and received after it was
	// in flight then. before holds their payloads (by their first
	// byte): a duplicate of one, made later, has a later id and shares
	// its payload.
	firstID uint64
	before  map[*byte]bool
	// snapshotted says it saved a snapshot (Snapshot): it runs with one,
	// and says it keeps its state when it leaves (KeepsLeaver).
	snapshotted bool
}

// NewCluster builds n replicas named "n0".."n{n-1}" with factory, at
// physical time start, all members of each other. n is 1 to 5,000
// (maxSimNodes, as Simulate's Nodes).
func NewCluster(n int, factory Factory, start int64) (*Cluster, error) {
	switch {
	case n < 1 || n > maxSimNodes:
		return nil, fmt.Errorf("proptest: a cluster of %d members, want 1 to %d", n, maxSimNodes)
	case factory == nil:
		return nil, errors.New("proptest: no factory")
	}
	c := &Cluster{Net: sim.New(), base: start, factory: factory, byName: map[string]int{}, born: map[crdt.NodeID]int64{},
		seenBy: map[crdt.NodeID]map[crdt.NodeID]bool{}, unknownTo: map[int]map[crdt.NodeID]int64{}, owner: map[crdt.NodeID]int{},
		endedAt: map[crdt.NodeID]int64{}, keptBy: map[crdt.NodeID]map[crdt.NodeID]bool{}}
	for i := range n {
		m := &member{name: fmt.Sprintf("n%d", i), missing: map[string]int64{}, held: map[string]holding{}}
		c.members = append(c.members, m)
		c.byName[m.name] = i
	}
	for i := range c.members {
		if err := c.incarnate(i); err != nil {
			return nil, err
		}
	}
	c.SyncViews()
	return c, nil
}

// incarnate gives member i a fresh replica with a new incarnation id.
func (c *Cluster) incarnate(i int) error {
	m := c.members[i]
	c.nextID++
	r, err := c.factory(m.name, c.nextID, func() int64 { return crdt.AddSat(c.base, m.skew) }) // saturated, as every time sum
	if err != nil {
		return fmt.Errorf("proptest: build %s: %w", m.name, err)
	}
	if r == nil {
		return fmt.Errorf("proptest: build %s: the factory returned no replica and no error", m.name)
	}
	// The separations of the old incarnation from the members whose
	// views lacked it go on with the new one: a member waits for a name,
	// failed since it lost it, and gives up on it FailedTimeout after that
	// whichever incarnation comes back (ended there, one that came back
	// cut off, its writes collected over after the timeout, was seen
	// missing only since its restart: found by review).
	// Those that count the name count its new incarnation too: they wait
	// for the old one as failed, and its writes come after its last cut.
	c.seenBy[c.nextID] = maps.Clone(c.seenBy[m.id])
	if c.seenBy[c.nextID] == nil {
		c.seenBy[c.nextID] = map[crdt.NodeID]bool{}
	}
	if _, ended := c.endedAt[m.id]; m.r != nil && !ended {
		// A crashed incarnation ends when the next takes its name: until
		// then the members count it failed (FailedTimeout), and its frames
		// must be kept however late (counted from the crash, LateFrames
		// excused a loss under a failed member counted too briefly).
		c.endedAt[m.id] = c.base
	}
	m.r, m.id = r, c.nextID
	m.firstID, m.before = 0, map[*byte]bool{}
	for _, p := range c.Net.InFlight() { // a reordered or duplicated frame is anywhere
		m.firstID = max(m.firstID, p.ID)
		m.before[unsafe.SliceData(p.Payload)] = true
	}
	c.owner[m.id], c.born[m.id] = i, c.base
	if f, ok := r.(ClusterFiller); ok {
		f.SetSource(c.source)
	}
	if mr, ok := r.(Monotonic); ok {
		mr.SetMonotonic(func() int64 { return c.base })
	}
	return nil
}

// SetSource sets the Source every ClusterFiller member fills from, now and
// after every restart.
func (c *Cluster) SetSource(s Source) {
	c.source = s
	for _, m := range c.members {
		if f, ok := m.r.(ClusterFiller); ok {
			f.SetSource(s)
		}
	}
}

// found ends the separation of member m from the view of the member
// called observer.
func (c *Cluster) found(m *member, observer string) {
	if since, ok := m.missing[observer]; ok {
		if since < c.base {
			m.ended = append(m.ended, separation{since, c.base, m.held[observer]})
		}
		delete(m.missing, observer)
		delete(m.held, observer)
	}
}

// Unseen returns the longest time for which some live member's membership
// view has lacked incarnation id's member (a crash, a partition, an
// absence, a leave), of the separations that went on after id started
// (one that began before, with an earlier incarnation, included), those
// still going on included: UnseenAfter from its start.
func (c *Cluster) Unseen(id crdt.NodeID) time.Duration {
	return c.UnseenAfter(id, c.born[id])
}

// UnseenAfter returns the longest separation of incarnation id's member
// from some live member's view that still went on after t: a member that
// lacks a member's name for longer than its FailedTimeout stops waiting
// for it (see transport.Config), whichever incarnation is current, and its
// early collection may then reject what the name wrote before it saw the
// name again and that it has not received. A separation that ended at or
// before t (the member seen again, and counted, before the write at t)
// excuses nothing written at t (before, one counted for the whole
// incarnation: seen cut off for a moment after a long separation, its
// later writes were all excused; found by review).
func (c *Cluster) UnseenAfter(id crdt.NodeID, t int64) time.Duration {
	return c.unseenAfter(id, t, nil)
}

// unseenAfter is UnseenAfter, leaving out, if v is not nil, the
// separations from the view of a member that held v (or a newer version
// of its key) as they began: that member's giving up on v's writer cannot
// lose v (before, the model excused the loss of a write every member held
// before the separation: found by review).
func (c *Cluster) unseenAfter(id crdt.NodeID, t int64, v *crdt.Version) time.Duration {
	j, ok := c.owner[id]
	if !ok {
		return 0
	}
	m := c.members[j]
	var longest int64
	for _, s := range m.ended {
		if s.until > t && (v == nil || !s.held.holds(*v)) {
			longest = max(longest, s.until-s.since)
		}
	}
	for observer, since := range m.missing {
		if v == nil || !m.held[observer].holds(*v) {
			longest = max(longest, c.base-since)
		}
	}
	return time.Duration(longest)
}

// noteUnknown records, for every live member, the incarnations its side
// of the network (the members it reaches, itself included) holds no
// incarnation that counts: nothing there waits for them in a stable
// bound (see transport.Config), so the side may collect early below what
// they wrote before their writes arrive (the README's "a member the
// others have not seen", which covers members the others saw before they
// restarted). An incarnation counts another once it has had the other's
// name in its view, while the other or an earlier incarnation of the
// name was the current one (a member restarted under its name is waited
// for as failed, and writes above its last cut), until told it left.
func (c *Cluster) noteUnknown() {
	for oi, o := range c.members {
		if o.down {
			continue
		}
		for w := range c.seenBy {
			if !c.sideKnows(oi, w) {
				if c.unknownTo[oi] == nil {
					c.unknownTo[oi] = map[crdt.NodeID]int64{}
				}
				c.unknownTo[oi][w] = c.base
			}
		}
	}
}

// sideKnows reports whether member o or a live member it reaches is
// incarnation w or counts it.
func (c *Cluster) sideKnows(o int, w crdt.NodeID) bool {
	for j, m := range c.members {
		if !m.down && (j == o || c.Net.Connected(c.members[o].name, m.name)) && (m.id == w || c.seenBy[w][m.id]) {
			return true
		}
	}
	return false
}

// UnknownTo reports whether the side of member i knew nothing of
// incarnation w at some time from t on (no live member of i's side had
// it in its view, as the cluster recorded at each step): what w wrote at
// t, i may have collected over.
func (c *Cluster) UnknownTo(i int, w crdt.NodeID, t int64) bool {
	c.noteUnknown()
	at, ok := c.unknownTo[i][w]
	return ok && at >= t
}

// AddOutsider puts a member called name in every membership view that can
// reach it, with no replica behind it: packets delivered to it go to hear,
// and the test sends its frames with Net.Send. It plays a member that
// holds the cluster key and is buggy or hostile.
func (c *Cluster) AddOutsider(name string, hear func(sim.Packet)) {
	c.outsider, c.hear = name, hear
	c.SyncViews()
}

// Size returns the number of members, crashed ones included.
func (c *Cluster) Size() int { return len(c.members) }

// Names returns the member names.
func (c *Cluster) Names() []string {
	names := make([]string, len(c.members))
	for i, m := range c.members {
		names[i] = m.name
	}
	return names
}

// Name returns member i's name.
func (c *Cluster) Name(i int) string { return c.members[i].name }

// Replica returns member i's current replica.
func (c *Cluster) Replica(i int) Replica { return c.members[i].r }

// Down reports whether member i is crashed.
func (c *Cluster) Down(i int) bool { return c.members[i].down }

// Now returns the common base time.
func (c *Cluster) Now() int64 { return c.base }

// Phys returns member i's physical time.
func (c *Cluster) Phys(i int) int64 { return crdt.AddSat(c.base, c.members[i].skew) }

// Advance moves every clock forward by d.
func (c *Cluster) Advance(d time.Duration) { c.base = crdt.AddSat(c.base, int64(d)) }

// SetSkew sets member i's clock to the base time plus skew (negative skews
// put it behind; changing it moves that clock forwards or backwards).
func (c *Cluster) SetSkew(i int, skew time.Duration) { c.members[i].skew = int64(skew) }

func (c *Cluster) send(i int, envs []transport.Envelope) {
	before := c.Net.Len()
	c.Net.Send(c.members[i].name, envs)
	if c.Sent != nil && len(envs) > 0 {
		added := c.Net.InFlight()[before:]
		c.Sent(c.members[i].name, added, len(envs)-len(added))
	}
}

// Set writes on member i and puts its deltas in flight. Member i must be
// up (see Down): a crashed member runs nothing, and a write taken there
// went out as its dead process's; Set panics.
func (c *Cluster) Set(i int, key string, value []byte, expires int64) crdt.Record {
	c.mustBeUp(i, "Set")
	rec, envs := c.members[i].r.Set(key, value, expires)
	c.send(i, envs)
	return rec
}

// Delete deletes on member i and puts its deltas in flight. Member i
// must be up, as for Set.
func (c *Cluster) Delete(i int, key string) crdt.Record {
	c.mustBeUp(i, "Delete")
	rec, envs := c.members[i].r.Delete(key)
	c.send(i, envs)
	return rec
}

// mustBeUp panics, naming op, if member i is down: a test's mistake,
// which the harness must not take for a write (found by review: a
// researcher's Set on a crashed member succeeded, and its deltas went).
func (c *Cluster) mustBeUp(i int, op string) {
	if c.members[i].down {
		panic(fmt.Sprintf("proptest: %s on %s, which is down (crashed or left: Restart it first)", op, c.members[i].name))
	}
}

// Tick runs the timers of every live member.
func (c *Cluster) Tick() {
	for i, m := range c.members {
		if !m.down {
			c.send(i, m.r.Tick())
		}
	}
}

// StartSession makes member i start anti-entropy with member j.
func (c *Cluster) StartSession(i, j int) {
	if !c.members[i].down {
		c.send(i, c.members[i].r.StartSession(c.members[j].name))
	}
}

// Pull makes member i, a Puller, pull from member j (see Puller), and
// returns the session's number; false if i is down or no Puller.
func (c *Cluster) Pull(i, j int) (uint64, bool) {
	p, ok := c.members[i].r.(Puller)
	if !ok || c.members[i].down {
		return 0, false
	}
	out, seq := p.Pull(c.members[j].name)
	c.send(i, out)
	return seq, true
}

// Deliver hands packet p of the network to its destination and puts the
// answers in flight. It reports whether the packet got through.
func (c *Cluster) Deliver(p int) (bool, error) {
	pkt, ok, err := c.Net.Take(p)
	if err != nil || !ok {
		return false, err
	}
	return c.DeliverPacket(pkt), nil
}

// DeliverPacket hands a packet already taken from the network to its
// destination and puts the answers in flight. It reports whether the
// destination was there to receive it.
func (c *Cluster) DeliverPacket(pkt sim.Packet) bool {
	outsider := pkt.To == c.outsider && c.hear != nil
	to, member := c.byName[pkt.To]
	ok := outsider || member && !c.members[to].down
	if !ok {
		c.lostDown++
	}
	if c.Delivered != nil {
		c.Delivered(pkt, ok)
	}
	switch {
	case outsider:
		c.hear(pkt)
	case ok:
		// A copy made later (sim.Network.Duplicate) has a later id and
		// the same payload (counted by id alone, copies were left out:
		// found by review).
		sentBefore := func(j int) bool {
			return pkt.ID <= c.members[j].firstID || c.members[j].before[unsafe.SliceData(pkt.Payload)]
		}
		if from, ok := c.byName[pkt.From]; ok && (c.members[from].down || sentBefore(from)) {
			c.outlived[0]++
		}
		if sentBefore(to) {
			c.outlived[1]++
		}
		r := c.members[to].r
		f, counts := r.(Refuser)
		var before uint64
		if counts && c.Refused != nil {
			before = f.Refused()
		}
		// Its own bytes, as under CheckType: a duplicate, and a
		// broadcast's copies, share the sender's, which a receiver that
		// opens its frames in place changed for the others (found by
		// review).
		c.send(to, r.Receive(pkt.Sender(), bytes.Clone(pkt.Payload)))
		if counts && c.Refused != nil && f.Refused() > before {
			c.Refused(pkt)
		}
	}
	return ok
}

// DeliverAll delivers everything in flight, oldest first, then what that
// caused, until the network is empty. It fails with ErrLivelock after
// budget deliveries (below 0: none, as 0), or once the frames in flight
// hold more than 32 MiB, as CheckType's do (maxTypeInFlight).
func (c *Cluster) DeliverAll(budget int) error {
	for n := 0; c.Net.Len() > 0; {
		for _, p := range c.Net.TakeAll() {
			// >=, not ==: a negative budget was no bound, and a replica
			// whose frames never settle ran for ever (found by review:
			// TestDeliverAllNegativeBudgetIsABound).
			if n >= budget {
				return fmt.Errorf("%w: still busy after %d deliveries", ErrLivelock, budget)
			}
			c.DeliverPacket(p)
			n++
			// Frames that grow at every hop, not in number, ran the
			// machine out of memory long before the budget (found by
			// review: TestDeliverAllBoundsTheBytesInFlight).
			if err := c.bytesBound(); err != nil {
				return err
			}
		}
	}
	return nil
}

// bytesBound fails with ErrLivelock once the frames in flight hold more
// than maxTypeInFlight bytes.
func (c *Cluster) bytesBound() error {
	if b := c.Net.Bytes(); b > maxTypeInFlight {
		return fmt.Errorf("%w: %d B in flight, more than %d", ErrLivelock, b, maxTypeInFlight)
	}
	return nil
}

// Stats returns the network's counters, with the frames taken for a
// member that was down counted as cut, not delivered.
func (c *Cluster) Stats() sim.Stats {
	st := c.Net.Stats()
	st.Delivered -= c.lostDown
	st.Cut += c.lostDown
	return st
}

// Crash takes member i down: its state is lost. Its frames in flight, to
// and from it, stay in flight, as datagrams in a network do: one delivered
// while it is down is lost (DeliverPacket), one to it delivered after it
// restarts reaches its next incarnation, and one it sent before it crashed
// may still arrive. (The network's SetDown cut them all as it crashed: no
// frame of an incarnation arrived after its crash, and no frame meant for
// it reached the next, which a real network does not promise; found by
// review.) The others' membership views lose it.
func (c *Cluster) Crash(i int) {
	c.members[i].down = true
	c.SyncViews()
}

// Join adds a member that was never in the cluster, named "n<i>" where i
// is the index it gets, with a fresh replica, and returns that index.
func (c *Cluster) Join() (int, error) {
	i, err := c.add()
	if err == nil {
		c.SyncViews()
	}
	return i, err
}

// add adds a member that was never in the cluster, as Join describes,
// and gives it no view.
func (c *Cluster) add() (int, error) {
	i := len(c.members)
	m := &member{name: fmt.Sprintf("n%d", i), missing: map[string]int64{}, held: map[string]holding{}}
	c.members = append(c.members, m)
	if err := c.incarnate(i); err != nil {
		c.members = c.members[:i]
		return 0, err
	}
	c.byName[m.name] = i
	return i, nil
}

// JoinApart is Join with the new member cut off from every other (the
// network partitioned into it and the rest, which heal among themselves)
// before any view is given it: no other member has it in its view until
// a heal, as a member started while its peers are out of reach.
func (c *Cluster) JoinApart() (int, error) {
	i, err := c.add()
	if err == nil {
		c.Partition([]string{c.members[i].name})
	}
	return i, err
}

// Counts reports whether member i, as it is now, counts incarnation w for
// its stable bound, as far as the Cluster can tell: i is w, or has had
// w's name in its view (see noteUnknown), or was told that w left
// keeping its state while w's name has not come back since, for less
// than failedTimeout (a production node counts such a leaver until an
// incarnation of its name has synced with it, or for FailedTimeout: the
// Cluster, which sees no sessions, stops at the name's next
// incarnation).
func (c *Cluster) Counts(i int, w crdt.NodeID, failedTimeout time.Duration) bool {
	id := c.members[i].id
	if id == w || c.seenBy[w][id] {
		return true
	}
	if !c.keptBy[w][id] {
		return false
	}
	o, ok := c.owner[w]
	return ok && c.members[o].id == w && c.members[o].down && crdt.SubSat(c.base, c.endedAt[w]) < int64(failedTimeout)
}

// Leave takes member i down as a member that leaves on purpose goes: its
// state is lost and its frames in flight stay in flight, as in a crash, and
// every live member is told it left (a [Leaver] replica stops waiting for
// it at once, instead of after the failure timeout; a [KeepsLeaver] is
// told, besides, that it keeps its state if it ever saved a snapshot,
// and that it keeps nothing if not). Restart brings it back.
func (c *Cluster) Leave(i int) {
	name := c.members[i].name
	c.endedAt[c.members[i].id] = c.base
	c.members[i].down = true
	keeps := c.members[i].snapshotted
	for _, m := range c.members {
		if m.down {
			continue
		}
		told := true
		kl, _ := m.r.(KeepsLeaver)
		if kl != nil {
			kl.LeftKeeping(name, keeps)
		} else if l, ok := m.r.(Leaver); ok {
			l.Left(name)
		} else {
			told = false
		}
		if told {
			// It forgets the member (see transport.Config): back under
			// the name, it is one it has not seen.
			counted := c.seenBy[c.members[i].id][m.id]
			delete(c.seenBy[c.members[i].id], m.id)
			if keeps && kl != nil && counted {
				// ... but counts it, keeping its state, until it is back
				// and synced, or for FailedTimeout (see Counts).
				if c.keptBy[c.members[i].id] == nil {
					c.keptBy[c.members[i].id] = map[crdt.NodeID]bool{}
				}
				c.keptBy[c.members[i].id][m.id] = true
			}
		}
	}
	c.SyncViews()
}

// Restart brings member i, which is down, back with empty state and a
// new incarnation, which receives the frames to the member still in
// flight. A member that is up is an error (a restart of a live process
// without its crash is Bounce; Restart wiped it, unmarked: found by
// review); so is a replica the factory fails to build, and the member
// stays down.
func (c *Cluster) Restart(i int) error {
	if !c.members[i].down {
		return fmt.Errorf("proptest: restart %s: it is up (Crash it first, or Bounce it)", c.members[i].name)
	}
	if err := c.incarnate(i); err != nil {
		return err
	}
	c.members[i].down = false
	c.SyncViews()
	return nil
}

// Bounce restarts member i in place: its state is lost, as in a crash, and
// a new incarnation starts empty under its name before any view saw the
// old one go (a restart quicker than failure detection), receiving the
// frames to the member still in flight. The others' views do not change;
// with tell, every live Restarter is told (see Restarter).
func (c *Cluster) Bounce(i int, tell bool) error {
	if c.members[i].down {
		return fmt.Errorf("proptest: bounce %s: it is down", c.members[i].name)
	}
	c.endedAt[c.members[i].id] = c.base
	if err := c.incarnate(i); err != nil {
		return err
	}
	c.SyncViews() // the new incarnation's view: the others' are as they were
	if tell {
		c.tellRestarted(i)
	}
	return nil
}

// tellRestarted tells every live Restarter but member i that i restarted.
func (c *Cluster) tellRestarted(i int) {
	for j, m := range c.members {
		if r, ok := m.r.(Restarter); ok && j != i && !m.down {
			r.Restarted(c.members[i].name)
		}
	}
}

// Partition splits the network into groups of member names (see
// sim.Network.Partition) and updates the membership views.
func (c *Cluster) Partition(groups ...[]string) {
	c.Net.Partition(groups...)
	c.SyncViews()
}

// Heal removes every partition and updates the membership views.
func (c *Cluster) Heal() {
	c.Net.Heal()
	c.SyncViews()
}

// SyncViews gives every live member the membership view failure detection
// would settle on: the live members it can reach, itself included. The
// Cluster calls it whenever a member crashes or restarts and whenever the
// network is partitioned or healed; call it after changing Net directly.
func (c *Cluster) SyncViews() {
	for i, m := range c.members {
		if m.down { // its views are gone: what it lacked no longer matters
			for _, o := range c.members {
				c.found(o, m.name)
			}
			continue
		}
		var view []string
		for j, o := range c.members {
			if !o.down && (i == j || c.Net.Connected(m.name, o.name)) {
				view = append(view, o.name)
				c.found(o, m.name)
				if i != j {
					c.seenBy[o.id][m.id] = true
				}
			} else if _, ok := o.missing[m.name]; !ok {
				o.missing[m.name] = c.base
				o.held[m.name] = c.holdingOf(i)
			}
		}
		if c.outsider != "" && c.Net.Connected(m.name, c.outsider) {
			view = append(view, c.outsider)
		}
		m.r.SetMembers(view)
	}
	c.noteUnknown()
}

// A Saved is a member's snapshot as Cluster.Snapshot took it: its
// replica's state, and the incarnations the member counted then.
type Saved struct {
	// State is what the replica's Snapshot returned.
	State any
	// member is the member that saved it; counted is, per member (by
	// index), its incarnation then, if the snapshot's incarnation counted
	// it (see noteUnknown); missing, per member, since when the
	// snapshot's incarnation had been without it in its view.
	member  int
	counted map[int]crdt.NodeID
	missing map[int]int64
}

// Snapshot saves live member i's state: its Snapshotter replica's, with
// what the Cluster knows of the members it counts, for RestartFrom.
func (c *Cluster) Snapshot(i int) (Saved, error) {
	s, ok := c.members[i].r.(Snapshotter)
	switch {
	case c.members[i].down:
		return Saved{}, fmt.Errorf("proptest: snapshot %s: it is down", c.members[i].name)
	case !ok:
		return Saved{}, fmt.Errorf("proptest: snapshot %s: %T cannot snapshot", c.members[i].name, c.members[i].r)
	}
	sv := Saved{member: i, counted: map[int]crdt.NodeID{}, missing: map[int]int64{}}
	id := c.members[i].id
	for j, o := range c.members {
		// The current incarnations only: one of a member that left is
		// counted no more, and its earlier ones, which still list the
		// snapshot's incarnation, are not what production keeps (it
		// keeps names, and forgets a leaver's; found by review).
		if j != i && c.seenBy[o.id][id] {
			sv.counted[j] = o.id
		}
		if since, ok := o.missing[c.members[i].name]; ok {
			sv.missing[j] = since
		}
	}
	sv.State = s.Snapshot()
	c.members[i].snapshotted = true
	return sv, nil
}

// RestartFrom brings member i back with a new incarnation restored from
// state: a Saved that Snapshot returned, or a state its Snapshotter
// replica's Snapshot returned. The replica restores it before it sees a
// membership view. A MemberKeeper restored from a Saved counts the
// members the snapshot's incarnation counted: the incarnations of them it
// counted then, and the later ones. As for Restart, member i must be
// down; a restore that fails leaves it down (it was left up, empty:
// found by review).
func (c *Cluster) RestartFrom(i int, state any) error {
	if !c.members[i].down {
		return fmt.Errorf("proptest: restart %s: it is up (Crash it first, or BounceFrom)", c.members[i].name)
	}
	if err := c.savedBy(i, state); err != nil {
		return err
	}
	c.members[i].down = false
	if err := c.restore(i, state); err != nil {
		c.members[i].down = true // its process did not start
		c.SyncViews()
		return err
	}
	return nil
}

// BounceFrom restarts member i in place (see Bounce) from state, as
// RestartFrom restores a member that is down: a process with a snapshot
// restarted quicker than failure detection.
func (c *Cluster) BounceFrom(i int, state any, tell bool) error {
	if c.members[i].down {
		return fmt.Errorf("proptest: bounce %s: it is down", c.members[i].name)
	}
	if err := c.savedBy(i, state); err != nil {
		return err
	}
	c.endedAt[c.members[i].id] = c.base
	if err := c.restore(i, state); err != nil {
		return err
	}
	if tell {
		c.tellRestarted(i)
	}
	return nil
}

// savedBy checks that state, if a Saved, is member i's.
func (c *Cluster) savedBy(i int, state any) error {
	if saved, ok := state.(Saved); ok && saved.member != i {
		return fmt.Errorf("proptest: restore %s from the snapshot of %s", c.members[i].name, c.members[saved.member].name)
	}
	return nil
}

// restore gives member i a new incarnation restored from state (see
// RestartFrom).
func (c *Cluster) restore(i int, state any) error {
	m := c.members[i]
	saved, isSaved := state.(Saved)
	if err := c.incarnate(i); err != nil {
		return err
	}
	s, ok := m.r.(Snapshotter)
	if !ok {
		return fmt.Errorf("proptest: restore %s: %T cannot restore snapshots", m.name, m.r)
	}
	if isSaved {
		state = saved.State
	}
	if err := s.Restore(state); err != nil {
		return err
	}
	if k, ok := m.r.(MemberKeeper); ok && isSaved && k.KeepsMembers() {
		for w := range c.seenBy {
			if from, ok := saved.counted[c.owner[w]]; ok && w >= from {
				c.seenBy[w][m.id] = true
			}
		}
		// It takes those it was without then for failed since then, as
		// it did: their separation from it goes on (else a crash between
		// split one longer than FailedTimeout, after which it stops
		// waiting, into two shorter).
		for j, since := range saved.missing {
			if o := c.members[j]; j != i && (o.down || !c.Net.Connected(m.name, o.name)) {
				o.missing[m.name] = since // seen now, it is alive to the restored member
				o.held[m.name] = holding{unknown: true}
			}
		}
	}
	c.SyncViews()
	return nil
}

// Converge heals the network, delivers everything in flight, then runs
// anti-entropy from every live member to every other, delivering all
// traffic after each session, until a whole round changes no record. It
// returns the number of rounds that changed something.
func (c *Cluster) Converge(maxRounds, budget int) (int, error) {
	c.Heal()
	c.Tick()
	if err := c.DeliverAll(budget); err != nil {
		return 0, err
	}
	for round := 0; round < maxRounds; round++ {
		before := c.snapshot()
		for i := range c.members {
			for j := range c.members {
				if i == j || c.members[i].down || c.members[j].down {
					continue
				}
				c.StartSession(i, j)
				if err := c.DeliverAll(budget); err != nil {
					return round, err
				}
			}
		}
		if slices.EqualFunc(before, c.snapshot(), slices.Equal) {
			return round, nil
		}
	}
	return maxRounds, fmt.Errorf("%w after %d rounds", ErrNoFixpoint, maxRounds)
}

// snapshot returns every live member's versions, sorted.
func (c *Cluster) snapshot() [][]crdt.Version {
	var out [][]crdt.Version
	for _, m := range c.members {
		if !m.down {
			out = append(out, Versions(m.r))
		}
	}
	return out
}

// Versions returns the versions a replica holds, sorted by key.
func Versions(r Replica) []crdt.Version {
	recs := r.Records()
	vs := make([]crdt.Version, len(recs))
	for i := range recs {
		vs[i] = recs[i].Version()
	}
	slices.SortFunc(vs, func(a, b crdt.Version) int {
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return a.Time.Compare(b.Time)
	})
	return vs
}
