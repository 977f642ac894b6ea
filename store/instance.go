package store

import (
	"context"
	"errors"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
)

func nowUTC() time.Time { return time.Now().UTC() }

// Bootstrap creates the admin user, the organization and the instance admin
// identity in one transaction. Of concurrent calls, on one instance or many
// sharing a database, exactly one succeeds; the others get
// gatehouse.ErrAlreadyBootstrapped.
func (s *Store) Bootstrap(ctx context.Context, b gatehouse.Bootstrap) error {
	err := s.tx(ctx, func(tx txn) error {
		if _, err := tx.Exec(s.q(`INSERT INTO instance (id, bootstrapped_at) VALUES (1, ?)`), millis(b.At)); err != nil {
			if s.dialect.isUniqueViolation(err) {
				return gatehouse.ErrAlreadyBootstrapped
			}
			return err
		}
		u := b.User
		if _, err := tx.Exec(s.q(`INSERT INTO users (id, email, username, first_name, last_name, password_hash, super_admin, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), u.ID, u.Email, u.Username, u.FirstName, u.LastName, u.PasswordHash, u.SuperAdmin, millis(b.At)); err != nil {
			return err
		}
		o := b.Organization
		if _, err := tx.Exec(s.q(`INSERT INTO organizations (id, name, slug, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`),
			o.ID, o.Name, o.Slug, millis(b.At), millis(b.At)); err != nil {
			return err
		}
		if err := insertIdentity(tx, s, b.Identity); err != nil {
			return err
		}
		return insertBinding(tx, s, b.Binding)
	})
	if errors.Is(err, gatehouse.ErrAlreadyExists) {
		return gatehouse.ErrAlreadyBootstrapped
	}
	return err
}

// Bootstrapped reports whether the instance has been set up.
func (s *Store) Bootstrapped(ctx context.Context) (bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM instance`).Scan(&n)
	return n > 0, s.classify(err)
}

// Secret returns the secret called name, storing generate()'s value first if
// there is none. Instances starting together all get the one value stored.
func (s *Store) Secret(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	value, err := s.readSecret(ctx, name)
	if err == nil || !errors.Is(err, gatehouse.ErrNotFound) {
		return value, err
	}
	fresh, err := generate()
	if err != nil {
		return nil, err
	}
	if _, err := s.exec(ctx, `INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, fresh, millis(nowUTC())); err != nil {
		return nil, err
	}
	return s.readSecret(ctx, name)
}

func (s *Store) readSecret(ctx context.Context, name string) ([]byte, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var value []byte
	err := s.w.QueryRowContext(ctx, s.q(`SELECT value FROM secrets WHERE name = ?`), name).Scan(&value)
	return value, s.classify(err)
}

// Organization returns the organization with id.
func (s *Store) Organization(ctx context.Context, id string) (gatehouse.Organization, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var o gatehouse.Organization
	var created, updated int64
	err := s.r.QueryRowContext(ctx, s.q(`SELECT id, name, slug, created_at, updated_at FROM organizations WHERE id = ?`), id).
		Scan(&o.ID, &o.Name, &o.Slug, &created, &updated)
	o.CreatedAt, o.UpdatedAt = fromMillis(created), fromMillis(updated)
	return o, s.classify(err)
}
