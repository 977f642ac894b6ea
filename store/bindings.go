package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
)

const bindingColumns = `id, identity_id, auth_method, access_token_ttl, access_token_max_ttl, access_token_num_uses_limit,
	access_token_period, access_token_trusted_ips, config, created_at, updated_at`

const insertBindingSQL = `INSERT INTO identity_auth_methods (` + bindingColumns + `, ip_restricted)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// bindingArgs are the values of insertBindingSQL for b.
func bindingArgs(b gatehouse.AuthBinding) ([]any, error) {
	ips, err := json.Marshal(b.Policy.TrustedIPs)
	if err != nil {
		return nil, err
	}
	return []any{b.ID, b.IdentityID, string(b.Method), b.Policy.TTL, b.Policy.MaxTTL, b.Policy.NumUsesLimit, b.Policy.Period,
		string(ips), string(b.Config), millis(b.CreatedAt), millis(b.UpdatedAt), b.Policy.IPRestricted()}, nil
}

func insertBinding(tx txn, s *Store, b gatehouse.AuthBinding) error {
	args, err := bindingArgs(b)
	if err != nil {
		return err
	}
	_, err = tx.Exec(s.q(insertBindingSQL), args...)
	return err
}

func scanBinding(row rowScanner) (gatehouse.AuthBinding, error) {
	var b gatehouse.AuthBinding
	var method, ips, config string
	var created, updated int64
	err := row.Scan(&b.ID, &b.IdentityID, &method, &b.Policy.TTL, &b.Policy.MaxTTL, &b.Policy.NumUsesLimit,
		&b.Policy.Period, &ips, &config, &created, &updated)
	if err != nil {
		return b, err
	}
	b.Method, b.Config = gatehouse.AuthMethod(method), []byte(config)
	b.CreatedAt, b.UpdatedAt = fromMillis(created), fromMillis(updated)
	if err := json.Unmarshal([]byte(ips), &b.Policy.TrustedIPs); err != nil {
		return b, fmt.Errorf("trusted ips of auth method %s: %w", b.ID, err)
	}
	return b, nil
}

// AttachAuthMethod stores an auth method attached to an identity. It answers
// ErrAlreadyExists when the identity already has that method, and
// ErrNotFound when the identity does not exist.
func (s *Store) AttachAuthMethod(ctx context.Context, b gatehouse.AuthBinding) error {
	// One statement, batched with other writes on SQLite: the foreign key
	// answers for a missing identity (classify makes it ErrNotFound), the
	// unique (identity, method) for one already attached.
	args, err := bindingArgs(b)
	if err != nil {
		return err
	}
	return s.writeRow(ctx, insertBindingSQL, args)
}

// AuthMethod returns the method attached to an identity, or ErrNotFound.
func (s *Store) AuthMethod(ctx context.Context, identityID string, method gatehouse.AuthMethod) (gatehouse.AuthBinding, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	b, err := scanBinding(s.r.QueryRowContext(ctx, s.q(`SELECT `+bindingColumns+` FROM identity_auth_methods
		WHERE identity_id = ? AND auth_method = ?`), identityID, string(method)))
	return b, s.classify(err)
}

// UpdateAuthMethod calls change with the stored method of the identity and
// writes back what it returns, in one transaction; so concurrent updates
// merge their fields on the latest values. It answers ErrNotFound when the
// method is not attached.
func (s *Store) UpdateAuthMethod(ctx context.Context, identityID string, method gatehouse.AuthMethod, at time.Time,
	change func(gatehouse.AuthBinding) (gatehouse.AuthBinding, error)) (gatehouse.AuthBinding, error) {
	var out gatehouse.AuthBinding
	err := s.tx(ctx, func(tx txn) error {
		b, err := scanBinding(tx.QueryRow(s.q(`SELECT `+bindingColumns+` FROM identity_auth_methods
			WHERE identity_id = ? AND auth_method = ?`+s.dialect.lockRows), identityID, string(method)))
		if err != nil {
			return err
		}
		if out, err = change(b); err != nil {
			return err
		}
		out.UpdatedAt = at
		ips, err := json.Marshal(out.Policy.TrustedIPs)
		if err != nil {
			return err
		}
		_, err = tx.Exec(s.q(`UPDATE identity_auth_methods SET access_token_ttl = ?, access_token_max_ttl = ?,
			access_token_num_uses_limit = ?, access_token_period = ?, access_token_trusted_ips = ?, ip_restricted = ?,
			config = ?, updated_at = ? WHERE id = ?`),
			out.Policy.TTL, out.Policy.MaxTTL, out.Policy.NumUsesLimit, out.Policy.Period, string(ips),
			out.Policy.IPRestricted(), string(out.Config), millis(at), b.ID)
		return err
	})
	return out, err
}

// DetachAuthMethod removes a method from an identity and returns what was
// stored. Tokens the method issued stop working: they name the removed
// binding's id. It answers ErrNotFound when the method is not attached.
func (s *Store) DetachAuthMethod(ctx context.Context, identityID string, method gatehouse.AuthMethod) (gatehouse.AuthBinding, error) {
	var b gatehouse.AuthBinding
	err := s.tx(ctx, func(tx txn) error {
		var err error
		b, err = scanBinding(tx.QueryRow(s.q(`SELECT `+bindingColumns+` FROM identity_auth_methods
			WHERE identity_id = ? AND auth_method = ?`+s.dialect.lockRows), identityID, string(method)))
		if err != nil {
			return err
		}
		res, err := tx.Exec(s.q(`DELETE FROM identity_auth_methods WHERE id = ?`), b.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return gatehouse.ErrNotFound // detached meanwhile by another request
		}
		return nil
	})
	return b, err
}

// LoginTarget returns, in one query, the identity (without metadata and
// auth method list) and its binding of method: what a login needs. It
// answers ErrNotFound when the identity does not have the method.
func (s *Store) LoginTarget(ctx context.Context, identityID string, method gatehouse.AuthMethod) (gatehouse.Identity, gatehouse.AuthBinding, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var i gatehouse.Identity
	var role, ips, config, methodName string
	var created, updated int64
	b := gatehouse.AuthBinding{}
	err := s.r.QueryRowContext(ctx, s.q(`SELECT i.id, i.org_id, i.name, i.role, i.is_instance_admin,
			m.id, m.auth_method, m.access_token_ttl, m.access_token_max_ttl, m.access_token_num_uses_limit,
			m.access_token_period, m.access_token_trusted_ips, m.config, m.created_at, m.updated_at
		FROM identity_auth_methods m JOIN identities i ON i.id = m.identity_id
		WHERE m.identity_id = ? AND m.auth_method = ?`), identityID, string(method)).Scan(
		&i.ID, &i.OrgID, &i.Name, &role, &i.IsInstanceAdmin,
		&b.ID, &methodName, &b.Policy.TTL, &b.Policy.MaxTTL, &b.Policy.NumUsesLimit,
		&b.Policy.Period, &ips, &config, &created, &updated)
	if err != nil {
		return i, b, s.classify(err)
	}
	i.Role, b.IdentityID, b.Method, b.Config = gatehouse.Role(role), i.ID, gatehouse.AuthMethod(methodName), []byte(config)
	b.CreatedAt, b.UpdatedAt = fromMillis(created), fromMillis(updated)
	if err := json.Unmarshal([]byte(ips), &b.Policy.TrustedIPs); err != nil {
		return i, b, gatehouse.Wrap(gatehouse.KindInternal, err, "Something went wrong")
	}
	return i, b, nil
}
