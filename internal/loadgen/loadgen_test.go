package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// exactPercentile is the nearest-rank percentile of sorted.
func exactPercentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(p / 100 * float64(len(sorted)))
	if float64(rank) < p/100*float64(len(sorted)) {
		rank++
	}
	return sorted[max(rank, 1)-1]
}

func TestHistogramPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform 0-10ms":  func() time.Duration { return time.Duration(rng.Int64N(int64(10 * time.Millisecond))) },
		"exponential 1ms": func() time.Duration { return time.Duration(rng.ExpFloat64() * float64(time.Millisecond)) },
		"tiny (ns)":       func() time.Duration { return time.Duration(rng.Int64N(300)) },
		"bimodal": func() time.Duration {
			if rng.IntN(100) < 3 {
				return 50*time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond)))
			}
			return 200*time.Microsecond + time.Duration(rng.Int64N(int64(50*time.Microsecond)))
		},
	}
	for name, next := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			samples := make([]time.Duration, 100_000)
			for i := range samples {
				samples[i] = next()
				h.Record(samples[i])
			}
			slices.Sort(samples)
			for _, p := range []float64{1, 50, 90, 99, 99.9, 100} {
				want := exactPercentile(samples, p)
				got := h.Percentile(p)
				// Never below the true value, at most one bucket (1/256) above.
				if got < want || float64(got) > float64(want)*(1+1.0/(1<<subBits))+1 {
					t.Errorf("p%v = %v, want %v (+0.4%%)", p, got, want)
				}
			}
			if h.Max() != samples[len(samples)-1] || h.Min() != samples[0] {
				t.Errorf("min, max = %v, %v; want %v, %v", h.Min(), h.Max(), samples[0], samples[len(samples)-1])
			}
			if h.Count() != uint64(len(samples)) {
				t.Errorf("count %d", h.Count())
			}
		})
	}
}

func TestHistogramSmallAndMerged(t *testing.T) {
	var a, b, empty Histogram
	if empty.Percentile(50) != 0 || empty.Max() != 0 || empty.Mean() != 0 {
		t.Error("empty histogram reports samples")
	}
	// 1..100 ms: p50 is 50 ms, p90 90 ms, p99 99 ms, p100 100 ms.
	for i := 1; i <= 100; i++ {
		d := time.Duration(i) * time.Millisecond
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	a.Merge(&empty)
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 90: 90 * time.Millisecond,
		99: 99 * time.Millisecond, 100: 100 * time.Millisecond} {
		got := a.Percentile(p)
		if got < want || got > want+want/256 {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if a.Max() != 100*time.Millisecond || a.Min() != time.Millisecond || a.Count() != 100 {
		t.Errorf("max %v min %v count %d", a.Max(), a.Min(), a.Count())
	}
	if a.Mean() != 50500*time.Microsecond {
		t.Errorf("mean %v", a.Mean())
	}
	var huge Histogram
	huge.Record(3 * time.Hour)
	if huge.Percentile(50) != 3*time.Hour {
		t.Errorf("a sample over the tracked range reports %v", huge.Percentile(50))
	}
}

// countingServer answers 200, or the status in the "status" query
// parameter, after the delay in "sleep"; it tracks requests, concurrency
// and connections.
type countingServer struct {
	*httptest.Server
	requests atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
	mu       sync.Mutex
	conns    map[string]bool
}

func newCountingServer(t *testing.T) *countingServer {
	s := &countingServer{conns: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		n := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for {
			m := s.maxIn.Load()
			if n <= m || s.maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		s.mu.Lock()
		s.conns[r.RemoteAddr] = true
		s.mu.Unlock()
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
			time.Sleep(d)
		}
		if r.URL.Query().Get("status") == "503" {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(s.Close)
	return s
}

func getOp(url, label string) Op {
	return func(ctx context.Context, w *Worker) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		_, _, err = w.Do(label, req)
		return err
	}
}

func TestRunCountBoundedStopsAfterExactlyN(t *testing.T) {
	s := newCountingServer(t)
	const n = 500
	res, err := Run(context.Background(), Config{Concurrency: 8, Requests: n, Duration: time.Hour},
		getOp(s.URL+"/a", "GET /a"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != n || s.requests.Load() != n {
		t.Fatalf("ops %d, server saw %d requests; want %d", res.Ops, s.requests.Load(), n)
	}
	p := res.Path("GET /a")
	if p == nil || p.Requests != n || p.ErrorCount() != 0 || p.Latency.Count() != n {
		t.Fatalf("path stats %+v", p)
	}
	if res.Concurrency != 8 {
		t.Errorf("concurrency %d", res.Concurrency)
	}
	if got := s.maxIn.Load(); got > 8 {
		t.Errorf("%d requests in flight at once, more than the 8 clients", got)
	}
	if got := len(s.conns); got > 8 {
		t.Errorf("%d connections for 8 clients: the transport does not keep them alive", got)
	}
}

func TestRunWarmupIsNotMeasured(t *testing.T) {
	s := newCountingServer(t)
	res, err := Run(context.Background(), Config{Concurrency: 2, Requests: 10, Warmup: 50 * time.Millisecond},
		getOp(s.URL, "GET /"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 10 || res.Path("GET /").Requests != 10 {
		t.Fatalf("measured %d ops, %d requests; want 10", res.Ops, res.Path("GET /").Requests)
	}
	if s.requests.Load() <= 10 {
		t.Errorf("server saw %d requests: no warm-up ran", s.requests.Load())
	}
}

func TestRunDurationBoundedStops(t *testing.T) {
	s := newCountingServer(t)
	res, err := Run(context.Background(), Config{Concurrency: 4, Duration: 100 * time.Millisecond},
		getOp(s.URL+"?sleep=1ms", "GET /"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Elapsed < 100*time.Millisecond || res.Ops == 0 {
		t.Fatalf("elapsed %v, %d ops", res.Elapsed, res.Ops)
	}
	if p := res.Path("GET /"); p.Latency.Percentile(50) < time.Millisecond {
		t.Errorf("p50 %v is below the handler's 1 ms sleep", p.Latency.Percentile(50))
	}
	if res.Path("GET /").Rate(res.Elapsed) <= 0 {
		t.Error("no rate")
	}
}

func TestRunCountsErrorsByStatusAndTransport(t *testing.T) {
	s := newCountingServer(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	var k atomic.Int64
	op := func(ctx context.Context, w *Worker) error {
		url := s.URL + "/ok"
		label := "GET /ok"
		switch k.Add(1) % 4 {
		case 0:
			url, label = s.URL+"/busy?status=503", "GET /busy"
		case 1:
			url, label = closed.URL, "GET /closed"
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		_, _, err := w.Do(label, req)
		return err
	}
	res, err := Run(context.Background(), Config{Concurrency: 1, Requests: 400}, op)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Path("GET /busy").Errors["503"]; got != 100 {
		t.Errorf("503s: %d, want 100", got)
	}
	if got := res.Path("GET /closed").Errors["transport"]; got != 100 {
		t.Errorf("transport errors: %d, want 100", got)
	}
	if got := res.Path("GET /ok").ErrorCount(); got != 0 {
		t.Errorf("errors on /ok: %d", got)
	}
	if res.OpErrors != 100 || res.FirstOpErr == nil {
		t.Errorf("op errors %d (%v), want the 100 transport errors", res.OpErrors, res.FirstOpErr)
	}
	var out strings.Builder
	res.Print(&out)
	for _, want := range []string{"GET /busy", "100 (503:100)", "100 (transport:100)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunStopsWhenOpsAreDone(t *testing.T) {
	s := newCountingServer(t)
	var left atomic.Int64
	left.Store(37)
	get := getOp(s.URL, "GET /")
	op := func(ctx context.Context, w *Worker) error {
		if left.Add(-1) < 0 {
			return ErrDone
		}
		return get(ctx, w)
	}
	res, err := Run(context.Background(), Config{Concurrency: 5, Duration: time.Hour}, op)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 37 || !res.Exhausted {
		t.Fatalf("ops %d, exhausted %v; want 37, true", res.Ops, res.Exhausted)
	}
}

func TestRunSplitsClientsAmongOps(t *testing.T) {
	s := newCountingServer(t)
	res, err := Run(context.Background(), Config{Concurrency: 4, Duration: 50 * time.Millisecond},
		getOp(s.URL+"/a", "GET /a"), getOp(s.URL+"/b", "GET /b"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Path("GET /a") == nil || res.Path("GET /b") == nil {
		t.Fatalf("paths %v", res.Paths)
	}
}

func TestRunCancelled(t *testing.T) {
	s := newCountingServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := Run(ctx, Config{Concurrency: 2, Duration: time.Hour}, getOp(s.URL, "GET /"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080", "http://127.1.2.3", "https://localhost:8443/", "http://[::1]:8080",
		"http://LOCALHOST", "http://[::ffff:127.0.0.1]:80"} {
		if err := CheckLoopback(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:8080", "http://example.com", "https://gatehouse.example.com", "http://0.0.0.0:8080",
		"http://[::]:8080", "http://192.168.1.10", "127.0.0.1:8080", "ftp://127.0.0.1", "http://localhost.example.com", ""} {
		if err := CheckLoopback(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := CheckLoopbackAddr("127.0.0.1:18081"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{":18081", "0.0.0.0:18081", "10.1.1.1:80", "127.0.0.1"} {
		if err := CheckLoopbackAddr(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
