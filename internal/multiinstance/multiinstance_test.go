package multiinstance

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/gatehouse/gatehouse/internal/apitest"
	"github.com/gatehouse/gatehouse/internal/entratest"
)

const (
	poolSize  = 4
	dbTimeout = 2 * time.Second
	// hangBound is how long a request may take before the test calls it a
	// hang: far above every timeout of the server, so reaching it means
	// something waits without a bound.
	hangBound = 20 * time.Second
	// startBound is how long an instance may take to answer after it starts.
	startBound = 60 * time.Second
)

// TestSeveralInstances runs two gatehouse processes on one PostgreSQL
// database and checks that they behave as one server.
func TestSeveralInstances(t *testing.T) {
	base := os.Getenv(apitest.PostgresEnv)
	if base == "" {
		t.Skipf("multi-instance tests skipped: set %s to a PostgreSQL URL to run them "+
			"(e.g. postgres://postgres@127.0.0.1:55432/gatehouse_test?sslmode=disable; see docs/several-instances.md)", apitest.PostgresEnv)
	}
	began := time.Now()
	bin := buildGatehouse(t)
	t.Logf("built gatehouse in %v", time.Since(began).Round(time.Millisecond))
	fake := entratest.New(t)

	// Both instances reach PostgreSQL through a proxy the test can cut.
	dsn := apitest.PostgresSchema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	u.Host = proxy.addr()
	tag := randomHex(4)
	a := newInstance(t, "a", bin, withApp(u, "gatehouse-a-"+tag), fake.URL())
	b := newInstance(t, "b", bin, withApp(u, "gatehouse-b-"+tag), fake.URL())

	// Both start at the same moment on an empty schema: they race on the
	// migrations and on generating the signing secret.
	var wg sync.WaitGroup
	for _, in := range []*instance{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); in.start(t) }()
	}
	wg.Wait()
	a.waitReady(t)
	b.waitReady(t)
	t.Logf("both instances ready %v after the build", time.Since(began).Round(time.Millisecond))

	c := newClient()
	admin := bootstrapRace(t, c, a, b)
	t.Logf("bootstrapped %v after the build", time.Since(began).Round(time.Millisecond))
	env := &env{c: c, a: a, b: b, fake: fake, admin: admin}

	t.Run("TokenFromOneAcceptedByOther", env.tokenFromOneAcceptedByOther)
	t.Run("RevokeOnOneSeenByOther", env.revokeOnOneSeenByOther)
	t.Run("UseLimitExactAcrossInstances", env.useLimitExactAcrossInstances)
	t.Run("PoolSizeRespected", func(t *testing.T) { checkPoolSize(t, base, a, b) })
	t.Run("DetachOnOneSeenByLoginsOnOther", env.detachOnOneSeenByOther)
	t.Run("RestartUnderLoad", func(t *testing.T) {
		t.Run("SIGKILL", func(t *testing.T) { env.restartUnderLoad(t, syscall.SIGKILL) })
		t.Run("SIGTERM", func(t *testing.T) { env.restartUnderLoad(t, syscall.SIGTERM) })
	})
	t.Run("DatabaseOutage", func(t *testing.T) {
		t.Run("down", func(t *testing.T) { env.outage(t, proxy, down) })
		t.Run("stalled", func(t *testing.T) { env.outage(t, proxy, stalled) })
	})
}

type env struct {
	c     *client
	a, b  *instance
	fake  *entratest.Server
	admin admin
}

type admin struct{ token, orgID string }

// bootstrapRace sends bootstraps to both instances at once: exactly one
// wins, the others are told the instance is set up.
func bootstrapRace(t *testing.T, c *client, a, b *instance) admin {
	const n = 4 // each hashes a password with argon2id (64 MiB) before the race is decided
	body := map[string]string{"email": "admin@example.com", "password": "correct horse", "organization": "Acme"}
	answers := c.race(t, n, func(i int) (*instance, string, string, string, any) {
		return pick(i, a, b), "POST", "/api/v1/admin/bootstrap", "", body
	})
	// A 503 (a busy machine can make a bootstrap outlast --db-timeout)
	// asks the client to retry; the retry must then be refused or win.
	for i, r := range answers {
		for try := 0; r.status == http.StatusServiceUnavailable && try < 5; try++ {
			t.Logf("bootstrap %d answered 503, retrying: %s", i, r.raw)
			r = c.do(t, pick(i, a, b), "POST", "/api/v1/admin/bootstrap", "", body)
			answers[i] = r
		}
	}
	var won *response
	for _, r := range answers {
		switch r.status {
		case http.StatusOK:
			if won != nil {
				t.Errorf("two bootstraps succeeded:\n%s\n%s", won.raw, r.raw)
			}
			won = r
		case http.StatusBadRequest:
			r.expectError(t, http.StatusBadRequest, "BadRequest", "Instance has already been set up")
		default:
			t.Errorf("bootstrap answered %d: %s", r.status, r.raw)
		}
	}
	if won == nil {
		t.Fatal("no bootstrap succeeded")
	}
	return admin{token: won.str("identity", "credentials", "token"), orgID: won.str("organization", "id")}
}

// azureIdentity creates an identity on one instance and attaches Azure Auth
// with policy on the other.
func (e *env) azureIdentity(t *testing.T, policy map[string]any) string {
	r := e.c.do(t, e.a, "POST", "/api/v1/identities", e.admin.token,
		map[string]any{"name": "workload-" + randomHex(4), "organizationId": e.admin.orgID, "role": "member"}).expect(t, 200)
	id := r.str("identity", "id")
	body := map[string]any{"tenantId": entratest.DefaultTenant, "resource": entratest.DefaultAudience}
	for k, v := range policy {
		body[k] = v
	}
	e.c.do(t, e.b, "POST", "/api/v1/auth/azure-auth/identities/"+id, e.admin.token, body).expect(t, 200)
	return id
}

func (e *env) login(t *testing.T, in *instance, identityID string) *response {
	return e.c.do(t, in, "POST", "/api/v1/auth/azure-auth/login", "",
		map[string]string{"identityId": identityID, "jwt": e.fake.Mint(entratest.TokenOptions{})})
}

func (e *env) details(t *testing.T, in *instance, token string) *response {
	return e.c.do(t, in, "GET", "/api/v1/identities/details", token, nil)
}

// The signing secret generated at the first start is shared: a token
// issued by either instance works on both.
func (e *env) tokenFromOneAcceptedByOther(t *testing.T) {
	for _, in := range []*instance{e.a, e.b} {
		e.details(t, in, e.admin.token).expect(t, 200)
	}
	id := e.azureIdentity(t, nil)
	fromA := e.login(t, e.a, id).expect(t, 200).str("accessToken")
	fromB := e.login(t, e.b, id).expect(t, 200).str("accessToken")
	for _, tok := range []string{fromA, fromB} {
		for _, in := range []*instance{e.a, e.b} {
			if got := e.details(t, in, tok).expect(t, 200).str("identityDetails", "organization", "id"); got != e.admin.orgID {
				t.Errorf("instance %s: organization %q, want %q", in.name, got, e.admin.orgID)
			}
		}
	}
	// A token renewed on one instance works on the other.
	renewed := e.c.do(t, e.b, "POST", "/api/v1/auth/token/renew", "", map[string]string{"accessToken": fromA}).expect(t, 200)
	e.details(t, e.a, renewed.str("accessToken")).expect(t, 200)
}

// A token revoked on one instance is refused by the other at once.
func (e *env) revokeOnOneSeenByOther(t *testing.T) {
	id := e.azureIdentity(t, nil)
	tok := e.login(t, e.a, id).expect(t, 200).str("accessToken")
	e.details(t, e.b, tok).expect(t, 200)
	e.c.do(t, e.a, "POST", "/api/v1/auth/token/revoke", "", map[string]string{"accessToken": tok}).expect(t, 200)
	e.details(t, e.b, tok).expectError(t, 401, "UnauthorizedError", "Failed to authorize: token has been revoked")
	e.c.do(t, e.b, "POST", "/api/v1/auth/token/renew", "", map[string]string{"accessToken": tok}).expect(t, 401)
	e.details(t, e.a, tok).expect(t, 401)
}

// A token with a use limit succeeds exactly that many times when requests
// race across both instances.
func (e *env) useLimitExactAcrossInstances(t *testing.T) {
	const limit, requests = 10, 48
	id := e.azureIdentity(t, map[string]any{"accessTokenNumUsesLimit": limit})
	tok := e.login(t, e.b, id).expect(t, 200).str("accessToken")
	answers := e.c.race(t, requests, func(i int) (*instance, string, string, string, any) {
		return pick(i, e.a, e.b), "GET", "/api/v1/identities/details", tok, nil
	})
	ok := 0
	for _, r := range answers {
		switch r.status {
		case 200:
			ok++
		case 401:
			r.expectError(t, 401, "UnauthorizedError", "Failed to authorize: token usage limit reached")
		default:
			t.Errorf("answered %d: %s", r.status, r.raw)
		}
	}
	if ok != limit {
		t.Errorf("%d requests succeeded with a token limited to %d uses", ok, limit)
	}
}

// checkPoolSize checks --db-pool-size bounds each instance's connections
// (the use-limit race before it ran requests concurrently on both).
func checkPoolSize(t *testing.T, base string, instances ...*instance) {
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, in := range instances {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1`, in.app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 || n > poolSize {
			t.Errorf("instance %s holds %d connections, want 1 to --db-pool-size %d", in.name, n, poolSize)
		}
	}
}

// Removing Azure Auth on one instance is seen at once by logins, and by
// tokens the method issued, on the other.
func (e *env) detachOnOneSeenByOther(t *testing.T) {
	id := e.azureIdentity(t, nil)
	tok := e.login(t, e.b, id).expect(t, 200).str("accessToken")
	e.c.do(t, e.a, "DELETE", "/api/v1/auth/azure-auth/identities/"+id, e.admin.token, nil).expect(t, 200)
	e.login(t, e.b, id).expectError(t, 404, "NotFound", "Azure auth method not found for identity, did you configure Azure Auth?")
	e.details(t, e.b, tok).expectError(t, 401, "UnauthorizedError", "Failed to authorize: auth method has been revoked")
	// Removing it again, on the other instance, finds nothing to remove.
	e.c.do(t, e.b, "DELETE", "/api/v1/auth/azure-auth/identities/"+id, e.admin.token, nil).expect(t, 400)
}

// An instance stopped with sig while a client keeps writing to it loses
// nothing it answered 200 for, and answers again once restarted.
func (e *env) restartUnderLoad(t *testing.T, sig syscall.Signal) {
	in := e.b
	var (
		mu        sync.Mutex
		committed []string // identities whose creation was answered 200
		failures  atomic.Int64
		stop      = make(chan struct{})
		loopDone  = make(chan struct{})
	)
	okCount := func() int { mu.Lock(); defer mu.Unlock(); return len(committed) }
	var stopOnce sync.Once
	stopLoop := func() {
		stopOnce.Do(func() { close(stop) })
		<-loopDone
	}
	defer stopLoop() // also when the test fails half-way
	c := newClient()
	go func() {
		defer close(loopDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r, err := c.try(in, "POST", "/api/v1/identities", e.admin.token,
				map[string]any{"name": fmt.Sprintf("load-%d", i), "organizationId": e.admin.orgID, "role": "member"})
			switch {
			case err != nil:
				failures.Add(1) // the instance is down
				time.Sleep(20 * time.Millisecond)
			case r.status == 200:
				mu.Lock()
				committed = append(committed, r.str("identity", "id"))
				mu.Unlock()
			default:
				// Nothing but a 503 in the error shape is acceptable.
				if r.status != 503 {
					t.Errorf("during restart: %d %s", r.status, r.raw)
				}
				failures.Add(1)
			}
		}
	}()
	waitFor(t, "20 writes before the stop", func() bool { return okCount() >= 20 })
	failed := failures.Load()
	code := in.stop(t, sig)
	if sig == syscall.SIGTERM && code != 0 {
		t.Errorf("after SIGTERM the instance exited with %d, want 0; log:\n%s", code, in.log())
	}
	before := okCount()
	waitFor(t, "the loop to see the instance down", func() bool { return failures.Load() > failed })
	in.start(t)
	in.waitReady(t)
	waitFor(t, "20 writes after the restart", func() bool { return okCount() >= before+20 })
	stopLoop()

	mu.Lock()
	ids := append([]string(nil), committed...)
	mu.Unlock()
	for k, id := range ids {
		other := e.a
		if k%2 == 1 {
			other = e.b
		}
		e.c.do(t, other, "GET", "/api/v1/identities/"+id, e.admin.token, nil).expect(t, 200)
	}
	t.Logf("%s: %d writes answered 200 (%d before the stop), all there after the restart; %d failed while down",
		sig, len(ids), before, failures.Load())
}

// While the database is away, every request that needs it gets a 503 in
// the error shape, bounded by --db-timeout; when it comes back, the
// instances serve again by themselves. A client loop runs on both
// instances throughout, so the cut also catches statements in flight.
func (e *env) outage(t *testing.T, proxy *dbProxy, mode proxyMode) {
	id := e.azureIdentity(t, nil)
	tok := e.login(t, e.a, id).expect(t, 200).str("accessToken")

	load := e.startLoad(t)
	load.wait(t, 200, 5)
	proxy.set(mode)
	restored := false
	defer func() {
		if !restored {
			proxy.set(flowing)
		}
		load.stop()
	}()
	// The same requests on both instances, all at once (a stalled
	// database makes each wait for --db-timeout).
	requests := []struct {
		method, path, token string
		body                any
	}{
		{"GET", "/api/status", "", nil},
		{"GET", "/api/v1/identities/details", tok, nil},
		{"POST", "/api/v1/auth/azure-auth/login", "", map[string]string{"identityId": id, "jwt": e.fake.Mint(entratest.TokenOptions{})}},
		{"POST", "/api/v1/identities", e.admin.token, map[string]any{"name": "during-outage", "organizationId": e.admin.orgID, "role": "member"}},
	}
	start := time.Now()
	answers := e.c.race(t, 2*len(requests), func(i int) (*instance, string, string, string, any) {
		r := requests[i/2]
		return pick(i, e.a, e.b), r.method, r.path, r.token, r.body
	})
	t.Logf("%d requests answered in %v (--db-timeout %v)", len(answers), time.Since(start).Round(time.Millisecond), dbTimeout)
	load.wait(t, 503, 1)
	for i, r := range answers {
		if r.status != 503 {
			t.Errorf("instance %s: %s %s answered %d during the outage: %s",
				pick(i, e.a, e.b).name, requests[i/2].method, requests[i/2].path, r.status, r.raw)
			continue
		}
		r.expectError(t, 503, "ServiceUnavailable", "The database is unavailable, please retry")
	}

	proxy.set(flowing)
	restored = true
	for _, in := range []*instance{e.a, e.b} {
		in.waitReady(t)
		e.details(t, in, tok).expect(t, 200)
		e.login(t, in, id).expect(t, 200)
	}
	load.wait(t, 200, 5)
	load.stop()
	t.Logf("client loop: %v", load.summary())
}

// load is a client loop per instance, writing and reading, that records
// every status it gets.
type load struct {
	mu       sync.Mutex
	statuses map[string]map[int]int // instance: status: count
	since    map[string]map[int]int // the same, since the last wait
	quit     chan struct{}
	done     sync.WaitGroup
	once     sync.Once
}

func (e *env) startLoad(t *testing.T) *load {
	l := &load{statuses: map[string]map[int]int{}, since: map[string]map[int]int{}, quit: make(chan struct{})}
	c := newClient()
	for _, in := range []*instance{e.a, e.b} {
		l.statuses[in.name], l.since[in.name] = map[int]int{}, map[int]int{}
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for i := 0; ; i++ {
				select {
				case <-l.quit:
					return
				default:
				}
				var r *response
				var err error
				if i%2 == 0 {
					r, err = c.try(in, "POST", "/api/v1/identities", e.admin.token,
						map[string]any{"name": fmt.Sprintf("outage-load-%d", i), "organizationId": e.admin.orgID, "role": "member"})
				} else {
					r, err = c.try(in, "GET", "/api/v1/identities/details", e.admin.token, nil)
				}
				if err != nil {
					t.Errorf("instance %s: no answer during the outage: %v", in.name, err)
					return
				}
				l.mu.Lock()
				l.statuses[in.name][r.status]++
				l.since[in.name][r.status]++
				l.mu.Unlock()
				if r.status != 200 && r.status != 503 {
					t.Errorf("instance %s: answered %d during the outage, want 200 or 503: %s", in.name, r.status, r.raw)
				}
				if r.status == 503 {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	return l
}

// wait waits until the loop has had n answers with status from every
// instance since the last wait.
func (l *load) wait(t *testing.T, status, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d answers %d from each instance", n, status), func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, got := range l.since {
			if got[status] < n {
				return false
			}
		}
		return true
	})
	l.mu.Lock()
	for _, m := range l.since {
		clear(m)
	}
	l.mu.Unlock()
}

func (l *load) stop() {
	l.once.Do(func() { close(l.quit) })
	l.done.Wait()
}

func (l *load) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.statuses)
}

// instance is one gatehouse serve process.
type instance struct {
	name, bin string
	addr, url string
	dsn, app  string
	authority string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	logBuf *bytes.Buffer
}

func newInstance(t *testing.T, name, bin string, dsn *url.URL, authority string) *instance {
	addr := freeAddr(t)
	in := &instance{name: name, bin: bin, addr: addr, url: "http://" + addr, dsn: dsn.String(),
		app: dsn.Query().Get("application_name"), authority: authority, logBuf: new(bytes.Buffer)}
	t.Cleanup(func() {
		in.stop(t, syscall.SIGKILL)
		in.mu.Lock()
		defer in.mu.Unlock()
		if t.Failed() {
			t.Logf("log of instance %s:\n%s", name, tail(in.logBuf.String(), 4000))
		}
	})
	return in
}

// withApp returns u naming its connections app, so pg_stat_activity tells
// the instances apart.
func withApp(u *url.URL, app string) *url.URL {
	c := *u
	q := c.Query()
	q.Set("application_name", app)
	c.RawQuery = q.Encode()
	return &c
}

func (in *instance) start(t *testing.T) {
	cmd := exec.Command(in.bin, "serve", "--addr", in.addr, "--db", in.dsn,
		"--db-pool-size", fmt.Sprint(poolSize), "--db-timeout", dbTimeout.String(), "--log-level", "warn")
	cmd.Env = append(cleanEnv(), "AZURE_AUTHORITY_HOST="+in.authority)
	in.mu.Lock()
	fmt.Fprintf(in.logBuf, "--- start %s\n", time.Now().Format(time.RFC3339Nano))
	in.mu.Unlock()
	w := &lockedWriter{mu: &in.mu, w: in.logBuf}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Errorf("start instance %s: %v", in.name, err)
		return
	}
	exited := make(chan struct{})
	in.mu.Lock()
	in.cmd, in.exited = cmd, exited
	in.mu.Unlock()
	go func() {
		cmd.Wait()
		close(exited)
	}()
}

// waitReady polls GET /api/status until it answers 200.
func (in *instance) waitReady(t *testing.T) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startBound)
	for {
		in.mu.Lock()
		exited := in.exited
		in.mu.Unlock()
		if exited == nil {
			t.Fatalf("instance %s was not started", in.name)
		}
		select {
		case <-exited:
			t.Fatalf("instance %s exited before it was ready; log:\n%s", in.name, in.log())
		default:
		}
		resp, err := c.Get(in.url + "/api/status")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s not ready after %v (last: %v); log:\n%s", in.name, startBound, err, in.log())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// stop sends sig, waits for the process to end and returns its exit code.
func (in *instance) stop(t *testing.T, sig syscall.Signal) int {
	in.mu.Lock()
	cmd, exited := in.cmd, in.exited
	in.mu.Unlock()
	if cmd == nil {
		return -1
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(hangBound):
		cmd.Process.Kill()
		<-exited
		t.Errorf("instance %s did not stop on %v", in.name, sig)
	}
	in.mu.Lock()
	in.cmd = nil
	in.mu.Unlock()
	return cmd.ProcessState.ExitCode()
}

func (in *instance) log() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return tail(in.logBuf.String(), 4000)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// cleanEnv is the test's environment without GATEHOUSE_* settings, which
// would change the servers (a GATEHOUSE_AUTH_SECRET would hide whether the
// generated secret is shared).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEHOUSE_") && !strings.HasPrefix(kv, "AZURE_") {
			env = append(env, kv)
		}
	}
	return env
}

// buildGatehouse builds cmd/gatehouse into a temporary directory. (Not with
// -race even under go test -race: the servers' argon2id password hashing
// then takes seconds; the race detector checks the same server code in the
// in-process tests of internal/apitest.)
func buildGatehouse(t *testing.T) string {
	t.Helper()
	// go test puts its own GOROOT/bin first on the test's PATH, so this
	// finds the go command running the test even when PATH lacks one.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("cannot find the go command to build gatehouse: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "gatehouse")
	args := []string{"build", "-o", bin, "github.com/gatehouse/gatehouse/cmd/gatehouse"}
	cmd := exec.Command(goBin, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(startBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// client talks to the instances, and calls a request that outlives
// hangBound a hang.
type client struct{ http *http.Client }

func newClient() *client {
	return &client{http: &http.Client{Timeout: hangBound, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

type response struct {
	status int
	raw    []byte
	body   map[string]any
}

// try sends a request and reads the answer.
func (c *client) try(in *instance, method, path, token string, body any) (*response, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, in.url+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := &response{status: resp.StatusCode, raw: raw}
	json.Unmarshal(raw, &r.body)
	return r, nil
}

// race sends n requests at once, request(i) saying what the i-th is, and
// returns the answers in order.
func (c *client) race(t *testing.T, n int, request func(i int) (in *instance, method, path, token string, body any)) []*response {
	answers := make([]*response, n)
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		in, method, path, token, body := request(i)
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			answers[i], errs[i] = c.try(in, method, path, token, body)
		}()
	}
	start.Done()
	done.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	return answers
}

// pick alternates between instances.
func pick(i int, instances ...*instance) *instance { return instances[i%len(instances)] }

// do is try that fails the test when no answer comes.
func (c *client) do(t *testing.T, in *instance, method, path, token string, body any) *response {
	r, err := c.try(in, method, path, token, body)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s %s on instance %s: no answer within %v", method, path, in.name, hangBound)
		}
		t.Fatalf("%s %s on instance %s: %v", method, path, in.name, err)
	}
	return r
}

func (r *response) expect(t *testing.T, status int) *response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.raw)
	}
	return r
}

// expectError checks an error answer in Infisical's shape.
func (r *response) expectError(t *testing.T, status int, name, message string) *response {
	t.Helper()
	r.expect(t, status)
	if got := r.str("error"); got != name {
		t.Errorf("error %q, want %q; body: %s", got, name, r.raw)
	}
	if got := r.str("message"); got != message {
		t.Errorf("message %q, want %q; body: %s", got, message, r.raw)
	}
	if got, _ := r.body["statusCode"].(float64); int(got) != status {
		t.Errorf("statusCode %v, want %d", r.body["statusCode"], status)
	}
	if !strings.HasPrefix(r.str("reqId"), "req-") {
		t.Errorf("no reqId in %s", r.raw)
	}
	return r
}

func (r *response) str(keys ...string) string {
	var v any = r.body
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}
