package proptest

import (
	"slices"
	"testing"

	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/wire"
)

// unackedSync is the production store on a member that takes its first
// sync as its first exchange as the initiator completes, not once the
// peer has acknowledged the records it pushed (the transport before
// d9b32ec): a member restored from a snapshot older than a delete its
// peer then collected is synced while it serves the deleted value, until
// the peer's rejection comes. It converges all the same; only the check
// of what an acknowledged first sync serves can catch it.
type unackedSync struct {
	*StoreReplica
	codec     *wire.Codec
	opened    map[string]int64 // the time of the last session's opening sent, by peer
	newcomers []string
	peer      string
	start, at int64
}

func (u *unackedSync) Tick() []transport.Envelope {
	return u.opening(u.StoreReplica.Tick())
}

func (u *unackedSync) StartSession(peer string) []transport.Envelope {
	return u.opening(u.StoreReplica.StartSession(peer))
}

// opening notes the sessions opened in out.
func (u *unackedSync) opening(out []transport.Envelope) []transport.Envelope {
	for _, e := range out {
		if e.Kind != wire.KindDigest {
			continue
		}
		if m, err := u.codec.Decode(e.Payload); err == nil {
			if d, ok := m.(*wire.Digest); ok && d.Token == 0 && d.Step == 1 {
				u.opened[e.To] = u.phys()
			}
		}
	}
	return out
}

func (u *unackedSync) Receive(from string, payload []byte) []transport.Envelope {
	done := u.Node().Stats().SessionsCompleted
	out := u.opening(u.StoreReplica.Receive(from, payload))
	if u.at == 0 && u.StoreReplica.FirstSync() == 0 && u.Node().Stats().SessionsCompleted > done && !slices.Contains(u.newcomers, from) {
		if start, ok := u.opened[from]; ok {
			u.peer, u.start, u.at = from, start, u.phys()
		}
	}
	return out
}

func (u *unackedSync) SetNewcomers(names []string) {
	u.newcomers = slices.Clone(names)
	u.StoreReplica.SetNewcomers(names)
}

func (u *unackedSync) FirstSync() int64 {
	if u.at != 0 {
		return u.at
	}
	return u.StoreReplica.FirstSync()
}

func (u *unackedSync) FirstSyncWith() (string, int64) {
	if u.at != 0 {
		return u.peer, u.start
	}
	return u.StoreReplica.FirstSyncWith()
}

func (u *unackedSync) FirstSyncUnacked() bool {
	return u.at == 0 && u.StoreReplica.FirstSyncUnacked()
}

// TestHarnessCatchesAFirstSyncServingCollectedDeletes: a member's first
// sync, acknowledged, serves no value older than a record its peer had
// collected when the exchange began; the variant that takes it before
// the acknowledgement does, for a moment, on a member restored from an
// old snapshot.
func TestHarnessCatchesAFirstSyncServingCollectedDeletes(t *testing.T) {
	factory := wrapStores(func(r *StoreReplica) Replica {
		return &unackedSync{StoreReplica: r, codec: wire.NewCodec(wire.Limits{}), opened: map[string]int64{}}
	})
	caught(t, "unacknowledged first syncs", Config{Factory: factory}, "older than the record of it", "first syncs taken before the peer's acknowledgement")
}
