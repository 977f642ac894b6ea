package httpapi

import (
	"net/http"
	"net/mail"
	"strings"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
)

// status answers 200 once the server can serve requests, 503 while its
// database cannot be reached.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"message":                   "Ok",
		"date":                      jsTime(time.Now()),
		"version":                   s.cfg.Version,
		"database":                  s.cfg.Database,
		"maxIdentityAccessTokenTTL": int64(s.cfg.Tokens.Ceiling() / time.Second),
	})
}

func (s *Server) bootstrap(w http.ResponseWriter, r *http.Request) {
	f, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	email, ok := f.String("email", true, 0)
	if ok {
		a, err := mail.ParseAddress(email)
		if err != nil || a.Address != email || a.Name != "" || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") {
			f.add(gatehouse.Issue{Code: "invalid_string", Path: []any{"email"}, Message: "Invalid email"})
		}
	}
	password, _ := f.String("password", true, 1)
	org, _ := f.String("organization", true, 1)
	if err := f.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.cfg.Identities.Bootstrap(r.Context(), email, password, org)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	u := res.User
	writeJSON(w, http.StatusOK, map[string]any{
		"message": "Successfully bootstrapped instance",
		"user": map[string]any{"username": u.Username, "firstName": u.FirstName, "lastName": u.LastName,
			"email": u.Email, "id": u.ID, "superAdmin": u.SuperAdmin},
		"organization": map[string]any{"id": res.Organization.ID, "name": res.Organization.Name, "slug": res.Organization.Slug},
		"identity": map[string]any{"id": res.Identity.ID, "name": res.Identity.Name,
			"credentials": map[string]any{"token": res.Token}},
	})
}

// tokenBody reads the {accessToken} body of renew and revoke.
func tokenBody(r *http.Request) (string, error) {
	f, err := readBody(r)
	if err != nil {
		return "", err
	}
	tok, _ := f.String("accessToken", true, 0)
	return tok, f.err()
}

// renewToken is public: the token in the body is the credential.
func (s *Server) renewToken(w http.ResponseWriter, r *http.Request) {
	tok, err := tokenBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	issued, err := s.cfg.Tokens.Renew(r.Context(), tok, s.clientIP(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, loginResponse{AccessToken: issued.Token, ExpiresIn: issued.ExpiresIn,
		AccessTokenMaxTTL: issued.Claims.AccessTokenMaxTTL, TokenType: "Bearer"})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	tok, err := tokenBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cfg.Tokens.Revoke(r.Context(), tok); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "Successfully revoked access token"})
}
