package entra

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse"
)

// Caller-facing messages. They are those of jsonwebtoken as Infisical
// reports them, so that Infisical's clients see the same text.
const (
	msgMalformed   = "jwt malformed"
	msgAlgorithm   = "The access token is signed with an invalid algorithm. Please provide a valid token and try again."
	msgSigningKey  = "Invalid signing key"
	msgSignature   = "invalid signature"
	msgNotActive   = "jwt not active"
	msgExpired     = "Your token has expired. Please re-authenticate."
	msgAudience    = "jwt audience invalid. expected: "
	msgIssuer      = "jwt issuer invalid. expected: "
	msgUnavailable = "Unable to fetch signing keys from Entra ID"
)

// NoLeeway is a Config.Leeway that allows no clock skew at all. (The zero
// Leeway means the default, 60 s; any negative value means none.)
const NoLeeway time.Duration = -1

const (
	defaultLeeway      = 60 * time.Second
	defaultKeyTTL      = time.Hour
	defaultMinRefetch  = 5 * time.Second
	fetchTimeout       = 10 * time.Second
	minIdleTimeout     = 24 * time.Hour // tenants unused this long leave the cache
	maxTenants         = 10000
	refreshAtPercent   = 80 // of KeyTTL: keys older than this are refreshed in the background
	maxSweepInterval   = time.Minute
	minSweepInterval   = time.Second
	maxSignatureLength = 512 // bytes, a 4096-bit RSA signature
)

// Config configures a Verifier. The zero Config verifies public-cloud tokens
// with keys from https://login.microsoftonline.com.
type Config struct {
	// Cloud decides the accepted issuers and the default authority host.
	// A Cloud with no issuers is the known cloud of that name (see
	// CloudByName), so the zero Cloud is the public cloud.
	Cloud Cloud
	// AuthorityHost is where keys are fetched from, e.g. a mirror or a test
	// double; "" means Cloud.AuthorityHost. It must be an https URL, or an
	// http URL whose host is a loopback address or "localhost". It never
	// changes which issuers are accepted.
	AuthorityHost string
	// HTTPClient fetches keys. nil means a client with a 10 s timeout that
	// does not follow redirects. Whatever the client, a fetch is abandoned
	// after 10 s.
	HTTPClient *http.Client
	// Clock is the time used for exp, nbf and the key cache; nil means the
	// system clock.
	Clock gatehouse.Clock
	// Leeway is the clock skew allowed when checking exp and nbf. Zero means
	// 60 s; a negative value (NoLeeway) means none.
	Leeway time.Duration
	// KeyTTL is how long a fetched key set counts as fresh; zero means 1 h.
	// Keys of tenants used recently are refreshed in the background once
	// they are 80% of KeyTTL old. A key set past KeyTTL is still used while
	// a refresh is attempted, and for as long as Entra ID cannot be reached.
	KeyTTL time.Duration
	// MinRefetchInterval bounds the fetches per tenant: at most one starts
	// per interval, whatever the reason (first use, unknown kid, refresh).
	// A token whose kid is unknown when the limit refuses a fetch is
	// rejected at once; Verify never waits for the limit. Zero means 5 s.
	MinRefetchInterval time.Duration
	// Logger receives fetch failures and skipped keys; nil discards. Tokens
	// are never logged.
	Logger *slog.Logger

	// sweepInterval, for tests: how often the background loop looks for key
	// sets to refresh and tenants to evict; negative disables the loop.
	sweepInterval time.Duration
}

// Claims are the claims of a verified token. Only Audience, Issuer, ExpiresAt
// and NotBefore have been checked; the caller checks the rest (TenantID,
// ObjectID, AppID...) against its own rules.
type Claims struct {
	Issuer   string
	TenantID string // tid
	ObjectID string // oid: the principal (managed identity or service principal)
	Subject  string // sub
	AppID    string // appid (v1) or azp (v2): the client application
	// IdentityType is idtyp: "app" for an application or managed identity,
	// "user" for a user (present only when the resource asked for it).
	IdentityType string
	Version      string // ver: "1.0" or "2.0"
	Audience     string // aud
	// ManagedIdentityResourceID is xms_mirid, the ARM id of the managed
	// identity's resource. Entra ID includes it only in tokens for
	// Microsoft's own resources (such as https://management.azure.com/).
	ManagedIdentityResourceID string

	IssuedAt, NotBefore, ExpiresAt time.Time // zero when the claim is absent
}

// Stats are counters of a Verifier, for tests and metrics.
type Stats struct {
	Fetches       int64 // key set fetches completed, successful or not
	FetchErrors   int64 // key set fetches that failed
	UnknownKeyIDs int64 // tokens whose kid was not in the cached key set
	RateLimited   int64 // tokens refused because MinRefetchInterval held back a fetch
	Tenants       int   // tenants in the cache
}

// Verifier verifies Entra ID access tokens. It is safe for concurrent use.
// Call Close when done with it.
type Verifier struct {
	cloud        Cloud
	host         string
	client       *http.Client
	clock        gatehouse.Clock
	leeway       time.Duration
	keyTTL       time.Duration
	refreshAfter time.Duration
	minRefetch   time.Duration
	idleTimeout  time.Duration
	log          *slog.Logger

	mu      sync.RWMutex
	tenants map[string]*tenantKeys

	ctx     context.Context // cancelled by Close; fetches run under it
	cancel  context.CancelFunc
	closeMu sync.RWMutex
	closed  bool
	wg      sync.WaitGroup // the sweep loop and fetches in flight

	stats struct{ fetches, fetchErrors, unknownKids, rateLimited atomic.Int64 }
}

// tenantKeys is the cache entry of one tenant.
type tenantKeys struct {
	tenant   string
	keys     atomic.Pointer[keySet] // nil until a fetch succeeds
	lastUsed atomic.Int64           // UnixNano on the verifier's clock

	mu          sync.Mutex
	lastAttempt time.Time  // start of the last fetch, for MinRefetchInterval
	call        *fetchCall // the fetch in flight, if any
}

// fetchCall is a fetch that any number of requests may wait for.
type fetchCall struct {
	done chan struct{}
	err  error // set before done is closed
}

// NewVerifier returns a Verifier for cfg. It starts a goroutine that
// refreshes key sets in the background; Close stops it. Keys are fetched on
// first use, not here.
func NewVerifier(cfg Config) (*Verifier, error) {
	cloud := cfg.Cloud
	if cloud.V1Issuer == "" && len(cloud.V2Issuers) == 0 {
		// Only a name (or nothing): a known cloud.
		known, err := CloudByName(cloud.Name)
		if err != nil {
			return nil, err
		}
		if cloud.AuthorityHost != "" {
			known.AuthorityHost = cloud.AuthorityHost
		}
		cloud = known
	}
	cloud.V2Issuers = slices.Clone(cloud.V2Issuers)
	for _, t := range append([]string{cloud.V1Issuer}, cloud.V2Issuers...) {
		if strings.Count(t, TenantPlaceholder) != 1 {
			return nil, gatehouse.Errorf(gatehouse.KindInvalid, "entra: issuer template %q must contain %s exactly once", t, TenantPlaceholder)
		}
	}
	host := cfg.AuthorityHost
	if host == "" {
		host = cloud.AuthorityHost
	}
	host, err := checkAuthorityHost(host)
	if err != nil {
		return nil, err
	}
	if cfg.KeyTTL < 0 || cfg.MinRefetchInterval < 0 {
		return nil, gatehouse.Errorf(gatehouse.KindInvalid, "entra: KeyTTL and MinRefetchInterval must not be negative")
	}
	v := &Verifier{
		cloud:      cloud,
		host:       host,
		client:     cfg.HTTPClient,
		clock:      cfg.Clock,
		leeway:     cfg.Leeway,
		keyTTL:     orDefault(cfg.KeyTTL, defaultKeyTTL),
		minRefetch: orDefault(cfg.MinRefetchInterval, defaultMinRefetch),
		log:        cfg.Logger,
		tenants:    make(map[string]*tenantKeys),
	}
	switch {
	case v.leeway == 0:
		v.leeway = defaultLeeway
	case v.leeway < 0:
		v.leeway = 0
	}
	v.refreshAfter = v.keyTTL * refreshAtPercent / 100
	v.idleTimeout = max(minIdleTimeout, v.keyTTL)
	if v.client == nil {
		v.client = &http.Client{
			Timeout:       fetchTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if v.clock == nil {
		v.clock = gatehouse.SystemClock{}
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	sweep := cfg.sweepInterval
	if sweep == 0 {
		sweep = min(max(v.keyTTL/10, minSweepInterval), maxSweepInterval)
	}
	if sweep > 0 {
		v.wg.Add(1)
		go v.sweepLoop(sweep)
	}
	return v, nil
}

// orDefault returns d, or def when d is zero.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// checkAuthorityHost accepts https URLs, and http URLs of a loopback host,
// and returns the URL without a trailing slash.
func checkAuthorityHost(raw string) (string, error) {
	bad := func(why string) error {
		return gatehouse.Errorf(gatehouse.KindInvalid, "entra: authority host %q %s", raw, why)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", bad("is not an absolute URL")
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", bad("must not have user info, a query or a fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return "", bad("must use https (http only for a loopback host)")
		}
	default:
		return "", bad("must use https")
	}
	return strings.TrimRight(raw, "/"), nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// Close stops the background refresh and waits for fetches in flight. Verify
// keeps working afterwards with the keys already cached.
func (v *Verifier) Close() {
	v.closeMu.Lock()
	v.closed = true
	v.closeMu.Unlock()
	v.cancel()
	v.wg.Wait()
}

// Stats returns the verifier's counters.
func (v *Verifier) Stats() Stats {
	v.mu.RLock()
	n := len(v.tenants)
	v.mu.RUnlock()
	return Stats{
		Fetches:       v.stats.fetches.Load(),
		FetchErrors:   v.stats.fetchErrors.Load(),
		UnknownKeyIDs: v.stats.unknownKids.Load(),
		RateLimited:   v.stats.rateLimited.Load(),
		Tenants:       n,
	}
}

// Verify checks that rawJWT is an access token issued by Entra ID to tenantID
// for resource, and returns its claims. The checks run in this order, each
// failure being a *gatehouse.Error with the message shown:
//
//  1. the token is a compact JWS of at most MaxTokenSize bytes whose header
//     and payload are JSON objects, and the claims Verify reads have the
//     right JSON type (aud, iss, tid, oid... strings; exp, nbf, iat numbers;
//     null counts as absent): KindToken "jwt malformed";
//  2. alg is RS256: KindToken "The access token is signed with an invalid
//     algorithm. Please provide a valid token and try again.";
//  3. kid names a key of the tenant; an unknown kid makes Verify fetch the
//     key set again if MinRefetchInterval allows, else fail at once:
//     KindUnauthorized "Invalid signing key";
//  4. the signature: KindToken "invalid signature";
//  5. nbf, if present, is not after now+Leeway: KindToken "jwt not active";
//  6. exp is present and after now-Leeway: KindToken "Your token has
//     expired. Please re-authenticate.";
//  7. aud equals resource, ignoring one trailing "/" on either: KindToken
//     "jwt audience invalid. expected: <resource>";
//  8. iss is one of the cloud's issuers for tenantID: KindToken "jwt issuer
//     invalid. expected: <v1 issuer>".
//
// When the tenant's keys were never fetched and cannot be (Entra ID is
// unreachable, answers other than 200, for instance 400 for an unknown
// tenant, or sends no usable keys), Verify returns KindUnavailable "Unable
// to fetch signing keys from Entra ID". A tenantID that is not a GUID or
// domain name is KindInvalid.
//
// With the tenant's keys cached, Verify makes no network call, unless the kid
// is unknown.
func (v *Verifier) Verify(ctx context.Context, rawJWT, tenantID, resource string) (*Claims, error) {
	if !validTenantID(tenantID) {
		return nil, gatehouse.Errorf(gatehouse.KindInvalid, "Invalid tenant ID")
	}
	t, ok := parseToken(rawJWT)
	if !ok {
		return nil, tokenError(msgMalformed)
	}
	if t.alg != "RS256" {
		return nil, tokenError(msgAlgorithm)
	}
	key, err := v.key(ctx, tenantID, t.kid)
	if err != nil {
		return nil, err
	}
	if !verifyRS256(key, t.signingInput, t.signature) {
		return nil, tokenError(msgSignature)
	}
	c := &t.claims
	now := v.clock.Now()
	nbf, exp := c.Nbf.Time(), c.Exp.Time()
	if c.Nbf.present && nbf.After(now.Add(v.leeway)) {
		return nil, tokenError(msgNotActive)
	}
	if !c.Exp.present || !now.Before(exp.Add(v.leeway)) {
		return nil, tokenError(msgExpired)
	}
	if c.Aud == "" || strings.TrimSuffix(c.Aud, "/") != strings.TrimSuffix(resource, "/") {
		return nil, tokenError(msgAudience + resource)
	}
	if !v.cloud.acceptsIssuer(c.Iss, tenantID) {
		return nil, tokenError(msgIssuer + strings.ReplaceAll(v.cloud.V1Issuer, TenantPlaceholder, tenantID))
	}
	appID := c.AppID
	if appID == "" {
		appID = c.Azp
	}
	return &Claims{
		Issuer:                    c.Iss,
		TenantID:                  c.Tid,
		ObjectID:                  c.Oid,
		Subject:                   c.Sub,
		AppID:                     appID,
		IdentityType:              c.Idtyp,
		Version:                   c.Ver,
		Audience:                  c.Aud,
		ManagedIdentityResourceID: c.XmsMirid,
		IssuedAt:                  c.Iat.Time(),
		NotBefore:                 nbf,
		ExpiresAt:                 exp,
	}, nil
}

func tokenError(msg string) error { return gatehouse.Errorf(gatehouse.KindToken, "%s", msg) }

func signingKeyError() error {
	return gatehouse.Errorf(gatehouse.KindUnauthorized, "%s", msgSigningKey)
}

func unavailableError(cause error) error {
	return gatehouse.Wrap(gatehouse.KindUnavailable, cause, msgUnavailable)
}

// validTenantID accepts what Entra ID accepts in a tenant's URL: a GUID or
// a domain name. It keeps the key URL within the authority host's
// /{tenant}/ path.
func validTenantID(s string) bool {
	if s == "" || len(s) > 253 || s[0] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// verifyRS256 checks an RSASSA-PKCS1-v1_5 SHA-256 signature (base64url, as
// in the token) over signingInput.
func verifyRS256(key *rsa.PublicKey, signingInput, signature string) bool {
	var buf [maxSignatureLength]byte
	if base64.RawURLEncoding.DecodedLen(len(signature)) > len(buf) {
		return false
	}
	n, err := base64.RawURLEncoding.Decode(buf[:], []byte(signature))
	if err != nil {
		return false
	}
	digest := sha256.Sum256([]byte(signingInput))
	return rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], buf[:n]) == nil
}

// key returns the tenant's key named kid, fetching the tenant's key set when
// it is not cached or does not have kid, if MinRefetchInterval allows.
func (v *Verifier) key(ctx context.Context, tenantID, kid string) (*rsa.PublicKey, error) {
	if kid == "" {
		return nil, signingKeyError()
	}
	now := v.clock.Now()
	e := v.tenant(tenantID, now)
	ks := e.keys.Load()
	if ks != nil {
		if k := ks.keys[kid]; k != nil {
			if now.Sub(ks.fetched) >= v.refreshAfter {
				v.startFetch(e, now) // in the background; this request goes on
			}
			return k, nil
		}
		v.stats.unknownKids.Add(1)
	}
	call := v.startFetch(e, now)
	if call == nil { // refused by the limit, or closed
		v.stats.rateLimited.Add(1)
		if ks == nil {
			return nil, unavailableError(nil)
		}
		return nil, signingKeyError()
	}
	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, unavailableError(ctx.Err())
	}
	ks = e.keys.Load()
	if ks == nil {
		return nil, unavailableError(call.err)
	}
	if k := ks.keys[kid]; k != nil {
		return k, nil
	}
	return nil, signingKeyError()
}

// tenant returns the cache entry of tenantID, creating it if needed, and
// marks it used at now.
func (v *Verifier) tenant(tenantID string, now time.Time) *tenantKeys {
	v.mu.RLock()
	e := v.tenants[tenantID]
	v.mu.RUnlock()
	if e == nil {
		v.mu.Lock()
		if e = v.tenants[tenantID]; e == nil {
			if len(v.tenants) >= maxTenants {
				v.evictLocked(now)
			}
			e = &tenantKeys{tenant: tenantID}
			v.tenants[tenantID] = e
		}
		v.mu.Unlock()
	}
	// Write at most once a second, to keep the cache line quiet under load.
	if t := now.UnixNano(); t-e.lastUsed.Load() > int64(time.Second) {
		e.lastUsed.Store(t)
	}
	return e
}

// evictLocked makes room in a full cache: it drops the tenants idle for
// longer than idleTimeout, or else the least recently used one.
func (v *Verifier) evictLocked(now time.Time) {
	var lru *tenantKeys
	for id, e := range v.tenants {
		if now.Sub(time.Unix(0, e.lastUsed.Load())) > v.idleTimeout {
			delete(v.tenants, id)
		} else if lru == nil || e.lastUsed.Load() < lru.lastUsed.Load() {
			lru = e
		}
	}
	if len(v.tenants) >= maxTenants && lru != nil {
		delete(v.tenants, lru.tenant)
	}
}

// startFetch starts fetching e's keys unless a fetch is already in flight,
// in which case it returns that one. It returns nil, starting nothing, when
// the last fetch started less than MinRefetchInterval ago or the verifier is
// closed.
func (v *Verifier) startFetch(e *tenantKeys, now time.Time) *fetchCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.call != nil {
		return e.call
	}
	if !e.lastAttempt.IsZero() && now.Sub(e.lastAttempt) < v.minRefetch {
		return nil
	}
	v.closeMu.RLock()
	defer v.closeMu.RUnlock()
	if v.closed {
		return nil
	}
	v.wg.Add(1)
	e.lastAttempt = now
	c := &fetchCall{done: make(chan struct{})}
	e.call = c
	go v.runFetch(e, c)
	return c
}

func (v *Verifier) runFetch(e *tenantKeys, c *fetchCall) {
	defer v.wg.Done()
	keys, err := v.fetchKeys(v.ctx, e.tenant)
	if err != nil {
		v.stats.fetchErrors.Add(1)
		v.log.Warn("entra: fetching signing keys failed", "tenant", e.tenant, "error", err)
	} else {
		e.keys.Store(&keySet{keys: keys, fetched: v.clock.Now()})
		v.log.Debug("entra: fetched signing keys", "tenant", e.tenant, "keys", len(keys))
	}
	e.mu.Lock()
	e.call = nil
	c.err = err
	e.mu.Unlock()
	v.stats.fetches.Add(1) // once the fetch is over, so that tests can wait for it
	close(c.done)
}

func (v *Verifier) sweepLoop(every time.Duration) {
	defer v.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-v.ctx.Done():
			return
		case <-t.C:
			v.sweep(v.clock.Now())
		}
	}
}

// sweep drops tenants idle for longer than idleTimeout and starts a refresh
// for tenants used within KeyTTL whose keys are due for one (or missing).
func (v *Verifier) sweep(now time.Time) {
	var due []*tenantKeys
	v.mu.Lock()
	for id, e := range v.tenants {
		idle := now.Sub(time.Unix(0, e.lastUsed.Load()))
		if idle > v.idleTimeout {
			delete(v.tenants, id)
			continue
		}
		ks := e.keys.Load()
		if idle <= v.keyTTL && (ks == nil || now.Sub(ks.fetched) >= v.refreshAfter) {
			due = append(due, e)
		}
	}
	v.mu.Unlock()
	for _, e := range due {
		v.startFetch(e, now)
	}
}
