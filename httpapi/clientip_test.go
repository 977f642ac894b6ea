package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// TestClientIP: the client address is the socket's peer, unless the peer is
// a trusted proxy; then X-Forwarded-For is read from the right, skipping
// trusted hops, and a hop that is not an address ends the walk at the last
// address known good. No other header is ever believed.
func TestClientIP(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	proxies := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		header  http.Header
		want    string // "" is no address
	}{
		// No trusted proxies: the socket, whatever the headers say.
		{name: "socket", remote: "192.0.2.1:5000", want: "192.0.2.1"},
		{name: "forwarded-for ignored", remote: "192.0.2.1:5000", header: http.Header{"X-Forwarded-For": {"10.1.1.1"}}, want: "192.0.2.1"},
		{name: "every forwarding header ignored", remote: "127.0.0.1:5000", header: http.Header{
			"X-Forwarded-For": {"10.1.1.1"}, "X-Real-Ip": {"10.1.1.1"}, "Cf-Connecting-Ip": {"10.1.1.1"},
			"True-Client-Ip": {"10.1.1.1"}, "X-Client-Ip": {"10.1.1.1"}, "Forwarded": {"for=10.1.1.1"}}, want: "127.0.0.1"},
		{name: "IPv6 socket", remote: "[2001:db8::1]:443", want: "2001:db8::1"},
		{name: "IPv4-mapped socket", remote: "[::ffff:192.0.2.1]:443", want: "192.0.2.1"},
		{name: "socket without port", remote: "192.0.2.1", want: ""},
		{name: "empty socket address", remote: "", want: ""},
		{name: "garbage socket address", remote: "not-an-address:80", want: ""},

		// The peer is not a trusted proxy.
		{name: "untrusted peer", trusted: loopback, remote: "192.0.2.1:5000",
			header: http.Header{"X-Forwarded-For": {"10.1.1.1"}}, want: "192.0.2.1"},

		// Behind trusted proxies.
		{name: "proxy without forwarded-for", trusted: loopback, remote: "127.0.0.1:5000", want: "127.0.0.1"},
		{name: "one hop", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"10.1.1.1"}}, want: "10.1.1.1"},
		{name: "trusted hop skipped", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"10.1.1.1, 127.0.0.5"}}, want: "10.1.1.1"},
		{name: "client-written hops left of the client ignored", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"10.9.9.9, 192.168.1.1, 10.1.1.1"}}, want: "10.1.1.1"},
		{name: "rightmost untrusted hop wins", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"10.1.1.1, 192.168.1.1"}}, want: "192.168.1.1"},
		{name: "several proxies", trusted: proxies, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"203.0.113.7, 10.0.0.2, 10.0.0.1"}}, want: "203.0.113.7"},
		{name: "several header lines read as one list", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"192.168.1.1", "10.1.1.1, 127.0.0.9"}}, want: "10.1.1.1"},
		{name: "spaces around hops", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"  10.1.1.1  ,   127.0.0.5 "}}, want: "10.1.1.1"},
		{name: "only trusted hops: the leftmost", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"127.0.0.3, 127.0.0.2"}}, want: "127.0.0.3"},
		{name: "IPv6 hop", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"2001:db8::7"}}, want: "2001:db8::7"},
		{name: "IPv4-mapped hop", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"::ffff:10.1.1.1"}}, want: "10.1.1.1"},
		{name: "IPv4-mapped trusted hop skipped", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"10.1.1.1, ::ffff:127.0.0.5"}}, want: "10.1.1.1"},
		{name: "IPv4-mapped proxy socket", trusted: loopback, remote: "[::ffff:127.0.0.1]:5000",
			header: http.Header{"X-Forwarded-For": {"10.1.1.1"}}, want: "10.1.1.1"},
		{name: "IPv6 proxy", trusted: proxies, remote: "[fd00::1]:5000",
			header: http.Header{"X-Forwarded-For": {"198.51.100.4"}}, want: "198.51.100.4"},

		// Malformed hops: the walk stops at the last address it could trust.
		{name: "malformed rightmost hop", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"10.1.1.1, garbage"}}, want: "127.0.0.1"},
		{name: "malformed hop behind a trusted hop", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"garbage, 127.0.0.5"}}, want: "127.0.0.5"},
		{name: "malformed hop left of the client", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"garbage, 10.1.1.1"}}, want: "10.1.1.1"},
		{name: "empty header", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {""}}, want: "127.0.0.1"},
		{name: "empty hop", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"10.1.1.1,"}}, want: "127.0.0.1"},
		{name: "hop with a port (Azure Application Gateway)", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"10.1.1.1:443"}}, want: "10.1.1.1"},
		{name: "IPv6 hop with a port", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"[2001:db8::7]:443"}}, want: "2001:db8::7"},
		{name: "bracketed IPv6 hop", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"[2001:db8::7]"}}, want: "127.0.0.1"},
		{name: "CIDR hop", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Forwarded-For": {"10.0.0.0/8"}}, want: "127.0.0.1"},
		{name: "Forwarded header is not read", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"Forwarded": {"for=10.1.1.1"}}, want: "127.0.0.1"},
		{name: "X-Real-IP is not read", trusted: loopback, remote: "127.0.0.1:5000",
			header: http.Header{"X-Real-Ip": {"10.1.1.1"}}, want: "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{TrustedProxies: tt.trusted})
			r := httptest.NewRequest(http.MethodGet, "/api/v1/identities/details", nil)
			r.RemoteAddr = tt.remote
			for k, v := range tt.header {
				r.Header[k] = v
			}
			got := s.clientIP(r)
			if tt.want == "" {
				if got.IsValid() {
					t.Errorf("clientIP = %v, want no address", got)
				}
				return
			}
			if want := netip.MustParseAddr(tt.want); got != want {
				t.Errorf("clientIP = %v, want %v", got, want)
			}
		})
	}
}

// FuzzClientIP: whatever the headers, the client address is the peer or
// one of the addresses of X-Forwarded-For, never anything else, and it is
// the peer unless the peer is trusted.
func FuzzClientIP(f *testing.F) {
	f.Add("127.0.0.1:5000", "10.1.1.1, 127.0.0.5")
	f.Add("192.0.2.1:1", "10.1.1.1")
	f.Add("[::ffff:127.0.0.1]:1", "::ffff:10.1.1.1,,x")
	f.Add("[fe80::1%eth0]:1", "fe80::2%lo")
	s := New(Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		got := s.clientIP(r)
		peer, err := netip.ParseAddrPort(remote)
		if err != nil {
			if got.IsValid() {
				t.Fatalf("no peer address, yet client %v", got)
			}
			return
		}
		p := peer.Addr().Unmap()
		if !s.trusted(p) {
			if got != p {
				t.Fatalf("untrusted peer %v, client %v", p, got)
			}
			return
		}
		if got == p {
			return
		}
		for _, hop := range splitHops(xff) {
			if a, err := netip.ParseAddr(hop); err == nil && a.Unmap() == got {
				return
			}
		}
		t.Fatalf("client %v is neither the peer %v nor a hop of %q", got, p, xff)
	})
}

func splitHops(xff string) []string {
	hops := strings.Split(xff, ",")
	for k := range hops {
		hops[k] = strings.TrimSpace(hops[k])
	}
	return hops
}
