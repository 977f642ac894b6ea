package token

import (
	"crypto/sha256"
	"strings"
	"testing"

	gatehouse "github.com/gatehouse/gatehouse"
)

// FuzzVerify feeds arbitrary strings to the token parser. It must never
// panic, must fail only with a token error and no claims, and must accept
// nothing but the exact tokens that were signed: without the key, no change
// to a token, however small, verifies.
//
//	go test -run '^$' -fuzz FuzzVerify ./token
func FuzzVerify(f *testing.F) {
	signed := map[string]bool{}
	add := func(raw string) {
		signed[raw] = true
		f.Add(raw)
	}
	add(signClaims(f, testSecret, nil))
	add(signClaims(f, testSecret, func(c *gatehouse.AccessTokenClaims) { c.NumUsesLimit = 3 }))
	add(signRaw(testSecret, `{"typ":"JWT","alg":"HS256"}`, `{"identityId":"x"}`, sha256.New))
	valid := signClaims(f, testSecret, nil)
	head, rest, _ := strings.Cut(valid, ".")
	payload, _, _ := strings.Cut(rest, ".")
	for _, seed := range []string{
		"", ".", "..", "...", "a.b.c", "garbage",
		head + "." + payload + ".",
		b64.EncodeToString([]byte(`{"alg":"none"}`)) + "." + payload + ".",
		b64.EncodeToString([]byte(`{"alg":"HS512"}`)) + "." + payload + ".AAAA",
		b64.EncodeToString([]byte(`{"alg":"HS256","crit":["x"]}`)) + "." + payload + ".AAAA",
		signClaims(f, []byte("another key that is long enough to be used"), nil),
		valid + "\n", valid[:len(valid)-1] + "F",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := verify(testSecret, raw)
		if err != nil {
			if c != nil {
				t.Fatalf("claims %+v returned with error %v", c, err)
			}
			if gatehouse.KindOf(err) != gatehouse.KindToken {
				t.Fatalf("error of kind %d: %v", gatehouse.KindOf(err), err)
			}
			return
		}
		if !signed[raw] {
			t.Fatalf("verify accepted a string that was never signed: %q", raw)
		}
		if c == nil {
			t.Fatal("no claims and no error")
		}
	})
}
