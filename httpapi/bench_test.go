package httpapi_test

// End-to-end benchmarks of the hot paths through the real handler, services
// and database, in process (no sockets): an Azure login (Entra ID token
// checked against cached keys, one read, one write, one token signed), an
// authenticated request with and without a use limit, and attaching Azure
// Auth. Each runs on SQLite, and on PostgreSQL when
// GATEHOUSE_TEST_POSTGRES_URL is set, from one goroutine ("serial") and
// from 32 ("parallel32", the clients of "gatehouse bench").
//
//	go test -run '^$' -bench . -benchmem ./httpapi/

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/internal/apitest"
	"github.com/gatehouse/gatehouse/internal/entratest"
)

const apiBenchClients = 32

// benchWriter is a ResponseWriter that keeps only the status, so that
// the allocations reported are the server's.
type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(code int)        { w.status = code }

func (w *benchWriter) reset() {
	clear(w.h)
	w.status = http.StatusOK
}

// benchServe runs one request through the handler and returns its status.
func benchServe(h http.Handler, w *benchWriter, method, path, token string, body []byte) int {
	var req *http.Request
	if body != nil {
		req, _ = http.NewRequest(method, "http://gatehouse"+path, bytes.NewReader(body))
		req.Header["Content-Type"] = []string{"application/json"}
	} else {
		req, _ = http.NewRequest(method, "http://gatehouse"+path, nil)
	}
	if token != "" {
		req.Header["Authorization"] = []string{"Bearer " + token}
	}
	req.RemoteAddr = "127.0.0.1:40000"
	w.reset()
	h.ServeHTTP(w, req)
	return w.status
}

// benchBoth runs op serially and from apiBenchClients goroutines; op gets the
// goroutine's index (0 when serial) and its writer, and returns the status.
func benchBoth(b *testing.B, op func(g int, w *benchWriter) int) {
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		w := &benchWriter{h: http.Header{}}
		for b.Loop() {
			if st := op(0, w); st != http.StatusOK {
				b.Fatalf("status %d", st)
			}
		}
	})
	b.Run(fmt.Sprintf("parallel%d", apiBenchClients), func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism((apiBenchClients + 1) / 2) // GOMAXPROCS is 2 on the reference machine
		var goroutines atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			g := int(goroutines.Add(1)-1) % apiBenchClients
			w := &benchWriter{h: http.Header{}}
			for pb.Next() {
				if st := op(g, w); st != http.StatusOK {
					b.Errorf("status %d", st)
					return
				}
			}
		})
	})
}

func BenchmarkAPI(b *testing.B) {
	for _, db := range []apitest.DB{apitest.SQLite, apitest.Postgres} {
		name := map[apitest.DB]string{apitest.SQLite: "sqlite", apitest.Postgres: "postgres"}[db]
		b.Run(name, func(b *testing.B) { benchAPI(b, db) })
	}
}

func benchAPI(b *testing.B, db apitest.DB) {
	s := apitest.Start(b, db)
	h := s.App.Handler
	admin := s.Bootstrap()

	b.Run("AzureLogin", func(b *testing.B) {
		bodies := make([][]byte, apiBenchClients)
		for k := range bodies {
			id := s.CreateIdentity(admin.Token, admin.OrgID, fmt.Sprintf("login-%d", k), "member")
			s.AttachAzure(admin.Token, id, nil)
			jwt := s.Entra.Mint(entratest.TokenOptions{})
			bodies[k], _ = json.Marshal(map[string]string{"identityId": id, "jwt": jwt})
		}
		keys := s.Entra.Requests()
		benchBoth(b, func(g int, w *benchWriter) int {
			return benchServe(h, w, http.MethodPost, "/api/v1/auth/azure-auth/login", "", bodies[g])
		})
		// The first login fetched the tenant's keys; no other may.
		if got := s.Entra.Requests() - keys; got > 1 {
			b.Errorf("%d Entra ID key-set requests during the logins, want at most 1", got)
		}
	})

	for _, limited := range []bool{false, true} {
		name, policy := "Details", map[string]any(nil)
		if limited {
			name, policy = "DetailsUseLimit", map[string]any{"accessTokenNumUsesLimit": 1<<53 - 1}
		}
		b.Run(name, func(b *testing.B) {
			id := s.CreateIdentity(admin.Token, admin.OrgID, name, "member")
			s.AttachAzure(admin.Token, id, policy)
			tokens := make([]string, apiBenchClients)
			for k := range tokens {
				tokens[k] = s.AzureLogin(id, entratest.TokenOptions{}).Expect(b, http.StatusOK).String("accessToken")
			}
			benchBoth(b, func(g int, w *benchWriter) int {
				return benchServe(h, w, http.MethodGet, "/api/v1/identities/details", tokens[g], nil)
			})
		})
	}

	b.Run("AttachAzure", func(b *testing.B) {
		body, _ := json.Marshal(map[string]any{"tenantId": entratest.DefaultTenant, "resource": entratest.DefaultAudience})
		// Fresh identities, made straight in the store before the clock
		// starts (creating them is not what is measured).
		fresh := func(b *testing.B, n int) []string {
			b.Helper()
			now := time.Now().UTC()
			ids := make([]string, n)
			for k := range ids {
				ids[k] = uuid.NewString()
				err := s.App.Store.CreateIdentity(context.Background(), gatehouse.Identity{ID: ids[k], MembershipID: uuid.NewString(),
					OrgID: admin.OrgID, Name: "attach", Role: gatehouse.RoleMember, CreatedAt: now, UpdatedAt: now})
				if err != nil {
					b.Fatal(err)
				}
			}
			return ids
		}
		attach := func(w *benchWriter, id string) int {
			return benchServe(h, w, http.MethodPost, "/api/v1/auth/azure-auth/identities/"+id, admin.Token, body)
		}
		b.Run("serial", func(b *testing.B) {
			b.ReportAllocs()
			ids := fresh(b, b.N)
			w := &benchWriter{h: http.Header{}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if st := attach(w, ids[i]); st != http.StatusOK {
					b.Fatalf("status %d", st)
				}
			}
		})
		b.Run(fmt.Sprintf("parallel%d", apiBenchClients), func(b *testing.B) {
			b.ReportAllocs()
			ids := fresh(b, b.N)
			var next atomic.Int64
			b.SetParallelism((apiBenchClients + 1) / 2)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := &benchWriter{h: http.Header{}}
				for pb.Next() {
					if st := attach(w, ids[next.Add(1)-1]); st != http.StatusOK {
						b.Errorf("status %d", st)
						return
					}
				}
			})
		})
	})
}
