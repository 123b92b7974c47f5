package main

import (
	"errors"
	"io"
	"testing"

	"github.com/bcache-go/bcache"
)

// TestPacketSizeErrorNamesItsFlag: a -packet-size that bcache.New refuses
// is named by its flag, as every other flag's error is (the start line
// said "flag":"", leaving the user to guess which of the flags it was).
func TestPacketSizeErrorNamesItsFlag(t *testing.T) {
	o, err := parseFlags([]string{"-bind", "127.0.0.1:0", "-packet-size", "100"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c, err := bcache.New(o.cfg)
	if err == nil {
		c.Close()
		t.Fatal("started with -packet-size 100")
	}
	if !errors.Is(err, bcache.ErrConfig) || o.flagOf(err) != "-packet-size" {
		t.Errorf("%v named flag %q, want -packet-size", err, o.flagOf(err))
	}
}
