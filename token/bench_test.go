package token

import (
	"context"
	"net/netip"
	"testing"

	gatehouse "github.com/gatehouse/gatehouse"
)

// The cost of the token work of one login and of one authenticated request,
// without the database (the store is the in-memory fake).
//
//	go test -run '^$' -bench . -benchmem ./token

func BenchmarkIssue(b *testing.B) {
	s, _, _ := newTestService(b, 0)
	identity, binding := testIdentity(), azureBinding(gatehouse.TokenPolicy{TTL: 3600, MaxTTL: 7200})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Issue(identity, binding); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	ip := netip.MustParseAddr("10.1.2.3")
	for _, bc := range []struct {
		name    string
		policy  gatehouse.TokenPolicy
		trusted []string
	}{
		{name: "plain", policy: gatehouse.TokenPolicy{TTL: 3600}},
		{name: "use limit", policy: gatehouse.TokenPolicy{TTL: 3600, NumUsesLimit: 1 << 62}},
		{name: "trusted IPs", policy: gatehouse.TokenPolicy{TTL: 3600}, trusted: []string{"192.168.0.0/16", "10.0.0.0/8"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, st, _ := newTestService(b, 0)
			if bc.trusted != nil {
				st.setTrustedIPs(b, bc.trusted...)
			}
			raw := issue(b, s, bc.policy).Token
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.Authenticate(ctx, raw, ip); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRenew(b *testing.B) {
	s, _, _ := newTestService(b, 0)
	raw := issue(b, s, gatehouse.TokenPolicy{TTL: 3600}).Token
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Renew(context.Background(), raw, client); err != nil {
			b.Fatal(err)
		}
	}
}
