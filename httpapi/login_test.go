package httpapi_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/apitest"
	"github.com/gatehouse/gatehouse/internal/entratest"
)

// The Azure Auth login, POST /api/v1/auth/azure-auth/login, seen from a
// client: every way to get in, every way to be refused, in JSON and in a
// form-encoded body (the Rust SDK sends forms).

const (
	azureLoginPath = "/api/v1/auth/azure-auth/login"
	azTenant       = entratest.DefaultTenant
	azOID          = entratest.DefaultObjectID
	azResource     = entratest.DefaultAudience

	azMsgNoAuth      = "Azure auth method not found for identity, did you configure Azure Auth?"
	azMsgAlgorithm   = "The access token is signed with an invalid algorithm. Please provide a valid token and try again."
	azMsgExpired     = "Your token has expired. Please re-authenticate."
	azMsgUnavailable = "Unable to fetch signing keys from Entra ID"
)

// otherTenant is a tenant no identity of these tests is configured for.
const azOtherTenant = "0e9d8c7b-6a5f-4e3d-2c1b-a09f8e7d6c5b"

var azIssuerV1 = "https://sts.windows.net/" + azTenant + "/"

// mint returns an Entra ID token from the server's fake, issued at the
// server's clock (the fake's default is the real time, which the server's
// clock does not follow), so that nbf and exp mean the same to both.
func mintEntra(s *apitest.Server, o entratest.TokenOptions) string {
	if o.IssuedAt.IsZero() {
		o.IssuedAt = s.Clock.Now()
	}
	return s.Entra.Mint(o)
}

// encodings are the two body formats of a login.
var loginEncodings = []string{"json", "form"}

// login posts fields as a login body in enc, with an Authorization header
// when bearer is not "".
func postLogin(s *apitest.Server, enc, bearer string, fields map[string]string) *apitest.Response {
	req := apitest.Request{Method: http.MethodPost, Path: azureLoginPath, Token: bearer}
	if enc == "form" {
		v := url.Values{}
		for k, f := range fields {
			v.Set(k, f)
		}
		req.Body, req.ContentType = v.Encode(), "application/x-www-form-urlencoded"
	} else {
		req.Body = fields
	}
	return s.Do(req)
}

// loginWith logs identityID in with jwt.
func postLoginJWT(s *apitest.Server, enc, identityID, jwt string) *apitest.Response {
	return postLogin(s, enc, "", map[string]string{"identityId": identityID, "jwt": jwt})
}

// azureIdentity creates a member identity with Azure Auth attached
// (fields override the defaults: the fake's tenant and audience).
func newAzureIdentity(t *testing.T, s *apitest.Server, admin apitest.Admin, fields map[string]any) string {
	t.Helper()
	id := s.CreateIdentity(admin.Token, admin.OrgID, "azure-"+uuid.NewString()[:8], "member")
	s.AttachAzure(admin.Token, id, fields)
	return id
}

// patchAzure changes the Azure Auth of id and fails the test otherwise.
func patchAzureAuth(t *testing.T, s *apitest.Server, admin apitest.Admin, id string, fields map[string]any) {
	t.Helper()
	s.Patch("/api/v1/auth/azure-auth/identities/"+id, admin.Token, fields).Expect(t, http.StatusOK)
}

// expectToken fails the test unless r is a successful login whose token
// works right away as a bearer of identity id's organization.
func expectLoginToken(t *testing.T, s *apitest.Server, admin apitest.Admin, r *apitest.Response) string {
	t.Helper()
	r.Expect(t, http.StatusOK)
	tok := r.String("accessToken")
	if tok == "" || r.String("tokenType") != "Bearer" {
		t.Fatalf("login answer %s", r.Raw)
	}
	d := s.Get("/api/v1/identities/details", tok).Expect(t, http.StatusOK)
	if got := d.String("identityDetails", "organization", "id"); got != admin.OrgID {
		t.Errorf("token's organization %q, want %q", got, admin.OrgID)
	}
	return tok
}

func TestAzureLogin(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)
		admin := s.Bootstrap()
		for _, enc := range loginEncodings {
			t.Run(enc, func(t *testing.T) { testAzureLogin(t, s, admin, enc) })
		}
	})
}

func testAzureLogin(t *testing.T, s *apitest.Server, admin apitest.Admin, enc string) {
	good := func() string { return mintEntra(s, entratest.TokenOptions{}) }

	t.Run("without Azure Auth", func(t *testing.T) {
		plain := s.CreateIdentity(admin.Token, admin.OrgID, "plain-"+enc, "member")
		postLoginJWT(s, enc, plain, "x").ExpectError(t, http.StatusNotFound, "NotFound", azMsgNoAuth)
		postLoginJWT(s, enc, plain, good()).ExpectError(t, http.StatusNotFound, "NotFound", azMsgNoAuth)
		postLoginJWT(s, enc, uuid.NewString(), good()).ExpectError(t, http.StatusNotFound, "NotFound", azMsgNoAuth)

		id := newAzureIdentity(t, s, admin, nil)
		expectLoginToken(t, s, admin, postLoginJWT(s, enc, id, good()))
		s.Delete("/api/v1/auth/azure-auth/identities/"+id, admin.Token).Expect(t, http.StatusOK)
		postLoginJWT(s, enc, id, good()).ExpectError(t, http.StatusNotFound, "NotFound", azMsgNoAuth)
	})

	t.Run("validation", func(t *testing.T) {
		id := newAzureIdentity(t, s, admin, nil)
		postLogin(s, enc, "", map[string]string{"identityId": id}).ExpectIssue(t, "jwt", "Required")
		postLogin(s, enc, "", map[string]string{"jwt": good()}).ExpectIssue(t, "identityId", "Required")
		for _, bad := range []string{"not-a-uuid", "", id + "0", strings.ReplaceAll(id, "-", "")} {
			postLoginJWT(s, enc, bad, good()).ExpectIssue(t, "identityId", "")
		}
		if enc == "json" {
			s.Post(azureLoginPath, "", map[string]any{"identityId": id, "jwt": 42}).ExpectIssue(t, "jwt", "Expected string, received number")
			s.Post(azureLoginPath, "", map[string]any{"identityId": id, "jwt": nil}).ExpectIssue(t, "jwt", "")
		}
		// The identity id is trimmed and matched case-insensitively.
		expectLoginToken(t, s, admin, postLoginJWT(s, enc, " "+strings.ToUpper(id)+" ", good()))
	})

	t.Run("success", func(t *testing.T) {
		id := newAzureIdentity(t, s, admin, map[string]any{"accessTokenTTL": 3600, "accessTokenMaxTTL": 7200})
		before := s.Get("/api/v1/identities/"+id, admin.Token).Expect(t, http.StatusOK)
		if v := before.Value("identity", "lastLoginTime"); v != nil {
			t.Errorf("lastLoginTime %v before any login", v)
		}
		r := postLoginJWT(s, enc, id, good()).Expect(t, http.StatusOK)
		want := map[string]any{"accessToken": r.String("accessToken"), "expiresIn": 3600.0, "accessTokenMaxTTL": 7200.0, "tokenType": "Bearer"}
		if fmt.Sprint(r.Body) != fmt.Sprint(want) {
			t.Errorf("login answer %s, want exactly {accessToken, expiresIn: 3600, accessTokenMaxTTL: 7200, tokenType: Bearer}", r.Raw)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q", ct)
		}
		expectLoginToken(t, s, admin, r)

		g := s.Get("/api/v1/identities/"+id, admin.Token).Expect(t, http.StatusOK)
		if got := g.String("identity", "lastLoginAuthMethod"); got != "azure-auth" {
			t.Errorf("lastLoginAuthMethod %q, want azure-auth", got)
		}
		wantTime := s.Clock.Now().UTC().Format("2006-01-02T15:04:05.000Z")
		if got := g.String("identity", "lastLoginTime"); got != wantTime {
			t.Errorf("lastLoginTime %q, want %q", got, wantTime)
		}
	})

	t.Run("v1 and v2 tokens", func(t *testing.T) {
		id := newAzureIdentity(t, s, admin, nil)
		for _, v := range []int{1, 2} {
			expectLoginToken(t, s, admin, postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{Version: v})))
			// A token of another tenant, issuer and tid alike, is for
			// another tenant's identities only.
			postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{Version: v, Tenant: azOtherTenant})).
				ExpectError(t, http.StatusForbidden, "TokenError", "jwt issuer invalid. expected: "+azIssuerV1)
		}
		other := newAzureIdentity(t, s, admin, map[string]any{"tenantId": azOtherTenant})
		for _, v := range []int{1, 2} {
			expectLoginToken(t, s, admin, postLoginJWT(s, enc, other, mintEntra(s, entratest.TokenOptions{Version: v, Tenant: azOtherTenant})))
			postLoginJWT(s, enc, other, mintEntra(s, entratest.TokenOptions{Version: v})).
				ExpectError(t, http.StatusForbidden, "TokenError", "jwt issuer invalid. expected: https://sts.windows.net/"+azOtherTenant+"/")
		}
	})

	t.Run("unknown signing key", func(t *testing.T) {
		id := newAzureIdentity(t, s, admin, nil)
		postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{Kid: "no-such-key"})).
			ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Invalid signing key")
		postLoginJWT(s, enc, id, jwtWithHeader(t, good(), map[string]any{"typ": "JWT", "alg": "RS256", "kid": ""})).
			ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Invalid signing key")
		// A token without a kid header at all.
		postLoginJWT(s, enc, id, jwtWithHeader(t, good(), map[string]any{"typ": "JWT", "alg": "RS256"})).
			ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Invalid signing key")
	})

	t.Run("tenant mismatch", func(t *testing.T) {
		id := newAzureIdentity(t, s, admin, nil)
		tok := mintEntra(s, entratest.TokenOptions{ExtraClaims: map[string]any{"tid": azOtherTenant}})
		postLoginJWT(s, enc, id, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Tenant ID mismatch")
		tok = mintEntra(s, entratest.TokenOptions{ExtraClaims: map[string]any{"tid": nil}})
		postLoginJWT(s, enc, id, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Tenant ID mismatch")
		tok = mintEntra(s, entratest.TokenOptions{ExtraClaims: map[string]any{"tid": strings.ToUpper(azTenant)}})
		postLoginJWT(s, enc, id, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Tenant ID mismatch")
	})

	t.Run("allowed service principals", func(t *testing.T) {
		const a, b, c = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", "33333333-3333-4333-8333-333333333333"
		id := newAzureIdentity(t, s, admin, map[string]any{"allowedServicePrincipalIds": a + "," + b})
		postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{ObjectID: c})).
			ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Service principal '"+c+"' not allowed")
		postLoginJWT(s, enc, id, good()).
			ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Service principal '"+azOID+"' not allowed")
		expectLoginToken(t, s, admin, postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{ObjectID: b})))

		patchAzureAuth(t, s, admin, id, map[string]any{"allowedServicePrincipalIds": a + " ,  " + azOID + " "})
		expectLoginToken(t, s, admin, postLoginJWT(s, enc, id, good()))
		postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{ObjectID: c})).
			ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Service principal '"+c+"' not allowed")
		// The oid is compared exactly: neither case nor the appid count.
		postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{ObjectID: strings.ToUpper(azOID)})).
			ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Service principal '"+strings.ToUpper(azOID)+"' not allowed")
		postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{ObjectID: c, AppID: azOID})).
			ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Service principal '"+c+"' not allowed")

		patchAzureAuth(t, s, admin, id, map[string]any{"allowedServicePrincipalIds": ""})
		for _, p := range []string{a, c, uuid.NewString()} {
			expectLoginToken(t, s, admin, postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{ObjectID: p})))
		}
	})

	t.Run("audience", func(t *testing.T) {
		id := newAzureIdentity(t, s, admin, nil)
		for _, aud := range []string{"https://vault.azure.net", "https://management.azure.com/x", "https://management.azure.com//", "https://MANAGEMENT.azure.com/"} {
			postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{Audience: aud})).
				ExpectError(t, http.StatusForbidden, "TokenError", "jwt audience invalid. expected: "+azResource)
		}
		postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{ExtraClaims: map[string]any{"aud": nil}})).
			ExpectError(t, http.StatusForbidden, "TokenError", "jwt audience invalid. expected: "+azResource)

		// One trailing slash is ignored, both ways.
		expectLoginToken(t, s, admin, postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{Audience: "https://management.azure.com"})))
		patchAzureAuth(t, s, admin, id, map[string]any{"resource": "https://management.azure.com"})
		expectLoginToken(t, s, admin, postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{Audience: "https://management.azure.com/"})))
		expectLoginToken(t, s, admin, postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{Audience: "https://management.azure.com"})))
		postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{Audience: "https://vault.azure.net/"})).
			ExpectError(t, http.StatusForbidden, "TokenError", "jwt audience invalid. expected: https://management.azure.com")

		// An application's own audience, as v2 tokens carry.
		const app = "api://5f0c9e1a-2b3c-4d5e-8f9a-0b1c2d3e4f5a"
		patchAzureAuth(t, s, admin, id, map[string]any{"resource": app})
		expectLoginToken(t, s, admin, postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{Audience: app, Version: 2})))
	})

	t.Run("issuer", func(t *testing.T) {
		id := newAzureIdentity(t, s, admin, nil)
		for name, o := range map[string]entratest.TokenOptions{
			"another tenant's v1 issuer": {Issuer: "https://sts.windows.net/" + azOtherTenant + "/"},
			"another tenant's v2 issuer": {Issuer: "https://login.microsoftonline.com/" + azOtherTenant + "/v2.0"},
			"China cloud v1":             {Cloud: "china"},
			"China cloud v2":             {Cloud: "china", Version: 2},
			"US Government cloud v2":     {Cloud: "usgovernment", Version: 2},
			"no trailing slash":          {Issuer: "https://sts.windows.net/" + azTenant},
			"http":                       {Issuer: "http://sts.windows.net/" + azTenant + "/"},
			"the tenant's domain name":   {Issuer: "https://sts.windows.net/contoso.onmicrosoft.com/"},
			"a look-alike host":          {Issuer: "https://sts.windows.net.example.com/" + azTenant + "/"},
			"no issuer":                  {ExtraClaims: map[string]any{"iss": nil}},
		} {
			postLoginJWT(s, enc, id, mintEntra(s, o)).ExpectError(t, http.StatusForbidden, "TokenError", "jwt issuer invalid. expected: "+azIssuerV1)
			if t.Failed() {
				t.Fatalf("case %q", name)
			}
		}
	})

	t.Run("signature", func(t *testing.T) {
		id := newAzureIdentity(t, s, admin, nil)
		tok := good()
		h, p, sig := jwtParts(t, tok)
		// Another signature character, in the middle (the last one carries
		// padding bits).
		k := len(sig) / 2
		c := byte('A')
		if sig[k] == 'A' {
			c = 'B'
		}
		flipped := sig[:k] + string(c) + sig[k+1:]
		postLoginJWT(s, enc, id, h+"."+p+"."+flipped).ExpectError(t, http.StatusForbidden, "TokenError", "invalid signature")
		// Claims changed under a valid signature.
		_, p2, _ := jwtParts(t, mintEntra(s, entratest.TokenOptions{ObjectID: "44444444-4444-4444-8444-444444444444"}))
		postLoginJWT(s, enc, id, h+"."+p2+"."+sig).ExpectError(t, http.StatusForbidden, "TokenError", "invalid signature")
		postLoginJWT(s, enc, id, h+"."+p+".").ExpectError(t, http.StatusForbidden, "TokenError", "invalid signature")
		postLoginJWT(s, enc, id, h+"."+p+"."+sig[:len(sig)-8]).ExpectError(t, http.StatusForbidden, "TokenError", "invalid signature")
		expectLoginToken(t, s, admin, postLoginJWT(s, enc, id, tok))
	})

	t.Run("lifetime", func(t *testing.T) {
		id := newAzureIdentity(t, s, admin, nil)
		now := s.Clock.Now()
		at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
		// Expired an hour ago; and just beyond the 60 s skew.
		postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{IssuedAt: now.Add(-2 * time.Hour), Lifetime: time.Hour})).
			ExpectError(t, http.StatusForbidden, "TokenError", azMsgExpired)
		postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{IssuedAt: now.Add(-2 * time.Hour), Lifetime: 2*time.Hour - 61*time.Second})).
			ExpectError(t, http.StatusForbidden, "TokenError", azMsgExpired)
		postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{ExtraClaims: map[string]any{"exp": nil}})).
			ExpectError(t, http.StatusForbidden, "TokenError", azMsgExpired)
		// Not yet valid: ten minutes ahead, and just beyond the skew.
		postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{NotBefore: at(10 * time.Minute)})).
			ExpectError(t, http.StatusForbidden, "TokenError", "jwt not active")
		postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{NotBefore: at(61 * time.Second)})).
			ExpectError(t, http.StatusForbidden, "TokenError", "jwt not active")
		// Within the skew both ways, the token is good.
		expectLoginToken(t, s, admin, postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{NotBefore: at(30 * time.Second)})))
		expectLoginToken(t, s, admin, postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{IssuedAt: now.Add(-2 * time.Hour), Lifetime: 2*time.Hour - 30*time.Second})))
		// iat is not checked (Entra ID's clock and ours may differ).
		expectLoginToken(t, s, admin, postLoginJWT(s, enc, id, mintEntra(s, entratest.TokenOptions{IssuedAt: now.Add(time.Hour), NotBefore: at(0)})))
	})

	t.Run("algorithm", func(t *testing.T) {
		id := newAzureIdentity(t, s, admin, nil)
		for _, alg := range []string{"none", "HS256", "HS512", "RS384", "RS512", "PS256", "ES256", "rs256", ""} {
			o := entratest.TokenOptions{Alg: alg}
			tok := mintEntra(s, o)
			if alg == "" { // the fake defaults to RS256: write the header ourselves
				tok = jwtWithHeader(t, tok, map[string]any{"typ": "JWT", "kid": s.Entra.KeyID()})
			}
			postLoginJWT(s, enc, id, tok).ExpectError(t, http.StatusForbidden, "TokenError", azMsgAlgorithm)
			if t.Failed() {
				t.Fatalf("alg %q", alg)
			}
		}
	})

	t.Run("malformed", func(t *testing.T) {
		id := newAzureIdentity(t, s, admin, nil)
		tok := good()
		h, p, sig := jwtParts(t, tok)
		for name, jwt := range map[string]string{
			"not-a-jwt":          "not-a-jwt",
			"empty":              "",
			"two parts":          h + "." + p,
			"four parts":         tok + ".x",
			"bad base64":         h + ".%%%." + sig,
			"padded base64":      h + "=." + p + "." + sig,
			"header not JSON":    b64url("hello") + "." + p + "." + sig,
			"payload an array":   h + "." + b64url("[1,2]") + "." + sig,
			"surrounding spaces": " " + tok + " ",
			"aud as array":       mintEntra(s, entratest.TokenOptions{ExtraClaims: map[string]any{"aud": []string{azResource}}}),
			"aud as number":      mintEntra(s, entratest.TokenOptions{ExtraClaims: map[string]any{"aud": 1}}),
			"exp as string":      mintEntra(s, entratest.TokenOptions{ExtraClaims: map[string]any{"exp": "tomorrow"}}),
			"tid as object":      mintEntra(s, entratest.TokenOptions{ExtraClaims: map[string]any{"tid": map[string]any{}}}),
		} {
			r := postLoginJWT(s, enc, id, jwt)
			if r.Status >= 500 {
				t.Fatalf("%s: %d %s", name, r.Status, r.Raw)
			}
			r.ExpectError(t, http.StatusForbidden, "TokenError", "jwt malformed")
			if t.Failed() {
				t.Fatalf("case %q", name)
			}
		}
		if enc == "json" {
			s.Post(azureLoginPath, "", map[string]any{"identityId": id, "jwt": strings.Repeat("a", 100<<10)}).
				ExpectError(t, http.StatusForbidden, "TokenError", "jwt malformed")
		}
	})

	t.Run("organization slug", func(t *testing.T) {
		id := newAzureIdentity(t, s, admin, nil)
		with := func(slug string) *apitest.Response {
			return postLogin(s, enc, "", map[string]string{"identityId": id, "jwt": good(), "organizationSlug": slug})
		}
		expectLoginToken(t, s, admin, with(admin.OrgSlug))
		with("other-org").ExpectError(t, http.StatusNotFound, "NotFound", "Sub organization with slug other-org not found")
		with("Bad Slug!").ExpectIssue(t, "organizationSlug", "lowercase letters, numbers, and hyphens")
		with("").ExpectIssue(t, "organizationSlug", "at least 1")
		with(strings.Repeat("a", 65)).ExpectIssue(t, "organizationSlug", "at most 64")
		// The slug is checked after the Entra ID token.
		postLogin(s, enc, "", map[string]string{"identityId": id, "jwt": "x", "organizationSlug": "other-org"}).
			ExpectError(t, http.StatusForbidden, "TokenError", "jwt malformed")
	})

	t.Run("stale Authorization header", func(t *testing.T) {
		// Infisical checks any bearer even on this public route and answers
		// 403; Gatehouse ignores it, since the Entra ID token is the
		// credential.
		id := newAzureIdentity(t, s, admin, nil)
		for _, bearer := range []string{"garbage", "eyJhbGciOiJIUzI1NiJ9.e30.x", admin.Token} {
			tok := expectLoginToken(t, s, admin, postLogin(s, enc, bearer, map[string]string{"identityId": id, "jwt": good()}))
			if tok == admin.Token {
				t.Fatal("login answered the bearer's token")
			}
		}
		// It does not vouch for anything either.
		postLogin(s, enc, admin.Token, map[string]string{"identityId": id, "jwt": "x"}).
			ExpectError(t, http.StatusForbidden, "TokenError", "jwt malformed")
	})
}

// TestAzureLoginEntraOutage checks what logins see while Entra ID cannot
// be reached: the tenants whose keys are cached keep logging in, the others
// get a 503 (never a 500) until it is back.
func TestAzureLoginEntraOutage(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)
		admin := s.Bootstrap()
		const cold, unknown = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d", "6b5c4d3e-2f1a-4b0c-9d8e-7f6a5b4c3d2e"
		warm := newAzureIdentity(t, s, admin, nil)
		coldID := newAzureIdentity(t, s, admin, map[string]any{"tenantId": cold})
		unknownID := newAzureIdentity(t, s, admin, map[string]any{"tenantId": unknown})
		expectLoginToken(t, s, admin, postLoginJWT(s, "json", warm, mintEntra(s, entratest.TokenOptions{})))

		s.Entra.SetDown(true)
		for range 3 {
			expectLoginToken(t, s, admin, postLoginJWT(s, "json", warm, mintEntra(s, entratest.TokenOptions{})))
			postLoginJWT(s, "json", coldID, mintEntra(s, entratest.TokenOptions{Tenant: cold})).
				ExpectError(t, http.StatusServiceUnavailable, "ServiceUnavailable", azMsgUnavailable)
		}
		// A bad token of a warm tenant is still judged, not waved through.
		postLoginJWT(s, "json", warm, mintEntra(s, entratest.TokenOptions{Kid: "rotated-away"})).
			ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Invalid signing key")
		postLoginJWT(s, "json", warm, mintEntra(s, entratest.TokenOptions{Audience: "https://vault.azure.net"})).
			ExpectError(t, http.StatusForbidden, "TokenError", "jwt audience invalid. expected: "+azResource)
		s.Entra.SetDown(false)

		// Entra ID answers 400 for a tenant it does not know.
		s.Entra.SetKeyResponse(http.StatusBadRequest, `{"error":"invalid_tenant","error_description":"AADSTS90002: Tenant not found."}`)
		postLoginJWT(s, "json", unknownID, mintEntra(s, entratest.TokenOptions{Tenant: unknown})).
			ExpectError(t, http.StatusServiceUnavailable, "ServiceUnavailable", azMsgUnavailable)
		s.Entra.SetKeyResponse(http.StatusOK, `{"keys": [`)
		s.Clock.Advance(6 * time.Second) // past the minimum interval between fetches of a tenant
		postLoginJWT(s, "json", unknownID, mintEntra(s, entratest.TokenOptions{Tenant: unknown})).
			ExpectError(t, http.StatusServiceUnavailable, "ServiceUnavailable", azMsgUnavailable)
		s.Entra.SetKeyResponse(0, "")

		// Back: the cold tenant logs in at its next allowed fetch.
		s.Clock.Advance(6 * time.Second)
		expectLoginToken(t, s, admin, postLoginJWT(s, "json", coldID, mintEntra(s, entratest.TokenOptions{Tenant: cold})))
		expectLoginToken(t, s, admin, postLoginJWT(s, "json", unknownID, mintEntra(s, entratest.TokenOptions{Tenant: unknown})))
	})
}

// TestAzureLoginKeyCache checks through the API that Entra ID's keys are
// fetched once per tenant, again when a token names a new key, and not for
// every unknown kid an attacker makes up.
func TestAzureLoginKeyCache(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)
		admin := s.Bootstrap()
		id := newAzureIdentity(t, s, admin, nil)

		// 50 logins, 10 at a time, from a cold cache: one fetch.
		tokens := make([]string, 50)
		for k := range tokens {
			tokens[k] = mintEntra(s, entratest.TokenOptions{})
		}
		for k, r := range concurrentLogins(t, s, id, tokens, 10) {
			if r.status != http.StatusOK {
				t.Fatalf("login %d: %d %s", k, r.status, r.body)
			}
		}
		if n := s.Entra.Requests(); n != 1 {
			t.Errorf("%d key set fetches for 50 logins, want 1", n)
		}

		// A planned rotation: Entra ID serves the new key beside the old one.
		old := mintEntra(s, entratest.TokenOptions{})
		s.Entra.RotateKeysKeepOld()
		s.Clock.Advance(6 * time.Second) // past the minimum interval between fetches
		expectLoginToken(t, s, admin, postLoginJWT(s, "json", id, mintEntra(s, entratest.TokenOptions{})))
		expectLoginToken(t, s, admin, postLoginJWT(s, "json", id, old))
		if n := s.Entra.Requests(); n != 2 {
			t.Errorf("%d key set fetches after a rotation, want 2", n)
		}

		// An abrupt rotation: the old key is gone.
		s.Entra.RotateKeys()
		s.Clock.Advance(6 * time.Second)
		expectLoginToken(t, s, admin, postLoginJWT(s, "json", id, mintEntra(s, entratest.TokenOptions{})))
		postLoginJWT(s, "json", id, old).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Invalid signing key")
		if n := s.Entra.Requests(); n != 3 {
			t.Errorf("%d key set fetches after a second rotation, want 3", n)
		}

		// A flood of tokens with made-up kids: one fetch at most, each
		// refused, and good tokens keep working.
		s.Clock.Advance(6 * time.Second)
		before := s.Entra.Requests()
		flood := make([]string, 200)
		for k := range flood {
			b := make([]byte, 8)
			rand.Read(b)
			flood[k] = mintEntra(s, entratest.TokenOptions{Kid: hex.EncodeToString(b)})
		}
		for k, r := range concurrentLogins(t, s, id, flood, 20) {
			if r.status != http.StatusUnauthorized || r.message != "Invalid signing key" {
				t.Fatalf("flood login %d: %d %s", k, r.status, r.body)
			}
		}
		if n := s.Entra.Requests() - before; n > 1 {
			t.Errorf("%d key set fetches for 200 unknown kids, want at most 1", n)
		}
		expectLoginToken(t, s, admin, postLoginJWT(s, "json", id, mintEntra(s, entratest.TokenOptions{})))
		if n := s.Entra.Requests() - before; n > 1 {
			t.Errorf("%d key set fetches after the flood, want at most 1", n)
		}
	})
}

type loginOutcome struct {
	status  int
	message string
	body    string
}

// postLogins logs id in with each token, workers at a time, and returns the
// answers in order. It does not stop the test, so that it can run outside
// the test's goroutine.
func concurrentLogins(t *testing.T, s *apitest.Server, id string, tokens []string, workers int) []loginOutcome {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Minute} // an upper bound only
	out := make([]loginOutcome, len(tokens))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for k := range next {
				raw, _ := json.Marshal(map[string]string{"identityId": id, "jwt": tokens[k]})
				resp, err := client.Post(s.URL+azureLoginPath, "application/json", bytes.NewReader(raw))
				if err != nil {
					out[k] = loginOutcome{body: err.Error()}
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var e struct{ Message any }
				json.Unmarshal(body, &e)
				msg, _ := e.Message.(string)
				out[k] = loginOutcome{status: resp.StatusCode, message: msg, body: string(body)}
			}
		})
	}
	for k := range tokens {
		next <- k
	}
	close(next)
	wg.Wait()
	return out
}

func jwtParts(t *testing.T, tok string) (header, payload, sig string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts", tok, len(parts))
	}
	return parts[0], parts[1], parts[2]
}

// withHeader replaces the header of tok, keeping payload and signature.
func jwtWithHeader(t *testing.T, tok string, header map[string]any) string {
	t.Helper()
	_, p, sig := jwtParts(t, tok)
	raw, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw) + "." + p + "." + sig
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
