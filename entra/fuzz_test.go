package entra

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/internal/entratest"
)

// FuzzVerify feeds arbitrary tokens to a verifier with a warm cache. It must
// never panic, and must answer every input with claims or a caller-facing
// error of one of Verify's kinds.
func FuzzVerify(f *testing.F) {
	srv := entratest.New(f)
	v, _ := newVerifier(f, srv)
	valid := srv.Mint(entratest.TokenOptions{IssuedAt: t0})
	if _, err := v.Verify(context.Background(), valid, tenant, resource); err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		valid,
		srv.Mint(entratest.TokenOptions{IssuedAt: t0, Version: 2}),
		srv.Mint(entratest.TokenOptions{IssuedAt: t0, Alg: "none"}),
		srv.Mint(entratest.TokenOptions{IssuedAt: t0, Alg: "HS256"}),
		srv.Mint(entratest.TokenOptions{IssuedAt: t0, Kid: "other"}),
		srv.Mint(entratest.TokenOptions{IssuedAt: t0, ExtraClaims: map[string]any{"aud": []string{"a"}, "exp": 1e300}}),
		parts[0] + "." + parts[1],
		parts[0] + "." + b64(`{"exp":"1"}`) + "." + parts[2],
		b64(`{"alg":"RS256","kid":"`+srv.KeyID()+`"}`) + "." + b64(`{}`) + ".",
		"", ".", "..", "...", "a.b.c", "eyJ.eyJ.eyJ",
	} {
		f.Add(seed)
	}
	kinds := map[gatehouse.Kind]bool{gatehouse.KindToken: true, gatehouse.KindUnauthorized: true}
	f.Fuzz(func(t *testing.T, raw string) {
		claims, err := v.Verify(context.Background(), raw, tenant, resource)
		if err != nil {
			if claims != nil || !kinds[gatehouse.KindOf(err)] || gatehouse.ErrorMessage(err) == "" {
				t.Fatalf("Verify(%q) = %v, %v (kind %d)", raw, claims, err, gatehouse.KindOf(err))
			}
			return
		}
		if strings.TrimSuffix(claims.Audience, "/") != strings.TrimSuffix(resource, "/") || !claims.ExpiresAt.After(t0.Add(-time.Minute)) {
			t.Fatalf("Verify(%q) accepted claims %+v", raw, claims)
		}
	})
}

// BenchmarkVerify measures Verify with a warm cache: one RSA-2048
// verification plus parsing and claim checks.
func BenchmarkVerify(b *testing.B) {
	srv := entratest.New(b)
	v, _ := newVerifier(b, srv)
	tok := srv.Mint(entratest.TokenOptions{IssuedAt: t0})
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok, tenant, resource); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(tok)))
	for b.Loop() {
		if _, err := v.Verify(ctx, tok, tenant, resource); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyParallel is BenchmarkVerify on all GOMAXPROCS.
func BenchmarkVerifyParallel(b *testing.B) {
	srv := entratest.New(b)
	v, _ := newVerifier(b, srv)
	tok := srv.Mint(entratest.TokenOptions{IssuedAt: t0})
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok, tenant, resource); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, tok, tenant, resource); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkParse is the part of Verify that is not RSA: splitting and
// decoding the token.
func BenchmarkParse(b *testing.B) {
	tok := entratest.New(b).Mint(entratest.TokenOptions{IssuedAt: t0})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseToken(tok); !ok {
			b.Fatal("parse failed")
		}
	}
}

// BenchmarkRejectMalformed is the cost of turning away garbage.
func BenchmarkRejectMalformed(b *testing.B) {
	srv := entratest.New(b)
	v, _ := newVerifier(b, srv)
	junk := strings.Repeat("a.", MaxTokenSize/2)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, junk, tenant, resource); err == nil {
			b.Fatal("accepted")
		}
	}
}

// FuzzJSONObject checks the JWT's JSON reader against encoding/json: both
// must accept the same objects and see the same members, values and strings.
func FuzzJSONObject(f *testing.F) {
	for _, seed := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"aud":"x","exp":1.5e9,"n":null,"t":true,"f":false}`,
		`{"a":{"b":[1,2,{"c":"d"}]},"e":[]}`, `{"a\u0075d":"\ud83d\ude00 \/ \n"}`, `{"a":"\xff"}`,
		`{"a":1,"a":2}`, `{"a":-0.0e+5}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":"x"`, `{"a" 1}`,
		`{"a":1,}`, `{,}`, `[1]`, `null`, `"s"`, `{"a":tru}`, `{"a":"\x01"}`, `{"a":"\u12"}`, `{} x`,
		`{"exp":1e400}`, strings.Repeat(`{"a":`, 50) + `1` + strings.Repeat(`}`, 50),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := map[string]string{}
		ok := eachMember(s, func(name, raw string, kind int) bool {
			got[name] = raw
			if kind == jsonString {
				var want string
				v, ok := jsonStringValue(raw)
				if err := json.Unmarshal([]byte(raw), &want); !ok || err != nil || v != want {
					t.Fatalf("string %q: got %q %v, encoding/json %q %v", raw, v, ok, want, err)
				}
			}
			return true
		})
		var want map[string]json.RawMessage
		wantOK := json.Unmarshal([]byte(s), &want) == nil && want != nil
		if ok != wantOK {
			t.Fatalf("eachMember(%q) = %v, encoding/json says %v", s, ok, wantOK)
		}
		if !ok {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%q: members %q, encoding/json %q", s, got, want)
		}
		for name, raw := range want {
			if got[name] != string(raw) {
				t.Fatalf("%q: member %q = %q, encoding/json %q", s, name, got[name], raw)
			}
		}
	})
}
