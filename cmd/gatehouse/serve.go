package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/entra"
	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/token"
)

// serve runs the server until ctx is done (SIGINT or SIGTERM, from run),
// then shuts it down gracefully.
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flagSet("serve", stderr)
	addr := fs.String("addr", envOr("GATEHOUSE_ADDR", "127.0.0.1:8080"), "address to listen on (GATEHOUSE_ADDR)")
	db := fs.String("db", envOr("GATEHOUSE_DB", "sqlite:gatehouse.db"), "database: sqlite:PATH or postgres://user:pass@host:port/db?sslmode=... (GATEHOUSE_DB)")
	poolSize := fs.Int("db-pool-size", envInt("GATEHOUSE_DB_POOL_SIZE", 0), "database connections (PostgreSQL pool, or SQLite readers); 0 picks 4 per core, 2 for SQLite (GATEHOUSE_DB_POOL_SIZE)")
	dbTimeout := fs.Duration("db-timeout", envDuration("GATEHOUSE_DB_TIMEOUT", 5*time.Second), "bound on every database statement (GATEHOUSE_DB_TIMEOUT)")
	tlsCert := fs.String("tls-cert", envOr("GATEHOUSE_TLS_CERT", ""), "TLS certificate file; serves HTTPS with --tls-key (GATEHOUSE_TLS_CERT)")
	tlsKey := fs.String("tls-key", envOr("GATEHOUSE_TLS_KEY", ""), "TLS key file (GATEHOUSE_TLS_KEY)")
	cloud := fs.String("azure-cloud", envOr("GATEHOUSE_AZURE_CLOUD", "public"), "Azure cloud: public, usgovernment or china (GATEHOUSE_AZURE_CLOUD)")
	authority := fs.String("azure-authority-host", envOr("AZURE_AUTHORITY_HOST", ""), "where Entra ID signing keys are fetched; default: the cloud's (AZURE_AUTHORITY_HOST)")
	skew := fs.Duration("azure-clock-skew", envDuration("GATEHOUSE_AZURE_CLOCK_SKEW", 60*time.Second), "clock skew allowed on Entra ID tokens' exp and nbf (GATEHOUSE_AZURE_CLOCK_SKEW)")
	maxTTL := fs.Duration("max-token-ttl", envDuration("GATEHOUSE_MAX_TOKEN_TTL", 90*24*time.Hour), "the longest any one access token lives (GATEHOUSE_MAX_TOKEN_TTL)")
	proxies := fs.String("trusted-proxies", envOr("GATEHOUSE_TRUSTED_PROXIES", ""), "comma-separated CIDRs of proxies whose X-Forwarded-For is believed; default none (GATEHOUSE_TRUSTED_PROXIES)")
	pprofAddr := fs.String("pprof-addr", envOr("GATEHOUSE_PPROF_ADDR", ""), "serve /debug/pprof on this address; default off (GATEHOUSE_PPROF_ADDR)")
	logLevel := fs.String("log-level", envOr("GATEHOUSE_LOG_LEVEL", "info"), "debug, info, warn or error (GATEHOUSE_LOG_LEVEL)")
	accessLog := fs.Bool("access-log", envBool("GATEHOUSE_ACCESS_LOG", false), "log one line per request (GATEHOUSE_ACCESS_LOG)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return usageError{"--tls-cert and --tls-key go together"}
	}
	// database/sql reads a negative pool size as "unlimited", and a negative
	// timeout would fail every statement: refuse both rather than guess.
	if *poolSize < 0 {
		return usageError{fmt.Sprintf("--db-pool-size must be 0 (the default) or more, got %d", *poolSize)}
	}
	if *dbTimeout < 0 {
		return usageError{fmt.Sprintf("--db-timeout must be 0 (the default, 5s) or more, got %v", *dbTimeout)}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Sprintf("--log-level: %v", err)}
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	trusted, err := parsePrefixes(*proxies)
	if err != nil {
		return usageError{fmt.Sprintf("--trusted-proxies: %v", err)}
	}
	var secret []byte
	if s := os.Getenv("GATEHOUSE_AUTH_SECRET"); s != "" {
		if len(s) < token.MinSecretSize {
			return usageError{fmt.Sprintf("GATEHOUSE_AUTH_SECRET must be at least %d bytes", token.MinSecretSize)}
		}
		secret = []byte(s)
	}

	leeway := *skew
	if leeway <= 0 {
		leeway = entra.NoLeeway // 0 on the command line means none, not the verifier's default
	}
	a, err := app.New(ctx, app.Config{
		DB: *db, DBPool: storeOptions(*poolSize, *dbTimeout), AuthSecret: secret, MaxTokenTTL: *maxTTL,
		AzureCloud: *cloud, AzureAuthorityHost: *authority, AzureLeeway: leeway, TrustedProxies: trusted,
		Logger: log, AccessLog: *accessLog, Version: version,
	})
	if err != nil {
		return err
	}
	defer a.Close()

	if *pprofAddr != "" {
		go servePprof(*pprofAddr, log)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.Handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	scheme := "http"
	if *tlsCert != "" {
		scheme = "https"
	}
	go func() {
		if *tlsCert != "" {
			errc <- srv.ServeTLS(ln, *tlsCert, *tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	log.Info("gatehouse listening", "url", scheme+"://"+ln.Addr().String(), "database", a.Store.Dialect(), "version", version)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			addr, err := netip.ParseAddr(part)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof listening", "url", "http://"+addr+"/debug/pprof/")
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Error("pprof", "err", err)
	}
}
