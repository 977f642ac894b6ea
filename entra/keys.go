package entra

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"
)

const (
	maxJWKSSize = 1 << 20 // Microsoft's key sets are about 10 KiB
	minKeyBits  = 2048
)

// keySet is one fetched JWKS: the usable RSA keys by kid.
type keySet struct {
	keys    map[string]*rsa.PublicKey
	fetched time.Time // on the verifier's clock
}

type jwk struct {
	Kty string   `json:"kty"`
	Use string   `json:"use"`
	Kid string   `json:"kid"`
	N   string   `json:"n"`
	E   string   `json:"e"`
	X5c []string `json:"x5c"`
}

// keysURL is where a tenant's keys are fetched. It is the v1 endpoint, the
// one Infisical uses; Microsoft serves the same tenant keys at
// /discovery/v2.0/keys.
func keysURL(host, tenantID string) string {
	return host + "/" + tenantID + "/discovery/keys"
}

// fetchKeys downloads and parses a tenant's JWKS. Keys that are not usable
// RSA signing keys are skipped (and logged); a set with none is an error.
func (v *Verifier) fetchKeys(ctx context.Context, tenantID string) (map[string]*rsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	url := keysURL(v.host, tenantID)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "gatehouse")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if len(body) > maxJWKSSize {
		return nil, fmt.Errorf("GET %s: key set larger than %d bytes", url, maxJWKSSize)
	}
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	keys := make(map[string]*rsa.PublicKey, len(doc.Keys))
	for _, k := range doc.Keys {
		pub, err := k.rsaKey()
		if err != nil {
			v.log.Warn("entra: skipping signing key", "tenant", tenantID, "kid", k.Kid, "error", err)
			continue
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("GET %s: no usable RSA signing keys", url)
	}
	return keys, nil
}

// rsaKey returns the key's RSA public key: from the first x5c certificate
// when there is one (what Infisical uses), else from n and e. When both are
// present they must agree.
func (k jwk) rsaKey() (*rsa.PublicKey, error) {
	switch {
	case k.Kty != "RSA":
		return nil, fmt.Errorf("kty %q is not RSA", k.Kty)
	case k.Use != "" && k.Use != "sig":
		return nil, fmt.Errorf("use %q is not sig", k.Use)
	case k.Kid == "":
		return nil, errors.New("no kid")
	}
	var fromNE *rsa.PublicKey
	if k.N != "" || k.E != "" {
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad n or e")
		}
		fromNE = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	pub := fromNE
	if len(k.X5c) > 0 {
		der, err := base64.StdEncoding.DecodeString(k.X5c[0])
		if err != nil {
			return nil, fmt.Errorf("x5c[0]: %w", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("x5c[0]: %w", err)
		}
		certKey, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("x5c[0] does not hold an RSA key")
		}
		if fromNE != nil && !certKey.Equal(fromNE) {
			return nil, errors.New("x5c[0] and n/e are different keys")
		}
		pub = certKey
	}
	switch {
	case pub == nil:
		return nil, errors.New("neither x5c nor n/e")
	case pub.N.BitLen() < minKeyBits:
		return nil, fmt.Errorf("%d-bit key is too small", pub.N.BitLen())
	case pub.E < 3 || pub.E%2 == 0:
		return nil, fmt.Errorf("bad exponent %d", pub.E)
	}
	return pub, nil
}
