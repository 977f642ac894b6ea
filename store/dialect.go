package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is everything that differs between SQLite and PostgreSQL.
type dialect struct {
	name         string
	dollarParams bool // $1, $2 instead of ?
	// lockRows ends a SELECT, in a transaction, of rows the transaction
	// then changes, so that a concurrent change waits and reads the result
	// instead of overwriting it. SQLite needs none: its write transactions
	// (BEGIN IMMEDIATE) already run one at a time.
	lockRows string
}

var (
	dialectSQLite   = dialect{name: "sqlite"}
	dialectPostgres = dialect{name: "postgres", dollarParams: true, lockRows: " FOR UPDATE"}
)

// openDialect opens the pools for dsn.
func openDialect(dsn string, opts Options) (dialect, *sql.DB, *sql.DB, error) {
	life := opts.ConnMaxLifetime
	if life == 0 {
		life = 30 * time.Minute
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return dialect{}, nil, nil, fmt.Errorf("open postgres: %w", err)
		}
		n := opts.MaxOpenConns
		if n == 0 {
			n = 4 * runtime.GOMAXPROCS(0)
		}
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		db.SetConnMaxLifetime(life)
		return dialectPostgres, db, db, nil
	}
	path := strings.TrimPrefix(dsn, "sqlite:")
	if path == "" || strings.Contains(path, "?") {
		return dialect{}, nil, nil, fmt.Errorf("--db: want sqlite:PATH or postgres://..., got %q", dsn)
	}
	params := url.Values{}
	// WAL is set once per database file by useWAL, not per connection:
	// switching needs a lock that SQLite does not wait for.
	for _, p := range []string{"busy_timeout(5000)", "synchronous(NORMAL)", "foreign_keys(1)"} {
		params.Add("_pragma", p)
	}
	params.Set("_txlock", "immediate")
	src := "file:" + path + "?" + params.Encode()
	w, err := sql.Open("sqlite", src)
	if err != nil {
		return dialect{}, nil, nil, fmt.Errorf("open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1) // SQLite has one writer; queue writers here rather than on SQLITE_BUSY
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	r, err := sql.Open("sqlite", src)
	if err != nil {
		w.Close()
		return dialect{}, nil, nil, fmt.Errorf("open sqlite: %w", err)
	}
	n := opts.MaxOpenConns
	if n == 0 {
		n = 2 * runtime.GOMAXPROCS(0)
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	return dialectSQLite, w, r, nil
}

func (d dialect) isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		return sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

func (d dialect) isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23503"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		return sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return false
}

// isUnavailable reports errors that mean the database cannot be reached now,
// as opposed to a bad statement: a retry later may succeed.
func (d dialect) isUnavailable(err error) bool {
	var netErr net.Error
	var connErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, sql.ErrConnDone), pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return true
	case errors.As(err, &pgErr):
		// 08: connection exception; 53: insufficient resources; 57P: operator intervention (shutdown);
		// 57014: statement cancelled (statement_timeout); 55P03: lock_timeout; 40001, 40P01: serialization
		// failure and deadlock, which a retry resolves.
		switch pgErr.Code {
		case "57014", "55P03", "40001", "40P01":
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "53") || strings.HasPrefix(pgErr.Code, "57P")
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		c := sqErr.Code() & 0xff
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	}
	// "sql: database is closed" has no exported sentinel: a request still
	// running while the server shuts down.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "connection refused") ||
		strings.Contains(msg, "sql: database is closed")
}

// useWAL switches a SQLite database to write-ahead logging, which the file
// then keeps. Another process opening the same new file may hold the lock
// the switch needs for a moment, and SQLite answers SQLITE_BUSY at once
// rather than waiting: retry until ctx is done.
func useWAL(ctx context.Context, db *sql.DB) error {
	for {
		var mode string
		err := db.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode)
		if err == nil && strings.EqualFold(mode, "wal") {
			return nil
		}
		if err == nil {
			return fmt.Errorf("sqlite: journal mode is %q, want wal", mode)
		}
		if !dialectSQLite.isUnavailable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}
