// Package token issues, checks, renews and revokes Gatehouse access tokens.
// It knows nothing of auth methods: a method hands it an identity and the
// binding (with its token policy) that vouched for it, and every rule of the
// token's life is enforced here, the same for every method.
package token

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"

	gatehouse "github.com/gatehouse/gatehouse"
)

// Store is what the token service needs from the database.
type Store interface {
	TokenState(ctx context.Context, identityID string, method gatehouse.AuthMethod, jti string) (gatehouse.TokenState, error)
	UseToken(ctx context.Context, jti string, limit int64, expiresAt time.Time) (bool, error)
	TokenUses(ctx context.Context, jti string) (int64, error)
	ExtendTokenUses(ctx context.Context, jti string, expiresAt time.Time) error
	RevokeToken(ctx context.Context, jti, identityID string, expiresAt time.Time) error
}

// MinSecretSize is the shortest signing secret accepted, in bytes.
const MinSecretSize = 32

// Config configures a Service.
type Config struct {
	Secret  []byte // HMAC key shared by every instance; at least MinSecretSize bytes
	Store   Store
	Clock   gatehouse.Clock // nil means the system clock
	Ceiling time.Duration   // the longest any one token lives; 0 means gatehouse.DefaultTokenCeiling
}

// Service issues and checks access tokens.
type Service struct {
	secret  []byte
	store   Store
	clock   gatehouse.Clock
	ceiling time.Duration
}

// NewService returns a Service for cfg.
func NewService(cfg Config) (*Service, error) {
	if len(cfg.Secret) < MinSecretSize {
		return nil, fmt.Errorf("token signing secret must be at least %d bytes", MinSecretSize)
	}
	s := &Service{secret: append([]byte(nil), cfg.Secret...), store: cfg.Store, clock: cfg.Clock, ceiling: cfg.Ceiling}
	if s.clock == nil {
		s.clock = gatehouse.SystemClock{}
	}
	if s.ceiling <= 0 {
		s.ceiling = gatehouse.DefaultTokenCeiling
	}
	return s, nil
}

// NewSecret returns a fresh random signing secret.
func NewSecret() ([]byte, error) {
	b := make([]byte, 48)
	_, err := rand.Read(b)
	return b, err
}

// Ceiling is the longest any one token lives.
func (s *Service) Ceiling() time.Duration { return s.ceiling }

// Issued is a signed token and what a login or renew response reports.
type Issued struct {
	Token     string
	Claims    *gatehouse.AccessTokenClaims
	ExpiresIn int64 // seconds the signed token lives
}

// Issue signs a new token for identity, vouched for by binding, under the
// binding's token policy. It writes nothing to the database.
func (s *Service) Issue(identity gatehouse.Identity, binding gatehouse.AuthBinding) (Issued, error) {
	now := s.clock.Now()
	p := binding.Policy
	ttl := p.IssuedTTL(now, now, s.ceiling)
	id := uuid.NewString()
	c := &gatehouse.AccessTokenClaims{
		IdentityID:            identity.ID,
		IdentityName:          identity.Name,
		AuthMethod:            binding.Method,
		AuthMethodID:          binding.ID,
		OrgID:                 identity.OrgID,
		RootOrgID:             identity.OrgID,
		ParentOrgID:           identity.OrgID,
		IdentityAccessTokenID: id,
		IPRestrictionEnabled:  p.IPRestricted(),
		AccessTokenTTL:        p.TTL,
		AccessTokenMaxTTL:     p.MaxTTL,
		AccessTokenPeriod:     p.Period,
		CreationEpoch:         now.Unix(),
		AuthTokenType:         gatehouse.AuthTokenTypeIdentity,
		IdentityAuth:          map[string]any{},
		NumUsesLimit:          p.NumUsesLimit,
		IssuedAt:              now.Unix(),
		ExpiresAt:             now.Add(ttl).Unix(),
		ID:                    id,
	}
	raw, err := sign(s.secret, c)
	if err != nil {
		return Issued{}, gatehouse.Wrap(gatehouse.KindInternal, err, "Something went wrong")
	}
	return Issued{Token: raw, Claims: c, ExpiresIn: int64(ttl / time.Second)}, nil
}

func unauthorized(msg string) error { return gatehouse.Errorf(gatehouse.KindUnauthorized, "%s", msg) }

// parse verifies signature, algorithm, type, core claims and expiry.
// wrongType is the error for a token that is not an identity token.
func (s *Service) parse(raw string, now time.Time, wrongType error) (*gatehouse.AccessTokenClaims, error) {
	c, err := verify(s.secret, raw)
	if err != nil {
		return nil, err
	}
	if c.AuthTokenType != gatehouse.AuthTokenTypeIdentity {
		return nil, wrongType
	}
	if c.IdentityID == "" || c.ID == "" || c.IdentityAccessTokenID != c.ID || c.IssuedAt == 0 || c.ExpiresAt == 0 || c.CreationEpoch == 0 {
		return nil, unauthorized("Invalid identity access token claims, please re-authenticate")
	}
	if now.Unix() >= c.ExpiresAt {
		return nil, errExpired
	}
	return c, nil
}

// errTokenMissing answers a request whose bearer token is not an identity
// token. It is made once: Authenticate is the hot path.
var errTokenMissing = gatehouse.Errorf(gatehouse.KindUnauthorized, "Token missing")

// Authenticate checks a bearer token for one request from clientIP, in this
// order: signature and algorithm, expiry, revocation (of the token, of its
// identity, of the method that issued it), the use limit (this request
// counts as a use), the method's current trusted IPs, and that the identity
// still belongs to the token's organization. A token without a use limit
// costs one indexed read and no write.
//
// It returns the token's claims and what the database says of its identity
// now (role, organization), from which the caller builds the actor.
func (s *Service) Authenticate(ctx context.Context, raw string, clientIP netip.Addr) (*gatehouse.AccessTokenClaims, gatehouse.TokenState, error) {
	var st gatehouse.TokenState
	c, err := s.parse(raw, s.clock.Now(), errTokenMissing)
	if err != nil {
		return nil, st, err
	}
	if st, err = s.store.TokenState(ctx, c.IdentityID, c.AuthMethod, c.ID); err != nil {
		return nil, st, err
	}
	if err := checkRevoked(st, c, "Failed to authorize: "); err != nil {
		return nil, st, err
	}
	if c.NumUsesLimit > 0 {
		ok, err := s.store.UseToken(ctx, c.ID, c.NumUsesLimit, s.usesExpiry(c))
		if err != nil {
			return nil, st, err
		}
		if !ok {
			return nil, st, unauthorized("Failed to authorize: token usage limit reached")
		}
	}
	if err := checkIP(st, clientIP); err != nil {
		return nil, st, err
	}
	if st.OrgID != c.OrgID {
		return nil, st, unauthorized("Failed to authorize: identity is not a member of the organization")
	}
	return c, st, nil
}

func checkRevoked(st gatehouse.TokenState, c *gatehouse.AccessTokenClaims, prefix string) error {
	switch {
	case !st.IdentityFound:
		return unauthorized(prefix + "identity tokens have been revoked")
	case st.Revoked:
		return unauthorized(prefix + "token has been revoked")
	case st.BindingID == "" || st.BindingID != c.AuthMethodID:
		return unauthorized(prefix + "auth method has been revoked")
	}
	return nil
}

func checkIP(st gatehouse.TokenState, clientIP netip.Addr) error {
	if st.IPRestricted && !(gatehouse.TokenPolicy{TrustedIPs: st.TrustedIPs}).AllowsIP(clientIP) {
		return gatehouse.Errorf(gatehouse.KindForbidden, "You are not allowed to access this resource from the current IP address")
	}
	return nil
}

// lastExpiry is the latest time any token carrying c's jti can expire: every
// token alive now expires within one ceiling, renewals stop at the max TTL,
// and a revoked or exhausted token is never renewed.
func (s *Service) lastExpiry(c *gatehouse.AccessTokenClaims) time.Time {
	last := s.clock.Now().Add(s.ceiling)
	if c.AccessTokenMaxTTL > 0 && c.AccessTokenPeriod == 0 {
		if end := time.Unix(c.CreationEpoch+c.AccessTokenMaxTTL, 0); end.Before(last) {
			last = end
		}
	}
	if exp := time.Unix(c.ExpiresAt, 0); exp.After(last) {
		last = exp
	}
	return last.Add(5 * time.Minute)
}

// usesExpiry is how long the use counter of c's jti must be kept: until no
// copy of the token can be used, as for a revocation marker. The copy that
// makes a use is not always the one that lives longest (an older copy may
// be used after a renewal), and a counter purged too early would let the
// token's uses start again from zero. Renewals extend it further.
func (s *Service) usesExpiry(c *gatehouse.AccessTokenClaims) time.Time {
	return s.lastExpiry(c)
}

// policyOf is the token policy a token was issued under, as its claims say.
func policyOf(c *gatehouse.AccessTokenClaims) gatehouse.TokenPolicy {
	return gatehouse.TokenPolicy{TTL: c.AccessTokenTTL, MaxTTL: c.AccessTokenMaxTTL, Period: c.AccessTokenPeriod, NumUsesLimit: c.NumUsesLimit}
}

// Renew re-signs a live token with the same id and creation time and a new
// lifetime: its TTL (or period), capped by what remains of its max TTL and by
// the ceiling. Revoked, exhausted and spent tokens are refused, and so are
// requests from outside the method's trusted IPs.
func (s *Service) Renew(ctx context.Context, raw string, clientIP netip.Addr) (Issued, error) {
	now := s.clock.Now()
	c, err := s.parse(raw, now, gatehouse.Errorf(gatehouse.KindInvalid, "Token is not an identity access token"))
	if err != nil {
		return Issued{}, err
	}
	st, err := s.store.TokenState(ctx, c.IdentityID, c.AuthMethod, c.ID)
	if err != nil {
		return Issued{}, err
	}
	if err := checkRevoked(st, c, "Cannot renew: "); err != nil {
		return Issued{}, err
	}
	if st.OrgID != c.OrgID {
		return Issued{}, unauthorized("Cannot renew: identity is not a member of the organization")
	}
	if err := checkIP(st, clientIP); err != nil {
		return Issued{}, err
	}
	if c.NumUsesLimit > 0 {
		used, err := s.store.TokenUses(ctx, c.ID)
		if err != nil {
			return Issued{}, err
		}
		if used >= c.NumUsesLimit {
			return Issued{}, unauthorized("Cannot renew exhausted access token")
		}
	}
	ttl := policyOf(c).IssuedTTL(time.Unix(c.CreationEpoch, 0), now, s.ceiling)
	if ttl <= 0 {
		return Issued{}, unauthorized("Cannot renew: identity access token has reached its max TTL")
	}
	renewed := *c
	renewed.IssuedAt = now.Unix()
	renewed.ExpiresAt = now.Add(ttl).Unix()
	if c.NumUsesLimit > 0 {
		if err := s.store.ExtendTokenUses(ctx, c.ID, s.usesExpiry(&renewed)); err != nil {
			return Issued{}, err
		}
	}
	signed, err := sign(s.secret, &renewed)
	if err != nil {
		return Issued{}, gatehouse.Wrap(gatehouse.KindInternal, err, "Something went wrong")
	}
	return Issued{Token: signed, Claims: &renewed, ExpiresIn: int64(ttl / time.Second)}, nil
}

// Revoke makes a live token, and every renewal of it, unusable on every
// instance from the moment Revoke returns.
func (s *Service) Revoke(ctx context.Context, raw string) error {
	c, err := s.parse(raw, s.clock.Now(), gatehouse.Errorf(gatehouse.KindInvalid, "Token is not an identity access token"))
	if err != nil {
		return err
	}
	return s.store.RevokeToken(ctx, c.ID, c.IdentityID, s.lastExpiry(c))
}
