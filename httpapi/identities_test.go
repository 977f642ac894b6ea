package httpapi_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/apitest"
	"github.com/gatehouse/gatehouse/internal/entratest"
)

const identitiesPath = "/api/v1/identities"

func identityPath(id string) string { return identitiesPath + "/" + id }

// testSecret signs the tokens of servers started with it, so that tests
// can forge tokens the server would accept.
var testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// signHS256 signs claims as a compact JWS with secret.
func signHS256(t *testing.T, secret []byte, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}

// metadataPairs returns the metadata of a response at path as key=value pairs,
// checking every entry has an id.
func metadataPairs(t *testing.T, r *apitest.Response, path ...any) []string {
	t.Helper()
	list, ok := r.Value(path...).([]any)
	if !ok {
		t.Fatalf("no metadata array at %v: %s", path, r.Raw)
	}
	out := []string{}
	for _, v := range list {
		m := v.(map[string]any)
		if id, _ := m["id"].(string); !uuidRE.MatchString(id) {
			t.Errorf("metadata entry without an id: %v", m)
		}
		out = append(out, m["key"].(string)+"="+m["value"].(string))
	}
	return out
}

func TestIdentities(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db, apitest.Options{AuthSecret: testSecret})
		admin := s.Bootstrap()

		t.Run("create with defaults", func(t *testing.T) {
			r := s.Post(identitiesPath, admin.Token, map[string]any{"name": "  web  ", "organizationId": admin.OrgID}).Expect(t, http.StatusOK)
			expectKeys(t, r, []string{"id", "name", "orgId", "hasDeleteProtection", "authMethods", "metadata", "createdAt", "updatedAt"}, "identity")
			id := r.String("identity", "id")
			if !uuidRE.MatchString(id) {
				t.Errorf("id %q", id)
			}
			for field, want := range map[string]any{"name": "web", "orgId": admin.OrgID, "hasDeleteProtection": false} {
				if got := r.Value("identity", field); got != want {
					t.Errorf("%s = %v, want %v", field, got, want)
				}
			}
			if m := r.Value("identity", "authMethods"); !reflect.DeepEqual(m, []any{}) {
				t.Errorf("authMethods %v, want []", m)
			}
			if m := r.Value("identity", "metadata"); !reflect.DeepEqual(m, []any{}) {
				t.Errorf("metadata %v, want []", m)
			}
			created := r.String("identity", "createdAt")
			if _, err := time.Parse("2006-01-02T15:04:05.000Z", created); err != nil || created != r.String("identity", "updatedAt") {
				t.Errorf("createdAt %q, updatedAt %q", created, r.String("identity", "updatedAt"))
			}
			g := s.Get(identityPath(id), admin.Token).Expect(t, http.StatusOK)
			if g.String("identity", "role") != "no-access" {
				t.Errorf("role %q, want the default no-access", g.String("identity", "role"))
			}
		})

		t.Run("create with every field", func(t *testing.T) {
			r := s.Post(identitiesPath, admin.Token, map[string]any{
				"name": "api", "organizationId": admin.OrgID, "role": " member ", "hasDeleteProtection": true,
				"metadata": []map[string]string{{"key": " env ", "value": " prod "}, {"key": "team", "value": "core"}},
			}).Expect(t, http.StatusOK)
			if r.Value("identity", "hasDeleteProtection") != true {
				t.Errorf("hasDeleteProtection: %s", r.Raw)
			}
			if got := metadataPairs(t, r, "identity", "metadata"); !reflect.DeepEqual(got, []string{"env=prod", "team=core"}) {
				t.Errorf("metadata %v", got)
			}
			g := s.Get(identityPath(r.String("identity", "id")), admin.Token).Expect(t, http.StatusOK)
			if g.String("identity", "role") != "member" {
				t.Errorf("role %q", g.String("identity", "role"))
			}
			if got := metadataPairs(t, g, "identity", "metadata"); !reflect.DeepEqual(got, []string{"env=prod", "team=core"}) {
				t.Errorf("stored metadata %v", got)
			}
		})

		t.Run("create validation", func(t *testing.T) {
			org := admin.OrgID
			tests := []struct {
				name string
				body any
				path string
				msg  string
			}{
				{"no body", nil, "name", "Required"},
				{"missing name", map[string]any{"organizationId": org}, "name", "Required"},
				{"missing organizationId", map[string]any{"name": "x"}, "organizationId", "Required"},
				{"name not a string", map[string]any{"name": 1, "organizationId": org}, "name", "Expected string, received number"},
				{"empty role", map[string]any{"name": "x", "organizationId": org, "role": " "}, "role", "at least 1 character"},
				{"hasDeleteProtection not a boolean", map[string]any{"name": "x", "organizationId": org, "hasDeleteProtection": "yes"}, "hasDeleteProtection", "Expected boolean, received string"},
				{"metadata not an array", map[string]any{"name": "x", "organizationId": org, "metadata": "x"}, "metadata", "Expected array, received string"},
				{"metadata entry not an object", map[string]any{"name": "x", "organizationId": org, "metadata": []any{1}}, "metadata.0", "Expected object, received number"},
				{"metadata empty key", map[string]any{"name": "x", "organizationId": org, "metadata": []any{map[string]any{"key": "", "value": "v"}}}, "metadata.0.key", "at least 1 character"},
				{"metadata missing value", map[string]any{"name": "x", "organizationId": org, "metadata": []any{map[string]any{"key": "k"}}}, "metadata.0.value", "Required"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s.Post(identitiesPath, admin.Token, tt.body).ExpectIssue(t, tt.path, tt.msg)
				})
			}
			s.Post(identitiesPath, admin.Token, map[string]any{"name": "x", "organizationId": org, "role": "owner"}).
				ExpectError(t, http.StatusBadRequest, "BadRequest", `Role "owner" does not exist: the roles are admin, member and no-access`)
			s.Post(identitiesPath, admin.Token, map[string]any{"name": "x", "organizationId": uuid.NewString()}).
				ExpectError(t, http.StatusForbidden, "ForbiddenError", "You are not allowed to access this organization")
			// None of these created anything.
			l := s.Get(identitiesPath+"?orgId="+org, admin.Token).Expect(t, http.StatusOK)
			for _, m := range l.Value("identities").([]any) {
				if m.(map[string]any)["identity"].(map[string]any)["name"] == "x" {
					t.Errorf("a refused create stored an identity: %v", m)
				}
			}
		})

		t.Run("list", func(t *testing.T) {
			a := s.CreateIdentity(admin.Token, admin.OrgID, "list-a", "member")
			b := s.CreateIdentity(admin.Token, admin.OrgID, "list-b", "no-access")
			s.AttachAzure(admin.Token, b, nil)
			r := s.Get(identitiesPath+"?orgId="+admin.OrgID, admin.Token).Expect(t, http.StatusOK)
			expectKeys(t, r, []string{"identities", "totalCount"})
			list := r.Value("identities").([]any)
			if int(r.Number("totalCount")) != len(list) {
				t.Errorf("totalCount %v, %d identities", r.Number("totalCount"), len(list))
			}
			byID := map[string]int{}
			for k, m := range list {
				byID[m.(map[string]any)["identity"].(map[string]any)["id"].(string)] = k
			}
			for _, id := range []string{admin.ID, a, b} {
				if _, ok := byID[id]; !ok {
					t.Errorf("identity %s not listed", id)
				}
			}
			k := byID[b]
			expectKeys(t, r, []string{"id", "role", "roleId", "orgId", "createdAt", "updatedAt", "lastLoginAuthMethod", "lastLoginTime", "identity"}, "identities", k)
			expectKeys(t, r, []string{"id", "name", "orgId", "hasDeleteProtection", "authMethods", "activeLockoutAuthMethods"}, "identities", k, "identity")
			if id := r.String("identities", k, "id"); !uuidRE.MatchString(id) || id == b {
				t.Errorf("membership id %q: want a UUID other than the identity's", id)
			}
			if r.String("identities", k, "role") != "no-access" || r.String("identities", k, "orgId") != admin.OrgID ||
				r.Value("identities", k, "roleId") != nil || r.Value("identities", k, "lastLoginTime") != nil {
				t.Errorf("membership %v", r.Value("identities", k))
			}
			if m := r.Value("identities", k, "identity", "authMethods"); !reflect.DeepEqual(m, []any{"azure-auth"}) {
				t.Errorf("authMethods %v", m)
			}
			if r.String("identities", byID[a], "role") != "member" || r.String("identities", byID[admin.ID], "role") != "admin" {
				t.Errorf("roles: %s", r.Raw)
			}

			s.Get(identitiesPath, admin.Token).ExpectIssue(t, "orgId", "Required")
			s.Get(identitiesPath+"?orgId=", admin.Token).ExpectIssue(t, "orgId", "Required")
			s.Get(identitiesPath+"?orgId="+uuid.NewString(), admin.Token).
				ExpectError(t, http.StatusForbidden, "ForbiddenError", "You are not allowed to access this organization")
		})

		t.Run("get", func(t *testing.T) {
			r := s.Post(identitiesPath, admin.Token, map[string]any{"name": "getme", "organizationId": admin.OrgID, "role": "member",
				"metadata": []map[string]string{{"key": "k", "value": "v"}}}).Expect(t, http.StatusOK)
			id := r.String("identity", "id")
			g := s.Get(identityPath(id), admin.Token).Expect(t, http.StatusOK)
			expectKeys(t, g, []string{"id", "role", "roleId", "orgId", "createdAt", "updatedAt", "lastLoginAuthMethod", "lastLoginTime", "metadata", "identity"}, "identity")
			expectKeys(t, g, []string{"id", "name", "orgId", "hasDeleteProtection", "authMethods", "activeLockoutAuthMethods"}, "identity", "identity")
			if g.String("identity", "identity", "id") != id || g.String("identity", "identity", "name") != "getme" ||
				g.String("identity", "orgId") != admin.OrgID || g.String("identity", "identity", "orgId") != admin.OrgID {
				t.Errorf("get: %s", g.Raw)
			}
			if got := metadataPairs(t, g, "identity", "metadata"); !reflect.DeepEqual(got, []string{"k=v"}) {
				t.Errorf("metadata %v", got)
			}
			if m := g.Value("identity", "identity", "authMethods"); !reflect.DeepEqual(m, []any{}) {
				t.Errorf("authMethods before attach %v", m)
			}
			if g.Value("identity", "lastLoginAuthMethod") != nil || g.Value("identity", "lastLoginTime") != nil {
				t.Errorf("last login before any login: %s", g.Raw)
			}

			s.AttachAzure(admin.Token, id, nil)
			g = s.Get(identityPath(id), admin.Token).Expect(t, http.StatusOK)
			if m := g.Value("identity", "identity", "authMethods"); !reflect.DeepEqual(m, []any{"azure-auth"}) {
				t.Errorf("authMethods after attach %v, want [azure-auth]", m)
			}
			s.AzureLogin(id, entratest.TokenOptions{}).Expect(t, http.StatusOK)
			g = s.Get(identityPath(id), admin.Token).Expect(t, http.StatusOK)
			if g.String("identity", "lastLoginAuthMethod") != "azure-auth" || g.String("identity", "lastLoginTime") == "" {
				t.Errorf("last login not recorded: %s", g.Raw)
			}

			// An upper-case UUID names the same identity.
			s.Get(identityPath(strings.ToUpper(id)), admin.Token).Expect(t, http.StatusOK)
			missing := uuid.NewString()
			s.Get(identityPath(missing), admin.Token).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with id "+missing)
			s.Get(identityPath("not-a-uuid"), admin.Token).ExpectIssue(t, "identityId", "Invalid uuid")
		})

		t.Run("patch", func(t *testing.T) {
			r := s.Post(identitiesPath, admin.Token, map[string]any{"name": "before", "organizationId": admin.OrgID, "role": "no-access",
				"metadata": []map[string]string{{"key": "a", "value": "1"}}}).Expect(t, http.StatusOK)
			id := r.String("identity", "id")
			s.Clock.Advance(time.Minute)

			p := s.Patch(identityPath(id), admin.Token, map[string]any{"name": " after "}).Expect(t, http.StatusOK)
			expectKeys(t, p, []string{"id", "name", "orgId", "hasDeleteProtection", "authMethods", "metadata", "createdAt", "updatedAt"}, "identity")
			if p.String("identity", "name") != "after" || p.String("identity", "updatedAt") == r.String("identity", "updatedAt") ||
				p.String("identity", "createdAt") != r.String("identity", "createdAt") {
				t.Errorf("patch name: %s", p.Raw)
			}
			// Fields not given are unchanged.
			if got := metadataPairs(t, p, "identity", "metadata"); !reflect.DeepEqual(got, []string{"a=1"}) {
				t.Errorf("metadata changed by a name patch: %v", got)
			}

			s.Patch(identityPath(id), admin.Token, map[string]any{"role": "member", "hasDeleteProtection": true}).Expect(t, http.StatusOK)
			g := s.Get(identityPath(id), admin.Token).Expect(t, http.StatusOK)
			if g.String("identity", "role") != "member" || g.Value("identity", "identity", "hasDeleteProtection") != true || g.String("identity", "identity", "name") != "after" {
				t.Errorf("after patching role and protection: %s", g.Raw)
			}

			p = s.Patch(identityPath(id), admin.Token, map[string]any{"metadata": []map[string]string{{"key": "b", "value": "2"}, {"key": "c", "value": "3"}}}).Expect(t, http.StatusOK)
			if got := metadataPairs(t, p, "identity", "metadata"); !reflect.DeepEqual(got, []string{"b=2", "c=3"}) {
				t.Errorf("metadata not replaced: %v", got)
			}
			s.Patch(identityPath(id), admin.Token, map[string]any{"metadata": []any{}}).Expect(t, http.StatusOK)
			g = s.Get(identityPath(id), admin.Token).Expect(t, http.StatusOK)
			if got := metadataPairs(t, g, "identity", "metadata"); len(got) != 0 {
				t.Errorf("metadata not cleared: %v", got)
			}

			// Refused patches change nothing.
			before := s.Get(identityPath(id), admin.Token).Expect(t, http.StatusOK)
			s.Patch(identityPath(id), admin.Token, map[string]any{"name": "x", "role": "superuser"}).
				ExpectError(t, http.StatusBadRequest, "BadRequest", `Role "superuser" does not exist: the roles are admin, member and no-access`)
			s.Patch(identityPath(id), admin.Token, map[string]any{"name": "x", "hasDeleteProtection": "no"}).ExpectIssue(t, "hasDeleteProtection", "Expected boolean")
			s.Patch(identityPath(id), admin.Token, map[string]any{"name": "x", "metadata": []any{map[string]any{"key": "k"}}}).ExpectIssue(t, "metadata.0.value", "Required")
			s.Patch(identityPath(id), admin.Token, map[string]any{"role": ""}).ExpectIssue(t, "role", "at least 1 character")
			after := s.Get(identityPath(id), admin.Token).Expect(t, http.StatusOK)
			if !reflect.DeepEqual(before.Body, after.Body) {
				t.Errorf("a refused patch changed the identity:\n%s\n%s", before.Raw, after.Raw)
			}

			missing := uuid.NewString()
			s.Patch(identityPath(missing), admin.Token, map[string]any{"name": "x"}).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with id "+missing)
			s.Patch(identityPath("123"), admin.Token, map[string]any{"name": "x"}).ExpectIssue(t, "identityId", "Invalid uuid")
		})

		t.Run("delete", func(t *testing.T) {
			id, tok := s.IdentityToken(admin, "member", nil)
			s.Get("/api/v1/identities/details", tok).Expect(t, http.StatusOK)
			s.Patch(identityPath(id), admin.Token, map[string]any{"hasDeleteProtection": true}).Expect(t, http.StatusOK)

			s.Delete(identityPath(id), admin.Token).ExpectError(t, http.StatusBadRequest, "BadRequest", "Identity has delete protection")
			s.Get(identityPath(id), admin.Token).Expect(t, http.StatusOK)
			s.Get("/api/v1/identities/details", tok).Expect(t, http.StatusOK)

			s.Patch(identityPath(id), admin.Token, map[string]any{"hasDeleteProtection": false}).Expect(t, http.StatusOK)
			d := s.Delete(identityPath(id), admin.Token).Expect(t, http.StatusOK)
			if d.String("identity", "id") != id || d.String("identity", "orgId") != admin.OrgID {
				t.Errorf("delete answered %s", d.Raw)
			}
			if m := d.Value("identity", "authMethods"); !reflect.DeepEqual(m, []any{"azure-auth"}) {
				t.Errorf("deleted identity's authMethods %v", m)
			}

			s.Get(identityPath(id), admin.Token).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with id "+id)
			s.Delete(identityPath(id), admin.Token).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with id "+id)
			s.Get(azurePath(id), admin.Token).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with ID "+id)
			// Its tokens stop working at once, and it can no longer log in.
			s.Get("/api/v1/identities/details", tok).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "")
			s.Post(identitiesPath, tok, map[string]any{"name": "x", "organizationId": admin.OrgID}).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "")
			s.AzureLogin(id, entratest.TokenOptions{}).
				ExpectError(t, http.StatusNotFound, "NotFound", "Azure auth method not found for identity, did you configure Azure Auth?")
			// It is no longer listed.
			l := s.Get(identitiesPath+"?orgId="+admin.OrgID, admin.Token).Expect(t, http.StatusOK)
			if strings.Contains(string(l.Raw), id) {
				t.Errorf("deleted identity still listed")
			}
		})

		t.Run("details", func(t *testing.T) {
			want := map[string]any{"identityDetails": map[string]any{"organization": map[string]any{
				"id": admin.OrgID, "name": "Acme", "slug": admin.OrgSlug}}}
			d := s.Get("/api/v1/identities/details", admin.Token).Expect(t, http.StatusOK)
			if !reflect.DeepEqual(d.Body, want) {
				t.Errorf("details with the bootstrap token: %s", d.Raw)
			}
			_, tok := s.IdentityToken(admin, "no-access", nil)
			d = s.Get("/api/v1/identities/details", tok).Expect(t, http.StatusOK)
			if !reflect.DeepEqual(d.Body, want) {
				t.Errorf("details with an Azure-issued token: %s", d.Raw)
			}
			s.Get("/api/v1/identities/details", "").ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Token missing")

			// A correctly signed token that is not an identity access token
			// (an Infisical user session) is no identity token.
			now := s.Clock.Now().Unix()
			user := signHS256(t, testSecret, map[string]any{"authTokenType": "accessToken", "userId": uuid.NewString(),
				"identityId": admin.ID, "jti": uuid.NewString(), "iat": now, "exp": now + 3600, "creationEpoch": now, "orgId": admin.OrgID})
			s.Get("/api/v1/identities/details", user).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "Token missing")
			// The same token typed as an identity token passes the signature
			// and type checks (and fails later, naming no attachment): the
			// signing above is right, and the type is what was refused.
			jti := uuid.NewString()
			ident := signHS256(t, testSecret, map[string]any{"authTokenType": "identityAccessToken", "identityId": admin.ID,
				"authMethod": "token-auth", "jti": jti, "identityAccessTokenId": jti, "iat": now, "exp": now + 3600, "creationEpoch": now, "orgId": admin.OrgID})
			r := s.Get("/api/v1/identities/details", ident).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "")
			if r.String("message") == "Token missing" {
				t.Errorf("an identity-typed token was taken for no token: %s", r.Raw)
			}
		})
	})
}
