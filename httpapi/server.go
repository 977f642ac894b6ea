// Package httpapi is Gatehouse's HTTP API, compatible with Infisical's
// machine-identity API: routes, bodies in and out, the auth middleware, and
// the one place where errors become HTTP statuses.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/azureauth"
	"github.com/gatehouse/gatehouse/identity"
	"github.com/gatehouse/gatehouse/token"
)

// Config wires the API to the services.
type Config struct {
	Identities *identity.Service
	Azure      *azureauth.Service
	Tokens     *token.Service
	// Ready reports whether the server can answer (the database is
	// reachable). Nil means always ready.
	Ready func(ctx context.Context) error
	// TrustedProxies are the peers whose X-Forwarded-For is believed. Empty
	// means none: the client address is the socket's.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	AccessLog      bool // log one line per request (never a header or body)
	Version        string
	Database       string // "sqlite" or "postgres", for the status document
}

// Server is the HTTP API.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the API handler.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /api/status", s.status)
	m.HandleFunc("POST /api/v1/admin/bootstrap", s.bootstrap)

	m.HandleFunc("POST /api/v1/identities", s.authed(s.createIdentity))
	m.HandleFunc("GET /api/v1/identities", s.authed(s.listIdentities))
	m.HandleFunc("GET /api/v1/identities/details", s.authed(s.identityDetails))
	m.HandleFunc("GET /api/v1/identities/{identityId}", s.authed(s.withID(s.getIdentity)))
	m.HandleFunc("PATCH /api/v1/identities/{identityId}", s.authed(s.withID(s.updateIdentity)))
	m.HandleFunc("DELETE /api/v1/identities/{identityId}", s.authed(s.withID(s.deleteIdentity)))

	m.HandleFunc("POST /api/v1/auth/azure-auth/login", s.azureLogin)
	m.HandleFunc("POST /api/v1/auth/azure-auth/identities/{identityId}", s.authed(s.withID(s.attachAzure)))
	m.HandleFunc("GET /api/v1/auth/azure-auth/identities/{identityId}", s.authed(s.withID(s.getAzure)))
	m.HandleFunc("PATCH /api/v1/auth/azure-auth/identities/{identityId}", s.authed(s.withID(s.updateAzure)))
	m.HandleFunc("DELETE /api/v1/auth/azure-auth/identities/{identityId}", s.authed(s.withID(s.detachAzure)))

	m.HandleFunc("POST /api/v1/auth/token/renew", s.renewToken)
	m.HandleFunc("POST /api/v1/auth/token/revoke", s.revokeToken)

	m.HandleFunc("/", s.notFound)
}

type ctxKey int

const reqIDKey ctxKey = 0

func requestID(r *http.Request) string {
	if id, ok := r.Context().Value(reqIDKey).(string); ok {
		return id
	}
	return newRequestID()
}

// statusRecorder remembers the status written, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// ServeHTTP gives every request an id, drops a trailing slash (as Infisical
// ignores it), turns a panic into a 500 in the usual error shape, and logs
// one line per request, without any header or body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := newRequestID()
	r = r.WithContext(context.WithValue(r.Context(), reqIDKey, id))
	if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
		r.URL.Path = strings.TrimRight(p, "/")
		if r.URL.Path == "" {
			r.URL.Path = "/"
		}
		r.URL.RawPath = ""
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic", "reqId", id, "panic", v, "stack", string(debug.Stack()))
			s.writeError(rec, r, gatehouse.Errorf(gatehouse.KindInternal, "panic"))
		}
		if s.cfg.AccessLog {
			s.log.Info("request", "reqId", id, "method", r.Method, "path", r.URL.Path, "status", rec.status,
				"durationMs", float64(time.Since(start).Microseconds())/1000)
		}
	}()
	s.mux.ServeHTTP(rec, r)
}

// notFound answers unknown routes and wrong methods as Infisical (fastify) does.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, &gatehouse.Error{Kind: gatehouse.KindNotFound, Name: "Not Found",
		Message: "Route " + r.Method + ":" + r.URL.Path + " not found"})
}

// clientIP is the address the request comes from: the socket's peer, unless
// that peer is a trusted proxy, in which case X-Forwarded-For is read from
// the right, skipping trusted hops. Other headers are never believed.
func (s *Server) clientIP(r *http.Request) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := peer.Addr().Unmap()
	if !s.trusted(addr) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for k := len(hops) - 1; k >= 0; k-- {
		hop, ok := parseHop(strings.TrimSpace(hops[k]))
		if !ok {
			return addr // a malformed hop: stop at the last address we could trust
		}
		if !s.trusted(hop) {
			return hop
		}
		addr = hop
	}
	return addr
}

// parseHop reads one X-Forwarded-For entry: an address, or an address and
// port ("10.1.2.3:5555", "[2001:db8::1]:443"), as Azure Application Gateway
// writes them.
func parseHop(h string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// bearer extracts the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(tok), true
}

type authedHandler func(w http.ResponseWriter, r *http.Request, p principal)

// principal is the authenticated caller of a request.
type principal struct {
	actor  gatehouse.Actor
	claims *gatehouse.AccessTokenClaims
	state  gatehouse.TokenState
}

// authed runs h only for a request with a valid identity access token.
func (s *Server) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, present := bearer(r)
		if !present {
			s.writeError(w, r, gatehouse.Errorf(gatehouse.KindUnauthorized, "Token missing"))
			return
		}
		claims, st, err := s.cfg.Tokens.Authenticate(r.Context(), raw, s.clientIP(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		h(w, r, principal{
			actor:  gatehouse.Actor{IdentityID: claims.IdentityID, OrgID: st.OrgID, Role: st.Role, IsInstanceAdmin: st.IsInstanceAdmin},
			claims: claims, state: st,
		})
	}
}

type idHandler func(w http.ResponseWriter, r *http.Request, p principal, id string)

// withID validates the {identityId} path parameter as a UUID.
func (s *Server) withID(h idHandler) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p principal) {
		id := strings.ToLower(strings.TrimSpace(r.PathValue("identityId")))
		if err := checkUUID("identityId", id); err != nil {
			s.writeError(w, r, err)
			return
		}
		h(w, r, p, id)
	}
}

// checkUUID answers a validation error unless id is a canonical UUID.
func checkUUID(name, id string) error {
	if isUUID(id) {
		return nil
	}
	return gatehouse.ValidationError(gatehouse.Issue{Code: "invalid_string", Path: []any{name}, Message: "Invalid uuid"})
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for k := 0; k < 36; k++ {
		c := s[k]
		switch k {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
