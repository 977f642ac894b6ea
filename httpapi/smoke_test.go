package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apitest"
	"github.com/gatehouse/gatehouse/internal/entratest"
)

// TestWalkthrough follows the README: bootstrap, create an identity, attach
// Azure Auth, log in with an Entra ID token, use the access token.
func TestWalkthrough(t *testing.T) {
	apitest.Run(t, func(t *testing.T, db apitest.DB) {
		s := apitest.Start(t, db)
		admin := s.Bootstrap()
		id := s.CreateIdentity(admin.Token, admin.OrgID, "web", "member")
		a := s.AttachAzure(admin.Token, id, nil)
		if got := a.Number("identityAzureAuth", "accessTokenTTL"); got != 2592000 {
			t.Errorf("accessTokenTTL %v, want 2592000", got)
		}
		login := s.AzureLogin(id, entratest.TokenOptions{}).Expect(t, http.StatusOK)
		tok := login.String("accessToken")
		d := s.Get("/api/v1/identities/details", tok).Expect(t, http.StatusOK)
		if d.String("identityDetails", "organization", "id") != admin.OrgID {
			t.Errorf("details %s", d.Raw)
		}
		g := s.Get("/api/v1/identities/"+id, admin.Token).Expect(t, http.StatusOK)
		if g.String("identity", "lastLoginAuthMethod") != "azure-auth" {
			t.Errorf("lastLoginAuthMethod not recorded: %s", g.Raw)
		}
	})
}
