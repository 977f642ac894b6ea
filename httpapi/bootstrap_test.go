package httpapi_test

import (
	"bytes"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apitest"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

const bootstrapPath = "/api/v1/admin/bootstrap"

// jsonKeys returns the sorted keys of the JSON object at keys in r.
func jsonKeys(r *apitest.Response, path ...any) []string {
	m, _ := r.Value(path...).(map[string]any)
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func expectKeys(t *testing.T, r *apitest.Response, want []string, path ...any) {
	t.Helper()
	sort.Strings(want)
	if got := jsonKeys(r, path...); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("keys of %v: %v, want %v; body: %s", path, got, want, r.Raw)
	}
}

func TestBootstrap(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)

		t.Run("validation", func(t *testing.T) {
			tests := []struct {
				name string
				body any
				path string // the issue expected
				msg  string
			}{
				{"no body", nil, "email", "Required"},
				{"missing email", map[string]any{"password": "p", "organization": "o"}, "email", "Required"},
				{"missing password", map[string]any{"email": "a@example.com", "organization": "o"}, "password", "Required"},
				{"missing organization", map[string]any{"email": "a@example.com", "password": "p"}, "organization", "Required"},
				{"bad email", map[string]any{"email": "not-an-email", "password": "p", "organization": "o"}, "email", "Invalid email"},
				{"email with a display name", map[string]any{"email": "Admin <a@example.com>", "password": "p", "organization": "o"}, "email", "Invalid email"},
				{"email without a dot in the domain", map[string]any{"email": "admin@localhost", "password": "p", "organization": "o"}, "email", "Invalid email"},
				{"email not a string", map[string]any{"email": 42, "password": "p", "organization": "o"}, "email", "Expected string, received number"},
				{"empty password", map[string]any{"email": "a@example.com", "password": "", "organization": "o"}, "password", "at least 1 character"},
				{"blank password", map[string]any{"email": "a@example.com", "password": "   ", "organization": "o"}, "password", "at least 1 character"},
				{"empty organization", map[string]any{"email": "a@example.com", "password": "p", "organization": ""}, "organization", "at least 1 character"},
				{"blank organization", map[string]any{"email": "a@example.com", "password": "p", "organization": " \t "}, "organization", "at least 1 character"},
				{"NUL in organization", map[string]any{"email": "a@example.com", "password": "p", "organization": "Acme\x00"}, "organization", "must not contain the NUL character"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s.Post(bootstrapPath, "", tt.body).ExpectIssue(t, tt.path, tt.msg)
				})
			}
			// Every missing field is reported at once.
			r := s.Post(bootstrapPath, "", map[string]any{})
			r.ExpectIssue(t, "email", "Required")
			r.ExpectIssue(t, "password", "Required")
			r.ExpectIssue(t, "organization", "Required")
		})

		var token, orgID, identityID string
		t.Run("first call sets up the instance", func(t *testing.T) {
			r := s.Post(bootstrapPath, "", map[string]any{
				"email": "  Admin.Person@Example.COM ", "password": "correct horse battery", "organization": " Acme Corp ",
			}).Expect(t, http.StatusOK)
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			expectKeys(t, r, []string{"message", "user", "organization", "identity"})
			expectKeys(t, r, []string{"username", "firstName", "lastName", "email", "id", "superAdmin"}, "user")
			expectKeys(t, r, []string{"id", "name", "slug"}, "organization")
			expectKeys(t, r, []string{"id", "name", "credentials"}, "identity")
			expectKeys(t, r, []string{"token"}, "identity", "credentials")

			if got := r.String("message"); got != "Successfully bootstrapped instance" {
				t.Errorf("message %q", got)
			}
			for field, want := range map[string]any{
				"email": "admin.person@example.com", "username": "admin.person@example.com",
				"firstName": "Admin", "lastName": "User", "superAdmin": true,
			} {
				if got := r.Value("user", field); got != want {
					t.Errorf("user.%s = %v, want %v", field, got, want)
				}
			}
			if !uuidRE.MatchString(r.String("user", "id")) {
				t.Errorf("user.id %q is not a UUID", r.String("user", "id"))
			}
			orgID, identityID = r.String("organization", "id"), r.String("identity", "id")
			if !uuidRE.MatchString(orgID) || !uuidRE.MatchString(identityID) {
				t.Errorf("organization.id %q, identity.id %q: not UUIDs", orgID, identityID)
			}
			if got := r.String("organization", "name"); got != "Acme Corp" {
				t.Errorf("organization.name %q, want the trimmed name", got)
			}
			if slug := r.String("organization", "slug"); !regexp.MustCompile(`^acme-corp-[a-z0-9]{4}$`).MatchString(slug) {
				t.Errorf("organization.slug %q", slug)
			}
			if got := r.String("identity", "name"); got != "Instance Admin Identity" {
				t.Errorf("identity.name %q", got)
			}
			token = r.String("identity", "credentials", "token")
			if strings.Count(token, ".") != 2 {
				t.Errorf("token %q is not a JWT", token)
			}
			if bytes.Contains(r.Raw, []byte("correct horse")) {
				t.Error("the response contains the password")
			}
		})
		if token == "" {
			t.Fatal("no token")
		}

		t.Run("token is usable as a Bearer", func(t *testing.T) {
			d := s.Get("/api/v1/identities/details", token).Expect(t, http.StatusOK)
			if d.String("identityDetails", "organization", "id") != orgID || d.String("identityDetails", "organization", "name") != "Acme Corp" {
				t.Errorf("details: %s", d.Raw)
			}
			g := s.Get("/api/v1/identities/"+identityID, token).Expect(t, http.StatusOK)
			if g.String("identity", "role") != "admin" || g.String("identity", "identity", "name") != "Instance Admin Identity" {
				t.Errorf("instance admin identity: %s", g.Raw)
			}
			if m := g.Value("identity", "identity", "authMethods"); len(m.([]any)) != 1 || m.([]any)[0] != "token-auth" {
				t.Errorf("authMethods %v, want [token-auth]", m)
			}
			// It can create identities in the organization.
			s.CreateIdentity(token, orgID, "after-bootstrap", "admin")
		})

		t.Run("second call", func(t *testing.T) {
			for _, body := range []map[string]any{
				{"email": "admin.person@example.com", "password": "correct horse battery", "organization": "Acme Corp"},
				{"email": "other@example.com", "password": "x", "organization": "Other"},
			} {
				s.Post(bootstrapPath, "", body).ExpectError(t, http.StatusBadRequest, "BadRequest", "Instance has already been set up")
			}
			// Nothing changed: still the one organization, the old token works.
			l := s.Get("/api/v1/identities?orgId="+orgID, token).Expect(t, http.StatusOK)
			if n := l.Number("totalCount"); n != 2 {
				t.Errorf("totalCount %v after a second bootstrap, want 2", n)
			}
		})
	})
}

// TestBootstrapConcurrent: of concurrent bootstraps of an empty instance,
// exactly one succeeds and the others are told it has been set up.
func TestBootstrapConcurrent(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)
		const n = 4
		body := map[string]string{"email": "admin@example.com", "password": "pw", "organization": "Org"}
		results := make([]*apitest.Response, n)
		errs := make([]error, n)
		apitest.Race(n, func(k int) {
			results[k], errs[k] = s.Send(apitest.Request{Method: http.MethodPost, Path: bootstrapPath, Body: body})
		})
		ok := 0
		var orgID, token string
		for k, r := range results {
			switch {
			case errs[k] != nil:
				t.Fatal(errs[k])
			case r.Status == http.StatusOK:
				ok++
				orgID, token = r.String("organization", "id"), r.String("identity", "credentials", "token")
			case r.Status == http.StatusBadRequest && r.String("message") == "Instance has already been set up":
			default:
				t.Errorf("status %d, body %s", r.Status, r.Raw)
			}
		}
		if ok != 1 {
			t.Fatalf("%d bootstraps succeeded, want exactly 1", ok)
		}
		s.Post(bootstrapPath, "", map[string]string{"email": "admin@example.com", "password": "pw", "organization": "Org"}).
			ExpectError(t, http.StatusBadRequest, "BadRequest", "Instance has already been set up")
		// The winner's token works, and only one instance admin was made.
		l := s.Get("/api/v1/identities?orgId="+orgID, token).Expect(t, http.StatusOK)
		if n := l.Number("totalCount"); n != 1 {
			t.Errorf("totalCount %v, want 1", n)
		}
	})
}
