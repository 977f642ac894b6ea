package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/entratest"
)

// The labels under which the scenarios' requests are reported.
const (
	LabelLogin          = "POST /api/v1/auth/azure-auth/login"
	LabelDetails        = "GET /api/v1/identities/details"
	LabelDetailsLimited = "GET /api/v1/identities/details (use limit)"
	LabelAttach         = "POST /api/v1/auth/azure-auth/identities/{id}"
	LabelCreate         = "POST /api/v1/identities"
	LabelStatus         = "GET /api/status"
)

// MaxUsesLimit is the largest accessTokenNumUsesLimit the API accepts; the
// details-limited scenario uses it so that every request counts a use and
// none runs out.
const MaxUsesLimit = 1<<53 - 1

// Gatehouse is a running Gatehouse server under test, reached over HTTP,
// and the fake Entra ID whose tokens it has been told to trust (it runs
// with AZURE_AUTHORITY_HOST set to Entra's URL).
type Gatehouse struct {
	URL        string // base URL, e.g. http://127.0.0.1:8080
	Client     *http.Client
	Entra      *entratest.Server
	AdminToken string // an admin identity's access token
	OrgID      string // its organization
}

// apiError is an error answer of the server.
type apiError struct {
	method, path string
	status       int
	body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, strings.TrimSpace(e.body))
}

// call sends one request outside the measured runs and decodes a 2xx
// answer into out.
func (g *Gatehouse) call(ctx context.Context, method, path, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.URL+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := g.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{method: method, path: path, status: resp.StatusCode, body: string(data)}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// Status reads /api/status into out.
func (g *Gatehouse) Status(ctx context.Context, out any) error {
	return g.call(ctx, http.MethodGet, "/api/status", "", nil, out)
}

// Bootstrap sets up a fresh server with a random admin and keeps its token.
// A server already set up answers an error that says to pass an admin token.
func (g *Gatehouse) Bootstrap(ctx context.Context) error {
	suffix := randomHex(4)
	var resp struct {
		Organization struct {
			ID string `json:"id"`
		} `json:"organization"`
		Identity struct {
			Credentials struct {
				Token string `json:"token"`
			} `json:"credentials"`
		} `json:"identity"`
	}
	err := g.call(ctx, http.MethodPost, "/api/v1/admin/bootstrap", "", map[string]string{
		"email": "bench-" + suffix + "@example.com", "password": randomHex(16), "organization": "bench " + suffix}, &resp)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusBadRequest && strings.Contains(ae.body, "already") {
		return fmt.Errorf("the server is already bootstrapped: pass the admin token with --admin-token (or start it on a fresh database)")
	}
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	g.AdminToken, g.OrgID = resp.Identity.Credentials.Token, resp.Organization.ID
	return nil
}

// UseAdminToken takes token as the admin's and finds its organization.
func (g *Gatehouse) UseAdminToken(ctx context.Context, token string) error {
	var resp struct {
		IdentityDetails struct {
			Organization struct {
				ID string `json:"id"`
			} `json:"organization"`
		} `json:"identityDetails"`
	}
	if err := g.call(ctx, http.MethodGet, "/api/v1/identities/details", token, nil, &resp); err != nil {
		return fmt.Errorf("checking the admin token: %w", err)
	}
	g.AdminToken, g.OrgID = token, resp.IdentityDetails.Organization.ID
	return nil
}

// CreateIdentity creates a member identity and returns its id.
func (g *Gatehouse) CreateIdentity(ctx context.Context, name string) (string, error) {
	var resp struct {
		Identity struct {
			ID string `json:"id"`
		} `json:"identity"`
	}
	err := g.call(ctx, http.MethodPost, "/api/v1/identities", g.AdminToken,
		map[string]any{"name": name, "organizationId": g.OrgID, "role": "member"}, &resp)
	return resp.Identity.ID, err
}

// AttachAzure attaches Azure Auth for the fake Entra ID's default tenant
// and audience, with a use limit (0: none).
func (g *Gatehouse) AttachAzure(ctx context.Context, identityID string, usesLimit int64) error {
	return g.call(ctx, http.MethodPost, "/api/v1/auth/azure-auth/identities/"+identityID, g.AdminToken,
		map[string]any{"tenantId": entratest.DefaultTenant, "resource": entratest.DefaultAudience,
			"accessTokenNumUsesLimit": usesLimit}, nil)
}

// Login logs identityID in with an Entra ID token and returns the access
// token.
func (g *Gatehouse) Login(ctx context.Context, identityID, jwt string) (string, error) {
	var resp struct {
		AccessToken string `json:"accessToken"`
	}
	err := g.call(ctx, http.MethodPost, "/api/v1/auth/azure-auth/login", "",
		map[string]string{"identityId": identityID, "jwt": jwt}, &resp)
	var ae *apiError
	if errors.As(err, &ae) && (ae.status == http.StatusServiceUnavailable || ae.status == http.StatusUnauthorized) {
		return "", fmt.Errorf("%w\n(is the server running with AZURE_AUTHORITY_HOST=%s ?)", err, g.Entra.URL())
	}
	return resp.AccessToken, err
}

// azureIdentity creates an identity with Azure Auth attached.
func (g *Gatehouse) azureIdentity(ctx context.Context, name string, usesLimit int64) (string, error) {
	id, err := g.CreateIdentity(ctx, name)
	if err != nil {
		return "", err
	}
	return id, g.AttachAzure(ctx, id, usesLimit)
}

// Options size the scenarios' preparations.
type Options struct {
	Concurrency int // the clients of the run
	// AttachPool is how many identities the attach scenario creates before
	// the run; each attach uses one, and a client stops when none is left.
	AttachPool int
	Log        io.Writer // progress of the preparation; nil discards
}

// Scenario is a named load on Gatehouse. Prepare creates what the load
// needs (identities, tokens) and returns the op that the clients repeat.
type Scenario struct {
	Name        string
	Description string
	Prepare     func(ctx context.Context, g *Gatehouse, o Options) (Op, error)
}

// Scenarios are the loads "gatehouse bench" knows, in the order it runs them.
var Scenarios = []Scenario{
	{"login", "POST azure-auth/login with an Entra ID token (verified against cached keys) for one of up to 64 identities", prepareLogin},
	{"details", "GET identities/details with an access token without use limit (one read)", prepareDetails(false)},
	{"details-limited", "GET identities/details with a token whose use limit is 2^53-1 (a read and a write each)", prepareDetails(true)},
	{"attach", "POST azure-auth/identities/{id}: attach Azure Auth to identities created before the run", prepareAttach},
	{"create-attach", "POST identities then POST azure-auth/identities/{id} on the new identity", prepareCreateAttach},
}

// Baseline is not run by default: GET /api/status costs one database ping
// and no token work, so its rate is the ceiling of this machine, this
// client and net/http for any request.
var Baseline = Scenario{"status", "GET /api/status (a database ping): the ceiling of HTTP on this machine; not in the default list", prepareStatus}

// ScenarioByName finds a scenario, Baseline included.
func ScenarioByName(name string) (Scenario, bool) {
	for _, s := range append(Scenarios, Baseline) {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

func prepareStatus(ctx context.Context, g *Gatehouse, o Options) (Op, error) {
	url := g.URL + "/api/status"
	return func(ctx context.Context, w *Worker) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		_, _, err = w.Do(LabelStatus, req)
		return err
	}, nil
}

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format, args...)
	}
}

func newJSONRequest(ctx context.Context, method, url string, body []byte) *http.Request {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		panic(err) // the URL is ours and checked
	}
	req.Header["Content-Type"] = []string{"application/json"}
	return req
}

func newGet(ctx context.Context, url, authorization string) *http.Request {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		panic(err)
	}
	req.Header["Authorization"] = []string{authorization}
	return req
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func prepareLogin(ctx context.Context, g *Gatehouse, o Options) (Op, error) {
	n := min(o.Concurrency, 64)
	bodies := make([][]byte, n)
	for i := range bodies {
		id, err := g.azureIdentity(ctx, fmt.Sprintf("bench-login-%d", i), 0)
		if err != nil {
			return nil, err
		}
		jwt := g.Entra.Mint(entratest.TokenOptions{})
		if _, err := g.Login(ctx, id, jwt); err != nil { // warms the server's key cache
			return nil, err
		}
		bodies[i] = mustJSON(map[string]string{"identityId": id, "jwt": jwt})
	}
	o.logf("  login: %d identities with Azure Auth, one Entra ID token each\n", n)
	url := g.URL + "/api/v1/auth/azure-auth/login"
	return func(ctx context.Context, w *Worker) error {
		_, _, err := w.Do(LabelLogin, newJSONRequest(ctx, http.MethodPost, url, bodies[w.ID%len(bodies)]))
		return err
	}, nil
}

func prepareDetails(limited bool) func(ctx context.Context, g *Gatehouse, o Options) (Op, error) {
	return func(ctx context.Context, g *Gatehouse, o Options) (Op, error) {
		var limit int64
		label, name := LabelDetails, "bench-details"
		if limited {
			limit, label, name = MaxUsesLimit, LabelDetailsLimited, "bench-details-limited"
		}
		id, err := g.azureIdentity(ctx, name, limit)
		if err != nil {
			return nil, err
		}
		jwt := g.Entra.Mint(entratest.TokenOptions{})
		auth := make([]string, o.Concurrency)
		for i := range auth {
			tok, err := g.Login(ctx, id, jwt)
			if err != nil {
				return nil, err
			}
			auth[i] = "Bearer " + tok
		}
		o.logf("  %s: one identity (use limit %d), an access token per client\n", label, limit)
		url := g.URL + "/api/v1/identities/details"
		return func(ctx context.Context, w *Worker) error {
			_, _, err := w.Do(label, newGet(ctx, url, auth[w.ID%len(auth)]))
			return err
		}, nil
	}
}

var attachBody = mustJSON(map[string]any{"tenantId": entratest.DefaultTenant, "resource": entratest.DefaultAudience})

func prepareAttach(ctx context.Context, g *Gatehouse, o Options) (Op, error) {
	n := o.AttachPool
	if n <= 0 {
		return nil, errors.New("attach: no identities to attach to (AttachPool is 0)")
	}
	ids := make([]string, n)
	var next atomic.Int64
	createBody := mustJSON(map[string]any{"name": "bench-attach", "organizationId": g.OrgID, "role": "member"})
	auth := "Bearer " + g.AdminToken
	create := func(ctx context.Context, w *Worker) error {
		i := next.Add(1) - 1
		if i >= int64(n) {
			return ErrDone
		}
		id, err := createIdentity(ctx, w, g.URL, auth, createBody)
		ids[i] = id
		return err
	}
	start := time.Now()
	res, err := Run(ctx, Config{Concurrency: o.Concurrency, Requests: int64(n), Client: g.Client}, create)
	if err != nil {
		return nil, err
	}
	if res.OpErrors > 0 {
		return nil, fmt.Errorf("attach: creating identities: %d failed; the first: %w", res.OpErrors, res.FirstOpErr)
	}
	o.logf("  attach: created %d identities in %s (%.0f/s)\n", n, time.Since(start).Round(time.Millisecond),
		float64(n)/time.Since(start).Seconds())
	next.Store(0)
	url := g.URL + "/api/v1/auth/azure-auth/identities/"
	return func(ctx context.Context, w *Worker) error {
		i := next.Add(1) - 1
		if i >= int64(n) {
			return ErrDone
		}
		req := newJSONRequest(ctx, http.MethodPost, url+ids[i], attachBody)
		req.Header["Authorization"] = []string{auth}
		_, _, err := w.Do(LabelAttach, req)
		return err
	}, nil
}

// createIdentity creates an identity as w and returns its id.
func createIdentity(ctx context.Context, w *Worker, base, auth string, body []byte) (string, error) {
	req := newJSONRequest(ctx, http.MethodPost, base+"/api/v1/identities", body)
	req.Header["Authorization"] = []string{auth}
	status, data, err := w.Do(LabelCreate, req)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("create identity: %d %s", status, bytes.TrimSpace(data))
	}
	var resp struct {
		Identity struct {
			ID string `json:"id"`
		} `json:"identity"`
	}
	if err := json.Unmarshal(data, &resp); err != nil || resp.Identity.ID == "" {
		return "", fmt.Errorf("create identity: unexpected answer %s", data)
	}
	return resp.Identity.ID, nil
}

func prepareCreateAttach(ctx context.Context, g *Gatehouse, o Options) (Op, error) {
	createBody := mustJSON(map[string]any{"name": "bench-create-attach", "organizationId": g.OrgID, "role": "member"})
	auth := "Bearer " + g.AdminToken
	url := g.URL + "/api/v1/auth/azure-auth/identities/"
	return func(ctx context.Context, w *Worker) error {
		id, err := createIdentity(ctx, w, g.URL, auth, createBody)
		if err != nil {
			return err
		}
		req := newJSONRequest(ctx, http.MethodPost, url+id, attachBody)
		req.Header["Authorization"] = []string{auth}
		_, _, err = w.Do(LabelAttach, req)
		return err
	}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
