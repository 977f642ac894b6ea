package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations
var migrations embed.FS

// migrationLockKey is the PostgreSQL advisory lock that serialises
// migrations of instances starting at the same moment.
const migrationLockKey = 7_366_274_617_001

// migrate applies, in order and each in its own transaction, the embedded
// migrations not yet recorded in schema_migrations. On PostgreSQL it holds an
// advisory lock meanwhile, so concurrent starts apply each migration once.
func (s *Store) migrate(ctx context.Context) error {
	// Connecting is bounded by the store's timeout, so an instance starting
	// while the database is unreachable fails instead of waiting for TCP to
	// give up; waiting for another instance's migrations is not.
	connCtx, cancel := s.ctx(ctx)
	conn, err := s.w.Conn(connCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("migrate: %w", s.classify(err))
	}
	defer conn.Close()
	if s.dialect == dialectPostgres {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
			return fmt.Errorf("migrate: lock: %w", s.classify(err))
		}
		defer conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", migrationLockKey)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", s.classify(err))
	}
	dir := "migrations/" + s.dialect.name
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil {
			return fmt.Errorf("migrate: bad migration name %q", e.Name())
		}
		body, err := fs.ReadFile(migrations, dir+"/"+e.Name())
		if err != nil {
			return err
		}
		if err := applyMigration(ctx, conn, s, version, string(body)); err != nil {
			return fmt.Errorf("migrate %s: %w", e.Name(), s.classify(err))
		}
	}
	return nil
}

// applyMigration applies one migration unless schema_migrations, read in
// the same transaction, says it is applied. (On SQLite that transaction is
// BEGIN IMMEDIATE, so two processes opening one new file do not both apply
// it; on PostgreSQL the advisory lock already ensures this.)
func applyMigration(ctx context.Context, conn *sql.Conn, s *Store, version int64, body string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var applied int
	if err := tx.QueryRowContext(ctx, s.q("SELECT COUNT(*) FROM schema_migrations WHERE version = ?"), version).Scan(&applied); err != nil {
		return err
	}
	if applied > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"), version, millis(nowUTC())); err != nil {
		return err
	}
	return tx.Commit()
}
