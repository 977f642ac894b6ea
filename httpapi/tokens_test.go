package httpapi_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apitest"
	"github.com/gatehouse/gatehouse/internal/entratest"
)

// These tests follow the life of an access token through the HTTP API:
// issue, every check of an authenticated request, renew, revoke, the
// cascades of detaching a method and deleting an identity, the client
// address, what is kept at rest and logged, and forgeries. Helpers are
// prefixed tl (token lifecycle): other test files share this package.

const (
	tlDetailsPath = "/api/v1/identities/details"
	tlRenewPath   = "/api/v1/auth/token/renew"
	tlRevokePath  = "/api/v1/auth/token/revoke"

	tlExpired      = "Your token has expired. Please re-authenticate."
	tlMalformed    = "The provided access token is malformed. Please use a valid token or generate a new one and try again."
	tlAlgorithm    = "The access token is signed with an invalid algorithm. Please provide a valid token and try again."
	tlSignature    = "invalid signature"
	tlClaims       = "Invalid identity access token claims, please re-authenticate"
	tlRevoked      = "Failed to authorize: token has been revoked"
	tlIdentityGone = "Failed to authorize: identity tokens have been revoked"
	tlMethodGone   = "Failed to authorize: auth method has been revoked"
	tlUsesLimit    = "Failed to authorize: token usage limit reached"
	tlIP           = "You are not allowed to access this resource from the current IP address"
)

var tlB64 = base64.RawURLEncoding

// tlClaimsOf decodes the payload of a JWT, without checking anything.
func tlClaimsOf(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q does not have three parts", tok)
	}
	raw, err := tlB64.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("payload: %v", err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("payload: %v", err)
	}
	return m
}

// tlClaimInt is a numeric claim (-1 when absent or not an integer).
func tlClaimInt(m map[string]any, name string) int64 {
	n, ok := m[name].(json.Number)
	if !ok {
		return -1
	}
	v, err := n.Int64()
	if err != nil {
		return -1
	}
	return v
}

// tlLogin logs identityID in with an Entra ID token issued at the server's
// time, so that the test may move the clock first.
func tlLogin(t testing.TB, s *apitest.Server, identityID string) *apitest.Response {
	t.Helper()
	jwt := s.Entra.Mint(entratest.TokenOptions{IssuedAt: s.Clock.Now()})
	return s.Post("/api/v1/auth/azure-auth/login", "", map[string]string{"identityId": identityID, "jwt": jwt}).Expect(t, http.StatusOK)
}

// tlIdentity creates a member identity with Azure Auth under policy and
// returns its id and a fresh access token.
func tlIdentity(t testing.TB, s *apitest.Server, admin apitest.Admin, policy map[string]any) (id, tok string) {
	t.Helper()
	id = s.CreateIdentity(admin.Token, admin.OrgID, fmt.Sprintf("id-%d", time.Now().UnixNano()), "member")
	s.AttachAzure(admin.Token, id, policy)
	return id, tlLogin(t, s, id).String("accessToken")
}

func tlRenew(s *apitest.Server, tok string) *apitest.Response {
	return s.Post(tlRenewPath, "", map[string]string{"accessToken": tok})
}

func tlRevoke(s *apitest.Server, tok string) *apitest.Response {
	return s.Post(tlRevokePath, "", map[string]string{"accessToken": tok})
}

// tlForm sends values form-encoded.
func tlForm(s *apitest.Server, path string, values url.Values) *apitest.Response {
	return s.Do(apitest.Request{Method: http.MethodPost, Path: path, Body: values.Encode(), ContentType: "application/x-www-form-urlencoded"})
}

func tlDetails(s *apitest.Server, tok string) *apitest.Response { return s.Get(tlDetailsPath, tok) }

func tlTrustedIPs(cidrs ...string) []map[string]string {
	out := []map[string]string{}
	for _, c := range cidrs {
		out = append(out, map[string]string{"ipAddress": c})
	}
	return out
}

func tlPatchAzure(t testing.TB, s *apitest.Server, admin apitest.Admin, id string, body map[string]any) {
	t.Helper()
	s.Patch("/api/v1/auth/azure-auth/identities/"+id, admin.Token, body).Expect(t, http.StatusOK)
}

// TestAccessTokenIssue: exp = iat + min(TTL, max TTL, ceiling), 0 meaning
// unbounded; the login response reports the configured TTL and max TTL;
// the claims are Infisical's; the ceiling is configurable and reported.
func TestAccessTokenIssue(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)
		admin := s.Bootstrap()
		if got := s.Get("/api/status", "").Expect(t, http.StatusOK).Number("maxIdentityAccessTokenTTL"); got != 7776000 {
			t.Errorf("maxIdentityAccessTokenTTL %v, want 7776000 (90 days)", got)
		}
		// The bootstrap token (Token Auth, TTL 0) lives up to the ceiling.
		if c := tlClaimsOf(t, admin.Token); tlClaimInt(c, "exp")-tlClaimInt(c, "iat") != 7776000 || c["authMethod"] != "token-auth" {
			t.Errorf("bootstrap token: authMethod %v, exp - iat = %d, want token-auth and 7776000",
				c["authMethod"], tlClaimInt(c, "exp")-tlClaimInt(c, "iat"))
		}

		tests := []struct {
			name              string
			policy            map[string]any
			expiresIn, maxTTL float64 // what the login answers: the configured values
			life              int64   // exp - iat
			ttl, maxTTLClaim  int64
			uses              int64 // numUsesLimit claim; 0: absent
		}{
			{name: "defaults", policy: nil, expiresIn: 2592000, maxTTL: 2592000, life: 2592000, ttl: 2592000, maxTTLClaim: 2592000},
			{name: "ttl 0 max 0: the ceiling", policy: map[string]any{"accessTokenTTL": 0, "accessTokenMaxTTL": 0},
				expiresIn: 0, maxTTL: 0, life: 7776000},
			{name: "ttl 0: the max", policy: map[string]any{"accessTokenTTL": 0, "accessTokenMaxTTL": 2592000},
				expiresIn: 0, maxTTL: 2592000, life: 2592000, maxTTLClaim: 2592000},
			{name: "ttl below max, use limit", policy: map[string]any{"accessTokenTTL": 3600, "accessTokenMaxTTL": 7200, "accessTokenNumUsesLimit": 5},
				expiresIn: 3600, maxTTL: 7200, life: 3600, ttl: 3600, maxTTLClaim: 7200, uses: 5},
			{name: "ten years: the ceiling", policy: map[string]any{"accessTokenTTL": 315360000, "accessTokenMaxTTL": 315360000},
				expiresIn: 315360000, maxTTL: 315360000, life: 7776000, ttl: 315360000, maxTTLClaim: 315360000},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := s.CreateIdentity(admin.Token, admin.OrgID, "issue-"+strings.ReplaceAll(tt.name, " ", "-"), "member")
				s.AttachAzure(admin.Token, id, tt.policy)
				r := tlLogin(t, s, id)
				if r.Number("expiresIn") != tt.expiresIn || r.Number("accessTokenMaxTTL") != tt.maxTTL || r.String("tokenType") != "Bearer" {
					t.Errorf("login answered %s, want expiresIn %v accessTokenMaxTTL %v tokenType Bearer", r.Raw, tt.expiresIn, tt.maxTTL)
				}
				c := tlClaimsOf(t, r.String("accessToken"))
				now := s.Clock.Now().Unix()
				tlCheckClaims(t, c, id, admin.OrgID, now)
				if got := tlClaimInt(c, "exp") - tlClaimInt(c, "iat"); got != tt.life {
					t.Errorf("exp - iat = %d, want %d", got, tt.life)
				}
				if tlClaimInt(c, "accessTokenTTL") != tt.ttl || tlClaimInt(c, "accessTokenMaxTTL") != tt.maxTTLClaim || tlClaimInt(c, "accessTokenPeriod") != 0 {
					t.Errorf("accessTokenTTL %v accessTokenMaxTTL %v accessTokenPeriod %v, want %d %d 0",
						c["accessTokenTTL"], c["accessTokenMaxTTL"], c["accessTokenPeriod"], tt.ttl, tt.maxTTLClaim)
				}
				_, present := c["numUsesLimit"]
				if tt.uses == 0 && present {
					t.Errorf("numUsesLimit %v present without a use limit", c["numUsesLimit"])
				}
				if tt.uses > 0 && tlClaimInt(c, "numUsesLimit") != tt.uses {
					t.Errorf("numUsesLimit %v, want %d", c["numUsesLimit"], tt.uses)
				}
				tlDetails(s, r.String("accessToken")).Expect(t, http.StatusOK)
			})
		}

		// A second server on the same database with a one-hour ceiling.
		s2 := apitest.Start(t, db, apitest.Options{DSN: s.DSN, MaxTokenTTL: time.Hour})
		if got := s2.Get("/api/status", "").Expect(t, http.StatusOK).Number("maxIdentityAccessTokenTTL"); got != 3600 {
			t.Errorf("maxIdentityAccessTokenTTL %v with a one-hour ceiling", got)
		}
		for _, tc := range []struct {
			ttl, max int64
			life     int64
		}{{7200, 7200, 3600}, {0, 0, 3600}, {60, 7200, 60}, {0, 1800, 1800}} {
			id := s2.CreateIdentity(admin.Token, admin.OrgID, fmt.Sprintf("ceiling-%d-%d", tc.ttl, tc.max), "member")
			s2.AttachAzure(admin.Token, id, map[string]any{"accessTokenTTL": tc.ttl, "accessTokenMaxTTL": tc.max})
			r := tlLogin(t, s2, id)
			if r.Number("expiresIn") != float64(tc.ttl) || r.Number("accessTokenMaxTTL") != float64(tc.max) {
				t.Errorf("TTL %d max %d: login answered %s, want the configured values", tc.ttl, tc.max, r.Raw)
			}
			c := tlClaimsOf(t, r.String("accessToken"))
			tlCheckClaims(t, c, id, admin.OrgID, s2.Clock.Now().Unix())
			if got := tlClaimInt(c, "exp") - tlClaimInt(c, "iat"); got != tc.life {
				t.Errorf("TTL %d max %d, one-hour ceiling: exp - iat = %d, want %d", tc.ttl, tc.max, got, tc.life)
			}
		}
	})
}

// tlCheckClaims checks the claims every Azure-issued token carries.
func tlCheckClaims(t testing.TB, c map[string]any, identityID, orgID string, now int64) {
	t.Helper()
	for k, want := range map[string]any{"identityId": identityID, "authMethod": "azure-auth", "orgId": orgID,
		"rootOrgId": orgID, "parentOrgId": orgID, "authTokenType": "identityAccessToken", "clientSecretId": ""} {
		if c[k] != want {
			t.Errorf("claim %s = %#v, want %#v", k, c[k], want)
		}
	}
	jti, _ := c["jti"].(string)
	if len(jti) != 36 || c["identityAccessTokenId"] != jti {
		t.Errorf("jti %v, identityAccessTokenId %v: want one UUID in both", c["jti"], c["identityAccessTokenId"])
	}
	if tlClaimInt(c, "iat") != now || tlClaimInt(c, "creationEpoch") != now {
		t.Errorf("iat %v creationEpoch %v, want both %d", c["iat"], c["creationEpoch"], now)
	}
	if tlClaimInt(c, "exp") <= now {
		t.Errorf("exp %v is not after iat", c["exp"])
	}
}

// TestAccessTokenChecks: every authenticated request checks signature,
// expiry, revocation, the use limit, the method's current trusted IPs, in
// that order.
func TestAccessTokenChecks(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)
		admin := s.Bootstrap()

		t.Run("no token", func(t *testing.T) {
			tlDetails(s, "").ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Token missing")
			tlDetails(s, "garbage").ExpectError(t, http.StatusForbidden, "TokenError", tlMalformed)
		})

		t.Run("expiry", func(t *testing.T) {
			_, tok := tlIdentity(t, s, admin, map[string]any{"accessTokenTTL": 60, "accessTokenMaxTTL": 60})
			s.Clock.Advance(59 * time.Second)
			tlDetails(s, tok).Expect(t, http.StatusOK)
			s.Clock.Advance(time.Second)
			tlDetails(s, tok).ExpectError(t, http.StatusForbidden, "TokenError", tlExpired)
		})

		t.Run("revoked token", func(t *testing.T) {
			_, tok := tlIdentity(t, s, admin, nil)
			_, other := tlIdentity(t, s, admin, nil)
			tlDetails(s, tok).Expect(t, http.StatusOK)
			tlRevoke(s, tok).Expect(t, http.StatusOK)
			tlDetails(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlRevoked)
			tlDetails(s, other).Expect(t, http.StatusOK)
		})

		t.Run("identity deleted", func(t *testing.T) {
			id, tok := tlIdentity(t, s, admin, nil)
			s.Delete("/api/v1/identities/"+id, admin.Token).Expect(t, http.StatusOK)
			tlDetails(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlIdentityGone)
		})

		t.Run("auth method detached", func(t *testing.T) {
			id, tok := tlIdentity(t, s, admin, nil)
			s.Delete("/api/v1/auth/azure-auth/identities/"+id, admin.Token).Expect(t, http.StatusOK)
			tlDetails(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlMethodGone)
		})

		t.Run("use limit", func(t *testing.T) {
			id, tok := tlIdentity(t, s, admin, map[string]any{"accessTokenNumUsesLimit": 3})
			for k := 1; k <= 3; k++ {
				tlDetails(s, tok).Expect(t, http.StatusOK)
			}
			tlDetails(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlUsesLimit)
			s.Get("/api/v1/identities/"+id, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlUsesLimit)
			// A new login is a new token with its own uses.
			tlDetails(s, tlLogin(t, s, id).String("accessToken")).Expect(t, http.StatusOK)
		})

		t.Run("trusted IPs changed after issue", func(t *testing.T) {
			id, tok := tlIdentity(t, s, admin, nil)
			tlDetails(s, tok).Expect(t, http.StatusOK)
			tlPatchAzure(t, s, admin, id, map[string]any{"accessTokenTrustedIps": tlTrustedIPs("10.0.0.0/8")})
			tlDetails(s, tok).ExpectError(t, http.StatusForbidden, "ForbiddenError", tlIP)
			tlPatchAzure(t, s, admin, id, map[string]any{"accessTokenTrustedIps": tlTrustedIPs("10.0.0.0/8", "127.0.0.1")})
			tlDetails(s, tok).Expect(t, http.StatusOK)
			tlPatchAzure(t, s, admin, id, map[string]any{"accessTokenTrustedIps": tlTrustedIPs("::1")})
			tlDetails(s, tok).ExpectError(t, http.StatusForbidden, "ForbiddenError", tlIP)
			tlPatchAzure(t, s, admin, id, map[string]any{"accessTokenTrustedIps": tlTrustedIPs("0.0.0.0/0", "::/0")})
			tlDetails(s, tok).Expect(t, http.StatusOK)
		})

		// Where two checks fail, the earlier one answers.
		t.Run("order", func(t *testing.T) {
			_, tok := tlIdentity(t, s, admin, map[string]any{"accessTokenTTL": 60, "accessTokenMaxTTL": 60})
			tlRevoke(s, tok).Expect(t, http.StatusOK)
			s.Clock.Advance(time.Minute)
			tlDetails(s, tok).ExpectError(t, http.StatusForbidden, "TokenError", tlExpired) // expiry before revocation

			_, tok = tlIdentity(t, s, admin, map[string]any{"accessTokenNumUsesLimit": 1})
			tlDetails(s, tok).Expect(t, http.StatusOK)
			tlRevoke(s, tok).Expect(t, http.StatusOK)
			tlDetails(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlRevoked) // revocation before uses

			id, tok := tlIdentity(t, s, admin, map[string]any{"accessTokenNumUsesLimit": 1})
			tlDetails(s, tok).Expect(t, http.StatusOK)
			tlPatchAzure(t, s, admin, id, map[string]any{"accessTokenTrustedIps": tlTrustedIPs("10.0.0.0/8")})
			tlDetails(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlUsesLimit) // uses before IPs

			id, tok = tlIdentity(t, s, admin, nil)
			tlPatchAzure(t, s, admin, id, map[string]any{"accessTokenTrustedIps": tlTrustedIPs("10.0.0.0/8")})
			s.Delete("/api/v1/auth/azure-auth/identities/"+id, admin.Token).Expect(t, http.StatusOK)
			tlDetails(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlMethodGone) // revocation before IPs
		})
	})
}

// tlResult is one request made from a goroutine other than the test's.
type tlResult struct {
	status  int
	message string
	err     error
}

// tlGet sends GET path with a bearer token; it is safe to call from any
// goroutine (apitest.Server is not: it fails the test on transport errors).
func tlGet(c *http.Client, base, path, tok string) tlResult {
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return tlResult{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		return tlResult{err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	var body struct {
		Message any `json:"message"`
	}
	json.Unmarshal(raw, &body)
	msg, _ := body.Message.(string)
	return tlResult{status: resp.StatusCode, message: msg, err: err}
}

func tlClient(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestAccessTokenConcurrency: a use limit is exact however many requests
// race, and a revocation holds for every request that starts after the
// revoke call returned.
func TestAccessTokenConcurrency(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)
		admin := s.Bootstrap()
		c := tlClient(t)

		t.Run("use limit", func(t *testing.T) {
			const limit, workers = 10, 64
			_, tok := tlIdentity(t, s, admin, map[string]any{"accessTokenNumUsesLimit": limit})
			results := make([]tlResult, workers)
			apitest.Race(workers, func(k int) { results[k] = tlGet(c, s.URL, tlDetailsPath, tok) })
			ok := 0
			for k, r := range results {
				switch {
				case r.err != nil:
					t.Fatalf("request %d: %v", k, r.err)
				case r.status == http.StatusOK:
					ok++
				case r.status != http.StatusUnauthorized || r.message != tlUsesLimit:
					t.Errorf("request %d: %d %q, want 200 or 401 %q", k, r.status, r.message, tlUsesLimit)
				}
			}
			if ok != limit {
				t.Errorf("%d of %d concurrent requests succeeded with a use limit of %d", ok, workers, limit)
			}
			tlDetails(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlUsesLimit)
			tlRenew(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Cannot renew exhausted access token")
		})

		t.Run("revocation", func(t *testing.T) {
			const workers, after = 8, 10 // each worker makes `after` requests that start after the revocation
			_, tok := tlIdentity(t, s, admin, nil)
			renewed := tlRenew(s, tok).Expect(t, http.StatusOK).String("accessToken")
			var revoked atomic.Bool
			var warm, done sync.WaitGroup
			errs := make(chan string, workers*after)
			for k := 0; k < workers; k++ {
				warm.Add(1)
				done.Add(1)
				use := tok
				if k%2 == 1 {
					use = renewed
				}
				go func() {
					defer done.Done()
					warmed, seen := false, 0
					for seen < after {
						startedAfter := revoked.Load()
						r := tlGet(c, s.URL, tlDetailsPath, use)
						switch {
						case r.err != nil:
							errs <- r.err.Error()
							if !warmed {
								warm.Done()
							}
							return
						case startedAfter:
							seen++
							if r.status != http.StatusUnauthorized || r.message != tlRevoked {
								errs <- fmt.Sprintf("request started after the revocation answered %d %q", r.status, r.message)
							}
						case r.status != http.StatusOK && r.status != http.StatusUnauthorized:
							errs <- fmt.Sprintf("request during the revocation answered %d %q", r.status, r.message)
						}
						if !warmed {
							warmed = true
							warm.Done()
						}
					}
				}()
			}
			warm.Wait() // every worker has made a request
			tlRevoke(s, tok).Expect(t, http.StatusOK)
			revoked.Store(true)
			done.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
		})
	})
}

// TestAccessTokenRenewRevoke: renewing keeps the token's id and creation
// time and is capped by its max TTL; revoked, exhausted and expired tokens
// cannot be renewed; revoking reaches every renewed copy.
func TestAccessTokenRenewRevoke(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)
		admin := s.Bootstrap()

		t.Run("renew up to the max TTL", func(t *testing.T) {
			_, tok := tlIdentity(t, s, admin, map[string]any{"accessTokenTTL": 60, "accessTokenMaxTTL": 150})
			first := tlClaimsOf(t, tok)
			created := tlClaimInt(first, "creationEpoch")

			s.Clock.Advance(50 * time.Second)
			r := tlRenew(s, tok).Expect(t, http.StatusOK)
			if r.Number("expiresIn") != 60 || r.Number("accessTokenMaxTTL") != 150 || r.String("tokenType") != "Bearer" {
				t.Errorf("renew answered %s, want expiresIn 60, accessTokenMaxTTL 150, tokenType Bearer", r.Raw)
			}
			tok2 := r.String("accessToken")
			c := tlClaimsOf(t, tok2)
			if c["jti"] != first["jti"] || c["identityAccessTokenId"] != first["jti"] || tlClaimInt(c, "creationEpoch") != created {
				t.Errorf("renewal changed jti or creationEpoch: %v %v %v", c["jti"], c["identityAccessTokenId"], c["creationEpoch"])
			}
			if tlClaimInt(c, "iat") != created+50 || tlClaimInt(c, "exp") != created+110 {
				t.Errorf("renewal iat %v exp %v, want %d and %d", c["iat"], c["exp"], created+50, created+110)
			}
			tlDetails(s, tok2).Expect(t, http.StatusOK)

			// Form-encoded, 50 s of budget left: the renewal gets just that.
			s.Clock.Advance(50 * time.Second)
			r = tlForm(s, tlRenewPath, url.Values{"accessToken": {tok2}}).Expect(t, http.StatusOK)
			if r.Number("expiresIn") != 50 {
				t.Errorf("renew with 50 s of budget left answered expiresIn %v", r.Number("expiresIn"))
			}
			tok3 := r.String("accessToken")
			if c := tlClaimsOf(t, tok3); tlClaimInt(c, "exp") != created+150 || c["jti"] != first["jti"] {
				t.Errorf("last renewal exp %v jti %v, want %d and the same jti", c["exp"], c["jti"], created+150)
			}
			// The first token expires as it always would.
			tlDetails(s, tok).ExpectError(t, http.StatusForbidden, "TokenError", tlExpired)

			// Half a second of budget left: nothing to renew for.
			s.Clock.Advance(49*time.Second + 500*time.Millisecond)
			tlDetails(s, tok3).Expect(t, http.StatusOK)
			tlRenew(s, tok3).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Cannot renew: identity access token has reached its max TTL")
			s.Clock.Advance(500 * time.Millisecond)
			tlRenew(s, tok3).ExpectError(t, http.StatusForbidden, "TokenError", tlExpired)
			tlDetails(s, tok3).ExpectError(t, http.StatusForbidden, "TokenError", tlExpired)
		})

		t.Run("renew a token without max TTL", func(t *testing.T) {
			_, tok := tlIdentity(t, s, admin, map[string]any{"accessTokenTTL": 0, "accessTokenMaxTTL": 0})
			s.Clock.Advance(time.Hour)
			r := tlRenew(s, tok).Expect(t, http.StatusOK)
			if r.Number("expiresIn") != 7776000 || r.Number("accessTokenMaxTTL") != 0 {
				t.Errorf("renew of an unbounded token answered %s, want expiresIn 7776000 (the ceiling)", r.Raw)
			}
			// The bootstrap token renews too.
			if r := tlRenew(s, admin.Token).Expect(t, http.StatusOK); r.Number("expiresIn") != 7776000 {
				t.Errorf("renew of the bootstrap token answered %s", r.Raw)
			}
		})

		t.Run("revoke reaches renewed copies", func(t *testing.T) {
			_, tok := tlIdentity(t, s, admin, nil)
			renewed := tlRenew(s, tok).Expect(t, http.StatusOK).String("accessToken")
			r := tlForm(s, tlRevokePath, url.Values{"accessToken": {tok}}).Expect(t, http.StatusOK)
			if string(bytes.TrimSpace(r.Raw)) != `{"message":"Successfully revoked access token"}` {
				t.Errorf("revoke answered %s", r.Raw)
			}
			tlDetails(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlRevoked)
			tlDetails(s, renewed).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlRevoked)
			tlRenew(s, renewed).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Cannot renew: token has been revoked")
			tlRenew(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Cannot renew: token has been revoked")
			// Revoking again, with either copy, answers the same.
			tlRevoke(s, renewed).Expect(t, http.StatusOK)
		})

		t.Run("revoke the renewed copy", func(t *testing.T) {
			_, tok := tlIdentity(t, s, admin, nil)
			renewed := tlRenew(s, tok).Expect(t, http.StatusOK).String("accessToken")
			tlRevoke(s, renewed).Expect(t, http.StatusOK)
			tlDetails(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlRevoked)
			tlDetails(s, renewed).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlRevoked)
		})

		t.Run("exhausted", func(t *testing.T) {
			_, tok := tlIdentity(t, s, admin, map[string]any{"accessTokenNumUsesLimit": 2})
			tlDetails(s, tok).Expect(t, http.StatusOK)
			renewed := tlRenew(s, tok).Expect(t, http.StatusOK).String("accessToken")
			tlDetails(s, renewed).Expect(t, http.StatusOK) // the second use, whichever copy makes it
			tlDetails(s, renewed).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlUsesLimit)
			tlRenew(s, renewed).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Cannot renew exhausted access token")
			tlRenew(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Cannot renew exhausted access token")
		})

		// Expired revocation markers and use counters are purged; those of
		// a token whose renewed copy is still alive are not.
		t.Run("purge keeps what renewed copies need", func(t *testing.T) {
			policy := map[string]any{"accessTokenTTL": 3600, "accessTokenMaxTTL": 7200, "accessTokenNumUsesLimit": 2}
			_, limited := tlIdentity(t, s, admin, policy)
			_, revoked := tlIdentity(t, s, admin, policy)
			s.Clock.Advance(3000 * time.Second)
			limited2 := tlRenew(s, limited).Expect(t, http.StatusOK).String("accessToken")
			revoked2 := tlRenew(s, revoked).Expect(t, http.StatusOK).String("accessToken")
			tlDetails(s, limited).Expect(t, http.StatusOK) // the first use, through the older copy
			tlDetails(s, limited2).Expect(t, http.StatusOK)
			tlRevoke(s, revoked).Expect(t, http.StatusOK) // revoked through the older copy
			// The older copies expire; the newer ones live on.
			s.Clock.Advance(1000 * time.Second)
			if err := s.App.Store.PurgeExpired(context.Background(), s.Clock.Now()); err != nil {
				t.Fatal(err)
			}
			tlDetails(s, limited2).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlUsesLimit)
			tlDetails(s, revoked2).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlRevoked)
			tlRenew(s, limited2).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Cannot renew exhausted access token")
		})

		t.Run("expired", func(t *testing.T) {
			_, tok := tlIdentity(t, s, admin, map[string]any{"accessTokenTTL": 60})
			s.Clock.Advance(time.Minute)
			tlRenew(s, tok).ExpectError(t, http.StatusForbidden, "TokenError", tlExpired)
			tlRevoke(s, tok).ExpectError(t, http.StatusForbidden, "TokenError", tlExpired)
		})

		t.Run("detach and attach again", func(t *testing.T) {
			id, tok := tlIdentity(t, s, admin, nil)
			s.Delete("/api/v1/auth/azure-auth/identities/"+id, admin.Token).Expect(t, http.StatusOK)
			s.AttachAzure(admin.Token, id, nil)
			tlDetails(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlMethodGone)
			tlRenew(s, tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Cannot renew: auth method has been revoked")
			tlDetails(s, tlLogin(t, s, id).String("accessToken")).Expect(t, http.StatusOK)
		})

		t.Run("bad bodies", func(t *testing.T) {
			s.Post(tlRenewPath, "", map[string]string{}).ExpectIssue(t, "accessToken", "Required")
			s.Post(tlRevokePath, "", map[string]any{"accessToken": 1}).ExpectIssue(t, "accessToken", "")
			tlRenew(s, "garbage").ExpectError(t, http.StatusForbidden, "TokenError", tlMalformed)
			tlRevoke(s, "garbage").ExpectError(t, http.StatusForbidden, "TokenError", tlMalformed)
		})
	})
}

// TestAccessTokenCascades: detaching Azure Auth revokes every token it
// issued and no other; deleting an identity revokes all its tokens.
func TestAccessTokenCascades(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)
		admin := s.Bootstrap()

		t.Run("detach Azure Auth from the admin identity", func(t *testing.T) {
			s.AttachAzure(admin.Token, admin.ID, nil)
			azureTok := tlLogin(t, s, admin.ID).String("accessToken")
			if c := tlClaimsOf(t, azureTok); c["authMethod"] != "azure-auth" || c["identityId"] != admin.ID {
				t.Fatalf("admin's Azure token: %v", c)
			}
			azureTok2 := tlLogin(t, s, admin.ID).String("accessToken")
			tlDetails(s, azureTok).Expect(t, http.StatusOK)
			s.Delete("/api/v1/auth/azure-auth/identities/"+admin.ID, admin.Token).Expect(t, http.StatusOK)
			tlDetails(s, azureTok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlMethodGone)
			tlDetails(s, azureTok2).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlMethodGone)
			// The bootstrap token is Token Auth: it still works, privileged calls too.
			tlDetails(s, admin.Token).Expect(t, http.StatusOK)
			s.Get("/api/v1/identities/"+admin.ID, admin.Token).Expect(t, http.StatusOK)
			tlRenew(s, admin.Token).Expect(t, http.StatusOK)
		})

		t.Run("delete an identity", func(t *testing.T) {
			id, tok := tlIdentity(t, s, admin, nil)
			tok2 := tlLogin(t, s, id).String("accessToken")
			renewed := tlRenew(s, tok).Expect(t, http.StatusOK).String("accessToken")
			_, bystander := tlIdentity(t, s, admin, nil)
			s.Delete("/api/v1/identities/"+id, admin.Token).Expect(t, http.StatusOK)
			for _, tk := range []string{tok, tok2, renewed} {
				tlDetails(s, tk).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", tlIdentityGone)
			}
			tlRenew(s, tok2).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Cannot renew: identity tokens have been revoked")
			tlDetails(s, bystander).Expect(t, http.StatusOK)
			tlDetails(s, admin.Token).Expect(t, http.StatusOK)

			// With no secret configured, the generated one is kept in
			// table secrets, by design, and nowhere else; no token is kept.
			values := tlDumpDatabase(t, db, s.DSN)
			var secret []byte
			for _, v := range values {
				if v.table == "secrets" && v.column == "value" {
					secret = v.value
				}
			}
			if len(secret) < 32 {
				t.Fatalf("no generated signing secret in table secrets")
			}
			for _, v := range values {
				if v.table != "secrets" && bytes.Contains(v.value, secret) {
					t.Errorf("table %s column %s holds the signing secret", v.table, v.column)
				}
				for _, tk := range []string{admin.Token, tok, tok2, renewed, bystander} {
					if bytes.Contains(v.value, []byte(tk)) || bytes.Contains(v.value, []byte(tk[strings.LastIndexByte(tk, '.')+1:])) {
						t.Errorf("table %s column %s holds a token or its signature", v.table, v.column)
					}
				}
			}
		})
	})
}

// TestAccessTokenClientAddress: trusted IPs are checked against the socket
// address, or, behind a trusted proxy, against X-Forwarded-For read from
// the right; no header from an untrusted peer changes anything.
func TestAccessTokenClientAddress(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		direct := apitest.Start(t, db)
		admin := direct.Bootstrap()
		// A token that may be used from 10.0.0.0/8 only, from a test that
		// connects from 127.0.0.1.
		_, tok := tlIdentity(t, direct, admin, map[string]any{"accessTokenTrustedIps": tlTrustedIPs("10.0.0.0/8")})
		_, open := tlIdentity(t, direct, admin, nil)

		get := func(s *apitest.Server, tok string, h http.Header) *apitest.Response {
			return s.Do(apitest.Request{Method: http.MethodGet, Path: tlDetailsPath, Token: tok, Header: h})
		}
		renewWith := func(s *apitest.Server, tok string, h http.Header) *apitest.Response {
			return s.Do(apitest.Request{Method: http.MethodPost, Path: tlRenewPath, Body: map[string]string{"accessToken": tok}, Header: h})
		}
		forged := []http.Header{
			nil,
			{"X-Forwarded-For": {"10.1.1.1"}},
			{"X-Forwarded-For": {"10.1.1.1, 10.2.2.2"}},
			{"X-Real-Ip": {"10.1.1.1"}},
			{"Cf-Connecting-Ip": {"10.1.1.1"}},
			{"True-Client-Ip": {"10.1.1.1"}},
			{"X-Client-Ip": {"10.1.1.1"}},
			{"Fastly-Client-Ip": {"10.1.1.1"}},
			{"X-Envoy-External-Address": {"10.1.1.1"}},
			{"Forwarded": {"for=10.1.1.1"}},
			{"X-Forwarded-For": {"10.1.1.1"}, "X-Real-Ip": {"10.1.1.1"}, "Cf-Connecting-Ip": {"10.1.1.1"}, "True-Client-Ip": {"10.1.1.1"}},
		}
		t.Run("no trusted proxies", func(t *testing.T) {
			for _, h := range forged {
				get(direct, tok, h).ExpectError(t, http.StatusForbidden, "ForbiddenError", tlIP)
				renewWith(direct, tok, h).ExpectError(t, http.StatusForbidden, "ForbiddenError", tlIP)
				get(direct, open, h).Expect(t, http.StatusOK)
			}
		})

		// A second instance on the same database, behind a proxy on 127.0.0.0/8.
		proxied := apitest.Start(t, db, apitest.Options{DSN: direct.DSN, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		t.Run("behind a trusted proxy", func(t *testing.T) {
			for _, tc := range []struct {
				h    http.Header
				want int
			}{
				{http.Header{"X-Forwarded-For": {"10.1.1.1"}}, http.StatusOK},
				{http.Header{"X-Forwarded-For": {"10.1.1.1, 127.0.0.5"}}, http.StatusOK},                // a trusted hop is skipped
				{http.Header{"X-Forwarded-For": {"192.168.1.1, 10.1.1.1"}}, http.StatusOK},              // what the client wrote is left of it
				{http.Header{"X-Forwarded-For": {"192.168.1.1", "10.1.1.1, 127.0.0.9"}}, http.StatusOK}, // several header lines
				{http.Header{"X-Forwarded-For": {"::ffff:10.1.1.1"}}, http.StatusOK},
				{http.Header{"X-Forwarded-For": {"10.1.1.1, 192.168.1.1"}}, http.StatusForbidden}, // the client is 192.168.1.1
				{http.Header{"X-Forwarded-For": {"10.1.1.1, 192.168.1.1, 127.0.0.5"}}, http.StatusForbidden},
				{http.Header{"X-Forwarded-For": {"10.1.1.1, not-an-ip"}}, http.StatusForbidden}, // stops at the proxy
				{http.Header{"X-Forwarded-For": {"2001:db8::1"}}, http.StatusForbidden},
				{nil, http.StatusForbidden}, // the proxy itself
				{http.Header{"X-Real-Ip": {"10.1.1.1"}}, http.StatusForbidden},
				{http.Header{"Cf-Connecting-Ip": {"10.1.1.1"}, "True-Client-Ip": {"10.1.1.1"}}, http.StatusForbidden},
				{http.Header{"Forwarded": {"for=10.1.1.1"}}, http.StatusForbidden},
			} {
				r := get(proxied, tok, tc.h)
				if tc.want == http.StatusOK {
					r.Expect(t, http.StatusOK)
				} else {
					r.ExpectError(t, http.StatusForbidden, "ForbiddenError", tlIP)
				}
			}
			renewWith(proxied, tok, http.Header{"X-Forwarded-For": {"10.1.1.1"}}).Expect(t, http.StatusOK)
			renewWith(proxied, tok, nil).ExpectError(t, http.StatusForbidden, "ForbiddenError", tlIP)
			get(proxied, open, http.Header{"X-Forwarded-For": {"203.0.113.9"}}).Expect(t, http.StatusOK)
			// The first instance still refuses it.
			get(direct, tok, http.Header{"X-Forwarded-For": {"10.1.1.1"}}).ExpectError(t, http.StatusForbidden, "ForbiddenError", tlIP)
		})
	})
}

// tlLogBuffer collects log output written from the server's goroutines.
type tlLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *tlLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *tlLogBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// TestAccessTokenNothingReplayable: after tokens are issued, used, renewed
// and revoked, no table of the database and no log line holds a token, its
// signature, the Entra ID token it was exchanged for, or the signing secret.
func TestAccessTokenNothingReplayable(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		secret := []byte("the signing secret of this test: 0123456789abcdef")
		logs := &tlLogBuffer{}
		logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		s := apitest.Start(t, db, apitest.Options{AuthSecret: secret, Logger: logger, AccessLog: true})
		admin := s.Bootstrap()

		id := s.CreateIdentity(admin.Token, admin.OrgID, "web", "member")
		s.AttachAzure(admin.Token, id, map[string]any{"accessTokenNumUsesLimit": 5})
		entraJWT := s.Entra.Mint(entratest.TokenOptions{IssuedAt: s.Clock.Now()})
		tok := s.Post("/api/v1/auth/azure-auth/login", "", map[string]string{"identityId": id, "jwt": entraJWT}).Expect(t, http.StatusOK).String("accessToken")
		tlDetails(s, tok).Expect(t, http.StatusOK)
		renewed := tlForm(s, tlRenewPath, url.Values{"accessToken": {tok}}).Expect(t, http.StatusOK).String("accessToken")
		tlDetails(s, renewed).Expect(t, http.StatusOK)
		s.Get(tlDetailsPath+"?accessToken="+renewed, renewed).Expect(t, http.StatusOK)
		tlRevoke(s, renewed).Expect(t, http.StatusOK)
		tlDetails(s, renewed).Expect(t, http.StatusUnauthorized)
		tlRenew(s, renewed).Expect(t, http.StatusUnauthorized)
		// A second identity's token, left alive, and the failures that log.
		_, alive := tlIdentity(t, s, admin, nil)
		tlDetails(s, alive).Expect(t, http.StatusOK)
		tlDetails(s, alive[:len(alive)-2]).Expect(t, http.StatusForbidden)
		s.Post("/api/v1/auth/azure-auth/login", alive, map[string]string{"identityId": id, "jwt": alive})
		s.Post("/api/v1/auth/azure-auth/login", "", map[string]string{"identityId": id, "jwt": "not-a-jwt"})
		s.Post(tlRenewPath, alive, "{not json").Expect(t, http.StatusBadRequest)

		type needle struct {
			name  string
			value []byte
		}
		var needles []needle
		for name, tk := range map[string]string{"bootstrap token": admin.Token, "token": tok, "renewed token": renewed, "live token": alive} {
			sig := tk[strings.LastIndexByte(tk, '.')+1:]
			rawSig, err := tlB64.DecodeString(sig)
			if err != nil {
				t.Fatal(err)
			}
			needles = append(needles,
				needle{name, []byte(tk)},
				needle{name + " signature", []byte(sig)},
				needle{name + " signature bytes", rawSig},
				needle{name + " signature in hex", []byte(hex.EncodeToString(rawSig))})
		}
		needles = append(needles, needle{"Entra ID token", []byte(entraJWT)},
			needle{"Entra ID token signature", []byte(entraJWT[strings.LastIndexByte(entraJWT, '.')+1:])})
		for _, enc := range []string{string(secret), hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret),
			base64.RawURLEncoding.EncodeToString(secret)} {
			needles = append(needles, needle{"signing secret", []byte(enc)})
		}

		// The database: every value of every row of every table.
		values := tlDumpDatabase(t, db, s.DSN)
		jti := tlClaimsOf(t, tok)["jti"].(string)
		foundJTI := false
		for _, v := range values {
			for _, n := range needles {
				if bytes.Contains(v.value, n.value) {
					t.Errorf("table %s column %s holds the %s", v.table, v.column, n.name)
				}
			}
			foundJTI = foundJTI || bytes.Contains(v.value, []byte(jti))
		}
		if !foundJTI {
			t.Errorf("the database dump of %d values does not hold the revoked token's jti: the scan saw nothing", len(values))
		}

		// The logs.
		out := logs.Bytes()
		if !bytes.Contains(out, []byte(`"msg":"request"`)) || !bytes.Contains(out, []byte(tlRenewPath)) {
			t.Fatalf("no access log written: %s", out)
		}
		for _, n := range needles {
			if bytes.Contains(out, n.value) {
				t.Errorf("the logs hold the %s", n.name)
			}
		}
	})
}

type tlDBValue struct {
	table, column string
	value         []byte
}

// tlDumpDatabase reads every value of every table of the database at dsn.
func tlDumpDatabase(t testing.TB, db apitest.DB, dsn string) []tlDBValue {
	t.Helper()
	var conn *sql.DB
	var err error
	var list string
	if db == apitest.SQLite {
		conn, err = sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite:"))
		list = `SELECT name FROM sqlite_master WHERE type = 'table'`
	} else {
		conn, err = sql.Open("pgx", dsn)
		list = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(list)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if len(tables) < 5 {
		t.Fatalf("found only tables %v", tables)
	}
	var out []tlDBValue
	for _, table := range tables {
		rows, err := conn.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for k := range vals {
				ptrs[k] = &vals[k]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("read %s: %v", table, err)
			}
			for k, v := range vals {
				var b []byte
				switch v := v.(type) {
				case []byte:
					b = v
				case string:
					b = []byte(v)
				default:
					b = []byte(fmt.Sprint(v))
				}
				out = append(out, tlDBValue{table, cols[k], b})
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

// tlJWS returns a compact JWS of header and payload, signed with HMAC under
// key (an empty signature when h is nil).
func tlJWS(header, payload string, key []byte, h func() hash.Hash) string {
	msg := tlB64.EncodeToString([]byte(header)) + "." + tlB64.EncodeToString([]byte(payload))
	if h == nil {
		return msg + "."
	}
	mac := hmac.New(h, key)
	mac.Write([]byte(msg))
	return msg + "." + tlB64.EncodeToString(mac.Sum(nil))
}

// tlWithClaims returns the claims of tok changed by change, as JSON.
func tlWithClaims(t testing.TB, tok string, change func(c map[string]any)) string {
	t.Helper()
	c := tlClaimsOf(t, tok)
	change(c)
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAccessTokenForgeries: every token not signed by this server with
// HS256, or signed but lacking the core claims, is refused.
func TestAccessTokenForgeries(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		secret := []byte("the signing secret of this test: 0123456789abcdef")
		s := apitest.Start(t, db, apitest.Options{AuthSecret: secret})
		admin := s.Bootstrap()
		id, tok := tlIdentity(t, s, admin, nil)
		tlDetails(s, tok).Expect(t, http.StatusOK)
		parts := strings.Split(tok, ".")
		hs256 := `{"alg":"HS256","typ":"JWT"}`
		now := s.Clock.Now().Unix()
		noop := func(map[string]any) {}

		tests := []struct {
			name, tok    string
			status       int
			errName, msg string
		}{
			{"claims changed, old signature", tlB64.EncodeToString([]byte(hs256)) + "." +
				tlB64.EncodeToString([]byte(tlWithClaims(t, tok, func(c map[string]any) { c["identityId"] = admin.ID }))) + "." + parts[2],
				http.StatusForbidden, "TokenError", tlSignature},
			{"exp extended, old signature", parts[0] + "." +
				tlB64.EncodeToString([]byte(tlWithClaims(t, tok, func(c map[string]any) { c["exp"] = now + 1e9 }))) + "." + parts[2],
				http.StatusForbidden, "TokenError", tlSignature},
			{"signature dropped", parts[0] + "." + parts[1] + ".", http.StatusForbidden, "TokenError", tlSignature},
			{"alg none", tlJWS(`{"alg":"none","typ":"JWT"}`, tlWithClaims(t, tok, noop), nil, nil), http.StatusForbidden, "TokenError", tlAlgorithm},
			{"alg none with the old signature", tlB64.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "." + parts[2], http.StatusForbidden, "TokenError", tlAlgorithm},
			{"HS512 with the server's secret", tlJWS(`{"alg":"HS512","typ":"JWT"}`, tlWithClaims(t, tok, noop), secret, sha512.New), http.StatusForbidden, "TokenError", tlAlgorithm},
			{"RS256 header", tlB64.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","kid":"k1"}`)) + "." + parts[1] + "." + tlB64.EncodeToString(make([]byte, 256)),
				http.StatusForbidden, "TokenError", tlAlgorithm},
			{"another key", tlJWS(hs256, tlWithClaims(t, tok, noop), []byte("not the server's secret, but as long as one"), sha256.New), http.StatusForbidden, "TokenError", tlSignature},
			{"garbage", "garbage", http.StatusForbidden, "TokenError", tlMalformed},
			{"two parts", parts[0] + "." + parts[1], http.StatusForbidden, "TokenError", tlMalformed},
			{"signature not base64", parts[0] + "." + parts[1] + ".***", http.StatusForbidden, "TokenError", tlMalformed},
			{"expired, signed", tlJWS(hs256, tlWithClaims(t, tok, func(c map[string]any) { c["iat"], c["exp"] = now-120, now-60 }), secret, sha256.New),
				http.StatusForbidden, "TokenError", tlExpired},
			{"no identityId, signed", tlJWS(hs256, tlWithClaims(t, tok, func(c map[string]any) { delete(c, "identityId") }), secret, sha256.New),
				http.StatusUnauthorized, "UnauthorizedError", tlClaims},
			{"no jti, signed", tlJWS(hs256, tlWithClaims(t, tok, func(c map[string]any) { delete(c, "jti") }), secret, sha256.New),
				http.StatusUnauthorized, "UnauthorizedError", tlClaims},
			{"no identityAccessTokenId, signed", tlJWS(hs256, tlWithClaims(t, tok, func(c map[string]any) { delete(c, "identityAccessTokenId") }), secret, sha256.New),
				http.StatusUnauthorized, "UnauthorizedError", tlClaims},
			{"no iat, signed", tlJWS(hs256, tlWithClaims(t, tok, func(c map[string]any) { delete(c, "iat") }), secret, sha256.New),
				http.StatusUnauthorized, "UnauthorizedError", tlClaims},
			{"no exp, signed", tlJWS(hs256, tlWithClaims(t, tok, func(c map[string]any) { delete(c, "exp") }), secret, sha256.New),
				http.StatusUnauthorized, "UnauthorizedError", tlClaims},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tlDetails(s, tt.tok).ExpectError(t, tt.status, tt.errName, tt.msg)
				if tt.status == http.StatusForbidden {
					tlRenew(s, tt.tok).ExpectError(t, tt.status, tt.errName, tt.msg)
					tlRevoke(s, tt.tok).ExpectError(t, tt.status, tt.errName, tt.msg)
				}
			})
		}
		// A token of another type, signed: never accepted as an identity's.
		other := tlJWS(hs256, tlWithClaims(t, tok, func(c map[string]any) { c["authTokenType"] = "jwt" }), secret, sha256.New)
		if r := tlDetails(s, other); r.Status != http.StatusUnauthorized && r.Status != http.StatusForbidden {
			t.Errorf("token of another type answered %d %s", r.Status, r.Raw)
		}
		tlRenew(s, other).ExpectError(t, http.StatusBadRequest, "BadRequest", "Token is not an identity access token")

		// Another server: same database, another secret. Neither accepts
		// the other's tokens.
		s2 := apitest.Start(t, db, apitest.Options{DSN: s.DSN, AuthSecret: []byte("another server's secret: 0123456789abcdef")})
		tok2 := tlLogin(t, s2, id).String("accessToken")
		tlDetails(s2, tok2).Expect(t, http.StatusOK)
		tlDetails(s, tok2).ExpectError(t, http.StatusForbidden, "TokenError", tlSignature)
		tlDetails(s2, tok).ExpectError(t, http.StatusForbidden, "TokenError", tlSignature)
		tlRenew(s, tok2).ExpectError(t, http.StatusForbidden, "TokenError", tlSignature)
		// The real token is untouched by all of this.
		tlDetails(s, tok).Expect(t, http.StatusOK)
	})
}
