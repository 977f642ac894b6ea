package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
)

// TokenState reads, in one indexed query, what checking a token of
// identityID issued by method needs: see gatehouse.TokenState.
func (s *Store) TokenState(ctx context.Context, identityID string, method gatehouse.AuthMethod, jti string) (gatehouse.TokenState, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var st gatehouse.TokenState
	var bindingID, ips *string
	var restricted *bool
	var role string
	err := s.r.QueryRowContext(ctx, s.q(`SELECT i.org_id, i.role, i.is_instance_admin, o.name, o.slug,
			m.id, m.ip_restricted, CASE WHEN m.ip_restricted THEN m.access_token_trusted_ips END,
			EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = ?)
		FROM identities i JOIN organizations o ON o.id = i.org_id
		LEFT JOIN identity_auth_methods m ON m.identity_id = i.id AND m.auth_method = ?
		WHERE i.id = ?`), jti, string(method), identityID).Scan(&st.OrgID, &role, &st.IsInstanceAdmin,
		&st.Organization.Name, &st.Organization.Slug, &bindingID, &restricted, &ips, &st.Revoked)
	st.Role, st.Organization.ID = gatehouse.Role(role), st.OrgID
	if err = s.classify(err); errors.Is(err, gatehouse.ErrNotFound) {
		return gatehouse.TokenState{}, nil
	}
	if err != nil {
		return st, err
	}
	st.IdentityFound = true
	if bindingID != nil {
		st.BindingID = *bindingID
	}
	if restricted != nil && *restricted && ips != nil {
		st.IPRestricted = true
		if err := json.Unmarshal([]byte(*ips), &st.TrustedIPs); err != nil {
			return st, gatehouse.Wrap(gatehouse.KindInternal, err, "Something went wrong")
		}
	}
	return st, nil
}

// UseToken counts one use of a token that has a use limit, and reports
// whether the use is allowed: exactly limit uses are, however many requests
// race, on one instance or many sharing the database.
func (s *Store) UseToken(ctx context.Context, jti string, limit int64, expiresAt time.Time) (bool, error) {
	var uses int64
	err := s.writeRow(ctx, `INSERT INTO token_uses (jti, uses, expires_at) VALUES (?, 1, ?)
		ON CONFLICT (jti) DO UPDATE SET uses = token_uses.uses + 1 WHERE token_uses.uses < ?
		RETURNING uses`, []any{jti, millis(expiresAt), limit}, &uses)
	if errors.Is(err, gatehouse.ErrNotFound) {
		return false, nil
	}
	return err == nil && uses <= limit, err
}

// TokenUses reports how many times a token with a use limit has been used.
func (s *Store) TokenUses(ctx context.Context, jti string) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var uses int64
	err := s.w.QueryRowContext(ctx, s.q(`SELECT uses FROM token_uses WHERE jti = ?`), jti).Scan(&uses)
	if err = s.classify(err); errors.Is(err, gatehouse.ErrNotFound) {
		return 0, nil
	}
	return uses, err
}

// ExtendTokenUses keeps a token's use counter at least until expiresAt (a
// renewed token lives longer than the counter was first meant to).
func (s *Store) ExtendTokenUses(ctx context.Context, jti string, expiresAt time.Time) error {
	_, err := s.exec(ctx, `UPDATE token_uses SET expires_at = ? WHERE jti = ? AND expires_at < ?`,
		millis(expiresAt), jti, millis(expiresAt))
	return err
}

// RevokeToken marks a token revoked until expiresAt, after which it could
// not be used anyway. Revoking twice is not an error.
func (s *Store) RevokeToken(ctx context.Context, jti, identityID string, expiresAt time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO revoked_tokens (jti, identity_id, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at`, jti, identityID, millis(expiresAt))
	return err
}

// PurgeExpired deletes revocation markers and use counters of tokens that
// expired before now.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) error {
	if _, err := s.exec(ctx, `DELETE FROM revoked_tokens WHERE expires_at < ?`, millis(now)); err != nil {
		return err
	}
	_, err := s.exec(ctx, `DELETE FROM token_uses WHERE expires_at < ?`, millis(now))
	return err
}
