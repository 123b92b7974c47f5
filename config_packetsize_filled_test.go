package bcache

import (
	"errors"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/transport/gossip"
)

// Config's doc says it returns "the configuration the Cache runs with,
// defaults filled in"; PacketSize, left zero, read back as 0, though the
// member ran with gossip.LoopbackPacketSize (a loopback address) or 1400.
func TestConfigReportsThePacketSizeItRunsWith(t *testing.T) {
	c := newCache(t, testConfig("ps"))
	if got := c.Config().PacketSize; got != gossip.LoopbackPacketSize {
		t.Errorf("Config().PacketSize = %d on 127.0.0.1, want %d (the default it runs with)", got, gossip.LoopbackPacketSize)
	}
	cfg := testConfig("ps2")
	cfg.PacketSize = 9000
	if got := newCache(t, cfg).Config().PacketSize; got != 9000 {
		t.Errorf("Config().PacketSize = %d, want the 9000 given", got)
	}
}

// A PacketSize out of range is refused naming that field alone: the error
// spoke of a QueueSize, which Config has none of.
func TestABadPacketSizeIsRefusedByItsName(t *testing.T) {
	cfg := testConfig("ps3")
	cfg.PacketSize = 100
	_, err := New(cfg)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "PacketSize") || strings.Contains(err.Error(), "QueueSize") {
		t.Errorf("PacketSize 100: %v, want ErrConfig naming PacketSize alone", err)
	}
}

// TestPacketSizeTooSmallForTheNodeNameNamesNodeName: a PacketSize in
// range that leaves too little room in a datagram after a long NodeName
// is refused naming PacketSize, and the name by Config's field,
// NodeName: the error spoke of gossip's "Name", which Config has none of.
func TestPacketSizeTooSmallForTheNodeNameNamesNodeName(t *testing.T) {
	cfg := testConfig(strings.Repeat("n", 250))
	cfg.PacketSize = 512
	c, err := New(cfg)
	if err == nil {
		c.Close()
		t.Fatal("started with PacketSize 512 and a 250-byte NodeName")
	}
	msg := err.Error()
	if !errors.Is(err, ErrConfig) || !strings.Contains(msg, ": PacketSize: ") || !strings.Contains(msg, "NodeName (250 bytes)") || strings.Contains(msg, " Name (") {
		t.Errorf("PacketSize 512, NodeName of 250 bytes: %v, want ErrConfig naming PacketSize and NodeName (not Name)", err)
	}
}
