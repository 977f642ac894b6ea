package store

import (
	"context"
	"sync"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
)

// loginFlushInterval is how long, at most, a login's record waits to be
// written on SQLite.
const loginFlushInterval = 100 * time.Millisecond

// lastLogins holds, on SQLite, the last-login records (method and time) of
// recent logins and writes them together every loginFlushInterval, and
// before any read of identities. A write to SQLite makes every reader
// connection drop its page cache, so one write per login made the next
// logins read their pages from disk again; no response depends on these
// records, and reads of identities see them all the same (this process is
// the only one using the file). A crash loses at most the last interval's
// records, never a token, a revocation or a use.
type lastLogins struct {
	s       *Store
	mu      sync.Mutex
	pending map[string]lastLogin // identity id → its latest login
	quit    chan struct{}
	done    chan struct{}
	stop    sync.Once
}

// recordLoginSQL sets an identity's last login unless a later one is
// already recorded (concurrent logins may commit out of order).
const recordLoginSQL = `UPDATE identities SET last_login_auth_method = ?, last_login_time = ?
	WHERE id = ? AND (last_login_time IS NULL OR last_login_time <= ?)`

type lastLogin struct {
	method gatehouse.AuthMethod
	at     time.Time
}

func newLastLogins(s *Store) *lastLogins {
	l := &lastLogins{s: s, pending: map[string]lastLogin{}, quit: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *lastLogins) add(identityID string, method gatehouse.AuthMethod, at time.Time) {
	l.mu.Lock()
	if prev, ok := l.pending[identityID]; !ok || !at.Before(prev.at) {
		l.pending[identityID] = lastLogin{method, at}
	}
	l.mu.Unlock()
}

func (l *lastLogins) run() {
	defer close(l.done)
	t := time.NewTicker(loginFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.flush(context.Background())
		case <-l.quit:
			l.flush(context.Background())
			return
		}
	}
}

// flush writes the pending records in one transaction. Records it could not
// write stay pending for the next flush, unless newer ones came meanwhile.
func (l *lastLogins) flush(ctx context.Context) error {
	l.mu.Lock()
	batch := l.pending
	if len(batch) == 0 {
		l.mu.Unlock()
		return nil
	}
	l.pending = map[string]lastLogin{}
	l.mu.Unlock()
	err := l.s.tx(ctx, func(tx txn) error {
		for id, r := range batch {
			if _, err := tx.Exec(l.s.q(recordLoginSQL), string(r.method), millis(r.at), id, millis(r.at)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for id, r := range batch {
			l.add(id, r.method, r.at)
		}
	}
	return err
}

// close writes what is pending and stops. Closing twice is harmless.
func (l *lastLogins) close() {
	l.stop.Do(func() { close(l.quit) })
	<-l.done
}
