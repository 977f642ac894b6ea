// Package identity manages organizations' machine identities: the bootstrap
// of an instance, and creating, reading, changing and deleting identities,
// with the permission and privilege-boundary rules of every change.
package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"

	"github.com/google/uuid"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/token"
)

// Store is what the identity service needs from the database.
type Store interface {
	Bootstrapped(ctx context.Context) (bool, error)
	Bootstrap(ctx context.Context, b gatehouse.Bootstrap) error
	Organization(ctx context.Context, id string) (gatehouse.Organization, error)
	CreateIdentity(ctx context.Context, i gatehouse.Identity) error
	Identity(ctx context.Context, id string) (gatehouse.Identity, error)
	IdentityRef(ctx context.Context, id string) (gatehouse.Identity, error)
	Identities(ctx context.Context, orgID string) ([]gatehouse.Identity, error)
	UpdateIdentity(ctx context.Context, id string, u gatehouse.IdentityUpdate) error
	DeleteIdentity(ctx context.Context, id string) error
}

// Issuer signs access tokens.
type Issuer interface {
	Issue(identity gatehouse.Identity, binding gatehouse.AuthBinding) (token.Issued, error)
}

// Service manages identities.
type Service struct {
	store  Store
	tokens Issuer
	clock  gatehouse.Clock
}

// NewService returns a Service.
func NewService(store Store, tokens Issuer, clock gatehouse.Clock) *Service {
	if clock == nil {
		clock = gatehouse.SystemClock{}
	}
	return &Service{store: store, tokens: tokens, clock: clock}
}

// BootstrapResult is what the first set-up created.
type BootstrapResult struct {
	User         gatehouse.User
	Organization gatehouse.Organization
	Identity     gatehouse.Identity
	Token        string
}

// InstanceAdminName is the name of the identity the bootstrap creates.
const InstanceAdminName = "Instance Admin Identity"

// Bootstrap sets up an empty instance: an admin user, an organization, and
// the instance admin identity with Token Auth attached, and returns an
// access token of that identity. Of concurrent calls exactly one succeeds.
func (s *Service) Bootstrap(ctx context.Context, email, password, orgName string) (BootstrapResult, error) {
	done, err := s.store.Bootstrapped(ctx)
	if err != nil {
		return BootstrapResult{}, err
	}
	if done {
		return BootstrapResult{}, gatehouse.ErrAlreadyBootstrapped
	}
	hash, err := HashPassword(password)
	if err != nil {
		return BootstrapResult{}, gatehouse.Wrap(gatehouse.KindInternal, err, "Something went wrong")
	}
	now := s.clock.Now().UTC()
	email = strings.ToLower(email)
	b := gatehouse.Bootstrap{
		At: now,
		User: gatehouse.User{ID: uuid.NewString(), Email: email, Username: email, FirstName: "Admin", LastName: "User",
			PasswordHash: hash, SuperAdmin: true, CreatedAt: now},
		Organization: gatehouse.Organization{ID: uuid.NewString(), Name: orgName, Slug: Slugify(orgName) + "-" + randomSuffix(4),
			CreatedAt: now, UpdatedAt: now},
	}
	b.Identity = gatehouse.Identity{ID: uuid.NewString(), MembershipID: uuid.NewString(), OrgID: b.Organization.ID,
		Name: InstanceAdminName, Role: gatehouse.RoleAdmin, IsInstanceAdmin: true, CreatedAt: now, UpdatedAt: now,
		AuthMethods: []gatehouse.AuthMethod{gatehouse.AuthMethodToken}, Metadata: []gatehouse.Metadata{}}
	b.Binding = gatehouse.AuthBinding{ID: uuid.NewString(), IdentityID: b.Identity.ID, Method: gatehouse.AuthMethodToken,
		Policy: gatehouse.TokenPolicy{TrustedIPs: gatehouse.DefaultTrustedIPs()}, Config: []byte("{}"), CreatedAt: now, UpdatedAt: now}
	if err := s.store.Bootstrap(ctx, b); err != nil {
		return BootstrapResult{}, err
	}
	issued, err := s.tokens.Issue(b.Identity, b.Binding)
	if err != nil {
		return BootstrapResult{}, err
	}
	return BootstrapResult{User: b.User, Organization: b.Organization, Identity: b.Identity, Token: issued.Token}, nil
}

// Target returns the identity with id when it belongs to the actor's
// organization; otherwise a NotFound error with notFound as its message.
// Identities of other organizations are indistinguishable from missing ones.
func (s *Service) Target(ctx context.Context, actor gatehouse.Actor, id, notFound string) (gatehouse.Identity, error) {
	i, err := s.store.Identity(ctx, id)
	return visible(i, err, actor, notFound)
}

// Find is Target without the identity's metadata and auth methods: one
// read, for callers that only check who may act on it.
func (s *Service) Find(ctx context.Context, actor gatehouse.Actor, id, notFound string) (gatehouse.Identity, error) {
	i, err := s.store.IdentityRef(ctx, id)
	return visible(i, err, actor, notFound)
}

// visible turns a lookup of another organization's identity, or of a
// missing one, into the same NotFound error with message notFound.
func visible(i gatehouse.Identity, err error, actor gatehouse.Actor, notFound string) (gatehouse.Identity, error) {
	if errors.Is(err, gatehouse.ErrNotFound) || (err == nil && i.OrgID != actor.OrgID) {
		return gatehouse.Identity{}, gatehouse.Errorf(gatehouse.KindNotFound, "%s", notFound)
	}
	return i, err
}

func notFoundMsg(id string) string { return "Failed to find identity with id " + id }

// NewIdentity is what creating an identity takes.
type NewIdentity struct {
	Name                string
	OrganizationID      string
	Role                gatehouse.Role
	HasDeleteProtection bool
	Metadata            []gatehouse.Metadata
}

// Create adds an identity to the actor's organization. The actor needs
// identity create, and may not give a role more privileged than its own.
func (s *Service) Create(ctx context.Context, actor gatehouse.Actor, in NewIdentity) (gatehouse.Identity, error) {
	if in.OrganizationID != actor.OrgID {
		return gatehouse.Identity{}, gatehouse.Errorf(gatehouse.KindForbidden, "You are not allowed to access this organization")
	}
	if err := actor.Require(gatehouse.PermIdentityCreate); err != nil {
		return gatehouse.Identity{}, err
	}
	if err := checkRole(in.Role); err != nil {
		return gatehouse.Identity{}, err
	}
	if in.Role != gatehouse.RoleNoAccess {
		if err := actor.RequireBoundary(in.Role, "Failed to create identity"); err != nil {
			return gatehouse.Identity{}, err
		}
	}
	now := s.clock.Now().UTC()
	i := gatehouse.Identity{ID: uuid.NewString(), MembershipID: uuid.NewString(), OrgID: actor.OrgID, Name: in.Name,
		Role: in.Role, HasDeleteProtection: in.HasDeleteProtection, Metadata: withIDs(in.Metadata),
		AuthMethods: []gatehouse.AuthMethod{}, CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateIdentity(ctx, i); err != nil {
		return gatehouse.Identity{}, err
	}
	return i, nil
}

func checkRole(r gatehouse.Role) error {
	if !r.Valid() {
		return gatehouse.Errorf(gatehouse.KindInvalid, "Role %q does not exist: the roles are admin, member and no-access", string(r))
	}
	return nil
}

func withIDs(md []gatehouse.Metadata) []gatehouse.Metadata {
	out := make([]gatehouse.Metadata, len(md))
	for k, m := range md {
		out[k] = gatehouse.Metadata{ID: uuid.NewString(), Key: m.Key, Value: m.Value}
	}
	return out
}

// Get returns an identity of the actor's organization.
func (s *Service) Get(ctx context.Context, actor gatehouse.Actor, id string) (gatehouse.Identity, error) {
	i, err := s.Target(ctx, actor, id, notFoundMsg(id))
	if err != nil {
		return i, err
	}
	return i, actor.Require(gatehouse.PermIdentityRead)
}

// List returns the identities of the actor's organization.
func (s *Service) List(ctx context.Context, actor gatehouse.Actor, orgID string) ([]gatehouse.Identity, error) {
	if orgID != actor.OrgID {
		return nil, gatehouse.Errorf(gatehouse.KindForbidden, "You are not allowed to access this organization")
	}
	if err := actor.Require(gatehouse.PermIdentityRead); err != nil {
		return nil, err
	}
	return s.store.Identities(ctx, orgID)
}

// Update changes an identity. The actor needs identity edit, must be at
// least as privileged as the identity, and may not raise it above itself.
func (s *Service) Update(ctx context.Context, actor gatehouse.Actor, id string, u gatehouse.IdentityUpdate) (gatehouse.Identity, error) {
	i, err := s.Target(ctx, actor, id, notFoundMsg(id))
	if err != nil {
		return i, err
	}
	if err := actor.GuardInstanceAdmin(i); err != nil {
		return i, err
	}
	if err := actor.Require(gatehouse.PermIdentityEdit); err != nil {
		return i, err
	}
	if err := actor.RequireBoundary(i.Role, "Failed to update identity"); err != nil {
		return i, err
	}
	if u.Role != nil {
		if err := checkRole(*u.Role); err != nil {
			return i, err
		}
		if err := actor.RequireBoundary(*u.Role, "Failed to update identity"); err != nil {
			return i, err
		}
	}
	if u.Metadata != nil {
		md := withIDs(*u.Metadata)
		u.Metadata = &md
	}
	u.At = s.clock.Now().UTC()
	if err := s.store.UpdateIdentity(ctx, id, u); err != nil {
		return i, err
	}
	return s.store.Identity(ctx, id)
}

// Delete removes an identity; its tokens stop working at once. The actor
// needs identity delete and must be at least as privileged as the identity.
func (s *Service) Delete(ctx context.Context, actor gatehouse.Actor, id string) (gatehouse.Identity, error) {
	i, err := s.Target(ctx, actor, id, notFoundMsg(id))
	if err != nil {
		return i, err
	}
	if err := actor.GuardInstanceAdmin(i); err != nil {
		return i, err
	}
	if err := actor.Require(gatehouse.PermIdentityDelete); err != nil {
		return i, err
	}
	if err := actor.RequireBoundary(i.Role, "Failed to delete identity"); err != nil {
		return i, err
	}
	if i.HasDeleteProtection {
		return i, gatehouse.Errorf(gatehouse.KindInvalid, "Identity has delete protection")
	}
	return i, s.store.DeleteIdentity(ctx, id)
}

// Organization returns the actor's organization.
func (s *Service) Organization(ctx context.Context, actor gatehouse.Actor) (gatehouse.Organization, error) {
	return s.store.Organization(ctx, actor.OrgID)
}

// Slugify lower-cases name and turns every run of other characters than
// letters and digits into one hyphen.
func Slugify(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	slug := strings.TrimSuffix(b.String(), "-")
	if len(slug) > 58 {
		slug = strings.TrimSuffix(slug[:58], "-")
	}
	if slug == "" {
		slug = "org"
	}
	return slug
}

// randomSuffix returns n random lower-case letters and digits, which make an
// organization's slug unique.
func randomSuffix(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for k := range b {
		b[k] = alphabet[int(b[k])%len(alphabet)]
	}
	return string(b)
}
