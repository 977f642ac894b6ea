package gatehouse

import (
	"errors"
	"net/netip"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func intPtr(n int) *int { return &n }

func TestIssuedTTL(t *testing.T) {
	created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	const ceiling = 90 * 24 * time.Hour
	tests := []struct {
		name    string
		policy  TokenPolicy
		now     time.Time
		ceiling time.Duration
		want    time.Duration
	}{
		{"TTL below max", TokenPolicy{TTL: 3600, MaxTTL: 7200}, created, ceiling, time.Hour},
		{"TTL equal to max", TokenPolicy{TTL: 7200, MaxTTL: 7200}, created, ceiling, 2 * time.Hour},
		{"TTL 0 is unbounded: the max TTL applies", TokenPolicy{TTL: 0, MaxTTL: 7200}, created, ceiling, 2 * time.Hour},
		{"TTL 0 and max 0: the ceiling", TokenPolicy{}, created, ceiling, ceiling},
		{"max 0 is unbounded: the TTL applies", TokenPolicy{TTL: 600, MaxTTL: 0}, created, ceiling, 10 * time.Minute},
		{"TTL above the ceiling", TokenPolicy{TTL: 315360000, MaxTTL: 315360000}, created, ceiling, ceiling},
		{"a smaller ceiling", TokenPolicy{TTL: 3600}, created, time.Minute, time.Minute},
		{"renewal: what remains of the budget", TokenPolicy{TTL: 3600, MaxTTL: 7200}, created.Add(100 * time.Minute), ceiling, 20 * time.Minute},
		{"renewal: a full TTL still fits", TokenPolicy{TTL: 3600, MaxTTL: 7200}, created.Add(30 * time.Minute), ceiling, time.Hour},
		{"budget exhausted exactly", TokenPolicy{TTL: 3600, MaxTTL: 7200}, created.Add(2 * time.Hour), ceiling, 0},
		{"budget overspent", TokenPolicy{TTL: 3600, MaxTTL: 7200}, created.Add(3 * time.Hour), ceiling, -time.Hour},
		{"fractions of a second are dropped", TokenPolicy{TTL: 3600, MaxTTL: 7200}, created.Add(100*time.Minute + 400*time.Millisecond), ceiling, 20*time.Minute - time.Second},
		{"period: one period at a time", TokenPolicy{TTL: 60, MaxTTL: 120, Period: 600}, created, ceiling, 10 * time.Minute},
		{"period: the max TTL does not end it", TokenPolicy{TTL: 60, MaxTTL: 120, Period: 600}, created.Add(1000 * time.Hour), ceiling, 10 * time.Minute},
		{"period: capped by the ceiling", TokenPolicy{Period: 315360000}, created, ceiling, ceiling},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.IssuedTTL(created, tt.now, tt.ceiling); got != tt.want {
				t.Errorf("IssuedTTL = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckTTLs(t *testing.T) {
	tests := []struct {
		ttl, max int64
		ok       bool
	}{
		{0, 0, true},
		{100, 0, true}, // a max of 0 is no limit
		{0, 100, true},
		{100, 100, true},
		{50, 100, true},
		{101, 100, false},
		{MaxPolicyTTL, 1, false},
	}
	for _, tt := range tests {
		err := TokenPolicy{TTL: tt.ttl, MaxTTL: tt.max}.CheckTTLs()
		if tt.ok {
			if err != nil {
				t.Errorf("TTL %d, max %d: %v, want nil", tt.ttl, tt.max, err)
			}
			continue
		}
		if KindOf(err) != KindInvalid || ErrorMessage(err) != "Access token TTL cannot be greater than max TTL" {
			t.Errorf("TTL %d, max %d: %v (kind %v), want the invalid max TTL error", tt.ttl, tt.max, err, KindOf(err))
		}
	}
}

func mustTrusted(t *testing.T, list ...string) []TrustedIP {
	t.Helper()
	var out []TrustedIP
	for _, s := range list {
		ip, err := ParseTrustedIP(s)
		if err != nil {
			t.Fatalf("ParseTrustedIP(%q): %v", s, err)
		}
		out = append(out, ip)
	}
	return out
}

func TestIPRestricted(t *testing.T) {
	tests := []struct {
		ips  []string
		want bool
	}{
		{nil, false},
		{[]string{"0.0.0.0/0", "::/0"}, false},
		{[]string{"0.0.0.0/0"}, false}, // wildcards only, as Infisical: no check
		{[]string{"::/0"}, false},
		{[]string{"0.0.0.0/0", "10.0.0.0/8"}, true},
		{[]string{"10.1.2.3"}, true},
		{[]string{"::/0", "2001:db8::1"}, true},
		{[]string{"0.0.0.0/1"}, true},
	}
	for _, tt := range tests {
		p := TokenPolicy{TrustedIPs: mustTrusted(t, tt.ips...)}
		if got := p.IPRestricted(); got != tt.want {
			t.Errorf("IPRestricted(%v) = %v, want %v", tt.ips, got, tt.want)
		}
	}
	if (TokenPolicy{TrustedIPs: DefaultTrustedIPs()}).IPRestricted() {
		t.Error("the default trusted IPs are restricted")
	}
}

func TestAllowsIP(t *testing.T) {
	tests := []struct {
		name string
		ips  []string
		addr string
		want bool
	}{
		{"defaults allow IPv4", []string{"0.0.0.0/0", "::/0"}, "203.0.113.9", true},
		{"defaults allow IPv6", []string{"0.0.0.0/0", "::/0"}, "2001:db8::9", true},
		{"IPv4 wildcard does not cover IPv6", []string{"0.0.0.0/0"}, "2001:db8::9", false},
		{"IPv6 wildcard does not cover IPv4", []string{"::/0"}, "203.0.113.9", false},
		{"inside an IPv4 CIDR", []string{"10.0.0.0/8"}, "10.200.3.4", true},
		{"outside an IPv4 CIDR", []string{"10.0.0.0/8"}, "11.0.0.1", false},
		{"CIDR stored from a host address", []string{"10.1.2.3/24"}, "10.1.2.200", true},
		{"exact IPv4 address", []string{"10.1.2.3"}, "10.1.2.3", true},
		{"a plain address is a single host", []string{"10.1.2.3"}, "10.1.2.4", false},
		{"IPv4-mapped client inside an IPv4 CIDR", []string{"10.0.0.0/8"}, "::ffff:10.9.8.7", true},
		{"IPv4-mapped client of an exact address", []string{"10.1.2.3"}, "::ffff:10.1.2.3", true},
		{"IPv4-mapped client outside", []string{"10.0.0.0/8"}, "::ffff:192.168.1.1", false},
		{"inside an IPv6 CIDR", []string{"2001:db8::/32"}, "2001:db8:ffff::1", true},
		{"outside an IPv6 CIDR", []string{"2001:db8::/32"}, "2001:db9::1", false},
		{"exact IPv6 address", []string{"2001:db8::1"}, "2001:db8::1", true},
		{"one of several entries", []string{"192.168.0.0/16", "10.1.2.3", "2001:db8::/32"}, "10.1.2.3", true},
		{"none of several entries", []string{"192.168.0.0/16", "10.1.2.3", "2001:db8::/32"}, "172.16.0.1", false},
		{"/32 is a single host", []string{"10.1.2.3/32"}, "10.1.2.3", true},
		{"empty list allows nothing", nil, "10.1.2.3", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := TokenPolicy{TrustedIPs: mustTrusted(t, tt.ips...)}
			if got := p.AllowsIP(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("AllowsIP(%s) with %v = %v, want %v", tt.addr, tt.ips, got, tt.want)
			}
		})
	}
	if (TokenPolicy{TrustedIPs: DefaultTrustedIPs()}).AllowsIP(netip.Addr{}) {
		t.Error("the zero address is allowed")
	}
	// A stored entry that is not an address (never written by ParseTrustedIP)
	// matches nothing rather than everything.
	broken := TokenPolicy{TrustedIPs: []TrustedIP{{IPAddress: "not-an-ip", Type: "ipv4", Prefix: intPtr(0)}}}
	if broken.AllowsIP(netip.MustParseAddr("10.0.0.1")) {
		t.Error("a malformed entry allows an address")
	}
}

func TestParseTrustedIP(t *testing.T) {
	tests := []struct {
		in   string
		want TrustedIP
	}{
		{"10.1.2.3", TrustedIP{IPAddress: "10.1.2.3", Type: "ipv4"}},
		{"  10.1.2.3 ", TrustedIP{IPAddress: "10.1.2.3", Type: "ipv4"}},
		{"10.0.0.0/8", TrustedIP{IPAddress: "10.0.0.0", Type: "ipv4", Prefix: intPtr(8)}},
		{"10.1.2.3/8", TrustedIP{IPAddress: "10.0.0.0", Type: "ipv4", Prefix: intPtr(8)}},
		{"10.1.2.3/32", TrustedIP{IPAddress: "10.1.2.3", Type: "ipv4", Prefix: intPtr(32)}},
		{"0.0.0.0/0", TrustedIP{IPAddress: "0.0.0.0", Type: "ipv4", Prefix: intPtr(0)}},
		{"255.255.255.255/0", TrustedIP{IPAddress: "0.0.0.0", Type: "ipv4", Prefix: intPtr(0)}},
		{"::/0", TrustedIP{IPAddress: "::", Type: "ipv6", Prefix: intPtr(0)}},
		{"2001:db8::1", TrustedIP{IPAddress: "2001:db8::1", Type: "ipv6"}},
		{"2001:DB8:0:0::1", TrustedIP{IPAddress: "2001:db8::1", Type: "ipv6"}},
		{"2001:db8:1:2::1/32", TrustedIP{IPAddress: "2001:db8::", Type: "ipv6", Prefix: intPtr(32)}},
		{"2001:db8::1/128", TrustedIP{IPAddress: "2001:db8::1", Type: "ipv6", Prefix: intPtr(128)}},
	}
	for _, tt := range tests {
		got, err := ParseTrustedIP(tt.in)
		if err != nil {
			t.Errorf("ParseTrustedIP(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseTrustedIP(%q) = %s, want %s", tt.in, show(got), show(tt.want))
		}
	}

	bad := []string{
		"", " ", "not-an-ip", "10.0.0", "10.0.0.256", "010.0.0.1", "10.0.0.1/", "10.0.0.0/33", "10.0.0.0/-1",
		"10.0.0.0/+8", "10.0.0.0/08", "10.0.0.0/8/8", "10.0.0.0/x", "::/129", "2001:db8::/1000",
		"fe80::1%eth0", "fe80::1%eth0/64", "::ffff:10.1.2.3", "::ffff:10.0.0.0/104", "10.0.0.0 /8", "[::1]", "10.0.0.1:80",
	}
	for _, in := range bad {
		_, err := ParseTrustedIP(in)
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindInvalid || e.Message != "The IP is not a valid IPv4, IPv6, or CIDR block" {
			t.Errorf("ParseTrustedIP(%q) = %v, want the invalid IP error", in, err)
		}
	}
}

func show(ip TrustedIP) string {
	s := ip.IPAddress + " " + ip.Type
	if ip.Prefix != nil {
		s += " /" + strconv.Itoa(*ip.Prefix)
	}
	return s
}

func TestDefaultTrustedIPs(t *testing.T) {
	want := []TrustedIP{
		{IPAddress: "0.0.0.0", Type: "ipv4", Prefix: intPtr(0)},
		{IPAddress: "::", Type: "ipv6", Prefix: intPtr(0)},
	}
	if got := DefaultTrustedIPs(); !reflect.DeepEqual(got, want) {
		t.Errorf("DefaultTrustedIPs() = %v, want %v", got, want)
	}
	// Each call returns its own slice and prefixes.
	a, b := DefaultTrustedIPs(), DefaultTrustedIPs()
	*a[0].Prefix = 8
	if *b[0].Prefix != 0 {
		t.Error("DefaultTrustedIPs shares its prefixes between calls")
	}
}
