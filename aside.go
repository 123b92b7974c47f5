package bcache

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A reset (OnDamage: DamageReset) renames the files it moves aside with
// asideSuffix and the time, formatted with asideTime (fixed width: the
// names sort as the times do), and a ".<i>" after it if the name is taken
// (journal.MoveAside). The files one start moves aside share the time: a
// set.
const (
	asideSuffix = ".damaged-"
	asideTime   = "20060102T150405.000000000"
)

// keptAsideSets is the sets of files moved aside that a reset keeps: the
// one it moves aside and the newest before it. Older ones are removed:
// kept, a device that reset at every start (a disk that damages what it
// writes) filled its disk with them (found by review). DamageReset's
// documentation and the README say 3.
const keptAsideSets = 3

// pruneAside removes the files moved aside beside the snapshot that
// belong to sets older than the keptAsideSets newest, the set just moved
// aside, suffix, always kept (a clock set back would make it seem the
// oldest). A failure is logged: the files stay until the next reset.
func (c *Cache) pruneAside(suffix string) {
	path := c.cfg.SnapshotPath
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		c.log.Warn().Err(err).Msg("listing the files moved aside before, to remove the oldest")
		return
	}
	current := strings.TrimPrefix(suffix, asideSuffix)
	sets := map[string][]string{} // a set's time: its files
	for _, e := range entries {
		if at, ok := asideSet(filepath.Base(path), e.Name()); ok && !e.IsDir() {
			sets[at] = append(sets[at], filepath.Join(dir, e.Name()))
		}
	}
	var older []string
	for at := range sets {
		if at != current {
			older = append(older, at)
		}
	}
	slices.Sort(older)
	var errs []error
	for _, at := range older[:max(0, len(older)-(keptAsideSets-1))] {
		for _, p := range sets[at] {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		c.log.Info().Strs("removed", sets[at]).Msg("removed files moved aside by an older reset")
	}
	if err := errors.Join(errs...); err != nil {
		c.log.Warn().Err(err).Msg("removing files moved aside by an older reset")
	}
}

// asideSet returns the time of the set that name, a file beside the
// snapshot named base, was moved aside with, if it is one: the snapshot,
// a segment of its log or its members file, with asideSuffix, a time and
// perhaps ".<i>" after it.
func asideSet(base, name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, base)
	if !ok {
		return "", false
	}
	if r, ok := strings.CutPrefix(rest, knownSuffix); ok {
		rest = r
	} else if r, ok := strings.CutPrefix(rest, ".log."); ok {
		i := strings.Index(r, asideSuffix)
		if i <= 0 || !digits(r[:i]) {
			return "", false
		}
		rest = r[i:]
	}
	rest, ok = strings.CutPrefix(rest, asideSuffix)
	if !ok || len(rest) < len(asideTime) {
		return "", false
	}
	at, tail := rest[:len(asideTime)], rest[len(asideTime):]
	if _, err := time.Parse(asideTime, at); err != nil {
		return "", false
	}
	if tail != "" && (tail[0] != '.' || !digits(tail[1:])) {
		return "", false
	}
	return at, true
}

// digits reports whether s is a decimal number.
func digits(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}
