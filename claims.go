package gatehouse

// AuthTokenTypeIdentity is the authTokenType of an identity access token.
const AuthTokenTypeIdentity = "identityAccessToken"

// AccessTokenClaims are the claims of a Gatehouse access token: Infisical's
// current identity-token claims, plus authMethodId, which ties a token to the
// attachment of the method that issued it.
type AccessTokenClaims struct {
	IdentityID            string         `json:"identityId"`
	IdentityName          string         `json:"identityName"`
	AuthMethod            AuthMethod     `json:"authMethod"`
	AuthMethodID          string         `json:"authMethodId"`
	OrgID                 string         `json:"orgId"`
	RootOrgID             string         `json:"rootOrgId"`
	ParentOrgID           string         `json:"parentOrgId"`
	ClientSecretID        string         `json:"clientSecretId"`
	IdentityAccessTokenID string         `json:"identityAccessTokenId"`
	IPRestrictionEnabled  bool           `json:"ipRestrictionEnabled"`
	AccessTokenTTL        int64          `json:"accessTokenTTL"`
	AccessTokenMaxTTL     int64          `json:"accessTokenMaxTTL"`
	AccessTokenPeriod     int64          `json:"accessTokenPeriod"`
	CreationEpoch         int64          `json:"creationEpoch"`
	AuthTokenType         string         `json:"authTokenType"`
	IdentityAuth          map[string]any `json:"identityAuth"`
	NumUsesLimit          int64          `json:"numUsesLimit,omitempty"`
	IssuedAt              int64          `json:"iat"`
	ExpiresAt             int64          `json:"exp"`
	ID                    string         `json:"jti"`
}

// TokenState is what the database says about a token at the moment it is
// used: whether its identity still exists and in which organization, whether
// the attachment of the method that issued it is still the one it names, the
// method's current trusted IPs, and whether the token was revoked.
type TokenState struct {
	IdentityFound   bool
	OrgID           string
	Role            Role // the identity's current role
	IsInstanceAdmin bool
	Organization    Organization // ID, Name and Slug of the identity's organization
	BindingID       string       // "" when the method is no longer attached
	IPRestricted    bool
	TrustedIPs      []TrustedIP // filled only when IPRestricted
	Revoked         bool
}
