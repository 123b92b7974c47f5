package gossip

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestLogWriterClosedConnAtShutdownIsNoError: memberlist closes its
// transport before its gossip loop stops, and the loop's last send fails
// "use of closed network connection": on a member shutting down that
// line is no error (the HTTP node's clean SIGTERM logged it as one, and
// counted it among the errors), while before shutdown it still is.
func TestLogWriterClosedConnAtShutdownIsNoError(t *testing.T) {
	var buf bytes.Buffer
	var counts logCounts
	w := newLogWriter(zerolog.New(&buf).Level(zerolog.InfoLevel), time.Now, &counts)
	line := "2026/12/07 13:15:53 [ERR] memberlist: Failed to send gossip to 127.0.0.1:34237: write udp 127.0.0.1:44503->127.0.0.1:34237: use of closed network connection\n"
	w.Write([]byte(line))
	if counts.errors.Load() != 1 || !strings.Contains(buf.String(), `"level":"error"`) {
		t.Fatalf("before shutdown: errors %d, log %q: want the error", counts.errors.Load(), buf.String())
	}
	buf.Reset()
	w.shutting.Store(true)
	w.Write([]byte(strings.Replace(line, "34237", "34238", 2)))
	if counts.errors.Load() != 1 || buf.Len() != 0 {
		t.Errorf("shutting down: errors %d, log %q: want no error", counts.errors.Load(), buf.String())
	}
	other := "2026/12/07 13:15:53 [ERR] memberlist: Failed to send gossip to 127.0.0.1:1: write udp: connection refused\n"
	w.Write([]byte(other))
	if counts.errors.Load() != 2 {
		t.Errorf("shutting down, another error: errors %d, want it counted", counts.errors.Load())
	}
}
