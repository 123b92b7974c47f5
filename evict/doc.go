// Package evict chooses which resident values a bounded bcache member
// drops: the values its own readers use least, with readers that take no
// lock and, on a hit, store at most one word.
//
// # The policy
//
// It is S3-FIFO (Yang et al., SOSP '23) with a frequency sketch in place
// of its ghost queue, plus a queue of its own for values that arrive from
// other members:
//
//   - A new value written here enters the small queue, a FIFO of a share
//     of the entries and, under a bound in bytes, of their bytes: a tenth
//     (a scan of values larger than those read goes out before them);
//     under a bound of 1,000 entries or more (adaptFrom), a tenth at
//     first, then between half a tenth and three, moved as ARC moves its
//     target by the keys that come back after their eviction (from the
//     small queue unread: it grows; from the main queue: it shrinks),
//     remembered as 32-bit hashes in a table of up to a fifth of the
//     bound (see Policy.adapt), and, a quarter as much, by the values
//     first read in the second half of their stay there, which it nearly
//     lost (it grows; see Policy.markHalfway). It is never less than one
//     entry (in a cache of fewer than ten, the newest write stays). One
//     that is read again before it reaches the small queue's end moves to
//     the main queue; one that is not is evicted: most values written
//     once are never read again, and they go quickly, whatever their
//     number (a scan does not flush the main queue). Only while the
//     cache fills for the first time, once the main queue holds values
//     read here, an unread one takes the main queue's room instead, and
//     the first returning key seen once more than it takes its place.
//   - The main queue is a FIFO with reinsertion: an entry read since it
//     last passed the end goes round again, with one read less to its
//     credit (up to three are remembered); one that was not is evicted.
//     A search sends 4,096 entries round at most (maxSweep): past them,
//     the entry at the front is evicted whatever its reads.
//   - A count-min sketch (4-bit counters in four rows, updated
//     conservatively, halved every ten capacities of additions) counts how
//     often each key was written here (in a read-through cache a write
//     follows a miss) and, folded in as entries go round the main queue,
//     read. A new value whose key came back (the member still holds the
//     key's version: its value was evicted, deleted or expired) and that
//     the sketch has seen at least twice enters the main queue at once if
//     the main queue has room, or if the sketch counts it at least two
//     more times than the main queue's next victim, which then goes next
//     (after the peers' writes not read here; by one, keys of a loop would
//     trade places with each other, see
//     admitMargin): keys that return after being evicted (a loop larger
//     than the cache, a key read now and then for a long time) keep their
//     place against keys seen less often. A key seen here for the first time always starts in the
//     small queue, whatever counters it shares with other keys: the
//     sketch's collisions can never let a value written once jump ahead
//     of older ones.
//   - A value that arrives from another member (a replicated write, or one
//     restored from a snapshot) waits among the peers' writes, which are
//     evicted first, oldest write first whatever the order they arrived in
//     (a frame overtaking another, a repair after a lost one). A member
//     receives every peer's writes, most of which its own readers never ask
//     for; they must not push out what its readers use. One that is read
//     here before its turn joins the small queue.
//
// The plain S3-FIFO remembers the keys it evicted from the small queue in
// a ghost queue as long as the main queue, and sends a returning key to
// the main queue at once. The sketch does that for keys that return
// within ten capacities of insertions, not one, and asks them to beat the
// victim once the main queue is full: on the traces of BenchmarkHitRatio
// (package bcache) that is worth several points of hit ratio on loops
// larger than the cache, a few tenths on skewed traces, and it costs 8
// bytes per entry of capacity (at least 8 KiB, up to 16 bytes an entry
// as its rows round up to a power of two) instead of a ghost entry
// per entry. Plain S3-FIFO already matched otter's W-TinyLFU on skewed
// traces and beat it on recency-heavy ones; W-TinyLFU itself would need
// each hit to update the sketch or a shared buffer, more than the one
// store a reader may make here.
//
// # Concurrency
//
// A reader records a hit with [Touch] on the entry's use word: one atomic
// load and, while the word is not saturated, one atomic store. Everything
// else runs under the caller's lock: the policy is not safe for concurrent
// use. A call of Victim moves at most 64 entries from queue to queue
// before it gives its victim (see maxMoves), so that no write waits while
// a whole queue is sorted through.
package evict
