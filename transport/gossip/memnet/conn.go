package memnet

import (
	"bytes"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// memAddr is a host:port that may not belong to any transport, for errors.
type memAddr string

func (a memAddr) Network() string { return "tcp" }
func (a memAddr) String() string  { return string(a) }

// memStreamBuffer bounds the bytes in flight in each direction of a stream,
// like a socket buffer: past it a writer waits for the reader.
const memStreamBuffer = 1 << 20

// memPair is the two ends of one stream: client is the dialer's, server
// the one handed to the target's StreamCh.
type memPair struct {
	net            *Network
	src, dst       *Transport
	client, server *memConn

	mu   sync.Mutex
	open int // ends not closed yet
}

func newMemPair(src, dst *Transport) *memPair {
	p := &memPair{net: src.net, src: src, dst: dst, open: 2}
	up, down := newMemPipe(), newMemPipe()
	p.client = newMemConn(p, src.name, src.tcpAddr(), dst.tcpAddr(), down, up)
	p.server = newMemConn(p, dst.name, dst.tcpAddr(), src.tcpAddr(), up, down)
	return p
}

// reset breaks both directions: every read and write on either end fails
// with ECONNRESET from now on.
func (p *memPair) reset() {
	p.client.rd.fail(syscall.ECONNRESET)
	p.client.wr.fail(syscall.ECONNRESET)
}

func (p *memPair) endClosed() {
	p.mu.Lock()
	p.open--
	last := p.open == 0
	p.mu.Unlock()
	if last {
		p.net.forgetPair(p)
	}
}

// memPipe is one direction of a stream: a bounded byte buffer with a
// broadcast channel that is closed and replaced on every change.
type memPipe struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	eof     bool  // the writer closed: reads drain, then io.EOF
	gone    bool  // the reader closed: writes fail
	err     error // the stream was reset: everything fails
	changed chan struct{}
}

func newMemPipe() *memPipe { return &memPipe{changed: make(chan struct{})} }

func (p *memPipe) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// read copies buffered bytes into b; with nothing to read and no error it
// returns the channel to wait on.
func (p *memPipe) read(b []byte) (int, <-chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.err != nil:
		return 0, nil, p.err
	case p.buf.Len() > 0:
		n, _ := p.buf.Read(b)
		p.notifyLocked()
		return n, nil, nil
	case p.eof:
		return 0, nil, io.EOF
	}
	return 0, p.changed, nil
}

// write buffers as much of b as fits and returns how much, and the channel
// to wait on for room.
func (p *memPipe) write(b []byte) (int, <-chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.err != nil:
		return 0, nil, p.err
	case p.gone:
		return 0, nil, syscall.EPIPE
	}
	n := min(memStreamBuffer-p.buf.Len(), len(b))
	if n > 0 {
		p.buf.Write(b[:n])
		p.notifyLocked()
	}
	return n, p.changed, nil
}

func (p *memPipe) update(f func()) {
	p.mu.Lock()
	f()
	p.notifyLocked()
	p.mu.Unlock()
}

func (p *memPipe) closeWrite() { p.update(func() { p.eof = true }) }
func (p *memPipe) closeRead()  { p.update(func() { p.gone = true; p.buf.Reset() }) }
func (p *memPipe) fail(err error) {
	p.update(func() {
		if p.err == nil {
			p.err = err
		}
		p.buf.Reset()
	})
}

// memDeadline is a settable deadline whose channel is closed when it
// passes. Each set bumps gen, so a timer armed by an earlier set that
// fires late does nothing.
type memDeadline struct {
	mu      sync.Mutex
	gen     uint64
	timer   *time.Timer
	expired bool
	ch      chan struct{}
}

func (d *memDeadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	dur := time.Until(t)
	if !t.IsZero() && dur <= 0 {
		d.expireLocked()
		return
	}
	if d.expired {
		d.expired, d.ch = false, make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	gen := d.gen
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen {
			d.expireLocked()
		}
	})
}

func (d *memDeadline) expireLocked() {
	if !d.expired {
		d.expired = true
		close(d.ch)
	}
}

// wait returns a channel closed when the current deadline passes.
func (d *memDeadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

func (d *memDeadline) passed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.expired
}

// memConn is one end of an in-memory stream. Writes are buffered (up to
// memStreamBuffer) so a write-then-read exchange never needs the peer to be
// reading at the same moment; deadlines behave as on a TCP conn.
type memConn struct {
	pair          *memPair
	name          string // the member at this end
	local, remote *net.TCPAddr
	rd, wr        *memPipe
	rdl, wdl      memDeadline

	closeOnce sync.Once
	done      chan struct{} // closed by Close
}

var _ net.Conn = (*memConn)(nil)

func newMemConn(p *memPair, name string, local, remote *net.TCPAddr, rd, wr *memPipe) *memConn {
	c := &memConn{pair: p, name: name, local: local, remote: remote, rd: rd, wr: wr, done: make(chan struct{})}
	c.rdl.ch = make(chan struct{})
	c.wdl.ch = make(chan struct{})
	return c
}

func (c *memConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.local, Addr: c.remote, Err: err}
}

// usable returns why an operation under deadline d cannot start, if so.
func (c *memConn) usable(d *memDeadline) error {
	select {
	case <-c.done:
		return net.ErrClosed
	default:
	}
	if d.passed() {
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (c *memConn) Read(b []byte) (int, error) {
	for {
		if err := c.usable(&c.rdl); err != nil {
			return 0, c.opErr("read", err)
		}
		if len(b) == 0 {
			return 0, nil
		}
		n, wait, err := c.rd.read(b)
		switch {
		case err == io.EOF:
			return 0, io.EOF
		case err != nil:
			return 0, c.opErr("read", err)
		case n > 0:
			return n, nil
		}
		select {
		case <-wait:
		case <-c.rdl.wait():
		case <-c.done:
		}
	}
}

func (c *memConn) Write(b []byte) (int, error) {
	total := 0
	for {
		if err := c.usable(&c.wdl); err != nil {
			return total, c.opErr("write", err)
		}
		n, wait, err := c.wr.write(b)
		total, b = total+n, b[n:]
		if err != nil {
			return total, c.opErr("write", err)
		}
		if len(b) == 0 {
			return total, nil
		}
		select {
		case <-wait:
		case <-c.wdl.wait():
		case <-c.done:
		}
	}
}

// Close ends both directions at this end: the peer reads what was written
// and then io.EOF, and its writes fail.
func (c *memConn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.done)
		c.wr.closeWrite()
		c.rd.closeRead()
	})
	if !first {
		return c.opErr("close", net.ErrClosed)
	}
	c.pair.endClosed()
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return c.local }
func (c *memConn) RemoteAddr() net.Addr { return c.remote }

func (c *memConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *memConn) SetReadDeadline(t time.Time) error  { return c.setDeadline(&c.rdl, t) }
func (c *memConn) SetWriteDeadline(t time.Time) error { return c.setDeadline(&c.wdl, t) }

func (c *memConn) setDeadline(d *memDeadline, t time.Time) error {
	select {
	case <-c.done:
		return c.opErr("set", net.ErrClosed)
	default:
	}
	d.set(t)
	return nil
}
