// Package examples holds replicated data types written against
// proptest.Spec, as worked examples of putting a CRDT of one's own under
// bcache's property-test harness: a PN-counter ([Counter]) and an add-wins
// observed-remove set ([Set]), each with its model ([CounterModel],
// [SetModel]) and a broken variant the harness must catch (see the
// package's tests). Their frames are JSON, to be read in a trace.
//
// To plug in a type of your own: write its replica as a proptest.Object
// (Do performs an operation and returns what it observed and the frames
// to send; Receive, Tick and Sync are the protocol; State is what members
// must agree on), write a proptest.Model (Did learns every operation and
// its result, and may refuse a result the specification forbids; Crashed
// says an incarnation's unsent work may be lost; Check judges the
// converged state), list the operations in a proptest.Spec, and call
// proptest.CheckType. The harness draws the operations and the faults
// (loss, duplication, reordering, partitions, crashes and restarts as new
// incarnations), shrinks a failure to a short run and prints it as a
// sequence of events.
package examples
