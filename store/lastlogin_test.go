package store

import (
	"context"
	"testing"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
)

// A login's record is seen by the next read of the identity, on one
// store, at once; and it survives closing the store.
func TestRecordLoginReadYourWrites(t *testing.T) {
	eachDialect(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, err := Open(ctx, dsn, Options{})
		if err != nil {
			t.Fatal(err)
		}
		b := bootstrap(t, s)
		id := b.Identity.ID
		first := time.Now().UTC().Truncate(time.Millisecond)
		later := first.Add(time.Second)
		// Two logins, the later one recorded first: the later wins.
		if err := s.RecordLogin(ctx, id, gatehouse.AuthMethodAzure, later); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordLogin(ctx, id, gatehouse.AuthMethodToken, first); err != nil {
			t.Fatal(err)
		}
		check := func(s *Store) {
			t.Helper()
			i, err := s.Identity(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if i.LastLoginAuthMethod != gatehouse.AuthMethodAzure || i.LastLoginTime == nil || !i.LastLoginTime.Equal(later) {
				t.Fatalf("last login %q at %v, want azure-auth at %v", i.LastLoginAuthMethod, i.LastLoginTime, later)
			}
		}
		check(s)
		list, err := s.Identities(ctx, b.Organization.ID)
		if err != nil || len(list) != 1 || list[0].LastLoginTime == nil {
			t.Fatalf("Identities: %v, %+v", err, list)
		}

		// A record still pending when the store closes is written by Close.
		if err := s.RecordLogin(ctx, id, gatehouse.AuthMethodAzure, later.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		later = later.Add(time.Second)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		check(openStore(t, dsn, Options{}))
	})
}
