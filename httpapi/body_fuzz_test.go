package httpapi

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/azureauth"
)

// checkClientError fails unless err is a *gatehouse.Error whose kind is
// answered with a 4xx, in Infisical's shape.
func checkClientError(t *testing.T, err error) {
	t.Helper()
	var e *gatehouse.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *gatehouse.Error", err, err)
	}
	ks, ok := kindStatus[e.Kind]
	if !ok || ks.status < 400 || ks.status > 499 {
		t.Fatalf("error %q has kind %v: status %d, want a 4xx", e.Message, e.Kind, ks.status)
	}
	if e.Message == "" {
		t.Fatalf("error of kind %v without a message", e.Kind)
	}
	if e.Kind == gatehouse.KindValidation {
		if len(e.Issues) == 0 {
			t.Fatal("validation error without issues")
		}
		for _, is := range e.Issues {
			if is.Code == "" || is.Message == "" || is.Path == nil {
				t.Fatalf("incomplete issue %+v", is)
			}
		}
	}
}

func checkConfigString(t *testing.T, name, s string) {
	t.Helper()
	limit, normal := maxConfigString, strings.TrimSpace(s)
	if name == "allowedServicePrincipalIds" {
		limit *= 2 // normalising turns each "," into ", "
		normal = azureauth.NormalizePrincipalIDs(s)
	}
	if len(s) > limit || s != normal || strings.IndexByte(s, 0) >= 0 {
		t.Fatalf("%s %q: not normalised, too long or with NUL", name, s)
	}
}

func checkPolicyValue(t *testing.T, name string, v *int64, max int64) {
	t.Helper()
	if v != nil && (*v < 0 || *v > max) {
		t.Fatalf("%s %d out of [0, %d]", name, *v, max)
	}
}

// checkTrustedIPs fails unless every entry is in its stored form: parsing
// it again gives it back.
func checkTrustedIPs(t *testing.T, ips []gatehouse.TrustedIP) {
	t.Helper()
	if len(ips) == 0 {
		t.Fatal("no trusted IPs")
	}
	for _, ip := range ips {
		s := ip.IPAddress
		if ip.Prefix != nil {
			s += "/" + strconv.Itoa(*ip.Prefix)
		}
		again, err := gatehouse.ParseTrustedIP(s)
		if err != nil || again.IPAddress != ip.IPAddress || again.Type != ip.Type || (again.Prefix == nil) != (ip.Prefix == nil) ||
			(ip.Prefix != nil && *again.Prefix != *ip.Prefix) {
			t.Fatalf("trusted IP %+v is not in stored form (re-parsed: %+v, %v)", ip, again, err)
		}
	}
}

// FuzzAttachBody feeds arbitrary bodies, JSON or form-encoded, through
// readBody and the attach and update decoding of Azure Auth: they never
// panic, and yield either values within the schema's rules or a 4xx error.
func FuzzAttachBody(f *testing.F) {
	const (
		js   = "application/json"
		form = "application/x-www-form-urlencoded"
	)
	seeds := []struct{ ct, body string }{
		{js, `{"tenantId":"<string>","resource":"<string>","allowedServicePrincipalIds":"","accessTokenTrustedIps":[{"ipAddress":"0.0.0.0/0"},{"ipAddress":"::/0"}],"accessTokenTTL":2592000,"accessTokenMaxTTL":2592000,"accessTokenNumUsesLimit":0}`},
		{js, `{"tenantId":"T","resource":"R"}`},
		{js, `{"tenantId":" T ","resource":"https://management.azure.com/","allowedServicePrincipalIds":" a , b,c "}`},
		{js, `{"tenantId":"T","resource":"R","allowedServicePrincipalIds":"a,,b"}`},
		{js, `{"tenantId":"T","resource":"R","allowedServicePrincipalIds":"a,"}`},
		{js, `{"tenantId":"T","resource":"R","accessTokenTTL":100,"accessTokenMaxTTL":50}`},
		{js, `{"tenantId":"T","resource":"R","accessTokenTTL":100,"accessTokenMaxTTL":0}`},
		{js, `{"tenantId":"T","resource":"R","accessTokenTTL":315360001}`},
		{js, `{"tenantId":"T","resource":"R","accessTokenTTL":1.5}`},
		{js, `{"tenantId":"T","resource":"R","accessTokenTTL":"100"}`},
		{js, `{"tenantId":"T","resource":"R","accessTokenTTL":1e400,"accessTokenMaxTTL":-1e400}`},
		{js, `{"tenantId":"T","resource":"R","accessTokenNumUsesLimit":-1}`},
		{js, `{"tenantId":"T","resource":"R","accessTokenTrustedIps":[]}`},
		{js, `{"tenantId":"T","resource":"R","accessTokenTrustedIps":[{"ipAddress":"10.1.2.3"},{"ipAddress":"10.1.2.3/8"},{"ipAddress":"2001:db8::1/129"}]}`},
		{js, `{"tenantId":"T","resource":"R","accessTokenTrustedIps":[{"ipAddress":"not-an-ip"},{},"x",null]}`},
		{js, `{"tenantId":"T","resource":"R","accessTokenPeriod":60}`},
		{js, `{"tenantId":"T\u0000","resource":null}`},
		{js, `{"resource":"x"}`},
		{js, `{"accessTokenMaxTTL":500}`},
		{js, `{}`},
		{js, `[]`},
		{js, `{"a":`},
		{js, `{}{}`},
		{js, ``},
		{"", `{"tenantId":"T","resource":"R"}`},
		{"application/json; charset=utf-8", `{"tenantId":"T","resource":"R"}`},
		{form, `tenantId=T&resource=R&allowedServicePrincipalIds=a+,b`},
		{form, `tenantId=T&resource=R&accessTokenTTL=100`},
		{form, `tenantId=%ff&resource=%00`},
		{form, `tenantId=%zz`},
		{"text/plain", `tenantId=T`},
		{"multipart/form-data; boundary=x", `--x--`},
		{";;", `{}`},
	}
	for _, s := range seeds {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		read := func() (*fields, error) {
			r := httptest.NewRequest("POST", "/api/v1/auth/azure-auth/identities/x", bytes.NewReader(body))
			if contentType != "" {
				r.Header.Set("Content-Type", contentType)
			}
			return readBody(r)
		}

		fa, err := read()
		if err != nil {
			checkClientError(t, err)
			return
		}
		cfg, policy, err := decodeAttach(fa)
		if err != nil {
			checkClientError(t, err)
		} else {
			checkConfigString(t, "tenantId", cfg.TenantID)
			checkConfigString(t, "resource", cfg.Resource)
			checkConfigString(t, "allowedServicePrincipalIds", cfg.AllowedServicePrincipalIDs)
			checkPolicyValue(t, "TTL", &policy.TTL, gatehouse.MaxPolicyTTL)
			checkPolicyValue(t, "MaxTTL", &policy.MaxTTL, gatehouse.MaxPolicyTTL)
			checkPolicyValue(t, "NumUsesLimit", &policy.NumUsesLimit, 1<<53-1)
			if policy.TTL > policy.MaxTTL {
				t.Fatalf("TTL %d above max TTL %d accepted on attach", policy.TTL, policy.MaxTTL)
			}
			if err := policy.CheckTTLs(); err != nil {
				t.Fatalf("accepted policy fails CheckTTLs: %v", err)
			}
			if policy.Period != 0 {
				t.Fatalf("attach set a period: %d", policy.Period)
			}
			checkTrustedIPs(t, policy.TrustedIPs)
		}

		fp, err := read()
		if err != nil {
			t.Fatalf("the body read once but not twice: %v", err)
		}
		p, err := decodePatch(fp)
		if err != nil {
			checkClientError(t, err)
			return
		}
		for name, v := range map[string]*string{"tenantId": p.TenantID, "resource": p.Resource, "allowedServicePrincipalIds": p.AllowedServicePrincipalIDs} {
			if v != nil {
				checkConfigString(t, name, *v)
			}
		}
		checkPolicyValue(t, "TTL", p.TTL, gatehouse.MaxPolicyTTL)
		checkPolicyValue(t, "MaxTTL", p.MaxTTL, gatehouse.MaxPolicyTTL)
		checkPolicyValue(t, "NumUsesLimit", p.NumUsesLimit, 1<<53-1)
		if p.TTL != nil && p.MaxTTL != nil && *p.TTL > 0 && *p.MaxTTL > 0 && *p.TTL > *p.MaxTTL {
			t.Fatalf("TTL %d above max TTL %d accepted on update", *p.TTL, *p.MaxTTL)
		}
		if p.TrustedIPs != nil {
			checkTrustedIPs(t, *p.TrustedIPs)
		}
	})
}
