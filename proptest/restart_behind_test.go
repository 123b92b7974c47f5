package proptest

import (
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// restartingBehind is the busy-bucket configuration
// (TestEarlyCollectionInABusyBucket: keys of one bucket, a long horizon,
// so that every collection is early, no adversary in the views to hold
// the stable bound) of the production replica store with "restart
// behind" drawn: a restart with the clock stepped back past the stable
// margin, from the snapshot or with no files.
func restartingBehind(store StoreConfig) Config {
	cfg := busyBucket(store)
	cfg.Weights["restart behind"] = 2
	return cfg
}

// TestRestartsWithTheClockBehindLoseNoWrite runs the harness with
// "restart behind": a member restarted with its clock stepped back past
// the stable margin, from its snapshot (it starts its clock past the
// floor kept beside it: bcache's clockfloor.go) or with no files (it
// keeps a value of its own over a peer's answer from before its start,
// and writes it again: store.KeepAnswered), loses none of the writes it
// makes then (bcache's TestARestartWithTheClockBehindLosesNoWrite,
// under the harness's faults).
func TestRestartsWithTheClockBehindLoseNoWrite(t *testing.T) {
	Check(t, restartingBehind(DefaultStoreConfig()))
}

// TestHarnessCatchesARestartBehindTheFloor: a replica restored from its
// snapshot whose clock starts past the newest stamp it restored only, not
// past the floor (StoreConfig.NoFloor, as a release before the floor):
// restarted with its clock stepped back past the margin, it stamps its
// writes below its peers' watermarks, which refuse them, and the model
// must see the refusal of writes seconds old.
func TestHarnessCatchesARestartBehindTheFloor(t *testing.T) {
	store := DefaultStoreConfig()
	store.NoFloor = true
	caught(t, "restart behind the floor", restartingBehind(store), "no watermark can cover it yet", "a restore that starts its clock below the floor")
}

// TestHarnessCatchesAMemberWithoutFilesThatTakesAnswers: a member without
// files that takes a peer's answer over a value of its own from before
// its start (StoreConfig.KeepNoAnswers: store.KeepAnswered off), restarted
// with its clock stepped back past the margin: the answer deletes the
// value it wrote seconds before, and the model must see the loss.
func TestHarnessCatchesAMemberWithoutFilesThatTakesAnswers(t *testing.T) {
	store := DefaultStoreConfig()
	store.KeepNoAnswers = true
	caught(t, "restart behind taking answers", restartingBehind(store), "no watermark can cover it yet", "a member without files that takes answers from before its start")
}

// TestHarnessCatchesAMemberWithoutFilesThatHidesTheAnswersItTakes: a
// member without files that takes a peer's answer over a live value of
// its own from before its start (StoreConfig.KeepNoAnswers), and reports
// it as it would an answer it refused, keeping the value (Stale: a
// KeepAnswered that decided to keep the value, and lost the write
// again): transport reports no drop, and the answer deletes the value it
// wrote seconds before. The model, which judged a peer's refusal of
// such a write only on a drop the writer reported, passed it; it must
// see the loss at the writer.
func TestHarnessCatchesAMemberWithoutFilesThatHidesTheAnswersItTakes(t *testing.T) {
	store := DefaultStoreConfig()
	store.KeepNoAnswers = true
	store.Wrap = func(s Store) transport.Replica { return answersTakenAsKept{s} }
	caught(t, "restart behind hiding answers", restartingBehind(store), "no watermark can cover it yet", "a member without files that takes answers from before its start and reports them as refused")
}

// answersTakenAsKept reports an answer (a tombstone of node 0) that a
// member without files applied over a live value of its own as stale.
type answersTakenAsKept struct{ Store }

func (a answersTakenAsKept) Apply(rec crdt.Record, delta bool, now int64) crdt.Outcome {
	held, ok := a.Lookup(rec.Key)
	o := a.Store.Apply(rec, delta, now)
	k, keeps := a.Store.(keptAnswers)
	if o == crdt.Applied && rec.Tombstone && rec.Time.Node == 0 && ok && keeps && k.r.floor == nil &&
		held.Time.Node == k.r.clock.Node() && held.Live(now) {
		return crdt.Stale
	}
	return o
}
