package httpapi_test

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apitest"
)

const instanceAdminMessage = "You are attempting to modify an instance admin identity. This requires elevated instance admin privileges"

// call is one request of a permission table.
type call struct {
	name   string
	method string
	path   string
	body   any
}

func (c call) do(s *apitest.Server, token string) *apitest.Response {
	return s.Do(apitest.Request{Method: c.method, Path: c.path, Token: token, Body: c.body})
}

// snapshot is what the admin sees of identities: to check refused requests
// changed nothing.
func snapshot(t *testing.T, s *apitest.Server, admin apitest.Admin, ids ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, id := range ids {
		out = append(out, s.Get(identityPath(id), admin.Token).Expect(t, http.StatusOK).Body)
		if r := s.Get(azurePath(id), admin.Token); r.Status == http.StatusOK {
			out = append(out, r.Body)
		} else {
			r.ExpectError(t, http.StatusBadRequest, "BadRequest", "The identity does not have Azure Auth attached")
		}
	}
	return out
}

func expectUnchanged(t *testing.T, before, after []map[string]any) {
	t.Helper()
	if !reflect.DeepEqual(before, after) {
		t.Errorf("refused requests changed state:\nbefore %v\nafter  %v", before, after)
	}
}

func TestPermissions(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)
		admin := s.Bootstrap()
		// Actors, each logged in through Azure Auth.
		_, adminTok := s.IdentityToken(admin, "admin", nil)
		memberID, memberTok := s.IdentityToken(admin, "member", nil)
		noAccessID, noAccessTok := s.IdentityToken(admin, "no-access", nil)
		// Targets: with and without Azure Auth, at every role.
		targetAdmin := s.CreateIdentity(admin.Token, admin.OrgID, "target-admin", "admin")
		targetAdminAzure := s.CreateIdentity(admin.Token, admin.OrgID, "target-admin-azure", "admin")
		s.AttachAzure(admin.Token, targetAdminAzure, nil)
		targetMember := s.CreateIdentity(admin.Token, admin.OrgID, "target-member", "member")
		targetMemberAzure := s.CreateIdentity(admin.Token, admin.OrgID, "target-member-azure", "member")
		s.AttachAzure(admin.Token, targetMemberAzure, nil)
		azureBody := map[string]any{"tenantId": "T", "resource": "R"}

		t.Run("no-access actor", func(t *testing.T) {
			before := snapshot(t, s, admin, targetMember, targetMemberAzure)
			tests := []struct {
				call
				action string
			}{
				{call{"create identity", "POST", identitiesPath, map[string]any{"name": "x", "organizationId": admin.OrgID}}, "create"},
				{call{"create no-access identity", "POST", identitiesPath, map[string]any{"name": "x", "organizationId": admin.OrgID, "role": "no-access"}}, "create"},
				{call{"list identities", "GET", identitiesPath + "?orgId=" + admin.OrgID, nil}, "read"},
				{call{"get identity", "GET", identityPath(targetMember), nil}, "read"},
				{call{"get itself", "GET", identityPath(noAccessID), nil}, "read"},
				{call{"patch identity", "PATCH", identityPath(targetMember), map[string]any{"name": "x"}}, "edit"},
				{call{"patch itself", "PATCH", identityPath(noAccessID), map[string]any{"role": "admin"}}, "edit"},
				{call{"delete identity", "DELETE", identityPath(targetMember), nil}, "delete"},
				{call{"attach Azure Auth", "POST", azurePath(targetMember), azureBody}, "create"},
				{call{"get Azure Auth", "GET", azurePath(targetMemberAzure), nil}, "read"},
				{call{"patch Azure Auth", "PATCH", azurePath(targetMemberAzure), map[string]any{"resource": "x"}}, "edit"},
				{call{"delete Azure Auth", "DELETE", azurePath(targetMemberAzure), nil}, "edit"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					tt.do(s, noAccessTok).ExpectError(t, http.StatusForbidden, "PermissionDenied", "You are not allowed to "+tt.action+" on identity")
				})
			}
			// Its own details are open to every identity.
			s.Get("/api/v1/identities/details", noAccessTok).Expect(t, http.StatusOK)
			expectUnchanged(t, before, snapshot(t, s, admin, targetMember, targetMemberAzure))
		})

		t.Run("member creates up to its own role", func(t *testing.T) {
			for _, role := range []string{"member", "no-access"} {
				s.CreateIdentity(memberTok, admin.OrgID, "by-member-"+role, role)
			}
			r := s.Post(identitiesPath, memberTok, map[string]any{"name": "by-member-admin", "organizationId": admin.OrgID, "role": "admin"})
			r.ExpectError(t, http.StatusForbidden, "PermissionBoundaryError", "Failed to create identity")
			missing, _ := r.Value("details", "missingPermissions").([]any)
			found := false
			for _, m := range missing {
				found = found || reflect.DeepEqual(m, map[string]any{"action": "grant-privileges", "subject": "identity"})
			}
			if !found {
				t.Errorf("details.missingPermissions lacks identity grant-privileges: %s", r.Raw)
			}
			l := s.Get(identitiesPath+"?orgId="+admin.OrgID, admin.Token).Expect(t, http.StatusOK)
			for _, m := range l.Value("identities").([]any) {
				if m.(map[string]any)["identity"].(map[string]any)["name"] == "by-member-admin" {
					t.Error("the refused admin identity was created")
				}
			}
		})

		t.Run("member cannot raise an identity to admin", func(t *testing.T) {
			before := snapshot(t, s, admin, targetMember, memberID)
			for _, id := range []string{targetMember, memberID} {
				s.Patch(identityPath(id), memberTok, map[string]any{"role": "admin"}).
					ExpectError(t, http.StatusForbidden, "PermissionBoundaryError", "Failed to update identity")
				s.Patch(identityPath(id), memberTok, map[string]any{"name": "renamed", "role": "admin"}).
					ExpectError(t, http.StatusForbidden, "PermissionBoundaryError", "Failed to update identity")
			}
			expectUnchanged(t, before, snapshot(t, s, admin, targetMember, memberID))
		})

		t.Run("member cannot act on an admin identity", func(t *testing.T) {
			before := snapshot(t, s, admin, targetAdmin, targetAdminAzure)
			tests := []struct {
				call
				message string
			}{
				{call{"patch name", "PATCH", identityPath(targetAdmin), map[string]any{"name": "x"}}, "Failed to update identity"},
				{call{"lower role", "PATCH", identityPath(targetAdmin), map[string]any{"role": "no-access"}}, "Failed to update identity"},
				{call{"delete", "DELETE", identityPath(targetAdmin), nil}, "Failed to delete identity"},
				{call{"attach Azure Auth", "POST", azurePath(targetAdmin), azureBody}, "Failed to add Azure Auth to identity with more privileged role"},
				{call{"patch Azure Auth", "PATCH", azurePath(targetAdminAzure), map[string]any{"resource": "x"}}, "Failed to update Azure Auth of identity with more privileged role"},
				{call{"delete Azure Auth", "DELETE", azurePath(targetAdminAzure), nil}, "Failed to revoke azure auth of identity with more privileged role"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					tt.do(s, memberTok).ExpectError(t, http.StatusForbidden, "PermissionBoundaryError", tt.message)
				})
			}
			// Reading is allowed.
			s.Get(identityPath(targetAdmin), memberTok).Expect(t, http.StatusOK)
			s.Get(azurePath(targetAdminAzure), memberTok).Expect(t, http.StatusOK)
			expectUnchanged(t, before, snapshot(t, s, admin, targetAdmin, targetAdminAzure))
		})

		t.Run("member manages identities up to its role", func(t *testing.T) {
			id := s.CreateIdentity(memberTok, admin.OrgID, "member-managed", "member")
			s.Patch(identityPath(id), memberTok, map[string]any{"name": "renamed", "role": "no-access", "hasDeleteProtection": false}).Expect(t, http.StatusOK)
			s.Patch(identityPath(id), memberTok, map[string]any{"role": "member"}).Expect(t, http.StatusOK)
			s.AttachAzure(memberTok, id, nil)
			s.Get(azurePath(id), memberTok).Expect(t, http.StatusOK)
			s.Patch(azurePath(id), memberTok, map[string]any{"resource": "x"}).Expect(t, http.StatusOK)
			s.Delete(azurePath(id), memberTok).Expect(t, http.StatusOK)
			s.Delete(identityPath(id), memberTok).Expect(t, http.StatusOK)
			s.Get(identitiesPath+"?orgId="+admin.OrgID, memberTok).Expect(t, http.StatusOK)
		})

		t.Run("admin manages admin identities", func(t *testing.T) {
			id := s.CreateIdentity(adminTok, admin.OrgID, "admin-managed", "admin")
			s.Patch(identityPath(id), adminTok, map[string]any{"name": "renamed"}).Expect(t, http.StatusOK)
			s.AttachAzure(adminTok, id, nil)
			s.Patch(azurePath(id), adminTok, map[string]any{"resource": "x"}).Expect(t, http.StatusOK)
			s.Delete(azurePath(id), adminTok).Expect(t, http.StatusOK)
			s.Delete(identityPath(id), adminTok).Expect(t, http.StatusOK)
		})

		t.Run("role change applies to the next request", func(t *testing.T) {
			id, tok := s.IdentityToken(admin, "member", nil)
			s.CreateIdentity(tok, admin.OrgID, "while-member", "member")

			s.Patch(identityPath(id), admin.Token, map[string]any{"role": "no-access"}).Expect(t, http.StatusOK)
			s.Post(identitiesPath, tok, map[string]any{"name": "while-no-access", "organizationId": admin.OrgID, "role": "no-access"}).
				ExpectError(t, http.StatusForbidden, "PermissionDenied", "You are not allowed to create on identity")

			s.Patch(identityPath(id), admin.Token, map[string]any{"role": "admin"}).Expect(t, http.StatusOK)
			s.CreateIdentity(tok, admin.OrgID, "while-admin", "admin")

			s.Patch(identityPath(id), admin.Token, map[string]any{"role": "member"}).Expect(t, http.StatusOK)
			s.Post(identitiesPath, tok, map[string]any{"name": "x", "organizationId": admin.OrgID, "role": "admin"}).
				ExpectError(t, http.StatusForbidden, "PermissionBoundaryError", "Failed to create identity")
		})

		t.Run("instance admin identity is changed only by itself", func(t *testing.T) {
			actors := map[string]string{"another admin": adminTok, "a member": memberTok, "a no-access identity": noAccessTok}
			refused := []call{
				{"patch identity", "PATCH", identityPath(admin.ID), map[string]any{"name": "x"}},
				{"patch role", "PATCH", identityPath(admin.ID), map[string]any{"role": "no-access"}},
				{"delete identity", "DELETE", identityPath(admin.ID), nil},
				{"attach Azure Auth", "POST", azurePath(admin.ID), azureBody},
			}
			before := snapshot(t, s, admin, admin.ID)
			for name, tok := range actors {
				for _, c := range refused {
					t.Run(name+" "+c.name, func(t *testing.T) {
						c.do(s, tok).ExpectError(t, http.StatusForbidden, "ForbiddenError", instanceAdminMessage)
					})
				}
			}
			expectUnchanged(t, before, snapshot(t, s, admin, admin.ID))

			// The instance admin attaches Azure Auth to itself; then the
			// others cannot change or remove it, but may read it.
			s.AttachAzure(admin.Token, admin.ID, nil)
			before = snapshot(t, s, admin, admin.ID)
			for name, tok := range actors {
				for _, c := range []call{
					{"patch Azure Auth", "PATCH", azurePath(admin.ID), map[string]any{"resource": "x"}},
					{"empty patch of Azure Auth", "PATCH", azurePath(admin.ID), map[string]any{}},
					{"delete Azure Auth", "DELETE", azurePath(admin.ID), nil},
					{"attach Azure Auth again", "POST", azurePath(admin.ID), azureBody},
				} {
					t.Run(name+" "+c.name, func(t *testing.T) {
						c.do(s, tok).ExpectError(t, http.StatusForbidden, "ForbiddenError", instanceAdminMessage)
					})
				}
			}
			expectUnchanged(t, before, snapshot(t, s, admin, admin.ID))
			s.Get(identityPath(admin.ID), adminTok).Expect(t, http.StatusOK)
			s.Get(azurePath(admin.ID), adminTok).Expect(t, http.StatusOK)
			s.Get(azurePath(admin.ID), memberTok).Expect(t, http.StatusOK)

			// The instance admin itself may do all of it.
			s.Patch(azurePath(admin.ID), admin.Token, map[string]any{"resource": "https://self/"}).Expect(t, http.StatusOK)
			s.Delete(azurePath(admin.ID), admin.Token).Expect(t, http.StatusOK)
			p := s.Patch(identityPath(admin.ID), admin.Token, map[string]any{"name": "Root", "hasDeleteProtection": false}).Expect(t, http.StatusOK)
			if p.String("identity", "name") != "Root" {
				t.Errorf("instance admin renaming itself: %s", p.Raw)
			}
		})

		t.Run("other organization", func(t *testing.T) {
			otherOrg, otherTok := s.OtherOrganization("Other Corp")
			before := snapshot(t, s, admin, targetMember, targetMemberAzure)
			// Identities of another organization are indistinguishable from
			// missing ones.
			for _, id := range []string{targetMember, targetMemberAzure} {
				s.Get(identityPath(id), otherTok).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with id "+id)
				s.Patch(identityPath(id), otherTok, map[string]any{"name": "x"}).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with id "+id)
				s.Delete(identityPath(id), otherTok).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with id "+id)
				s.Get(azurePath(id), otherTok).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with ID "+id)
				s.Patch(azurePath(id), otherTok, map[string]any{"resource": "x"}).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with ID "+id)
				s.Delete(azurePath(id), otherTok).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with ID "+id)
			}
			s.Post(azurePath(targetMember), otherTok, azureBody).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with ID "+targetMember)
			s.Get(identitiesPath+"?orgId="+admin.OrgID, otherTok).ExpectError(t, http.StatusForbidden, "ForbiddenError", "You are not allowed to access this organization")
			s.Post(identitiesPath, otherTok, map[string]any{"name": "x", "organizationId": admin.OrgID}).
				ExpectError(t, http.StatusForbidden, "ForbiddenError", "You are not allowed to access this organization")
			expectUnchanged(t, before, snapshot(t, s, admin, targetMember, targetMemberAzure))

			// It sees only its own organization.
			d := s.Get("/api/v1/identities/details", otherTok).Expect(t, http.StatusOK)
			if d.String("identityDetails", "organization", "id") != otherOrg {
				t.Errorf("details of the other organization: %s", d.Raw)
			}
			l := s.Get(identitiesPath+"?orgId="+otherOrg, otherTok).Expect(t, http.StatusOK)
			if l.Number("totalCount") != 1 {
				t.Errorf("the other organization lists %v identities: %s", l.Number("totalCount"), l.Raw)
			}
			// And the reverse: its identities are out of reach of this one.
			otherID := s.CreateIdentity(otherTok, otherOrg, "theirs", "member")
			s.Get(identityPath(otherID), admin.Token).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with id "+otherID)
			s.Delete(identityPath(otherID), admin.Token).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with id "+otherID)
			s.Post(azurePath(otherID), admin.Token, azureBody).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with ID "+otherID)
			s.Get(identitiesPath+"?orgId="+otherOrg, admin.Token).ExpectError(t, http.StatusForbidden, "ForbiddenError", "You are not allowed to access this organization")
			s.Get(identityPath(otherID), otherTok).Expect(t, http.StatusOK)
		})

		t.Run("instance admin may delete itself", func(t *testing.T) {
			// Last: it ends the bootstrap token.
			s.Delete(identityPath(admin.ID), admin.Token).Expect(t, http.StatusOK)
			s.Get("/api/v1/identities/details", admin.Token).ExpectError(t, http.StatusUnauthorized, "UnauthorizedError", "")
			s.Get(identityPath(admin.ID), adminTok).ExpectError(t, http.StatusNotFound, "NotFound", "Failed to find identity with id "+admin.ID)
		})
	})
}
