package multiinstance

import (
	"net"
	"sync"
	"testing"
)

// dbProxy sits between the servers and PostgreSQL, so a test can take the
// database away and give it back without touching the PostgreSQL server
// other tests share.
type dbProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cond  *sync.Cond
	mode  proxyMode
	conns map[net.Conn]struct{}
}

type proxyMode int

const (
	flowing proxyMode = iota
	// down resets every connection and every new one, as a crashed or
	// restarting database server does.
	down
	// stalled holds every byte: connections open, nothing answers, as
	// in a network partition.
	stalled
	closed
)

func startProxy(t *testing.T, target string) *dbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(func() { p.set(closed) })
	return p
}

func (p *dbProxy) addr() string { return p.ln.Addr().String() }

// set switches mode. Leaving flowing, or coming back to it, drops the
// connections open through the proxy.
func (p *dbProxy) set(m proxyMode) {
	p.mu.Lock()
	if m != stalled {
		for c := range p.conns {
			reset(c)
			delete(p.conns, c)
		}
	}
	p.mode = m
	p.mu.Unlock()
	p.cond.Broadcast()
	if m == closed {
		p.ln.Close()
	}
}

// reset closes c with a TCP reset rather than an orderly close.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// admit registers c, or resets it when the database is down.
func (p *dbProxy) admit(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == down || p.mode == closed {
		reset(c)
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *dbProxy) forget(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// pass waits while the proxy is stalled and reports whether bytes may go
// on.
func (p *dbProxy) pass() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.mode == stalled {
		p.cond.Wait()
	}
	return p.mode == flowing
}

func (p *dbProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			if !p.admit(client) || !p.pass() {
				reset(client)
				return
			}
			server, err := net.Dial("tcp", p.target)
			if err != nil {
				reset(client)
				return
			}
			if !p.admit(server) {
				reset(client)
				return
			}
			go p.pipe(server, client)
			p.pipe(client, server)
		}()
	}
}

func (p *dbProxy) pipe(dst, src net.Conn) {
	defer p.forget(dst)
	defer p.forget(src)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.pass() {
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
