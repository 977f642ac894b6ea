package httpapi

import (
	"net/http"
	"strings"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/azureauth"
)

// azureJSON is Azure Auth as Infisical returns it.
type azureJSON struct {
	ID                         string                `json:"id"`
	CreatedAt                  string                `json:"createdAt"`
	UpdatedAt                  string                `json:"updatedAt"`
	IdentityID                 string                `json:"identityId"`
	TenantID                   string                `json:"tenantId"`
	Resource                   string                `json:"resource"`
	AllowedServicePrincipalIDs string                `json:"allowedServicePrincipalIds"`
	AccessTokenTTL             int64                 `json:"accessTokenTTL"`
	AccessTokenMaxTTL          int64                 `json:"accessTokenMaxTTL"`
	AccessTokenNumUsesLimit    int64                 `json:"accessTokenNumUsesLimit"`
	AccessTokenTrustedIPs      []gatehouse.TrustedIP `json:"accessTokenTrustedIps"`
	AccessTokenPeriod          int64                 `json:"accessTokenPeriod"`
}

func writeAzure(w http.ResponseWriter, a azureauth.Attachment) {
	b := a.Binding
	writeJSON(w, http.StatusOK, map[string]azureJSON{"identityAzureAuth": {
		ID: b.ID, CreatedAt: jsTime(b.CreatedAt), UpdatedAt: jsTime(b.UpdatedAt), IdentityID: b.IdentityID,
		TenantID: a.Config.TenantID, Resource: a.Config.Resource, AllowedServicePrincipalIDs: a.Config.AllowedServicePrincipalIDs,
		AccessTokenTTL: b.Policy.TTL, AccessTokenMaxTTL: b.Policy.MaxTTL, AccessTokenNumUsesLimit: b.Policy.NumUsesLimit,
		AccessTokenTrustedIPs: b.Policy.TrustedIPs, AccessTokenPeriod: b.Policy.Period,
	}})
}

// maxConfigString bounds tenantId, resource and the principal list.
const maxConfigString = 2048

func (f *fields) configString(name string, required bool) (string, bool) {
	s, ok := f.String(name, required, 0)
	if ok && len(s) > maxConfigString {
		f.add(gatehouse.Issue{Code: "too_big", Maximum: ptr(float64(maxConfigString)), Type: "string", Inclusive: ptr(true), Exact: ptr(false),
			Path: []any{name}, Message: "String must contain at most 2048 character(s)"})
		return "", false
	}
	return s, ok
}

// decodeAttach reads the body of an attach: the Azure settings, and the
// token policy with its defaults.
func decodeAttach(f *fields) (azureauth.Config, gatehouse.TokenPolicy, error) {
	var cfg azureauth.Config
	cfg.TenantID, _ = f.configString("tenantId", true)
	cfg.Resource, _ = f.configString("resource", true)
	spIDs, _ := f.configString("allowedServicePrincipalIds", false)
	cfg.AllowedServicePrincipalIDs = azureauth.NormalizePrincipalIDs(spIDs)
	pf := f.tokenPolicy(true)
	if err := f.err(); err != nil {
		return cfg, gatehouse.TokenPolicy{}, err
	}
	return cfg, pf.policy(), nil
}

// decodePatch reads the body of an update: only the fields present.
func decodePatch(f *fields) (azureauth.Patch, error) {
	var p azureauth.Patch
	if v, ok := f.configString("tenantId", false); ok {
		p.TenantID = &v
	}
	if v, ok := f.configString("resource", false); ok {
		p.Resource = &v
	}
	if v, ok := f.configString("allowedServicePrincipalIds", false); ok {
		v = azureauth.NormalizePrincipalIDs(v)
		p.AllowedServicePrincipalIDs = &v
	}
	pf := f.tokenPolicy(false)
	p.TTL, p.MaxTTL, p.NumUsesLimit, p.TrustedIPs = pf.TTL, pf.MaxTTL, pf.NumUsesLimit, pf.TrustedIPs
	return p, f.err()
}

func (s *Server) attachAzure(w http.ResponseWriter, r *http.Request, p principal, id string) {
	f, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	cfg, policy, err := decodeAttach(f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a, err := s.cfg.Azure.Attach(r.Context(), p.actor, id, cfg, policy)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeAzure(w, a)
}

func (s *Server) getAzure(w http.ResponseWriter, r *http.Request, p principal, id string) {
	a, err := s.cfg.Azure.Get(r.Context(), p.actor, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeAzure(w, a)
}

func (s *Server) updateAzure(w http.ResponseWriter, r *http.Request, p principal, id string) {
	f, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	patch, err := decodePatch(f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a, err := s.cfg.Azure.Update(r.Context(), p.actor, id, patch)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeAzure(w, a)
}

func (s *Server) detachAzure(w http.ResponseWriter, r *http.Request, p principal, id string) {
	a, err := s.cfg.Azure.Detach(r.Context(), p.actor, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeAzure(w, a)
}

// loginResponse is what every login and renewal answers.
type loginResponse struct {
	AccessToken       string `json:"accessToken"`
	ExpiresIn         int64  `json:"expiresIn"`
	AccessTokenMaxTTL int64  `json:"accessTokenMaxTTL"`
	TokenType         string `json:"tokenType"`
}

// slugPattern checks organizationSlug as Infisical's slug schema does.
func (f *fields) slug(name string) string {
	v, ok := f.String(name, false, 0)
	if !ok {
		return ""
	}
	issue := func(msg string) {
		f.add(gatehouse.Issue{Code: "custom", Path: []any{name}, Message: msg})
	}
	switch {
	case len(v) < 1:
		issue("Slug field must be at least 1 lowercase character")
	case len(v) > 64:
		issue("Slug field must be at most 64 lowercase characters")
	default:
		for _, c := range v {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				issue("Slug field can only contain lowercase letters, numbers, and hyphens")
				return ""
			}
		}
		return v
	}
	return ""
}

// azureLogin is public: the Entra ID token is the credential. A stale
// Authorization header is ignored rather than refused.
func (s *Server) azureLogin(w http.ResponseWriter, r *http.Request) {
	f, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	identityID, idOK := f.String("identityId", true, 0)
	jwtField, present := f.m["jwt"]
	jwt, _ := jwtField.(string)
	if _, ok := jwtField.(string); !ok {
		f.add(typeIssue([]any{"jwt"}, "string", jwtField, present))
	}
	orgSlug := f.slug("organizationSlug")
	if err := f.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if idOK {
		if err := checkUUID("identityId", identityID); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	res, err := s.cfg.Azure.Login(r.Context(), strings.ToLower(identityID), jwt, orgSlug)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, loginResponse{AccessToken: res.Issued.Token, ExpiresIn: res.Policy.TTL,
		AccessTokenMaxTTL: res.Policy.MaxTTL, TokenType: "Bearer"})
}
