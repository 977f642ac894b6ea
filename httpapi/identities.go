package httpapi

import (
	"net/http"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/identity"
)

// jsTime formats t as JavaScript's Date.toISOString does.
func jsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func jsTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := jsTime(*t)
	return &s
}

type metadataJSON struct {
	ID    string `json:"id"`
	Key   string `json:"key"`
	Value string `json:"value"`
}

func metadataOf(md []gatehouse.Metadata) []metadataJSON {
	out := make([]metadataJSON, 0, len(md))
	for _, m := range md {
		out = append(out, metadataJSON{ID: m.ID, Key: m.Key, Value: m.Value})
	}
	return out
}

func methodsOf(i gatehouse.Identity) []gatehouse.AuthMethod {
	if i.AuthMethods == nil {
		return []gatehouse.AuthMethod{}
	}
	return i.AuthMethods
}

// identityJSON is an identity as create, update and delete return it.
type identityJSON struct {
	ID                  string                 `json:"id"`
	Name                string                 `json:"name"`
	OrgID               string                 `json:"orgId"`
	HasDeleteProtection bool                   `json:"hasDeleteProtection"`
	AuthMethods         []gatehouse.AuthMethod `json:"authMethods"`
	Metadata            []metadataJSON         `json:"metadata"`
	CreatedAt           string                 `json:"createdAt"`
	UpdatedAt           string                 `json:"updatedAt"`
}

func identityOf(i gatehouse.Identity) identityJSON {
	return identityJSON{ID: i.ID, Name: i.Name, OrgID: i.OrgID, HasDeleteProtection: i.HasDeleteProtection,
		AuthMethods: methodsOf(i), Metadata: metadataOf(i.Metadata), CreatedAt: jsTime(i.CreatedAt), UpdatedAt: jsTime(i.UpdatedAt)}
}

// membershipJSON is an identity as list and get return it: its organization
// membership, with the identity inside.
type membershipJSON struct {
	ID                  string          `json:"id"`
	Role                gatehouse.Role  `json:"role"`
	RoleID              *string         `json:"roleId"`
	OrgID               string          `json:"orgId"`
	CreatedAt           string          `json:"createdAt"`
	UpdatedAt           string          `json:"updatedAt"`
	LastLoginAuthMethod *string         `json:"lastLoginAuthMethod"`
	LastLoginTime       *string         `json:"lastLoginTime"`
	Metadata            *[]metadataJSON `json:"metadata,omitempty"` // only on get
	Identity            struct {
		ID                       string                 `json:"id"`
		Name                     string                 `json:"name"`
		OrgID                    string                 `json:"orgId"`
		HasDeleteProtection      bool                   `json:"hasDeleteProtection"`
		AuthMethods              []gatehouse.AuthMethod `json:"authMethods"`
		ActiveLockoutAuthMethods []string               `json:"activeLockoutAuthMethods"`
	} `json:"identity"`
}

func membershipOf(i gatehouse.Identity, withMetadata bool) membershipJSON {
	m := membershipJSON{ID: i.MembershipID, Role: i.Role, OrgID: i.OrgID, CreatedAt: jsTime(i.CreatedAt), UpdatedAt: jsTime(i.UpdatedAt),
		LastLoginTime: jsTimePtr(i.LastLoginTime)}
	if i.LastLoginAuthMethod != "" {
		s := string(i.LastLoginAuthMethod)
		m.LastLoginAuthMethod = &s
	}
	if withMetadata {
		md := metadataOf(i.Metadata)
		m.Metadata = &md
	}
	m.Identity.ID, m.Identity.Name, m.Identity.OrgID = i.ID, i.Name, i.OrgID
	m.Identity.HasDeleteProtection, m.Identity.AuthMethods = i.HasDeleteProtection, methodsOf(i)
	m.Identity.ActiveLockoutAuthMethods = []string{}
	return m
}

// readMetadata reads the metadata field: an array of {key, value}.
func (f *fields) metadata() (*[]gatehouse.Metadata, bool) {
	var md []gatehouse.Metadata
	present := f.Objects("metadata", 0, func(path []any, obj map[string]any) {
		kv, kp := obj["key"]
		vv, vp := obj["value"]
		key, ok1 := f.stringAt(append(path, "key"), kv, kp, true, 1)
		value, ok2 := f.stringAt(append(path, "value"), vv, vp, true, 1)
		if ok1 && ok2 {
			md = append(md, gatehouse.Metadata{Key: key, Value: value})
		}
	})
	if !present {
		return nil, false
	}
	if md == nil {
		md = []gatehouse.Metadata{}
	}
	return &md, true
}

func (s *Server) createIdentity(w http.ResponseWriter, r *http.Request, p principal) {
	f, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	in := identity.NewIdentity{}
	in.Name, _ = f.String("name", true, 0)
	in.OrganizationID, _ = f.String("organizationId", true, 0)
	role, ok := f.String("role", false, 1)
	if !ok {
		role = string(gatehouse.RoleNoAccess)
	}
	in.Role = gatehouse.Role(role)
	in.HasDeleteProtection, _ = f.Bool("hasDeleteProtection", false)
	if md, ok := f.metadata(); ok {
		in.Metadata = *md
	}
	if err := f.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	i, err := s.cfg.Identities.Create(r.Context(), p.actor, in)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"identity": identityOf(i)})
}

func (s *Server) listIdentities(w http.ResponseWriter, r *http.Request, p principal) {
	orgID := r.URL.Query().Get("orgId")
	if orgID == "" {
		s.writeError(w, r, gatehouse.ValidationError(gatehouse.Issue{Code: "invalid_type", Expected: "string", Received: "undefined",
			Path: []any{"orgId"}, Message: "Required"}))
		return
	}
	list, err := s.cfg.Identities.List(r.Context(), p.actor, orgID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]membershipJSON, 0, len(list))
	for _, i := range list {
		out = append(out, membershipOf(i, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"identities": out, "totalCount": len(out)})
}

func (s *Server) getIdentity(w http.ResponseWriter, r *http.Request, p principal, id string) {
	i, err := s.cfg.Identities.Get(r.Context(), p.actor, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"identity": membershipOf(i, true)})
}

func (s *Server) updateIdentity(w http.ResponseWriter, r *http.Request, p principal, id string) {
	f, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var u gatehouse.IdentityUpdate
	if name, ok := f.String("name", false, 0); ok {
		u.Name = &name
	}
	if role, ok := f.String("role", false, 1); ok {
		u.Role = (*gatehouse.Role)(&role)
	}
	if hdp, ok := f.Bool("hasDeleteProtection", false); ok {
		u.HasDeleteProtection = &hdp
	}
	u.Metadata, _ = f.metadata()
	if err := f.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	i, err := s.cfg.Identities.Update(r.Context(), p.actor, id, u)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"identity": identityOf(i)})
}

func (s *Server) deleteIdentity(w http.ResponseWriter, r *http.Request, p principal, id string) {
	i, err := s.cfg.Identities.Delete(r.Context(), p.actor, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"identity": identityOf(i)})
}

// identityDetails answers from what authenticating the token already read:
// it is the cheapest authenticated request, the one clients probe with.
func (s *Server) identityDetails(w http.ResponseWriter, r *http.Request, p principal) {
	o := p.state.Organization
	var body identityDetailsJSON
	body.IdentityDetails.Organization.ID, body.IdentityDetails.Organization.Name = o.ID, o.Name
	body.IdentityDetails.Organization.Slug = o.Slug
	writeJSON(w, http.StatusOK, &body)
}

// identityDetailsJSON is the details answer; a struct rather than maps, as
// it is the hot path (the same bytes: fields in the order json sorts map keys).
type identityDetailsJSON struct {
	IdentityDetails struct {
		Organization struct {
			ID   string `json:"id"`
			Name string `json:"name"`
			Slug string `json:"slug"`
		} `json:"organization"`
	} `json:"identityDetails"`
}
