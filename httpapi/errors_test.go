package httpapi_test

import (
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/apitest"
)

var reqIDRE = regexp.MustCompile(`^req-[A-Za-z0-9]{14}$`)

// expectErrorShape fails unless r is an error in Infisical's shape: exactly
// reqId, statusCode (the HTTP status), message and error (plus details when
// present), as JSON.
func expectErrorShape(t *testing.T, r *apitest.Response) {
	t.Helper()
	if r.Status < 400 {
		t.Errorf("status %d is no error: %s", r.Status, r.Raw)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	if r.Body == nil {
		t.Fatalf("body is not a JSON object: %q", r.Raw)
	}
	for k := range r.Body {
		switch k {
		case "reqId", "statusCode", "message", "error", "details":
		default:
			t.Errorf("unexpected key %q in %s", k, r.Raw)
		}
	}
	if id := r.String("reqId"); !reqIDRE.MatchString(id) {
		t.Errorf("reqId %q", id)
	}
	if code := r.Number("statusCode"); int(code) != r.Status {
		t.Errorf("statusCode %v, HTTP status %d", code, r.Status)
	}
	if r.String("error") == "" {
		t.Errorf("no error name: %s", r.Raw)
	}
	switch m := r.Value("message").(type) {
	case string:
		if m == "" {
			t.Errorf("empty message: %s", r.Raw)
		}
	case []any:
		if r.Status != http.StatusUnprocessableEntity || len(m) == 0 {
			t.Errorf("message array on a %d: %s", r.Status, r.Raw)
		}
	default:
		t.Errorf("message %v", m)
	}
}

func TestErrors(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)
		admin := s.Bootstrap()
		target := s.CreateIdentity(admin.Token, admin.OrgID, "target", "member")
		s.Patch(identityPath(target), admin.Token, map[string]any{"metadata": []map[string]string{{"key": "k", "value": "v"}}}).Expect(t, http.StatusOK)
		s.AttachAzure(admin.Token, target, map[string]any{"accessTokenTTL": 60, "accessTokenMaxTTL": 600})
		before := snapshot(t, s, admin, target)
		s.Clock.Advance(time.Hour) // any write now shows in updatedAt
		count := func() float64 {
			return s.Get(identitiesPath+"?orgId="+admin.OrgID, admin.Token).Expect(t, http.StatusOK).Number("totalCount")
		}
		identities := count()

		big := `{"name":"x","pad":"` + strings.Repeat("a", 1<<20) + `"}`
		tests := []struct {
			name    string
			req     apitest.Request // sent with the admin token unless Token is "-" (none) or another
			status  int
			error   string
			message string // "" for a validation error
		}{
			{"malformed JSON", apitest.Request{Method: "PATCH", Path: identityPath(target), Body: `{"name":`}, 400, "BadRequest", "Body is not valid JSON"},
			{"malformed JSON on create", apitest.Request{Method: "POST", Path: identitiesPath, Body: `{name: "x"}`}, 400, "BadRequest", "Body is not valid JSON"},
			{"malformed JSON on attach", apitest.Request{Method: "POST", Path: azurePath(target), Body: `{"tenantId":"T",}`}, 400, "BadRequest", "Body is not valid JSON"},
			{"malformed JSON on bootstrap", apitest.Request{Method: "POST", Path: bootstrapPath, Body: `nope`}, 400, "BadRequest", "Body is not valid JSON"},
			{"two JSON values", apitest.Request{Method: "PATCH", Path: azurePath(target), Body: `{"resource":"x"}{}`}, 400, "BadRequest", "Body is not valid JSON: unexpected data after the value"},
			{"deeply nested JSON", apitest.Request{Method: "PATCH", Path: identityPath(target), Body: strings.Repeat("[", 20000)}, 400, "BadRequest", "Body is not valid JSON"},
			{"empty JSON body", apitest.Request{Method: "PATCH", Path: identityPath(target), Body: " ", ContentType: "application/json"}, 400, "BadRequest", "Body cannot be empty when content-type is set to 'application/json'"},
			{"JSON not an object", apitest.Request{Method: "PATCH", Path: identityPath(target), Body: `"name"`}, 422, "ValidationFailure", ""},
			{"text/plain", apitest.Request{Method: "PATCH", Path: identityPath(target), Body: `{"name":"x"}`, ContentType: "text/plain"}, 415, "UnsupportedMediaType", "Unsupported Media Type: text/plain"},
			{"text/plain on attach", apitest.Request{Method: "PATCH", Path: azurePath(target), Body: `{"resource":"x"}`, ContentType: "text/plain"}, 415, "UnsupportedMediaType", ""},
			{"multipart", apitest.Request{Method: "POST", Path: identitiesPath, Body: "--b--", ContentType: "multipart/form-data; boundary=b"}, 415, "UnsupportedMediaType", ""},
			{"unparsable content type", apitest.Request{Method: "PATCH", Path: identityPath(target), Body: `{"name":"x"}`, ContentType: "json;;="}, 415, "UnsupportedMediaType", ""},
			{"body over 1 MiB", apitest.Request{Method: "PATCH", Path: identityPath(target), Body: big}, 413, "PayloadTooLarge", "Request body is too large: the limit is 1048576 bytes"},
			{"body over 1 MiB on attach", apitest.Request{Method: "POST", Path: azurePath(uuid.NewString()), Body: big}, 413, "PayloadTooLarge", ""},
			{"form over 1 MiB", apitest.Request{Method: "PATCH", Path: azurePath(target), Body: "resource=" + strings.Repeat("a", 1<<20), ContentType: "application/x-www-form-urlencoded"}, 413, "PayloadTooLarge", ""},
			{"malformed form", apitest.Request{Method: "PATCH", Path: azurePath(target), Body: "resource=%zz", ContentType: "application/x-www-form-urlencoded"}, 400, "BadRequest", "Body is not valid form data"},
			{"unknown route", apitest.Request{Method: "GET", Path: "/x"}, 404, "Not Found", "Route GET:/x not found"},
			{"unknown API route", apitest.Request{Method: "POST", Path: "/api/v1/auth/aws-auth/login", Body: `{}`}, 404, "Not Found", "Route POST:/api/v1/auth/aws-auth/login not found"},
			{"wrong method", apitest.Request{Method: "PUT", Path: identityPath(target), Body: `{"name":"x"}`}, 404, "Not Found", "Route PUT:" + identityPath(target) + " not found"},
			{"wrong method on Azure Auth", apitest.Request{Method: "PUT", Path: azurePath(target), Body: `{}`}, 404, "Not Found", "Route PUT:" + azurePath(target) + " not found"},
			{"wrong method on the collection", apitest.Request{Method: "DELETE", Path: identitiesPath}, 404, "Not Found", "Route DELETE:/api/v1/identities not found"},
			{"wrong method on bootstrap", apitest.Request{Method: "GET", Path: bootstrapPath}, 404, "Not Found", "Route GET:/api/v1/admin/bootstrap not found"},
			{"no token", apitest.Request{Method: "DELETE", Path: identityPath(target), Token: "-"}, 401, "UnauthorizedError", "Token missing"},
			{"malformed token", apitest.Request{Method: "DELETE", Path: azurePath(target), Token: "a.b"}, 403, "TokenError", "The provided access token is malformed. Please use a valid token or generate a new one and try again."},
			{"token with a bad signature", apitest.Request{Method: "DELETE", Path: azurePath(target), Token: admin.Token[:len(admin.Token)-4] + "AAAA"}, 403, "TokenError", "invalid signature"},
			{"non-UUID id", apitest.Request{Method: "DELETE", Path: identityPath("x")}, 422, "ValidationFailure", ""},
			{"not found", apitest.Request{Method: "DELETE", Path: identityPath("00000000-0000-0000-0000-000000000000")}, 404, "NotFound", "Failed to find identity with id 00000000-0000-0000-0000-000000000000"},
			{"bad IP", apitest.Request{Method: "PATCH", Path: azurePath(target), Body: `{"accessTokenTrustedIps":[{"ipAddress":"x"}]}`}, 400, "BadRequest", "The IP is not a valid IPv4, IPv6, or CIDR block"},
			{"TTL over max TTL", apitest.Request{Method: "PATCH", Path: azurePath(target), Body: `{"accessTokenTTL":7200}`}, 400, "BadRequest", "Access token TTL cannot be greater than max TTL"},
		}
		reqIDs := map[string]bool{}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req := tt.req
				switch req.Token {
				case "":
					req.Token = admin.Token
				case "-":
					req.Token = ""
				}
				r := s.Do(req)
				r.ExpectError(t, tt.status, tt.error, tt.message)
				expectErrorShape(t, r)
				if reqIDs[r.String("reqId")] {
					t.Errorf("reqId %s used twice", r.String("reqId"))
				}
				reqIDs[r.String("reqId")] = true
			})
		}
		t.Run("nothing changed", func(t *testing.T) {
			expectUnchanged(t, before, snapshot(t, s, admin, target))
			if n := count(); n != identities {
				t.Errorf("%v identities, want %v", n, identities)
			}
		})

		t.Run("a body of exactly 1 MiB is read", func(t *testing.T) {
			prefix, suffix := `{"name":"target","pad":"`, `"}`
			body := prefix + strings.Repeat("a", 1<<20-len(prefix)-len(suffix)) + suffix
			s.Do(apitest.Request{Method: "PATCH", Path: identityPath(target), Token: admin.Token, Body: body}).Expect(t, http.StatusOK)
		})

		t.Run("trailing slash is ignored", func(t *testing.T) {
			s.Get(identityPath(target)+"/", admin.Token).Expect(t, http.StatusOK)
			s.Get(azurePath(target)+"/", admin.Token).Expect(t, http.StatusOK)
			s.Get(identitiesPath+"/?orgId="+admin.OrgID, admin.Token).Expect(t, http.StatusOK)
			s.Get("/api/v1/identities/details/", admin.Token).Expect(t, http.StatusOK)
			id := s.Post(identitiesPath+"/", admin.Token, map[string]any{"name": "slash", "organizationId": admin.OrgID}).Expect(t, http.StatusOK).String("identity", "id")
			s.Post(azurePath(id)+"/", admin.Token, map[string]any{"tenantId": "T", "resource": "R"}).Expect(t, http.StatusOK)
			s.Delete(identityPath(id)+"/", admin.Token).Expect(t, http.StatusOK)
			r := s.Get("/x/", admin.Token)
			r.ExpectError(t, http.StatusNotFound, "Not Found", "Route GET:/x not found")
		})

		t.Run("no 500 for awkward input", func(t *testing.T) {
			tests := []struct {
				name   string
				req    apitest.Request
				status int
				path   string // of the issue, for a 422
			}{
				{"NUL in a name", apitest.Request{Method: "POST", Path: identitiesPath, Body: map[string]any{"name": "a\x00b", "organizationId": admin.OrgID}}, 422, "name"},
				{"NUL in a patched name", apitest.Request{Method: "PATCH", Path: identityPath(target), Body: map[string]any{"name": "\x00"}}, 422, "name"},
				{"NUL in metadata", apitest.Request{Method: "PATCH", Path: identityPath(target), Body: map[string]any{"metadata": []map[string]string{{"key": "k\x00", "value": "v"}}}}, 422, "metadata.0.key"},
				{"NUL in a tenant", apitest.Request{Method: "PATCH", Path: azurePath(target), Body: map[string]any{"tenantId": "\x00"}}, 422, "tenantId"},
				{"NUL in a trusted IP", apitest.Request{Method: "PATCH", Path: azurePath(target), Body: map[string]any{"accessTokenTrustedIps": []map[string]string{{"ipAddress": "10.0.0.1\x00"}}}}, 422, "accessTokenTrustedIps.0.ipAddress"},
				{"NUL in a form", apitest.Request{Method: "PATCH", Path: identityPath(target), Body: "name=a%00", ContentType: "application/x-www-form-urlencoded"}, 422, "name"},
				{"NUL in an organization name", apitest.Request{Method: "POST", Path: bootstrapPath, Body: map[string]any{"email": "a@example.com", "password": "p", "organization": "a\x00"}}, 422, "organization"},
				{"huge number", apitest.Request{Method: "PATCH", Path: azurePath(target), Body: `{"accessTokenNumUsesLimit":1e999}`}, 422, "accessTokenNumUsesLimit"},
				{"huge negative number", apitest.Request{Method: "PATCH", Path: azurePath(target), Body: `{"accessTokenTTL":-1e999}`}, 422, "accessTokenTTL"},
				{"uses above 2^53", apitest.Request{Method: "PATCH", Path: azurePath(target), Body: `{"accessTokenNumUsesLimit":9007199254740993}`}, 422, "accessTokenNumUsesLimit"},
				{"principal list too long", apitest.Request{Method: "PATCH", Path: azurePath(target), Body: map[string]any{"allowedServicePrincipalIds": strings.Repeat("a,", 1025)}}, 422, "allowedServicePrincipalIds"},
				{"long UUID-like id", apitest.Request{Method: "GET", Path: identityPath(strings.Repeat("f", 5000))}, 422, "identityId"},
				{"encoded slash in id", apitest.Request{Method: "GET", Path: identityPath("a%2Fb")}, 422, "identityId"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					req := tt.req
					req.Token = admin.Token
					r := s.Do(req)
					if tt.status == http.StatusUnprocessableEntity {
						r.ExpectIssue(t, tt.path, "")
					} else {
						r.Expect(t, tt.status)
					}
					expectErrorShape(t, r)
				})
			}
			// Invalid UTF-8 in a form is replaced, as in JSON, not stored raw.
			id := s.CreateIdentity(admin.Token, admin.OrgID, "utf8", "member")
			p := s.Do(apitest.Request{Method: "PATCH", Path: identityPath(id), Token: admin.Token, Body: "name=a%FFb", ContentType: "application/x-www-form-urlencoded"}).Expect(t, http.StatusOK)
			if got := p.String("identity", "name"); got != "a\uFFFDb" {
				t.Errorf("name %q", got)
			}
			g := s.Get(identityPath(id), admin.Token).Expect(t, http.StatusOK)
			if got := g.String("identity", "identity", "name"); got != "a\uFFFDb" {
				t.Errorf("stored name %q", got)
			}
			expectUnchanged(t, before[1:], snapshot(t, s, admin, target)[1:])
		})

		t.Run("success responses are JSON", func(t *testing.T) {
			for _, path := range []string{identityPath(target), azurePath(target), identitiesPath + "?orgId=" + admin.OrgID, "/api/v1/identities/details"} {
				r := s.Get(path, admin.Token).Expect(t, http.StatusOK)
				if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("%s: Content-Type %q", path, ct)
				}
			}
			if !reflect.DeepEqual(s.Get("/api/status", "").Expect(t, http.StatusOK).String("message"), "Ok") {
				t.Error("status")
			}
		})
	})
}
