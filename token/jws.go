package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"

	gatehouse "github.com/gatehouse/gatehouse"
)

// Gatehouse access tokens are compact JWS (JWT) signed with HMAC-SHA256, the
// format Infisical's clients expect. Only HS256 is ever accepted.

// maxTokenSize bounds what is decoded at all.
const maxTokenSize = 8 << 10

var (
	b64          = base64.RawURLEncoding
	b64Strict    = base64.RawURLEncoding.Strict()
	hs256Head    = b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	errMalformed = &gatehouse.Error{Kind: gatehouse.KindToken, Name: "TokenError",
		Message: "The provided access token is malformed. Please use a valid token or generate a new one and try again."}
	errAlgorithm = &gatehouse.Error{Kind: gatehouse.KindToken, Name: "TokenError",
		Message: "The access token is signed with an invalid algorithm. Please provide a valid token and try again."}
	errSignature = &gatehouse.Error{Kind: gatehouse.KindToken, Name: "TokenError", Message: "invalid signature"}
	errExpired   = &gatehouse.Error{Kind: gatehouse.KindToken, Name: "TokenError", Message: "Your token has expired. Please re-authenticate."}
)

// sign returns the compact JWS of claims under key.
func sign(key []byte, claims *gatehouse.AccessTokenClaims) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	buf := make([]byte, 0, len(hs256Head)+1+b64.EncodedLen(len(payload))+1+b64.EncodedLen(sha256.Size))
	buf = append(buf, hs256Head...)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, payload)
	mac := hmac.New(sha256.New, key)
	mac.Write(buf)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, mac.Sum(nil))
	return string(buf), nil
}

// verify checks the structure, algorithm and signature of raw and decodes
// its claims. It does not look at the time.
func verify(key []byte, raw string) (*gatehouse.AccessTokenClaims, error) {
	if len(raw) > maxTokenSize {
		return nil, errMalformed
	}
	head, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return nil, errMalformed
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 {
		return nil, errMalformed
	}
	if head != hs256Head {
		if err := checkHeader(head); err != nil {
			return nil, err
		}
	}
	// Strict, and no skipped CR or LF: one signature has one spelling, so
	// no other string than the one signed verifies.
	gotSig, err := b64Strict.DecodeString(sig)
	if err != nil || len(sig) != b64.EncodedLen(len(gotSig)) {
		return nil, errMalformed
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(raw[:len(head)+1+len(payload)]))
	if !hmac.Equal(mac.Sum(nil), gotSig) {
		return nil, errSignature
	}
	body, err := b64.DecodeString(payload)
	if err != nil {
		return nil, errMalformed
	}
	var claims gatehouse.AccessTokenClaims
	if err := json.Unmarshal(body, &claims); err != nil {
		return nil, errMalformed
	}
	return &claims, nil
}

// checkHeader accepts any JSON header whose alg is HS256 (other libraries
// order or space the header differently) and refuses every other algorithm.
func checkHeader(head string) error {
	raw, err := b64.DecodeString(head)
	if err != nil {
		return errMalformed
	}
	var h struct {
		Alg  string   `json:"alg"`
		Crit []string `json:"crit"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return errMalformed
	}
	if h.Alg != "HS256" || len(h.Crit) > 0 {
		return errAlgorithm
	}
	return nil
}
