package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/bcache-go/bcache"
)

// TestPacketSizeTooSmallForTheNameNamesItsFlag: a -packet-size in range
// (512 to 65,507) that leaves too little room in a datagram after a long
// -name is refused by bcache.New; the start line must name -packet-size,
// as it does for one out of range. The library's error said "PacketSize
// 512 leaves ..." with no colon after the field, so flagOf found no field
// and the line said "flag":"".
func TestPacketSizeTooSmallForTheNameNamesItsFlag(t *testing.T) {
	o, err := parseFlags([]string{"-bind", "127.0.0.1:0", "-packet-size", "512", "-name", strings.Repeat("n", 250)}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c, err := bcache.New(o.cfg)
	if err == nil {
		c.Close()
		t.Fatal("started with -packet-size 512 and a 250-byte -name")
	}
	if !errors.Is(err, bcache.ErrConfig) || o.flagOf(err) != "-packet-size" {
		t.Errorf("%v named flag %q, want -packet-size", err, o.flagOf(err))
	}
}
