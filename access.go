package gatehouse

import (
	"sort"
	"strings"
)

// Actor is who makes an authenticated request: a machine identity acting
// with its organization role.
type Actor struct {
	IdentityID      string
	OrgID           string
	Role            Role
	IsInstanceAdmin bool
}

// Require answers PermissionDenied unless the actor's role grants p.
func (a Actor) Require(p Permission) error {
	if a.Role.Can(p) {
		return nil
	}
	subject, action, _ := strings.Cut(string(p), ":")
	return &Error{Kind: KindPermissionDenied, Message: "You are not allowed to " + action + " on " + subject}
}

// RequireBoundary answers PermissionBoundaryError unless the actor's role
// covers role: no actor may create, raise, or manage the login methods of an
// identity more privileged than itself.
func (a Actor) RequireBoundary(role Role, message string) error {
	if a.Role.Covers(role) {
		return nil
	}
	return &Error{Kind: KindPermissionBoundary, Message: message,
		Details: map[string]any{"missingPermissions": missing(a.Role, role)}}
}

func missing(have, want Role) []map[string]string {
	var perms []string
	for p := range rolePermissions[want] {
		if !have.Can(p) {
			perms = append(perms, string(p))
		}
	}
	sort.Strings(perms)
	out := []map[string]string{}
	for _, p := range perms {
		subject, action, _ := strings.Cut(p, ":")
		out = append(out, map[string]string{"action": action, "subject": subject})
	}
	return out
}

// GuardInstanceAdmin refuses any change to the instance admin identity by
// anyone but that identity itself.
func (a Actor) GuardInstanceAdmin(target Identity) error {
	if target.IsInstanceAdmin && target.ID != a.IdentityID {
		return Errorf(KindForbidden, "You are attempting to modify an instance admin identity. This requires elevated instance admin privileges")
	}
	return nil
}
