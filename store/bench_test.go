package store_test

// Benchmarks of the store's hot paths: what every authenticated request
// (TokenState, and UseToken for a token with a use limit), every login
// (LoginTarget, RecordLogin) and every attach (AttachAuthMethod) costs in
// the database. Each runs on SQLite, and on PostgreSQL when
// GATEHOUSE_TEST_POSTGRES_URL is set (in a fresh schema), once from one
// goroutine ("serial": the latency of one statement) and once from 32
// ("parallel": what the pools sustain under the load of 32 clients).
//
//	go test -run '^$' -bench . -benchmem ./store/

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/internal/apitest"
	"github.com/gatehouse/gatehouse/store"
)

// benchClients is the goroutines of a parallel benchmark: the default
// concurrency of "gatehouse bench".
const benchClients = 32

type benchFixture struct {
	s     *store.Store
	org   string
	ids   []string // identities with Azure Auth attached
	binds []string // their binding ids
	now   time.Time
}

func openBench(b *testing.B, db string) *benchFixture {
	b.Helper()
	var dsn string
	if db == "sqlite" {
		dsn = "sqlite:" + filepath.Join(b.TempDir(), "bench.db")
	} else {
		dsn = apitest.PostgresSchema(b)
	}
	ctx := context.Background()
	s, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	now := time.Now().UTC().Truncate(time.Millisecond)
	f := &benchFixture{s: s, org: uuid.NewString(), now: now}
	admin := gatehouse.Identity{ID: uuid.NewString(), MembershipID: uuid.NewString(), OrgID: f.org, Name: "admin",
		Role: gatehouse.RoleAdmin, IsInstanceAdmin: true, CreatedAt: now, UpdatedAt: now}
	err = s.Bootstrap(ctx, gatehouse.Bootstrap{At: now,
		User:         gatehouse.User{ID: uuid.NewString(), Email: "admin@example.com", Username: "admin@example.com", PasswordHash: "x", CreatedAt: now},
		Organization: gatehouse.Organization{ID: f.org, Name: "Bench", Slug: "bench", CreatedAt: now, UpdatedAt: now},
		Identity:     admin,
		Binding: gatehouse.AuthBinding{ID: uuid.NewString(), IdentityID: admin.ID, Method: gatehouse.AuthMethodToken,
			Policy: gatehouse.TokenPolicy{TrustedIPs: gatehouse.DefaultTrustedIPs()}, Config: []byte("{}"), CreatedAt: now, UpdatedAt: now},
	})
	if err != nil {
		b.Fatal(err)
	}
	for range benchClients {
		id := f.newIdentity(b)
		bind := f.binding(id)
		if err := s.AttachAuthMethod(ctx, bind); err != nil {
			b.Fatal(err)
		}
		f.ids, f.binds = append(f.ids, id), append(f.binds, bind.ID)
	}
	return f
}

func (f *benchFixture) newIdentity(b *testing.B) string {
	id := uuid.NewString()
	err := f.s.CreateIdentity(context.Background(), gatehouse.Identity{ID: id, MembershipID: uuid.NewString(), OrgID: f.org,
		Name: "bench", Role: gatehouse.RoleMember, CreatedAt: f.now, UpdatedAt: f.now})
	if err != nil {
		b.Fatal(err)
	}
	return id
}

var azureConfig = []byte(`{"tenantId":"3f6b5d2e-8c1a-4e7b-9d2f-0a4c6e8b1d35","resource":"https://management.azure.com/","allowedServicePrincipalIds":""}`)

func (f *benchFixture) binding(identityID string) gatehouse.AuthBinding {
	return gatehouse.AuthBinding{ID: uuid.NewString(), IdentityID: identityID, Method: gatehouse.AuthMethodAzure,
		Policy: gatehouse.TokenPolicy{TTL: gatehouse.DefaultTokenTTL, MaxTTL: gatehouse.DefaultTokenMaxTTL,
			TrustedIPs: gatehouse.DefaultTrustedIPs()},
		Config: azureConfig, CreatedAt: f.now, UpdatedAt: f.now}
}

// runBoth runs op as a serial and a parallel benchmark; op gets the index
// of its goroutine (0 when serial).
func runBoth(b *testing.B, op func(g int) error) {
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := op(0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("parallel%d", benchClients), func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism((benchClients + 1) / 2) // GOMAXPROCS is 2 on the reference machine
		var goroutines atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			g := int(goroutines.Add(1)-1) % benchClients
			for pb.Next() {
				if err := op(g); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkStore(b *testing.B) {
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			f := openBench(b, db)
			ctx := context.Background()
			b.Run("TokenState", func(b *testing.B) {
				runBoth(b, func(g int) error {
					st, err := f.s.TokenState(ctx, f.ids[g], gatehouse.AuthMethodAzure, "jti-none")
					if err == nil && st.BindingID != f.binds[g] {
						err = fmt.Errorf("TokenState: %+v", st)
					}
					return err
				})
			})
			b.Run("UseToken", func(b *testing.B) {
				jtis := make([]string, benchClients)
				for k := range jtis {
					jtis[k] = uuid.NewString()
				}
				exp := time.Now().Add(time.Hour)
				runBoth(b, func(g int) error {
					ok, err := f.s.UseToken(ctx, jtis[g], 1<<53-1, exp)
					if err == nil && !ok {
						err = fmt.Errorf("UseToken refused a use")
					}
					return err
				})
			})
			b.Run("LoginTarget", func(b *testing.B) {
				runBoth(b, func(g int) error {
					i, bind, err := f.s.LoginTarget(ctx, f.ids[g], gatehouse.AuthMethodAzure)
					if err == nil && (i.ID != f.ids[g] || bind.ID != f.binds[g]) {
						err = fmt.Errorf("LoginTarget: %s, %s", i.ID, bind.ID)
					}
					return err
				})
			})
			b.Run("RecordLogin", func(b *testing.B) {
				runBoth(b, func(g int) error {
					return f.s.RecordLogin(ctx, f.ids[g], gatehouse.AuthMethodAzure, time.Now())
				})
			})
			b.Run("AttachAuthMethod", func(b *testing.B) {
				// Each attach needs an identity without one: create them
				// in batches outside the timer.
				var fresh []string
				take := func(b *testing.B, i int64) string {
					for int64(len(fresh)) <= i {
						b.StopTimer()
						for range 1000 {
							fresh = append(fresh, f.newIdentity(b))
						}
						b.StartTimer()
					}
					return fresh[i]
				}
				b.Run("serial", func(b *testing.B) {
					b.ReportAllocs()
					fresh = fresh[:0]
					for i := 0; i < b.N; i++ {
						if err := f.s.AttachAuthMethod(ctx, f.binding(take(b, int64(i)))); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run(fmt.Sprintf("parallel%d", benchClients), func(b *testing.B) {
					b.ReportAllocs()
					fresh = fresh[:0]
					take(b, int64(b.N-1)) // all before the clock starts: RunParallel cannot stop it
					b.ResetTimer()
					b.SetParallelism((benchClients + 1) / 2)
					var iter atomic.Int64
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := f.s.AttachAuthMethod(ctx, f.binding(fresh[iter.Add(1)-1])); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			})
		})
	}
}
