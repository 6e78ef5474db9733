package observability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/lienthong/lienthong/catalog/sqlstore"
	cpmetrics "github.com/lienthong/lienthong/controlplane/metrics"
	"github.com/lienthong/lienthong/gateway/exchange"
	gwmetrics "github.com/lienthong/lienthong/gateway/metrics"
)

// promtool finds Prometheus's own rule checker (Debian's prometheus
// package), which parses and evaluates PromQL exactly as the server will.
// Without it the test skips, except under LIENTHONG_REQUIRE_SERVICES=1 (CI),
// where a silent skip would leave the alerts unevaluated.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool not found (apt-get install prometheus): the alert rules are not evaluated"
		if os.Getenv("LIENTHONG_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg + "; LIENTHONG_REQUIRE_SERVICES=1 requires it")
		}
		t.Skip(msg)
	}
	return p
}

func runPromtool(t *testing.T, bin string, args ...string) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// rulesTests is promtool's unit-test file format, as far as this test reads it.
type rulesTests struct {
	Tests []struct {
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestAlertRulesEvaluate runs alerts.yml through Prometheus's own parser and
// rule evaluator: `promtool check rules`, then `promtool test rules` on
// testdata/alerts_test.yml, where every alert must both fire (with the
// labels and rendered annotations an operator reads) and stay silent on a
// near miss. The histories use only labels the processes export.
func TestAlertRulesEvaluate(t *testing.T) {
	bin := promtool(t)
	runPromtool(t, bin, "check", "rules", "alerts.yml")
	runPromtool(t, bin, "test", "rules", filepath.Join("testdata", "alerts_test.yml"))

	raw, err := os.ReadFile(filepath.Join("testdata", "alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var tests rulesTests
	if err := yaml.Unmarshal(raw, &tests); err != nil {
		t.Fatalf("testdata/alerts_test.yml: %v", err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	exported := exportedLabels(t)
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname] = true
			} else {
				silent[at.Alertname] = true
			}
		}
		for _, s := range tc.InputSeries {
			if err := checkSeries(s.Series, exported); err != nil {
				t.Errorf("testdata/alerts_test.yml: %v", err)
			}
		}
	}
	for _, name := range alertNames(t) {
		if !fires[name] || !silent[name] {
			t.Errorf("%s: the unit tests must show it firing (%v) and silent on a near miss (%v)", name, fires[name], silent[name])
		}
	}
}

// TestRuleAndDashboardLabels checks every label an alert or a panel
// selects on or groups by is one the processes export (or one Prometheus
// adds: instance, job, le), so a renamed label cannot silently empty an
// alert.
func TestRuleAndDashboardLabels(t *testing.T) {
	exported := exportedLabels(t)
	anyMetric := map[string]bool{"instance": true, "job": true, "le": true}
	for _, labels := range exported {
		for l := range labels {
			anyMetric[l] = true
		}
	}
	check := func(where, expr string) {
		e := quoted.ReplaceAllStringFunc(expr, func(s string) string { return strings.Repeat("x", len(s)) })
		for _, m := range selector.FindAllStringSubmatchIndex(e, -1) {
			name := e[m[2]:m[3]]
			labels, ok := exported[name]
			if !ok {
				labels = anyMetric
			}
			for _, l := range matcherName.FindAllStringSubmatch(e[m[4]:m[5]], -1) {
				if !labels[l[1]] && l[1] != "instance" && l[1] != "job" {
					t.Errorf("%s: %s{%s=…}: %s has no such label", where, name, l[1], name)
				}
			}
		}
		for _, g := range groupBy.FindAllStringSubmatch(e, -1) {
			for _, l := range strings.Split(g[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !anyMetric[l] {
					t.Errorf("%s: grouped by %s, which no metric exports", where, l)
				}
			}
		}
	}
	for name, expr := range alertExprs(t) {
		check(name, expr)
	}
	for title, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			check(title, e)
		}
	}
}

// TestDashboardQueriesParse hands every dashboard query to Prometheus's
// parser, as recording rules in a scratch rule file (promtool 2.42 has no
// bare query check), after replacing Grafana's variables with values.
func TestDashboardQueriesParse(t *testing.T) {
	bin := promtool(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for title, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			n++
			e = strings.NewReplacer("$__rate_interval", "5m", "$instance", ".+").Replace(e)
			if variables.MatchString(e) {
				t.Errorf("%s: %s uses a dashboard variable this test does not know", title, e)
				continue
			}
			q, _ := json.Marshal(e)
			fmt.Fprintf(&b, "      - record: dashboard:query_%d\n        expr: %s\n", n, q)
		}
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, bin, "check", "rules", f)
}

var (
	seriesName  = regexp.MustCompile(`^\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^{}]*)\}\s*$`)
	selector    = regexp.MustCompile(`([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^{}]*)\}`)
	matcherName = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)`)
	groupBy     = regexp.MustCompile(`\bby\s*\(([^()]*)\)`)
)

// checkSeries checks one promtool input series: a metric the processes
// register, with only labels that metric exports (plus instance, job and,
// on a histogram's buckets, le).
func checkSeries(series string, exported map[string]map[string]bool) error {
	m := seriesName.FindStringSubmatch(series)
	if m == nil {
		return fmt.Errorf("series %q: not name{labels}", series)
	}
	name := m[1]
	base, labels := name, exported[name]
	if labels == nil {
		base = strings.TrimSuffix(name, "_bucket")
		labels = exported[base]
	}
	if labels == nil {
		return fmt.Errorf("series %s: no process exports it", name)
	}
	for _, l := range matcherName.FindAllStringSubmatch(m[2], -1) {
		if l[1] == "instance" || l[1] == "job" || (l[1] == "le" && base != name) || labels[l[1]] {
			continue
		}
		return fmt.Errorf("series %s: label %s is not one %s exports", name, l[1], base)
	}
	return nil
}

// exportedLabels gathers every metric family of the gateway, the feed
// router and the control plane (on an empty SQLite catalog) after one
// observation of each, and returns each family's label names.
func exportedLabels(t *testing.T) map[string]map[string]bool {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	gw := gwmetrics.New(gwmetrics.Sources{
		FreshAsOf: func() time.Time { return now }, MaxStaleness: time.Hour,
		ConfigRevision:      func() int64 { return 1 },
		Bundle:              func() (string, time.Time) { return "r1", now },
		CertificateNotAfter: func() time.Time { return now.Add(time.Hour) },
		Ready:               func() map[string]bool { return map[string]bool{"configuration": true} },
		MaxLabelValues:      1, // the second consumer overflows, so the overflow counter has a series
	})
	for _, o := range []struct{ consumer, outcome, kind string }{
		{"c1", exchange.OutcomeAllowed, ""}, {"c1", exchange.OutcomeDenied, exchange.KindRateLimited}, {"c2", exchange.OutcomeDenied, "field-not-granted"},
	} {
		gw.Finished(exchange.Observation{Side: "provider", Mode: "query", Consumer: o.consumer, Provider: "p", Dataset: "d",
			Outcome: o.outcome, Kind: o.kind, Status: 200, Bytes: 1,
			Total: time.Millisecond, Decision: time.Millisecond, Backend: time.Millisecond, Projection: time.Millisecond, AuditWait: time.Millisecond})
	}
	gw.AuditCommitted(1, time.Millisecond)
	gw.SetFeedLag("c", "d", 1)
	fr := gwmetrics.NewFeedRouter()
	fr.WatchReady(func() map[string]bool { return map[string]bool{"kafka": true} })
	fr.SetFeedLag("c", "d", 1)
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cp := cpmetrics.New(cpmetrics.Sources{Store: store,
		Ready: func() map[string]bool { return map[string]bool{"store": true} },
		Shipping: func(context.Context) ([]cpmetrics.GatewayShipping, error) {
			return []cpmetrics.GatewayShipping{{Gateway: "g", Lag: 1, ReportedAt: now}}, nil
		}})
	cp.BundleBuilt(time.Millisecond)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(http.ResponseWriter, *http.Request) {})
	cp.Middleware(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	out := map[string]map[string]bool{}
	for _, reg := range []*prometheus.Registry{gw.Registry(), fr.Registry(), cp.Registry()} {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			labels := out[mf.GetName()]
			if labels == nil {
				labels = map[string]bool{}
				out[mf.GetName()] = labels
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = true
				}
			}
		}
	}
	for _, name := range allNames() {
		if _, ok := out[name]; !ok {
			t.Errorf("%s: no series after one observation of each; this test cannot learn its labels", name)
		}
	}
	return out
}

// alertExprs reads alerts.yml: alert name → expression.
func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf rules
	if err := yaml.Unmarshal(raw, &rf); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	out := map[string]string{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	return out
}

func alertNames(t *testing.T) []string {
	t.Helper()
	var names []string
	for name := range alertExprs(t) {
		names = append(names, name)
	}
	return names
}

// dashboardExprs reads dashboard.json: panel title → its queries.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	out := map[string][]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	return out
}
