package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/azureidentity"
	"github.com/gatehouse/gatehouse/store"
)

func storeOptions(pool int, timeout time.Duration) store.Options {
	return store.Options{MaxOpenConns: pool, QueryTimeout: timeout}
}

// apiError is an error answer of a Gatehouse (or Infisical) server.
type apiError struct {
	Status  int
	Message string
	ReqID   string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("server answered %d: %s (reqId %s)", e.Status, e.Message, e.ReqID)
}

// postJSON posts body to base+path and decodes a 200 answer into out.
func postJSON(ctx context.Context, client *http.Client, base, path string, body, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message any    `json:"message"`
			ReqID   string `json:"reqId"`
		}
		json.Unmarshal(data, &e)
		msg, ok := e.Message.(string)
		if !ok {
			m, _ := json.Marshal(e.Message)
			msg = string(m)
		}
		return &apiError{Status: resp.StatusCode, Message: msg, ReqID: e.ReqID}
	}
	return json.Unmarshal(data, out)
}

func bootstrapCmd(args []string, stdout, stderr io.Writer) error {
	fs := flagSet("bootstrap", stderr)
	addr := fs.String("addr", envOr("GATEHOUSE_URL", "http://127.0.0.1:8080"), "the server's URL (GATEHOUSE_URL)")
	email := fs.String("email", envOr("GATEHOUSE_ADMIN_EMAIL", ""), "the admin user's email (GATEHOUSE_ADMIN_EMAIL)")
	password := fs.String("password", envOr("GATEHOUSE_ADMIN_PASSWORD", ""), "the admin user's password (GATEHOUSE_ADMIN_PASSWORD)")
	org := fs.String("organization", envOr("GATEHOUSE_ADMIN_ORGANIZATION", ""), "the organization's name (GATEHOUSE_ADMIN_ORGANIZATION)")
	output := fs.String("output", "token", "what to print: token, or json for the whole response")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *email == "" || *password == "" || *org == "" {
		return usageError{"bootstrap needs --email, --password and --organization"}
	}
	if *output != "token" && *output != "json" {
		return usageError{"--output: token or json"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var resp map[string]any
	if err := postJSON(ctx, &http.Client{Timeout: 30 * time.Second}, *addr, "/api/v1/admin/bootstrap",
		map[string]string{"email": *email, "password": *password, "organization": *org}, &resp); err != nil {
		return err
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(resp)
	}
	tok, _ := resp["identity"].(map[string]any)["credentials"].(map[string]any)["token"].(string)
	fmt.Fprintln(stdout, tok)
	return nil
}

func loginAzure(args []string, stdout, stderr io.Writer) error {
	fs := flagSet("login azure", stderr)
	addr := fs.String("addr", envOr("GATEHOUSE_URL", "http://127.0.0.1:8080"), "the server's URL (GATEHOUSE_URL)")
	identityID := fs.String("identity-id", envOr("GATEHOUSE_IDENTITY_ID", ""), "the machine identity to log in as (GATEHOUSE_IDENTITY_ID)")
	resource := fs.String("resource", envOr("GATEHOUSE_AZURE_RESOURCE", "https://management.azure.com/"), "the audience to ask Entra ID for: the resource configured in Azure Auth (GATEHOUSE_AZURE_RESOURCE)")
	clientID := fs.String("client-id", envOr("AZURE_CLIENT_ID", ""), "client id of a user-assigned managed identity (AZURE_CLIENT_ID)")
	orgSlug := fs.String("organization-slug", envOr("GATEHOUSE_ORGANIZATION_SLUG", ""), "the organization to log in to (GATEHOUSE_ORGANIZATION_SLUG)")
	imds := fs.String("imds-endpoint", "", "the managed identity token endpoint; default: App Service's IDENTITY_ENDPOINT when set, else the Azure Instance Metadata Service")
	plain := fs.Bool("plain", false, "print only the access token")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *identityID == "" {
		return usageError{"login azure needs --identity-id"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := azureidentity.Source{Endpoint: *imds, ClientID: *clientID}
	jwt, err := src.Token(ctx, *resource)
	if err != nil {
		return fmt.Errorf("getting an Entra ID token: %w", err)
	}
	body := map[string]string{"identityId": *identityID, "jwt": jwt}
	if *orgSlug != "" {
		body["organizationSlug"] = *orgSlug
	}
	var resp struct {
		AccessToken       string `json:"accessToken"`
		ExpiresIn         int64  `json:"expiresIn"`
		AccessTokenMaxTTL int64  `json:"accessTokenMaxTTL"`
		TokenType         string `json:"tokenType"`
	}
	if err := postJSON(ctx, &http.Client{Timeout: 30 * time.Second}, *addr, "/api/v1/auth/azure-auth/login", body, &resp); err != nil {
		return err
	}
	if *plain {
		fmt.Fprintln(stdout, resp.AccessToken)
		return nil
	}
	fmt.Fprintf(stdout, "Logged in as identity %s.\nAccess token (expires in %ds, renewable for %ds):\n%s\n",
		*identityID, resp.ExpiresIn, resp.AccessTokenMaxTTL, resp.AccessToken)
	return nil
}
