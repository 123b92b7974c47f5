package gossip

import (
	"slices"
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
	for {
		if targets := r.rejoinTargets(); len(targets) > 0 {
			n, err := r.ml.Join(targets)
			switch {
			case err != nil && n == 0:
				r.counters.joinFailures.Add(1)
				r.log.Debug().Err(err).Strs("peers", targets).Msg("join failed")
			default:
				r.counters.joins.Add(1)
			}
		}
		select {
		case <-r.done:
			return
		case <-ticker.C:
		}
	}
}

// rejoinTargets returns the addresses of members seen before and not alive
// now, plus the seed peers when this member has no live peer or has lost
// some.
func (r *Replicator) rejoinTargets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	self := r.self
	var lost []string
	for name, addr := range r.known {
		if _, ok := r.alive[name]; !ok && addr != self {
			lost = append(lost, addr)
		}
	}
	if len(lost) > 0 || len(r.alive) <= 1 {
		for _, p := range r.cfg.Peers {
			if p != self && !slices.Contains(lost, p) {
				lost = append(lost, p)
			}
		}
	}
	slices.Sort(lost)
	return lost
}
