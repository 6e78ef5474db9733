package observability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/lienthong/lienthong/catalog/sqlstore"
	cpmetrics "github.com/lienthong/lienthong/controlplane/metrics"
	"github.com/lienthong/lienthong/gateway/exchange"
	gwmetrics "github.com/lienthong/lienthong/gateway/metrics"
)

// family is one metric family a process registers: its type and the
// names of the labels its series carry (Prometheus adds instance and job
// when it scrapes).
type family struct {
	typ    dto.MetricType
	labels map[string]bool
	// buckets are a histogram's upper bounds (+Inf aside).
	buckets map[float64]bool
}

// families gathers every family the gateways, the feed routers run alone
// and the control plane register, from registries given every source they
// read at scrape time (the control plane's catalog an empty SQLite store)
// and one observation of each event, so that each family has a series and
// its labels are the code's own.
func families(t *testing.T) map[string]family {
	t.Helper()
	now := time.Now()
	gw := gwmetrics.New(gwmetrics.Sources{
		FreshAsOf: func() time.Time { return now.Add(-time.Minute) }, MaxStaleness: time.Hour,
		ConfigRevision:      func() int64 { return 7 },
		Bundle:              func() (string, time.Time) { return "r7", now.Add(-time.Minute) },
		CertificateNotAfter: func() time.Time { return now.Add(24 * time.Hour) },
		Ready:               func() map[string]bool { return map[string]bool{"configuration": true} },
		// One value per label, so the second consumer overflows.
		MaxLabelValues: 1,
	})
	for _, o := range []exchange.Observation{
		{Side: "provider", Consumer: "c1", Provider: "p", Dataset: "d", Mode: "query", Outcome: exchange.OutcomeAllowed, Status: 200, Bytes: 1,
			Total: time.Millisecond, Decision: time.Millisecond, Backend: time.Millisecond, Projection: time.Millisecond, AuditWait: time.Millisecond},
		{Side: "provider", Consumer: "c2", Provider: "p", Dataset: "d", Mode: "query", Outcome: exchange.OutcomeDenied, Kind: exchange.KindRateLimited,
			Status: 429, Total: time.Millisecond},
	} {
		gw.Finished(o)
	}
	gw.AuditCommitted(1, time.Millisecond)
	gw.SetFeedLag("c1", "d", 3)
	ctx := context.Background()
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cp := cpmetrics.New(cpmetrics.Sources{Store: store,
		Ready: func() map[string]bool { return map[string]bool{"store": true} },
		Shipping: func(context.Context) ([]cpmetrics.GatewayShipping, error) {
			return []cpmetrics.GatewayShipping{{Gateway: "gw", Lag: 1, ReportedAt: now}}, nil
		}})
	cp.BundleBuilt(time.Millisecond)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(http.ResponseWriter, *http.Request) {})
	cp.Middleware(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	fr := gwmetrics.NewFeedRouter()
	fr.WatchReady(func() map[string]bool { return map[string]bool{"kafka": true} })
	fr.SetFeedLag("c1", "d", 3)
	out := map[string]family{}
	for _, g := range []prometheus.Gatherer{gw.Registry(), cp.Registry(), fr.Registry()} {
		mfs, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			f, ok := out[mf.GetName()]
			if !ok {
				f = family{typ: mf.GetType(), labels: map[string]bool{}, buckets: map[float64]bool{}}
				out[mf.GetName()] = f
			}
			for _, m := range mf.GetMetric() {
				for _, b := range m.GetHistogram().GetBucket() {
					f.buckets[b.GetUpperBound()] = true
				}
				for _, l := range m.GetLabel() {
					f.labels[l.GetName()] = true
				}
			}
		}
	}
	for _, name := range allNames() {
		if _, ok := out[name]; !ok {
			t.Fatalf("%s is in Names but the registries gave no series of it: feed it in families", name)
		}
	}
	return out
}

// exported is what the processes export, as a query sees it.
type exported struct {
	// family is the family of each series name a query may use
	// (histograms add _bucket, _sum and _count).
	family map[string]string
	fams   map[string]family
}

// targetLabels are the labels Prometheus adds to every series it scrapes.
var targetLabels = []string{"instance", "job"}

// labels are the label names a series of name may carry: its family's,
// the target's, and le on a histogram's buckets.
func (x exported) labels(name string) (map[string]bool, bool) {
	fam, ok := x.family[name]
	if !ok {
		return nil, false
	}
	out := map[string]bool{}
	for l := range x.fams[fam].labels {
		out[l] = true
	}
	for _, l := range targetLabels {
		out[l] = true
	}
	if strings.HasSuffix(name, "_bucket") && x.fams[fam].typ == dto.MetricType_HISTOGRAM {
		out["le"] = true
	}
	return out, true
}

// registered is what the gateways, the feed routers and the control plane
// export.
func registered(t *testing.T) exported {
	t.Helper()
	x := exported{family: map[string]string{}, fams: families(t)}
	for _, name := range allNames() {
		x.family[name] = name
		if x.fams[name].typ == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				x.family[name+s] = name
			}
		}
	}
	return x
}

// allNames are the metric families of the gateways, the feed routers run
// alone and the control plane.
func allNames() []string {
	return slices.Concat(gwmetrics.Names(), gwmetrics.FeedRouterNames(), cpmetrics.Names())
}

// promqlWords are PromQL's keywords, which look like metric names.
var promqlWords = map[string]bool{"and": true, "or": true, "unless": true, "by": true, "without": true, "on": true,
	"ignoring": true, "group_left": true, "group_right": true, "offset": true, "bool": true, "inf": true, "nan": true}

var (
	quoted    = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	matchers  = regexp.MustCompile(`\{[^{}]*\}`)
	grouping  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	ranges    = regexp.MustCompile(`\[[^\[\]]*\]`)
	variables = regexp.MustCompile(`\$\{?\w+\}?`)
	durations = regexp.MustCompile(`\boffset\s+\w+`)
	word      = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
)

// metricNames returns the metric names a PromQL expression selects, after
// checking that its brackets balance: string literals, label matchers,
// grouping clauses, ranges, offsets and dashboard variables are set aside;
// a word followed by "(" is a function; numbers are not words.
func metricNames(expr string) ([]string, error) {
	if err := balanced(expr); err != nil {
		return nil, err
	}
	e := quoted.ReplaceAllString(expr, `""`)
	e = variables.ReplaceAllString(e, " ")
	e = matchers.ReplaceAllString(e, " ")
	e = grouping.ReplaceAllString(e, " ")
	e = ranges.ReplaceAllString(e, " ")
	e = durations.ReplaceAllString(e, " ")
	var names []string
	for _, m := range word.FindAllString(e, -1) {
		if strings.HasSuffix(m, "(") || promqlWords[strings.ToLower(m)] {
			continue
		}
		names = append(names, m)
	}
	return names, nil
}

var (
	matcherLabel  = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)`)
	groupedLabels = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)`)
)

// labelNames returns the label names an expression matches on or groups
// by, in order of appearance within each kind (matchers first).
func labelNames(expr string) []string {
	e := quoted.ReplaceAllString(expr, `""`)
	var out []string
	for _, m := range matchers.FindAllString(e, -1) {
		for _, l := range matcherLabel.FindAllStringSubmatch(m, -1) {
			out = append(out, l[1])
		}
	}
	for _, g := range groupedLabels.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

func balanced(expr string) error {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for _, c := range quoted.ReplaceAllString(expr, `""`) {
		switch c {
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return errUnbalanced
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return errUnbalanced
	}
	return nil
}

type parseError string

func (e parseError) Error() string { return string(e) }

const errUnbalanced = parseError("brackets do not balance")

// TestMetricNamesOfAnExpression checks the extractor itself on the shapes
// the rules and the dashboard use, and on broken input.
func TestMetricNamesOfAnExpression(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{x="y z(", b=~"c|d"}[5m])))`, []string{"a_bucket"}},
		{`a > 0.5 * b`, []string{"a", "b"}},
		{`sum by (i) (rate(a{o="denied"}[5m])) > 3 * sum by (i) (rate(a[1h] offset 5m))`, []string{"a", "a"}},
		{`(c{instance=~"$instance"} - time()) / 86400`, []string{"c"}},
		{`rate(d[$__rate_interval]) and e == 0`, []string{"d", "e"}},
	} {
		got, err := metricNames(c.expr)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %v %v, want %v", c.expr, got, err, c.want)
		}
	}
	for _, bad := range []string{`rate(a[5m]`, `a{b="c"`, `sum(a))`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// TestLabelNamesOfAnExpression checks the label extractor on the shapes
// the rules and the dashboard use.
func TestLabelNamesOfAnExpression(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{x="y, z=(", b=~"c|d"}[5m])))`, []string{"x", "b", "instance", "le"}},
		{`a{check!~"feed-router\\..*"} == 0 or b{c!="d"}`, []string{"check", "c"}},
		{`sum without(le) (a) / on (instance) group_left(job) b`, []string{"le", "instance", "job"}},
		{`a > 0.5 * b`, nil},
	} {
		if got := labelNames(c.expr); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.expr, got, c.want)
		}
	}
}

// rules is the Prometheus rule file format, decoded strictly.
type rules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// decodeStrict decodes the YAML file at path into v, refusing unknown
// fields (a misspelt key would otherwise be ignored).
func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

// TestAlertRules decodes alerts.yml strictly, checks each rule is complete
// and each expression names only registered metrics, and that the alerts
// the operations guide promises are there.
func TestAlertRules(t *testing.T) {
	var rf rules
	decodeStrict(t, "alerts.yml", &rf)
	known := registered(t)
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q is unnamed or empty", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || seen[r.Alert] {
				t.Errorf("alert %q is unnamed or named twice", r.Alert)
			}
			seen[r.Alert] = true
			if r.For != "" && !promDuration.MatchString(r.For) {
				t.Errorf("%s: for %q is not a duration", r.Alert, r.For)
			}
			if !slices.Contains([]string{"info", "warning", "critical"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description are required", r.Alert)
			}
			checkExpr(t, r.Alert, r.Expr, known)
		}
	}
	for _, want := range []string{"LienthongGatewayConfigurationStale", "LienthongGatewayCertificateExpiring", "LienthongAssessmentLapsingSoon",
		"LienthongAuditCommitSlow", "LienthongDenialsSpiking", "LienthongFeedLagGrowing", "LienthongAuditShippingLagGrowing",
		"LienthongAuditShippingSilent", "LienthongGatewayNotReady", "LienthongFeedRouterNotReady"} {
		if !seen[want] {
			t.Errorf("alert %s is missing", want)
		}
	}
}

// checkExpr checks that expr names registered metrics only, and selects
// and groups by labels those metrics carry (a label no series has would
// make a matcher select nothing, or a grouping merge everything).
func checkExpr(t *testing.T, where, expr string, x exported) {
	t.Helper()
	names, err := metricNames(expr)
	if err != nil {
		t.Errorf("%s: %v: %s", where, err, expr)
		return
	}
	if len(names) == 0 {
		t.Errorf("%s: names no metric: %s", where, expr)
	}
	carried := map[string]bool{}
	for _, n := range names {
		labels, ok := x.labels(n)
		if !ok {
			t.Errorf("%s: %s is not a registered metric", where, n)
		}
		for l := range labels {
			carried[l] = true
		}
	}
	for _, l := range labelNames(expr) {
		if !carried[l] {
			t.Errorf("%s: label %s is on none of %v", where, l, names)
		}
	}
}

// dashboard is what the tests read of dashboard.json: its panels and
// their queries.
type dashboard struct {
	Title  string `json:"title"`
	Panels []struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// readDashboard reads dashboard.json, for the metric names check and the
// promtool parse alike.
func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	return d
}

// TestDashboard reads dashboard.json and checks every panel's queries name
// only registered metrics, and every registered family of the gateways'
// exchanges appears on some panel.
func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	known := registered(t)
	used := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] || len(p.Targets) == 0 {
			t.Errorf("panel %d %q: duplicate id or no query", p.ID, p.Title)
		}
		ids[p.ID] = true
		for _, tg := range p.Targets {
			checkExpr(t, p.Title, tg.Expr, known)
			names, _ := metricNames(tg.Expr)
			for _, n := range names {
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")] = true
			}
		}
	}
	for _, name := range allNames() {
		if !used[name] && name != gwmetrics.LabelValuesOverflowed && name != cpmetrics.CatalogScrapeErrorsTotal {
			t.Errorf("%s is on no panel", name)
		}
	}
}

// TestEveryMetricIsDocumented: docs/operations.md names every metric the
// processes register (in full, or after its process's prefix in the
// tables), so an operator can look each one up.
func TestEveryMetricIsDocumented(t *testing.T) {
	raw, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, name := range allNames() {
		short := strings.TrimPrefix(strings.TrimPrefix(name, "lienthong_gateway_"), "lienthong_controlplane_")
		if !strings.Contains(doc, "`"+name+"`") && !strings.Contains(doc, "`"+short+"`") && !strings.Contains(doc, "`"+short+"{") {
			t.Errorf("%s is not in docs/operations.md", name)
		}
	}
}
