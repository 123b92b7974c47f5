package gossip

import (
	"slices"
	"sync"
	"time"
)

// rejoin tries, at once and then every RejoinInterval, to join the seed
// peers and every member seen before that is no longer alive. memberlist
// never re-contacts members it declared dead, so without this the two sides
// of a healed partition would stay apart, and a member that started while
// its peers were unreachable would stay alone.
func (r *Replicator) rejoin() {
	defer r.wg.Done()
	ticker := time.NewTicker(r.cfg.Timings.RejoinInterval)
	defer ticker.Stop()
	trying := map[string]bool{} // targets with an attempt in flight
	var mu sync.Mutex
	for {
		targets, wantSeeds := r.rejoinTargets()
		var tried []string // every target, and every peer whose lookup failed
		if wantSeeds {
			seeds, failed := r.seeds()
			for p, err := range failed {
				r.counters.joinFailures.Add(1)
				r.joinFailed(p, err)
				tried = append(tried, p)
			}
			self := r.selfAddr()
			for _, a := range seeds {
				if a != self && !slices.Contains(targets, a) {
					targets = append(targets, a)
				}
			}
		}
		r.forgetJoinFailures(append(tried, targets...))
		for _, target := range targets {
			mu.Lock()
			busy := trying[target]
			trying[target] = true
			mu.Unlock()
			if busy {
				continue
			}
			// One attempt per target, each on its own: one that does
			// not answer (its SYNs lost until the dial's timeout) holds up
			// no other.
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				if _, err := r.ml.Join([]string{target}); err != nil {
					r.counters.joinFailures.Add(1)
					r.joinFailed(target, err)
				} else {
					r.counters.joins.Add(1)
					r.joined(target)
				}
				mu.Lock()
				delete(trying, target)
				mu.Unlock()
			}()
		}
		select {
		case <-r.done:
			return
		case <-ticker.C:
		}
	}
}

// rejoinTargets returns the addresses of members seen before and not alive
// now, and whether to join the seed peers too: when this member has no
// live peer or has lost some.
func (r *Replicator) rejoinTargets() ([]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	self := r.self
	var lost []string
	for name, addr := range r.known {
		if _, ok := r.alive[name]; !ok && addr != self {
			lost = append(lost, addr)
		}
	}
	slices.Sort(lost)
	return lost, len(lost) > 0 || len(r.alive) <= 1
}

// selfAddr returns this member's address.
func (r *Replicator) selfAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.self
}
