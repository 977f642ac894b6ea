package store

import (
	"context"
	"database/sql"
	"sync"
)

// pool is a connection pool that, on SQLite, runs statements as prepared
// statements kept for the life of the pool: database/sql prepares each once
// per connection and reuses it. Without this, every call with query text
// makes SQLite parse and plan the statement again, which costs more than
// running the indexed lookups of the hot paths (a quarter of the server's
// CPU on an authenticated request). On PostgreSQL the pool is plain: pgx
// already caches prepared statements per connection.
//
// The set of statements is the fixed set of queries in this package, so the
// cache is bounded.
type pool struct {
	*sql.DB
	prepared bool
	stmts    sync.Map // query text → *sql.Stmt
}

func newPool(db *sql.DB, prepared bool) *pool { return &pool{DB: db, prepared: prepared} }

// cached returns the statement of query when it has been prepared.
func (p *pool) cached(query string) *sql.Stmt {
	if !p.prepared {
		return nil
	}
	if v, ok := p.stmts.Load(query); ok {
		return v.(*sql.Stmt)
	}
	return nil
}

// stmt returns the prepared statement of query, preparing it first if
// needed, or nil when the pool does not prepare or preparing failed (the
// caller then runs the query text, which reports the error as before). It
// must not be called while the caller holds the last free connection (in a
// transaction on the one-connection writer pool): preparing takes one.
func (p *pool) stmt(ctx context.Context, query string) *sql.Stmt {
	if !p.prepared {
		return nil
	}
	if st := p.cached(query); st != nil {
		return st
	}
	st, err := p.DB.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if v, loaded := p.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return v.(*sql.Stmt)
	}
	return st
}

// QueryRowContext is sql.DB's, on the prepared statement when there is one.
func (p *pool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := p.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.DB.QueryRowContext(ctx, query, args...)
}

// QueryContext is sql.DB's, on the prepared statement when there is one.
func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := p.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.DB.QueryContext(ctx, query, args...)
}

// ExecContext is sql.DB's, on the prepared statement when there is one.
func (p *pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := p.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return p.DB.ExecContext(ctx, query, args...)
}

// txStmt returns query's statement bound to tx, when it has been prepared;
// otherwise it notes the query in *missing, to be prepared once the
// transaction has released its connection (see prepareMissing), and
// returns nil.
func (p *pool) txStmt(ctx context.Context, tx *sql.Tx, query string, missing *[]string) *sql.Stmt {
	if !p.prepared {
		return nil
	}
	if st := p.cached(query); st != nil {
		return tx.StmtContext(ctx, st)
	}
	*missing = append(*missing, query)
	return nil
}

// prepareMissing prepares the queries that a finished transaction ran
// unprepared, for the next ones.
func (p *pool) prepareMissing(ctx context.Context, missing []string) {
	for _, q := range missing {
		p.stmt(ctx, q)
	}
}
