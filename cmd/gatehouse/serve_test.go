package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveEnv are the variables serve reads, emptied for each test so that
// the machine running the tests cannot change the outcome.
var serveEnv = []string{
	"GATEHOUSE_ADDR", "GATEHOUSE_DB", "GATEHOUSE_DB_POOL_SIZE", "GATEHOUSE_DB_TIMEOUT", "GATEHOUSE_TLS_CERT",
	"GATEHOUSE_TLS_KEY", "GATEHOUSE_AZURE_CLOUD", "AZURE_AUTHORITY_HOST", "GATEHOUSE_AZURE_CLOCK_SKEW",
	"GATEHOUSE_MAX_TOKEN_TTL", "GATEHOUSE_TRUSTED_PROXIES", "GATEHOUSE_PPROF_ADDR", "GATEHOUSE_LOG_LEVEL",
	"GATEHOUSE_ACCESS_LOG", "GATEHOUSE_AUTH_SECRET",
}

func clearEnv(t *testing.T) {
	for _, k := range serveEnv {
		t.Setenv(k, "")
	}
}

// syncBuffer is a bytes.Buffer safe for the server goroutine to write while
// the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs serve with args in the background and returns the URL it
// logs once listening, and a function that stops it and returns its error.
func startServe(t *testing.T, args ...string) (url string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, args, logs) }()
	deadline := time.Now().Add(30 * time.Second)
	for url == "" {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec struct{ Msg, URL string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "gatehouse listening" {
				url = rec.URL
			}
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve returned before listening: %v; logs: %s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not log its address; logs: %s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return url, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not stop")
			return nil
		}
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatehouse test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServeWithNoConfigurationAndShutdown(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	t.Chdir(dir)
	url, stop := startServe(t, "--addr", "127.0.0.1:0")
	resp, err := http.Get(url + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gatehouse.db")); err != nil {
		t.Errorf("the default SQLite database was not created in the working directory: %v", err)
	}
}

func TestServeTLS(t *testing.T) {
	clearEnv(t)
	cert, key, pool := selfSigned(t)
	url, stop := startServe(t, "--addr", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(t.TempDir(), "g.db"),
		"--tls-cert", cert, "--tls-key", key)
	defer stop()
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("url %q is not https", url)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(url + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Plain HTTP on the TLS port gets net/http's 400, not the API.
	if r, err := http.Get(strings.Replace(url, "https://", "http://", 1) + "/api/status"); err == nil {
		r.Body.Close()
		if r.StatusCode == http.StatusOK {
			t.Error("plain HTTP was served on the TLS port")
		}
	}
}

func TestServeRefusesBadConfiguration(t *testing.T) {
	clearEnv(t)
	db := "sqlite:" + filepath.Join(t.TempDir(), "g.db")
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"tls cert without key", nil, []string{"--tls-cert", "c.pem"}},
		{"bad trusted proxy", nil, []string{"--trusted-proxies", "10.0.0.0/33"}},
		{"bad log level", nil, []string{"--log-level", "loud"}},
		{"short auth secret", map[string]string{"GATEHOUSE_AUTH_SECRET": "too-short"}, nil},
		{"stray argument", nil, []string{"extra"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db}, tc.args...), &stdout, &stderr)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr: %s", code, stderr.String())
			}
		})
	}
}
