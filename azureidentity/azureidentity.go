// Package azureidentity gets an Entra ID access token for the Azure managed
// identity of the machine it runs on: from the Instance Metadata Service
// (IMDS) on VMs, scale sets, AKS nodes and container instances, or from the
// identity endpoint of App Service and Functions. `gatehouse login azure`
// sends that token to Gatehouse.
package azureidentity

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/gatehouse/gatehouse"
)

const (
	// DefaultEndpoint is the IMDS token endpoint.
	DefaultEndpoint = "http://169.254.169.254/metadata/identity/oauth2/token"
	// DefaultResource is the resource asked for when none is given: Azure
	// Resource Manager in the public cloud, the audience Infisical's clients
	// use by default.
	DefaultResource = "https://management.azure.com/"

	imdsAPIVersion       = "2018-02-01"
	appServiceAPIVersion = "2019-08-01"
	maxResponseSize      = 1 << 20
	defaultTimeout       = 30 * time.Second
)

// Source gets managed-identity tokens. The zero Source asks IMDS for the
// system-assigned identity, or the App Service endpoint when the environment
// names one.
type Source struct {
	// Endpoint is the IMDS token endpoint; "" means DefaultEndpoint, unless
	// IDENTITY_ENDPOINT and IDENTITY_HEADER are both set (App Service,
	// Functions), in which case those are used. A non-empty Endpoint is
	// always used, as IMDS.
	Endpoint string
	// ClientID selects a user-assigned identity by its client id; "" means
	// the system-assigned identity.
	ClientID string
	// HTTPClient sends the request; nil means a client with a 30 s timeout
	// that ignores proxy settings (IMDS and the App Service endpoint are
	// local addresses that a proxy cannot reach).
	HTTPClient *http.Client
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

var defaultClient = &http.Client{
	Timeout:   defaultTimeout,
	Transport: &http.Transport{Proxy: nil, MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second},
}

// Token returns an access token for resource ("" means DefaultResource).
//
// Token makes one request; it does not retry. Errors are *gatehouse.Error
// values that name the endpoint and, when it answered, its HTTP status and
// error message (never a token): KindUnavailable when the endpoint cannot be
// reached, sends no token or answers with a status worth retrying later
// (404, 408, 410, 429, 5xx), KindInvalid for other answers, such as 400 for
// an unknown client id or resource.
func (s Source) Token(ctx context.Context, resource string) (string, error) {
	if resource == "" {
		resource = DefaultResource
	}
	getenv := s.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	endpoint, apiVersion, header, headerValue, name := s.Endpoint, imdsAPIVersion, "Metadata", "true", "IMDS"
	if endpoint == "" {
		endpoint = DefaultEndpoint
		if e, h := getenv("IDENTITY_ENDPOINT"), getenv("IDENTITY_HEADER"); e != "" && h != "" {
			endpoint, apiVersion, header, headerValue, name = e, appServiceAPIVersion, "X-IDENTITY-HEADER", h, "App Service identity endpoint"
		}
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", gatehouse.Errorf(gatehouse.KindInvalid, "azureidentity: %s URL %q is not an http(s) URL", name, endpoint)
	}
	q := u.Query()
	q.Set("api-version", apiVersion)
	q.Set("resource", resource)
	if s.ClientID != "" {
		q.Set("client_id", s.ClientID)
	}
	u.RawQuery = q.Encode()
	where := name + " " + u.Scheme + "://" + u.Host + u.Path

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", gatehouse.Wrap(gatehouse.KindInvalid, err, "azureidentity: building request to "+where)
	}
	req.Header.Set(header, headerValue)
	req.Header.Set("Accept", "application/json")
	client := s.HTTPClient
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", gatehouse.Wrap(gatehouse.KindUnavailable, err, "azureidentity: cannot reach "+where)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return "", gatehouse.Wrap(gatehouse.KindUnavailable, err, "azureidentity: reading the answer of "+where)
	}
	if resp.StatusCode != http.StatusOK {
		kind := gatehouse.KindInvalid
		if transient(resp.StatusCode) {
			kind = gatehouse.KindUnavailable
		}
		msg := fmt.Sprintf("azureidentity: %s answered %s", where, resp.Status)
		if detail := errorDetail(body); detail != "" {
			msg += ": " + detail
		}
		return "", gatehouse.Errorf(kind, "%s", msg)
	}
	var ok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &ok); err != nil || ok.AccessToken == "" {
		return "", gatehouse.Errorf(gatehouse.KindUnavailable, "azureidentity: %s answered 200 without an access_token", where)
	}
	return ok.AccessToken, nil
}

// transient reports whether an answer with this status may succeed if
// retried later, as Azure's SDKs judge for IMDS: 404 and 410 while the
// identity or IMDS itself is being set up, 408, 429 and server errors.
func transient(status int) bool {
	switch status {
	case http.StatusNotFound, http.StatusRequestTimeout, http.StatusGone, http.StatusTooManyRequests:
		return true
	}
	return status >= 500 || status < 400
}

// errorDetail extracts the message of an error answer: IMDS's
// error/error_description, App Service's message, or else the start of the
// body as text.
func errorDetail(body []byte) string {
	var e struct {
		Error       any    `json:"error"`
		Description string `json:"error_description"`
		Message     string `json:"message"`
	}
	var detail string
	if json.Unmarshal(body, &e) == nil {
		code, _ := e.Error.(string)
		if m, ok := e.Error.(map[string]any); ok { // {"error":{"code":..,"message":..}}
			code, _ = m["code"].(string)
			e.Message, _ = m["message"].(string)
		}
		switch {
		case code != "" && e.Description != "":
			detail = code + ": " + e.Description
		case e.Description != "":
			detail = e.Description
		case code != "" && e.Message != "":
			detail = code + ": " + e.Message
		case e.Message != "":
			detail = e.Message
		default:
			detail = code
		}
	} else {
		detail = string(body)
	}
	detail = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(detail))
	if len(detail) > 300 {
		detail = strings.ToValidUTF8(detail[:300], "") + "…"
	}
	return detail
}
