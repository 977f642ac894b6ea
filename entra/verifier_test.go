package entra

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/entratest"
)

const (
	tenant   = entratest.DefaultTenant
	resource = entratest.DefaultAudience
)

// t0 is the fake clock's start. Tokens are minted relative to it.
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// newVerifier returns a verifier of srv's tokens on a fake clock at t0,
// with the background loop off; tests call sweep themselves.
func newVerifier(t testing.TB, srv *entratest.Server, edit ...func(*Config)) (*Verifier, *clocktest.Clock) {
	t.Helper()
	clock := clocktest.New(t0)
	cfg := Config{AuthorityHost: srv.URL(), Clock: clock, sweepInterval: -1}
	for _, f := range edit {
		f(&cfg)
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	t.Cleanup(v.Close)
	return v, clock
}

// wantError fails unless err is a *gatehouse.Error of kind with message msg.
func wantError(t testing.TB, err error, kind gatehouse.Kind, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %d %q", kind, msg)
	}
	if gatehouse.KindOf(err) != kind || gatehouse.ErrorMessage(err) != msg {
		t.Fatalf("got error kind %d message %q, want kind %d message %q", gatehouse.KindOf(err), gatehouse.ErrorMessage(err), kind, msg)
	}
}

// waitFor polls cond until it holds or 10 s have passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestVerifyAccepts(t *testing.T) {
	srv := entratest.New(t)
	nbfSoon := t0.Add(30 * time.Second)
	tests := []struct {
		name     string
		cloud    string
		opts     entratest.TokenOptions
		resource string
		wantIss  string
	}{
		{name: "v1 public", opts: entratest.TokenOptions{Version: 1}, wantIss: "https://sts.windows.net/" + tenant + "/"},
		{name: "v2 public", opts: entratest.TokenOptions{Version: 2}, wantIss: "https://login.microsoftonline.com/" + tenant + "/v2.0"},
		{name: "v1 usgovernment", cloud: "usgovernment", opts: entratest.TokenOptions{Version: 1, Cloud: "usgovernment"}, wantIss: "https://sts.windows.net/" + tenant + "/"},
		{name: "v2 usgovernment", cloud: "usgovernment", opts: entratest.TokenOptions{Version: 2, Cloud: "usgovernment"}, wantIss: "https://login.microsoftonline.us/" + tenant + "/v2.0"},
		{name: "v1 china", cloud: "china", opts: entratest.TokenOptions{Version: 1, Cloud: "china"}, wantIss: "https://sts.chinacloudapi.cn/" + tenant + "/"},
		{name: "v2 china", cloud: "china", opts: entratest.TokenOptions{Version: 2, Cloud: "china"}, wantIss: "https://login.chinacloudapi.cn/" + tenant + "/v2.0"},
		{name: "v2 china partner host", cloud: "china", opts: entratest.TokenOptions{Version: 2, Issuer: "https://login.partner.microsoftonline.cn/" + tenant + "/v2.0"}, wantIss: "https://login.partner.microsoftonline.cn/" + tenant + "/v2.0"},
		{name: "aud with slash, resource without", opts: entratest.TokenOptions{Audience: "https://management.azure.com/"}, resource: "https://management.azure.com", wantIss: "https://sts.windows.net/" + tenant + "/"},
		{name: "aud without slash, resource with", opts: entratest.TokenOptions{Audience: "https://management.azure.com"}, resource: "https://management.azure.com/", wantIss: "https://sts.windows.net/" + tenant + "/"},
		{name: "v2 app id audience", opts: entratest.TokenOptions{Version: 2, Audience: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"}, resource: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", wantIss: "https://login.microsoftonline.com/" + tenant + "/v2.0"},
		{name: "nbf within leeway", opts: entratest.TokenOptions{NotBefore: &nbfSoon}, wantIss: "https://sts.windows.net/" + tenant + "/"},
		{name: "exp within leeway", opts: entratest.TokenOptions{IssuedAt: t0.Add(-time.Hour), Lifetime: time.Hour - 30*time.Second}, wantIss: "https://sts.windows.net/" + tenant + "/"},
		{name: "no nbf", opts: entratest.TokenOptions{ExtraClaims: map[string]any{"nbf": nil}}, wantIss: "https://sts.windows.net/" + tenant + "/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cloud, err := CloudByName(tc.cloud)
			if err != nil {
				t.Fatal(err)
			}
			v, _ := newVerifier(t, srv, func(c *Config) { c.Cloud = cloud })
			if tc.opts.IssuedAt.IsZero() {
				tc.opts.IssuedAt = t0
			}
			if tc.resource == "" {
				tc.resource = resource
			}
			claims, err := v.Verify(context.Background(), srv.Mint(tc.opts), tenant, tc.resource)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if claims.Issuer != tc.wantIss {
				t.Errorf("Issuer = %q, want %q", claims.Issuer, tc.wantIss)
			}
		})
	}
}

func TestVerifyReturnsClaims(t *testing.T) {
	srv := entratest.New(t)
	v, _ := newVerifier(t, srv)
	for _, version := range []int{1, 2} {
		tok := srv.Mint(entratest.TokenOptions{Version: version, ObjectID: "oid-1", AppID: "app-1", IssuedAt: t0, Lifetime: time.Hour})
		got, err := v.Verify(context.Background(), tok, tenant, resource)
		if err != nil {
			t.Fatalf("v%d: %v", version, err)
		}
		want := Claims{
			Issuer:                    entratest.Issuer("public", tenant, version),
			TenantID:                  tenant,
			ObjectID:                  "oid-1",
			Subject:                   "oid-1",
			AppID:                     "app-1",
			IdentityType:              "app",
			Version:                   fmt.Sprintf("%d.0", version),
			Audience:                  resource,
			ManagedIdentityResourceID: entratest.DefaultResourceID,
			IssuedAt:                  t0,
			NotBefore:                 t0,
			ExpiresAt:                 t0.Add(time.Hour),
		}
		if !got.IssuedAt.Equal(want.IssuedAt) || !got.NotBefore.Equal(want.NotBefore) || !got.ExpiresAt.Equal(want.ExpiresAt) {
			t.Errorf("v%d times = %v %v %v, want %v %v %v", version, got.IssuedAt, got.NotBefore, got.ExpiresAt, want.IssuedAt, want.NotBefore, want.ExpiresAt)
		}
		got.IssuedAt, got.NotBefore, got.ExpiresAt = want.IssuedAt, want.NotBefore, want.ExpiresAt
		if *got != want {
			t.Errorf("v%d claims = %+v\nwant %+v", version, *got, want)
		}
	}
}

// b64 is base64url without padding, as in a JWT.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// withPayload replaces the payload of tok, keeping its header and signature.
func withPayload(tok, payload string) string {
	parts := strings.Split(tok, ".")
	return parts[0] + "." + b64(payload) + "." + parts[2]
}

func TestVerifyRejects(t *testing.T) {
	srv := entratest.New(t)
	mint := func(o entratest.TokenOptions) string {
		if o.IssuedAt.IsZero() {
			o.IssuedAt = t0
		}
		return srv.Mint(o)
	}
	valid := mint(entratest.TokenOptions{})
	parts := strings.Split(valid, ".")
	header := parts[0]
	later := t0.Add(2 * time.Minute)
	otherTenant := "11111111-2222-3333-4444-555555555555"

	const (
		malformed = "jwt malformed"
		badAlg    = "The access token is signed with an invalid algorithm. Please provide a valid token and try again."
		badKey    = "Invalid signing key"
		badSig    = "invalid signature"
		notActive = "jwt not active"
		expired   = "Your token has expired. Please re-authenticate."
		badAud    = "jwt audience invalid. expected: " + resource
		badIss    = "jwt issuer invalid. expected: https://sts.windows.net/" + tenant + "/"
	)
	tests := []struct {
		name  string
		token string
		kind  gatehouse.Kind
		msg   string
	}{
		{"empty", "", gatehouse.KindToken, malformed},
		{"one part", "abc", gatehouse.KindToken, malformed},
		{"two parts", parts[0] + "." + parts[1], gatehouse.KindToken, malformed},
		{"four parts", valid + ".x", gatehouse.KindToken, malformed},
		{"many dots", strings.Repeat(".", 5000), gatehouse.KindToken, malformed},
		{"header not base64url", "*." + parts[1] + "." + parts[2], gatehouse.KindToken, malformed},
		{"header padded", header + "==." + parts[1] + "." + parts[2], gatehouse.KindToken, malformed},
		{"header not json", b64("RS256") + "." + parts[1] + "." + parts[2], gatehouse.KindToken, malformed},
		{"header is an array", b64(`["RS256"]`) + "." + parts[1] + "." + parts[2], gatehouse.KindToken, malformed},
		{"payload not base64url", header + ".%%%." + parts[2], gatehouse.KindToken, malformed},
		{"payload null", withPayload(valid, "null"), gatehouse.KindToken, malformed},
		{"payload a string", withPayload(valid, `"x"`), gatehouse.KindToken, malformed},
		{"payload an array", withPayload(valid, `[1]`), gatehouse.KindToken, malformed},
		{"payload truncated", withPayload(valid, `{"aud":"x"`), gatehouse.KindToken, malformed},
		{"aud an array", mint(entratest.TokenOptions{ExtraClaims: map[string]any{"aud": []string{resource}}}), gatehouse.KindToken, malformed},
		{"exp a string", mint(entratest.TokenOptions{ExtraClaims: map[string]any{"exp": "tomorrow"}}), gatehouse.KindToken, malformed},
		{"oversized", mint(entratest.TokenOptions{ExtraClaims: map[string]any{"pad": strings.Repeat("a", MaxTokenSize)}}), gatehouse.KindToken, malformed},
		{"malformed before bad alg", b64(`{"alg":"none"}`) + ".e30", gatehouse.KindToken, malformed},

		{"alg none", mint(entratest.TokenOptions{Alg: "none"}), gatehouse.KindToken, badAlg},
		{"alg HS256 with the public key", mint(entratest.TokenOptions{Alg: "HS256"}), gatehouse.KindToken, badAlg},
		{"alg RS384", mint(entratest.TokenOptions{Alg: "RS384"}), gatehouse.KindToken, badAlg},
		{"alg RS512", mint(entratest.TokenOptions{Alg: "RS512"}), gatehouse.KindToken, badAlg},
		{"alg PS256", mint(entratest.TokenOptions{Alg: "PS256"}), gatehouse.KindToken, badAlg},
		{"alg ES256", mint(entratest.TokenOptions{Alg: "ES256"}), gatehouse.KindToken, badAlg},
		{"alg lower case", mint(entratest.TokenOptions{Alg: "rs256"}), gatehouse.KindToken, badAlg},
		{"alg missing", b64(`{"typ":"JWT","kid":"`+srv.KeyID()+`"}`) + "." + parts[1] + "." + parts[2], gatehouse.KindToken, badAlg},
		{"bad alg before unknown kid", mint(entratest.TokenOptions{Alg: "HS256", Kid: "nope"}), gatehouse.KindToken, badAlg},

		{"kid missing", b64(`{"typ":"JWT","alg":"RS256"}`) + "." + parts[1] + "." + parts[2], gatehouse.KindUnauthorized, badKey},
		{"kid unknown", mint(entratest.TokenOptions{Kid: "unknown-kid"}), gatehouse.KindUnauthorized, badKey},

		{"payload tampered", withPayload(valid, `{"aud":"`+resource+`","iss":"https://sts.windows.net/`+tenant+`/","exp":9999999999,"oid":"someone-else"}`), gatehouse.KindToken, badSig},
		{"signature missing", parts[0] + "." + parts[1] + ".", gatehouse.KindToken, badSig},
		{"signature not base64url", parts[0] + "." + parts[1] + ".!!!", gatehouse.KindToken, badSig},
		{"signature truncated", parts[0] + "." + parts[1] + "." + parts[2][:100], gatehouse.KindToken, badSig},
		{"signature too long", parts[0] + "." + parts[1] + "." + strings.Repeat("A", 2000), gatehouse.KindToken, badSig},
		{"signature before expiry", withPayload(valid, `{"exp":1}`), gatehouse.KindToken, badSig},

		{"nbf beyond leeway", mint(entratest.TokenOptions{NotBefore: &later}), gatehouse.KindToken, notActive},
		{"nbf before expiry", mint(entratest.TokenOptions{NotBefore: &later, IssuedAt: t0.Add(-2 * time.Hour), Lifetime: time.Hour}), gatehouse.KindToken, notActive},
		{"exp beyond leeway", mint(entratest.TokenOptions{IssuedAt: t0.Add(-time.Hour), Lifetime: time.Hour - 61*time.Second}), gatehouse.KindToken, expired},
		{"exp missing", mint(entratest.TokenOptions{ExtraClaims: map[string]any{"exp": nil}}), gatehouse.KindToken, expired},
		{"expiry before audience", mint(entratest.TokenOptions{Audience: "https://other/", IssuedAt: t0.Add(-48 * time.Hour)}), gatehouse.KindToken, expired},

		{"aud other", mint(entratest.TokenOptions{Audience: "https://vault.azure.net"}), gatehouse.KindToken, badAud},
		{"aud missing", mint(entratest.TokenOptions{ExtraClaims: map[string]any{"aud": nil}}), gatehouse.KindToken, badAud},
		{"aud two slashes", mint(entratest.TokenOptions{Audience: resource + "/"}), gatehouse.KindToken, badAud},
		{"aud prefix", mint(entratest.TokenOptions{Audience: "https://management.azure.co"}), gatehouse.KindToken, badAud},
		{"audience before issuer", mint(entratest.TokenOptions{Audience: "x", Tenant: otherTenant}), gatehouse.KindToken, badAud},

		{"iss other tenant", mint(entratest.TokenOptions{Tenant: otherTenant}), gatehouse.KindToken, badIss},
		{"iss v2 other tenant", mint(entratest.TokenOptions{Version: 2, Tenant: otherTenant}), gatehouse.KindToken, badIss},
		{"iss china v1", mint(entratest.TokenOptions{Cloud: "china"}), gatehouse.KindToken, badIss},
		{"iss usgovernment v2", mint(entratest.TokenOptions{Version: 2, Cloud: "usgovernment"}), gatehouse.KindToken, badIss},
		{"iss the authority host", mint(entratest.TokenOptions{Issuer: srv.URL() + "/" + tenant + "/v2.0"}), gatehouse.KindToken, badIss},
		{"iss without trailing slash", mint(entratest.TokenOptions{Issuer: "https://sts.windows.net/" + tenant}), gatehouse.KindToken, badIss},
		{"iss upper-case tenant", mint(entratest.TokenOptions{Issuer: "https://sts.windows.net/" + strings.ToUpper(tenant) + "/"}), gatehouse.KindToken, badIss},
		{"iss missing", mint(entratest.TokenOptions{ExtraClaims: map[string]any{"iss": nil}}), gatehouse.KindToken, badIss},
	}
	v, _ := newVerifier(t, srv)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			claims, err := v.Verify(context.Background(), tc.token, tenant, resource)
			wantError(t, err, tc.kind, tc.msg)
			if claims != nil {
				t.Errorf("claims = %+v, want nil", claims)
			}
		})
	}
}

func TestVerifyRejectsBadTenantID(t *testing.T) {
	srv := entratest.New(t)
	v, _ := newVerifier(t, srv)
	tok := srv.Mint(entratest.TokenOptions{IssuedAt: t0})
	for _, tid := range []string{"", "../common", "a/b", "x?y", ".hidden", "a..b", "tenant id"} {
		_, err := v.Verify(context.Background(), tok, tid, resource)
		wantError(t, err, gatehouse.KindInvalid, "Invalid tenant ID")
	}
	if n := srv.Requests(); n != 0 {
		t.Errorf("key requests = %d, want 0", n)
	}
}

func TestLeeway(t *testing.T) {
	srv := entratest.New(t)
	tests := []struct {
		name    string
		leeway  time.Duration
		skew    time.Duration // exp - now (negative: expired) and nbf - now
		wantErr string
	}{
		{"default accepts exp 59s ago", 0, -59 * time.Second, ""},
		{"default rejects exp 60s ago", 0, -60 * time.Second, "Your token has expired. Please re-authenticate."},
		{"NoLeeway rejects exp now", NoLeeway, 0, "Your token has expired. Please re-authenticate."},
		{"NoLeeway accepts exp in 1s", NoLeeway, time.Second, ""},
		{"5m accepts exp 4m ago", 5 * time.Minute, -4 * time.Minute, ""},
		{"5m rejects exp 6m ago", 5 * time.Minute, -6 * time.Minute, "Your token has expired. Please re-authenticate."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := newVerifier(t, srv, func(c *Config) { c.Leeway = tc.leeway })
			exp := t0.Add(tc.skew)
			tok := srv.Mint(entratest.TokenOptions{IssuedAt: exp.Add(-time.Hour), Lifetime: time.Hour})
			_, err := v.Verify(context.Background(), tok, tenant, resource)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tc.wantErr != "" {
				wantError(t, err, gatehouse.KindToken, tc.wantErr)
			}
		})
	}
	t.Run("nbf", func(t *testing.T) {
		for _, tc := range []struct {
			leeway, nbf time.Duration
			ok          bool
		}{{0, 60 * time.Second, true}, {0, 61 * time.Second, false}, {NoLeeway, 0, true}, {NoLeeway, time.Second, false}} {
			v, _ := newVerifier(t, srv, func(c *Config) { c.Leeway = tc.leeway })
			nbf := t0.Add(tc.nbf)
			_, err := v.Verify(context.Background(), srv.Mint(entratest.TokenOptions{IssuedAt: t0, NotBefore: &nbf}), tenant, resource)
			if tc.ok && err != nil {
				t.Errorf("leeway %v nbf now+%v: %v", tc.leeway, tc.nbf, err)
			}
			if !tc.ok {
				wantError(t, err, gatehouse.KindToken, "jwt not active")
			}
		}
	})
}

func TestKeyFormats(t *testing.T) {
	for _, tc := range []struct {
		name    string
		x5c, ne bool
	}{{"x5c only", true, false}, {"n and e only", false, true}, {"both", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := entratest.New(t)
			srv.SetKeyFormat(tc.x5c, tc.ne)
			v, _ := newVerifier(t, srv)
			if _, err := v.Verify(context.Background(), srv.Mint(entratest.TokenOptions{IssuedAt: t0}), tenant, resource); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

// jwks fetches srv's key set, for tests that serve an edited copy.
func jwks(t *testing.T, srv *entratest.Server) map[string][]map[string]any {
	t.Helper()
	resp, err := http.Get(srv.URL() + "/" + tenant + "/discovery/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string][]map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestKeySetProblems(t *testing.T) {
	srv := entratest.New(t)
	key := jwks(t, srv)["keys"][0]
	srv.RotateKeys()
	other := jwks(t, srv)["keys"][0]
	// edit returns srv's first key set, with the one key edited by f.
	edit := func(f func(k map[string]any)) string {
		k := map[string]any{}
		for n, v := range key {
			k[n] = v
		}
		f(k)
		b, _ := json.Marshal(map[string]any{"keys": []any{k}})
		return string(b)
	}
	tests := []struct {
		name   string
		status int
		body   string
		ok     bool
	}{
		{"unedited", 200, edit(func(map[string]any) {}), true},
		{"x5c and n disagree", 200, edit(func(k map[string]any) { k["n"] = other["n"] }), false},
		{"x5c not a certificate", 200, edit(func(k map[string]any) { k["x5c"] = []string{"AAAA"} }), false},
		{"not RSA", 200, edit(func(k map[string]any) { k["kty"] = "EC" }), false},
		{"encryption key", 200, edit(func(k map[string]any) { k["use"] = "enc" }), false},
		{"small key", 200, edit(func(k map[string]any) { delete(k, "x5c"); k["n"] = b64(strings.Repeat("\xff", 128)) }), false},
		{"even exponent", 200, edit(func(k map[string]any) { delete(k, "x5c"); k["e"] = b64("\x02") }), false},
		{"no key material", 200, edit(func(k map[string]any) { delete(k, "x5c"); delete(k, "n"); delete(k, "e") }), false},
		{"empty set", 200, `{"keys":[]}`, false},
		{"not JSON", 200, `<html>`, false},
		{"unknown tenant", 400, `{"error":"invalid_tenant","error_description":"AADSTS90002: Tenant 'x' not found."}`, false},
		{"server error", 500, `oops`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := entratest.New(t) // signs with the key of the edited set
			srv.SetKeyResponse(tc.status, tc.body)
			v, _ := newVerifier(t, srv)
			_, err := v.Verify(context.Background(), srv.Mint(entratest.TokenOptions{IssuedAt: t0}), tenant, resource)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantError(t, err, gatehouse.KindUnavailable, "Unable to fetch signing keys from Entra ID")
			if st := v.Stats(); st.Fetches != 1 || st.FetchErrors != 1 {
				t.Errorf("stats = %+v, want 1 fetch, 1 error", st)
			}
		})
	}
}

func TestWarmCacheFetchesOnce(t *testing.T) {
	srv := entratest.New(t)
	v, clock := newVerifier(t, srv)
	tok := srv.Mint(entratest.TokenOptions{IssuedAt: t0})
	for i := range 100 {
		if _, err := v.Verify(context.Background(), tok, tenant, resource); err != nil {
			t.Fatalf("verify %d: %v", i, err)
		}
		clock.Advance(time.Second) // 100 s: well within 80% of KeyTTL
	}
	if n := srv.Requests(); n != 1 {
		t.Errorf("key requests = %d, want 1", n)
	}
	if st := v.Stats(); st.Fetches != 1 || st.Tenants != 1 {
		t.Errorf("stats = %+v, want 1 fetch and 1 tenant", st)
	}
}

func TestRotatedKeyAcceptedAfterOneRefetch(t *testing.T) {
	srv := entratest.New(t)
	v, clock := newVerifier(t, srv)
	oldTok := srv.Mint(entratest.TokenOptions{IssuedAt: t0})
	if _, err := v.Verify(context.Background(), oldTok, tenant, resource); err != nil {
		t.Fatal(err)
	}
	srv.RotateKeys()
	newTok := srv.Mint(entratest.TokenOptions{IssuedAt: t0})

	// Within MinRefetchInterval of the first fetch, the new kid is refused
	// without a fetch.
	_, err := v.Verify(context.Background(), newTok, tenant, resource)
	wantError(t, err, gatehouse.KindUnauthorized, "Invalid signing key")
	if n := srv.Requests(); n != 1 {
		t.Fatalf("key requests = %d, want 1", n)
	}

	clock.Advance(5 * time.Second)
	if _, err := v.Verify(context.Background(), newTok, tenant, resource); err != nil {
		t.Fatalf("new key after refetch: %v", err)
	}
	if n := srv.Requests(); n != 2 {
		t.Errorf("key requests = %d, want 2", n)
	}
	// The old key left the set with the refetch.
	_, err = v.Verify(context.Background(), oldTok, tenant, resource)
	wantError(t, err, gatehouse.KindUnauthorized, "Invalid signing key")
}

func TestUnknownKidFloodIsRateLimited(t *testing.T) {
	srv := entratest.New(t)
	v, clock := newVerifier(t, srv)
	ctx := context.Background()
	flood := func(n int) {
		for i := range n {
			tok := srv.Mint(entratest.TokenOptions{IssuedAt: t0, Kid: fmt.Sprintf("random-%d", i)})
			_, err := v.Verify(ctx, tok, tenant, resource)
			wantError(t, err, gatehouse.KindUnauthorized, "Invalid signing key")
		}
	}
	flood(200)
	if n := srv.Requests(); n != 1 {
		t.Fatalf("after a flood in one instant: key requests = %d, want 1", n)
	}
	clock.Advance(5 * time.Second)
	flood(200)
	if n := srv.Requests(); n != 2 {
		t.Fatalf("after a second flood 5s later: key requests = %d, want 2", n)
	}
	st := v.Stats()
	if st.UnknownKeyIDs != 399 || st.RateLimited != 398 {
		t.Errorf("stats = %+v, want 399 unknown kids and 398 rate-limited", st)
	}
	// A real token still verifies, from the cache.
	if _, err := v.Verify(ctx, srv.Mint(entratest.TokenOptions{IssuedAt: t0}), tenant, resource); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentUnknownKidFetchesOnce(t *testing.T) {
	srv := entratest.New(t)
	v, clock := newVerifier(t, srv)
	ctx := context.Background()
	if _, err := v.Verify(ctx, srv.Mint(entratest.TokenOptions{IssuedAt: t0}), tenant, resource); err != nil {
		t.Fatal(err)
	}
	srv.RotateKeysKeepOld()
	clock.Advance(time.Minute)
	tok := srv.Mint(entratest.TokenOptions{IssuedAt: t0})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			_, err := v.Verify(ctx, tok, tenant, resource)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
	if n := srv.Requests(); n != 2 {
		t.Errorf("key requests = %d, want 2 (initial + one refetch)", n)
	}
}

func TestColdConcurrentVerifiesFetchOnce(t *testing.T) {
	srv := entratest.New(t)
	v, _ := newVerifier(t, srv)
	tok := srv.Mint(entratest.TokenOptions{IssuedAt: t0})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tok, tenant, resource); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
	wg.Wait()
	if n := srv.Requests(); n != 1 {
		t.Errorf("key requests = %d, want 1", n)
	}
}

func TestKeysKeepWorkingWhileEntraIsDown(t *testing.T) {
	srv := entratest.New(t)
	v, clock := newVerifier(t, srv)
	ctx := context.Background()
	if _, err := v.Verify(ctx, srv.Mint(entratest.TokenOptions{IssuedAt: t0}), tenant, resource); err != nil {
		t.Fatal(err)
	}
	srv.SetDown(true)
	for day := 1; day <= 3; day++ {
		clock.Advance(24 * time.Hour) // keys far past KeyTTL
		tok := srv.Mint(entratest.TokenOptions{IssuedAt: clock.Now()})
		if _, err := v.Verify(ctx, tok, tenant, resource); err != nil {
			t.Fatalf("day %d: %v", day, err)
		}
		want := int64(1 + day)
		waitFor(t, "the failed refresh", func() bool { return v.Stats().Fetches == want })
		if st := v.Stats(); st.FetchErrors != want-1 {
			t.Fatalf("day %d: stats = %+v", day, st)
		}
	}
	// Service returns: the next refresh succeeds and the keys are fresh again.
	srv.SetDown(false)
	srv.RotateKeysKeepOld()
	clock.Advance(time.Minute)
	v.sweep(clock.Now())
	waitFor(t, "the refresh", func() bool { return v.Stats().Fetches == 5 })
	if _, err := v.Verify(ctx, srv.Mint(entratest.TokenOptions{IssuedAt: clock.Now()}), tenant, resource); err != nil {
		t.Fatal(err)
	}
	if n := srv.Requests(); n != 5 {
		t.Errorf("key requests = %d, want 5", n)
	}
}

func TestBackgroundRefresh(t *testing.T) {
	t.Run("on use at 80% of KeyTTL", func(t *testing.T) {
		srv := entratest.New(t)
		v, clock := newVerifier(t, srv)
		ctx := context.Background()
		oldTok := srv.Mint(entratest.TokenOptions{IssuedAt: t0})
		if _, err := v.Verify(ctx, oldTok, tenant, resource); err != nil {
			t.Fatal(err)
		}
		srv.RotateKeysKeepOld()
		clock.Advance(47 * time.Minute) // < 80% of 1 h: nothing happens
		if _, err := v.Verify(ctx, oldTok, tenant, resource); err != nil {
			t.Fatal(err)
		}
		if n := srv.Requests(); n != 1 {
			t.Fatalf("key requests = %d, want 1", n)
		}
		clock.Advance(2 * time.Minute) // 49 min: due
		if _, err := v.Verify(ctx, oldTok, tenant, resource); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the background refresh", func() bool { return v.Stats().Fetches == 2 })
		if _, err := v.Verify(ctx, srv.Mint(entratest.TokenOptions{IssuedAt: t0}), tenant, resource); err != nil {
			t.Fatalf("new key: %v", err)
		}
		if n := srv.Requests(); n != 2 {
			t.Errorf("key requests = %d, want 2", n)
		}
	})
	t.Run("by the sweep, for tenants used recently", func(t *testing.T) {
		srv := entratest.New(t)
		v, clock := newVerifier(t, srv)
		ctx := context.Background()
		if _, err := v.Verify(ctx, srv.Mint(entratest.TokenOptions{IssuedAt: t0}), tenant, resource); err != nil {
			t.Fatal(err)
		}
		srv.RotateKeys()
		clock.Advance(30 * time.Minute)
		v.sweep(clock.Now())
		clock.Advance(20 * time.Minute)
		v.sweep(clock.Now())
		waitFor(t, "the sweep's refresh", func() bool { return v.Stats().Fetches == 2 })
		if _, err := v.Verify(ctx, srv.Mint(entratest.TokenOptions{IssuedAt: t0}), tenant, resource); err != nil {
			t.Fatalf("new key: %v", err)
		}
		// An hour later without use: the sweep leaves the tenant alone...
		clock.Advance(2 * time.Hour)
		v.sweep(clock.Now())
		if n := v.Stats().Fetches; n != 2 {
			t.Errorf("fetches = %d after sweeping an idle tenant, want 2", n)
		}
		// ...and after a day drops it.
		clock.Advance(24 * time.Hour)
		v.sweep(clock.Now())
		if st := v.Stats(); st.Tenants != 0 {
			t.Errorf("tenants = %d after a day idle, want 0", st.Tenants)
		}
	})
	t.Run("the loop runs", func(t *testing.T) {
		srv := entratest.New(t)
		v, clock := newVerifier(t, srv, func(c *Config) { c.sweepInterval = time.Millisecond })
		if _, err := v.Verify(context.Background(), srv.Mint(entratest.TokenOptions{IssuedAt: t0}), tenant, resource); err != nil {
			t.Fatal(err)
		}
		clock.Advance(50 * time.Minute)
		waitFor(t, "the loop's refresh", func() bool { return v.Stats().Fetches == 2 })
	})
}

func TestUnavailableWhenNoKeys(t *testing.T) {
	srv := entratest.New(t)
	v, clock := newVerifier(t, srv)
	ctx := context.Background()
	tok := srv.Mint(entratest.TokenOptions{IssuedAt: t0})
	srv.SetDown(true)
	for range 3 {
		_, err := v.Verify(ctx, tok, tenant, resource)
		wantError(t, err, gatehouse.KindUnavailable, "Unable to fetch signing keys from Entra ID")
	}
	if n := srv.Requests(); n != 1 {
		t.Errorf("key requests = %d, want 1 (the others within MinRefetchInterval)", n)
	}
	srv.SetDown(false)
	clock.Advance(5 * time.Second)
	if _, err := v.Verify(ctx, tok, tenant, resource); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestUnreachableAuthority(t *testing.T) {
	srv := entratest.New(t)
	tok := srv.Mint(entratest.TokenOptions{IssuedAt: t0})
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	v, err := NewVerifier(Config{AuthorityHost: closed.URL, Clock: clocktest.New(t0)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, err = v.Verify(context.Background(), tok, tenant, resource)
	wantError(t, err, gatehouse.KindUnavailable, "Unable to fetch signing keys from Entra ID")
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	srv := entratest.New(t)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL()+r.URL.Path, http.StatusFound)
	}))
	defer redirect.Close()
	v, _ := newVerifier(t, srv, func(c *Config) { c.AuthorityHost = redirect.URL })
	_, err := v.Verify(context.Background(), srv.Mint(entratest.TokenOptions{IssuedAt: t0}), tenant, resource)
	wantError(t, err, gatehouse.KindUnavailable, "Unable to fetch signing keys from Entra ID")
	if n := srv.Requests(); n != 0 {
		t.Errorf("the redirect was followed: %d key requests", n)
	}
}

func TestCancelledWaitIsUnavailable(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer slow.Close()
	defer close(release)
	srv := entratest.New(t)
	v, _ := newVerifier(t, srv, func(c *Config) { c.AuthorityHost = slow.URL })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := v.Verify(ctx, srv.Mint(entratest.TokenOptions{IssuedAt: t0}), tenant, resource)
	wantError(t, err, gatehouse.KindUnavailable, "Unable to fetch signing keys from Entra ID")
}

func TestCloseStopsFetching(t *testing.T) {
	srv := entratest.New(t)
	v, clock := newVerifier(t, srv)
	tok := srv.Mint(entratest.TokenOptions{IssuedAt: t0})
	if _, err := v.Verify(context.Background(), tok, tenant, resource); err != nil {
		t.Fatal(err)
	}
	v.Close()
	v.Close() // idempotent
	clock.Advance(50 * time.Minute)
	if _, err := v.Verify(context.Background(), tok, tenant, resource); err != nil {
		t.Fatalf("cached keys after Close: %v", err)
	}
	_, err := v.Verify(context.Background(), tok, "22222222-2222-2222-2222-222222222222", resource)
	wantError(t, err, gatehouse.KindUnavailable, "Unable to fetch signing keys from Entra ID")
	if n := srv.Requests(); n != 1 {
		t.Errorf("key requests = %d after Close, want 1", n)
	}
}

func TestTenantsAreCachedSeparately(t *testing.T) {
	srv := entratest.New(t)
	v, _ := newVerifier(t, srv)
	for _, tid := range []string{tenant, "22222222-2222-2222-2222-222222222222"} {
		for range 3 {
			if _, err := v.Verify(context.Background(), srv.Mint(entratest.TokenOptions{Tenant: tid, IssuedAt: t0}), tid, resource); err != nil {
				t.Fatal(err)
			}
		}
	}
	if st := v.Stats(); st.Fetches != 2 || st.Tenants != 2 {
		t.Errorf("stats = %+v, want 2 fetches and 2 tenants", st)
	}
}

func TestNewVerifierConfig(t *testing.T) {
	tests := []struct {
		host string
		ok   bool
	}{
		{"", true},
		{"https://login.microsoftonline.com", true},
		{"https://mirror.example/entra/", true},
		{"http://127.0.0.1:8080", true},
		{"http://127.9.9.9", true},
		{"http://[::1]:8080", true},
		{"http://localhost:1234", true},
		{"http://login.microsoftonline.com", false},
		{"http://10.0.0.1", false},
		{"http://localhost.evil.example", false},
		{"ftp://127.0.0.1", false},
		{"login.microsoftonline.com", false},
		{"https://user:pw@login.microsoftonline.com", false},
		{"https://login.microsoftonline.com?x=1", false},
	}
	for _, tc := range tests {
		v, err := NewVerifier(Config{AuthorityHost: tc.host})
		if (err == nil) != tc.ok {
			t.Errorf("AuthorityHost %q: err = %v, want ok=%v", tc.host, err, tc.ok)
		}
		if err != nil && gatehouse.KindOf(err) != gatehouse.KindInvalid {
			t.Errorf("AuthorityHost %q: kind %d, want KindInvalid", tc.host, gatehouse.KindOf(err))
		}
		if v != nil {
			v.Close()
		}
	}
	for _, cfg := range []Config{
		{KeyTTL: -1},
		{MinRefetchInterval: -1},
		{Cloud: Cloud{Name: "germany"}},
		{Cloud: Cloud{Name: "custom", AuthorityHost: "https://x", V1Issuer: "https://x/"}},
	} {
		if v, err := NewVerifier(cfg); err == nil {
			v.Close()
			t.Errorf("NewVerifier(%+v) succeeded", cfg)
		}
	}
}

func TestDefaultHostFollowsCloud(t *testing.T) {
	for name, want := range map[string]string{
		"":             "https://login.microsoftonline.com",
		"usgovernment": "https://login.microsoftonline.us",
		"china":        "https://login.chinacloudapi.cn",
	} {
		v, err := NewVerifier(Config{Cloud: Cloud{Name: name}})
		if err != nil {
			t.Fatal(err)
		}
		v.Close()
		if v.host != want {
			t.Errorf("cloud %q: host %q, want %q", name, v.host, want)
		}
		if got := keysURL(v.host, tenant); got != want+"/"+tenant+"/discovery/keys" {
			t.Errorf("keys URL %q", got)
		}
	}
}

func TestCloudByName(t *testing.T) {
	const tid = "t1"
	tests := []struct {
		name, wantName, wantHost string
		wantIssuers              []string
	}{
		{"", "public", "https://login.microsoftonline.com", []string{"https://sts.windows.net/t1/", "https://login.microsoftonline.com/t1/v2.0"}},
		{"public", "public", "https://login.microsoftonline.com", []string{"https://sts.windows.net/t1/", "https://login.microsoftonline.com/t1/v2.0"}},
		{"usgovernment", "usgovernment", "https://login.microsoftonline.us", []string{"https://sts.windows.net/t1/", "https://login.microsoftonline.us/t1/v2.0"}},
		{"china", "china", "https://login.chinacloudapi.cn", []string{"https://sts.chinacloudapi.cn/t1/", "https://login.chinacloudapi.cn/t1/v2.0", "https://login.partner.microsoftonline.cn/t1/v2.0"}},
	}
	for _, tc := range tests {
		c, err := CloudByName(tc.name)
		if err != nil {
			t.Fatalf("CloudByName(%q): %v", tc.name, err)
		}
		if c.Name != tc.wantName || c.AuthorityHost != tc.wantHost {
			t.Errorf("CloudByName(%q) = %q %q", tc.name, c.Name, c.AuthorityHost)
		}
		if got := c.Issuers(tid); strings.Join(got, " ") != strings.Join(tc.wantIssuers, " ") {
			t.Errorf("%q issuers = %q, want %q", tc.name, got, tc.wantIssuers)
		}
		for _, iss := range tc.wantIssuers {
			if !c.acceptsIssuer(iss, tid) || c.acceptsIssuer(iss, "t2") || c.acceptsIssuer(iss+"x", tid) {
				t.Errorf("%q: acceptsIssuer disagrees with Issuers for %q", tc.name, iss)
			}
		}
		c.V2Issuers[0] = "changed" // a copy: the next call is unaffected
	}
	for _, name := range []string{"Public", "germany", "azurecloud"} {
		_, err := CloudByName(name)
		if gatehouse.KindOf(err) != gatehouse.KindInvalid {
			t.Errorf("CloudByName(%q) = %v, want KindInvalid", name, err)
		}
	}
}

func TestNumericDate(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want time.Time
	}{
		{"1.5", time.Unix(1, 5e8)},
		{"-1.5", time.Unix(-2, 5e8)},
		{"1e300", time.Unix(math.MaxInt64/int64(time.Second), 0)},
		{"-1e300", time.Unix(-math.MaxInt64/int64(time.Second), 0)},
	} {
		var d numericDate
		if !d.set(tc.raw, jsonNumber) || !d.Time().Equal(tc.want) {
			t.Errorf("%s -> %v, want %v", tc.raw, d.Time(), tc.want)
		}
	}
	var d numericDate
	if d.set("1e400", jsonNumber) || !d.set("null", jsonNull) || d.set(`"1"`, jsonString) {
		t.Error("set accepted an out-of-range number or a string, or refused null")
	}
}
