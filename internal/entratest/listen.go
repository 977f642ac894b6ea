package entratest

import (
	"net"
	"net/http/httptest"
)

// NewServerOn is NewServer listening on addr (host:port) instead of a
// random port, so that a server under test can be told the authority host
// before this fake starts (as "gatehouse bench --fake-entra-addr" does).
// The caller must Close it.
func NewServerOn(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s, err := NewServer()
	if err != nil {
		ln.Close()
		return nil, err
	}
	// Serve the same handler on ln, and drop the random-port listener,
	// which no one has been told about.
	hs := httptest.NewUnstartedServer(s.http.Config.Handler)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	old := s.http
	s.http = hs
	old.Close()
	return s, nil
}
