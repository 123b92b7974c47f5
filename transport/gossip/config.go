package gossip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// ErrConfig is returned (wrapped) by [Start] for an invalid [Config].
var ErrConfig = errors.New("gossip: invalid config")

// Timings are memberlist's failure-detection and gossip timings plus the
// interval at which a member re-joins peers it has lost.
type Timings struct {
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	GossipInterval   time.Duration
	PushPullInterval time.Duration
	TCPTimeout       time.Duration
	SuspicionMult    int
	RetransmitMult   int
	// DeadReclaim is how long a dead member's name stays reserved for its
	// old address (memberlist's DeadNodeReclaimTime).
	DeadReclaim time.Duration
	// RejoinInterval is how often a member tries to join the seed peers and
	// every member it has seen that is no longer alive: memberlist does not
	// re-contact members it declared dead, so this is what reunites the two
	// sides of a healed partition and lets a node that booted offline join.
	// A member with every member it has seen alive looks at its seeds
	// too, for members it never met (a cluster booted while split): after
	// 10 intervals, then twice as long each time up to 5 minutes while it
	// meets no one new. At most 32 join attempts are in flight at a time.
	RejoinInterval time.Duration
}

// LANTimings returns memberlist's LAN defaults, with a re-join attempt
// every second: for production. Each lost member is tried on its own, one
// attempt at a time, so a member that does not answer costs one dial at a
// time, not a wait for the others.
func LANTimings() Timings {
	c := memberlist.DefaultLANConfig()
	return Timings{
		ProbeInterval:    c.ProbeInterval,
		ProbeTimeout:     c.ProbeTimeout,
		GossipInterval:   c.GossipInterval,
		PushPullInterval: c.PushPullInterval,
		TCPTimeout:       c.TCPTimeout,
		SuspicionMult:    c.SuspicionMult,
		RetransmitMult:   c.RetransmitMult,
		DeadReclaim:      c.DeadNodeReclaimTime,
		RejoinInterval:   time.Second,
	}
}

// FillTimings gives each zero field of t LANTimings's value, refuses a
// negative one, and a duration under MinDuration, with ErrConfig, and
// lowers those memberlist multiplies to MaxInterval and MaxSuspicionMult.
// A field left zero stopped what it times in memberlist (probes, gossip)
// or panicked a ticker (RejoinInterval) once the member ran (found by
// review).
func FillTimings(t *Timings) error {
	lan := LANTimings()
	if err := errors.Join(
		orDefault("ProbeInterval", &t.ProbeInterval, lan.ProbeInterval),
		orDefault("ProbeTimeout", &t.ProbeTimeout, lan.ProbeTimeout),
		orDefault("GossipInterval", &t.GossipInterval, lan.GossipInterval),
		orDefault("PushPullInterval", &t.PushPullInterval, lan.PushPullInterval),
		orDefault("TCPTimeout", &t.TCPTimeout, lan.TCPTimeout),
		orDefault("DeadReclaim", &t.DeadReclaim, lan.DeadReclaim),
		orDefault("RejoinInterval", &t.RejoinInterval, lan.RejoinInterval),
		orDefault("SuspicionMult", &t.SuspicionMult, lan.SuspicionMult),
		orDefault("RetransmitMult", &t.RetransmitMult, lan.RetransmitMult),
	); err != nil {
		return err
	}
	if err := errors.Join(
		atLeastMin("ProbeInterval", t.ProbeInterval),
		atLeastMin("ProbeTimeout", t.ProbeTimeout),
		atLeastMin("GossipInterval", t.GossipInterval),
		atLeastMin("PushPullInterval", t.PushPullInterval),
		atLeastMin("TCPTimeout", t.TCPTimeout),
		atLeastMin("RejoinInterval", t.RejoinInterval),
	); err != nil {
		return err
	}
	// memberlist multiplies these without saturating: its suspicion
	// timeout is SuspicionMult x a thousand times the log of the members x
	// ProbeInterval, its awareness scales ProbeInterval and ProbeTimeout by
	// up to 9, its push-pull interval grows with the members. A "forever"
	// ProbeInterval wrapped the suspicion timeout negative, and every
	// suspicion of a member became its death at once, with no time to
	// refute it (found by review).
	below := t.ProbeTimeout < t.ProbeInterval
	t.ProbeInterval = min(t.ProbeInterval, MaxInterval)
	t.ProbeTimeout = min(t.ProbeTimeout, MaxInterval)
	if below && t.ProbeTimeout >= t.ProbeInterval {
		// memberlist gives indirect probes and its TCP fallback what is
		// left of ProbeInterval after ProbeTimeout: a timeout set below
		// the interval stays below it, at memberlist's own ratio (half).
		t.ProbeTimeout = t.ProbeInterval / 2
	}
	t.PushPullInterval = min(t.PushPullInterval, MaxInterval)
	t.SuspicionMult = min(t.SuspicionMult, MaxSuspicionMult)
	// Its retransmit limit is RetransmitMult x the log of the members,
	// an int: a "forever" wrapped negative at ten members, and every
	// broadcast went out once.
	t.RetransmitMult = min(t.RetransmitMult, MaxRetransmitMult)
	return nil
}

// MaxInterval, MaxSuspicionMult and MaxRetransmitMult bound the Timings
// fields memberlist multiplies (ProbeInterval, ProbeTimeout,
// PushPullInterval; SuspicionMult; RetransmitMult): FillTimings lowers a
// larger one to them, so that a "forever" (time.Duration(math.MaxInt64))
// means "as seldom as can be" and memberlist's products fit in a Duration
// (the retransmit limit in an int) up to a billion members.
const (
	MaxInterval       = time.Hour
	MaxSuspicionMult  = 64
	MaxRetransmitMult = 64
)

// orDefault gives the field of Timings called name, v, the value def if
// it is zero, and refuses a negative one.
func orDefault[T time.Duration | int](name string, v *T, def T) error {
	switch {
	case *v < 0:
		return fmt.Errorf("%w: Timings.%s %v, want 0 (the default) or more", ErrConfig, name, *v)
	case *v == 0:
		*v = def
	}
	return nil
}

// atLeastMin refuses a duration under MinDuration of the field of
// Timings called name.
func atLeastMin(name string, d time.Duration) error {
	if d < MinDuration {
		return fmt.Errorf("%w: Timings.%s %v, want 0 (the default) or at least %v (a bare number is nanoseconds)", ErrConfig, name, d, MinDuration)
	}
	return nil
}

// MinDuration is the least duration a Timings field that paces or times
// out something takes (DeadReclaim may be zero, as memberlist's default
// is): one of a few
// nanoseconds (an untyped number, meant as seconds or milliseconds) made
// memberlist probe or gossip without pause, a core's worth of CPU (found
// by review).
const MinDuration = time.Millisecond

// FastTimings returns timings for tests and demos on one machine: failures
// are detected in about a second and lost members re-joined every 250 ms.
// Streams keep a 2-second deadline, enough for a 16 MiB frame on a busy
// machine.
func FastTimings() Timings {
	return Timings{
		ProbeInterval:    100 * time.Millisecond,
		ProbeTimeout:     50 * time.Millisecond,
		GossipInterval:   20 * time.Millisecond,
		PushPullInterval: time.Second,
		TCPTimeout:       2 * time.Second,
		SuspicionMult:    2,
		RetransmitMult:   2,
		DeadReclaim:      time.Second,
		RejoinInterval:   250 * time.Millisecond,
	}
}

// Transport is what carries memberlist's packets and streams: its own UDP
// and TCP sockets by default, an in-memory one (package memnet) for fault injection.
type Transport = memberlist.NodeAwareTransport

// Config configures a [Replicator].
type Config struct {
	// Name is this member's name, unique in the cluster, at most
	// MaxNameLen bytes of valid UTF-8. Required.
	Name string
	// BindAddr is the host:port to listen on, UDP and TCP; port 0 picks a
	// free one (see Replicator.Addr). Required unless Transport is set.
	BindAddr string
	// AdvertiseAddr, if set, is the ip:port other members reach this one
	// at (behind NAT); by default the bound address. Port 0 stands for the
	// port bound; an unspecified host (0.0.0.0, ::) or a host name is
	// refused.
	AdvertiseAddr string
	// Peers are the members to join; any live one will do. Empty for the
	// first member of a cluster. Each is host:port, where host may be a
	// DNS name with several addresses (a Kubernetes headless Service):
	// each is a peer; or srv:NAME, a DNS SRV name whose every target, at
	// the port it gives, is a peer. Names are resolved again every time
	// the seeds are tried (at start, and every RejoinInterval while this
	// member is alone or misses members), so members that come and go
	// behind them are found. With a Transport of the caller's, peers are
	// its addresses, not resolved.
	Peers []string
	// PeerSource, if set, gives more peers (as Peers takes them) each time
	// the seeds are tried: for a service registry. It should return within
	// a couple of seconds (its context says when).
	PeerSource func(context.Context) ([]string, error)
	// Resolver looks up the names among the peers; nil is
	// net.DefaultResolver.
	Resolver *net.Resolver
	// OnCall, if set, answers the calls peers make (Replicator.Call),
	// each on a goroutine of its own, at most 256 at once (past them a
	// call fails with ErrBusy). It gets the caller's name and payload.
	OnCall func(from string, payload []byte) []byte
	// SecretKey, if set, encrypts every packet and stream with AES-GCM; it
	// must be 16, 24 or 32 bytes. Members without the same key can neither
	// join nor be heard.
	SecretKey []byte
	// AcceptKeys are keys, besides SecretKey, that the member decrypts
	// with (it encrypts with SecretKey alone): to rotate the key without
	// stopping the cluster. They need a SecretKey; with it, 60 distinct
	// keys at most (the member names them in its metadata). The member
	// keeps copies of both: the caller may clear its buffers once Start
	// returns.
	AcceptKeys [][]byte
	// Label, if set, is a cluster label every packet and stream carries;
	// members with another label are ignored. At most 255 bytes.
	Label string
	// Timings; each field left zero takes LANTimings's value.
	Timings Timings
	// Transport, if set, replaces memberlist's UDP/TCP transport (for
	// example with a memnet.Transport for fault injection); BindAddr is then
	// ignored. Start takes it: Close shuts it down, and so does a Start
	// that fails.
	Transport Transport
	// PacketSize is the largest frame sent as a datagram (memberlist's
	// UDPBufferSize); larger frames go over a stream. 0 selects 1400, or
	// LoopbackPacketSize for a member on the default transport whose
	// address (AdvertiseAddr, else BindAddr) is a loopback one; at most
	// MaxPacketSize, and it must leave a datagram at least 256 bytes
	// after the Label and Name. Members may differ in it: a member takes
	// datagrams up to the largest UDP payload, whatever its own.
	PacketSize int
	// Replica is the state to keep in sync; Clock is its hybrid logical
	// clock, whose physical source also times the protocol. Required.
	Replica transport.Replica
	Clock   *crdt.HLC
	// Protocol tunes the sync protocol; its Name, Replica, Clock and
	// PacketBudget are filled in.
	Protocol transport.Config
	// QueueSize bounds the frames received and not yet handled
	// (memberlist's handler queue) and a quarter of the local writes
	// waiting for the protocol; past it they are dropped and counted, and
	// anti-entropy repairs the loss. 0 selects 4096. On the default UDP
	// transport, frames in datagrams skip memberlist's queue: the reader
	// applies each as it reads it, and those that arrive meanwhile wait
	// in the socket's receive buffer (16 MiB asked for), past which the
	// kernel drops datagrams, memberlist's own too, uncounted here.
	QueueSize int
	// Logger receives one line per event worth an operator's attention,
	// memberlist's own lines included: those at most once a second per
	// kind of message (see Stats.MemberlistErrors).
	Logger zerolog.Logger
	// OnDrop, if set, is called with every live record the replica forgot
	// because a peer rejected it (see transport.Node.Dropped). It runs on
	// one of the Replicator's goroutines with none of its locks held, one
	// call at a time, in the order dropped, and must not block for long:
	// while it does, the goroutines that drop more (receiving peers'
	// frames) wait once 1,024 records are queued for it.
	OnDrop func(crdt.Version)
	// Founder says this member's state, restored, is that of a cluster's
	// founder that never met another member (see Replicator.Founder).
	Founder bool
	// Restored says this member's state is not of a lineage that met no
	// other member (it restored state built with others): it may hold a
	// cluster's data with the others out of reach, and a lookup of its
	// seeds that finds only itself does not make it a founder (one made a
	// member restarted in a partition a founder for good, ready without a
	// sync: found by review).
	Restored bool
	// KeepsState says this member comes back under its name with the
	// state it holds (a snapshot, a fixed name): when it leaves, the others
	// wait for it to come back, or for the protocol's FailedTimeout, before
	// they collect dead records early without it, since a write of its
	// whose delta was lost is in its state alone. A member that keeps
	// nothing is not waited for once the others have synced.
	KeepsState bool
	// OnFounder, if set, is called on a goroutine of its own when this
	// member becomes a founder (see Replicator.Founder), and when it first
	// sees another member alive (see MetAny).
	OnFounder func()
	// AfterReceive, if set, is called after each frame received has been
	// handled (its records applied), outside the protocol's lock: a host
	// that watches the replica's changes hands them on once per frame.
	AfterReceive func()
}

const (
	defaultPacketSize = 1400
	// LoopbackPacketSize is the PacketSize a member takes by default when
	// the address it is reached at is a loopback one (127.0.0.0/8, ::1):
	// every member that can reach it runs on its host, and their
	// datagrams never leave the loopback interface, whose MTU (64 KiB on
	// Linux, 16 KiB on macOS and the BSDs) carries them unfragmented, and
	// which macOS's limit on a datagram sent (net.inet.udp.maxdgram, 9,216
	// bytes by default) lets through. What a datagram costs is mostly the
	// system calls and the kernel's work per packet, and on one host the
	// kernel's work of both ends is the host's: at saturation, the system
	// calls of members of one machine went from a fifth of their CPU to a
	// twentieth with it (see the README's "Datagrams on one host"). A
	// datagram on a real network stays under its path's MTU (1,500 bytes
	// on most) at the default. Fragments of anti-entropy frames keep the
	// default's size (see fragmentSize).
	LoopbackPacketSize = 8192
	defaultQueueSize   = 4096
	// maxStreamFrame is the largest frame memberlist takes as a stream user
	// message; by default the decoder refuses larger ones too.
	maxStreamFrame = 20 << 20
	// frameSlack is what memberlist adds to a datagram around our frame: a
	// message type byte, a 5-byte checksum header, and with encryption a
	// version byte, a 12-byte nonce and a 16-byte tag (the label header
	// comes on top: see datagramRoom).
	frameSlack = 1 + 5 + 29
	// MaxPacketSize is the largest PacketSize: the largest UDP payload
	// over IPv4 (a larger datagram is refused by the kernel, every time).
	MaxPacketSize = 65507
	// minPacketRoom is the least a datagram must carry of a frame, once
	// the headers, the label and the sender's name are paid for.
	minPacketRoom = 256
)

// datagramRoom is the largest frame of ours that goes in one datagram of
// this member's packet size.
func (r *Replicator) datagramRoom() int { return r.cfg.roomAt(r.cfg.PacketSize) }

// roomAt is the largest frame of ours that a datagram of packet bytes
// carries: less what memberlist adds around it, its label header (a type
// byte, a length byte and the label) included.
func (c *Config) roomAt(packet int) int { return packet - frameSlack - 2 - len(c.Label) }

// maxLabel is the longest Label memberlist takes.
const maxLabel = 255

// Check reports what Start would refuse c for (ErrConfig), without
// starting anything: a host checks its configuration before work that
// should not be done for a member that cannot start.
func (c Config) Check() error { return c.fill() }

// Filled returns c with the defaults Start applies filled in (PacketSize,
// QueueSize, Timings), or what Check reports.
func (c Config) Filled() (Config, error) {
	err := c.fill()
	return c, err
}

func (c *Config) fill() error {
	if c.Name == "" || c.Replica == nil || c.Clock == nil {
		return fmt.Errorf("%w: Name, Replica and Clock are required", ErrConfig)
	}
	if len(c.Name) > MaxNameLen {
		return fmt.Errorf("%w: Name: %d bytes (limit %d)", ErrConfig, len(c.Name), MaxNameLen)
	}
	if !utf8.ValidString(c.Name) { // see validName
		return fmt.Errorf("%w: Name: %q is not valid UTF-8", ErrConfig, c.Name)
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("%w: SecretKey: %d bytes, want 16, 24 or 32", ErrConfig, len(c.SecretKey))
	}
	if len(c.AcceptKeys) > 0 && len(c.SecretKey) == 0 {
		return fmt.Errorf("%w: AcceptKeys need a SecretKey", ErrConfig)
	}
	for i, k := range c.AcceptKeys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("%w: AcceptKeys[%d]: %d bytes, want 16, 24 or 32", ErrConfig, i, n)
		}
	}
	// The metadata names at most maxKeyIDs keys (keys.go): with more, the
	// member named none, and its peers took it whatever its keys.
	if len(c.SecretKey) > 0 && len(keyIDs(c)) == 0 {
		return fmt.Errorf("%w: AcceptKeys: more than %d distinct keys with SecretKey", ErrConfig, maxKeyIDs)
	}
	if c.Transport == nil {
		host, _, err := splitHostPort(c.BindAddr)
		if err != nil {
			return fmt.Errorf("%w: BindAddr: %w", ErrConfig, err)
		}
		// A multicast or broadcast address binds (Linux takes both, for
		// TCP too) and is advertised without an AdvertiseAddr, but no
		// peer's join or stream reaches it (found by review, as for
		// AdvertiseAddr).
		if ip := net.ParseIP(host); ip != nil && (ip.IsMulticast() || ip.Equal(net.IPv4bcast)) {
			return fmt.Errorf("%w: BindAddr: %q: a multicast or broadcast address, which no peer reaches", ErrConfig, c.BindAddr)
		}
	}
	if c.Transport == nil {
		for _, p := range c.Peers {
			if err := checkPeer(p); err != nil {
				return fmt.Errorf("%w: Peers: %q: %v (want host:port or srv:NAME)", ErrConfig, p, err)
			}
		}
	}
	if c.AdvertiseAddr != "" {
		host, _, err := splitHostPort(c.AdvertiseAddr)
		if err != nil {
			return fmt.Errorf("%w: AdvertiseAddr: %w", ErrConfig, err)
		}
		// Peers dial what is advertised: an address of every interface
		// would have them dial themselves, a multicast or broadcast one
		// no member (both were taken: found by review). (Port 0
		// advertises the port bound.)
		if ip := net.ParseIP(host); host == "" || (ip != nil && (ip.IsUnspecified() || ip.IsMulticast() || ip.Equal(net.IPv4bcast))) {
			return fmt.Errorf("%w: AdvertiseAddr: %q: want an address peers can dial", ErrConfig, c.AdvertiseAddr)
		}
		// memberlist advertises an IP address, and refused a name only
		// once Start was under way, in an error without ErrConfig.
		if net.ParseIP(host) == nil {
			return fmt.Errorf("%w: AdvertiseAddr: %q: want an IP address, not a host name", ErrConfig, c.AdvertiseAddr)
		}
	}
	if len(c.Label) > maxLabel { // memberlist's limit, refused by it at Start alike
		return fmt.Errorf("%w: Label: %d bytes, want at most %d", ErrConfig, len(c.Label), maxLabel)
	}
	if err := FillTimings(&c.Timings); err != nil {
		return err
	}
	if c.PacketSize == 0 {
		c.PacketSize = defaultPacketSize
		if c.Transport == nil && c.onLoopback() {
			c.PacketSize = LoopbackPacketSize
		}
	}
	if c.QueueSize == 0 {
		c.QueueSize = defaultQueueSize
	}
	// Each field named alone: a PacketSize out of range was refused as
	// "PacketSize -1 (512 to 65507) or QueueSize 4096 (at least 1)",
	// naming a field the caller never set (found by review).
	if c.PacketSize < 512 || c.PacketSize > MaxPacketSize {
		return fmt.Errorf("%w: PacketSize: %d, want 512 to %d", ErrConfig, c.PacketSize, MaxPacketSize)
	}
	if c.QueueSize < 1 {
		return fmt.Errorf("%w: QueueSize: %d, want at least 1", ErrConfig, c.QueueSize)
	}
	// What a datagram carries after memberlist's headers, the label's and
	// a fragment's (which names the sender) must leave room for records.
	// Named as "PacketSize: ", as every field is: without the colon the
	// node's flagOf found no field, and named no flag (found by review,
	// TestPacketSizeTooSmallForTheNameNamesItsFlag).
	if room := c.roomAt(c.PacketSize) - fragmentHead(c.Name); room < minPacketRoom {
		return fmt.Errorf("%w: PacketSize: %d leaves %d bytes a datagram after the Label (%d bytes) and Name (%d bytes), want at least %d",
			ErrConfig, c.PacketSize, room, len(c.Label), len(c.Name), minPacketRoom)
	}
	return nil
}

// onLoopback says the address peers reach this member at is a loopback
// one: AdvertiseAddr's host, else BindAddr's, an IP address (a host name,
// even localhost, is not looked up here: such a member takes the default).
func (c *Config) onLoopback() bool {
	addr := c.AdvertiseAddr
	if addr == "" {
		addr = c.BindAddr
	}
	host, _, err := splitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// splitHostPort parses host:port with a numeric port.
func splitHostPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	// Digits alone: Atoi took "+7946", which passed the checks and then
	// failed every look and join (found by review).
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, int(port), nil
}

// memberlistConfig builds memberlist's configuration from c; memberlist
// logs to logOut.
func (c *Config) memberlistConfig(d delegate, t memberlist.NodeAwareTransport, logOut io.Writer) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.Name
	mc.Transport = t
	mc.Delegate, mc.Events, mc.Conflict, mc.Alive = d, d, d, d
	mc.ProbeInterval, mc.ProbeTimeout = c.Timings.ProbeInterval, c.Timings.ProbeTimeout
	mc.GossipInterval, mc.PushPullInterval = c.Timings.GossipInterval, c.Timings.PushPullInterval
	mc.TCPTimeout, mc.SuspicionMult = c.Timings.TCPTimeout, c.Timings.SuspicionMult
	mc.RetransmitMult, mc.DeadNodeReclaimTime = c.Timings.RetransmitMult, c.Timings.DeadReclaim
	mc.GossipToTheDeadTime = c.Timings.PushPullInterval
	mc.UDPBufferSize = c.PacketSize
	// Frames are compact already, and compressing every packet and stream
	// costs CPU on the hot path and time within the stream deadline.
	mc.EnableCompression = false
	mc.HandoffQueueDepth = c.QueueSize // received frames waiting for NotifyMsg
	mc.Label = c.Label
	// This member takes frames without their sender's name (frame.go); its
	// current delegate version stays 0, so that members of earlier
	// releases, whose range is 0 to 0, still accept it.
	mc.DelegateProtocolMax = delegateMax
	mc.LogOutput = logOut
	if len(c.SecretKey) > 0 {
		kr, err := memberlist.NewKeyring(c.AcceptKeys, c.SecretKey) // fill checked the keys
		if err != nil {
			panic(err) // a key of a length fill refused
		}
		mc.Keyring = kr
	}
	if c.AdvertiseAddr != "" {
		host, port, _ := splitHostPort(c.AdvertiseAddr)
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	if c.Transport == nil {
		host, port, _ := splitHostPort(c.BindAddr)
		mc.BindAddr, mc.BindPort = host, port
		if ip := net.ParseIP(host); c.AdvertiseAddr == "" && ip != nil && !ip.IsUnspecified() {
			mc.AdvertiseAddr, mc.AdvertisePort = host, port
		}
	}
	return mc
}
