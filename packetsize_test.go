package bcache

import (
	"bytes"
	"fmt"
	"testing"
)

// TestPacketSizeReachesTheTransport: a member on 127.0.0.1 sends a write
// of 3,000 bytes as a datagram (its default packet size is the loopback
// one, 8 KiB), and a member told PacketSize 1400 sends it over a stream,
// as a member of a real network's default does; each gets the other's.
func TestPacketSizeReachesTheTransport(t *testing.T) {
	cs := cluster(t, 2, func(i int, c *Config) {
		if i == 1 {
			c.PacketSize = 1400
		}
	})
	value := bytes.Repeat([]byte("v"), 3000)
	for i, c := range cs {
		before := c.Stats().Replication
		for j := range 10 {
			key := fmt.Sprintf("m%d-%d", i, j)
			if err := c.Set(key, value, 0); err != nil {
				t.Fatal(err)
			}
			waitValue(t, key, value, cs...)
		}
		after := c.Stats().Replication
		packets, streams := after.WirePacketBytes-before.WirePacketBytes, after.WireStreamBytes-before.WireStreamBytes
		t.Logf("%s: %d bytes in datagrams, %d in streams", c.Name(), packets, streams)
		switch {
		case i == 0 && packets < 10*3000:
			t.Errorf("%s (8 KiB datagrams): %d bytes sent in datagrams, want the 10 writes' 30,000 at least", c.Name(), packets)
		case i == 1 && streams < 10*3000:
			t.Errorf("%s (PacketSize 1400): %d bytes sent over streams, want the 10 writes' 30,000 at least", c.Name(), streams)
		}
	}
}
