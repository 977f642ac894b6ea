// Package loadgen drives an HTTP server with a fixed number of concurrent
// clients for a bounded time or number of operations, and reports, per
// path, the throughput, latency percentiles and errors. It is the engine of
// "gatehouse bench"; the Gatehouse scenarios are in scenarios.go.
//
// It is a closed-loop generator: each client sends its next request when
// the previous one is answered, so the latencies are those of a server kept
// busy by N clients, not of a fixed arrival rate.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// ErrDone, returned by an Op, stops the client that ran it: the op has
// nothing left to do (e.g. its pool of fresh identities is used up).
var ErrDone = errors.New("loadgen: done")

// Op is one operation of a client: one request, or a few in sequence. It
// sends them with w.Do, which times and counts them. An error other than
// ErrDone is counted against the op and the client goes on.
type Op func(ctx context.Context, w *Worker) error

// Config bounds a run.
type Config struct {
	Concurrency int           // clients; 0 means 32
	Duration    time.Duration // how long to measure, when Requests is 0; 0 means 10 s
	Requests    int64         // ops to measure in all, across clients; 0: run for Duration
	Warmup      time.Duration // unmeasured run before the measured one, on the same connections
	Timeout     time.Duration // bound on every request; 0 means 10 s
	Client      *http.Client  // nil: NewClient(Concurrency, Timeout)
	// Progress, when not nil, receives a line every ProgressEvery during the
	// measured run: ops and errors so far and the rate of the last interval.
	Progress      io.Writer
	ProgressEvery time.Duration
}

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = 32
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Client == nil {
		c.Client = NewClient(c.Concurrency, c.Timeout)
	}
	return c
}

// NewClient returns a client for concurrency clients of one server: one
// shared transport that keeps at most one connection per client, and keeps
// them alive, without compression or proxies.
func NewClient(concurrency int, timeout time.Duration) *http.Client {
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        concurrency * 2,
		MaxIdleConnsPerHost: concurrency,
		MaxConnsPerHost:     concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: t, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// CheckLoopback refuses a URL whose host is not a loopback address (or
// "localhost"): the load tool only ever targets this machine.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: want an http:// or https:// URL", raw)
	}
	if !IsLoopbackHost(u.Hostname()) {
		return fmt.Errorf("%q is not a loopback address: the load tool only targets 127.0.0.1, ::1 or localhost", raw)
	}
	return nil
}

// CheckLoopbackAddr is CheckLoopback for a host:port listen address.
func CheckLoopbackAddr(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", hostport, err)
	}
	if !IsLoopbackHost(host) {
		return fmt.Errorf("%q is not a loopback address", hostport)
	}
	return nil
}

// IsLoopbackHost reports whether host is a loopback IP address or
// "localhost".
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// Worker is one client of a run. Ops get it to send their requests.
type Worker struct {
	ID     int // 0 to Concurrency-1
	Client *http.Client
	rec    *recorder
	buf    []byte
}

// Do sends req, reads the whole answer and records its latency and status
// under label (the path with its variable parts elided, e.g. "GET
// /api/v1/identities/{id}"). It returns the status and body; the body is
// valid until the next Do of this worker. A non-2xx status is not an error
// here: the answer is returned and counted as an error in the report.
func (w *Worker) Do(label string, req *http.Request) (int, []byte, error) {
	start := time.Now()
	resp, err := w.Client.Do(req)
	if err != nil {
		if req.Context().Err() == nil { // not cut short by the end of the run (an interrupt)
			w.rec.record(label, time.Since(start), 0)
		}
		return 0, nil, err
	}
	w.buf, err = readAll(resp.Body, w.buf[:0])
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil {
		w.rec.record(label, elapsed, 0)
		return 0, nil, err
	}
	w.rec.record(label, elapsed, resp.StatusCode)
	return resp.StatusCode, w.buf, nil
}

func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// recorder is a worker's own tally, merged into the result at the end.
type recorder struct {
	paths map[string]*pathTally
	order []string
}

type pathTally struct {
	hist   Histogram
	errors map[string]int64 // by status ("503") or "transport"
}

func (r *recorder) record(label string, d time.Duration, status int) {
	t := r.paths[label]
	if t == nil {
		t = &pathTally{}
		r.paths[label] = t
		r.order = append(r.order, label)
	}
	t.hist.Record(d)
	switch {
	case status == 0:
		t.count("transport")
	case status < 200 || status > 299:
		t.count(strconv.Itoa(status))
	}
}

func (t *pathTally) count(kind string) {
	if t.errors == nil {
		t.errors = map[string]int64{}
	}
	t.errors[kind]++
}

// Result is the measured part of a run.
type Result struct {
	Concurrency int
	Elapsed     time.Duration // from the start of the measured run until every client stopped
	Ops         int64         // ops completed
	OpErrors    int64         // ops that returned an error other than ErrDone
	FirstOpErr  error
	Exhausted   bool // some client stopped early with ErrDone
	Paths       []PathStats
}

// PathStats are the figures of one path.
type PathStats struct {
	Label    string
	Requests int64
	Errors   map[string]int64 // by status ("503") or "transport"
	Latency  Histogram
}

// ErrorCount is the number of requests that failed (non-2xx or transport).
func (p PathStats) ErrorCount() int64 {
	var n int64
	for _, c := range p.Errors {
		n += c
	}
	return n
}

// Rate is requests per second over elapsed.
func (p PathStats) Rate(elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(p.Requests) / elapsed.Seconds()
}

// Path returns the stats of label, or nil.
func (r *Result) Path(label string) *PathStats {
	for k := range r.Paths {
		if r.Paths[k].Label == label {
			return &r.Paths[k]
		}
	}
	return nil
}

// Run runs ops with cfg.Concurrency clients, client i running ops[i %
// len(ops)]: first for cfg.Warmup, unmeasured, then measured until
// cfg.Requests ops are done or cfg.Duration has passed, or every client
// has returned ErrDone, or ctx ends. Requests in flight when the time is up
// complete and are counted.
func Run(ctx context.Context, cfg Config, ops ...Op) (*Result, error) {
	if len(ops) == 0 {
		return nil, errors.New("loadgen: no ops")
	}
	cfg = cfg.withDefaults()
	workers := make([]*Worker, cfg.Concurrency)
	for i := range workers {
		workers[i] = &Worker{ID: i, Client: cfg.Client}
	}
	if cfg.Warmup > 0 {
		run(ctx, workers, ops, cfg.Warmup, 0, nil, 0)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	res := run(ctx, workers, ops, cfg.Duration, cfg.Requests, cfg.Progress, cfg.ProgressEvery)
	res.Concurrency = cfg.Concurrency
	return res, ctx.Err()
}

func run(ctx context.Context, workers []*Worker, ops []Op, d time.Duration, budget int64, progress io.Writer, every time.Duration) *Result {
	var (
		stop      atomic.Bool
		remaining atomic.Int64
		done      atomic.Int64
		opErrs    atomic.Int64
		exhausted atomic.Bool
		firstErr  error
		errOnce   sync.Once
		wg        sync.WaitGroup
	)
	remaining.Store(budget)
	for _, w := range workers {
		w.rec = &recorder{paths: map[string]*pathTally{}}
	}
	start := time.Now()
	for _, w := range workers {
		op := ops[w.ID%len(ops)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil {
				if budget > 0 && remaining.Add(-1) < 0 {
					return
				}
				err := op(ctx, w)
				if errors.Is(err, ErrDone) {
					exhausted.Store(true)
					return
				}
				if ctx.Err() != nil {
					return // interrupted: the op was cut short, not failed
				}
				done.Add(1)
				if err != nil {
					opErrs.Add(1)
					errOnce.Do(func() { firstErr = err })
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	var timer <-chan time.Time
	if budget <= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	var tick <-chan time.Time
	if progress != nil && every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	lastOps, lastAt := int64(0), start
wait:
	for {
		select {
		case <-finished:
			break wait
		case <-timer:
			stop.Store(true)
		case <-ctx.Done():
			stop.Store(true)
		case now := <-tick:
			n := done.Load()
			fmt.Fprintf(progress, "  %6.0fs  ops %d  op errors %d  %.0f ops/s  load %s\n", now.Sub(start).Seconds(), n,
				opErrs.Load(), float64(n-lastOps)/now.Sub(lastAt).Seconds(), LoadAverage())
			lastOps, lastAt = n, now
		}
	}
	res := &Result{Elapsed: time.Since(start), Ops: done.Load(), OpErrors: opErrs.Load(), FirstOpErr: firstErr, Exhausted: exhausted.Load()}
	byLabel := map[string]*PathStats{}
	var order []string
	for _, w := range workers {
		for _, label := range w.rec.order {
			t := w.rec.paths[label]
			p := byLabel[label]
			if p == nil {
				p = &PathStats{Label: label, Errors: map[string]int64{}}
				byLabel[label] = p
				order = append(order, label)
			}
			p.Latency.Merge(&t.hist)
			p.Requests += int64(t.hist.Count())
			for k, v := range t.errors {
				p.Errors[k] += v
			}
		}
		w.rec = nil
	}
	sort.Strings(order)
	for _, label := range order {
		res.Paths = append(res.Paths, *byLabel[label])
	}
	return res
}

// Print writes the result as a table, one line per path.
func (r *Result) Print(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "requests\treq/s\tp50\tp90\tp99\tmax\terrors\t  path")
	for _, p := range r.Paths {
		h := &p.Latency
		fmt.Fprintf(tw, "%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t  %s\n", p.Requests, p.Rate(r.Elapsed),
			FormatDuration(h.Percentile(50)), FormatDuration(h.Percentile(90)), FormatDuration(h.Percentile(99)),
			FormatDuration(h.Max()), formatErrors(p.Errors), p.Label)
	}
	tw.Flush()
	if r.OpErrors > 0 {
		fmt.Fprintf(out, "  %d operations failed; the first: %v\n", r.OpErrors, r.FirstOpErr)
	}
}

func formatErrors(m map[string]int64) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	var total int64
	for k, v := range m {
		keys = append(keys, k)
		total += v
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, " "))
}

// FormatDuration prints d in milliseconds with two decimals (µs below
// 0.1 ms), the unit the targets use.
func FormatDuration(d time.Duration) string {
	if d < 100*time.Microsecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// LoadAverage returns the 1, 5 and 15 minute load averages of the machine
// (Linux), or "?" where they cannot be read.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
