package bcache

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
	"github.com/bcache-go/bcache/transport/gossip"
)

// Timings are memberlist's failure-detection timings plus the re-join
// interval; see LANTimings and FastTimings.
type Timings = gossip.Timings

// LANTimings returns memberlist's LAN defaults: for production.
func LANTimings() Timings { return gossip.LANTimings() }

// FastTimings returns timings for tests and demos on one machine: failures
// are detected in about a second.
func FastTimings() Timings { return gossip.FastTimings() }

// Defaults of Config.
const (
	DefaultMaxKeySize          = 64 << 10
	DefaultMaxValueSize        = 1 << 20
	DefaultTombstoneHorizon    = lww.DefaultHorizon
	DefaultMaxClockDrift       = crdt.DefaultMaxClockDrift
	DefaultFlushInterval       = time.Millisecond
	DefaultAntiEntropyInterval = time.Second
	DefaultGCInterval          = time.Minute
	DefaultSnapshotInterval    = 5 * time.Minute
)

// maxValueLimit is the largest MaxValueSize: a value must fit one frame of
// memberlist's stream messages (20 MiB) with room to spare.
const maxValueLimit = 16 << 20

// Config configures a Cache. The zero Config plus a BindAddr works: every
// other field has a safe default.
type Config struct {
	// NodeName is this member's name, unique in the cluster. Default: a
	// random one.
	NodeName string
	// BindAddr is the host:port to listen on for UDP and TCP, for example
	// "0.0.0.0:7946" (a host name is resolved once, at New); port 0 picks a
	// free one (see Cache.Addr). Required unless Network is set.
	BindAddr string
	// AdvertiseAddr is the host:port other members reach this one at, when
	// it differs from BindAddr (NAT, a wildcard bind address). Optional.
	AdvertiseAddr string
	// Peers are host:port addresses of any live members to join. Empty for
	// the first member. Unreachable peers do not stop New: the member starts
	// alone and joins as soon as one answers.
	Peers []string
	// MaxKeys bounds the values this member holds; past it the least
	// recently used values are evicted locally (their keys and versions
	// stay, so nothing stale comes back). 0 means unbounded.
	MaxKeys int
	// MaxBytes bounds the key and value bytes this member holds, in the
	// same way. 0 means unbounded.
	MaxBytes int64
	// SecretKey, if set, encrypts all cluster traffic with AES-GCM; it must
	// be 16, 24 or 32 bytes, the same on every member.
	SecretKey []byte
	// Label, if set, keeps this member to a cluster with the same label.
	Label string
	// Logger receives one line per event worth an operator's attention,
	// with a "node" field naming this member. The zero Logger is silent.
	Logger zerolog.Logger
	// Clock, if set, replaces the wall clock (for tests).
	Clock func() time.Time

	// MaxKeySize and MaxValueSize bound keys and values, in bytes.
	// Defaults: 64 KiB and 1 MiB; MaxValueSize at most 16 MiB.
	MaxKeySize, MaxValueSize int
	// TombstoneHorizon is how long deletes and expired values are kept
	// before they are collected (see package lww for the rule that makes
	// that safe). Default: 1 hour.
	TombstoneHorizon time.Duration
	// MaxClockDrift is how far ahead of local time a received timestamp
	// may be before it is refused. Default: 30 s.
	MaxClockDrift time.Duration
	// FlushInterval is the longest a write waits to be batched with others
	// while writes keep coming; a write to an idle member leaves at once.
	// Default: 1 ms.
	FlushInterval time.Duration
	// AntiEntropyInterval is how often the member compares digests with a
	// peer. Default: 1 s.
	AntiEntropyInterval time.Duration
	// GCInterval is how often dead records are collected. Default: 1 min.
	GCInterval time.Duration
	// Timings are memberlist's; default LANTimings.
	Timings Timings
	// Network, if set, replaces the UDP/TCP sockets, for example with a
	// memnet.Transport for fault injection; BindAddr is then ignored.
	Network gossip.Transport
	// SnapshotPath, if set, is a file in which this member keeps its
	// records across restarts, for edge members that may restart while
	// their peers are out of reach: New restores the member from it (a
	// missing file starts empty; a damaged one is an error wrapping
	// ErrSnapshot), and the member rewrites it every SnapshotInterval and
	// at Close. Restoring is safe however old the file is: see the package
	// doc.
	SnapshotPath string
	// SnapshotInterval is how often the snapshot is rewritten; negative
	// writes it only at Close. Default: 5 min.
	SnapshotInterval time.Duration
	// OnDrop, if set, is called with every key whose live value this member
	// dropped because its peers could no longer tell it from a deleted one
	// (after an absence longer than TombstoneHorizon). It must not block
	// and must not call the Cache.
	OnDrop func(key string)
}

// DefaultConfig returns the Config New uses for fields left zero, with
// BindAddr "0.0.0.0:7946".
func DefaultConfig() Config {
	c := Config{BindAddr: "0.0.0.0:7946"}
	_ = c.fill()
	return c
}

// fill sets defaults and rejects nonsense.
func (c *Config) fill() error {
	if c.NodeName == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		c.NodeName = "bcache-" + hex.EncodeToString(b[:])
	}
	if c.BindAddr == "" && c.Network == nil {
		return fmt.Errorf("%w: BindAddr is required", ErrConfig)
	}
	if c.MaxKeys < 0 || c.MaxBytes < 0 || c.MaxKeySize < 0 || c.MaxValueSize < 0 {
		return fmt.Errorf("%w: negative MaxKeys, MaxBytes, MaxKeySize or MaxValueSize", ErrConfig)
	}
	if c.TombstoneHorizon < 0 || c.MaxClockDrift < 0 || c.FlushInterval < 0 || c.AntiEntropyInterval < 0 || c.GCInterval < 0 {
		return fmt.Errorf("%w: negative duration", ErrConfig)
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("%w: SecretKey of %d bytes, want 16, 24 or 32", ErrConfig, len(c.SecretKey))
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.TombstoneHorizon, DefaultTombstoneHorizon)
	def(&c.MaxClockDrift, DefaultMaxClockDrift)
	def(&c.FlushInterval, DefaultFlushInterval)
	def(&c.AntiEntropyInterval, DefaultAntiEntropyInterval)
	def(&c.GCInterval, DefaultGCInterval)
	def(&c.SnapshotInterval, DefaultSnapshotInterval)
	if c.SnapshotPath != "" {
		if info, err := os.Stat(filepath.Dir(c.SnapshotPath)); err != nil || !info.IsDir() {
			return fmt.Errorf("%w: SnapshotPath %q: no such directory", ErrConfig, c.SnapshotPath)
		}
	}
	if c.MaxKeySize == 0 {
		c.MaxKeySize = DefaultMaxKeySize
	}
	if c.MaxValueSize == 0 {
		c.MaxValueSize = DefaultMaxValueSize
	}
	if c.MaxValueSize > maxValueLimit || c.MaxKeySize > 64<<10 {
		return fmt.Errorf("%w: MaxValueSize at most %d and MaxKeySize at most %d", ErrConfig, maxValueLimit, 64<<10)
	}
	if c.MaxClockDrift >= c.TombstoneHorizon {
		return fmt.Errorf("%w: MaxClockDrift %v must be shorter than TombstoneHorizon %v", ErrConfig, c.MaxClockDrift, c.TombstoneHorizon)
	}
	if c.Timings == (Timings{}) {
		c.Timings = LANTimings()
	}
	return nil
}
