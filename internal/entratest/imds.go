package entratest

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// IMDSPath is the path of the IMDS token endpoint.
const IMDSPath = "/metadata/identity/oauth2/token"

// AppServicePath is the path of the fake App Service identity endpoint
// (what IDENTITY_ENDPOINT points to).
const AppServicePath = "/msi/token"

// IMDS fakes the managed-identity token endpoints of an Azure VM (IMDS) and
// of App Service / Functions, handing out tokens minted by an Entra Server.
// Without client_id a request gets the system-assigned identity
// (DefaultObjectID, DefaultAppID); with one, the user-assigned identity
// registered with AddIdentity, or a 400 "Identity not found".
type IMDS struct {
	http   *httptest.Server
	entra  *Server
	tenant string
	secret string

	mu         sync.Mutex
	identities map[string]string // client id -> object id
	requests   int
	status     int
	body       string
}

// NewIMDS starts a fake IMDS whose tokens are minted by srv for tenant. It
// is closed when the test ends.
func NewIMDS(t testing.TB, srv *Server, tenant string) *IMDS {
	m := &IMDS{entra: srv, tenant: tenant, secret: randomID(32), identities: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+IMDSPath, m.serveIMDS)
	mux.HandleFunc("GET "+AppServicePath, m.serveAppService)
	m.http = httptest.NewServer(mux)
	t.Cleanup(m.http.Close)
	return m
}

// Endpoint is the URL of the IMDS token endpoint (the fake's
// http://169.254.169.254/metadata/identity/oauth2/token).
func (m *IMDS) Endpoint() string { return m.http.URL + IMDSPath }

// IdentityEndpoint and IdentityHeader are the values App Service puts in
// IDENTITY_ENDPOINT and IDENTITY_HEADER.
func (m *IMDS) IdentityEndpoint() string { return m.http.URL + AppServicePath }

// IdentityHeader is the secret App Service expects in X-IDENTITY-HEADER.
func (m *IMDS) IdentityHeader() string { return m.secret }

// AddIdentity registers a user-assigned identity: requests with client_id
// get tokens with oid objectID and appid clientID.
func (m *IMDS) AddIdentity(clientID, objectID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.identities[clientID] = objectID
}

// SetResponse makes every request answer status with body; 0 restores
// normal service.
func (m *IMDS) SetResponse(status int, body string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status, m.body = status, body
}

// Requests returns the number of token requests received.
func (m *IMDS) Requests() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests
}

// begin counts a request and answers it if a response is forced.
func (m *IMDS) begin(w http.ResponseWriter) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests++
	if m.status != 0 {
		w.WriteHeader(m.status)
		fmt.Fprint(w, m.body)
		return false
	}
	return true
}

// identity resolves the client_id parameter to (appid, oid).
func (m *IMDS) identity(clientID string) (appID, objectID string, ok bool) {
	if clientID == "" {
		return DefaultAppID, DefaultObjectID, true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	oid, ok := m.identities[clientID]
	return clientID, oid, ok
}

func (m *IMDS) serveIMDS(w http.ResponseWriter, r *http.Request) {
	if !m.begin(w) {
		return
	}
	fail := func(msg string) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": msg})
	}
	q := r.URL.Query()
	switch {
	case r.Header.Get("Metadata") != "true":
		fail("Required metadata header not specified")
		return
	case q.Get("api-version") == "":
		fail("Required query variable 'api-version' is missing")
		return
	case q.Get("api-version") != "2018-02-01":
		fail("Invalid api-version")
		return
	case q.Get("resource") == "":
		fail("Required query variable 'resource' is missing")
		return
	}
	appID, oid, ok := m.identity(q.Get("client_id"))
	if !ok {
		fail("Identity not found")
		return
	}
	now := time.Now()
	resource := q.Get("resource")
	tok := m.entra.Mint(TokenOptions{Tenant: m.tenant, Audience: resource, ObjectID: oid, AppID: appID, IssuedAt: now})
	expiresIn := strconv.FormatInt(int64(DefaultLifetime/time.Second)-1, 10)
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token":   tok,
		"client_id":      appID,
		"expires_in":     expiresIn,
		"expires_on":     strconv.FormatInt(now.Add(DefaultLifetime).Unix(), 10),
		"ext_expires_in": expiresIn,
		"not_before":     strconv.FormatInt(now.Unix(), 10),
		"resource":       resource,
		"token_type":     "Bearer",
	})
}

func (m *IMDS) serveAppService(w http.ResponseWriter, r *http.Request) {
	if !m.begin(w) {
		return
	}
	fail := func(status int, msg string) {
		writeJSON(w, status, map[string]any{"statusCode": status, "message": msg, "correlationId": randomID(16)})
	}
	q := r.URL.Query()
	switch {
	case subtle.ConstantTimeCompare([]byte(r.Header.Get("X-IDENTITY-HEADER")), []byte(m.secret)) != 1:
		fail(http.StatusUnauthorized, "The X-IDENTITY-HEADER header is missing or invalid.")
		return
	case q.Get("api-version") != "2019-08-01":
		fail(http.StatusBadRequest, "The api-version query parameter is missing or not supported.")
		return
	case q.Get("resource") == "":
		fail(http.StatusBadRequest, "The resource query parameter is missing.")
		return
	}
	appID, oid, ok := m.identity(q.Get("client_id"))
	if !ok {
		fail(http.StatusBadRequest, "Unable to load the requested managed identity.")
		return
	}
	now := time.Now()
	resource := q.Get("resource")
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token": m.entra.Mint(TokenOptions{Tenant: m.tenant, Audience: resource, ObjectID: oid, AppID: appID, IssuedAt: now}),
		"expires_on":   strconv.FormatInt(now.Add(DefaultLifetime).Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    appID,
	})
}
