package store

import (
	"context"
	"database/sql"
	"sort"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
)

const identityColumns = `id, membership_id, org_id, name, role, has_delete_protection, is_instance_admin,
	last_login_auth_method, last_login_time, created_at, updated_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanIdentity(row rowScanner) (gatehouse.Identity, error) {
	var i gatehouse.Identity
	var role, lastMethod string
	var lastLogin sql.NullInt64
	var created, updated int64
	err := row.Scan(&i.ID, &i.MembershipID, &i.OrgID, &i.Name, &role, &i.HasDeleteProtection, &i.IsInstanceAdmin,
		&lastMethod, &lastLogin, &created, &updated)
	i.Role, i.LastLoginAuthMethod = gatehouse.Role(role), gatehouse.AuthMethod(lastMethod)
	if lastLogin.Valid {
		t := fromMillis(lastLogin.Int64)
		i.LastLoginTime = &t
	}
	i.CreatedAt, i.UpdatedAt = fromMillis(created), fromMillis(updated)
	i.Metadata = []gatehouse.Metadata{}
	i.AuthMethods = []gatehouse.AuthMethod{}
	return i, err
}

func insertIdentity(tx txn, s *Store, i gatehouse.Identity) error {
	if _, err := tx.Exec(s.q(`INSERT INTO identities (`+identityColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, '', NULL, ?, ?)`),
		i.ID, i.MembershipID, i.OrgID, i.Name, string(i.Role), i.HasDeleteProtection, i.IsInstanceAdmin,
		millis(i.CreatedAt), millis(i.UpdatedAt)); err != nil {
		return err
	}
	return insertMetadata(tx, s, i.ID, i.Metadata)
}

func insertMetadata(tx txn, s *Store, identityID string, md []gatehouse.Metadata) error {
	for pos, m := range md {
		if _, err := tx.Exec(s.q(`INSERT INTO identity_metadata (id, identity_id, position, key, value) VALUES (?, ?, ?, ?, ?)`),
			m.ID, identityID, pos, m.Key, m.Value); err != nil {
			return err
		}
	}
	return nil
}

// CreateIdentity stores a new identity with its metadata.
func (s *Store) CreateIdentity(ctx context.Context, i gatehouse.Identity) error {
	return s.tx(ctx, func(tx txn) error { return insertIdentity(tx, s, i) })
}

// Identity returns the identity with id, with its metadata and the auth
// methods attached to it, or ErrNotFound.
func (s *Store) Identity(ctx context.Context, id string) (gatehouse.Identity, error) {
	if err := s.flushLogins(ctx); err != nil {
		return gatehouse.Identity{}, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	i, err := scanIdentity(s.r.QueryRowContext(ctx, s.q(`SELECT `+identityColumns+` FROM identities WHERE id = ?`), id))
	if err != nil {
		return i, s.classify(err)
	}
	all := map[string]*gatehouse.Identity{i.ID: &i}
	if err := s.fillDetails(ctx, `i.id = ?`, id, all); err != nil {
		return i, err
	}
	return i, nil
}

// IdentityRef returns the identity with id without its metadata and auth
// methods (one indexed read: what permission checks need), or ErrNotFound.
func (s *Store) IdentityRef(ctx context.Context, id string) (gatehouse.Identity, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	i, err := scanIdentity(s.r.QueryRowContext(ctx, s.q(`SELECT `+identityColumns+` FROM identities WHERE id = ?`), id))
	return i, s.classify(err)
}

// Identities returns the identities of an organization, oldest first.
func (s *Store) Identities(ctx context.Context, orgID string) ([]gatehouse.Identity, error) {
	if err := s.flushLogins(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+identityColumns+` FROM identities WHERE org_id = ? ORDER BY created_at, id`), orgID)
	if err != nil {
		return nil, s.classify(err)
	}
	defer rows.Close()
	var list []gatehouse.Identity
	for rows.Next() {
		i, err := scanIdentity(rows)
		if err != nil {
			return nil, s.classify(err)
		}
		list = append(list, i)
	}
	if err := rows.Err(); err != nil {
		return nil, s.classify(err)
	}
	all := map[string]*gatehouse.Identity{}
	for k := range list {
		all[list[k].ID] = &list[k]
	}
	if err := s.fillDetails(ctx, `i.org_id = ?`, orgID, all); err != nil {
		return nil, err
	}
	return list, nil
}

// fillDetails loads the metadata and auth methods of the identities matched
// by where (over identities i) into all.
func (s *Store) fillDetails(ctx context.Context, where, arg string, all map[string]*gatehouse.Identity) error {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT m.identity_id, m.id, m.key, m.value FROM identity_metadata m
		JOIN identities i ON i.id = m.identity_id WHERE `+where+` ORDER BY m.identity_id, m.position`), arg)
	if err != nil {
		return s.classify(err)
	}
	for rows.Next() {
		var identityID string
		var m gatehouse.Metadata
		if err := rows.Scan(&identityID, &m.ID, &m.Key, &m.Value); err != nil {
			rows.Close()
			return s.classify(err)
		}
		if i := all[identityID]; i != nil {
			i.Metadata = append(i.Metadata, m)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s.classify(err)
	}
	rows, err = s.r.QueryContext(ctx, s.q(`SELECT m.identity_id, m.auth_method FROM identity_auth_methods m
		JOIN identities i ON i.id = m.identity_id WHERE `+where), arg)
	if err != nil {
		return s.classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		var identityID, method string
		if err := rows.Scan(&identityID, &method); err != nil {
			return s.classify(err)
		}
		if i := all[identityID]; i != nil {
			i.AuthMethods = append(i.AuthMethods, gatehouse.AuthMethod(method))
		}
	}
	for _, i := range all {
		sort.Slice(i.AuthMethods, func(a, b int) bool { return i.AuthMethods[a] < i.AuthMethods[b] })
	}
	return s.classify(rows.Err())
}

// UpdateIdentity applies u to the identity with id.
func (s *Store) UpdateIdentity(ctx context.Context, id string, u gatehouse.IdentityUpdate) error {
	return s.tx(ctx, func(tx txn) error {
		res, err := tx.Exec(s.q(`UPDATE identities SET
			name = COALESCE(?, name), role = COALESCE(?, role),
			has_delete_protection = COALESCE(?, has_delete_protection), updated_at = ? WHERE id = ?`),
			u.Name, (*string)(u.Role), u.HasDeleteProtection, millis(u.At), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return gatehouse.ErrNotFound
		}
		if u.Metadata == nil {
			return nil
		}
		if _, err := tx.Exec(s.q(`DELETE FROM identity_metadata WHERE identity_id = ?`), id); err != nil {
			return err
		}
		return insertMetadata(tx, s, id, *u.Metadata)
	})
}

// DeleteIdentity deletes the identity with id and, by cascade, its metadata
// and auth methods. Its tokens stop working because their identity is gone.
func (s *Store) DeleteIdentity(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM identities WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return gatehouse.ErrNotFound
	}
	return nil
}

// RecordLogin notes the method and time of an identity's last login. On
// SQLite the note is written within loginFlushInterval, and before any read
// of identities (see lastLogins).
func (s *Store) RecordLogin(ctx context.Context, identityID string, method gatehouse.AuthMethod, at time.Time) error {
	if s.logins != nil {
		s.logins.add(identityID, method, at)
		return nil
	}
	return s.writeRow(ctx, recordLoginSQL, []any{string(method), millis(at), identityID, millis(at)})
}

// flushLogins writes pending last-login records, so that a read of
// identities sees every login that answered before it.
func (s *Store) flushLogins(ctx context.Context) error {
	if s.logins == nil {
		return nil
	}
	return s.logins.flush(ctx)
}
