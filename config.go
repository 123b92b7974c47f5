package bcache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/lww"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/gossip"
	"github.com/bcache-go/bcache/transport/wire"
)

// Timings are memberlist's failure-detection timings plus the re-join
// interval; see LANTimings and FastTimings.
type Timings = gossip.Timings

// LANTimings returns memberlist's LAN defaults: for production.
func LANTimings() Timings { return gossip.LANTimings() }

// FastTimings returns timings for tests and demos on one machine: failures
// are detected in about a second.
func FastTimings() Timings { return gossip.FastTimings() }

// Defaults of Config. Each is owned by the package that applies it; these
// name them for a reader of this package.
const (
	DefaultMaxKeySize          = 64 << 10 // the wire's hard limit on keys
	DefaultMaxValueSize        = 1 << 20
	DefaultTombstoneHorizon    = lww.DefaultHorizon
	DefaultMaxClockDrift       = crdt.DefaultMaxClockDrift
	DefaultFlushInterval       = transport.DefaultFlushInterval
	DefaultAntiEntropyInterval = transport.DefaultAntiEntropyInterval
	DefaultGCInterval          = time.Second
	DefaultMaxClockSkew        = transport.DefaultStableMargin
	DefaultSnapshotInterval    = 5 * time.Minute
	DefaultSyncEvery           = 100 * time.Millisecond
	DefaultFillTimeout         = 10 * time.Second
	DefaultSubscriptionBytes   = 64 << 20
)

// MaxKeysLimit is the largest MaxKeys, about 134 million values: what the
// eviction policy can place (a larger one is taken as it). A member
// bounded by MaxBytes alone holds at most that many values too.
const MaxKeysLimit = store.MaxBoundedKeys

// maxValueLimit is the largest MaxValueSize: the wire's hard limit on a
// value, which fits one of memberlist's stream messages with room to spare.
var maxValueLimit = wire.DefaultLimits().MaxValue

// Config configures a Cache. The zero Config plus a BindAddr works: every
// other field has a safe default.
type Config struct {
	// NodeName is this member's name, unique in the cluster, at most 255
	// bytes of valid UTF-8. Default: a random one.
	NodeName string
	// BindAddr is the host:port to listen on for UDP and TCP, for example
	// "0.0.0.0:7946" (a host name is resolved once, at New); port 0 picks a
	// free one (see Cache.Addr). Required unless Network is set.
	BindAddr string
	// AdvertiseAddr is the ip:port other members reach this one at, when
	// it differs from BindAddr (NAT, a wildcard bind address); a host name
	// is refused. Optional.
	AdvertiseAddr string
	// Peers are any live members to join. Empty for the first member.
	// Unreachable peers do not stop New: the member starts alone and joins
	// as soon as one answers. Each is host:port, where host may be a DNS
	// name with several addresses (a Kubernetes headless Service), each a
	// peer; or srv:NAME, a DNS SRV name whose targets, at the ports it
	// gives, are peers (no space, control character or, after srv:, port:
	// refused). Names are resolved again each time the member
	// tries its peers (at start, and every re-join interval while it is
	// alone or misses members), so members that come and go are found.
	Peers []string
	// PeerSource, if set, gives more peers, as Peers takes them, each time
	// the member tries its peers: for a service registry. An answer names
	// the members there are: one with none but this member (or none at
	// all) makes it the cluster's founder (see Status.PeersConfigured), so
	// return an error while the answer is not known yet (a registry client
	// not synced). It should honour its context: one that has not
	// returned a second after its context ended counts as failed, and is
	// left running, and the next look calls it again (up to 4 calls not
	// returned at once: it must be safe for concurrent use); a panic in it
	// counts as its failure. Peers, and what it
	// gives, are looked up 16 at a time, together up to 1,024 addresses:
	// past them the rest are left out, which is logged (at most once a
	// minute), not counted as a failure.
	PeerSource func(context.Context) ([]string, error)
	// Resolver looks up the peers' names; nil is net.DefaultResolver.
	Resolver *net.Resolver
	// MaxKeys bounds the values this member holds; past it values are
	// evicted locally (their keys and versions stay, so nothing stale comes
	// back): first peers' writes not read here, oldest first, then values
	// written here and not read again, then those read least (package
	// evict). 0 means unbounded. One past MaxKeysLimit is taken as it,
	// which also bounds in keys a member bounded by MaxBytes alone.
	MaxKeys int
	// MaxBytes bounds the key and value bytes this member holds, in the
	// same way. 0 means unbounded.
	MaxBytes int64
	// SecretKey, if set, encrypts all cluster traffic with AES-GCM; it must
	// be 16, 24 or 32 bytes, the same on every member.
	SecretKey []byte
	// AcceptKeys are keys, besides SecretKey, that this member also
	// decrypts with; it encrypts with SecretKey alone. They let a cluster
	// change its key one member at a time: see the README's "Key
	// rotation". Each is 16, 24 or 32 bytes; they need a SecretKey; with
	// it, 60 distinct keys at most (a member names the keys it holds to
	// its peers in metadata of 512 bytes).
	AcceptKeys [][]byte
	// Label, if set, keeps this member to a cluster with the same label.
	// At most 255 bytes.
	Label string
	// PacketSize is the largest datagram the member sends, its headers
	// included; larger frames go over TCP streams. Default: 1400 bytes,
	// under a real network's path MTU, or gossip.LoopbackPacketSize (8
	// KiB) for a member whose address (AdvertiseAddr, else BindAddr) is a
	// loopback IP address, as every member that reaches it runs on its
	// host (a host name such as localhost is not read as one: 1400; with
	// a Network of its own, 1400). Raise it on a network whose
	// every path carries larger packets (jumbo frames): fewer datagrams,
	// fewer system calls a write. From 512 to 65,507 (the host's own
	// limit may be lower: macOS sends at most 9,216 bytes a datagram by
	// default); members may differ in it.
	PacketSize int
	// Logger receives one line per event worth an operator's attention,
	// with a "node" field naming this member. The zero Logger is silent.
	Logger zerolog.Logger
	// Clock, if set, replaces the wall clock (for tests). It is called
	// with the Cache's own locks held: it must not call the Cache. It is
	// called from many goroutines at once (every Get reads it): it must be
	// safe for concurrent use. A time before 1678 or after 2262, which
	// Unix nanoseconds do not hold, reads as the first or the last of them.
	Clock func() time.Time

	// MaxKeySize and MaxValueSize bound the keys and values this member
	// writes, in bytes (reads, GetAfter too, take any key a peer may have
	// written, up to 64 KiB; Delete takes such a key when this member
	// holds a record of it). Defaults: 64 KiB (also the most) and 1 MiB;
	// MaxValueSize at most 16 MiB, and at most MaxBytes (its default
	// below 1 MiB). Members may disagree: a value received
	// over this member's MaxValueSize is kept as its version without the
	// value (a miss here, counted in Stats.Oversized), so every record both
	// can hold still repairs.
	MaxKeySize, MaxValueSize int
	// TombstoneHorizon is how long deletes and expired values are kept at
	// most, and how long a member that vanished without leaving is waited
	// for, and one that left keeping its state (a SnapshotPath and a
	// NodeName given) until it is back. While every member is present, dead records are collected
	// within seconds, once every member is known to hold them (a member
	// alone that has not synced with a peer since it started, a founder
	// included, waits the horizon: it cannot know what the others hold;
	// see MaxDeadRecords for a bound); a member
	// absent for longer than the horizon, on its return, may lose what it
	// wrote while away, and make the others lose what they wrote in that
	// time (see the README's guarantees and package lww). It must be
	// longer than MaxClockDrift. Default: 1 hour.
	TombstoneHorizon time.Duration
	// MaxDeadRecords bounds the dead records (deletes, expired values) this
	// member keeps while it may not collect them yet, which it must while
	// a member is absent: past it, the oldest are collected at the next
	// collection (every GCInterval: between two, a burst of deletes may
	// hold more, as many as it makes), at a price (package lww, rule 7;
	// counted in Stats.CollectedByBound),
	// values that expired less than MaxClockSkew ago last (members whose
	// clocks are behind may still serve them, and would lose them).
	// Deletes stamped after this member's clock (a peer's clock ahead)
	// are not counted until it reaches them: none can be collected before.
	// Default: MaxKeys, or else MaxBytes/256 (a dead record costs about 200
	// bytes with a short key; its key's bytes more with a long one, which
	// MaxDeadBytes bounds), at least 10,000; with neither set, -1. -1 means
	// unbounded.
	MaxDeadRecords int
	// MaxDeadBytes bounds the bytes of the keys of those dead records, as
	// MaxDeadRecords bounds their number, and the same way (the oldest are
	// collected past it, counted in Stats.CollectedByBound): a tombstone
	// holds its key whole, and a peer's keys may be up to 64 KiB whatever
	// this member's MaxKeySize, so that 10,000 dead records could hold 650
	// MB beside 1 MiB of values. Default: MaxBytes, at least
	// MaxDeadRecords times 256 (2,560,000 at the least: keys of ordinary
	// length take the records bound first); with MaxBytes unset,
	// MaxDeadRecords times MaxKeySize; -1 (unbounded) when MaxDeadRecords
	// is. -1 means unbounded.
	MaxDeadBytes int64
	// MaxClockSkew is the most the members' clocks are expected to differ
	// (NTP keeps them within milliseconds): early collection keeps this far
	// behind what every member is known to hold, and takes a value early
	// only once it expired before that bound, so that no member whose
	// clock is behind by up to this much serves it still (MaxDeadRecords
	// takes such values last). Default: 1 s.
	MaxClockSkew time.Duration
	// MaxClockDrift is how far ahead of local time a received timestamp
	// may be before it is refused. Default: 30 s.
	MaxClockDrift time.Duration
	// FlushInterval is the longest a write waits to be batched with others
	// while writes keep coming; a write to an idle member leaves at once.
	// Default: none: every write made while the member was sending the
	// last ones leaves with them as soon as that send is done (group
	// commit), which batches under load without delaying a lone write.
	FlushInterval time.Duration
	// AntiEntropyInterval is how often the member compares digests with a
	// peer. Default: 1 s.
	AntiEntropyInterval time.Duration
	// GCInterval is how often dead records are collected. Default: 1 s (a
	// member holding no tombstone and no value with a TTL skips the scan).
	GCInterval time.Duration
	// Timings are memberlist's; each field left zero takes LANTimings's
	// value, a negative one is refused.
	Timings Timings
	// Network, if set, replaces the UDP/TCP sockets, for example with a
	// transport/gossip/memnet Transport, which runs members in memory under
	// the faults a test chooses; BindAddr is then ignored. New takes it:
	// the Cache's Close shuts it down, and so does a New that fails.
	Network gossip.Transport
	// SnapshotPath, if set, is a file in which this member keeps its
	// records across restarts, for edge members that may restart while
	// their peers are out of reach: New restores the member from it (a
	// missing file starts empty; a damaged one is an error wrapping
	// ErrSnapshot), and the member rewrites it every SnapshotInterval and
	// at Close. Restoring is safe however old the file is: see the package
	// doc. One member a path: New locks <SnapshotPath>.lock (flock on
	// Unix, fcntl on Solaris and AIX, LockFileEx on Windows; the lock goes
	// with the process, however it ends) and refuses a second member
	// while another holds it (ErrConfig). Its file name
	// may be 195 bytes long at most: the files beside it add to it; and
	// it may not be the name of one of those files for another path
	// ("<path>.members", ".founder", ".clock", ".lock", ".log.<n>", ".tmp-...":
	// ErrConfig), nor a symbolic link of such a name. New resolves it
	// once, links and a relative path included, and the member keeps that
	// file for as long as it runs (Config reports it so): a link that
	// later names another directory, or a changed working directory,
	// does not move it. Do not move its directory or remove the lock
	// file while the member runs: it then no longer holds the path's
	// lock, and writes no snapshot, clock floor or mark there until it
	// closes (each counted in Stats.SnapshotErrors or FloorErrors, and
	// Close returns the error), lest it write over the files of a member
	// started there since; its write log goes on in the file it holds.
	SnapshotPath string
	// SnapshotInterval is how often the snapshot is rewritten; negative
	// writes it only at Close (and at New, to cover a write log left
	// behind), and, with a write log (Sync), whenever the log grows past
	// twice the last snapshot's size and 4 MiB (Stats.LogSnapshots).
	// Default: 5 min.
	SnapshotInterval time.Duration
	// Sync says when this member's own writes reach the disk between
	// snapshots: see SyncPolicy. Any policy but SyncNone (the default)
	// keeps a write log beside the snapshot ("<SnapshotPath>.log.<n>"),
	// emptied by every snapshot, and needs SnapshotPath. New replays the
	// log after the snapshot, through the same checks (clock drift,
	// watermarks), so an old log cannot bring back a collected delete.
	Sync SyncPolicy
	// SyncEvery is how often SyncInterval syncs the log. Default: 100 ms.
	SyncEvery time.Duration
	// LogReceived also appends the records received from peers to the
	// write log (no one waits for them: with SyncWrite they are synced
	// within about one sync, with SyncInterval within SyncEvery; they
	// are counted in Stats.Logged once synced), so that a restart restores them
	// without waiting for a peer to answer: for edge members that may
	// restart while cut off. Needs a Sync policy other than SyncNone.
	LogReceived bool
	// OnDamage says what New does with a snapshot, write log or members
	// file that is damaged, and with records of them stamped more than
	// MaxClockDrift ahead of its clock (ErrAheadOfClock, or skipped): see
	// DamagePolicy (which says what it does with a file it cannot read).
	// Default: DamageFail.
	OnDamage DamagePolicy
	// Filler, if set, fills the keys GetOrFill misses, once in the
	// cluster (see GetOrFill); every member should have the same one.
	Filler Filler
	// FillTTL is the TTL of the values Filler fills; 0 is none.
	FillTTL time.Duration
	// FillTimeout bounds a fill, here or asked of the key's owner: past
	// it the callers get ErrFillTimeout, and the key is free for the next
	// fill, even if the filler never returns. A member that asked an
	// owner waits for its answer a little longer: the request goes again
	// while no answer comes, for at most a second, and the owner's fill
	// may start with its last copy, so the asker waits FillTimeout and up
	// to two seconds more (the owner's own timeout comes first), then asks
	// the next one or fills itself. A GetOrFill whose owner leaves
	// mid-fill, and whose next owner times out too, may so take up to
	// about three FillTimeouts and four seconds (found by review); an
	// owner that refuses the request for lack of room (gossip.ErrBusy),
	// or whose request failed to send at once (the socket refused the
	// datagram), is asked again for up to FillTimeout, each time waited
	// for so (the first again after 20 ms, doubling to a second); a
	// request larger than a datagram may wait in the stream queue for up
	// to FillTimeout before its first copy leaves (past it, it is taken
	// out and the member fills itself), so either may take up to about
	// two FillTimeouts and a second. It applies to GetWithFiller too. A
	// caller that comes after a write or delete of the key superseded
	// the fill under way waits for that fill and then for the next (see
	// GetWithFiller): up to twice as long.
	// Default: 10 s.
	FillTimeout time.Duration
	// OnDrop, if set, is called with every key whose live value this member
	// dropped because its peers could no longer tell it from a deleted one
	// (after an absence longer than TombstoneHorizon; or, without
	// LogReceived, after a restart that restored one of its own writes
	// from its write log over which a peer's delete, never logged here,
	// had been collected: the member serves that value from its restart
	// until a peer answers it). It runs on a
	// goroutine of its own, one key at a time in the order dropped, with
	// none of the Cache's locks held, so it may call the Cache, Close
	// included (Close does not wait for a call under way); it should
	// return quickly: past 1,024 keys waiting for it, replication waits.
	OnDrop func(key string)
	// SubscriptionBytes bounds the keys and values of the changes waiting
	// for each subscriber (see Subscribe), and the keys of the overflow
	// notices among them, whatever its buffer: past it,
	// changes are dropped as past the buffer (CauseOverflow), except that
	// a subscriber with nothing waiting always takes the next change,
	// however large. A subscriber that stops reading keeps alive (values
	// the member may have dropped since, beyond MaxBytes) the changes
	// waiting, the batch on its way and the batch it holds: up to three
	// times the larger of this and one change (MaxKeySize plus
	// MaxValueSize). A frame a peer sends (a repair, a catch-up) carries
	// up to 64 MiB, applied faster than a subscriber's goroutine can be
	// scheduled: a bound below the values of one frame overflows even a
	// subscriber that reads at once, which then re-reads (as past its
	// buffer, which a frame of small values may pass too). Under twice
	// one change, every change wakes the subscriber's goroutine. The HTTP
	// node (examples/node) lowers it for its watch streams, whose clients
	// it does not control. Default: DefaultSubscriptionBytes (64 MiB).
	SubscriptionBytes int
}

// DefaultConfig returns the Config New uses for fields left zero, with
// BindAddr "0.0.0.0:7946". NodeName stays empty: New draws a random one.
//
// MaxValueSize, MaxDeadRecords and MaxDeadBytes stay zero: their
// defaults follow MaxKeys and MaxBytes, so New derives them from the
// bounds the caller sets (filled here from none, a MaxBytes set
// afterwards was refused under the 1 MiB MaxValueSize, and a MaxKeys left
// the dead records unbounded: found by review). PacketSize stays zero
// too: its default follows the address (see PacketSize), and
// Cache.Config reports it.
func DefaultConfig() Config {
	c := Config{BindAddr: "0.0.0.0:7946"}
	_ = c.fill()
	c.MaxValueSize, c.MaxDeadRecords, c.MaxDeadBytes = 0, 0, 0
	return c
}

// clone returns c with its slices copied, so that a caller cannot change a
// running Cache's configuration through them.
func (c Config) clone() Config {
	c.Peers = slices.Clone(c.Peers)
	c.SecretKey = slices.Clone(c.SecretKey)
	c.AcceptKeys = slices.Clone(c.AcceptKeys)
	for i, k := range c.AcceptKeys {
		c.AcceptKeys[i] = slices.Clone(k)
	}
	return c
}

// configError returns an error wrapping ErrConfig that names the field.
// followLinks returns the path that path's symlinks lead to, itself if it
// is none; the last may not exist yet.
func followLinks(path string) (string, error) {
	for range 40 {
		info, err := os.Lstat(path)
		if err != nil || info.Mode()&os.ModeSymlink == 0 {
			return path, nil
		}
		target, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			// Relative to the link's directory as the kernel reaches it:
			// its own links resolved before a ".." of the target is
			// (Join alone cleaned ".." against the path as spelled,
			// found by review).
			dir := filepath.Dir(path)
			if real, err := filepath.EvalSymlinks(dir); err == nil {
				dir = real
			}
			target = filepath.Join(dir, target)
		}
		path = target
	}
	return "", fmt.Errorf("%q: too many levels of symbolic links", path)
}

// minDuration is the least duration a Config field takes (FlushInterval
// aside): one of a few nanoseconds, an untyped number meant as seconds,
// made a member collect, compare digests or sync without pause, a core's
// worth of CPU, or fail every fill (found by review).
const minDuration = gossip.MinDuration

func configError(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
}

// fill sets defaults and rejects nonsense; every error wraps ErrConfig and
// names its field. It leaves NodeName alone (New draws one), so that
// DefaultConfig is the same on every call.
// maxSnapshotName bounds the file name of Config.SnapshotPath: 255 bytes,
// what most file systems take, less what the files beside it add.
const maxSnapshotName = 255 - 60

// unlabelled is the Label of a member on real sockets configured with
// none: "" (this package's tests give their members their process's
// own).
var unlabelled string

func (c *Config) fill() error {
	if c.Label == "" && c.Network == nil {
		c.Label = unlabelled
	}
	switch {
	case c.BindAddr == "" && c.Network == nil:
		return configError("BindAddr", "required (or a Network)")
	case len(c.NodeName) > gossip.MaxNameLen:
		return configError("NodeName", "%d bytes, limit %d", len(c.NodeName), gossip.MaxNameLen)
	case !utf8.ValidString(c.NodeName):
		// The members file beside a snapshot (JSON) keeps such a name as
		// another ("\ufffd" for each bad byte): restarted, every member
		// that counted this one counted a member of that other name,
		// never seen, as lost until the horizon (found by review).
		return configError("NodeName", "%q is not valid UTF-8", c.NodeName)
	case c.MaxKeys < 0:
		return configError("MaxKeys", "negative (%d)", c.MaxKeys)
	case c.MaxBytes < 0:
		return configError("MaxBytes", "negative (%d)", c.MaxBytes)
	case c.MaxKeySize < 0 || c.MaxKeySize > DefaultMaxKeySize:
		return configError("MaxKeySize", "%d, want 0 to %d", c.MaxKeySize, DefaultMaxKeySize)
	case c.MaxValueSize < 0 || c.MaxValueSize > maxValueLimit:
		return configError("MaxValueSize", "%d, want 0 to %d", c.MaxValueSize, maxValueLimit)
	case c.MaxDeadRecords < -1:
		return configError("MaxDeadRecords", "%d, want -1 (unbounded) or more", c.MaxDeadRecords)
	case c.MaxDeadBytes < -1:
		return configError("MaxDeadBytes", "%d, want -1 (unbounded) or more", c.MaxDeadBytes)
	case c.Sync > SyncWrite:
		return configError("Sync", "unknown policy %d", c.Sync)
	case c.Sync != SyncNone && c.SnapshotPath == "":
		return configError("Sync", "%v needs a SnapshotPath, beside which the write log is kept", c.Sync)
	case c.LogReceived && c.Sync == SyncNone:
		return configError("LogReceived", "needs a write log: a Sync policy other than SyncNone")
	case c.OnDamage > DamageReset:
		return configError("OnDamage", "unknown policy %d", c.OnDamage)
	case c.OnDamage != DamageFail && c.SnapshotPath == "":
		// Without files there is nothing to move aside: a member asked to
		// reset damaged files, given none, was taken for one that keeps
		// them (found by review).
		return configError("OnDamage", "%v needs a SnapshotPath, whose files it moves aside when damaged", c.OnDamage)
	case c.FillTTL < 0: // every fill would fail (found by review)
		return configError("FillTTL", "negative (%v), want 0 (none) or more", c.FillTTL)
	case c.FillTTL > 0 && c.FillTTL < minDuration: // every filled value expired at once (found by review)
		return configError("FillTTL", "%v, want 0 (none) or at least %v (a bare number is nanoseconds)", c.FillTTL, minDuration)
	case c.SubscriptionBytes < 0:
		return configError("SubscriptionBytes", "negative (%d)", c.SubscriptionBytes)
	}
	if c.SubscriptionBytes == 0 {
		c.SubscriptionBytes = DefaultSubscriptionBytes
	}
	horizonSet, driftSet := c.TombstoneHorizon != 0, c.MaxClockDrift != 0
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"TombstoneHorizon", &c.TombstoneHorizon, DefaultTombstoneHorizon},
		{"MaxClockDrift", &c.MaxClockDrift, DefaultMaxClockDrift},
		{"FlushInterval", &c.FlushInterval, DefaultFlushInterval},
		{"AntiEntropyInterval", &c.AntiEntropyInterval, DefaultAntiEntropyInterval},
		{"GCInterval", &c.GCInterval, DefaultGCInterval},
		{"MaxClockSkew", &c.MaxClockSkew, DefaultMaxClockSkew},
		{"SyncEvery", &c.SyncEvery, DefaultSyncEvery},
		{"FillTimeout", &c.FillTimeout, DefaultFillTimeout},
	} {
		if *d.v < 0 {
			return configError(d.name, "negative (%v)", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < minDuration && d.name != "FlushInterval" { // a FlushInterval of 1 ns is one of none
			return configError(d.name, "%v, want 0 (the default) or at least %v (a bare number is nanoseconds)", *d.v, minDuration)
		}
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.SnapshotInterval > 0 && c.SnapshotInterval < minDuration {
		return configError("SnapshotInterval", "%v, want 0 (the default), negative (none) or at least %v (a bare number is nanoseconds)", c.SnapshotInterval, minDuration)
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return configError("SecretKey", "%d bytes, want 16, 24 or 32", len(c.SecretKey))
	}
	if len(c.AcceptKeys) > 0 && len(c.SecretKey) == 0 {
		return configError("AcceptKeys", "need a SecretKey")
	}
	for i, k := range c.AcceptKeys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return configError("AcceptKeys", "key %d: %d bytes, want 16, 24 or 32", i, n)
		}
	}
	if c.SnapshotPath != "" {
		// A symlink is followed once here: the snapshot is renamed over
		// its path, which would replace the link with a file and leave
		// the target (a persistent volume, say) as it was (found by
		// review). The log and the lock live beside the target.
		// A link named as a file beside another path's snapshot is
		// refused as that file would be (below), wherever it points: the
		// member on that path reads, locks and moves aside what is at the
		// name (checked on the target alone, a link "x.members" to y
		// started, and the member on x took y's snapshot for its damaged
		// members file: found by review).
		given := c.SnapshotPath
		target, err := followLinks(c.SnapshotPath)
		if err != nil {
			return configError("SnapshotPath", "%v", err)
		}
		if owners := ownersOf(given); len(owners) > 0 && target != given {
			return configError("SnapshotPath", "%q (a link to %q) is the name of a file kept beside the snapshot %q (its members file, lineage mark, clock floor, lock, a write log segment, a temporary file or a file moved aside), which a member on that path reads, replaces or removes: choose another name", given, target, owners[0])
		}
		c.SnapshotPath = target
		// Its directory is pinned too, links resolved and made absolute:
		// every file beside the snapshot is reached by name for as long
		// as the member runs, and a directory link turned to another
		// directory (a deploy's "current"), or a working directory
		// changed, had it write its snapshot and log beside the files of
		// the member holding the other directory's lock, and remove that
		// member's write log (found by review). A directory missing is
		// reported below.
		// A path ending in a separator names a directory, refused below:
		// Dir and Base, which drop the separator, made "/a/x/" the file
		// "/a/x/x" (TestASnapshotPathEndingInASeparatorIsRefused).
		if _, file := filepath.Split(target); file != "" {
			if dir, err := filepath.EvalSymlinks(filepath.Dir(target)); err == nil {
				if dir, err := filepath.Abs(dir); err == nil {
					c.SnapshotPath = filepath.Join(dir, file)
				}
			}
		}
		// The files beside it add up to 60 bytes to its name (a log
		// segment moved aside: ".log.<n>.damaged-<time>.<i>"), and most file
		// systems take names of 255: a longer one wrote its snapshot and
		// failed its members file, which each snapshot now needs (found
		// by review).
		if n := len(filepath.Base(c.SnapshotPath)); n > maxSnapshotName {
			return configError("SnapshotPath", "a file name of %d bytes, over %d (the files beside it add up to 60 bytes to it)", n, maxSnapshotName)
		}
		// A name of the files another member's snapshot keeps beside it
		// would be read, moved aside, written over or removed by that
		// member, and a member on it would do so to that member's (one
		// given <path>.members started beside the member on path, moved
		// its members file aside as a damaged snapshot, then overwrote
		// it; one on a temporary file's name lost its snapshot whenever
		// the member on path started: found by review).
		if owners := ownersOf(c.SnapshotPath); len(owners) > 0 {
			return configError("SnapshotPath", "%q is the name of a file kept beside the snapshot %q (its members file, lineage mark, clock floor, lock, a write log segment, a temporary file or a file moved aside), which a member on that path reads, replaces or removes: choose another name", c.SnapshotPath, owners[0])
		}
		if info, err := os.Stat(filepath.Dir(c.SnapshotPath)); err != nil || !info.IsDir() {
			return configError("SnapshotPath", "%q: no such directory", c.SnapshotPath)
		}
		// A directory or a device there is not a snapshot to read, nor one
		// to move aside as damaged (OnDamage) and write over.
		if info, err := os.Stat(c.SnapshotPath); err == nil && !info.Mode().IsRegular() {
			return configError("SnapshotPath", "%q is a %v, not a file", c.SnapshotPath, fileKind(info.Mode()))
		}
	}
	if c.MaxKeySize == 0 {
		c.MaxKeySize = DefaultMaxKeySize
	}
	// A value larger than MaxBytes can never be held: written here, it
	// evicted nearly every other value before itself (found by review).
	// MaxValueSize defaults to MaxBytes below 1 MiB, and may not exceed it.
	switch {
	case c.MaxValueSize == 0 && c.MaxBytes > 0:
		c.MaxValueSize = int(min(c.MaxBytes, DefaultMaxValueSize))
	case c.MaxValueSize == 0:
		c.MaxValueSize = DefaultMaxValueSize
	case c.MaxBytes > 0 && int64(c.MaxValueSize) > c.MaxBytes:
		return configError("MaxValueSize", "%d over MaxBytes %d: such a value could never be held", c.MaxValueSize, c.MaxBytes)
	}
	// A bound set as a cap past anything held (a billion) is taken as the
	// most the eviction policy places (it failed New for a while).
	c.MaxKeys = min(c.MaxKeys, MaxKeysLimit)
	if c.MaxDeadRecords == 0 {
		c.MaxDeadRecords = defaultMaxDead(c.MaxKeys, c.MaxBytes)
	}
	if c.MaxDeadBytes == 0 {
		c.MaxDeadBytes = defaultMaxDeadBytes(c.MaxBytes, c.MaxDeadRecords, c.MaxKeySize)
	}
	if c.MaxClockDrift >= c.TombstoneHorizon {
		// Named by the field the caller set: a TombstoneHorizon of 10 s
		// alone was refused as "MaxClockDrift: 30s", a field it never set
		// (found by review).
		if driftSet && !horizonSet {
			return configError("MaxClockDrift", "%v, want shorter than TombstoneHorizon %v", c.MaxClockDrift, c.TombstoneHorizon)
		}
		return configError("TombstoneHorizon", "%v, want longer than MaxClockDrift %v (lower MaxClockDrift with it)", c.TombstoneHorizon, c.MaxClockDrift)
	}
	if err := gossip.FillTimings(&c.Timings); err != nil {
		// Each bad field without the transport's prefix, one after the
		// other on the line (the second kept it: found by review).
		prefix := gossip.ErrConfig.Error() + ": Timings."
		return configError("Timings", "%s", strings.ReplaceAll(strings.TrimPrefix(err.Error(), prefix), "\n"+prefix, "; "))
	}
	return nil
}

// defaultMaxDead derives MaxDeadRecords from the bounds on values.
func defaultMaxDead(maxKeys int, maxBytes int64) int {
	switch {
	case maxKeys > 0:
		return max(maxKeys, minMaxDead)
	case maxBytes > 0:
		return int(min(max(maxBytes/256, minMaxDead), math.MaxInt)) // an int is 32 bits on some platforms
	}
	return -1
}

// minMaxDead is the least default MaxDeadRecords: below it, the bound
// would raise watermarks over writes merely in flight.
const minMaxDead = 10_000

// defaultMaxDeadBytes derives MaxDeadBytes from the bounds on values and
// on dead records (maxDead, filled already) and the longest key this
// member writes.
func defaultMaxDeadBytes(maxBytes int64, maxDead, maxKeySize int) int64 {
	switch {
	case maxDead < 0:
		return -1 // no rule 7 loss wanted (lww): none for bytes either
	case maxBytes > 0:
		// Not below maxDead keys of minDeadKey bytes: with a MaxKeys of a
		// million and a MaxBytes of 64 MiB, MaxBytes alone began rule 7's
		// losses at 671,000 dead records of 100-byte keys, not the
		// million MaxDeadRecords says (found by review).
		return max(maxBytes, mulSat(maxDead, minDeadKey))
	case maxDead > 0:
		return mulSat(maxDead, maxKeySize)
	}
	return -1
}

// mulSat returns a times b (both positive) in an int64, saturated: an int
// of 64 bits times 64 KiB passes one (MaxDeadRecords math.MaxInt wrapped
// to -65,536, which fill itself refuses, and 2^48+1 to 65,536: found by
// review).
func mulSat(a, b int) int64 {
	if int64(a) > math.MaxInt64/int64(b) {
		return math.MaxInt64
	}
	return int64(a) * int64(b)
}

// minDeadKey is the key length the default MaxDeadBytes allows each dead
// record MaxDeadRecords allows: the keys of ordinary writes stay under
// it, and the bytes bound takes no more of them than the records bound.
const minDeadKey = 256

// newNodeName draws a random member name.
func newNodeName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "bcache-" + hex.EncodeToString(b[:])
}

// fileKind names the type of a file that is not a regular one.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeDevice != 0:
		return "device"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}
