package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apitest"
	"github.com/gatehouse/gatehouse/internal/entratest"
)

// The CLI's bootstrap and login commands, run as a user would (through run,
// the body of main) against a real server, with a fake IMDS and App Service
// identity endpoint standing in for the Azure machine.

// cliEnv lists the environment variables the CLI reads; every test starts
// with them empty so that the machine running the tests cannot change the
// outcome.
var cliEnv = []string{
	"GATEHOUSE_URL", "GATEHOUSE_IDENTITY_ID", "GATEHOUSE_AZURE_RESOURCE", "GATEHOUSE_ORGANIZATION_SLUG",
	"GATEHOUSE_ADMIN_EMAIL", "GATEHOUSE_ADMIN_PASSWORD", "GATEHOUSE_ADMIN_ORGANIZATION",
	"AZURE_CLIENT_ID", "IDENTITY_ENDPOINT", "IDENTITY_HEADER",
}

func clearCLIEnv(t *testing.T) {
	for _, k := range cliEnv {
		t.Setenv(k, "")
	}
}

// cli runs the command line args and returns its exit code and output.
func cli(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// expectExit fails the test unless the command exited with want.
func expectExit(t *testing.T, want, code int, stdout, stderr string) {
	t.Helper()
	if code != want {
		t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, want, stdout, stderr)
	}
}

// syncClock moves the server's clock to the real time: the fake IMDS mints
// tokens at the real time, and the test server's clock otherwise stands
// still.
func syncClock(s *apitest.Server) {
	if d := time.Since(s.Clock.Now()); d > 0 {
		s.Clock.Advance(d)
	}
}

func TestCLIBootstrap(t *testing.T) {
	clearCLIEnv(t)
	creds := []string{"--email", "admin@example.com", "--password", "correct horse", "--organization", "Acme"}

	t.Run("token", func(t *testing.T) {
		s := apitest.Start(t, apitest.SQLite)
		code, stdout, stderr := cli(append([]string{"bootstrap", "--addr", s.URL}, creds...)...)
		expectExit(t, 0, code, stdout, stderr)
		tok := strings.TrimSuffix(stdout, "\n")
		if tok == "" || strings.ContainsAny(tok, " \n") {
			t.Fatalf("stdout %q, want the token alone on a line", stdout)
		}
		s.Get("/api/v1/identities/details", tok).Expect(t, http.StatusOK)

		// A second bootstrap is refused with the server's message.
		code, stdout, stderr = cli(append([]string{"bootstrap", "--addr", s.URL}, creds...)...)
		expectExit(t, 1, code, stdout, stderr)
		if stdout != "" || !strings.Contains(stderr, "400") || !strings.Contains(stderr, "Instance has already been set up") {
			t.Errorf("second bootstrap: stdout %q, stderr %q", stdout, stderr)
		}
	})

	t.Run("json", func(t *testing.T) {
		s := apitest.Start(t, apitest.SQLite)
		// The flags fall back to the environment.
		t.Setenv("GATEHOUSE_URL", s.URL)
		t.Setenv("GATEHOUSE_ADMIN_EMAIL", "ops@example.com")
		t.Setenv("GATEHOUSE_ADMIN_PASSWORD", "correct horse")
		t.Setenv("GATEHOUSE_ADMIN_ORGANIZATION", "Acme Ops")
		code, stdout, stderr := cli("bootstrap", "--output", "json")
		expectExit(t, 0, code, stdout, stderr)
		var resp struct {
			Message      string
			User         struct{ Email string }
			Organization struct{ ID, Name, Slug string }
			Identity     struct {
				ID          string
				Credentials struct{ Token string }
			}
		}
		if err := json.Unmarshal([]byte(stdout), &resp); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
		}
		if resp.Message != "Successfully bootstrapped instance" || resp.User.Email != "ops@example.com" ||
			resp.Organization.Name != "Acme Ops" || resp.Organization.ID == "" || resp.Identity.ID == "" {
			t.Errorf("bootstrap response %s", stdout)
		}
		d := s.Get("/api/v1/identities/details", resp.Identity.Credentials.Token).Expect(t, http.StatusOK)
		if got := d.String("identityDetails", "organization", "id"); got != resp.Organization.ID {
			t.Errorf("the token's organization %q, want %q", got, resp.Organization.ID)
		}
	})

	t.Run("unreachable server", func(t *testing.T) {
		code, stdout, stderr := cli(append([]string{"bootstrap", "--addr", "http://127.0.0.1:1"}, creds...)...)
		expectExit(t, 1, code, stdout, stderr)
		if stdout != "" || !strings.HasPrefix(stderr, "gatehouse: ") {
			t.Errorf("stdout %q, stderr %q", stdout, stderr)
		}
	})
}

func TestCLILoginAzure(t *testing.T) {
	clearCLIEnv(t)
	s := apitest.Start(t, apitest.SQLite)
	admin := s.Bootstrap()
	imds := entratest.NewIMDS(t, s.Entra, entratest.DefaultTenant)
	const (
		uamiClientID = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
		uamiOID      = "8b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e"
	)
	imds.AddIdentity(uamiClientID, uamiOID)

	newIdentity := func(fields map[string]any) string {
		id := s.CreateIdentity(admin.Token, admin.OrgID, "cli-"+time.Now().Format("150405.000000000"), "member")
		s.AttachAzure(admin.Token, id, fields)
		return id
	}
	login := func(args ...string) (int, string, string) {
		syncClock(s)
		return cli(append([]string{"login", "azure", "--addr", s.URL}, args...)...)
	}
	// expectRefused checks a login that the server refuses: exit code 1,
	// nothing on stdout, and the server's status and message on stderr.
	expectRefused := func(t *testing.T, status, message string, code int, stdout, stderr string) {
		t.Helper()
		expectExit(t, 1, code, stdout, stderr)
		if stdout != "" || !strings.Contains(stderr, status) || !strings.Contains(stderr, message) {
			t.Errorf("stdout %q, stderr %q; want %s %q", stdout, stderr, status, message)
		}
	}

	t.Run("plain", func(t *testing.T) {
		id := newIdentity(nil)
		code, stdout, stderr := login("--identity-id", id, "--imds-endpoint", imds.Endpoint(), "--plain")
		expectExit(t, 0, code, stdout, stderr)
		tok := strings.TrimSuffix(stdout, "\n")
		if tok == "" || strings.ContainsAny(tok, " \n") || stderr != "" {
			t.Fatalf("stdout %q, stderr %q; want the token alone", stdout, stderr)
		}
		d := s.Get("/api/v1/identities/details", tok).Expect(t, http.StatusOK)
		if got := d.String("identityDetails", "organization", "id"); got != admin.OrgID {
			t.Errorf("the token's organization %q, want %q", got, admin.OrgID)
		}
	})

	t.Run("human", func(t *testing.T) {
		id := newIdentity(map[string]any{"accessTokenTTL": 3600, "accessTokenMaxTTL": 7200})
		code, stdout, stderr := login("--identity-id", id, "--imds-endpoint", imds.Endpoint())
		expectExit(t, 0, code, stdout, stderr)
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		tok := lines[len(lines)-1]
		if len(lines) < 2 || !strings.Contains(stdout, "Logged in as identity "+id) || !strings.Contains(stdout, "3600") {
			t.Errorf("stdout %q, want a message naming the identity and the TTL, then the token", stdout)
		}
		s.Get("/api/v1/identities/details", tok).Expect(t, http.StatusOK)
	})

	t.Run("user-assigned identity", func(t *testing.T) {
		id := newIdentity(map[string]any{"allowedServicePrincipalIds": uamiOID})
		code, stdout, stderr := login("--identity-id", id, "--imds-endpoint", imds.Endpoint(), "--client-id", uamiClientID, "--plain")
		expectExit(t, 0, code, stdout, stderr)
		s.Get("/api/v1/identities/details", strings.TrimSpace(stdout)).Expect(t, http.StatusOK)

		// AZURE_CLIENT_ID stands for --client-id.
		t.Setenv("AZURE_CLIENT_ID", uamiClientID)
		code, stdout, stderr = login("--identity-id", id, "--imds-endpoint", imds.Endpoint(), "--plain")
		expectExit(t, 0, code, stdout, stderr)
		t.Setenv("AZURE_CLIENT_ID", "")

		// The system-assigned identity is not on the list.
		code, stdout, stderr = login("--identity-id", id, "--imds-endpoint", imds.Endpoint(), "--plain")
		expectRefused(t, "401", "Service principal '"+entratest.DefaultObjectID+"' not allowed", code, stdout, stderr)

		// Nor is the user-assigned one, once the list names another.
		s.Patch("/api/v1/auth/azure-auth/identities/"+id, admin.Token, map[string]any{"allowedServicePrincipalIds": entratest.DefaultObjectID}).
			Expect(t, http.StatusOK)
		code, stdout, stderr = login("--identity-id", id, "--imds-endpoint", imds.Endpoint(), "--client-id", uamiClientID, "--plain")
		expectRefused(t, "401", "Service principal '"+uamiOID+"' not allowed", code, stdout, stderr)

		// An identity the machine does not have: IMDS refuses, the server
		// is not asked.
		code, stdout, stderr = login("--identity-id", id, "--imds-endpoint", imds.Endpoint(), "--client-id", "00000000-0000-4000-8000-000000000000")
		expectRefused(t, "400", "Identity not found", code, stdout, stderr)
	})

	t.Run("App Service", func(t *testing.T) {
		id := newIdentity(nil)
		t.Setenv("IDENTITY_ENDPOINT", imds.IdentityEndpoint())
		t.Setenv("IDENTITY_HEADER", imds.IdentityHeader())
		before := imds.Requests()
		code, stdout, stderr := login("--identity-id", id, "--plain")
		expectExit(t, 0, code, stdout, stderr)
		s.Get("/api/v1/identities/details", strings.TrimSpace(stdout)).Expect(t, http.StatusOK)
		if imds.Requests() != before+1 {
			t.Errorf("%d token requests to the identity endpoint, want 1", imds.Requests()-before)
		}

		t.Setenv("IDENTITY_HEADER", "wrong")
		code, stdout, stderr = login("--identity-id", id, "--plain")
		expectRefused(t, "401", "X-IDENTITY-HEADER", code, stdout, stderr)
	})

	t.Run("environment and flags", func(t *testing.T) {
		const app = "api://gatehouse-test"
		id := newIdentity(map[string]any{"resource": app})
		// The default resource is ARM's, which this identity does not accept.
		code, stdout, stderr := login("--identity-id", id, "--imds-endpoint", imds.Endpoint())
		expectRefused(t, "403", "jwt audience invalid. expected: "+app, code, stdout, stderr)

		code, stdout, stderr = login("--identity-id", id, "--imds-endpoint", imds.Endpoint(), "--resource", app, "--organization-slug", admin.OrgSlug, "--plain")
		expectExit(t, 0, code, stdout, stderr)

		t.Setenv("GATEHOUSE_URL", s.URL)
		t.Setenv("GATEHOUSE_IDENTITY_ID", id)
		t.Setenv("GATEHOUSE_AZURE_RESOURCE", app)
		syncClock(s)
		code, stdout, stderr = cli("login", "azure", "--imds-endpoint", imds.Endpoint(), "--plain")
		expectExit(t, 0, code, stdout, stderr)
		s.Get("/api/v1/identities/details", strings.TrimSpace(stdout)).Expect(t, http.StatusOK)

		t.Setenv("GATEHOUSE_ORGANIZATION_SLUG", "nope")
		code, stdout, stderr = login("--imds-endpoint", imds.Endpoint(), "--plain")
		expectRefused(t, "404", "Sub organization with slug nope not found", code, stdout, stderr)
	})

	t.Run("no Azure Auth", func(t *testing.T) {
		id := s.CreateIdentity(admin.Token, admin.OrgID, "cli-plain", "member")
		code, stdout, stderr := login("--identity-id", id, "--imds-endpoint", imds.Endpoint())
		expectRefused(t, "404", "Azure auth method not found for identity, did you configure Azure Auth?", code, stdout, stderr)
	})
}

func TestCLIUsage(t *testing.T) {
	clearCLIEnv(t)
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"login"},
		{"login", "gcp"},
		{"login", "azure"}, // no --identity-id
		{"login", "azure", "--identity-id", "x", "--nope"},
		{"login", "azure", "--identity-id", "x", "stray"},
		{"bootstrap"},
		{"bootstrap", "--email", "a@example.com", "--password", "p"}, // no --organization
		{"bootstrap", "--email", "a@example.com", "--password", "p", "--organization", "o", "--output", "yaml"},
		{"serve", "--tls-cert", "cert.pem"},
	} {
		code, stdout, stderr := cli(args...)
		if code != 2 || stdout != "" || stderr == "" {
			t.Errorf("gatehouse %s: exit code %d, stdout %q, stderr %q; want 2 and a message on stderr",
				strings.Join(args, " "), code, stdout, stderr)
		}
	}
	for _, args := range [][]string{{"help"}, {"login", "azure", "-h"}, {"version"}} {
		if code, stdout, stderr := cli(args...); code != 0 {
			t.Errorf("gatehouse %s: exit code %d, stdout %q, stderr %q; want 0", strings.Join(args, " "), code, stdout, stderr)
		}
	}
}
