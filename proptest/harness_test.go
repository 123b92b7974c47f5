package proptest

import "testing"

// TestConvergence runs the harness over bcache's own replica with every
// action enabled.
func TestConvergence(t *testing.T) {
	Check(t, Config{})
}
