package azureidentity_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/azureidentity"
	"github.com/gatehouse/gatehouse/entra"
	"github.com/gatehouse/gatehouse/internal/entratest"
)

const tenant = entratest.DefaultTenant

// recorder is an http.RoundTripper that remembers requests and refuses to
// reach the real IMDS address.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	if req.URL.Hostname() == "169.254.169.254" {
		return nil, errors.New("no IMDS in tests")
	}
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) last(t *testing.T) *http.Request {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("no request sent")
	}
	return r.reqs[len(r.reqs)-1]
}

type fixture struct {
	entra *entratest.Server
	imds  *entratest.IMDS
	rec   *recorder
	v     *entra.Verifier
}

func setup(t *testing.T) *fixture {
	srv := entratest.New(t)
	v, err := entra.NewVerifier(entra.Config{AuthorityHost: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return &fixture{entra: srv, imds: entratest.NewIMDS(t, srv, tenant), rec: &recorder{}, v: v}
}

func (f *fixture) client() *http.Client { return &http.Client{Transport: f.rec} }

// env returns a Getenv with the given variables and nothing else.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestTokenFromIMDS(t *testing.T) {
	f := setup(t)
	f.imds.AddIdentity("uami-client", "uami-object")
	tests := []struct {
		name, clientID, resource       string
		wantAud, wantOID, wantAppID    string
		wantQueryResource, wantQueryID string
	}{
		{"system-assigned, default resource", "", "", azureidentity.DefaultResource, entratest.DefaultObjectID, entratest.DefaultAppID, azureidentity.DefaultResource, ""},
		{"user-assigned", "uami-client", "api://gatehouse", "api://gatehouse", "uami-object", "uami-client", "api://gatehouse", "uami-client"},
		{"resource needing escapes", "", "api://app?x=1&y=a b#c", "api://app?x=1&y=a b#c", entratest.DefaultObjectID, entratest.DefaultAppID, "api://app?x=1&y=a b#c", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := azureidentity.Source{Endpoint: f.imds.Endpoint(), ClientID: tc.clientID, HTTPClient: f.client(), Getenv: env()}
			tok, err := src.Token(context.Background(), tc.resource)
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			claims, err := f.v.Verify(context.Background(), tok, tenant, tc.wantAud)
			if err != nil {
				t.Fatalf("the token does not verify: %v", err)
			}
			if claims.ObjectID != tc.wantOID || claims.AppID != tc.wantAppID {
				t.Errorf("oid, appid = %q, %q; want %q, %q", claims.ObjectID, claims.AppID, tc.wantOID, tc.wantAppID)
			}
			req := f.rec.last(t)
			q := req.URL.Query()
			if req.Header.Get("Metadata") != "true" || q.Get("api-version") != "2018-02-01" || q.Get("resource") != tc.wantQueryResource || q.Get("client_id") != tc.wantQueryID {
				t.Errorf("request %s with Metadata=%q", req.URL, req.Header.Get("Metadata"))
			}
			if q.Has("client_id") != (tc.clientID != "") {
				t.Errorf("client_id sent = %v", q.Has("client_id"))
			}
		})
	}
}

func TestTokenFromAppService(t *testing.T) {
	f := setup(t)
	f.imds.AddIdentity("uami-client", "uami-object")
	src := azureidentity.Source{
		ClientID:   "uami-client",
		HTTPClient: f.client(),
		Getenv:     env("IDENTITY_ENDPOINT", f.imds.IdentityEndpoint(), "IDENTITY_HEADER", f.imds.IdentityHeader()),
	}
	tok, err := src.Token(context.Background(), "api://gatehouse")
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	claims, err := f.v.Verify(context.Background(), tok, tenant, "api://gatehouse")
	if err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}
	if claims.ObjectID != "uami-object" {
		t.Errorf("oid = %q", claims.ObjectID)
	}
	req := f.rec.last(t)
	if !strings.HasPrefix(req.URL.String(), f.imds.IdentityEndpoint()+"?") || req.URL.Query().Get("api-version") != "2019-08-01" ||
		req.URL.Query().Get("client_id") != "uami-client" || req.Header.Get("X-IDENTITY-HEADER") != f.imds.IdentityHeader() || req.Header.Get("Metadata") != "" {
		t.Errorf("request %s with headers %v", req.URL, req.Header)
	}
}

func TestEndpointChoice(t *testing.T) {
	f := setup(t)
	appService := env("IDENTITY_ENDPOINT", f.imds.IdentityEndpoint(), "IDENTITY_HEADER", f.imds.IdentityHeader())
	tests := []struct {
		name    string
		src     azureidentity.Source
		wantURL string
	}{
		{"explicit Endpoint wins over the environment", azureidentity.Source{Endpoint: f.imds.Endpoint(), Getenv: appService}, f.imds.Endpoint()},
		{"IDENTITY_ENDPOINT alone is not enough", azureidentity.Source{Getenv: env("IDENTITY_ENDPOINT", f.imds.IdentityEndpoint())}, azureidentity.DefaultEndpoint},
		{"IDENTITY_HEADER alone is not enough", azureidentity.Source{Getenv: env("IDENTITY_HEADER", "x")}, azureidentity.DefaultEndpoint},
		{"both select App Service", azureidentity.Source{Getenv: appService}, f.imds.IdentityEndpoint()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.src.HTTPClient = f.client()
			tc.src.Token(context.Background(), "")
			if u := f.rec.last(t).URL; u.Scheme+"://"+u.Host+u.Path != tc.wantURL {
				t.Errorf("asked %s, want %s", u, tc.wantURL)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	f := setup(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	imds := func(clientID string) azureidentity.Source {
		return azureidentity.Source{Endpoint: f.imds.Endpoint(), ClientID: clientID, HTTPClient: f.client(), Getenv: env()}
	}
	tests := []struct {
		name         string
		src          azureidentity.Source
		status       int // forced answer of the fake, if not 0
		body         string
		kind         gatehouse.Kind
		wantContains []string
	}{
		{
			name: "unknown user-assigned identity", src: imds("nobody"), kind: gatehouse.KindInvalid,
			wantContains: []string{"IMDS " + f.imds.Endpoint() + " answered 400 Bad Request: invalid_request: Identity not found"},
		},
		{
			name: "App Service with a wrong secret",
			src: azureidentity.Source{HTTPClient: f.client(),
				Getenv: env("IDENTITY_ENDPOINT", f.imds.IdentityEndpoint(), "IDENTITY_HEADER", "wrong")},
			kind: gatehouse.KindInvalid,
			wantContains: []string{"App Service identity endpoint " + f.imds.IdentityEndpoint() +
				" answered 401 Unauthorized: The X-IDENTITY-HEADER header is missing or invalid."},
		},
		{
			name: "server error with a text body", src: imds(""), status: 500, body: "oops\n", kind: gatehouse.KindUnavailable,
			wantContains: []string{"answered 500 Internal Server Error: oops"},
		},
		{
			name: "throttled", src: imds(""), status: 429, body: `{"error":"too_many_requests","error_description":"Too many requests"}`, kind: gatehouse.KindUnavailable,
			wantContains: []string{"answered 429 Too Many Requests: too_many_requests: Too many requests"},
		},
		{
			name: "IMDS being updated", src: imds(""), status: 410, body: `{"error":"unavailable","error_description":"IMDS is being updated"}`, kind: gatehouse.KindUnavailable,
			wantContains: []string{"answered 410 Gone: unavailable: IMDS is being updated"},
		},
		{
			name: "nested error object", src: imds(""), status: 400, body: `{"error":{"code":"BadRequest","message":"Bad resource"}}`, kind: gatehouse.KindInvalid,
			wantContains: []string{"answered 400 Bad Request: BadRequest: Bad resource"},
		},
		{
			name: "200 without a token", src: imds(""), status: 200, body: `{"token_type":"Bearer"}`, kind: gatehouse.KindUnavailable,
			wantContains: []string{"answered 200 without an access_token"},
		},
		{
			name: "unreachable", src: azureidentity.Source{Endpoint: closed.URL + entratest.IMDSPath, HTTPClient: f.client()}, kind: gatehouse.KindUnavailable,
			wantContains: []string{"cannot reach IMDS " + closed.URL + entratest.IMDSPath},
		},
		{
			name: "default endpoint unreachable", src: azureidentity.Source{HTTPClient: f.client(), Getenv: env()}, kind: gatehouse.KindUnavailable,
			wantContains: []string{"cannot reach IMDS http://169.254.169.254/metadata/identity/oauth2/token"},
		},
		{
			name: "not an http URL", src: azureidentity.Source{Endpoint: "file:///etc/passwd"}, kind: gatehouse.KindInvalid,
			wantContains: []string{`IMDS URL "file:///etc/passwd" is not an http(s) URL`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.imds.SetResponse(tc.status, tc.body)
			defer f.imds.SetResponse(0, "")
			tok, err := tc.src.Token(context.Background(), "")
			if err == nil {
				t.Fatalf("Token = %q, want an error", tok)
			}
			if tok != "" {
				t.Errorf("Token returned %q with the error", tok)
			}
			if gatehouse.KindOf(err) != tc.kind {
				t.Errorf("kind = %d, want %d (%v)", gatehouse.KindOf(err), tc.kind, err)
			}
			msg := gatehouse.ErrorMessage(err)
			for _, want := range tc.wantContains {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not contain %q", msg, want)
				}
			}
		})
	}
}

func TestErrorsNeverCarryTheSecretHeader(t *testing.T) {
	f := setup(t)
	f.imds.SetResponse(500, "boom")
	src := azureidentity.Source{HTTPClient: f.client(),
		Getenv: env("IDENTITY_ENDPOINT", f.imds.IdentityEndpoint(), "IDENTITY_HEADER", f.imds.IdentityHeader())}
	_, err := src.Token(context.Background(), "")
	if err == nil || strings.Contains(err.Error(), f.imds.IdentityHeader()) {
		t.Fatalf("error %v", err)
	}
}
