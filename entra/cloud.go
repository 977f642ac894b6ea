// Package entra verifies Microsoft Entra ID (Azure AD) access tokens: the
// tokens that Azure managed identities and service principals obtain from
// IMDS, App Service or the Entra token endpoint.
//
// A [Verifier] checks a token against one tenant and one expected audience
// (the resource the token was requested for). It fetches the tenant's signing
// keys from the cloud's authority host, caches them, refreshes them before
// they go stale and keeps using the last good set while Entra ID cannot be
// reached. It does not decide who may log in: the caller checks the returned
// [Claims] (tenant, object id, application id) against its own rules.
//
// # Clouds
//
// Each cloud has an authority host, from which keys are fetched, and a fixed
// set of issuers. A v1 token (ver "1.0") carries the v1 issuer, a v2 token
// (ver "2.0") one of the v2 issuers; {tid} is the tenant id.
//
//	name          authority host                      v1 iss                               v2 iss
//	public        https://login.microsoftonline.com   https://sts.windows.net/{tid}/       https://login.microsoftonline.com/{tid}/v2.0
//	usgovernment  https://login.microsoftonline.us    https://sts.windows.net/{tid}/       https://login.microsoftonline.us/{tid}/v2.0
//	china         https://login.chinacloudapi.cn      https://sts.chinacloudapi.cn/{tid}/  https://login.chinacloudapi.cn/{tid}/v2.0
//	                                                                                       https://login.partner.microsoftonline.cn/{tid}/v2.0
//
// The accepted issuers belong to the cloud, never to [Config.AuthorityHost]:
// pointing the verifier at a mirror or a test double changes where keys come
// from, not which tokens are accepted.
package entra

import (
	"slices"
	"strings"

	"github.com/gatehouse/gatehouse"
)

// TenantPlaceholder stands for the tenant id in a Cloud's issuer templates.
const TenantPlaceholder = "{tenantid}"

// Cloud is an Entra ID national cloud: where its keys are served and which
// issuers its tokens carry.
type Cloud struct {
	Name          string
	AuthorityHost string // e.g. https://login.microsoftonline.com, no trailing slash
	// V1Issuer and V2Issuers are issuer templates in which TenantPlaceholder
	// stands for the tenant id. V1Issuer is the one named in error messages.
	V1Issuer  string
	V2Issuers []string
}

var clouds = []Cloud{
	{
		Name:          "public",
		AuthorityHost: "https://login.microsoftonline.com",
		V1Issuer:      "https://sts.windows.net/{tenantid}/",
		V2Issuers:     []string{"https://login.microsoftonline.com/{tenantid}/v2.0"},
	},
	{
		Name:          "usgovernment",
		AuthorityHost: "https://login.microsoftonline.us",
		V1Issuer:      "https://sts.windows.net/{tenantid}/",
		V2Issuers:     []string{"https://login.microsoftonline.us/{tenantid}/v2.0"},
	},
	{
		Name:          "china",
		AuthorityHost: "https://login.chinacloudapi.cn",
		V1Issuer:      "https://sts.chinacloudapi.cn/{tenantid}/",
		V2Issuers: []string{
			"https://login.chinacloudapi.cn/{tenantid}/v2.0",
			"https://login.partner.microsoftonline.cn/{tenantid}/v2.0",
		},
	},
}

// CloudByName returns the cloud called name: "public" (also ""),
// "usgovernment" or "china". Any other name is a KindInvalid error.
func CloudByName(name string) (Cloud, error) {
	if name == "" {
		name = "public"
	}
	for _, c := range clouds {
		if c.Name == name {
			c.V2Issuers = slices.Clone(c.V2Issuers)
			return c, nil
		}
	}
	return Cloud{}, gatehouse.Errorf(gatehouse.KindInvalid, "Unknown Azure cloud %q: expected public, usgovernment or china", name)
}

// Issuers returns the iss values accepted for tokens of tenantID: the v1
// issuer first, then the v2 issuers.
func (c Cloud) Issuers(tenantID string) []string {
	out := make([]string, 0, 1+len(c.V2Issuers))
	out = append(out, strings.ReplaceAll(c.V1Issuer, TenantPlaceholder, tenantID))
	for _, t := range c.V2Issuers {
		out = append(out, strings.ReplaceAll(t, TenantPlaceholder, tenantID))
	}
	return out
}

// acceptsIssuer reports whether iss is one of c.Issuers(tenantID), without
// allocating.
func (c Cloud) acceptsIssuer(iss, tenantID string) bool {
	if matchTemplate(c.V1Issuer, iss, tenantID) {
		return true
	}
	for _, t := range c.V2Issuers {
		if matchTemplate(t, iss, tenantID) {
			return true
		}
	}
	return false
}

func matchTemplate(template, s, tenantID string) bool {
	prefix, suffix, ok := strings.Cut(template, TenantPlaceholder)
	if !ok {
		return s == template
	}
	return len(s) == len(prefix)+len(tenantID)+len(suffix) &&
		strings.HasPrefix(s, prefix) && strings.HasSuffix(s, suffix) &&
		s[len(prefix):len(prefix)+len(tenantID)] == tenantID
}
