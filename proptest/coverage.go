package proptest

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/bcache-go/bcache/transport/sim"
)

// Coverage is what a harness's runs did, summed over the runs: set
// Config.Coverage to collect it ([Check] does, and logs it). A run that
// shrinks a counterexample counts too.
type Coverage struct {
	// Runs is the number of runs (rapid's checks and shrink attempts).
	Runs int
	// Actions counts the actions run to completion by name (a skipped
	// one, such as a delivery with nothing in flight, does not count).
	Actions map[string]int
	// Frames sums the network's counters over the runs that reached the
	// end.
	Frames sim.Stats
	// Outlived counts, over the runs that reached the end, the frames
	// received after their sender crashed, left or restarted, and those
	// received by a later incarnation of their destination than the one
	// they were sent to (see Cluster.Crash).
	Outlived [2]int
	// Rounds counts the runs by the rounds of anti-entropy the end took
	// before a round changed nothing: 0, 1, ..., and the last entry for
	// that many or more.
	Rounds [4]int
	// Fills counts the fill calls that ended with a value, and with the
	// Source's error, over the runs that reached the end.
	Fills [2]int
	// SlowFills counts the fills held open (the "slow fill" action) that
	// stored their value, and those that did not because their key
	// changed while the filler ran, over the runs that reached the end.
	SlowFills [2]int
	// Collected counts the dead records the members collected over the
	// runs that reached the end: written less than a horizon before they
	// were collected (early, rule 6 of package lww, or by a bound), and
	// the rest. A run whose early collections are rare proves little of
	// the stable bound.
	Collected [2]int
	// OneSession counts the runs whose end's single session between two
	// members completed on both sides, and so was checked to leave them
	// equal, and those where it did not complete (the responder deferred
	// it, or the initiator gave way to a session of the responder's).
	OneSession [2]int
	// Fates counts the frames the deliver actions took whose fate
	// Loss and Duplication (Config's or Spec's) drew: delivered once, lost, doubled
	// (over every run, those that ended early too).
	Fates [3]int
	// FirstSyncs counts the members' first syncs checked against what
	// their peer held (see Noder), and the records so checked, over every
	// run. A first sync checked against nothing proves only that nothing
	// was missing.
	FirstSyncs [2]int
	// Deferred counts the writes of a member without files whose
	// refusal by a peer, or whose answer held elsewhere, was judged at
	// the writer when it took the answer over them with no drop
	// reported: judged as losses (which the rules allowed, or the run
	// failed), and excused because the writer held them evicted (a loss
	// store.KeepAnswered allows), over every run.
	Deferred [2]int
	// cluster says the runs were of a Config (Check, Property): the lines
	// of what only a bcache cluster does (fills, collection, the end's
	// session) are printed then, and for a Spec only if not zero.
	cluster bool
}

// String summarizes c in a few lines.
func (c *Coverage) String() string {
	if c == nil || c.Runs == 0 {
		return "coverage: no runs"
	}
	var b strings.Builder
	total := 0
	for _, n := range c.Actions {
		total += n
	}
	fmt.Fprintf(&b, "coverage over %d runs: %.1f actions per run;", c.Runs, float64(total)/float64(c.Runs))
	for _, name := range slices.Sorted(maps.Keys(c.Actions)) {
		fmt.Fprintf(&b, " %s %d,", name, c.Actions[name])
	}
	f := c.Frames
	fmt.Fprintf(&b, "\n  frames: %d sent, %d delivered, %d dropped, %d duplicated, %d cut by partitions or lost to a member down",
		f.Sent, f.Delivered, f.Dropped, f.Duplicated, f.Cut)
	if c.Outlived != [2]int{} {
		fmt.Fprintf(&b, "\n  frames that outlived a crash: %d received after their sender's incarnation ended, %d by a later incarnation of their destination", c.Outlived[0], c.Outlived[1])
	}
	if c.Fates != [3]int{} {
		fmt.Fprintf(&b, "\n  frames given a fate: %d delivered, %d lost, %d doubled", c.Fates[0], c.Fates[1], c.Fates[2])
	}
	if c.Deferred != [2]int{} {
		fmt.Fprintf(&b, "\n  deferred writes of a member without files taken over at the writer with no drop reported: %d judged as losses, %d excused as evicted there", c.Deferred[0], c.Deferred[1])
	}
	if !c.cluster && c.Fills == [2]int{} && c.SlowFills == [2]int{} && c.Collected == [2]int{} && c.OneSession == [2]int{} && c.FirstSyncs == [2]int{} {
		fmt.Fprintf(&b, "\n  runs whose end needed 0, 1, 2, 3+ rounds of syncs that changed anything: %v", c.Rounds)
		return b.String()
	}
	fmt.Fprintf(&b, "\n  fill calls: %d ended with a value, %d with the source's error", c.Fills[0], c.Fills[1])
	if c.SlowFills != [2]int{} {
		fmt.Fprintf(&b, "\n  fills held open: %d stored, %d not (their key changed meanwhile)", c.SlowFills[0], c.SlowFills[1])
	}
	fmt.Fprintf(&b, "\n  dead records collected: %d less than a horizon after they were written, %d later", c.Collected[0], c.Collected[1])
	fmt.Fprintf(&b, "\n  runs whose end's single session completed on both sides, and was checked: %d; deferred: %d", c.OneSession[0], c.OneSession[1])
	fmt.Fprintf(&b, "\n  first syncs checked against what their peer held: %d, against %d records", c.FirstSyncs[0], c.FirstSyncs[1])
	fmt.Fprintf(&b, "\n  runs whose end needed 0, 1, 2, 3+ rounds of anti-entropy that changed anything: %v", c.Rounds)
	return b.String()
}
