package gatehouse

import "time"

// Organization owns identities. Its slug is the lower-case, URL-safe name
// clients may send as organizationSlug.
type Organization struct {
	ID        string
	Name      string
	Slug      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// User is a human administrator. Gatehouse keeps only the one created by the
// bootstrap; its password is stored as a slow hash.
type User struct {
	ID           string
	Email        string
	Username     string
	FirstName    string
	LastName     string
	PasswordHash string
	SuperAdmin   bool
	CreatedAt    time.Time
}

// Identity is a machine identity: a workload that logs in with one of its
// auth methods and acts with the permissions of its organization role.
type Identity struct {
	ID                  string
	MembershipID        string // the id of its organization membership, as Infisical reports it
	OrgID               string
	Name                string
	Role                Role
	HasDeleteProtection bool
	// IsInstanceAdmin marks the identity made by the bootstrap. Only the
	// identity itself may change it.
	IsInstanceAdmin     bool
	Metadata            []Metadata
	AuthMethods         []AuthMethod // the methods attached, sorted by name
	LastLoginAuthMethod AuthMethod
	LastLoginTime       *time.Time
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// Metadata is a key/value label on an identity.
type Metadata struct {
	ID    string
	Key   string
	Value string
}

// AuthMethod names a way for an identity to log in.
type AuthMethod string

const (
	AuthMethodAzure AuthMethod = "azure-auth"
	AuthMethodToken AuthMethod = "token-auth"
)

// AuthBinding is an auth method attached to an identity: the method's own
// configuration (opaque here; each method owns its format) and the token
// policy of every token the method issues. Every method is stored this way.
type AuthBinding struct {
	ID         string // changes when a method is detached and attached again
	IdentityID string
	Method     AuthMethod
	Policy     TokenPolicy
	Config     []byte // JSON, owned by the method's package
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// IdentityUpdate lists the fields of an identity to change; nil fields stay.
type IdentityUpdate struct {
	Name                *string
	Role                *Role
	HasDeleteProtection *bool
	Metadata            *[]Metadata // replaces all metadata
	At                  time.Time
}

// Bootstrap is everything the first set-up of an instance creates.
type Bootstrap struct {
	At           time.Time
	User         User
	Organization Organization
	Identity     Identity
	Binding      AuthBinding
}

// ErrAlreadyBootstrapped answers a bootstrap of an instance that has been set up.
var ErrAlreadyBootstrapped = Errorf(KindInvalid, "Instance has already been set up")
