package gatehouse

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Limits of the token policy fields, in seconds, as Infisical's API has them.
const (
	MaxPolicyTTL        = 315360000 // ten years
	DefaultTokenTTL     = 2592000   // thirty days
	DefaultTokenMaxTTL  = 2592000
	DefaultTokenCeiling = 90 * 24 * time.Hour // the longest any single token lives
)

// TokenPolicy is the policy of every access token an auth method issues:
// how long a token lives, how long renewals may keep it alive, how many
// requests it may make, and from which addresses. It is the same type for
// every auth method, validated and enforced in one place.
type TokenPolicy struct {
	TTL          int64 // seconds a token lives; 0 means up to the ceiling
	MaxTTL       int64 // seconds renewals may extend a token to, from its creation; 0 means no limit
	NumUsesLimit int64 // requests a token may make; 0 means no limit
	Period       int64 // seconds of a periodic token: renewable forever, one period at a time
	TrustedIPs   []TrustedIP
}

// DefaultTrustedIPs allows every address: IPv4 and IPv6.
func DefaultTrustedIPs() []TrustedIP {
	zero := 0
	return []TrustedIP{
		{IPAddress: "0.0.0.0", Type: "ipv4", Prefix: &zero},
		{IPAddress: "::", Type: "ipv6", Prefix: &zero},
	}
}

// CheckTTLs reports an error when TTL exceeds a non-zero MaxTTL.
func (p TokenPolicy) CheckTTLs() error {
	if p.MaxTTL > 0 && p.TTL > p.MaxTTL {
		return Errorf(KindInvalid, "Access token TTL cannot be greater than max TTL")
	}
	return nil
}

// IPRestricted reports whether any trusted IP entry is narrower than "every
// address", i.e. whether the client address must be checked at all.
func (p TokenPolicy) IPRestricted() bool {
	for _, ip := range p.TrustedIPs {
		if ip.Prefix == nil || *ip.Prefix != 0 {
			return true
		}
	}
	return false
}

// AllowsIP reports whether addr is inside one of the trusted IP entries.
func (p TokenPolicy) AllowsIP(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, ip := range p.TrustedIPs {
		if pfx, ok := ip.prefix(); ok && pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// lifetime resolves the requested TTL and the max TTL that apply: a
// periodic policy asks for one period at a time and has no max TTL.
func (p TokenPolicy) lifetime() (requested, maxTTL time.Duration) {
	if p.Period > 0 {
		return time.Duration(p.Period) * time.Second, 0
	}
	return time.Duration(p.TTL) * time.Second, time.Duration(p.MaxTTL) * time.Second
}

// IssuedTTL is the lifetime of a token issued (or renewed) at now whose life
// started at created: the smallest of the requested TTL, what remains of the
// max-TTL budget, and the ceiling, where a zero TTL or max TTL is unbounded.
// A result of zero or less means the token may no longer be renewed.
func (p TokenPolicy) IssuedTTL(created, now time.Time, ceiling time.Duration) time.Duration {
	requested, maxTTL := p.lifetime()
	ttl := ceiling
	if requested > 0 && requested < ttl {
		ttl = requested
	}
	if maxTTL > 0 {
		if remaining := created.Add(maxTTL).Sub(now); remaining < ttl {
			ttl = remaining
		}
	}
	return ttl.Truncate(time.Second)
}

// TrustedIP is one entry of a trusted IP list, in the form Infisical stores
// and returns: a plain address has no prefix; a CIDR has its network address
// and prefix length.
type TrustedIP struct {
	IPAddress string `json:"ipAddress"`
	Type      string `json:"type"`
	Prefix    *int   `json:"prefix,omitempty"`
}

func (t TrustedIP) prefix() (netip.Prefix, bool) {
	addr, err := netip.ParseAddr(t.IPAddress)
	if err != nil {
		return netip.Prefix{}, false
	}
	bits := addr.BitLen()
	if t.Prefix != nil {
		bits = *t.Prefix
	}
	pfx, err := addr.Prefix(bits)
	return pfx, err == nil
}

// ParseTrustedIP reads an address ("10.1.2.3", "2001:db8::1") or a CIDR
// ("10.0.0.0/8", "::/0") into its stored form. A CIDR is reduced to its
// network address. Zones and IPv4-mapped forms are refused.
func ParseTrustedIP(s string) (TrustedIP, error) {
	bad := Errorf(KindInvalid, "The IP is not a valid IPv4, IPv6, or CIDR block")
	s = strings.TrimSpace(s)
	addrPart, bitsPart, isCIDR := strings.Cut(s, "/")
	addr, err := netip.ParseAddr(addrPart)
	if err != nil || addr.Zone() != "" || addr.Is4In6() {
		return TrustedIP{}, bad
	}
	typ := "ipv6"
	if addr.Is4() {
		typ = "ipv4"
	}
	if !isCIDR {
		return TrustedIP{IPAddress: addr.String(), Type: typ}, nil
	}
	bits, err := strconv.Atoi(bitsPart)
	if err != nil || bits < 0 || bits > addr.BitLen() || bitsPart != strconv.Itoa(bits) {
		return TrustedIP{}, bad
	}
	network := netip.PrefixFrom(addr, bits).Masked().Addr()
	return TrustedIP{IPAddress: network.String(), Type: typ, Prefix: &bits}, nil
}
