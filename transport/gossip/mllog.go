package gossip

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/rs/zerolog"
)

const (
	// logInterval is the least time between two lines of one memberlist
	// message template: a process without the cluster key sending garbage
	// made memberlist log one error per datagram, thousands a second.
	logInterval = time.Second
	// maxLogTemplates bounds the templates the rate limit remembers; past
	// it, templates idle for logInterval are forgotten, and if none is,
	// new templates share one limit.
	maxLogTemplates = 256
	// maxNewTemplates bounds the templates of one level first seen in a
	// minute that get a rate limit of their own; the level's others share
	// one. Some of memberlist's lines hold text a sender chooses (a label,
	// before any decryption, quoted and blanked; a node name, some
	// unquoted), and a sender making a new one per datagram had each line
	// written (240 a second, found by review). A budget per level, so that
	// a flood of warnings leaves errors theirs, and large enough for the
	// lines of a partition naming each member that failed (at 16 across
	// levels, 9 of 10 such lines were lost: found by review).
	maxNewTemplates = 64
	// memberlistTimestamp is the timestamp memberlist's logger puts before
	// every line (log.LstdFlags), and zerolog has its own.
	memberlistTimestamp = "2006/01/02 15:04:05 "
)

// logCounts counts memberlist's log lines, whether written or held back.
type logCounts struct {
	errors, warnings, suppressed atomic.Uint64
}

// logWriter turns memberlist's log lines ("2006/01/02 15:04:05 [ERR]
// memberlist: ...") into zerolog events at the matching level, without
// memberlist's timestamp and prefix, with the address a line names as a
// peer field. Lines of one template (the message with its numbers and
// addresses blanked) are written at most once per logInterval; the next
// line written carries the count of those held back as a suppressed field.
// It is safe for concurrent use.
type logWriter struct {
	log    zerolog.Logger
	now    func() time.Time
	counts *logCounts
	// shutting is set as the member shuts memberlist down: memberlist
	// closes its transport before it stops its gossip loop, whose send
	// then fails "use of closed network connection", an [ERR] line that
	// a clean shutdown logged as an error and counted among the errors
	// (seen in the HTTP node's log on SIGTERM: found by review). Such a
	// line is a debug line from then on.
	shutting atomic.Bool

	mu   sync.Mutex
	seen map[string]*logTemplate
	// fresh counts, by level, the templates given a limit of their own
	// since freshSince (see maxNewTemplates).
	fresh      map[zerolog.Level]int
	freshSince time.Time

	// names holds the member name of each address seen, for a line's
	// peer_name field. It has a lock of its own: memberlist logs while
	// holding its locks, and must never wait for the Replicator's.
	namesMu sync.Mutex
	names   map[string]string
}

// named records that the member at addr is called name.
func (w *logWriter) named(addr, name string) {
	w.namesMu.Lock()
	defer w.namesMu.Unlock()
	if w.names == nil {
		w.names = map[string]string{}
	}
	if len(w.names) >= 4096 { // a bound: members come and go for ever
		clear(w.names)
	}
	w.names[addr] = name
}

// nameOf returns the name of the member at addr, "" if unknown.
func (w *logWriter) nameOf(addr string) string {
	w.namesMu.Lock()
	defer w.namesMu.Unlock()
	return w.names[addr]
}

// logTemplate is the rate limit of one template.
type logTemplate struct {
	last       time.Time // when a line was last written
	suppressed int       // lines held back since
}

// newLogWriter returns a writer to log that reads the time from now and
// counts lines in counts.
func newLogWriter(log zerolog.Logger, now func() time.Time, counts *logCounts) *logWriter {
	return &logWriter{log: log, now: now, counts: counts, seen: map[string]*logTemplate{}, fresh: map[zerolog.Level]int{}}
}

// Write implements io.Writer; memberlist writes one line per call. It
// never fails.
func (w *logWriter) Write(p []byte) (int, error) {
	line := parseLogLine(string(p))
	if line.msg == "" {
		return len(p), nil
	}
	if line.level > zerolog.DebugLevel && w.shutting.Load() && strings.Contains(line.msg, net.ErrClosed.Error()) {
		line.level = zerolog.DebugLevel
	}
	switch line.level {
	case zerolog.ErrorLevel:
		w.counts.errors.Add(1)
	case zerolog.WarnLevel:
		w.counts.warnings.Add(1)
	}
	// A line the logger does not write is rate limited with its level's
	// other such lines, as one template ("": the suppressed count says how
	// many came), and takes none of the level's budget of new templates.
	template := line.template
	if line.level < w.log.GetLevel() || line.level < zerolog.GlobalLevel() {
		template = ""
	}
	ok, suppressed := w.admit(line.level, template, w.now())
	if !ok {
		w.counts.suppressed.Add(1)
		return len(p), nil
	}
	e := w.log.WithLevel(line.level).Str("component", "memberlist")
	if line.peer != "" {
		e = e.Str("peer", line.peer)
		if name := w.nameOf(line.peer); name != "" {
			e = e.Str("peer_name", name)
		}
	}
	if suppressed > 0 {
		e = e.Int("suppressed", suppressed)
	}
	e.Msg(line.msg)
	return len(p), nil
}

// admit reports whether a line of the template at level may be written
// at now, and how many lines of it were held back since the last one
// written.
func (w *logWriter) admit(level zerolog.Level, template string, now time.Time) (bool, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.limit(level, template, now)
	if !t.last.IsZero() && now.Sub(t.last) < logInterval {
		t.suppressed++
		return false, 0
	}
	n := t.suppressed
	t.last, t.suppressed = now, 0
	return true, n
}

// limit returns the rate limit of the template at level ("": the level's
// shared one), making room for it if needed. Called with w.mu held.
func (w *logWriter) limit(level zerolog.Level, template string, now time.Time) *logTemplate {
	shared := level.String() // the limit the level's lines share: see Write and below
	key := shared
	if template != "" {
		key += " " + template
	}
	if t, ok := w.seen[key]; ok {
		return t
	}
	if len(w.seen) >= maxLogTemplates {
		for k, t := range w.seen {
			if now.Sub(t.last) >= logInterval {
				delete(w.seen, k)
			}
		}
	}
	if now.Sub(w.freshSince) >= time.Minute || now.Before(w.freshSince) {
		clear(w.fresh)
		w.freshSince = now
	}
	switch {
	case key == shared:
	case len(w.seen) >= maxLogTemplates || w.fresh[level] >= maxNewTemplates:
		key = shared // the level's new templates share one limit
		if t, ok := w.seen[key]; ok {
			return t
		}
	default:
		w.fresh[level]++
	}
	t := &logTemplate{}
	w.seen[key] = t
	return t
}

// logLine is one of memberlist's log lines, taken apart.
type logLine struct {
	level    zerolog.Level
	msg      string // without timestamp, level tag, "memberlist: " and "from=" field
	peer     string // the address the line names, if any
	template string // msg with every word holding a digit blanked
}

// parseLogLine takes a memberlist log line apart.
func parseLogLine(s string) logLine {
	s = strings.TrimSpace(s)
	if len(s) >= len(memberlistTimestamp) {
		if _, err := time.Parse(memberlistTimestamp, s[:len(memberlistTimestamp)]); err == nil {
			s = s[len(memberlistTimestamp):]
		}
	}
	var line logLine
	line.level, s = cutLevel(s)
	s = strings.TrimPrefix(s, "memberlist: ")
	line.msg, line.peer = splitPeer(s)
	line.template = templateOf(line.msg)
	return line
}

// cutLevel splits memberlist's level tag off s; without one, the line is
// at debug level.
func cutLevel(s string) (zerolog.Level, string) {
	tags := [...]struct {
		tag   string
		level zerolog.Level
	}{
		{"[ERR]", zerolog.ErrorLevel}, {"[ERROR]", zerolog.ErrorLevel},
		{"[WARN]", zerolog.WarnLevel}, {"[INFO]", zerolog.InfoLevel},
		{"[DEBUG]", zerolog.DebugLevel}, {"[TRACE]", zerolog.TraceLevel},
	}
	for _, t := range tags {
		if rest, ok := strings.CutPrefix(s, t.tag); ok {
			return t.level, strings.TrimSpace(rest)
		}
	}
	return zerolog.DebugLevel, s
}

// splitPeer finds the address msg names: memberlist's "from=host:port"
// field, which it removes, or else the first word that is an IP address
// and port, which it leaves.
func splitPeer(msg string) (string, string) {
	words := strings.Fields(msg)
	for i, w := range words {
		if addr, ok := strings.CutPrefix(w, "from="); ok {
			return strings.Join(append(words[:i:i], words[i+1:]...), " "), addr
		}
	}
	for _, w := range words {
		w = strings.Trim(w, "()[],;:'\"")
		if host, _, err := net.SplitHostPort(w); err == nil && net.ParseIP(host) != nil {
			return msg, w
		}
	}
	return msg, ""
}

// templateOf blanks every word of msg that holds a digit (addresses, ports,
// counts, node names such as n2), and what it quotes (a label, a node
// name: text a sender chooses), so that lines differing only there share
// a rate limit.
func templateOf(msg string) string {
	words := strings.Fields(unquoted(msg))
	for i, w := range words {
		if strings.IndexFunc(w, unicode.IsDigit) >= 0 {
			words[i] = "#"
		}
	}
	return strings.Join(words, " ")
}

// unquoted returns msg with each quoted part (in double quotes, with
// backslash escapes, as %q writes it; from the first single quote to the
// last; in backquotes) made one word, "#"; an unclosed double quote or
// backquote runs to the end.
func unquoted(msg string) string {
	if !strings.ContainsAny(msg, "\"'`") {
		return msg
	}
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		q := msg[i]
		if q != '"' && q != '\'' && q != '`' {
			b.WriteByte(q)
			continue
		}
		if q == '\'' {
			// memberlist's lines quote one name so at most, and a name may
			// hold the quote: to the last one (found by review).
			i = max(i, strings.LastIndexByte(msg, q))
		} else {
			for i++; i < len(msg) && msg[i] != q; i++ {
				if q == '"' && msg[i] == '\\' {
					i++
				}
			}
		}
		b.WriteString(" # ")
	}
	return b.String()
}
