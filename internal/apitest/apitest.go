// Package apitest runs Gatehouse's black-box HTTP tests: a real server (the
// real router, services and database) on httptest, a fake Entra ID, and a
// clock the test moves. Every test written with Run runs once on SQLite and
// once on PostgreSQL, so both databases pass the same tests.
package apitest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/entratest"
)

// PostgresEnv names the variable that holds the URL of a PostgreSQL server
// for the tests, e.g. postgres://postgres@127.0.0.1:55432/gatehouse_test?sslmode=disable.
const PostgresEnv = "GATEHOUSE_TEST_POSTGRES_URL"

// Run runs test as subtests "sqlite" and "postgres". Without PostgresEnv the
// PostgreSQL subtest is skipped, saying how to enable it.
func Run(t *testing.T, test func(t *testing.T, db DB)) {
	t.Run("sqlite", func(t *testing.T) { test(t, SQLite) })
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(PostgresEnv) == "" {
			t.Skipf("PostgreSQL tests skipped: set %s to a PostgreSQL URL to run them (see README, Running the tests)", PostgresEnv)
		}
		test(t, Postgres)
	})
}

// DB chooses the database of a test server.
type DB int

const (
	SQLite DB = iota
	Postgres
)

// DSN returns a fresh, empty database for t: a SQLite file in t's temporary
// directory, or a new PostgreSQL schema dropped when t ends.
func (db DB) DSN(t testing.TB) string {
	if db == SQLite {
		return "sqlite:" + filepath.Join(t.TempDir(), "gatehouse.db")
	}
	return PostgresSchema(t)
}

// PostgresSchema creates a schema on the server of PostgresEnv and returns
// a URL whose connections use it.
func PostgresSchema(t testing.TB) string {
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skipf("set %s to run PostgreSQL tests", PostgresEnv)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer admin.Close()
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Clock is the server's clock, which moves only when the test says so.
type Clock = clocktest.Clock

// NewClock returns a clock set to a whole second close to the real time
// (the fake Entra ID mints tokens with the real time by default).
func NewClock() *Clock { return clocktest.New(time.Now().Truncate(time.Second)) }

// Options change the server a test gets.
type Options struct {
	TrustedProxies []netip.Prefix
	MaxTokenTTL    time.Duration
	DSN            string // reuse a database (e.g. two servers on one); "" makes a fresh one
	AuthSecret     []byte
	Logger         *slog.Logger // the server's logger; nil discards
	AccessLog      bool         // log one line per request
}

// Server is a running Gatehouse with its fake Entra ID.
type Server struct {
	t      testing.TB
	URL    string
	App    *app.App
	Clock  *Clock
	Entra  *entratest.Server
	DSN    string
	http   *httptest.Server
	client *http.Client
}

// Start starts a server on db.
func Start(t testing.TB, db DB, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.DSN == "" {
		o.DSN = db.DSN(t)
	}
	fake := entratest.New(t)
	clock := NewClock()
	a, err := app.New(context.Background(), app.Config{
		DB: o.DSN, AuthSecret: o.AuthSecret, MaxTokenTTL: o.MaxTokenTTL, AzureAuthorityHost: fake.URL(),
		TrustedProxies: o.TrustedProxies, Clock: clock, Logger: o.Logger, AccessLog: o.AccessLog,
	})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	hs := httptest.NewServer(a.Handler)
	t.Cleanup(func() {
		hs.Close()
		a.Close()
	})
	return &Server{t: t, URL: hs.URL, App: a, Clock: clock, Entra: fake, DSN: o.DSN, http: hs, client: hs.Client()}
}

// Response is an HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any // the JSON object answered, if any
}

// Request is a request to send; Body is JSON-encoded unless it is a string
// or []byte, which is sent as is.
type Request struct {
	Method      string
	Path        string
	Token       string // sent as "Authorization: Bearer <Token>"
	Body        any
	ContentType string // default application/json when there is a body
	Header      http.Header
}

// Do sends req and reads the answer, failing the test on a transport error.
func (s *Server) Do(req Request) *Response {
	s.t.Helper()
	r, err := s.Send(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	return r
}

// Send sends req and reads the answer. Unlike Do it never stops the test,
// so goroutines other than the test's may call it.
func (s *Server) Send(req Request) (*Response, error) {
	var body io.Reader
	switch b := req.Body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(raw)
	}
	r, err := http.NewRequest(req.Method, s.URL+req.Path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range req.Header {
		r.Header[k] = v
	}
	if body != nil {
		ct := req.ContentType
		if ct == "" {
			ct = "application/json"
		}
		r.Header.Set("Content-Type", ct)
	}
	if req.Token != "" {
		r.Header.Set("Authorization", "Bearer "+req.Token)
	}
	resp, err := s.client.Do(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := &Response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	json.Unmarshal(raw, &out.Body)
	return out, nil
}

// Race starts n goroutines at once, goroutine i calling f(i), and waits for
// them all. f must not stop the test: use Send, not Do.
func Race(n int, f func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			f(i)
		}()
	}
	start.Done()
	done.Wait()
}

// Get, Post, Patch and Delete are shorthands for Do.
func (s *Server) Get(path, token string) *Response {
	s.t.Helper()
	return s.Do(Request{Method: http.MethodGet, Path: path, Token: token})
}

func (s *Server) Post(path, token string, body any) *Response {
	s.t.Helper()
	return s.Do(Request{Method: http.MethodPost, Path: path, Token: token, Body: body})
}

func (s *Server) Patch(path, token string, body any) *Response {
	s.t.Helper()
	return s.Do(Request{Method: http.MethodPatch, Path: path, Token: token, Body: body})
}

func (s *Server) Delete(path, token string) *Response {
	s.t.Helper()
	return s.Do(Request{Method: http.MethodDelete, Path: path, Token: token})
}

// Admin is the bootstrapped instance: its admin token and organization.
type Admin struct {
	Token   string
	OrgID   string
	OrgSlug string
	ID      string // the instance admin identity
}

// Bootstrap sets up the instance and returns its admin.
func (s *Server) Bootstrap() Admin {
	s.t.Helper()
	r := s.Post("/api/v1/admin/bootstrap", "", map[string]string{"email": "admin@example.com", "password": "correct horse", "organization": "Acme"})
	r.Expect(s.t, http.StatusOK)
	return Admin{
		Token:   r.String("identity", "credentials", "token"),
		OrgID:   r.String("organization", "id"),
		OrgSlug: r.String("organization", "slug"),
		ID:      r.String("identity", "id"),
	}
}

// CreateIdentity creates an identity with role as actor and returns its id.
func (s *Server) CreateIdentity(actorToken, orgID, name, role string) string {
	s.t.Helper()
	r := s.Post("/api/v1/identities", actorToken, map[string]any{"name": name, "organizationId": orgID, "role": role})
	r.Expect(s.t, http.StatusOK)
	return r.String("identity", "id")
}

// AttachAzure attaches Azure Auth to identityID (fields override the
// defaults: the fake's tenant and audience) and fails the test otherwise.
func (s *Server) AttachAzure(actorToken, identityID string, fields map[string]any) *Response {
	s.t.Helper()
	body := map[string]any{"tenantId": entratest.DefaultTenant, "resource": entratest.DefaultAudience}
	for k, v := range fields {
		body[k] = v
	}
	r := s.Post("/api/v1/auth/azure-auth/identities/"+identityID, actorToken, body)
	r.Expect(s.t, http.StatusOK)
	return r
}

// AzureLogin logs in as identityID with an Entra ID token minted by the
// fake, issued at the server's clock unless o says otherwise.
func (s *Server) AzureLogin(identityID string, o entratest.TokenOptions) *Response {
	s.t.Helper()
	if o.IssuedAt.IsZero() {
		o.IssuedAt = s.Clock.Now()
	}
	return s.Post("/api/v1/auth/azure-auth/login", "", map[string]string{"identityId": identityID, "jwt": s.Entra.Mint(o)})
}

// IdentityToken returns an access token of a new identity with role,
// logged in through Azure Auth with policy fields (nil for the defaults).
func (s *Server) IdentityToken(admin Admin, role string, policy map[string]any) (identityID, token string) {
	s.t.Helper()
	identityID = s.CreateIdentity(admin.Token, admin.OrgID, "id-"+role+"-"+randomSuffix(), role)
	s.AttachAzure(admin.Token, identityID, policy)
	r := s.AzureLogin(identityID, entratest.TokenOptions{})
	r.Expect(s.t, http.StatusOK)
	return identityID, r.String("accessToken")
}

func randomSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Expect fails the test unless the answer has status.
func (r *Response) Expect(t testing.TB, status int) *Response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body: %s", r.Status, status, r.Raw)
	}
	return r
}

// ExpectError fails the test unless the answer is an error in Infisical's
// shape with status, error name and message.
func (r *Response) ExpectError(t testing.TB, status int, name, message string) *Response {
	t.Helper()
	r.Expect(t, status)
	if got := r.String("error"); got != name {
		t.Errorf("error %q, want %q; body: %s", got, name, r.Raw)
	}
	if message != "" {
		if got := r.String("message"); got != message {
			t.Errorf("message %q, want %q", got, message)
		}
	}
	if got, _ := r.Body["statusCode"].(float64); int(got) != status {
		t.Errorf("statusCode %v, want %d", r.Body["statusCode"], status)
	}
	if id := r.String("reqId"); !strings.HasPrefix(id, "req-") || len(id) != 18 {
		t.Errorf("reqId %q is not req- and 14 characters", id)
	}
	return r
}

// Issues returns the validation issues of a 422.
func (r *Response) Issues() []map[string]any {
	list, _ := r.Body["message"].([]any)
	var out []map[string]any
	for _, v := range list {
		if m, ok := v.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// ExpectIssue fails the test unless the answer is a 422 with an issue on
// path (dot-joined, "" for the body) whose message contains message.
func (r *Response) ExpectIssue(t testing.TB, path, message string) {
	t.Helper()
	r.ExpectError(t, http.StatusUnprocessableEntity, "ValidationFailure", "")
	for _, is := range r.Issues() {
		var parts []string
		for _, p := range is["path"].([]any) {
			parts = append(parts, fmt.Sprint(p))
		}
		if strings.Join(parts, ".") == path && strings.Contains(fmt.Sprint(is["message"]), message) {
			return
		}
	}
	t.Fatalf("no issue at %q with message %q in %s", path, message, r.Raw)
}

// Value walks the JSON body along keys (object keys or array indexes).
func (r *Response) Value(keys ...any) any {
	var v any = r.Body
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// String is Value as a string ("" when it is not one).
func (r *Response) String(keys ...any) string {
	s, _ := r.Value(keys...).(string)
	return s
}

// Number is Value as a number (-1 when it is not one).
func (r *Response) Number(keys ...any) float64 {
	n, ok := r.Value(keys...).(float64)
	if !ok {
		return -1
	}
	return n
}

// OtherOrganization creates a second organization, directly in the
// database, with one admin identity that has Token Auth, and returns the
// organization's id and an access token of that identity. An instance has
// one organization and no endpoint creates another; this lets tests check
// that organizations cannot reach each other's identities.
func (s *Server) OtherOrganization(name string) (orgID, adminToken string) {
	s.t.Helper()
	ctx := context.Background()
	driver, dsn, insert := "pgx", s.DSN, `INSERT INTO organizations (id, name, slug, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)`
	if strings.HasPrefix(s.DSN, "sqlite:") {
		driver, dsn = "sqlite", "file:"+strings.TrimPrefix(s.DSN, "sqlite:")+"?_pragma=busy_timeout(5000)"
		insert = `INSERT INTO organizations (id, name, slug, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	now := s.Clock.Now().UTC()
	org := gatehouse.Organization{ID: uuid.NewString(), Name: name, Slug: "org-" + randomSuffix()}
	if _, err := db.ExecContext(ctx, insert, org.ID, org.Name, org.Slug, now.UnixMilli(), now.UnixMilli()); err != nil {
		s.t.Fatalf("create organization: %v", err)
	}
	i := gatehouse.Identity{ID: uuid.NewString(), MembershipID: uuid.NewString(), OrgID: org.ID, Name: name + " admin",
		Role: gatehouse.RoleAdmin, CreatedAt: now, UpdatedAt: now}
	if err := s.App.Store.CreateIdentity(ctx, i); err != nil {
		s.t.Fatalf("create identity: %v", err)
	}
	b := gatehouse.AuthBinding{ID: uuid.NewString(), IdentityID: i.ID, Method: gatehouse.AuthMethodToken,
		Policy: gatehouse.TokenPolicy{TrustedIPs: gatehouse.DefaultTrustedIPs()}, Config: []byte("{}"), CreatedAt: now, UpdatedAt: now}
	if err := s.App.Store.AttachAuthMethod(ctx, b); err != nil {
		s.t.Fatalf("attach token auth: %v", err)
	}
	issued, err := s.App.Tokens.Issue(i, b)
	if err != nil {
		s.t.Fatal(err)
	}
	return org.ID, issued.Token
}
