package conformance

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"
	api "github.com/infisical/go-sdk/packages/api/auth"
	sdkerrors "github.com/infisical/go-sdk/packages/errors"
)

const (
	tenant   = "7d3c1f0a-5b2e-4c8d-9a6f-1e2b3c4d5e6f"
	objectID = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
	resource = "https://management.azure.com/"
)

// TestGoSDKAzureAuth logs in, renews and revokes through the Infisical Go
// SDK's auth API, as its AzureAuthLogin and token refresh loop do.
func TestGoSDKAzureAuth(t *testing.T) {
	entra := newFakeEntra(t)
	srv := startGatehouse(t, entra.URL)

	var boot struct {
		Organization struct{ ID string } `json:"organization"`
		Identity     struct {
			Credentials struct{ Token string } `json:"credentials"`
		} `json:"identity"`
	}
	srv.call(t, "POST", "/api/v1/admin/bootstrap", "",
		map[string]string{"email": "admin@example.com", "password": "correct horse", "organization": "Acme"}, http.StatusOK, &boot)
	admin := boot.Identity.Credentials.Token
	withAzure := srv.createIdentity(t, admin, boot.Organization.ID, "web")
	srv.call(t, "POST", "/api/v1/auth/azure-auth/identities/"+withAzure, admin, map[string]any{
		"tenantId": tenant, "resource": resource, "allowedServicePrincipalIds": objectID,
		"accessTokenTTL": 3600, "accessTokenMaxTTL": 7200,
	}, http.StatusOK, nil)
	withoutAzure := srv.createIdentity(t, admin, boot.Organization.ID, "batch")

	// The SDK's base URL is <SiteUrl>/api. A stale bearer on the client must
	// not matter: the SDK clears it for login and renew.
	client := resty.New().SetBaseURL(srv.URL + "/api").SetAuthToken("stale")

	cred, err := api.CallAzureAuthLogin(client, api.AzureAuthLoginRequest{IdentityID: withAzure, JWT: entra.mint(tenant, resource, objectID)})
	if err != nil {
		t.Fatalf("CallAzureAuthLogin: %v", err)
	}
	if cred.AccessToken == "" || cred.TokenType != "Bearer" || cred.ExpiresIn != 3600 || cred.AccessTokenMaxTTL != 7200 {
		t.Fatalf("login credential %+v, want a Bearer token with expiresIn 3600 and accessTokenMaxTTL 7200", cred)
	}
	srv.call(t, "GET", "/api/v1/identities/details", cred.AccessToken, nil, http.StatusOK, nil)

	renewed, err := api.CallRenewAccessToken(client, api.RenewAccessTokenRequest{AccessToken: cred.AccessToken})
	if err != nil {
		t.Fatalf("CallRenewAccessToken: %v", err)
	}
	if renewed.AccessToken == "" || renewed.TokenType != "Bearer" || renewed.ExpiresIn <= 0 || renewed.ExpiresIn > 3600 || renewed.AccessTokenMaxTTL != 7200 {
		t.Fatalf("renewed credential %+v", renewed)
	}
	srv.call(t, "GET", "/api/v1/identities/details", renewed.AccessToken, nil, http.StatusOK, nil)

	// The SDK revokes with the token as its bearer.
	revoke, err := api.CallRevokeAccessToken(client.Clone().SetAuthToken(renewed.AccessToken),
		api.RevokeAccessTokenRequest{AccessToken: renewed.AccessToken})
	if err != nil {
		t.Fatalf("CallRevokeAccessToken: %v", err)
	}
	if revoke.Message != "Successfully revoked access token" {
		t.Errorf("revoke message %q", revoke.Message)
	}
	// Revocation covers the token and every renewal of it.
	for _, tok := range []string{renewed.AccessToken, cred.AccessToken} {
		srv.call(t, "GET", "/api/v1/identities/details", tok, nil, http.StatusUnauthorized, nil)
	}
	_, err = api.CallRenewAccessToken(client, api.RenewAccessTokenRequest{AccessToken: renewed.AccessToken})
	expectAPIError(t, err, http.StatusUnauthorized, "")

	t.Run("errors", func(t *testing.T) {
		_, err := api.CallAzureAuthLogin(client, api.AzureAuthLoginRequest{IdentityID: withoutAzure, JWT: entra.mint(tenant, resource, objectID)})
		expectAPIError(t, err, http.StatusNotFound, "Azure auth method not found for identity, did you configure Azure Auth?")

		_, err = api.CallAzureAuthLogin(client, api.AzureAuthLoginRequest{IdentityID: withAzure, JWT: entra.mint(tenant, resource, "someone-else")})
		expectAPIError(t, err, http.StatusUnauthorized, "Service principal 'someone-else' not allowed")

		_, err = api.CallAzureAuthLogin(client, api.AzureAuthLoginRequest{IdentityID: withAzure, JWT: entra.mint(tenant, "https://vault.azure.net", objectID)})
		expectAPIError(t, err, http.StatusForbidden, "jwt audience invalid. expected: "+resource)

		_, err = api.CallAzureAuthLogin(client, api.AzureAuthLoginRequest{IdentityID: withAzure, JWT: entra.mint(tenant, resource, objectID), OrganizationSlug: "nope"})
		expectAPIError(t, err, http.StatusNotFound, "Sub organization with slug nope not found")

		_, err = api.CallAzureAuthLogin(client, api.AzureAuthLoginRequest{IdentityID: withAzure})
		expectAPIError(t, err, http.StatusForbidden, "jwt malformed") // the SDK sends "jwt":""

		// A 422 reaches the SDK as the whole body.
		_, err = api.CallAzureAuthLogin(client, api.AzureAuthLoginRequest{IdentityID: "not-a-uuid", JWT: entra.mint(tenant, resource, objectID)})
		apiErr := expectAPIError(t, err, http.StatusUnprocessableEntity, "")
		if !strings.Contains(apiErr.ErrorMessage, `"ValidationFailure"`) {
			t.Errorf("422 message %q does not carry the body", apiErr.ErrorMessage)
		}
	})
}

// expectAPIError fails unless err is the SDK's *APIError with status, a
// request id, and (when not "") message.
func expectAPIError(t *testing.T, err error, status int, message string) *sdkerrors.APIError {
	t.Helper()
	var apiErr *sdkerrors.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %v (%T), want *errors.APIError", err, err)
	}
	if apiErr.StatusCode != status {
		t.Errorf("status %d, want %d: %v", apiErr.StatusCode, status, apiErr)
	}
	if message != "" && apiErr.ErrorMessage != message {
		t.Errorf("message %q, want %q", apiErr.ErrorMessage, message)
	}
	if !strings.HasPrefix(apiErr.ReqId, "req-") {
		t.Errorf("reqId %q", apiErr.ReqId)
	}
	return apiErr
}

// fakeEntra serves one signing key for every tenant at
// /{tenant}/discovery/keys and mints v1 managed-identity tokens with it.
type fakeEntra struct {
	URL  string
	key  *rsa.PrivateKey
	kid  string
	cert []byte
}

func newFakeEntra(t *testing.T) *fakeEntra {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "accounts.accesscontrol.windows.net"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	thumb := sha1.Sum(cert)
	f := &fakeEntra{key: key, kid: base64.RawURLEncoding.EncodeToString(thumb[:]), cert: cert}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/discovery/keys", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]any{{
			"kty": "RSA", "use": "sig", "kid": f.kid, "x5t": f.kid,
			"n":   base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
			"x5c": []string{base64.StdEncoding.EncodeToString(cert)},
		}}})
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	f.URL = hs.URL
	return f
}

// mint returns a v1 token for tenant tid and audience aud whose principal
// is oid, valid for an hour.
func (f *fakeEntra) mint(tid, aud, oid string) string {
	now := time.Now()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(map[string]string{"typ": "JWT", "alg": "RS256", "x5t": f.kid, "kid": f.kid}) + "." + enc(map[string]any{
		"aud": aud, "iss": "https://sts.windows.net/" + tid + "/", "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "idtyp": "app", "oid": oid, "sub": oid, "tid": tid,
		"appid": "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f", "ver": "1.0",
	})
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, f.key, crypto.SHA256, digest[:])
	if err != nil {
		panic(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// binary builds the gatehouse command of the parent module once.
var binary struct {
	once sync.Once
	path string
	err  error
}

func gatehouseBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "gatehouse-conformance-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "gatehouse")
		cmd := exec.Command("go", "build", "-o", binary.path, "./cmd/gatehouse")
		cmd.Dir = ".." // the server's own module: its go.mod, without the SDK
		// -mod=readonly: never let this build touch the parent's go.mod.
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly -buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = errors.New("go build ./cmd/gatehouse: " + err.Error() + "\n" + string(out))
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.path != "" {
		os.RemoveAll(filepath.Dir(binary.path))
	}
	os.Exit(code)
}

// gatehouse is a running server process.
type gatehouse struct {
	URL string
}

// startGatehouse starts `gatehouse serve` on a free loopback port with a
// fresh SQLite database, fetching Entra ID keys from authority. The server
// is stopped when the test ends; its log is shown if the test failed.
func startGatehouse(t *testing.T, authority string) *gatehouse {
	t.Helper()
	bin := gatehouseBinary(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(dir, "gatehouse.db"))
	env := []string{"AZURE_AUTHORITY_HOST=" + authority}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEHOUSE_") && !strings.HasPrefix(kv, "AZURE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		logMu sync.Mutex
		log   bytes.Buffer
	)
	url := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			logMu.Lock()
			log.Write(line)
			log.WriteByte('\n')
			logMu.Unlock()
			var rec struct{ Msg, URL string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "gatehouse listening" {
				select {
				case url <- rec.URL:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		<-copied
		if t.Failed() {
			logMu.Lock()
			t.Logf("gatehouse log:\n%s", log.String())
			logMu.Unlock()
		}
	})
	select {
	case u := <-url:
		return &gatehouse{URL: u}
	case err := <-exited:
		exited <- err
		t.Fatalf("gatehouse serve exited before listening: %v", err)
	case <-time.After(2 * time.Minute): // an upper bound, not a timing assumption
		t.Fatal("gatehouse serve did not start listening")
	}
	return nil
}

// call sends a JSON request and fails the test unless the answer has
// status; a 200 answer is decoded into out when out is not nil.
func (g *gatehouse) call(t *testing.T, method, path, token string, body any, status int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, g.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v; body %s", method, path, err, raw)
		}
	}
}

func (g *gatehouse) createIdentity(t *testing.T, admin, orgID, name string) string {
	t.Helper()
	var out struct {
		Identity struct{ ID string } `json:"identity"`
	}
	g.call(t, "POST", "/api/v1/identities", admin, map[string]string{"name": name, "organizationId": orgID, "role": "member"}, http.StatusOK, &out)
	return out.Identity.ID
}
