package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	gatehouse "github.com/gatehouse/gatehouse"
)

// postgresEnv names the variable holding the URL of a PostgreSQL server for
// the tests (the same one internal/apitest reads).
const postgresEnv = "GATEHOUSE_TEST_POSTGRES_URL"

// eachDialect runs test on a fresh SQLite file and on a fresh PostgreSQL
// schema. Each Store test opens on dsn is another instance on one database.
func eachDialect(t *testing.T, test func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) {
		test(t, "sqlite:"+filepath.Join(t.TempDir(), "gatehouse.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		test(t, postgresSchema(t))
	})
}

// postgresBase returns the URL of postgresEnv, or skips t.
func postgresBase(t testing.TB) string {
	base := os.Getenv(postgresEnv)
	if base == "" {
		t.Skipf("PostgreSQL tests skipped: set %s (e.g. postgres://postgres@127.0.0.1:55432/gatehouse_test?sslmode=disable) to run them; "+
			"docs/several-instances.md says how to start a throwaway server", postgresEnv)
	}
	return base
}

// postgresSchema creates an empty schema, dropped when t ends, and returns a
// URL whose connections use it.
func postgresSchema(t testing.TB) string {
	base := postgresBase(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "st_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openStore(t testing.TB, dsn string, o Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fixture is a bootstrap: an organization and its instance admin identity,
// with Token Auth attached.
func fixture() gatehouse.Bootstrap {
	now := time.Now().UTC().Truncate(time.Millisecond)
	b := gatehouse.Bootstrap{
		At: now,
		User: gatehouse.User{ID: uuid.NewString(), Email: "admin@example.com", Username: "admin@example.com",
			FirstName: "Admin", LastName: "User", PasswordHash: "x", SuperAdmin: true, CreatedAt: now},
		Organization: gatehouse.Organization{ID: uuid.NewString(), Name: "Acme", Slug: "acme-" + uuid.NewString()[:4],
			CreatedAt: now, UpdatedAt: now},
	}
	b.Identity = gatehouse.Identity{ID: uuid.NewString(), MembershipID: uuid.NewString(), OrgID: b.Organization.ID,
		Name: "admin", Role: gatehouse.RoleAdmin, IsInstanceAdmin: true, CreatedAt: now, UpdatedAt: now}
	b.Binding = gatehouse.AuthBinding{ID: uuid.NewString(), IdentityID: b.Identity.ID, Method: gatehouse.AuthMethodToken,
		Policy: gatehouse.TokenPolicy{TrustedIPs: gatehouse.DefaultTrustedIPs()}, Config: []byte("{}"), CreatedAt: now, UpdatedAt: now}
	return b
}

func bootstrap(t *testing.T, s *Store) gatehouse.Bootstrap {
	t.Helper()
	b := fixture()
	if err := s.Bootstrap(context.Background(), b); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return b
}

// race starts n goroutines at once, goroutine i calling f(i), and waits for
// them.
func race(n int, f func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			f(i)
		}()
	}
	start.Done()
	done.Wait()
}

// Instances starting at the same moment on an empty database all start, and
// each migration is applied once.
func TestMigrateConcurrently(t *testing.T) {
	eachDialect(t, func(t *testing.T, dsn string) {
		const n = 6
		errs := make([]error, n)
		stores := make([]*Store, n)
		race(n, func(i int) {
			stores[i], errs[i] = Open(context.Background(), dsn, Options{})
		})
		for i, s := range stores {
			if s != nil {
				t.Cleanup(func() { s.Close() })
			}
			if errs[i] != nil {
				t.Fatalf("instance %d: %v", i, errs[i])
			}
		}
		entries, err := migrations.ReadDir("migrations/" + stores[0].Dialect())
		if err != nil {
			t.Fatal(err)
		}
		rows, err := stores[0].r.Query(`SELECT version, COUNT(*) FROM schema_migrations GROUP BY version ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		versions := 0
		for rows.Next() {
			var version, count int64
			if err := rows.Scan(&version, &count); err != nil {
				t.Fatal(err)
			}
			versions++
			if count != 1 {
				t.Errorf("migration %d recorded %d times", version, count)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if versions != len(entries) {
			t.Errorf("%d migrations recorded, want %d", versions, len(entries))
		}
		for i, s := range stores {
			if _, err := s.Bootstrapped(context.Background()); err != nil {
				t.Errorf("instance %d cannot read the schema: %v", i, err)
			}
		}
	})
}

// A token with a use limit is allowed exactly limit times, however many
// requests race on however many instances.
func TestUseTokenExactUnderConcurrency(t *testing.T) {
	eachDialect(t, func(t *testing.T, dsn string) {
		stores := []*Store{openStore(t, dsn, Options{}), openStore(t, dsn, Options{})}
		const limit, requests = 10, 64
		jti := uuid.NewString()
		expires := time.Now().Add(time.Hour)
		var allowed atomic.Int64
		errs := make(chan error, requests)
		race(requests, func(i int) {
			ok, err := stores[i%2].UseToken(context.Background(), jti, limit, expires)
			if err != nil {
				errs <- err
				return
			}
			if ok {
				allowed.Add(1)
			}
		})
		close(errs)
		for err := range errs {
			t.Errorf("UseToken: %v", err)
		}
		if got := allowed.Load(); got != limit {
			t.Errorf("%d uses allowed, want exactly %d", got, limit)
		}
		for i, s := range stores {
			if uses, err := s.TokenUses(context.Background(), jti); err != nil || uses != limit {
				t.Errorf("instance %d: TokenUses = %d, %v; want %d", i, uses, err, limit)
			}
		}
		if uses, err := stores[0].TokenUses(context.Background(), uuid.NewString()); err != nil || uses != 0 {
			t.Errorf("TokenUses of an unused token = %d, %v; want 0", uses, err)
		}
	})
}

// A revocation written by one instance is seen by the next read of another.
func TestRevokeTokenSeenByTokenState(t *testing.T) {
	eachDialect(t, func(t *testing.T, dsn string) {
		a, b := openStore(t, dsn, Options{}), openStore(t, dsn, Options{})
		ctx := context.Background()
		boot := bootstrap(t, a)
		id, method := boot.Identity.ID, gatehouse.AuthMethodToken
		jti := uuid.NewString()

		st, err := b.TokenState(ctx, id, method, jti)
		if err != nil {
			t.Fatal(err)
		}
		want := gatehouse.TokenState{IdentityFound: true, OrgID: boot.Organization.ID, Role: gatehouse.RoleAdmin,
			IsInstanceAdmin: true, BindingID: boot.Binding.ID,
			Organization: gatehouse.Organization{ID: boot.Organization.ID, Name: "Acme", Slug: boot.Organization.Slug}}
		if fmt.Sprint(st) != fmt.Sprint(want) {
			t.Errorf("TokenState before revoke:\n got %+v\nwant %+v", st, want)
		}

		expires := time.Now().Add(time.Hour)
		if err := a.RevokeToken(ctx, jti, id, expires); err != nil {
			t.Fatal(err)
		}
		if err := b.RevokeToken(ctx, jti, id, expires.Add(time.Minute)); err != nil {
			t.Errorf("revoking twice: %v", err)
		}
		if st, err := b.TokenState(ctx, id, method, jti); err != nil || !st.Revoked || !st.IdentityFound {
			t.Errorf("TokenState after revoke = %+v, %v; want revoked", st, err)
		}
		if st, err := b.TokenState(ctx, id, method, uuid.NewString()); err != nil || st.Revoked {
			t.Errorf("another token of the identity: %+v, %v; want not revoked", st, err)
		}
		if st, err := b.TokenState(ctx, id, gatehouse.AuthMethodAzure, jti); err != nil || st.BindingID != "" {
			t.Errorf("a method not attached: BindingID %q, %v; want none", st.BindingID, err)
		}
		if st, err := b.TokenState(ctx, uuid.NewString(), method, jti); err != nil || st.IdentityFound {
			t.Errorf("an unknown identity: %+v, %v; want not found and no error", st, err)
		}

		// Once the token would have expired anyway, the marker may go.
		if err := b.PurgeExpired(ctx, expires.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if st, err := a.TokenState(ctx, id, method, jti); err != nil || st.Revoked {
			t.Errorf("after purge: %+v, %v", st, err)
		}
	})
}

// Instances starting together on an empty database all end up with the one
// signing secret stored.
func TestSecretRace(t *testing.T) {
	eachDialect(t, func(t *testing.T, dsn string) {
		stores := []*Store{openStore(t, dsn, Options{}), openStore(t, dsn, Options{})}
		const n = 16
		got := make([][]byte, n)
		errs := make([]error, n)
		race(n, func(i int) {
			got[i], errs[i] = stores[i%2].Secret(context.Background(), "auth-secret", func() ([]byte, error) {
				b := make([]byte, 48)
				_, err := rand.Read(b)
				return b, err
			})
		})
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("call %d: %v", i, errs[i])
			}
			if len(got[i]) != 48 || !bytes.Equal(got[i], got[0]) {
				t.Fatalf("call %d got a different secret than call 0", i)
			}
		}
		// Later calls read it and do not generate.
		again, err := stores[1].Secret(context.Background(), "auth-secret", func() ([]byte, error) {
			return nil, errors.New("generate called with a secret stored")
		})
		if err != nil || !bytes.Equal(again, got[0]) {
			t.Errorf("Secret after the race: %v", err)
		}
	})
}

// Of concurrent bootstraps on instances sharing a database, exactly one
// succeeds; the others are told the instance is set up.
func TestBootstrapRace(t *testing.T) {
	eachDialect(t, func(t *testing.T, dsn string) {
		stores := []*Store{openStore(t, dsn, Options{}), openStore(t, dsn, Options{})}
		const n = 12
		errs := make([]error, n)
		race(n, func(i int) {
			b := fixture()
			b.User.Email = fmt.Sprintf("admin%d@example.com", i)
			errs[i] = stores[i%2].Bootstrap(context.Background(), b)
		})
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, gatehouse.ErrAlreadyBootstrapped):
			default:
				t.Errorf("bootstrap %d: %v (kind %d), want nil or ErrAlreadyBootstrapped", i, err, gatehouse.KindOf(err))
			}
		}
		if won != 1 {
			t.Errorf("%d bootstraps succeeded, want exactly 1", won)
		}
		for i, s := range stores {
			if done, err := s.Bootstrapped(context.Background()); err != nil || !done {
				t.Errorf("instance %d: Bootstrapped = %v, %v", i, done, err)
			}
		}
		if err := stores[0].Bootstrap(context.Background(), fixture()); !errors.Is(err, gatehouse.ErrAlreadyBootstrapped) {
			t.Errorf("a later bootstrap: %v, want ErrAlreadyBootstrapped", err)
		}
	})
}

// Concurrent changes of one auth method, on two instances, each changing
// another field, both land: the second reads what the first wrote.
func TestUpdateAuthMethodConcurrently(t *testing.T) {
	eachDialect(t, func(t *testing.T, dsn string) {
		a, b := openStore(t, dsn, Options{}), openStore(t, dsn, Options{})
		ctx := context.Background()
		boot := bootstrap(t, a)
		id, method := boot.Identity.ID, gatehouse.AuthMethodToken

		firstRead := make(chan struct{})
		secondRead := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, errs[0] = a.UpdateAuthMethod(ctx, id, method, time.Now(), func(cur gatehouse.AuthBinding) (gatehouse.AuthBinding, error) {
				close(firstRead)
				// Give the other update the chance to read the row before
				// this one writes, as it could if nothing locked the row.
				select {
				case <-secondRead:
				case <-time.After(300 * time.Millisecond):
				}
				cur.Policy.TTL = 111
				return cur, nil
			})
		}()
		go func() {
			defer wg.Done()
			<-firstRead
			_, errs[1] = b.UpdateAuthMethod(ctx, id, method, time.Now(), func(cur gatehouse.AuthBinding) (gatehouse.AuthBinding, error) {
				select {
				case <-secondRead:
				default:
					close(secondRead)
				}
				cur.Policy.NumUsesLimit = 7
				return cur, nil
			})
		}()
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("update %d: %v", i, err)
			}
		}
		got, err := a.AuthMethod(ctx, id, method)
		if err != nil {
			t.Fatal(err)
		}
		if got.Policy.TTL != 111 || got.Policy.NumUsesLimit != 7 {
			t.Errorf("after two concurrent updates TTL = %d, NumUsesLimit = %d; want 111 and 7 (one update lost)",
				got.Policy.TTL, got.Policy.NumUsesLimit)
		}
	})
}

// Of concurrent detaches of one method, one returns what was stored, the
// others ErrNotFound.
func TestDetachAuthMethodConcurrently(t *testing.T) {
	eachDialect(t, func(t *testing.T, dsn string) {
		stores := []*Store{openStore(t, dsn, Options{}), openStore(t, dsn, Options{})}
		boot := bootstrap(t, stores[0])
		const n = 8
		errs := make([]error, n)
		race(n, func(i int) {
			_, errs[i] = stores[i%2].DetachAuthMethod(context.Background(), boot.Identity.ID, gatehouse.AuthMethodToken)
		})
		detached := 0
		for i, err := range errs {
			switch {
			case err == nil:
				detached++
			case errors.Is(err, gatehouse.ErrNotFound):
			default:
				t.Errorf("detach %d: %v", i, err)
			}
		}
		if detached != 1 {
			t.Errorf("%d detaches succeeded, want exactly 1", detached)
		}
	})
}

// Database errors become the domain's errors.
func TestClassify(t *testing.T) {
	eachDialect(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn, Options{})
		ctx := context.Background()
		if _, err := s.Organization(ctx, uuid.NewString()); !errors.Is(err, gatehouse.ErrNotFound) {
			t.Errorf("no rows: %v, want ErrNotFound", err)
		}
		boot := bootstrap(t, s)
		dup := boot.Identity
		dup.MembershipID = uuid.NewString()
		if err := s.CreateIdentity(ctx, dup); !errors.Is(err, gatehouse.ErrAlreadyExists) {
			t.Errorf("unique violation: %v, want ErrAlreadyExists", err)
		}
		orphan := boot.Identity
		orphan.ID, orphan.MembershipID, orphan.OrgID = uuid.NewString(), uuid.NewString(), uuid.NewString()
		if err := s.CreateIdentity(ctx, orphan); !errors.Is(err, gatehouse.ErrNotFound) {
			t.Errorf("identity of an organization that does not exist: %v, want ErrNotFound", err)
		}

		closed := openStore(t, dsn, Options{})
		closed.Close()
		if err := closed.Ping(ctx); gatehouse.KindOf(err) != gatehouse.KindUnavailable {
			t.Errorf("Ping of a closed store: %v (kind %d), want KindUnavailable", err, gatehouse.KindOf(err))
		}
		if _, err := closed.Organization(ctx, boot.Organization.ID); gatehouse.KindOf(err) != gatehouse.KindUnavailable {
			t.Errorf("read of a closed store: %v (kind %d), want KindUnavailable", err, gatehouse.KindOf(err))
		}
		if err := closed.CreateIdentity(ctx, orphan); gatehouse.KindOf(err) != gatehouse.KindUnavailable {
			t.Errorf("write of a closed store: %v (kind %d), want KindUnavailable", err, gatehouse.KindOf(err))
		}
	})
}

// A PostgreSQL server that cannot be reached makes Open fail as
// unavailable, promptly.
func TestOpenUnreachablePostgres(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = Open(ctx, "postgres://postgres@"+addr+"/gatehouse?sslmode=disable", Options{QueryTimeout: time.Second})
	if gatehouse.KindOf(err) != gatehouse.KindUnavailable {
		t.Errorf("Open: %v (kind %d), want KindUnavailable", err, gatehouse.KindOf(err))
	}
}

// When the network to PostgreSQL stalls mid-transaction, the statement
// gives up at the store's timeout as unavailable instead of hanging, and the
// store works again once the network does.
func TestStalledPostgres(t *testing.T) {
	dsn := postgresSchema(t)
	u, _ := url.Parse(dsn)
	proxy := startStallProxy(t, u.Host)
	u.Host = proxy.addr()
	const timeout = 300 * time.Millisecond
	s := openStore(t, u.String(), Options{QueryTimeout: timeout, MaxOpenConns: 2})
	boot := bootstrap(t, s)
	ctx := context.Background()

	// hangGuard fails the test if f does not return: a generous bound, far
	// above the timeout, that only a hang reaches.
	hangGuard := func(what string, f func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			return err
		case <-time.After(40 * timeout):
			proxy.resume()
			t.Fatalf("%s hangs on a stalled database", what)
			return nil
		}
	}

	err := hangGuard("a transaction", func() error {
		return s.tx(ctx, func(tx txn) error {
			proxy.stall()
			_, err := tx.Exec(s.q(`UPDATE identities SET name = ? WHERE id = ?`), "renamed", boot.Identity.ID)
			return err
		})
	})
	if gatehouse.KindOf(err) != gatehouse.KindUnavailable {
		t.Errorf("transaction on a stalled database: %v (kind %d), want KindUnavailable", err, gatehouse.KindOf(err))
	}
	for what, f := range map[string]func() error{
		"Ping": func() error { return s.Ping(ctx) },
		"TokenState": func() error {
			_, err := s.TokenState(ctx, boot.Identity.ID, gatehouse.AuthMethodToken, "x")
			return err
		},
		"UseToken":    func() error { _, err := s.UseToken(ctx, "x", 3, time.Now().Add(time.Hour)); return err },
		"RevokeToken": func() error { return s.RevokeToken(ctx, "x", boot.Identity.ID, time.Now().Add(time.Hour)) },
		"CreateIdenty": func() error {
			i := boot.Identity
			i.ID, i.MembershipID = uuid.NewString(), uuid.NewString()
			return s.CreateIdentity(ctx, i)
		},
	} {
		if err := hangGuard(what, f); gatehouse.KindOf(err) != gatehouse.KindUnavailable {
			t.Errorf("%s on a stalled database: %v (kind %d), want KindUnavailable", what, err, gatehouse.KindOf(err))
		}
	}

	// An instance starting meanwhile fails as unavailable, and does not
	// wait for TCP to give up.
	err = hangGuard("Open", func() error {
		s2, err := Open(ctx, u.String(), Options{QueryTimeout: timeout})
		if err == nil {
			s2.Close()
		}
		return err
	})
	if gatehouse.KindOf(err) != gatehouse.KindUnavailable {
		t.Errorf("Open on a stalled database: %v (kind %d), want KindUnavailable", err, gatehouse.KindOf(err))
	}

	proxy.resume()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.Ping(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store does not recover once the network does: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if i, err := s.Identity(ctx, boot.Identity.ID); err != nil || i.Name != boot.Identity.Name {
		t.Errorf("after recovery: %q, %v; want the name unchanged (the stalled transaction must not commit)", i.Name, err)
	}
}

// The pool options reach the pools.
func TestOptions(t *testing.T) {
	eachDialect(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn, Options{MaxOpenConns: 3, QueryTimeout: 1500 * time.Millisecond})
		if got := s.r.Stats().MaxOpenConnections; got != 3 {
			t.Errorf("pool of %d connections, want 3", got)
		}
		if s.timeout != 1500*time.Millisecond {
			t.Errorf("timeout %v, want 1.5s", s.timeout)
		}
		if d := openStore(t, dsn, Options{}); d.timeout != 5*time.Second || d.r.Stats().MaxOpenConnections <= 0 {
			t.Errorf("defaults: timeout %v, pool %d", d.timeout, d.r.Stats().MaxOpenConnections)
		}
	})
}

// classify maps the drivers' errors to kinds, whichever the dialect.
func TestClassifyErrors(t *testing.T) {
	s := &Store{dialect: dialectPostgres}
	pg := func(code string) error { return fmt.Errorf("exec: %w", &pgconn.PgError{Code: code}) }
	for _, c := range []struct {
		name string
		err  error
		want gatehouse.Kind
	}{
		{"no rows", sql.ErrNoRows, gatehouse.KindNotFound},
		{"unique violation", pg("23505"), gatehouse.KindInvalid},
		{"foreign key violation", pg("23503"), gatehouse.KindNotFound},
		{"syntax error", pg("42601"), gatehouse.KindInternal},
		{"undefined table", pg("42P01"), gatehouse.KindInternal},
		{"admin shutdown", pg("57P01"), gatehouse.KindUnavailable},
		{"cannot connect now", pg("57P03"), gatehouse.KindUnavailable},
		{"too many connections", pg("53300"), gatehouse.KindUnavailable},
		{"connection failure", pg("08006"), gatehouse.KindUnavailable},
		{"query cancelled", pg("57014"), gatehouse.KindUnavailable},
		{"serialization failure", pg("40001"), gatehouse.KindUnavailable},
		{"deadlock", pg("40P01"), gatehouse.KindUnavailable},
		{"lock timeout", pg("55P03"), gatehouse.KindUnavailable},
		{"deadline", context.DeadlineExceeded, gatehouse.KindUnavailable},
		{"cancelled", context.Canceled, gatehouse.KindUnavailable},
		{"bad conn", fmt.Errorf("x: %w", sql.ErrConnDone), gatehouse.KindUnavailable},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}, gatehouse.KindUnavailable},
		{"domain error", gatehouse.ErrAlreadyBootstrapped, gatehouse.KindInvalid},
		{"anything else", errors.New("boom"), gatehouse.KindInternal},
	} {
		if got := gatehouse.KindOf(s.classify(c.err)); got != c.want {
			t.Errorf("%s: kind %d, want %d", c.name, got, c.want)
		}
	}
}
