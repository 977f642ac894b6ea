// Package azureauth is the Azure Auth method: an identity logs in with an
// Entra ID access token of an allowed service principal or managed identity
// of its tenant, and receives a Gatehouse access token under the method's
// token policy.
package azureauth

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/entra"
	"github.com/gatehouse/gatehouse/token"
)

// Method is the name of the method, as tokens and identities report it.
const Method = gatehouse.AuthMethodAzure

// Config is the Azure-specific part of an attachment, stored as JSON.
type Config struct {
	TenantID string `json:"tenantId"`
	Resource string `json:"resource"`
	// AllowedServicePrincipalIDs is the comma-separated list of object ids
	// (oid) allowed to log in, normalised to "a, b, c". Empty allows every
	// principal of the tenant whose token has the right audience.
	AllowedServicePrincipalIDs string `json:"allowedServicePrincipalIds"`
}

// NormalizePrincipalIDs trims the list and each of its entries and joins
// them with ", ", as Infisical stores the field.
func NormalizePrincipalIDs(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	parts := strings.Split(s, ",")
	for k := range parts {
		parts[k] = strings.TrimSpace(parts[k])
	}
	return strings.Join(parts, ", ")
}

// allows reports whether oid is in the list; an empty list allows all.
func (c Config) allows(oid string) bool {
	if c.AllowedServicePrincipalIDs == "" {
		return true
	}
	for _, id := range strings.Split(c.AllowedServicePrincipalIDs, ",") {
		if strings.TrimSpace(id) == oid {
			return true
		}
	}
	return false
}

// Attachment is Azure Auth as attached to an identity.
type Attachment struct {
	Binding gatehouse.AuthBinding
	Config  Config
}

func attachmentOf(b gatehouse.AuthBinding) (Attachment, error) {
	var c Config
	if err := json.Unmarshal(b.Config, &c); err != nil {
		return Attachment{}, gatehouse.Wrap(gatehouse.KindInternal, err, "Something went wrong")
	}
	return Attachment{Binding: b, Config: c}, nil
}

// Store is what Azure Auth needs from the database.
type Store interface {
	AttachAuthMethod(ctx context.Context, b gatehouse.AuthBinding) error
	AuthMethod(ctx context.Context, identityID string, method gatehouse.AuthMethod) (gatehouse.AuthBinding, error)
	UpdateAuthMethod(ctx context.Context, identityID string, method gatehouse.AuthMethod, at time.Time,
		change func(gatehouse.AuthBinding) (gatehouse.AuthBinding, error)) (gatehouse.AuthBinding, error)
	DetachAuthMethod(ctx context.Context, identityID string, method gatehouse.AuthMethod) (gatehouse.AuthBinding, error)
	LoginTarget(ctx context.Context, identityID string, method gatehouse.AuthMethod) (gatehouse.Identity, gatehouse.AuthBinding, error)
	Organization(ctx context.Context, id string) (gatehouse.Organization, error)
	RecordLogin(ctx context.Context, identityID string, method gatehouse.AuthMethod, at time.Time) error
}

// Identities finds the identity an actor acts on.
type Identities interface {
	Find(ctx context.Context, actor gatehouse.Actor, id, notFound string) (gatehouse.Identity, error)
}

// Verifier checks Entra ID tokens.
type Verifier interface {
	Verify(ctx context.Context, rawJWT, tenantID, resource string) (*entra.Claims, error)
}

// Issuer signs access tokens.
type Issuer interface {
	Issue(identity gatehouse.Identity, binding gatehouse.AuthBinding) (token.Issued, error)
}

// Service is the Azure Auth method.
type Service struct {
	store      Store
	identities Identities
	verifier   Verifier
	tokens     Issuer
	clock      gatehouse.Clock
}

// NewService returns the Azure Auth method.
func NewService(store Store, identities Identities, verifier Verifier, tokens Issuer, clock gatehouse.Clock) *Service {
	if clock == nil {
		clock = gatehouse.SystemClock{}
	}
	return &Service{store: store, identities: identities, verifier: verifier, tokens: tokens, clock: clock}
}

// target loads the identity and checks the actor may do perm to its login
// methods: a change to the instance admin only by itself, the permission,
// and the privilege boundary.
func (s *Service) target(ctx context.Context, actor gatehouse.Actor, id string, perm gatehouse.Permission, boundary string) error {
	i, err := s.identities.Find(ctx, actor, id, "Failed to find identity with ID "+id)
	if err != nil {
		return err
	}
	if perm != gatehouse.PermIdentityRead { // reading is not modifying
		if err := actor.GuardInstanceAdmin(i); err != nil {
			return err
		}
	}
	if err := actor.Require(perm); err != nil {
		return err
	}
	if boundary == "" {
		return nil
	}
	return actor.RequireBoundary(i.Role, boundary)
}

// Attach attaches Azure Auth to an identity.
func (s *Service) Attach(ctx context.Context, actor gatehouse.Actor, identityID string, cfg Config, policy gatehouse.TokenPolicy) (Attachment, error) {
	if err := s.target(ctx, actor, identityID, gatehouse.PermIdentityCreate, "Failed to add Azure Auth to identity with more privileged role"); err != nil {
		return Attachment{}, err
	}
	if err := policy.CheckTTLs(); err != nil {
		return Attachment{}, err
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return Attachment{}, gatehouse.Wrap(gatehouse.KindInternal, err, "Something went wrong")
	}
	now := s.clock.Now().UTC()
	b := gatehouse.AuthBinding{ID: uuid.NewString(), IdentityID: identityID, Method: Method, Policy: policy,
		Config: raw, CreatedAt: now, UpdatedAt: now}
	err = s.store.AttachAuthMethod(ctx, b)
	switch {
	case errors.Is(err, gatehouse.ErrAlreadyExists):
		return Attachment{}, gatehouse.Errorf(gatehouse.KindInvalid, "Failed to add Azure Auth to already configured identity")
	case errors.Is(err, gatehouse.ErrNotFound):
		return Attachment{}, gatehouse.Errorf(gatehouse.KindNotFound, "Failed to find identity with ID %s", identityID)
	case err != nil:
		return Attachment{}, err
	}
	return Attachment{Binding: b, Config: cfg}, nil
}

// Get returns the Azure Auth of an identity.
func (s *Service) Get(ctx context.Context, actor gatehouse.Actor, identityID string) (Attachment, error) {
	if err := s.target(ctx, actor, identityID, gatehouse.PermIdentityRead, ""); err != nil {
		return Attachment{}, err
	}
	b, err := s.store.AuthMethod(ctx, identityID, Method)
	if errors.Is(err, gatehouse.ErrNotFound) {
		return Attachment{}, gatehouse.Errorf(gatehouse.KindInvalid, "The identity does not have Azure Auth attached")
	}
	if err != nil {
		return Attachment{}, err
	}
	return attachmentOf(b)
}

// Patch lists the fields to change; nil fields stay as they are.
type Patch struct {
	TenantID                   *string
	Resource                   *string
	AllowedServicePrincipalIDs *string
	TTL                        *int64
	MaxTTL                     *int64
	NumUsesLimit               *int64
	TrustedIPs                 *[]gatehouse.TrustedIP
}

func (p Patch) empty() bool { return p == Patch{} }

// Update changes the Azure Auth of an identity. TTL and max TTL are checked
// on the merged values. An empty patch changes nothing.
func (s *Service) Update(ctx context.Context, actor gatehouse.Actor, identityID string, p Patch) (Attachment, error) {
	if err := s.target(ctx, actor, identityID, gatehouse.PermIdentityEdit, "Failed to update Azure Auth of identity with more privileged role"); err != nil {
		return Attachment{}, err
	}
	notAttached := gatehouse.Errorf(gatehouse.KindInvalid, "Failed to update Azure Auth")
	if p.empty() {
		b, err := s.store.AuthMethod(ctx, identityID, Method)
		if errors.Is(err, gatehouse.ErrNotFound) {
			return Attachment{}, notAttached
		}
		if err != nil {
			return Attachment{}, err
		}
		return attachmentOf(b)
	}
	var out Attachment
	_, err := s.store.UpdateAuthMethod(ctx, identityID, Method, s.clock.Now().UTC(), func(b gatehouse.AuthBinding) (gatehouse.AuthBinding, error) {
		a, err := attachmentOf(b)
		if err != nil {
			return b, err
		}
		set(&a.Config.TenantID, p.TenantID)
		set(&a.Config.Resource, p.Resource)
		set(&a.Config.AllowedServicePrincipalIDs, p.AllowedServicePrincipalIDs)
		set(&a.Binding.Policy.TTL, p.TTL)
		set(&a.Binding.Policy.MaxTTL, p.MaxTTL)
		set(&a.Binding.Policy.NumUsesLimit, p.NumUsesLimit)
		set(&a.Binding.Policy.TrustedIPs, p.TrustedIPs)
		if err := a.Binding.Policy.CheckTTLs(); err != nil {
			return b, err
		}
		if a.Binding.Config, err = json.Marshal(a.Config); err != nil {
			return b, err
		}
		a.Binding.UpdatedAt = s.clock.Now().UTC()
		out = a
		return a.Binding, nil
	})
	if errors.Is(err, gatehouse.ErrNotFound) {
		return Attachment{}, notAttached
	}
	return out, err
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Detach removes Azure Auth from an identity; every token it issued stops
// working at once, and tokens of other methods stay valid.
func (s *Service) Detach(ctx context.Context, actor gatehouse.Actor, identityID string) (Attachment, error) {
	if err := s.target(ctx, actor, identityID, gatehouse.PermIdentityEdit, "Failed to revoke azure auth of identity with more privileged role"); err != nil {
		return Attachment{}, err
	}
	b, err := s.store.DetachAuthMethod(ctx, identityID, Method)
	if errors.Is(err, gatehouse.ErrNotFound) {
		return Attachment{}, gatehouse.Errorf(gatehouse.KindInvalid, "The identity does not have azure auth")
	}
	if err != nil {
		return Attachment{}, err
	}
	return attachmentOf(b)
}

// LoginResult is a successful login.
type LoginResult struct {
	Issued token.Issued
	Policy gatehouse.TokenPolicy // the configured policy, which the response reports
}

// Login exchanges an Entra ID token for a Gatehouse access token of the
// identity: the token must verify for the configured tenant and resource,
// carry the tenant's tid, and, when the allow-list is not empty, an allowed
// oid. orgSlug, when given, must name the identity's organization.
func (s *Service) Login(ctx context.Context, identityID, rawJWT, orgSlug string) (LoginResult, error) {
	identity, b, err := s.store.LoginTarget(ctx, identityID, Method)
	if errors.Is(err, gatehouse.ErrNotFound) {
		return LoginResult{}, gatehouse.Errorf(gatehouse.KindNotFound, "Azure auth method not found for identity, did you configure Azure Auth?")
	}
	if err != nil {
		return LoginResult{}, err
	}
	a, err := attachmentOf(b)
	if err != nil {
		return LoginResult{}, err
	}
	claims, err := s.verifier.Verify(ctx, rawJWT, a.Config.TenantID, a.Config.Resource)
	if err != nil {
		return LoginResult{}, err
	}
	if claims.TenantID != a.Config.TenantID {
		return LoginResult{}, gatehouse.Errorf(gatehouse.KindUnauthorized, "Tenant ID mismatch")
	}
	if !a.Config.allows(claims.ObjectID) {
		return LoginResult{}, gatehouse.Errorf(gatehouse.KindUnauthorized, "Service principal '%s' not allowed", claims.ObjectID)
	}
	if orgSlug != "" {
		org, err := s.store.Organization(ctx, identity.OrgID)
		if err != nil {
			return LoginResult{}, err
		}
		if org.Slug != orgSlug {
			return LoginResult{}, gatehouse.Errorf(gatehouse.KindNotFound, "Sub organization with slug %s not found", orgSlug)
		}
	}
	if err := s.store.RecordLogin(ctx, identity.ID, Method, s.clock.Now().UTC()); err != nil {
		return LoginResult{}, err
	}
	issued, err := s.tokens.Issue(identity, b)
	if err != nil {
		return LoginResult{}, err
	}
	return LoginResult{Issued: issued, Policy: b.Policy}, nil
}
