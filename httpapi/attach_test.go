package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/apitest"
	"github.com/gatehouse/gatehouse/internal/entratest"
)

func azurePath(id string) string { return "/api/v1/auth/azure-auth/identities/" + id }

// seedFields are the fields of identityAzureAuth in the reference page of
// "Attach Azure Auth".
var seedFields = []string{"id", "createdAt", "updatedAt", "identityId", "tenantId", "resource", "allowedServicePrincipalIds",
	"accessTokenTTL", "accessTokenMaxTTL", "accessTokenNumUsesLimit", "accessTokenTrustedIps", "accessTokenPeriod"}

// trustedIPs returns the accessTokenTrustedIps of an Azure Auth response as
// compact JSON, so that an absent prefix key shows.
func trustedIPs(t *testing.T, r *apitest.Response) string {
	t.Helper()
	raw, err := json.Marshal(r.Value("identityAzureAuth", "accessTokenTrustedIps"))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

const defaultIPs = `[{"ipAddress":"0.0.0.0","prefix":0,"type":"ipv4"},{"ipAddress":"::","prefix":0,"type":"ipv6"}]`

func TestAttachAzureAuth(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)
		admin := s.Bootstrap()
		newID := func(name string) string { return s.CreateIdentity(admin.Token, admin.OrgID, name, "member") }
		minimal := map[string]any{"tenantId": "T", "resource": "R"}

		t.Run("authentication", func(t *testing.T) {
			id := newID("auth")
			s.Post(azurePath(id), "", minimal).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Token missing")
			s.Post(azurePath(id), "garbage", minimal).ExpectError(t, http.StatusForbidden, "TokenError",
				"The provided access token is malformed. Please use a valid token or generate a new one and try again.")
			s.Get(azurePath(id), admin.Token).ExpectError(t, http.StatusBadRequest, "BadRequest", "The identity does not have Azure Auth attached")
		})

		t.Run("defaults", func(t *testing.T) {
			id := newID("defaults")
			r := s.Post(azurePath(id), admin.Token, minimal).Expect(t, http.StatusOK)
			expectKeys(t, r, []string{"identityAzureAuth"})
			expectKeys(t, r, seedFields, "identityAzureAuth") // in particular, no orgId
			want := map[string]any{"identityId": id, "tenantId": "T", "resource": "R", "allowedServicePrincipalIds": "",
				"accessTokenTTL": 2592000.0, "accessTokenMaxTTL": 2592000.0, "accessTokenNumUsesLimit": 0.0, "accessTokenPeriod": 0.0}
			for k, v := range want {
				if got := r.Value("identityAzureAuth", k); got != v {
					t.Errorf("%s = %v, want %v", k, got, v)
				}
			}
			if got := trustedIPs(t, r); got != defaultIPs {
				t.Errorf("accessTokenTrustedIps %s, want %s", got, defaultIPs)
			}
			aid := r.String("identityAzureAuth", "id")
			if !uuidRE.MatchString(aid) || aid == id {
				t.Errorf("id %q: want a UUID of its own", aid)
			}
			c, u := r.String("identityAzureAuth", "createdAt"), r.String("identityAzureAuth", "updatedAt")
			if _, err := time.Parse("2006-01-02T15:04:05.000Z", c); err != nil || c != u {
				t.Errorf("createdAt %q, updatedAt %q", c, u)
			}
			// GET answers the same.
			g := s.Get(azurePath(id), admin.Token).Expect(t, http.StatusOK)
			if !reflect.DeepEqual(g.Body, r.Body) {
				t.Errorf("get differs from attach:\n%s\n%s", g.Raw, r.Raw)
			}
		})

		t.Run("every field", func(t *testing.T) {
			id := newID("every")
			r := s.Post(azurePath(id), admin.Token, map[string]any{
				"tenantId": "  tenant  ", "resource": " https://management.azure.com/ ", "allowedServicePrincipalIds": "p1,p2",
				"accessTokenTTL": 100, "accessTokenMaxTTL": 1000, "accessTokenNumUsesLimit": 5,
				"accessTokenTrustedIps": []map[string]string{{"ipAddress": "10.1.2.3"}, {"ipAddress": "10.1.2.3/8"}, {"ipAddress": " 2001:db8:1::5/32 "}, {"ipAddress": "2001:DB8::1"}},
			}).Expect(t, http.StatusOK)
			want := map[string]any{"tenantId": "tenant", "resource": "https://management.azure.com/", "allowedServicePrincipalIds": "p1, p2",
				"accessTokenTTL": 100.0, "accessTokenMaxTTL": 1000.0, "accessTokenNumUsesLimit": 5.0, "accessTokenPeriod": 0.0}
			for k, v := range want {
				if got := r.Value("identityAzureAuth", k); got != v {
					t.Errorf("%s = %v, want %v", k, got, v)
				}
			}
			wantIPs := `[{"ipAddress":"10.1.2.3","type":"ipv4"},{"ipAddress":"10.0.0.0","prefix":8,"type":"ipv4"},` +
				`{"ipAddress":"2001:db8::","prefix":32,"type":"ipv6"},{"ipAddress":"2001:db8::1","type":"ipv6"}]`
			if got := trustedIPs(t, r); got != wantIPs {
				t.Errorf("accessTokenTrustedIps %s, want %s", got, wantIPs)
			}
			g := s.Get(azurePath(id), admin.Token).Expect(t, http.StatusOK)
			if !reflect.DeepEqual(g.Body, r.Body) {
				t.Errorf("stored differs from answered:\n%s\n%s", g.Raw, r.Raw)
			}
			// Limits are inclusive.
			s.AttachAzure(admin.Token, newID("limits"), map[string]any{"accessTokenTTL": 315360000, "accessTokenMaxTTL": 315360000, "accessTokenNumUsesLimit": 0})
			s.AttachAzure(admin.Token, newID("zeros"), map[string]any{"accessTokenTTL": 0, "accessTokenMaxTTL": 0})
			// tenantId and resource have no minimum length.
			e := s.AttachAzure(admin.Token, newID("empty"), map[string]any{"tenantId": "", "resource": "  "})
			if e.String("identityAzureAuth", "tenantId") != "" || e.String("identityAzureAuth", "resource") != "" {
				t.Errorf("empty strings: %s", e.Raw)
			}
		})

		t.Run("allowedServicePrincipalIds normalisation", func(t *testing.T) {
			tests := []struct{ in, want string }{
				{" a , b,c ", "a, b, c"},
				{"a,,b", "a, , b"},
				{"a,", "a, "},
				{"x", "x"},
				{"", ""},
				{"   ", ""},
			}
			for _, tt := range tests {
				r := s.AttachAzure(admin.Token, newID("sp"), map[string]any{"allowedServicePrincipalIds": tt.in})
				if got := r.String("identityAzureAuth", "allowedServicePrincipalIds"); got != tt.want {
					t.Errorf("%q stored as %q, want %q", tt.in, got, tt.want)
				}
			}
		})

		t.Run("validation", func(t *testing.T) {
			id := newID("validation")
			tests := []struct {
				name string
				body string
				path string
				code string
				msg  string
			}{
				{"no body", ``, "tenantId", "invalid_type", "Required"},
				{"missing tenantId", `{"resource":"R"}`, "tenantId", "invalid_type", "Required"},
				{"missing resource", `{"tenantId":"T"}`, "resource", "invalid_type", "Required"},
				{"tenantId not a string", `{"tenantId":1,"resource":"R"}`, "tenantId", "invalid_type", "Expected string, received number"},
				{"resource null", `{"tenantId":"T","resource":null}`, "resource", "invalid_type", "Expected string, received null"},
				{"allowedServicePrincipalIds not a string", `{"tenantId":"T","resource":"R","allowedServicePrincipalIds":["a"]}`, "allowedServicePrincipalIds", "invalid_type", "Expected string, received array"},
				{"tenantId too long", `{"tenantId":"` + strings.Repeat("t", 2049) + `","resource":"R"}`, "tenantId", "too_big", "String must contain at most 2048 character(s)"},
				{"TTL too big", `{"tenantId":"T","resource":"R","accessTokenTTL":315360001}`, "accessTokenTTL", "too_big", "Number must be less than or equal to 315360000"},
				{"max TTL too big", `{"tenantId":"T","resource":"R","accessTokenMaxTTL":1e400}`, "accessTokenMaxTTL", "too_big", "Number must be less than or equal to 315360000"},
				{"TTL negative", `{"tenantId":"T","resource":"R","accessTokenTTL":-1}`, "accessTokenTTL", "too_small", "Number must be greater than or equal to 0"},
				{"TTL fractional", `{"tenantId":"T","resource":"R","accessTokenTTL":1.5}`, "accessTokenTTL", "invalid_type", "Expected integer, received float"},
				{"TTL a string", `{"tenantId":"T","resource":"R","accessTokenTTL":"100"}`, "accessTokenTTL", "invalid_type", "Expected number, received string"},
				{"uses negative", `{"tenantId":"T","resource":"R","accessTokenNumUsesLimit":-1}`, "accessTokenNumUsesLimit", "too_small", "Number must be greater than or equal to 0"},
				{"uses boolean", `{"tenantId":"T","resource":"R","accessTokenNumUsesLimit":true}`, "accessTokenNumUsesLimit", "invalid_type", "Expected number, received boolean"},
				{"trusted IPs empty", `{"tenantId":"T","resource":"R","accessTokenTrustedIps":[]}`, "accessTokenTrustedIps", "too_small", "Array must contain at least 1 element(s)"},
				{"trusted IPs not an array", `{"tenantId":"T","resource":"R","accessTokenTrustedIps":"10.0.0.0/8"}`, "accessTokenTrustedIps", "invalid_type", "Expected array, received string"},
				{"trusted IP not an object", `{"tenantId":"T","resource":"R","accessTokenTrustedIps":["10.0.0.0/8"]}`, "accessTokenTrustedIps.0", "invalid_type", "Expected object, received string"},
				{"trusted IP without ipAddress", `{"tenantId":"T","resource":"R","accessTokenTrustedIps":[{"ipAddress":"::/0"},{}]}`, "accessTokenTrustedIps.1.ipAddress", "invalid_type", "Required"},
				{"TTL above max TTL", `{"tenantId":"T","resource":"R","accessTokenTTL":100,"accessTokenMaxTTL":50}`, "", "custom", "Access Token TTL cannot be greater than Access Token Max TTL."},
				{"TTL above a max TTL of 0", `{"tenantId":"T","resource":"R","accessTokenTTL":100,"accessTokenMaxTTL":0}`, "", "custom", "Access Token TTL cannot be greater than Access Token Max TTL."},
				{"default TTL above max TTL", `{"tenantId":"T","resource":"R","accessTokenMaxTTL":60}`, "", "custom", "Access Token TTL cannot be greater than Access Token Max TTL."},
				{"body an array", `[]`, "", "invalid_type", "Expected object, received array"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					req := apitest.Request{Method: http.MethodPost, Path: azurePath(id), Token: admin.Token}
					if tt.body != "" {
						req.Body = tt.body
					}
					r := s.Do(req)
					r.ExpectIssue(t, tt.path, tt.msg)
					var found bool
					for _, is := range r.Issues() {
						found = found || is["code"] == tt.code
					}
					if !found {
						t.Errorf("no issue with code %q: %s", tt.code, r.Raw)
					}
				})
			}
			// The full zod issue of a missing field and of a too large number.
			r := s.Post(azurePath(id), admin.Token, map[string]any{"resource": "R", "accessTokenTTL": 315360001})
			r.ExpectError(t, http.StatusUnprocessableEntity, "ValidationFailure", "")
			want := []map[string]any{
				{"code": "invalid_type", "expected": "string", "received": "undefined", "path": []any{"tenantId"}, "message": "Required"},
				{"code": "too_big", "maximum": 315360000.0, "type": "number", "inclusive": true, "exact": false,
					"path": []any{"accessTokenTTL"}, "message": "Number must be less than or equal to 315360000"},
			}
			if got := r.Issues(); !reflect.DeepEqual(got, want) {
				t.Errorf("issues %v, want %v", got, want)
			}
			// Nothing was attached by any of these.
			s.Get(azurePath(id), admin.Token).ExpectError(t, http.StatusBadRequest, "BadRequest", "The identity does not have Azure Auth attached")
		})

		t.Run("unknown keys are ignored", func(t *testing.T) {
			r := s.AttachAzure(admin.Token, newID("unknown"), map[string]any{"accessTokenPeriod": 60, "orgId": "x", "id": "y"})
			if r.Number("identityAzureAuth", "accessTokenPeriod") != 0 || r.String("identityAzureAuth", "id") == "y" {
				t.Errorf("unknown keys were used: %s", r.Raw)
			}
		})

		t.Run("invalid trusted IPs", func(t *testing.T) {
			id := newID("badip")
			for _, ip := range []string{"not-an-ip", "10.0.0.0/33", "::/129", "", "10.0.0.0/", "fe80::1%eth0", "::ffff:10.0.0.1", "1.2.3.4/8/8"} {
				body := map[string]any{"tenantId": "T", "resource": "R", "accessTokenTrustedIps": []map[string]string{{"ipAddress": "10.0.0.0/8"}, {"ipAddress": ip}}}
				s.Post(azurePath(id), admin.Token, body).ExpectError(t, http.StatusBadRequest, "BadRequest", "The IP is not a valid IPv4, IPv6, or CIDR block")
			}
			// Schema issues are reported before a bad IP.
			s.Post(azurePath(id), admin.Token, map[string]any{"resource": "R", "accessTokenTrustedIps": []map[string]string{{"ipAddress": "bad"}}}).
				ExpectIssue(t, "tenantId", "Required")
			s.Get(azurePath(id), admin.Token).ExpectError(t, http.StatusBadRequest, "BadRequest", "The identity does not have Azure Auth attached")
		})

		t.Run("second attach", func(t *testing.T) {
			id := newID("twice")
			first := s.AttachAzure(admin.Token, id, map[string]any{"tenantId": "first"})
			s.Post(azurePath(id), admin.Token, map[string]any{"tenantId": "second", "resource": "R"}).
				ExpectError(t, http.StatusBadRequest, "BadRequest", "Failed to add Azure Auth to already configured identity")
			g := s.Get(azurePath(id), admin.Token).Expect(t, http.StatusOK)
			if !reflect.DeepEqual(g.Body, first.Body) {
				t.Errorf("a refused attach changed Azure Auth: %s", g.Raw)
			}
		})

		t.Run("concurrent attaches", func(t *testing.T) {
			// Of concurrent attaches to one identity exactly one succeeds;
			// the others are told it is configured, never a 500.
			id := newID("concurrent")
			const n = 4
			results := make([]*apitest.Response, n)
			errs := make([]error, n)
			apitest.Race(n, func(k int) {
				results[k], errs[k] = s.Send(apitest.Request{Method: http.MethodPost, Path: azurePath(id), Token: admin.Token,
					Body: map[string]string{"tenantId": fmt.Sprintf("T%d", k), "resource": "R"}})
			})
			ok := 0
			for k, r := range results {
				switch {
				case errs[k] != nil:
					t.Fatal(errs[k])
				case r.Status == http.StatusOK:
					ok++
				case r.Status != http.StatusBadRequest || r.String("message") != "Failed to add Azure Auth to already configured identity":
					t.Errorf("status %d, body %s", r.Status, r.Raw)
				}
			}
			if ok != 1 {
				t.Errorf("%d attaches succeeded, want 1", ok)
			}
			s.Get(azurePath(id), admin.Token).Expect(t, http.StatusOK)
		})

		t.Run("identity id", func(t *testing.T) {
			missing := uuid.NewString()
			s.Post(azurePath(missing), admin.Token, minimal).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with ID "+missing)
			for _, bad := range []string{"not-a-uuid", "123", strings.Repeat("a", 36), missing + "0"} {
				s.Post(azurePath(bad), admin.Token, minimal).ExpectIssue(t, "identityId", "Invalid uuid")
				s.Get(azurePath(bad), admin.Token).ExpectIssue(t, "identityId", "Invalid uuid")
				s.Patch(azurePath(bad), admin.Token, minimal).ExpectIssue(t, "identityId", "Invalid uuid")
				s.Delete(azurePath(bad), admin.Token).ExpectIssue(t, "identityId", "Invalid uuid")
			}
			s.Get(azurePath(missing), admin.Token).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with ID "+missing)
			s.Patch(azurePath(missing), admin.Token, minimal).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with ID "+missing)
			s.Delete(azurePath(missing), admin.Token).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with ID "+missing)
			// An upper-case UUID is the same identity.
			id := newID("upper")
			r := s.Post(azurePath(strings.ToUpper(id)), admin.Token, minimal).Expect(t, http.StatusOK)
			if r.String("identityAzureAuth", "identityId") != id {
				t.Errorf("identityId %q, want %q", r.String("identityAzureAuth", "identityId"), id)
			}
		})

		t.Run("form-encoded body", func(t *testing.T) {
			id := newID("form")
			form := url.Values{"tenantId": {" T "}, "resource": {"https://r/"}, "allowedServicePrincipalIds": {"a ,b"}}
			r := s.Do(apitest.Request{Method: http.MethodPost, Path: azurePath(id), Token: admin.Token, Body: form.Encode(),
				ContentType: "application/x-www-form-urlencoded"}).Expect(t, http.StatusOK)
			want := map[string]any{"tenantId": "T", "resource": "https://r/", "allowedServicePrincipalIds": "a, b", "accessTokenTTL": 2592000.0}
			for k, v := range want {
				if got := r.Value("identityAzureAuth", k); got != v {
					t.Errorf("%s = %v, want %v", k, got, v)
				}
			}
			if got := trustedIPs(t, r); got != defaultIPs {
				t.Errorf("accessTokenTrustedIps %s", got)
			}
			// A form carries only strings: numbers are refused, as by Infisical's schema.
			s.Do(apitest.Request{Method: http.MethodPost, Path: azurePath(newID("form2")), Token: admin.Token,
				Body: "tenantId=T&resource=R&accessTokenTTL=100", ContentType: "application/x-www-form-urlencoded"}).
				ExpectIssue(t, "accessTokenTTL", "Expected number, received string")
			// A form PATCH works the same way.
			p := s.Do(apitest.Request{Method: http.MethodPatch, Path: azurePath(id), Token: admin.Token, Body: "resource=https%3A%2F%2Fx%2F",
				ContentType: "application/x-www-form-urlencoded; charset=utf-8"}).Expect(t, http.StatusOK)
			if p.String("identityAzureAuth", "resource") != "https://x/" {
				t.Errorf("form patch: %s", p.Raw)
			}
		})

		t.Run("get", func(t *testing.T) {
			id := newID("get")
			s.Get(azurePath(id), admin.Token).ExpectError(t, http.StatusBadRequest, "BadRequest", "The identity does not have Azure Auth attached")
			a := s.AttachAzure(admin.Token, id, map[string]any{"accessTokenTTL": 60})
			g := s.Get(azurePath(id), admin.Token).Expect(t, http.StatusOK)
			expectKeys(t, g, seedFields, "identityAzureAuth")
			if !reflect.DeepEqual(g.Body, a.Body) {
				t.Errorf("get %s, attach %s", g.Raw, a.Raw)
			}
		})

		t.Run("patch", func(t *testing.T) {
			id := newID("patch")
			a := s.AttachAzure(admin.Token, id, map[string]any{"accessTokenTTL": 100, "accessTokenMaxTTL": 1000})
			s.Clock.Advance(time.Minute)

			// expectChanged patches body and checks the answer and the stored
			// state differ from before only in changed (and updatedAt).
			prev := a
			expectChanged := func(t *testing.T, body any, changed map[string]any) {
				t.Helper()
				p := s.Patch(azurePath(id), admin.Token, body).Expect(t, http.StatusOK)
				expectKeys(t, p, seedFields, "identityAzureAuth")
				want := map[string]any{}
				for k, v := range prev.Value("identityAzureAuth").(map[string]any) {
					want[k] = v
				}
				for k, v := range changed {
					want[k] = v
				}
				got := p.Value("identityAzureAuth").(map[string]any)
				if got["updatedAt"] == prev.String("identityAzureAuth", "updatedAt") {
					t.Errorf("updatedAt unchanged by a patch")
				}
				want["updatedAt"] = got["updatedAt"]
				if !reflect.DeepEqual(got, want) {
					t.Errorf("patch %v:\n got %v\nwant %v", body, got, want)
				}
				g := s.Get(azurePath(id), admin.Token).Expect(t, http.StatusOK)
				if !reflect.DeepEqual(g.Body, p.Body) {
					t.Errorf("stored %s, answered %s", g.Raw, p.Raw)
				}
				prev = p
				s.Clock.Advance(time.Second)
			}
			expectChanged(t, map[string]any{"resource": " https://x/ "}, map[string]any{"resource": "https://x/"})
			expectChanged(t, map[string]any{"allowedServicePrincipalIds": "x ,y"}, map[string]any{"allowedServicePrincipalIds": "x, y"})
			expectChanged(t, map[string]any{"tenantId": "T2", "accessTokenNumUsesLimit": 3}, map[string]any{"tenantId": "T2", "accessTokenNumUsesLimit": 3.0})
			// The max TTL is checked against the stored TTL, not the stored
			// max (§9 item 26, where Infisical answers 400).
			expectChanged(t, map[string]any{"accessTokenMaxTTL": 500}, map[string]any{"accessTokenMaxTTL": 500.0})
			expectChanged(t, map[string]any{"accessTokenTTL": 500}, map[string]any{"accessTokenTTL": 500.0})
			expectChanged(t, map[string]any{"accessTokenTrustedIps": []map[string]string{{"ipAddress": "10.1.2.3/24"}}},
				map[string]any{"accessTokenTrustedIps": []any{map[string]any{"ipAddress": "10.1.2.0", "type": "ipv4", "prefix": 24.0}}})
			// A max TTL of 0 means no limit on update.
			expectChanged(t, map[string]any{"accessTokenMaxTTL": 0}, map[string]any{"accessTokenMaxTTL": 0.0})
			expectChanged(t, map[string]any{"accessTokenTTL": 5000, "accessTokenMaxTTL": 5000}, map[string]any{"accessTokenTTL": 5000.0, "accessTokenMaxTTL": 5000.0})

			// Refused patches change nothing.
			tooLong := map[string]any{"accessTokenTTL": 6000}
			s.Patch(azurePath(id), admin.Token, tooLong).ExpectError(t, http.StatusBadRequest, "BadRequest", "Access token TTL cannot be greater than max TTL")
			s.Patch(azurePath(id), admin.Token, map[string]any{"accessTokenMaxTTL": 4999}).ExpectError(t, http.StatusBadRequest, "BadRequest", "Access token TTL cannot be greater than max TTL")
			s.Patch(azurePath(id), admin.Token, map[string]any{"accessTokenTTL": 10, "accessTokenMaxTTL": 5}).
				ExpectIssue(t, "", "Access Token TTL cannot be greater than Access Token Max TTL.")
			s.Patch(azurePath(id), admin.Token, map[string]any{"resource": "y", "accessTokenTrustedIps": []any{}}).ExpectIssue(t, "accessTokenTrustedIps", "at least 1 element")
			s.Patch(azurePath(id), admin.Token, map[string]any{"resource": "y", "accessTokenTrustedIps": []map[string]string{{"ipAddress": "300.1.1.1"}}}).
				ExpectError(t, http.StatusBadRequest, "BadRequest", "The IP is not a valid IPv4, IPv6, or CIDR block")
			s.Patch(azurePath(id), admin.Token, map[string]any{"resource": "y", "accessTokenTTL": "5"}).ExpectIssue(t, "accessTokenTTL", "Expected number, received string")
			s.Patch(azurePath(id), admin.Token, map[string]any{"resource": 5}).ExpectIssue(t, "resource", "Expected string, received number")
			s.Patch(azurePath(id), admin.Token, map[string]any{"accessTokenNumUsesLimit": -1}).ExpectIssue(t, "accessTokenNumUsesLimit", "greater than or equal to 0")
			g := s.Get(azurePath(id), admin.Token).Expect(t, http.StatusOK)
			if !reflect.DeepEqual(g.Body, prev.Body) {
				t.Errorf("a refused patch changed Azure Auth:\n%s\n%s", g.Raw, prev.Raw)
			}

			// An empty patch (or one of unknown keys only) changes nothing,
			// not even updatedAt.
			s.Clock.Advance(time.Hour)
			for _, body := range []any{map[string]any{}, map[string]any{"accessTokenPeriod": 5}, nil} {
				e := s.Patch(azurePath(id), admin.Token, body).Expect(t, http.StatusOK)
				if !reflect.DeepEqual(e.Body, prev.Body) {
					t.Errorf("empty patch %v answered %s, want %s", body, e.Raw, prev.Raw)
				}
			}
			g = s.Get(azurePath(id), admin.Token).Expect(t, http.StatusOK)
			if !reflect.DeepEqual(g.Body, prev.Body) {
				t.Errorf("an empty patch changed Azure Auth: %s", g.Raw)
			}
		})

		t.Run("patch keeps tokens working", func(t *testing.T) {
			id, tok := s.IdentityToken(admin, "member", nil)
			s.Patch(azurePath(id), admin.Token, map[string]any{"resource": "https://other/"}).Expect(t, http.StatusOK)
			s.Get("/api/v1/identities/details", tok).Expect(t, http.StatusOK)
		})

		t.Run("patch not attached", func(t *testing.T) {
			id := newID("patch-none")
			for _, body := range []any{map[string]any{"resource": "x"}, map[string]any{}} {
				s.Patch(azurePath(id), admin.Token, body).ExpectError(t, http.StatusBadRequest, "BadRequest", "Failed to update Azure Auth")
			}
			s.Get(azurePath(id), admin.Token).ExpectError(t, http.StatusBadRequest, "BadRequest", "The identity does not have Azure Auth attached")
		})

		t.Run("delete", func(t *testing.T) {
			id, tok := s.IdentityToken(admin, "member", map[string]any{"tenantId": entratest.DefaultTenant, "accessTokenTTL": 300})
			before := s.Get(azurePath(id), admin.Token).Expect(t, http.StatusOK)
			d := s.Delete(azurePath(id), admin.Token).Expect(t, http.StatusOK)
			if !reflect.DeepEqual(d.Body, before.Body) {
				t.Errorf("delete answered %s, want the deleted row %s", d.Raw, before.Raw)
			}
			s.Get(azurePath(id), admin.Token).ExpectError(t, http.StatusBadRequest, "BadRequest", "The identity does not have Azure Auth attached")
			s.Delete(azurePath(id), admin.Token).ExpectError(t, http.StatusBadRequest, "BadRequest", "The identity does not have azure auth")
			g := s.Get(identityPath(id), admin.Token).Expect(t, http.StatusOK)
			if m := g.Value("identity", "identity", "authMethods"); !reflect.DeepEqual(m, []any{}) {
				t.Errorf("authMethods after delete %v", m)
			}
			// Tokens it issued stop working; logins fail.
			s.Get("/api/v1/identities/details", tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Failed to authorize: auth method has been revoked")
			s.AzureLogin(id, entratest.TokenOptions{}).
				ExpectError(t, http.StatusNotFound, "NotFound", "Azure auth method not found for identity, did you configure Azure Auth?")
			// It can be attached again, as a new attachment; old tokens stay dead.
			again := s.AttachAzure(admin.Token, id, nil)
			if again.String("identityAzureAuth", "id") == before.String("identityAzureAuth", "id") {
				t.Errorf("re-attach reused the id of the deleted attachment")
			}
			s.Get("/api/v1/identities/details", tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Failed to authorize: auth method has been revoked")
			s.AzureLogin(id, entratest.TokenOptions{}).Expect(t, http.StatusOK)
		})

		t.Run("delete not attached", func(t *testing.T) {
			s.Delete(azurePath(newID("delete-none")), admin.Token).ExpectError(t, http.StatusBadRequest, "BadRequest", "The identity does not have azure auth")
		})

		t.Run("response content type", func(t *testing.T) {
			r := s.AttachAzure(admin.Token, newID("ct"), nil)
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
		})
	})
}
