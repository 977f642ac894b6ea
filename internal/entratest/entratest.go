// Package entratest is a fake Microsoft Entra ID for tests: it serves a
// tenant's signing keys and OpenID discovery documents over HTTP, mints v1
// and v2 access tokens shaped like those of Azure managed identities for the
// public, US Government and China clouds, and rotates its keys on demand.
// It also fakes the token endpoints of Azure IMDS and App Service (see
// NewIMDS).
//
// Every server of a test binary draws its RSA keys from one pool generated
// on first use, so two servers may sign with the same key.
package entratest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Defaults used by Mint when TokenOptions leaves a field empty.
const (
	DefaultTenant       = "3f6b5d2e-8c1a-4e7b-9d2f-0a4c6e8b1d35"
	DefaultObjectID     = "9a2c4e6f-1b3d-4f5a-8c7e-2d4f6a8b0c13"
	DefaultAppID        = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
	DefaultAudience     = "https://management.azure.com/"
	DefaultSubscription = "5e7f9a1b-3c5d-4e6f-8a9b-1c2d3e4f5a6b"
	DefaultLifetime     = 24 * time.Hour
)

// DefaultResourceID is the xms_mirid of minted tokens: a virtual machine
// with a system-assigned identity.
const DefaultResourceID = "/subscriptions/" + DefaultSubscription + "/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm"

type cloud struct{ host, v1Issuer, v2Issuer, instance string }

// The issuers, written here independently of package entra so that the two
// check each other. {tid} stands for the tenant.
var clouds = map[string]cloud{
	"public":       {"https://login.microsoftonline.com", "https://sts.windows.net/{tid}/", "https://login.microsoftonline.com/{tid}/v2.0", "microsoftonline.com"},
	"usgovernment": {"https://login.microsoftonline.us", "https://sts.windows.net/{tid}/", "https://login.microsoftonline.us/{tid}/v2.0", "microsoftonline.us"},
	"china":        {"https://login.chinacloudapi.cn", "https://sts.chinacloudapi.cn/{tid}/", "https://login.chinacloudapi.cn/{tid}/v2.0", "partner.microsoftonline.cn"},
}

// Issuer returns the iss that Entra ID puts in tokens of the given version
// (1 or 2) for tenant in the named cloud ("" is public). It panics on an
// unknown cloud.
func Issuer(cloudName, tenant string, version int) string {
	c, ok := clouds[cloudOrPublic(cloudName)]
	if !ok {
		panic("entratest: unknown cloud " + cloudName)
	}
	tmpl := c.v1Issuer
	if version == 2 {
		tmpl = c.v2Issuer
	}
	return strings.ReplaceAll(tmpl, "{tid}", tenant)
}

func cloudOrPublic(name string) string {
	if name == "" {
		return "public"
	}
	return name
}

// signingKey is an RSA key with the self-signed certificate served in x5c.
type signingKey struct {
	priv *rsa.PrivateKey
	der  []byte // certificate
	kid  string // = x5t, as Microsoft does
}

var pool struct {
	sync.Mutex
	keys []*signingKey
	ec   *ecdsa.PrivateKey
}

// poolKey returns the i-th key of the process-wide pool, generating the
// missing ones.
func poolKey(i int) (*signingKey, error) {
	pool.Lock()
	defer pool.Unlock()
	for len(pool.keys) <= i {
		k, err := newSigningKey()
		if err != nil {
			return nil, err
		}
		pool.keys = append(pool.keys, k)
	}
	return pool.keys[i], nil
}

func newSigningKey() (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "accounts.accesscontrol.windows.net"},
		NotBefore:    time.Now().Add(-24 * time.Hour),
		NotAfter:     time.Now().Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, err
	}
	thumb := sha1.Sum(der)
	return &signingKey{priv: priv, der: der, kid: base64.RawURLEncoding.EncodeToString(thumb[:])}, nil
}

func ecKey() *ecdsa.PrivateKey {
	pool.Lock()
	defer pool.Unlock()
	if pool.ec == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		pool.ec = k
	}
	return pool.ec
}

// Server is a fake Entra ID authority host. Its methods are safe for
// concurrent use.
type Server struct {
	http *httptest.Server

	mu         sync.Mutex
	keys       []*signingKey // served; keys[0] signs
	next       int           // next pool index for RotateKeys
	down       bool
	status     int // with body: a forced answer for key requests
	body       string
	x5c, ne    bool
	cloud      string
	keyReqs    int
	discovReqs int
}

// New starts a Server that is closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := NewServer()
	if err != nil {
		t.Fatalf("entratest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewServer starts a Server; the caller must Close it.
func NewServer() (*Server, error) {
	k, err := poolKey(0)
	if err != nil {
		return nil, err
	}
	s := &Server{keys: []*signingKey{k}, next: 1, x5c: true, ne: true, cloud: "public"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/discovery/keys", s.serveKeys)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.serveKeys)
	mux.HandleFunc("GET /{tenant}/.well-known/openid-configuration", s.serveDiscovery)
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.serveDiscovery)
	s.http = httptest.NewServer(mux)
	return s, nil
}

// Close shuts the server down.
func (s *Server) Close() { s.http.Close() }

// URL is the server's base URL, to use as the authority host.
func (s *Server) URL() string { return s.http.URL }

// Requests returns the number of key set requests received (both paths,
// including those answered with an error).
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keyReqs
}

// DiscoveryRequests returns the number of discovery documents requested.
func (s *Server) DiscoveryRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.discovReqs
}

// RotateKeys replaces the signing key with a new one; the old key is no
// longer served, so tokens signed with it can no longer be verified.
func (s *Server) RotateKeys() { s.rotate(false) }

// RotateKeysKeepOld adds a new signing key and keeps serving the old ones,
// as Entra ID does during a planned rotation.
func (s *Server) RotateKeysKeepOld() { s.rotate(true) }

func (s *Server) rotate(keepOld bool) {
	s.mu.Lock()
	i := s.next
	s.next++
	s.mu.Unlock()
	k, err := poolKey(i)
	if err != nil {
		panic("entratest: " + err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if keepOld {
		s.keys = append([]*signingKey{k}, s.keys...)
	} else {
		s.keys = []*signingKey{k}
	}
}

// KeyID returns the kid of the current signing key.
func (s *Server) KeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[0].kid
}

// SetDown makes every request answer 503 (true) or restores service (false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetKeyResponse makes key set requests answer status with body, e.g. 400
// with Entra ID's unknown-tenant error or 200 with invalid JSON. A status of
// 0 restores the real key set.
func (s *Server) SetKeyResponse(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// SetKeyFormat chooses how keys are served: with the certificate in x5c,
// with the modulus and exponent in n and e, or both (the default, as
// Microsoft does).
func (s *Server) SetKeyFormat(x5c, ne bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.x5c, s.ne = x5c, ne
}

// SetCloud chooses the cloud ("public", "usgovernment" or "china") whose
// issuers the discovery documents name and Mint uses by default.
func (s *Server) SetCloud(name string) {
	if _, ok := clouds[name]; !ok {
		panic("entratest: unknown cloud " + name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cloud = name
}

type jwk struct {
	Kty    string   `json:"kty"`
	Use    string   `json:"use"`
	Kid    string   `json:"kid"`
	X5t    string   `json:"x5t"`
	N      string   `json:"n,omitempty"`
	E      string   `json:"e,omitempty"`
	X5c    []string `json:"x5c,omitempty"`
	Issuer string   `json:"issuer,omitempty"`
}

func (s *Server) serveKeys(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.keyReqs++
	down, status, body := s.down, s.status, s.body
	keys, x5c, ne, cloud := s.keys, s.x5c, s.ne, s.cloud
	s.mu.Unlock()
	switch {
	case down:
		http.Error(w, `{"error":"temporarily_unavailable"}`, http.StatusServiceUnavailable)
		return
	case status != 0:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
		return
	}
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	for _, k := range keys {
		j := jwk{Kty: "RSA", Use: "sig", Kid: k.kid, X5t: k.kid}
		if ne {
			j.N = base64.RawURLEncoding.EncodeToString(k.priv.N.Bytes())
			j.E = base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes())
		}
		if x5c {
			j.X5c = []string{base64.StdEncoding.EncodeToString(k.der)}
		}
		if strings.Contains(r.URL.Path, "/v2.0/") {
			j.Issuer = Issuer(cloud, r.PathValue("tenant"), 2)
		}
		doc.Keys = append(doc.Keys, j)
	}
	writeJSON(w, http.StatusOK, doc)
}

// serveDiscovery serves the OpenID configuration documents as Entra ID
// shapes them; the v1 document names the v1 issuer and key URL.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.discovReqs++
	down, cloudName := s.down, s.cloud
	s.mu.Unlock()
	if down {
		http.Error(w, `{"error":"temporarily_unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	tid, base := r.PathValue("tenant"), s.URL()
	c := clouds[cloudName]
	doc := map[string]any{
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "token id_token", "token"},
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"tenant_region_scope":                   "WW",
		"cloud_instance_name":                   c.instance,
		"request_uri_parameter_supported":       false,
	}
	if strings.Contains(r.URL.Path, "/v2.0/") {
		doc["issuer"] = Issuer(cloudName, tid, 2)
		doc["jwks_uri"] = base + "/" + tid + "/discovery/v2.0/keys"
		doc["token_endpoint"] = base + "/" + tid + "/oauth2/v2.0/token"
		doc["authorization_endpoint"] = base + "/" + tid + "/oauth2/v2.0/authorize"
		doc["device_authorization_endpoint"] = base + "/" + tid + "/oauth2/v2.0/devicecode"
		doc["end_session_endpoint"] = base + "/" + tid + "/oauth2/v2.0/logout"
		doc["token_endpoint_auth_methods_supported"] = []string{"client_secret_post", "private_key_jwt", "client_secret_basic"}
		doc["scopes_supported"] = []string{"openid", "profile", "email", "offline_access"}
		doc["claims_supported"] = []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"}
	} else {
		doc["issuer"] = Issuer(cloudName, tid, 1)
		doc["jwks_uri"] = base + "/" + tid + "/discovery/keys"
		doc["token_endpoint"] = base + "/" + tid + "/oauth2/token"
		doc["authorization_endpoint"] = base + "/" + tid + "/oauth2/authorize"
		doc["device_authorization_endpoint"] = base + "/" + tid + "/oauth2/devicecode"
		doc["end_session_endpoint"] = base + "/" + tid + "/oauth2/logout"
		doc["token_endpoint_auth_methods_supported"] = []string{"client_secret_post", "private_key_jwt", "client_secret_basic"}
		doc["scopes_supported"] = []string{"openid"}
		doc["claims_supported"] = []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email", "given_name", "family_name", "nickname"}
		doc["microsoft_multi_refresh_token"] = true
	}
	writeJSON(w, http.StatusOK, doc)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// TokenOptions describe a token to Mint. Empty fields take the package
// defaults.
type TokenOptions struct {
	Tenant   string // tid, and the tenant in iss
	Audience string // aud
	ObjectID string // oid and sub
	AppID    string // appid (v1) or azp (v2)
	Version  int    // 1 (default) or 2
	Cloud    string // decides iss; "" is the server's cloud (public unless SetCloud)
	Lifetime time.Duration
	// IssuedAt is iat (default: now); nbf is NotBefore if set, else
	// IssuedAt; exp is IssuedAt+Lifetime.
	IssuedAt  time.Time
	NotBefore *time.Time
	Kid       string // header kid; default: the current key's
	// Alg is the header alg, and how the token is signed: RS256 (default),
	// RS384, RS512, PS256, PS384, PS512 with the RSA key; ES256 with an EC
	// key; HS256, HS384, HS512 with the RSA public key (DER) as the secret;
	// "none" with no signature. Any other value is put in the header of an
	// RS256 signature.
	Alg string
	// ExtraClaims are set last, replacing claims of the same name; a nil
	// value removes the claim.
	ExtraClaims map[string]any
	Issuer      string // overrides iss
}

// Mint returns a token signed with the current signing key.
func (s *Server) Mint(o TokenOptions) string {
	s.mu.Lock()
	key, cloudName := s.keys[0], s.cloud
	s.mu.Unlock()
	if o.Tenant == "" {
		o.Tenant = DefaultTenant
	}
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	if o.ObjectID == "" {
		o.ObjectID = DefaultObjectID
	}
	if o.AppID == "" {
		o.AppID = DefaultAppID
	}
	if o.Cloud == "" {
		o.Cloud = cloudName
	}
	if o.Lifetime == 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.IssuedAt.IsZero() {
		o.IssuedAt = time.Now()
	}
	nbf := o.IssuedAt
	if o.NotBefore != nil {
		nbf = *o.NotBefore
	}
	if o.Kid == "" {
		o.Kid = key.kid
	}
	if o.Alg == "" {
		o.Alg = "RS256"
	}
	version := 1
	if o.Version == 2 {
		version = 2
	}
	iss := o.Issuer
	if iss == "" {
		iss = Issuer(o.Cloud, o.Tenant, version)
	}
	claims := map[string]any{
		"aud":       o.Audience,
		"iss":       iss,
		"iat":       o.IssuedAt.Unix(),
		"nbf":       nbf.Unix(),
		"exp":       o.IssuedAt.Add(o.Lifetime).Unix(),
		"aio":       "E2RgYJg" + randomID(27),
		"idtyp":     "app",
		"oid":       o.ObjectID,
		"rh":        "1.AAAA" + randomID(48) + ".",
		"sub":       o.ObjectID,
		"tid":       o.Tenant,
		"uti":       randomID(16),
		"xms_mirid": DefaultResourceID,
		"xms_tcdt":  1289241547,
	}
	if version == 1 {
		claims["ver"] = "1.0"
		claims["appid"] = o.AppID
		claims["appidacr"] = "2"
		claims["idp"] = Issuer(o.Cloud, o.Tenant, 1)
	} else {
		claims["ver"] = "2.0"
		claims["azp"] = o.AppID
		claims["azpacr"] = "2"
	}
	for k, v := range o.ExtraClaims {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	header := struct {
		Typ string `json:"typ"`
		Alg string `json:"alg"`
		X5t string `json:"x5t"`
		Kid string `json:"kid"`
	}{"JWT", o.Alg, key.kid, o.Kid}
	input := encodeJSON(header) + "." + encodeJSON(claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign(key, o.Alg, input))
}

func encodeJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("entratest: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func sign(key *signingKey, alg, input string) []byte {
	digest := func(h crypto.Hash) []byte {
		d := h.New()
		d.Write([]byte(input))
		return d.Sum(nil)
	}
	hashes := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}
	var (
		sig []byte
		err error
	)
	switch prefix, bits := alg[:min(2, len(alg))], alg[min(2, len(alg)):]; {
	case alg == "none":
		return nil
	case prefix == "RS" && hashes[bits] != 0:
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.priv, hashes[bits], digest(hashes[bits]))
	case prefix == "PS" && hashes[bits] != 0:
		sig, err = rsa.SignPSS(rand.Reader, key.priv, hashes[bits], digest(hashes[bits]), nil)
	case alg == "ES256":
		r, s, err := ecdsa.Sign(rand.Reader, ecKey(), digest(crypto.SHA256))
		if err != nil {
			panic(err)
		}
		return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	case prefix == "HS" && hashes[bits] != 0:
		secret := x509.MarshalPKCS1PublicKey(&key.priv.PublicKey)
		newHash := map[string]func() hash.Hash{"256": sha256.New, "384": sha512.New384, "512": sha512.New}[bits]
		m := hmac.New(newHash, secret)
		m.Write([]byte(input))
		return m.Sum(nil)
	default:
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.priv, crypto.SHA256, digest(crypto.SHA256))
	}
	if err != nil {
		panic("entratest: " + err.Error())
	}
	return sig
}

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}
