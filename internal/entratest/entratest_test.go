package entratest

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func getJSON(t *testing.T, url string, header http.Header) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, doc
}

func decodeToken(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func TestDiscovery(t *testing.T) {
	s := New(t)
	for _, tc := range []struct{ cloud, path, iss, jwks string }{
		{"public", "/t1/.well-known/openid-configuration", "https://sts.windows.net/t1/", s.URL() + "/t1/discovery/keys"},
		{"public", "/t1/v2.0/.well-known/openid-configuration", "https://login.microsoftonline.com/t1/v2.0", s.URL() + "/t1/discovery/v2.0/keys"},
		{"usgovernment", "/t1/v2.0/.well-known/openid-configuration", "https://login.microsoftonline.us/t1/v2.0", s.URL() + "/t1/discovery/v2.0/keys"},
		{"china", "/t1/.well-known/openid-configuration", "https://sts.chinacloudapi.cn/t1/", s.URL() + "/t1/discovery/keys"},
	} {
		s.SetCloud(tc.cloud)
		_, doc := getJSON(t, s.URL()+tc.path, nil)
		if doc["issuer"] != tc.iss || doc["jwks_uri"] != tc.jwks {
			t.Errorf("%s %s: issuer %v jwks_uri %v", tc.cloud, tc.path, doc["issuer"], doc["jwks_uri"])
		}
		if algs, _ := doc["id_token_signing_alg_values_supported"].([]any); len(algs) != 1 || algs[0] != "RS256" {
			t.Errorf("algs %v", algs)
		}
	}
	if s.DiscoveryRequests() != 4 || s.Requests() != 0 {
		t.Errorf("counts %d %d", s.DiscoveryRequests(), s.Requests())
	}
}

func TestKeysMatchTokens(t *testing.T) {
	s := New(t)
	for _, path := range []string{"/t1/discovery/keys", "/t1/discovery/v2.0/keys"} {
		_, doc := getJSON(t, s.URL()+path, nil)
		keys := doc["keys"].([]any)
		k := keys[0].(map[string]any)
		der, _ := base64.StdEncoding.DecodeString(k["x5c"].([]any)[0].(string))
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha1.Sum(cert.Raw)
		if x5t := base64.RawURLEncoding.EncodeToString(sum[:]); k["x5t"] != x5t || k["kid"] != x5t || k["kid"] != s.KeyID() {
			t.Errorf("%s: kid %v x5t %v, want %s", path, k["kid"], k["x5t"], x5t)
		}
		if k["kty"] != "RSA" || k["use"] != "sig" || k["e"] != "AQAB" || k["n"] == nil {
			t.Errorf("%s: key %v", path, k)
		}
	}
	old := s.KeyID()
	s.RotateKeysKeepOld()
	if _, doc := getJSON(t, s.URL()+"/t1/discovery/keys", nil); len(doc["keys"].([]any)) != 2 || s.KeyID() == old {
		t.Errorf("after RotateKeysKeepOld: %d keys", len(doc["keys"].([]any)))
	}
	s.RotateKeys()
	if _, doc := getJSON(t, s.URL()+"/t1/discovery/keys", nil); len(doc["keys"].([]any)) != 1 {
		t.Errorf("after RotateKeys: %d keys", len(doc["keys"].([]any)))
	}
	s.SetDown(true)
	if status, _ := getJSON(t, s.URL()+"/t1/discovery/keys", nil); status != 503 {
		t.Errorf("down: status %d", status)
	}
	if s.Requests() != 5 {
		t.Errorf("Requests = %d, want 5", s.Requests())
	}
}

func TestMintClaims(t *testing.T) {
	s := New(t)
	iat := time.Unix(1_800_000_000, 0)
	h, c := decodeToken(t, s.Mint(TokenOptions{IssuedAt: iat, Lifetime: time.Hour}))
	if h["alg"] != "RS256" || h["typ"] != "JWT" || h["kid"] != s.KeyID() || h["x5t"] != s.KeyID() {
		t.Errorf("header %v", h)
	}
	want := map[string]any{
		"aud": DefaultAudience, "iss": "https://sts.windows.net/" + DefaultTenant + "/", "ver": "1.0",
		"appid": DefaultAppID, "appidacr": "2", "idtyp": "app", "oid": DefaultObjectID, "sub": DefaultObjectID,
		"tid": DefaultTenant, "xms_mirid": DefaultResourceID, "iat": 1.8e9, "nbf": 1.8e9, "exp": 1.8e9 + 3600,
		"idp": "https://sts.windows.net/" + DefaultTenant + "/",
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("v1 %s = %v, want %v", k, c[k], v)
		}
	}
	for _, k := range []string{"aio", "uti", "rh", "xms_tcdt"} {
		if c[k] == nil {
			t.Errorf("v1 has no %s", k)
		}
	}
	_, c = decodeToken(t, s.Mint(TokenOptions{Version: 2, Cloud: "china", Tenant: "t2", ExtraClaims: map[string]any{"xms_mirid": nil, "roles": []string{"r"}}}))
	if c["iss"] != "https://login.chinacloudapi.cn/t2/v2.0" || c["ver"] != "2.0" || c["azp"] != DefaultAppID || c["appid"] != nil || c["xms_mirid"] != nil || c["roles"] == nil {
		t.Errorf("v2 china claims %v", c)
	}
	if tok := s.Mint(TokenOptions{Alg: "none"}); !strings.HasSuffix(tok, ".") {
		t.Errorf("alg none token has a signature: %s", tok)
	}
}

func TestIMDS(t *testing.T) {
	s := New(t)
	m := NewIMDS(t, s, "t3")
	m.AddIdentity("cid", "oid")
	status, doc := getJSON(t, m.Endpoint()+"?api-version=2018-02-01&resource=api://x", nil)
	if status != 400 || doc["error_description"] != "Required metadata header not specified" {
		t.Errorf("no Metadata header: %d %v", status, doc)
	}
	status, doc = getJSON(t, m.Endpoint()+"?api-version=2018-02-01&resource=api://x&client_id=cid", http.Header{"Metadata": {"true"}})
	if status != 200 || doc["resource"] != "api://x" || doc["token_type"] != "Bearer" || doc["expires_in"] != "86399" || doc["client_id"] != "cid" {
		t.Errorf("IMDS answer %d %v", status, doc)
	}
	_, c := decodeToken(t, doc["access_token"].(string))
	if c["aud"] != "api://x" || c["oid"] != "oid" || c["appid"] != "cid" || c["tid"] != "t3" {
		t.Errorf("IMDS token claims %v", c)
	}
	status, _ = getJSON(t, m.IdentityEndpoint()+"?api-version=2019-08-01&resource=api://x", nil)
	if status != 401 {
		t.Errorf("App Service without secret: %d", status)
	}
	status, doc = getJSON(t, m.IdentityEndpoint()+"?api-version=2019-08-01&resource=api://x", http.Header{"X-Identity-Header": {m.IdentityHeader()}})
	if status != 200 || doc["access_token"] == nil {
		t.Errorf("App Service answer %d %v", status, doc)
	}
	if m.Requests() != 4 {
		t.Errorf("Requests = %d", m.Requests())
	}
}
