package gatehouse

import (
	"errors"
	"reflect"
	"testing"
)

var allRoles = []Role{RoleAdmin, RoleMember, RoleNoAccess}

func TestRoleValid(t *testing.T) {
	for _, r := range allRoles {
		if !r.Valid() {
			t.Errorf("%q is not valid", r)
		}
	}
	for _, r := range []Role{"", "Admin", "owner", "custom", "no_access"} {
		if r.Valid() {
			t.Errorf("%q is valid", r)
		}
	}
}

func TestRoleCan(t *testing.T) {
	identityPerms := []Permission{PermIdentityRead, PermIdentityCreate, PermIdentityEdit, PermIdentityDelete,
		PermIdentityGrantPrivileges, PermIdentityRevokeAuth}
	want := map[Role]map[Permission]bool{
		RoleAdmin: {PermIdentityRead: true, PermIdentityCreate: true, PermIdentityEdit: true, PermIdentityDelete: true,
			PermIdentityGrantPrivileges: true, PermIdentityRevokeAuth: true},
		RoleMember:   {PermIdentityRead: true, PermIdentityCreate: true, PermIdentityEdit: true, PermIdentityDelete: true},
		RoleNoAccess: {},
		"unknown":    {},
	}
	for role, perms := range want {
		for _, p := range identityPerms {
			if got := role.Can(p); got != perms[p] {
				t.Errorf("%q.Can(%s) = %v, want %v", role, p, got, perms[p])
			}
		}
	}
	if RoleAdmin.Can("identity:fly") {
		t.Error("admin can do an unknown permission")
	}
	if !RoleMember.Can("member:read") || RoleMember.Can("member:create") {
		t.Error("member's organization permissions are not read-only")
	}
}

func TestRoleCovers(t *testing.T) {
	tests := []struct {
		r, other Role
		want     bool
	}{
		{RoleAdmin, RoleAdmin, true},
		{RoleAdmin, RoleMember, true},
		{RoleAdmin, RoleNoAccess, true},
		{RoleMember, RoleAdmin, false},
		{RoleMember, RoleMember, true},
		{RoleMember, RoleNoAccess, true},
		{RoleNoAccess, RoleAdmin, false},
		{RoleNoAccess, RoleMember, false},
		{RoleNoAccess, RoleNoAccess, true},
		// Unknown roles cover nothing and are covered by nothing.
		{"owner", RoleNoAccess, false},
		{RoleAdmin, "owner", false},
		{"owner", "owner", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if got := tt.r.Covers(tt.other); got != tt.want {
			t.Errorf("%q.Covers(%q) = %v, want %v", tt.r, tt.other, got, tt.want)
		}
	}
}

func TestActorRequire(t *testing.T) {
	tests := []struct {
		role    Role
		perm    Permission
		message string // "" when allowed
	}{
		{RoleAdmin, PermIdentityCreate, ""},
		{RoleAdmin, PermIdentityRevokeAuth, ""},
		{RoleMember, PermIdentityDelete, ""},
		{RoleMember, PermIdentityGrantPrivileges, "You are not allowed to grant-privileges on identity"},
		{RoleNoAccess, PermIdentityRead, "You are not allowed to read on identity"},
		{RoleNoAccess, PermIdentityCreate, "You are not allowed to create on identity"},
		{RoleNoAccess, PermIdentityEdit, "You are not allowed to edit on identity"},
		{RoleNoAccess, PermIdentityDelete, "You are not allowed to delete on identity"},
		{"", PermIdentityRead, "You are not allowed to read on identity"},
	}
	for _, tt := range tests {
		err := Actor{IdentityID: "a", OrgID: "o", Role: tt.role}.Require(tt.perm)
		if tt.message == "" {
			if err != nil {
				t.Errorf("%q requires %s: %v, want nil", tt.role, tt.perm, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindPermissionDenied || e.Message != tt.message {
			t.Errorf("%q requires %s: %v, want PermissionDenied %q", tt.role, tt.perm, err, tt.message)
		}
	}
}

func TestActorRequireBoundary(t *testing.T) {
	for _, actor := range allRoles {
		for _, target := range allRoles {
			err := Actor{Role: actor}.RequireBoundary(target, "Failed to update identity")
			if actor.Covers(target) {
				if err != nil {
					t.Errorf("%s acting on %s: %v, want nil", actor, target, err)
				}
				continue
			}
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindPermissionBoundary || e.Message != "Failed to update identity" {
				t.Errorf("%s acting on %s: %v, want PermissionBoundary", actor, target, err)
			}
		}
	}

	// The details list what the actor lacks, sorted, as {action, subject}.
	err := Actor{Role: RoleMember}.RequireBoundary(RoleAdmin, "Failed to create identity")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("member creating admin: %v", err)
	}
	missing := e.Details.(map[string]any)["missingPermissions"].([]map[string]string)
	if len(missing) != len(adminExtra) {
		t.Errorf("%d missing permissions, want %d: %v", len(missing), len(adminExtra), missing)
	}
	for k := 1; k < len(missing); k++ {
		prev, cur := missing[k-1]["subject"]+":"+missing[k-1]["action"], missing[k]["subject"]+":"+missing[k]["action"]
		if prev >= cur {
			t.Errorf("missing permissions not sorted: %s before %s", prev, cur)
		}
	}
	found := false
	for _, m := range missing {
		if reflect.DeepEqual(m, map[string]string{"action": "grant-privileges", "subject": "identity"}) {
			found = true
		}
	}
	if !found {
		t.Errorf("missing permissions lack identity grant-privileges: %v", missing)
	}

	// A no-access actor lacks every permission of a member.
	err = Actor{Role: RoleNoAccess}.RequireBoundary(RoleMember, "m")
	if !errors.As(err, &e) {
		t.Fatalf("no-access acting on member: %v", err)
	}
	if got := len(e.Details.(map[string]any)["missingPermissions"].([]map[string]string)); got != len(memberPermissions) {
		t.Errorf("%d missing permissions, want %d", got, len(memberPermissions))
	}
}

func TestActorGuardInstanceAdmin(t *testing.T) {
	const message = "You are attempting to modify an instance admin identity. This requires elevated instance admin privileges"
	instanceAdmin := Identity{ID: "root", Role: RoleAdmin, IsInstanceAdmin: true}
	tests := []struct {
		name   string
		actor  Actor
		target Identity
		ok     bool
	}{
		{"the instance admin itself", Actor{IdentityID: "root", Role: RoleAdmin, IsInstanceAdmin: true}, instanceAdmin, true},
		{"another admin", Actor{IdentityID: "other", Role: RoleAdmin}, instanceAdmin, false},
		{"a member", Actor{IdentityID: "m", Role: RoleMember}, instanceAdmin, false},
		{"a no-access identity", Actor{IdentityID: "n", Role: RoleNoAccess}, instanceAdmin, false},
		// Being an instance admin does not extend to other instance admins.
		{"another instance admin", Actor{IdentityID: "root2", Role: RoleAdmin, IsInstanceAdmin: true}, instanceAdmin, false},
		{"an ordinary target", Actor{IdentityID: "n", Role: RoleNoAccess}, Identity{ID: "x", Role: RoleAdmin}, true},
	}
	for _, tt := range tests {
		err := tt.actor.GuardInstanceAdmin(tt.target)
		if tt.ok {
			if err != nil {
				t.Errorf("%s: %v, want nil", tt.name, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindForbidden || e.Message != message {
			t.Errorf("%s: %v, want Forbidden %q", tt.name, err, message)
		}
	}
}
