package loadgen_test

import (
	"context"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apitest"
	"github.com/gatehouse/gatehouse/internal/loadgen"
)

// TestScenariosAgainstGatehouse runs every scenario briefly against a real
// server (SQLite) and checks every request succeeded, with no Entra ID key
// fetch once the cache is warm.
func TestScenariosAgainstGatehouse(t *testing.T) {
	s := apitest.Start(t, apitest.SQLite)
	const clients, ops = 4, 40
	g := &loadgen.Gatehouse{URL: s.URL, Client: loadgen.NewClient(clients, 0), Entra: s.Entra}
	ctx := context.Background()
	if err := g.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Bootstrap(ctx); err == nil || !strings.Contains(err.Error(), "--admin-token") {
		t.Errorf("second bootstrap: %v, want a hint to pass --admin-token", err)
	}
	admin := g.AdminToken
	g.AdminToken = ""
	if err := g.UseAdminToken(ctx, admin); err != nil || g.OrgID == "" {
		t.Fatalf("UseAdminToken: %v, org %q", err, g.OrgID)
	}
	want := map[string][]string{
		"login":           {loadgen.LabelLogin},
		"details":         {loadgen.LabelDetails},
		"details-limited": {loadgen.LabelDetailsLimited},
		"attach":          {loadgen.LabelAttach},
		"create-attach":   {loadgen.LabelCreate, loadgen.LabelAttach},
	}
	want["status"] = []string{loadgen.LabelStatus}
	for _, sc := range append(loadgen.Scenarios, loadgen.Baseline) {
		t.Run(sc.Name, func(t *testing.T) {
			op, err := sc.Prepare(ctx, g, loadgen.Options{Concurrency: clients, AttachPool: ops})
			if err != nil {
				t.Fatal(err)
			}
			keys := s.Entra.Requests()
			res, err := loadgen.Run(ctx, loadgen.Config{Concurrency: clients, Requests: ops}, op)
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops != ops || res.OpErrors != 0 {
				t.Fatalf("%d ops, %d failed (%v); want %d, 0", res.Ops, res.OpErrors, res.FirstOpErr, ops)
			}
			for _, label := range want[sc.Name] {
				p := res.Path(label)
				if p == nil || p.Requests != ops || p.ErrorCount() != 0 {
					t.Errorf("%s: %+v", label, p)
				}
			}
			if got := s.Entra.Requests() - keys; got != 0 {
				t.Errorf("%d Entra ID key-set requests during the run, want 0", got)
			}
		})
	}
	if _, ok := loadgen.ScenarioByName("nope"); ok {
		t.Error("unknown scenario found")
	}
}
