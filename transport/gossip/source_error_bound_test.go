package gossip

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// TestPeerSourceFailureTextIsBounded: a PeerSource's error, or the value
// it panics with, goes into Status and the log within a bound: a source
// whose error carried a registry's answer (1 MiB here) had it kept whole
// in Status.Joining, copied by every Status call (the node's /status, a
// metrics scrape), and written whole to the log, while every peer name
// and example of a bad peer is cut.
func TestPeerSourceFailureTextIsBounded(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	for name, src := range map[string]func(context.Context) ([]string, error){
		"error": func(context.Context) ([]string, error) { return nil, errors.New(huge) },
		"panic": func(context.Context) ([]string, error) { panic(huge) },
	} {
		t.Run(name, func(t *testing.T) {
			n := startNode(t, "a", nil, func(c *Config) { c.PeerSource = src })
			var text string
			await.Until(t, 10*time.Second, func() bool {
				for _, f := range n.r.Status().Joining {
					if f.Addr == "PeerSource" {
						text = f.Err
						return true
					}
				}
				return false
			}, "the source's failure never reached Status")
			if len(text) > maxJoinText {
				t.Fatalf("the source's failure is %d bytes in Status, want at most %d", len(text), maxJoinText)
			}
			if !strings.HasPrefix(text, "peer source: ") {
				t.Fatalf("the source's failure %.80q... does not say it is the source's", text)
			}
		})
	}
}
