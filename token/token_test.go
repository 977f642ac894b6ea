package token

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"hash"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/internal/clocktest"
)

// The tests of this file are the rules of a token's life, checked against an
// in-memory store and a clock the test moves.

const (
	testIdentityID = "6f1c2a4e-1b2c-4d3e-8f4a-5b6c7d8e9f01"
	testOrgID      = "0c9b8a7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
	testBindingID  = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
	tokenBindingID = "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// fakeStore is the database of one organization with one identity, which
// has Azure Auth and Token Auth attached.
type fakeStore struct {
	mu         sync.Mutex
	identityID string // "" once the identity is deleted
	orgID      string
	bindings   map[gatehouse.AuthMethod]string // method → binding id
	trustedIPs []gatehouse.TrustedIP           // the current list of every method
	revoked    map[string]time.Time            // jti → when the marker may go
	uses       map[string]int64
	usesExpiry map[string]time.Time
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		identityID: testIdentityID,
		orgID:      testOrgID,
		bindings:   map[gatehouse.AuthMethod]string{gatehouse.AuthMethodAzure: testBindingID, gatehouse.AuthMethodToken: tokenBindingID},
		trustedIPs: gatehouse.DefaultTrustedIPs(),
		revoked:    map[string]time.Time{},
		uses:       map[string]int64{},
		usesExpiry: map[string]time.Time{},
	}
}

func (f *fakeStore) TokenState(_ context.Context, identityID string, method gatehouse.AuthMethod, jti string) (gatehouse.TokenState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if identityID != f.identityID {
		return gatehouse.TokenState{}, nil
	}
	p := gatehouse.TokenPolicy{TrustedIPs: f.trustedIPs}
	st := gatehouse.TokenState{
		IdentityFound: true,
		OrgID:         f.orgID,
		Role:          gatehouse.RoleMember,
		Organization:  gatehouse.Organization{ID: f.orgID, Name: "Acme", Slug: "acme"},
		BindingID:     f.bindings[method],
		IPRestricted:  p.IPRestricted(),
	}
	if st.IPRestricted {
		st.TrustedIPs = append([]gatehouse.TrustedIP(nil), f.trustedIPs...)
	}
	_, st.Revoked = f.revoked[jti]
	return st, nil
}

func (f *fakeStore) UseToken(_ context.Context, jti string, limit int64, expiresAt time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.uses[jti] >= limit {
		return false, nil
	}
	if _, ok := f.uses[jti]; !ok {
		f.usesExpiry[jti] = expiresAt
	}
	f.uses[jti]++
	return true, nil
}

func (f *fakeStore) TokenUses(_ context.Context, jti string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.uses[jti], nil
}

func (f *fakeStore) ExtendTokenUses(_ context.Context, jti string, expiresAt time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if exp, ok := f.usesExpiry[jti]; ok && exp.Before(expiresAt) {
		f.usesExpiry[jti] = expiresAt
	}
	return nil
}

func (f *fakeStore) RevokeToken(_ context.Context, jti, identityID string, expiresAt time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked[jti] = expiresAt
	return nil
}

func (f *fakeStore) setTrustedIPs(t testing.TB, cidrs ...string) {
	t.Helper()
	var ips []gatehouse.TrustedIP
	for _, c := range cidrs {
		ip, err := gatehouse.ParseTrustedIP(c)
		if err != nil {
			t.Fatalf("ParseTrustedIP(%q): %v", c, err)
		}
		ips = append(ips, ip)
	}
	f.mu.Lock()
	f.trustedIPs = ips
	f.mu.Unlock()
}

// start is a whole second, as the tests' clocks are unless they say otherwise.
var start = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newTestService(t testing.TB, ceiling time.Duration) (*Service, *fakeStore, *clocktest.Clock) {
	t.Helper()
	st, clock := newFakeStore(), clocktest.New(start)
	s, err := NewService(Config{Secret: testSecret, Store: st, Clock: clock, Ceiling: ceiling})
	if err != nil {
		t.Fatal(err)
	}
	return s, st, clock
}

func testIdentity() gatehouse.Identity {
	return gatehouse.Identity{ID: testIdentityID, OrgID: testOrgID, Name: "web", Role: gatehouse.RoleMember}
}

func azureBinding(p gatehouse.TokenPolicy) gatehouse.AuthBinding {
	if p.TrustedIPs == nil {
		p.TrustedIPs = gatehouse.DefaultTrustedIPs()
	}
	return gatehouse.AuthBinding{ID: testBindingID, IdentityID: testIdentityID, Method: gatehouse.AuthMethodAzure, Policy: p}
}

func issue(t testing.TB, s *Service, p gatehouse.TokenPolicy) Issued {
	t.Helper()
	is, err := s.Issue(testIdentity(), azureBinding(p))
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return is
}

var client = netip.MustParseAddr("127.0.0.1")

// wantErr fails the test unless err is a gatehouse error of kind with message.
func wantErr(t testing.TB, err error, kind gatehouse.Kind, message string) {
	t.Helper()
	var e *gatehouse.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want kind %d %q", err, err, kind, message)
	}
	if e.Kind != kind || e.Message != message {
		t.Fatalf("error kind %d %q, want kind %d %q", e.Kind, e.Message, kind, message)
	}
}

const (
	msgExpired   = "Your token has expired. Please re-authenticate."
	msgMalformed = "The provided access token is malformed. Please use a valid token or generate a new one and try again."
	msgAlgorithm = "The access token is signed with an invalid algorithm. Please provide a valid token and try again."
	msgSignature = "invalid signature"
	msgClaims    = "Invalid identity access token claims, please re-authenticate"
)

// payloadOf decodes the claims segment of a compact JWS as a JSON object.
func payloadOf(t testing.TB, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	body, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestIssueLifetime(t *testing.T) {
	const day = 24 * 60 * 60
	tests := []struct {
		name              string
		ttl, max, period  int64
		ceiling           time.Duration
		wantLife, wantTTL int64
	}{
		{name: "ttl below max", ttl: 3600, max: 7200, wantLife: 3600},
		{name: "ttl equal to max", ttl: 2592000, max: 2592000, wantLife: 2592000},
		{name: "ttl 0 and max 0: the ceiling", wantLife: 90 * day},
		{name: "ttl 0: the max", max: 2592000, wantLife: 2592000},
		{name: "max below ttl", ttl: 7200, max: 3600, wantLife: 3600},
		{name: "ttl 0 is capped by a short max", max: 60, wantLife: 60},
		{name: "ten years: the ceiling", ttl: gatehouse.MaxPolicyTTL, max: gatehouse.MaxPolicyTTL, wantLife: 90 * day},
		{name: "configured ceiling", ttl: 7200, max: 7200, ceiling: time.Hour, wantLife: 3600},
		{name: "configured ceiling with ttl 0", ceiling: 2 * time.Hour, wantLife: 7200},
		{name: "configured ceiling above ttl", ttl: 60, ceiling: time.Hour, wantLife: 60},
		{name: "period replaces ttl and max", ttl: 3600, max: 7200, period: 60, wantLife: 60},
		{name: "period is capped by the ceiling", period: 365 * day, wantLife: 90 * day},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := newTestService(t, tt.ceiling)
			is := issue(t, s, gatehouse.TokenPolicy{TTL: tt.ttl, MaxTTL: tt.max, Period: tt.period})
			c := is.Claims
			if got := c.ExpiresAt - c.IssuedAt; got != tt.wantLife {
				t.Errorf("exp - iat = %d, want %d", got, tt.wantLife)
			}
			if is.ExpiresIn != tt.wantLife {
				t.Errorf("ExpiresIn %d, want %d", is.ExpiresIn, tt.wantLife)
			}
			if c.IssuedAt != start.Unix() || c.CreationEpoch != start.Unix() {
				t.Errorf("iat %d creationEpoch %d, want both %d", c.IssuedAt, c.CreationEpoch, start.Unix())
			}
			if c.AccessTokenTTL != tt.ttl || c.AccessTokenMaxTTL != tt.max || c.AccessTokenPeriod != tt.period {
				t.Errorf("claims carry TTL %d max %d period %d, want the configured %d %d %d",
					c.AccessTokenTTL, c.AccessTokenMaxTTL, c.AccessTokenPeriod, tt.ttl, tt.max, tt.period)
			}
			// What is signed is what Issue reports.
			got, err := verify(testSecret, is.Token)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("signed claims %+v, reported %+v", got, c)
			}
		})
	}
}

func TestIssueClaims(t *testing.T) {
	s, _, _ := newTestService(t, 0)
	a := issue(t, s, gatehouse.TokenPolicy{TTL: 60, MaxTTL: 120})
	b := issue(t, s, gatehouse.TokenPolicy{TTL: 60, MaxTTL: 120, NumUsesLimit: 5,
		TrustedIPs: []gatehouse.TrustedIP{{IPAddress: "10.0.0.0", Type: "ipv4", Prefix: ptr(8)}}})

	m := payloadOf(t, a.Token)
	want := map[string]any{
		"identityId": testIdentityID, "identityName": "web", "authMethod": "azure-auth", "authMethodId": testBindingID,
		"orgId": testOrgID, "rootOrgId": testOrgID, "parentOrgId": testOrgID, "clientSecretId": "",
		"ipRestrictionEnabled": false, "accessTokenTTL": 60.0, "accessTokenMaxTTL": 120.0, "accessTokenPeriod": 0.0,
		"creationEpoch": float64(start.Unix()), "authTokenType": "identityAccessToken", "identityAuth": map[string]any{},
		"iat": float64(start.Unix()), "exp": float64(start.Unix() + 60),
	}
	for k, v := range want {
		if !reflect.DeepEqual(m[k], v) {
			t.Errorf("claim %s = %#v, want %#v", k, m[k], v)
		}
	}
	if m["jti"] == nil || m["jti"] != m["identityAccessTokenId"] {
		t.Errorf("jti %v, identityAccessTokenId %v: want equal and set", m["jti"], m["identityAccessTokenId"])
	}
	if _, ok := m["numUsesLimit"]; ok {
		t.Errorf("numUsesLimit present without a use limit: %v", m["numUsesLimit"])
	}

	mb := payloadOf(t, b.Token)
	if mb["numUsesLimit"] != 5.0 {
		t.Errorf("numUsesLimit %v, want 5", mb["numUsesLimit"])
	}
	if mb["ipRestrictionEnabled"] != true {
		t.Errorf("ipRestrictionEnabled %v with a 10.0.0.0/8 trusted list", mb["ipRestrictionEnabled"])
	}
	if mb["jti"] == m["jti"] {
		t.Error("two tokens share a jti")
	}
}

func ptr[T any](v T) *T { return &v }

// lifetimeOracle is the lifetime of a token renewed at now (both in whole
// seconds), worked out independently of IssuedTTL: the least of the TTL (or
// period), what remains of the max-TTL budget and the ceiling.
func lifetimeOracle(p gatehouse.TokenPolicy, creation, now, ceiling int64) int64 {
	life := ceiling
	if p.Period > 0 {
		return min(life, p.Period)
	}
	if p.TTL > 0 {
		life = min(life, p.TTL)
	}
	if p.MaxTTL > 0 {
		life = min(life, creation+p.MaxTTL-now)
	}
	return life
}

// randomPolicy returns a policy as an auth method could be configured, with
// the odd corner: a max below the TTL, a period, a zero of either.
func randomPolicy(r *rand.Rand) gatehouse.TokenPolicy {
	pick := func() int64 {
		switch r.IntN(6) {
		case 0:
			return 0
		case 1:
			return 1 + r.Int64N(10)
		case 2:
			return 1 + r.Int64N(3600)
		case 3:
			return 1 + r.Int64N(30*86400)
		case 4:
			return 1 + r.Int64N(gatehouse.MaxPolicyTTL)
		default:
			return []int64{60, 3600, 86400, 2592000, 7776000}[r.IntN(5)]
		}
	}
	p := gatehouse.TokenPolicy{TTL: pick(), MaxTTL: pick()}
	if r.IntN(5) == 0 {
		p.Period = 1 + pick()
	}
	return p
}

func randomCeiling(r *rand.Rand) time.Duration {
	switch r.IntN(3) {
	case 0:
		return 0 // the default, 90 days
	case 1:
		return time.Duration(1+r.Int64N(7*86400)) * time.Second
	default:
		return time.Duration(1+r.Int64N(400*86400)) * time.Second
	}
}

// TestLifetimeProperty renews random tokens at random times and checks that
// no renewal ever reaches past creationEpoch + maxTTL or lives longer than
// the ceiling, that every lifetime is exactly the least of TTL, remaining
// budget and ceiling, and that a token is renewable exactly while it is
// alive and has budget left.
func TestLifetimeProperty(t *testing.T) {
	const seed = 20250601
	r := rand.New(rand.NewPCG(seed, seed))
	trials := 3000
	if testing.Short() {
		trials = 300
	}
	for trial := 0; trial < trials; trial++ {
		p, ceilingCfg := randomPolicy(r), randomCeiling(r)
		s, _, clock := newTestService(t, ceilingCfg)
		ceiling := int64(s.Ceiling() / time.Second)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d trial %d, policy %+v, ceiling %ds: "+format, append([]any{seed, trial, p, ceiling}, args...)...)
		}
		is := issue(t, s, p)
		creation, jti := is.Claims.CreationEpoch, is.Claims.ID
		if want := lifetimeOracle(p, creation, creation, ceiling); is.ExpiresIn != want {
			fail("issued for %ds, want %d", is.ExpiresIn, want)
		}
		tok := is.Claims
		raw := is.Token
		for step := 0; step < 40; step++ {
			// Move to a random moment of the current token's life, or
			// just past it; now and then by a fraction of a second.
			life := tok.ExpiresAt - clock.Now().Unix()
			d := time.Duration(r.Int64N(life+life/4+2)) * time.Second
			if r.IntN(4) == 0 {
				d += time.Duration(r.Int64N(int64(time.Second)))
			}
			clock.Advance(d)
			now := clock.Now()
			renewed, err := s.Renew(context.Background(), raw, client)
			if now.Unix() >= tok.ExpiresAt {
				if err == nil {
					fail("renewed at %v a token that expired at %d", now.Unix(), tok.ExpiresAt)
				}
				wantErr(t, err, gatehouse.KindToken, msgExpired)
				break
			}
			// The budget left, in whole seconds, as the code must see it.
			budget := int64(1<<62 - 1)
			if p.Period == 0 && p.MaxTTL > 0 {
				budget = int64(time.Unix(creation+p.MaxTTL, 0).Sub(now) / time.Second)
			}
			if budget <= 0 {
				if err == nil {
					fail("renewed at %v with no budget left: %+v", now, renewed.Claims)
				}
				wantErr(t, err, gatehouse.KindUnauthorized, "Cannot renew: identity access token has reached its max TTL")
				break
			}
			if err != nil {
				fail("renew at %v (token exp %d): %v", now, tok.ExpiresAt, err)
			}
			c := renewed.Claims
			if c.ID != jti || c.IdentityAccessTokenID != jti || c.CreationEpoch != creation {
				fail("renewal changed jti or creationEpoch: %+v", c)
			}
			if c.IssuedAt != now.Unix() || c.ExpiresAt-c.IssuedAt > renewed.ExpiresIn+1 || renewed.ExpiresIn < 1 {
				fail("renewal at %v: iat %d exp %d expiresIn %d", now, c.IssuedAt, c.ExpiresAt, renewed.ExpiresIn)
			}
			if renewed.ExpiresIn > ceiling {
				fail("renewal lives %ds, over the ceiling", renewed.ExpiresIn)
			}
			if p.Period == 0 && p.MaxTTL > 0 && c.ExpiresAt > creation+p.MaxTTL {
				fail("renewal expires at %d, past creationEpoch + maxTTL = %d", c.ExpiresAt, creation+p.MaxTTL)
			}
			if p.Period > 0 && renewed.ExpiresIn != min(p.Period, ceiling) {
				fail("periodic renewal lives %ds, want one period", renewed.ExpiresIn)
			}
			if now.Nanosecond() == 0 {
				if want := lifetimeOracle(p, creation, now.Unix(), ceiling); renewed.ExpiresIn != want || c.ExpiresAt-c.IssuedAt != want {
					fail("renewal at +%ds lives %ds (exp-iat %d), want %d", now.Unix()-creation, renewed.ExpiresIn, c.ExpiresAt-c.IssuedAt, want)
				}
			}
			if _, _, err := s.Authenticate(context.Background(), renewed.Token, client); err != nil {
				fail("renewed token refused: %v", err)
			}
			tok, raw = c, renewed.Token
		}
	}
}

// TestPeriodicRenewsForever renews a periodic token, one period at a time,
// far past any max TTL its policy names.
func TestPeriodicRenewsForever(t *testing.T) {
	s, _, clock := newTestService(t, 0)
	is := issue(t, s, gatehouse.TokenPolicy{TTL: 100, MaxTTL: 100, Period: 60})
	raw := is.Token
	for k := 0; k < 1000; k++ {
		clock.Advance(59 * time.Second)
		renewed, err := s.Renew(context.Background(), raw, client)
		if err != nil {
			t.Fatalf("renewal %d, %ds after creation: %v", k, clock.Now().Unix()-is.Claims.CreationEpoch, err)
		}
		if renewed.ExpiresIn != 60 || renewed.Claims.ExpiresAt != clock.Now().Unix()+60 {
			t.Fatalf("renewal %d lives %ds, exp %d: want one period", k, renewed.ExpiresIn, renewed.Claims.ExpiresAt)
		}
		raw = renewed.Token
	}
	clock.Advance(60 * time.Second)
	_, err := s.Renew(context.Background(), raw, client)
	wantErr(t, err, gatehouse.KindToken, msgExpired)
}

func TestIssuedTTLQuick(t *testing.T) {
	// The lifetime never exceeds any of its three bounds, whatever the
	// inputs, including times long before or after creation.
	r := rand.New(rand.NewPCG(7, 7))
	for k := 0; k < 100000; k++ {
		p := randomPolicy(r)
		ceiling := time.Duration(1+r.Int64N(400*86400)) * time.Second
		created := start
		now := created.Add(time.Duration(r.Int64N(int64(20*365*24*time.Hour))) - time.Hour)
		ttl := p.IssuedTTL(created, now, ceiling)
		if ttl > ceiling || ttl%time.Second != 0 {
			t.Fatalf("%+v at %v: %v, ceiling %v", p, now.Sub(created), ttl, ceiling)
		}
		if p.Period > 0 {
			if ttl != min(ceiling, time.Duration(p.Period)*time.Second) {
				t.Fatalf("periodic %+v: %v", p, ttl)
			}
			continue
		}
		if p.TTL > 0 && ttl > time.Duration(p.TTL)*time.Second {
			t.Fatalf("%+v: %v over the TTL", p, ttl)
		}
		if p.MaxTTL > 0 && ttl > 0 && now.Add(ttl).After(created.Add(time.Duration(p.MaxTTL)*time.Second)) {
			t.Fatalf("%+v at %v: %v reaches past the max TTL", p, now.Sub(created), ttl)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	limited := gatehouse.TokenPolicy{TTL: 3600, MaxTTL: 3600, NumUsesLimit: 2}
	tests := []struct {
		name    string
		policy  gatehouse.TokenPolicy
		change  func(s *Service, st *fakeStore, clock *clocktest.Clock, is Issued)
		ip      string
		kind    gatehouse.Kind
		message string // "" means the token is accepted
	}{
		{name: "valid"},
		{name: "expired", policy: gatehouse.TokenPolicy{TTL: 60},
			change: func(_ *Service, _ *fakeStore, c *clocktest.Clock, _ Issued) { c.Advance(60 * time.Second) },
			kind:   gatehouse.KindToken, message: msgExpired},
		{name: "a second before expiry", policy: gatehouse.TokenPolicy{TTL: 60},
			change: func(_ *Service, _ *fakeStore, c *clocktest.Clock, _ Issued) { c.Advance(59 * time.Second) }},
		{name: "revoked",
			change: func(s *Service, _ *fakeStore, _ *clocktest.Clock, is Issued) { s.Revoke(ctx, is.Token) },
			kind:   gatehouse.KindUnauthorized, message: "Failed to authorize: token has been revoked"},
		{name: "identity deleted",
			change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) { st.identityID = "" },
			kind:   gatehouse.KindUnauthorized, message: "Failed to authorize: identity tokens have been revoked"},
		{name: "method detached",
			change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) {
				delete(st.bindings, gatehouse.AuthMethodAzure)
			},
			kind: gatehouse.KindUnauthorized, message: "Failed to authorize: auth method has been revoked"},
		{name: "method detached and attached again",
			change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) {
				st.bindings[gatehouse.AuthMethodAzure] = "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f"
			},
			kind: gatehouse.KindUnauthorized, message: "Failed to authorize: auth method has been revoked"},
		{name: "another method detached",
			change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) {
				delete(st.bindings, gatehouse.AuthMethodToken)
			}},
		{name: "trusted IPs narrowed after issue",
			change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) { st.setTrustedIPs(t, "10.0.0.0/8") },
			kind:   gatehouse.KindForbidden, message: "You are not allowed to access this resource from the current IP address"},
		{name: "inside the trusted IPs", ip: "10.20.30.40",
			change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) {
				st.setTrustedIPs(t, "10.0.0.0/8", "2001:db8::/32")
			}},
		{name: "IPv6 inside the trusted IPs", ip: "2001:db8::7",
			change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) {
				st.setTrustedIPs(t, "10.0.0.0/8", "2001:db8::/32")
			}},
		{name: "mapped IPv4 inside the trusted IPs", ip: "::ffff:10.1.1.1",
			change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) { st.setTrustedIPs(t, "10.0.0.0/8") }},
		{name: "single trusted address", ip: "192.0.2.7",
			change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) { st.setTrustedIPs(t, "192.0.2.7") }},
		{name: "unknown client address with restricted IPs", ip: "invalid",
			change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) { st.setTrustedIPs(t, "10.0.0.0/8") },
			kind:   gatehouse.KindForbidden, message: "You are not allowed to access this resource from the current IP address"},
		{name: "unknown client address without restriction", ip: "invalid"},
		{name: "moved to another organization",
			change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) {
				st.orgID = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"
			},
			kind: gatehouse.KindUnauthorized, message: "Failed to authorize: identity is not a member of the organization"},
		{name: "use limit", policy: limited,
			change: func(s *Service, _ *fakeStore, _ *clocktest.Clock, is Issued) {
				for k := 0; k < 2; k++ {
					if _, _, err := s.Authenticate(ctx, is.Token, client); err != nil {
						t.Errorf("use %d: %v", k+1, err)
					}
				}
			},
			kind: gatehouse.KindUnauthorized, message: "Failed to authorize: token usage limit reached"},

		// The order of the checks, where two fail at once.
		{name: "expired before revoked", policy: gatehouse.TokenPolicy{TTL: 60},
			change: func(s *Service, _ *fakeStore, c *clocktest.Clock, is Issued) {
				s.Revoke(ctx, is.Token)
				c.Advance(time.Minute)
			},
			kind: gatehouse.KindToken, message: msgExpired},
		{name: "deleted identity before revoked token",
			change: func(s *Service, st *fakeStore, _ *clocktest.Clock, is Issued) {
				s.Revoke(ctx, is.Token)
				st.identityID = ""
			},
			kind: gatehouse.KindUnauthorized, message: "Failed to authorize: identity tokens have been revoked"},
		{name: "revoked before exhausted", policy: limited,
			change: func(s *Service, st *fakeStore, _ *clocktest.Clock, is Issued) {
				st.uses[is.Claims.ID] = 2
				s.Revoke(ctx, is.Token)
			},
			kind: gatehouse.KindUnauthorized, message: "Failed to authorize: token has been revoked"},
		{name: "exhausted before IP", policy: limited,
			change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, is Issued) {
				st.uses[is.Claims.ID] = 2
				st.setTrustedIPs(t, "10.0.0.0/8")
			},
			kind: gatehouse.KindUnauthorized, message: "Failed to authorize: token usage limit reached"},
		{name: "IP before organization",
			change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) {
				st.setTrustedIPs(t, "10.0.0.0/8")
				st.orgID = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"
			},
			kind: gatehouse.KindForbidden, message: "You are not allowed to access this resource from the current IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, st, clock := newTestService(t, 0)
			is := issue(t, s, tt.policy)
			if tt.change != nil {
				tt.change(s, st, clock, is)
			}
			var ip netip.Addr
			switch tt.ip {
			case "":
				ip = client
			case "invalid":
			default:
				ip = netip.MustParseAddr(tt.ip)
			}
			c, state, err := s.Authenticate(ctx, is.Token, ip)
			if tt.message != "" {
				wantErr(t, err, tt.kind, tt.message)
				if c != nil {
					t.Errorf("claims returned with an error: %+v", c)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if !reflect.DeepEqual(c, is.Claims) {
				t.Errorf("claims %+v, want %+v", c, is.Claims)
			}
			if state.OrgID != testOrgID || state.Organization.Slug != "acme" {
				t.Errorf("state %+v", state)
			}
		})
	}
}

func TestUseLimitCountsOnlyAllowedUses(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t, 0)
	is := issue(t, s, gatehouse.TokenPolicy{TTL: 3600, NumUsesLimit: 3})
	// A revoked token is refused before its use is counted.
	other := issue(t, s, gatehouse.TokenPolicy{TTL: 3600, NumUsesLimit: 3})
	if err := s.Revoke(ctx, other.Token); err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 5; k++ {
		_, _, err := s.Authenticate(ctx, is.Token, client)
		if k <= 3 && err != nil {
			t.Fatalf("use %d of 3: %v", k, err)
		}
		if k > 3 {
			wantErr(t, err, gatehouse.KindUnauthorized, "Failed to authorize: token usage limit reached")
		}
		s.Authenticate(ctx, other.Token, client)
	}
	if st.uses[other.Claims.ID] != 0 {
		t.Errorf("a revoked token's refused requests counted %d uses", st.uses[other.Claims.ID])
	}
	// The counter lives at least as long as the token.
	if exp := st.usesExpiry[is.Claims.ID]; exp.Before(time.Unix(is.Claims.ExpiresAt, 0)) {
		t.Errorf("use counter expires at %v, before the token (%d)", exp, is.Claims.ExpiresAt)
	}
	// A token without a use limit writes nothing.
	free := issue(t, s, gatehouse.TokenPolicy{TTL: 3600})
	for k := 0; k < 10; k++ {
		if _, _, err := s.Authenticate(ctx, free.Token, client); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := st.uses[free.Claims.ID]; ok {
		t.Error("a token without a use limit has a use counter")
	}
}

func TestRenew(t *testing.T) {
	ctx := context.Background()

	t.Run("keeps jti and creation, capped by the max TTL", func(t *testing.T) {
		s, st, clock := newTestService(t, 0)
		is := issue(t, s, gatehouse.TokenPolicy{TTL: 60, MaxTTL: 150, NumUsesLimit: 10})
		clock.Advance(50 * time.Second)
		r1, err := s.Renew(ctx, is.Token, client)
		if err != nil {
			t.Fatal(err)
		}
		want := *is.Claims
		want.IssuedAt, want.ExpiresAt = start.Unix()+50, start.Unix()+110
		if !reflect.DeepEqual(r1.Claims, &want) || r1.ExpiresIn != 60 {
			t.Errorf("renewal %+v (expiresIn %d), want %+v (60)", r1.Claims, r1.ExpiresIn, want)
		}
		if exp := st.usesExpiry[is.Claims.ID]; !exp.IsZero() {
			t.Errorf("unused token got a use counter at renewal: %v", exp)
		}
		if _, _, err := s.Authenticate(ctx, r1.Token, client); err != nil {
			t.Fatal(err)
		}
		clock.Advance(50 * time.Second) // +100: 50 s of budget left
		r2, err := s.Renew(ctx, r1.Token, client)
		if err != nil {
			t.Fatal(err)
		}
		if r2.ExpiresIn != 50 || r2.Claims.ExpiresAt != start.Unix()+150 {
			t.Errorf("renewal near the max TTL: expiresIn %d exp %d, want 50 and %d", r2.ExpiresIn, r2.Claims.ExpiresAt, start.Unix()+150)
		}
		if exp := st.usesExpiry[is.Claims.ID]; exp.Before(time.Unix(r2.Claims.ExpiresAt, 0)) {
			t.Errorf("use counter expires at %v, before the renewed token", exp)
		}
		clock.Advance(49*time.Second + 500*time.Millisecond) // half a second of budget
		_, err = s.Renew(ctx, r2.Token, client)
		wantErr(t, err, gatehouse.KindUnauthorized, "Cannot renew: identity access token has reached its max TTL")
		clock.Advance(500 * time.Millisecond)
		_, err = s.Renew(ctx, r2.Token, client)
		wantErr(t, err, gatehouse.KindToken, msgExpired)
	})

	t.Run("refusals", func(t *testing.T) {
		tests := []struct {
			name    string
			policy  gatehouse.TokenPolicy
			change  func(s *Service, st *fakeStore, c *clocktest.Clock, is Issued)
			kind    gatehouse.Kind
			message string
		}{
			{name: "expired", policy: gatehouse.TokenPolicy{TTL: 60},
				change: func(_ *Service, _ *fakeStore, c *clocktest.Clock, _ Issued) { c.Advance(time.Minute) },
				kind:   gatehouse.KindToken, message: msgExpired},
			{name: "revoked",
				change: func(s *Service, _ *fakeStore, _ *clocktest.Clock, is Issued) { s.Revoke(ctx, is.Token) },
				kind:   gatehouse.KindUnauthorized, message: "Cannot renew: token has been revoked"},
			{name: "identity deleted",
				change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) { st.identityID = "" },
				kind:   gatehouse.KindUnauthorized, message: "Cannot renew: identity tokens have been revoked"},
			{name: "method detached",
				change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) {
					delete(st.bindings, gatehouse.AuthMethodAzure)
				},
				kind: gatehouse.KindUnauthorized, message: "Cannot renew: auth method has been revoked"},
			{name: "exhausted", policy: gatehouse.TokenPolicy{TTL: 60, NumUsesLimit: 2},
				change: func(s *Service, _ *fakeStore, _ *clocktest.Clock, is Issued) {
					s.Authenticate(ctx, is.Token, client)
					s.Authenticate(ctx, is.Token, client)
				},
				kind: gatehouse.KindUnauthorized, message: "Cannot renew exhausted access token"},
			{name: "outside the trusted IPs",
				change: func(_ *Service, st *fakeStore, _ *clocktest.Clock, _ Issued) { st.setTrustedIPs(t, "10.0.0.0/8") },
				kind:   gatehouse.KindForbidden, message: "You are not allowed to access this resource from the current IP address"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, st, clock := newTestService(t, 0)
				is := issue(t, s, tt.policy)
				tt.change(s, st, clock, is)
				_, err := s.Renew(ctx, is.Token, client)
				wantErr(t, err, tt.kind, tt.message)
			})
		}
	})

	t.Run("uses left carry over", func(t *testing.T) {
		s, _, _ := newTestService(t, 0)
		is := issue(t, s, gatehouse.TokenPolicy{TTL: 60, NumUsesLimit: 2})
		if _, _, err := s.Authenticate(ctx, is.Token, client); err != nil {
			t.Fatal(err)
		}
		r, err := s.Renew(ctx, is.Token, client)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Authenticate(ctx, r.Token, client); err != nil {
			t.Fatalf("second use, with the renewed token: %v", err)
		}
		_, _, err = s.Authenticate(ctx, r.Token, client)
		wantErr(t, err, gatehouse.KindUnauthorized, "Failed to authorize: token usage limit reached")
		_, _, err = s.Authenticate(ctx, is.Token, client)
		wantErr(t, err, gatehouse.KindUnauthorized, "Failed to authorize: token usage limit reached")
	})

	// A use through an older copy, made after a newer copy was issued,
	// must keep the counter for as long as the newer copy lives: else the
	// counter is purged while the newer copy can still be used, and the
	// use limit starts again from zero.
	t.Run("use counter outlives every copy", func(t *testing.T) {
		r := rand.New(rand.NewPCG(13, 13))
		for trial := 0; trial < 300; trial++ {
			p := randomPolicy(r)
			p.NumUsesLimit = 1 + r.Int64N(100)
			s, st, clock := newTestService(t, randomCeiling(r))
			copies := []Issued{issue(t, s, p)}
			for k := 0; k < 4; k++ {
				latest := copies[len(copies)-1]
				life := latest.Claims.ExpiresAt - clock.Now().Unix()
				if life <= 1 {
					break
				}
				clock.Advance(time.Duration(r.Int64N(life)) * time.Second)
				next, err := s.Renew(ctx, copies[r.IntN(len(copies))].Token, client)
				if err != nil {
					continue
				}
				copies = append(copies, next)
			}
			var alive []Issued
			for _, c := range copies {
				if c.Claims.ExpiresAt > clock.Now().Unix() {
					alive = append(alive, c)
				}
			}
			if len(alive) == 0 {
				continue
			}
			if _, _, err := s.Authenticate(ctx, alive[r.IntN(len(alive))].Token, client); err != nil {
				t.Fatal(err)
			}
			kept := st.usesExpiry[copies[0].Claims.ID]
			for _, c := range copies {
				if kept.Before(time.Unix(c.Claims.ExpiresAt, 0)) {
					t.Fatalf("trial %d, policy %+v: use counter kept until %v, before a copy expiring at %v",
						trial, p, kept.UTC(), time.Unix(c.Claims.ExpiresAt, 0).UTC())
				}
			}
		}
	})

	t.Run("wrong type", func(t *testing.T) {
		s, _, _ := newTestService(t, 0)
		raw := signClaims(t, testSecret, func(c *gatehouse.AccessTokenClaims) { c.AuthTokenType = "jwt" })
		_, err := s.Renew(ctx, raw, client)
		wantErr(t, err, gatehouse.KindInvalid, "Token is not an identity access token")
		err = s.Revoke(ctx, raw)
		wantErr(t, err, gatehouse.KindInvalid, "Token is not an identity access token")
		_, _, err = s.Authenticate(ctx, raw, client)
		if gatehouse.KindOf(err) != gatehouse.KindUnauthorized {
			t.Errorf("Authenticate with a token of another type: %v", err)
		}
	})
}

func TestRevoke(t *testing.T) {
	ctx := context.Background()

	t.Run("every copy", func(t *testing.T) {
		s, st, clock := newTestService(t, 0)
		is := issue(t, s, gatehouse.TokenPolicy{TTL: 60, MaxTTL: 600})
		clock.Advance(30 * time.Second)
		r, err := s.Renew(ctx, is.Token, client)
		if err != nil {
			t.Fatal(err)
		}
		// Revoking the older copy revokes the newer one too.
		if err := s.Revoke(ctx, is.Token); err != nil {
			t.Fatal(err)
		}
		for _, raw := range []string{is.Token, r.Token} {
			_, _, err := s.Authenticate(ctx, raw, client)
			wantErr(t, err, gatehouse.KindUnauthorized, "Failed to authorize: token has been revoked")
		}
		if exp := st.revoked[is.Claims.ID]; exp.Before(time.Unix(r.Claims.ExpiresAt, 0)) {
			t.Errorf("revocation marker expires at %v, before the renewed copy (%d)", exp, r.Claims.ExpiresAt)
		}
		// Revoking twice is not an error.
		if err := s.Revoke(ctx, r.Token); err != nil {
			t.Errorf("second revoke: %v", err)
		}
	})

	t.Run("expired", func(t *testing.T) {
		s, _, clock := newTestService(t, 0)
		is := issue(t, s, gatehouse.TokenPolicy{TTL: 60})
		clock.Advance(time.Minute)
		wantErr(t, s.Revoke(ctx, is.Token), gatehouse.KindToken, msgExpired)
	})

	// The marker outlives every copy of the token that can exist: whatever
	// the policy, and whichever live copy is used to revoke.
	t.Run("marker outlives every copy", func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 11))
		for trial := 0; trial < 500; trial++ {
			p := randomPolicy(r)
			s, st, clock := newTestService(t, randomCeiling(r))
			is := issue(t, s, p)
			copies := []Issued{is}
			latest := is
			for k := 0; k < 5; k++ {
				life := latest.Claims.ExpiresAt - clock.Now().Unix()
				if life <= 1 {
					break
				}
				clock.Advance(time.Duration(r.Int64N(life)) * time.Second)
				next, err := s.Renew(ctx, latest.Token, client)
				if err != nil {
					break
				}
				copies = append(copies, next)
				latest = next
			}
			// Revoke with a random copy that is still alive.
			var alive []Issued
			for _, c := range copies {
				if c.Claims.ExpiresAt > clock.Now().Unix() {
					alive = append(alive, c)
				}
			}
			if len(alive) == 0 {
				continue
			}
			if err := s.Revoke(ctx, alive[r.IntN(len(alive))].Token); err != nil {
				t.Fatal(err)
			}
			marker := st.revoked[is.Claims.ID]
			for _, c := range copies {
				if marker.Before(time.Unix(c.Claims.ExpiresAt, 0)) {
					t.Fatalf("trial %d, policy %+v: marker expires at %v, before a copy expiring at %d",
						trial, p, marker, c.Claims.ExpiresAt)
				}
			}
		}
	})
}

// signClaims signs the claims of a valid token, changed by change, with key.
func signClaims(t testing.TB, key []byte, change func(c *gatehouse.AccessTokenClaims)) string {
	t.Helper()
	c := &gatehouse.AccessTokenClaims{
		IdentityID: testIdentityID, AuthMethod: gatehouse.AuthMethodAzure, AuthMethodID: testBindingID,
		OrgID: testOrgID, RootOrgID: testOrgID, ParentOrgID: testOrgID,
		IdentityAccessTokenID: "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a", ID: "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
		AccessTokenTTL: 3600, AccessTokenMaxTTL: 3600, CreationEpoch: start.Unix(),
		AuthTokenType: gatehouse.AuthTokenTypeIdentity, IdentityAuth: map[string]any{},
		IssuedAt: start.Unix(), ExpiresAt: start.Unix() + 3600,
	}
	if change != nil {
		change(c)
	}
	raw, err := sign(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// signRaw signs an arbitrary header and payload (JSON) with HMAC.
func signRaw(key []byte, header, payload string, h func() hash.Hash) string {
	msg := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	mac := hmac.New(h, key)
	mac.Write([]byte(msg))
	return msg + "." + b64.EncodeToString(mac.Sum(nil))
}

func TestMissingCoreClaims(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestService(t, 0)
	tests := map[string]func(c *gatehouse.AccessTokenClaims){
		"identityId":            func(c *gatehouse.AccessTokenClaims) { c.IdentityID = "" },
		"jti":                   func(c *gatehouse.AccessTokenClaims) { c.ID = "" },
		"identityAccessTokenId": func(c *gatehouse.AccessTokenClaims) { c.IdentityAccessTokenID = "" },
		"jti other than identityAccessTokenId": func(c *gatehouse.AccessTokenClaims) {
			c.IdentityAccessTokenID = "00000000-0000-4000-8000-000000000000"
		},
		"iat":           func(c *gatehouse.AccessTokenClaims) { c.IssuedAt = 0 },
		"exp":           func(c *gatehouse.AccessTokenClaims) { c.ExpiresAt = 0 },
		"creationEpoch": func(c *gatehouse.AccessTokenClaims) { c.CreationEpoch = 0 },
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			raw := signClaims(t, testSecret, change)
			_, _, err := s.Authenticate(ctx, raw, client)
			wantErr(t, err, gatehouse.KindUnauthorized, msgClaims)
			_, err = s.Renew(ctx, raw, client)
			wantErr(t, err, gatehouse.KindUnauthorized, msgClaims)
			wantErr(t, s.Revoke(ctx, raw), gatehouse.KindUnauthorized, msgClaims)
		})
	}
	// Absent from the JSON altogether, rather than empty.
	payload := `{"identityId":"` + testIdentityID + `","authTokenType":"identityAccessToken","exp":` +
		jsonInt(start.Unix()+60) + `,"iat":` + jsonInt(start.Unix()) + `}`
	raw := signRaw(testSecret, `{"alg":"HS256","typ":"JWT"}`, payload, sha256.New)
	_, _, err := s.Authenticate(ctx, raw, client)
	wantErr(t, err, gatehouse.KindUnauthorized, msgClaims)
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestSignVerifyRoundTrip(t *testing.T) {
	s, _, _ := newTestService(t, 0)
	for _, p := range []gatehouse.TokenPolicy{{}, {TTL: 60, MaxTTL: 120, NumUsesLimit: 3}, {Period: 30}} {
		is := issue(t, s, p)
		got, err := verify(testSecret, is.Token)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, is.Claims) {
			t.Errorf("verify(sign(c)) = %+v, want %+v", got, is.Claims)
		}
		again, err := sign(testSecret, got)
		if err != nil || again != is.Token {
			t.Errorf("signing the verified claims again gives another token")
		}
	}
	// Other libraries write the header differently; HS256 is all that counts.
	raw := signRaw(testSecret, `{ "typ": "JWT", "alg": "HS256", "kid": "x" }`, `{"identityId":"i","jti":"j"}`, sha256.New)
	if c, err := verify(testSecret, raw); err != nil || c.IdentityID != "i" {
		t.Errorf("HS256 token with another header layout: %v", err)
	}
}

// TestVerifyRejectsEveryMutation changes every byte of a valid token to
// every other byte value, and also drops, doubles and inserts bytes: not one
// of the results may verify.
func TestVerifyRejectsEveryMutation(t *testing.T) {
	s, _, _ := newTestService(t, 0)
	raw := issue(t, s, gatehouse.TokenPolicy{TTL: 60, NumUsesLimit: 1}).Token
	if _, err := verify(testSecret, raw); err != nil {
		t.Fatal(err)
	}
	check := func(what string, mutated string) {
		t.Helper()
		if mutated == raw {
			return
		}
		c, err := verify(testSecret, mutated)
		if err == nil {
			t.Fatalf("%s: verify accepted %q", what, mutated)
		}
		if c != nil || gatehouse.KindOf(err) != gatehouse.KindToken {
			t.Fatalf("%s: claims %v, error %v; want a token error and no claims", what, c, err)
		}
	}
	b := []byte(raw)
	for i := range b {
		orig := b[i]
		for v := 0; v < 256; v++ {
			b[i] = byte(v)
			check("byte "+itoa(i)+" set to "+itoa(v), string(b))
		}
		b[i] = orig
		check("byte "+itoa(i)+" dropped", raw[:i]+raw[i+1:])
		check("byte "+itoa(i)+" doubled", raw[:i+1]+raw[i:])
		for _, ins := range []string{"\n", "\r", "=", " ", "A", "."} {
			check("inserted "+ins+" at "+itoa(i), raw[:i]+ins+raw[i:])
		}
	}
	check("appended newline", raw+"\n")
	check("appended =", raw+"=")
	check("appended A", raw+"A")
}

func itoa(n int) string { return jsonInt(int64(n)) }

func TestVerifyForgeries(t *testing.T) {
	valid := signClaims(t, testSecret, nil)
	head, rest, _ := strings.Cut(valid, ".")
	payload, _, _ := strings.Cut(rest, ".")
	claims, _ := b64.DecodeString(payload)
	otherKey := []byte("another server's secret, 32 bytes or more")
	tests := []struct {
		name, raw, message string
	}{
		{"changed claims, old signature", head + "." + b64.EncodeToString([]byte(strings.Replace(string(claims), testIdentityID, "7f1c2a4e-1b2c-4d3e-8f4a-5b6c7d8e9f01", 1))) + "." + strings.Split(valid, ".")[2], msgSignature},
		{"other key", signClaims(t, otherKey, nil), msgSignature},
		{"no signature", head + "." + payload + ".", msgSignature},
		{"alg none", b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payload + ".", msgAlgorithm},
		{"alg None", b64.EncodeToString([]byte(`{"alg":"None"}`)) + "." + payload + ".", msgAlgorithm},
		{"alg missing", signRaw(testSecret, `{"typ":"JWT"}`, string(claims), sha256.New), msgAlgorithm},
		{"alg hs256", signRaw(testSecret, `{"alg":"hs256"}`, string(claims), sha256.New), msgAlgorithm},
		{"HS512 with the right key", signRaw(testSecret, `{"alg":"HS512","typ":"JWT"}`, string(claims), sha512.New), msgAlgorithm},
		{"HS512 header on an HS256 signature", signRaw(testSecret, `{"alg":"HS512","typ":"JWT"}`, string(claims), sha256.New), msgAlgorithm},
		{"RS256", b64.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","kid":"k"}`)) + "." + payload + "." + b64.EncodeToString(make([]byte, 256)), msgAlgorithm},
		{"crit header", signRaw(testSecret, `{"alg":"HS256","crit":["exp"]}`, string(claims), sha256.New), msgAlgorithm},
		{"header not JSON", signRaw(testSecret, `alg=HS256`, string(claims), sha256.New), msgMalformed},
		{"header not base64", "!!!." + payload + ".AAAA", msgMalformed},
		{"empty", "", msgMalformed},
		{"garbage", "garbage", msgMalformed},
		{"one dot", head + "." + payload, msgMalformed},
		{"four parts", valid + ".x", msgMalformed},
		{"dots only", "..", msgMalformed},
		{"signature not base64", head + "." + payload + ".$$$", msgMalformed},
		{"payload not JSON, signed", signRaw(testSecret, `{"alg":"HS256"}`, "not json", sha256.New), msgMalformed},
		{"payload an array, signed", signRaw(testSecret, `{"alg":"HS256"}`, "[1,2]", sha256.New), msgMalformed},
		{"payload with trailing data, signed", signRaw(testSecret, `{"alg":"HS256"}`, string(claims)+"{}", sha256.New), msgMalformed},
		{"payload with a claim of the wrong type, signed", signRaw(testSecret, `{"alg":"HS256"}`, `{"identityId":1}`, sha256.New), msgMalformed},
		{"oversized", head + "." + strings.Repeat("A", maxTokenSize) + ".AAAA", msgMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := verify(testSecret, tt.raw)
			wantErr(t, err, gatehouse.KindToken, tt.message)
			if c != nil {
				t.Errorf("claims returned for a forgery: %+v", c)
			}
		})
	}
}

func TestNewService(t *testing.T) {
	if _, err := NewService(Config{Secret: make([]byte, MinSecretSize-1), Store: newFakeStore()}); err == nil {
		t.Error("a secret shorter than MinSecretSize was accepted")
	}
	s, err := NewService(Config{Secret: make([]byte, MinSecretSize), Store: newFakeStore()})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ceiling() != gatehouse.DefaultTokenCeiling || s.Ceiling() != 90*24*time.Hour {
		t.Errorf("default ceiling %v, want 90 days", s.Ceiling())
	}
	a, err := NewSecret()
	if err != nil || len(a) < MinSecretSize {
		t.Fatalf("NewSecret: %d bytes, %v", len(a), err)
	}
	b, _ := NewSecret()
	if string(a) == string(b) {
		t.Error("NewSecret returned the same secret twice")
	}
	// Changing the secret given to NewService afterwards changes nothing.
	secret := append([]byte(nil), testSecret...)
	s, _ = NewService(Config{Secret: secret, Store: newFakeStore(), Clock: clocktest.New(start)})
	is, _ := s.Issue(testIdentity(), azureBinding(gatehouse.TokenPolicy{}))
	secret[0] ^= 1
	if _, err := verify(testSecret, is.Token); err != nil {
		t.Errorf("token not signed with the secret given: %v", err)
	}
}
