package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/entratest"
	"github.com/gatehouse/gatehouse/internal/loadgen"
)

const benchUsage = `Usage: gatehouse bench [flags]

Drives a running Gatehouse server on this machine with concurrent clients and
prints, per path, requests/s, p50/p90/p99/max latency and errors by status.

It serves a fake Entra ID on --fake-entra-addr; start the server with
AZURE_AUTHORITY_HOST set to that URL so that it trusts the fake's tokens:

  AZURE_AUTHORITY_HOST=http://127.0.0.1:18081 gatehouse serve --db sqlite:/tmp/bench.db &
  gatehouse bench --scenario login,details --duration 15s

On a fresh database bench bootstraps the server; otherwise pass --admin-token.

Scenarios:
%s
Flags:
`

func benchCmd(args []string, stdout, stderr io.Writer) error {
	fs := flagSet("bench", stderr)
	var names []string
	var list strings.Builder
	for _, s := range loadgen.Scenarios {
		names = append(names, s.Name)
		fmt.Fprintf(&list, "  %-16s %s\n", s.Name, s.Description)
	}
	fmt.Fprintf(&list, "  %-16s %s\n", loadgen.Baseline.Name, loadgen.Baseline.Description)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), benchUsage, list.String())
		fs.PrintDefaults()
	}
	addr := fs.String("addr", envOr("GATEHOUSE_URL", "http://127.0.0.1:8080"), "the server's URL; loopback only (GATEHOUSE_URL)")
	scenarios := fs.String("scenario", strings.Join(names, ","), "comma-separated scenarios to run, one after the other (see above)")
	mixed := fs.Bool("mixed", false, "run the scenarios at the same time, the clients shared out among them")
	concurrency := fs.Int("concurrency", 32, "concurrent clients (each keeps one connection)")
	duration := fs.Duration("duration", 10*time.Second, "how long to measure each scenario")
	requests := fs.Int64("requests", 0, "measure this many operations per scenario instead of --duration (create-attach: two requests each)")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured load before each measured run")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on every request")
	entraAddr := fs.String("fake-entra-addr", "127.0.0.1:18081", "where to serve the fake Entra ID; loopback only")
	adminToken := fs.String("admin-token", envOr("GATEHOUSE_ADMIN_TOKEN", ""), "an admin identity's access token; default: bootstrap the server (GATEHOUSE_ADMIN_TOKEN)")
	attachPool := fs.Int("attach-identities", 0, "identities the attach scenario creates before its run; 0 picks 2500 per second of warm-up and run (at most 100000); clients stop early when they are used up")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for the server to answer /api/status")
	progress := fs.Duration("progress", 0, "print the running totals this often (e.g. 10s); 0: only the results")
	if err := parse(fs, args); err != nil {
		return err
	}
	base := strings.TrimRight(*addr, "/")
	if err := loadgen.CheckLoopback(base); err != nil {
		return usageError{"--addr: " + err.Error()}
	}
	if err := loadgen.CheckLoopbackAddr(*entraAddr); err != nil {
		return usageError{"--fake-entra-addr: " + err.Error()}
	}
	if *concurrency < 1 || *requests < 0 || *duration <= 0 || *warmup < 0 {
		return usageError{"--concurrency must be at least 1, --duration positive, --requests and --warmup not negative"}
	}
	var chosen []loadgen.Scenario
	for _, name := range strings.Split(*scenarios, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		s, ok := loadgen.ScenarioByName(name)
		if !ok {
			return usageError{fmt.Sprintf("--scenario: unknown scenario %q; known: %s, %s", name, strings.Join(names, ", "), loadgen.Baseline.Name)}
		}
		chosen = append(chosen, s)
	}
	if len(chosen) == 0 {
		return usageError{"--scenario: none given"}
	}
	if *attachPool == 0 {
		if *requests > 0 {
			*attachPool = int(*requests) + int(2500*warmup.Seconds())
		} else {
			*attachPool = int(2500 * (warmup.Seconds() + duration.Seconds()))
		}
		*attachPool = min(*attachPool, 100000)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	entra, err := entratest.NewServerOn(*entraAddr)
	if err != nil {
		return fmt.Errorf("fake Entra ID: %w", err)
	}
	defer entra.Close()
	fmt.Fprintf(stdout, "fake Entra ID: %s (the server must run with AZURE_AUTHORITY_HOST=%s)\n", entra.URL(), entra.URL())

	client := loadgen.NewClient(*concurrency, *timeout)
	g := &loadgen.Gatehouse{URL: base, Client: client, Entra: entra}
	version, err := waitReady(ctx, client, base, *wait)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "server: %s (%s)\n", base, version)
	if *adminToken != "" {
		err = g.UseAdminToken(ctx, *adminToken)
	} else {
		err = g.Bootstrap(ctx)
	}
	if err != nil {
		return err
	}

	cfg := loadgen.Config{Concurrency: *concurrency, Duration: *duration, Requests: *requests, Warmup: *warmup,
		Timeout: *timeout, Client: client}
	if *progress > 0 {
		cfg.Progress, cfg.ProgressEvery = stdout, *progress
	}
	opts := loadgen.Options{Concurrency: *concurrency, AttachPool: *attachPool, Log: stdout}
	bound := duration.String()
	if *requests > 0 {
		bound = fmt.Sprintf("%d operations", *requests)
	}
	runs := [][]loadgen.Scenario{}
	if *mixed {
		runs = append(runs, chosen)
	} else {
		for _, s := range chosen {
			runs = append(runs, []loadgen.Scenario{s})
		}
	}
	var keyFetches int
	for _, group := range runs {
		var title []string
		var ops []loadgen.Op
		for _, s := range group {
			title = append(title, s.Name)
		}
		fmt.Fprintf(stdout, "\n== %s: %d clients, %s after %s warm-up\n", strings.Join(title, " + "), *concurrency, bound, *warmup)
		start := time.Now()
		for _, s := range group {
			op, err := s.Prepare(ctx, g, opts)
			if err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			ops = append(ops, op)
		}
		fmt.Fprintf(stdout, "  prepared in %s; load average %s\n", time.Since(start).Round(time.Millisecond), loadgen.LoadAverage())
		before := entra.Requests()
		res, err := loadgen.Run(ctx, cfg, ops...)
		if err != nil {
			if res != nil { // interrupted: show what was measured
				res.Print(stdout)
			}
			if errors.Is(err, context.Canceled) {
				return errors.New("bench: interrupted")
			}
			return err
		}
		fetched := entra.Requests() - before
		keyFetches += fetched
		fmt.Fprintf(stdout, "  measured %s, %d operations; load average %s; Entra ID key-set requests during warm-up and run: %d\n",
			res.Elapsed.Round(time.Millisecond), res.Ops, loadgen.LoadAverage(), fetched)
		if res.Exhausted {
			fmt.Fprintf(stdout, "  note: clients ran out of work before the end (attach: raise --attach-identities)\n")
		}
		res.Print(stdout)
	}
	fmt.Fprintf(stdout, "\nEntra ID key-set requests during all measured runs: %d (of %d in all)\n", keyFetches, entra.Requests())
	return nil
}

// waitReady polls /api/status until the server answers 200 and returns its
// version and database.
func waitReady(ctx context.Context, client *http.Client, base string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	var last error
	for {
		var st struct {
			Version  string `json:"version"`
			Database string `json:"database"`
		}
		g := &loadgen.Gatehouse{URL: base, Client: client}
		last = g.Status(ctx, &st)
		if last == nil {
			return fmt.Sprintf("version %s, database %s", st.Version, st.Database), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("the server at %s does not answer: %w", base, errors.Join(last, ctx.Err()))
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
