package gossip

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// wireStats counts what a member puts on the wire: every datagram and every
// byte written to a stream, memberlist's own traffic included.
type wireStats struct {
	packets, packetBytes, streams, streamBytes atomic.Uint64
}

// countingTransport wraps memberlist's transport to count what it sends.
type countingTransport struct {
	memberlist.NodeAwareTransport
	stats    *wireStats
	streamCh chan net.Conn
	closing  chan struct{} // closed when Shutdown starts
	stopped  chan struct{} // closed when the inner transport has shut down
	once     sync.Once
	wg       sync.WaitGroup
}

func newCountingTransport(t memberlist.NodeAwareTransport, s *wireStats) *countingTransport {
	c := &countingTransport{
		NodeAwareTransport: t, stats: s, streamCh: make(chan net.Conn),
		closing: make(chan struct{}), stopped: make(chan struct{}),
	}
	c.wg.Add(1)
	go c.forwardStreams()
	return c
}

// forwardStreams wraps every accepted stream so that replies are counted.
// Once Shutdown has started nobody reads StreamCh any more, so it closes
// what the inner transport still accepts instead: the inner transport's
// Shutdown waits for its accept loop, which would otherwise block forever
// handing over a connection.
func (c *countingTransport) forwardStreams() {
	defer c.wg.Done()
	in := c.NodeAwareTransport.StreamCh()
	for {
		select {
		case conn := <-in:
			select {
			case c.streamCh <- &countingConn{Conn: conn, stats: c.stats}:
			case <-c.closing:
				conn.Close()
			}
		case <-c.stopped:
			return
		}
	}
}

func (c *countingTransport) count(b []byte) {
	c.stats.packets.Add(1)
	c.stats.packetBytes.Add(uint64(len(b)))
}

// WriteTo implements memberlist.Transport.
func (c *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	c.count(b)
	return c.NodeAwareTransport.WriteTo(b, addr)
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (c *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	c.count(b)
	return c.NodeAwareTransport.WriteToAddress(b, a)
}

// DialTimeout implements memberlist.Transport.
func (c *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := c.NodeAwareTransport.DialTimeout(addr, timeout)
	return c.wrap(conn, err)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (c *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	conn, err := c.NodeAwareTransport.DialAddressTimeout(a, timeout)
	return c.wrap(conn, err)
}

func (c *countingTransport) wrap(conn net.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, err
	}
	c.stats.streams.Add(1)
	return &countingConn{Conn: conn, stats: c.stats}, nil
}

// StreamCh implements memberlist.Transport.
func (c *countingTransport) StreamCh() <-chan net.Conn { return c.streamCh }

// Shutdown implements memberlist.Transport.
func (c *countingTransport) Shutdown() error {
	var err error
	c.once.Do(func() {
		close(c.closing)
		err = c.NodeAwareTransport.Shutdown()
		close(c.stopped)
		c.wg.Wait()
	})
	return err
}

// countingConn counts the bytes written to a stream.
type countingConn struct {
	net.Conn
	stats *wireStats
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.stats.streamBytes.Add(uint64(n))
	return n, err
}
