// Package app wires Gatehouse together: the store, the token service, the
// identity and Azure Auth services, the Entra ID verifier and the HTTP API.
// The command and the black-box tests build the server through it, so both
// run the same code.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/azureauth"
	"github.com/gatehouse/gatehouse/entra"
	"github.com/gatehouse/gatehouse/httpapi"
	"github.com/gatehouse/gatehouse/identity"
	"github.com/gatehouse/gatehouse/store"
	"github.com/gatehouse/gatehouse/token"
)

// Config is the server's configuration. The zero value of every field but
// DB works.
type Config struct {
	DB                 string        // sqlite:PATH or postgres://...
	DBPool             store.Options // pool size and timeouts
	AuthSecret         []byte        // signs access tokens; empty: generated once and kept in the database
	MaxTokenTTL        time.Duration // the ceiling of any token's life; 0: 90 days
	AzureCloud         string        // public, usgovernment or china
	AzureAuthorityHost string        // where Entra ID keys are fetched; "": the cloud's
	AzureLeeway        time.Duration // clock skew allowed on Entra ID tokens; 0: the verifier's default
	AzureHTTPClient    *http.Client  // for tests; nil: the verifier's default
	TrustedProxies     []netip.Prefix
	Clock              gatehouse.Clock
	Logger             *slog.Logger
	AccessLog          bool // log one line per request
	Version            string
}

// App is a wired server.
type App struct {
	Handler  http.Handler
	Store    *store.Store
	Tokens   *token.Service
	Verifier *entra.Verifier
	stop     context.CancelFunc
	done     chan struct{}
}

// secretName is the database key of the generated signing secret.
const secretName = "auth-secret"

// New opens the database, applies migrations, and wires the services.
func New(ctx context.Context, cfg Config) (*App, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := cfg.Clock
	if clock == nil {
		clock = gatehouse.SystemClock{}
	}
	st, err := store.Open(ctx, cfg.DB, cfg.DBPool)
	if err != nil {
		return nil, err
	}
	secret := cfg.AuthSecret
	if len(secret) == 0 {
		if secret, err = st.Secret(ctx, secretName, token.NewSecret); err != nil {
			st.Close()
			return nil, fmt.Errorf("signing secret: %w", err)
		}
	}
	tokens, err := token.NewService(token.Config{Secret: secret, Store: st, Clock: clock, Ceiling: cfg.MaxTokenTTL})
	if err != nil {
		st.Close()
		return nil, err
	}
	cloud, err := entra.CloudByName(cfg.AzureCloud)
	if err != nil {
		st.Close()
		return nil, err
	}
	verifier, err := entra.NewVerifier(entra.Config{Cloud: cloud, AuthorityHost: cfg.AzureAuthorityHost,
		HTTPClient: cfg.AzureHTTPClient, Clock: clock, Leeway: cfg.AzureLeeway, Logger: log})
	if err != nil {
		st.Close()
		return nil, err
	}
	identities := identity.NewService(st, tokens, clock)
	azure := azureauth.NewService(st, identities, verifier, tokens, clock)
	api := httpapi.New(httpapi.Config{
		Identities: identities, Azure: azure, Tokens: tokens, Ready: st.Ping,
		TrustedProxies: cfg.TrustedProxies, Logger: log, AccessLog: cfg.AccessLog, Version: cfg.Version, Database: st.Dialect(),
	})
	runCtx, stop := context.WithCancel(context.Background())
	a := &App{Handler: api, Store: st, Tokens: tokens, Verifier: verifier, stop: stop, done: make(chan struct{})}
	go a.purge(runCtx, clock, log)
	return a, nil
}

// purge deletes revocation markers and use counters of expired tokens,
// hourly.
func (a *App) purge(ctx context.Context, clock gatehouse.Clock, log *slog.Logger) {
	defer close(a.done)
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.Store.PurgeExpired(ctx, clock.Now()); err != nil {
				log.Warn("purge expired tokens", "err", err)
			}
		}
	}
}

// Close stops background work and closes the database.
func (a *App) Close() error {
	a.stop()
	<-a.done
	a.Verifier.Close()
	return a.Store.Close()
}
