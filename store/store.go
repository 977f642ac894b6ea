// Package store keeps Gatehouse's state in SQL: an embedded SQLite file by
// default, or PostgreSQL when several instances share one database. One
// implementation serves both; the differences between the two dialects live
// in dialect.go.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
)

// Options tune the connection pools.
type Options struct {
	MaxOpenConns    int           // PostgreSQL pool size, or SQLite readers; 0 picks a default
	ConnMaxLifetime time.Duration // 0 means 30 minutes
	QueryTimeout    time.Duration // bound on every statement; 0 means 5 s
}

// Store is the database. Its methods are safe for concurrent use.
type Store struct {
	dialect dialect
	w       *pool // writes (SQLite: one connection, so writers queue in Go, not on SQLITE_BUSY)
	r       *pool // reads (the same pool on PostgreSQL)
	timeout time.Duration
	batch   *batcher    // SQLite: one-statement writes of concurrent requests share a transaction
	logins  *lastLogins // SQLite: last-login records, written together

	mu      sync.RWMutex
	rebound map[string]string
}

// Open connects to dsn ("sqlite:PATH", a bare file path, or a postgres://
// URL) and applies the embedded migrations.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	d, w, r, err := openDialect(dsn, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{dialect: d, w: newPool(w, d == dialectSQLite), timeout: opts.QueryTimeout, rebound: map[string]string{}}
	s.r = s.w
	if r != w {
		s.r = newPool(r, d == dialectSQLite)
	}
	if s.timeout == 0 {
		s.timeout = 5 * time.Second
	}
	if d == dialectSQLite {
		s.batch = newBatcher(s.w, s.timeout)
		s.logins = newLastLogins(s)
		walCtx, cancel := s.ctx(ctx)
		err := useWAL(walCtx, w)
		cancel()
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("open sqlite: %w", s.classify(err))
		}
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pools.
func (s *Store) Close() error {
	if s.logins != nil {
		s.logins.close()
	}
	if s.batch != nil {
		s.batch.close()
	}
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// Dialect names the database: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect.name }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.classify(s.r.PingContext(ctx))
}

// q rewrites a query written with ? placeholders for the dialect, once.
func (s *Store) q(query string) string {
	if !s.dialect.dollarParams {
		return query
	}
	s.mu.RLock()
	out, ok := s.rebound[query]
	s.mu.RUnlock()
	if ok {
		return out
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(c)
	}
	out = b.String()
	s.mu.Lock()
	s.rebound[query] = out
	s.mu.Unlock()
	return out
}

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// exec runs a write outside a transaction.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	res, err := s.w.ExecContext(ctx, s.q(query), args...)
	return res, s.classify(err)
}

// txn is a write transaction whose statements are bound to the context it
// was begun with. (sql.Tx's Exec and QueryRow use context.Background: on a
// database that stops answering they would wait for TCP to give up, minutes
// later, instead of the store's timeout.)
type txn struct {
	ctx     context.Context
	tx      *sql.Tx
	p       *pool
	missing *[]string // statements to prepare after the transaction, see pool.txStmt
}

func (t txn) Exec(query string, args ...any) (sql.Result, error) {
	if st := t.p.txStmt(t.ctx, t.tx, query, t.missing); st != nil {
		return st.ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, query, args...)
}

func (t txn) QueryRow(query string, args ...any) *sql.Row {
	if st := t.p.txStmt(t.ctx, t.tx, query, t.missing); st != nil {
		return st.QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, query, args...)
}

// tx runs fn in a write transaction and commits it before returning.
func (s *Store) tx(ctx context.Context, fn func(tx txn) error) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.classify(err)
	}
	var missing []string
	if err := fn(txn{ctx, tx, s.w, &missing}); err != nil {
		tx.Rollback()
		return s.classify(err)
	}
	err = tx.Commit()
	if len(missing) > 0 {
		s.w.prepareMissing(ctx, missing)
	}
	if err != nil {
		if ctx.Err() != nil {
			// The deadline rolled the transaction back (Commit then
			// says only sql.ErrTxDone).
			err = errors.Join(ctx.Err(), err)
		}
		return s.classify(err)
	}
	return nil
}

// classify turns a database error into a domain error: no rows, or a
// reference to a row that is gone, is ErrNotFound; a unique violation
// ErrAlreadyExists; an unreachable (or closed) database, or a conflict that a
// retry resolves, KindUnavailable; anything else KindInternal.
func (s *Store) classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return gatehouse.ErrNotFound
	case errors.As(err, new(*gatehouse.Error)):
		return err
	case s.dialect.isUniqueViolation(err):
		return gatehouse.ErrAlreadyExists
	case s.dialect.isForeignKeyViolation(err):
		return gatehouse.ErrNotFound
	case errors.Is(err, context.Canceled):
		return gatehouse.Wrap(gatehouse.KindUnavailable, err, "The request was cancelled")
	case errors.Is(err, context.DeadlineExceeded), s.dialect.isUnavailable(err):
		return gatehouse.Wrap(gatehouse.KindUnavailable, err, "The database is unavailable, please retry")
	default:
		return gatehouse.Wrap(gatehouse.KindInternal, err, "Something went wrong")
	}
}

func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
