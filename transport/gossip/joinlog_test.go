package gossip

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bcache-go/bcache/internal/await"
)

// The warning of a failed join gives the error as Status.Joining does, on
// one line and without the list memberlist wraps it in: its "1 error
// occurred:\n\t* ...\n\n" went into the log as it was (found by review).
func TestJoinFailureIsLoggedOnOneLine(t *testing.T) {
	dead := freeAddr(t) // nobody listens there: refused at once
	var logs syncBuffer
	startNode(t, "a", []string{dead}, func(c *Config) {
		c.Logger = zerolog.New(&logs).Level(zerolog.WarnLevel)
	})
	await.Until(t, 10*time.Second, func() bool { return strings.Contains(string(logs.Bytes()), "cannot join peer") }, "no warning of the failed join")
	for _, line := range strings.Split(string(logs.Bytes()), "\n") {
		if !strings.Contains(line, "cannot join peer") {
			continue
		}
		var entry struct{ Error string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(entry.Error, "\n\t") || !strings.Contains(entry.Error, "connection refused") || strings.Contains(entry.Error, "error occurred") {
			t.Errorf("the warning's error is %q, want one line naming the cause", entry.Error)
		}
	}
}
