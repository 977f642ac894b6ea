package store

import (
	"context"
	"sync"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
)

// maxBatch bounds how many writes share one transaction.
const maxBatch = 64

// batcher runs the one-statement writes of the hot paths (recording a
// login, counting a token use) of concurrent requests together in one
// SQLite transaction: one commit, and one invalidation of the readers' page
// caches, for many writes. SQLite has one writer at a time, so the writes
// would queue anyway; each caller still returns only once its own write is
// committed. PostgreSQL, with its many writers, does not batch.
type batcher struct {
	p       *pool
	timeout time.Duration
	reqs    chan *batchedWrite
	quit    chan struct{}
	done    chan struct{}
	stop    sync.Once
}

// batchedWrite is one statement and, for a RETURNING statement, where to
// scan its row.
type batchedWrite struct {
	query string
	args  []any
	dest  []any
	err   error
	done  chan struct{}
}

func newBatcher(p *pool, timeout time.Duration) *batcher {
	b := &batcher{p: p, timeout: timeout, reqs: make(chan *batchedWrite), quit: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

func (b *batcher) run() {
	defer close(b.done)
	for {
		var first *batchedWrite
		select {
		case first = <-b.reqs:
		case <-b.quit:
			return
		}
		batch := []*batchedWrite{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case w := <-b.reqs:
				batch = append(batch, w)
			default:
				break drain
			}
		}
		b.commit(batch)
	}
}

// commit runs batch in one transaction. A statement that fails fails only
// its own caller (SQLite undoes just that statement); a failed commit fails
// them all.
func (b *batcher) commit(batch []*batchedWrite) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	defer func() {
		for _, w := range batch {
			close(w.done)
		}
	}()
	tx, err := b.p.BeginTx(ctx, nil)
	if err != nil {
		for _, w := range batch {
			w.err = err
		}
		return
	}
	var missing []string
	t := txn{ctx, tx, b.p, &missing}
	for _, w := range batch {
		if w.dest != nil {
			w.err = t.QueryRow(w.query, w.args...).Scan(w.dest...)
		} else {
			_, w.err = t.Exec(w.query, w.args...)
		}
	}
	if err := tx.Commit(); err != nil {
		for _, w := range batch {
			w.err = err // nothing was committed: no result stands
		}
	}
	if len(missing) > 0 {
		b.p.prepareMissing(ctx, missing)
	}
}

// do runs w in the next batch and waits for its commit.
func (b *batcher) do(ctx context.Context, w *batchedWrite) error {
	w.done = make(chan struct{})
	select {
	case b.reqs <- w:
	case <-b.quit:
		return gatehouse.Errorf(gatehouse.KindUnavailable, "The database is closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops the batcher once the batch under way is committed. Closing
// twice is harmless.
func (b *batcher) close() {
	b.stop.Do(func() { close(b.quit) })
	<-b.done
}

// writeRow runs a one-statement write: batched on SQLite, directly on
// PostgreSQL. With dest, the statement's returned row is scanned into it.
func (s *Store) writeRow(ctx context.Context, query string, args []any, dest ...any) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	query = s.q(query)
	if s.batch != nil {
		return s.classify(s.batch.do(ctx, &batchedWrite{query: query, args: args, dest: dest}))
	}
	if dest != nil {
		return s.classify(s.w.QueryRowContext(ctx, query, args...).Scan(dest...))
	}
	_, err := s.w.ExecContext(ctx, query, args...)
	return s.classify(err)
}
