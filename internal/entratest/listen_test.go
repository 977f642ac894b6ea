package entratest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestNewServerOn(t *testing.T) {
	s, err := NewServerOn("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || strings.HasSuffix(s.URL(), ":0") {
		t.Fatalf("URL %q", s.URL())
	}
	resp, err := http.Get(s.URL() + "/" + DefaultTenant + "/discovery/keys")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), s.KeyID()) || s.Requests() != 1 {
		t.Fatalf("keys: %d %s; %d requests counted", resp.StatusCode, body, s.Requests())
	}
	// The discovery document names the address listened on.
	resp, err = http.Get(s.URL() + "/" + DefaultTenant + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"jwks_uri":"`+s.URL()+"/") {
		t.Errorf("discovery document does not point at %s: %s", s.URL(), body)
	}
	if _, err := NewServerOn(strings.TrimPrefix(s.URL(), "http://")); err == nil {
		t.Error("a second server on the same address started")
	}
}
