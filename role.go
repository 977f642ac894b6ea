package gatehouse

// Role is an organization role. Gatehouse has the three built-in roles of
// Infisical, with fixed permission sets modelled on Infisical's.
type Role string

const (
	RoleAdmin    Role = "admin"
	RoleMember   Role = "member"
	RoleNoAccess Role = "no-access"
)

// Permission is an action on an organization subject, written
// "subject:action".
type Permission string

// Identity permissions: what an actor may do to other identities.
const (
	PermIdentityRead            Permission = "identity:read"
	PermIdentityCreate          Permission = "identity:create"
	PermIdentityEdit            Permission = "identity:edit"
	PermIdentityDelete          Permission = "identity:delete"
	PermIdentityGrantPrivileges Permission = "identity:grant-privileges"
	PermIdentityRevokeAuth      Permission = "identity:revoke-auth"
)

// memberPermissions follows Infisical's built-in member role: identities can
// be read, created, edited and deleted, but no privileges granted, and the
// rest of the organization is read-only.
var memberPermissions = []Permission{
	"workspace:create", "member:read", "groups:read", "role:read", "settings:read",
	"billing:read", "incident-contact:read", "secret-scanning:read", "secret-scanning:create",
	"secret-scanning:edit", "secret-scanning:delete", "audit-logs:read", "app-connections:connect",
	"gateway:list-gateways", "gateway:create-gateways",
	PermIdentityRead, PermIdentityCreate, PermIdentityEdit, PermIdentityDelete,
}

// adminExtra is what an admin has beyond a member.
var adminExtra = []Permission{
	"workspace:read", "workspace:edit", "workspace:delete",
	"member:create", "member:edit", "member:delete", "groups:create", "groups:edit", "groups:delete",
	"role:create", "role:edit", "role:delete", "settings:create", "settings:edit", "settings:delete",
	"billing:create", "billing:edit", "billing:delete", "audit-logs:create", "audit-logs:edit", "audit-logs:delete",
	"app-connections:read", "app-connections:create", "app-connections:edit", "app-connections:delete",
	"gateway:edit-gateways", "gateway:delete-gateways",
	PermIdentityGrantPrivileges, PermIdentityRevokeAuth,
}

var rolePermissions = map[Role]map[Permission]bool{
	RoleAdmin:    setOf(memberPermissions, adminExtra),
	RoleMember:   setOf(memberPermissions),
	RoleNoAccess: {},
}

func setOf(lists ...[]Permission) map[Permission]bool {
	set := map[Permission]bool{}
	for _, l := range lists {
		for _, p := range l {
			set[p] = true
		}
	}
	return set
}

// Valid reports whether r is one of the built-in roles.
func (r Role) Valid() bool {
	_, ok := rolePermissions[r]
	return ok
}

// Can reports whether the role grants p.
func (r Role) Can(p Permission) bool { return rolePermissions[r][p] }

// Covers reports whether r holds every permission of other: an actor may act
// on, create or grant only roles its own role covers. This is the privilege
// boundary; no endpoint may let an actor reach past it.
func (r Role) Covers(other Role) bool {
	mine, ok := rolePermissions[r]
	if !ok {
		return false
	}
	theirs, ok := rolePermissions[other]
	if !ok {
		return false
	}
	for p := range theirs {
		if !mine[p] {
			return false
		}
	}
	return true
}
