package observability_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	cpmetrics "github.com/lienthong/lienthong/controlplane/metrics"
	"github.com/lienthong/lienthong/gateway/exchange"
	gwmetrics "github.com/lienthong/lienthong/gateway/metrics"
)

// registered is every metric family the processes register, with the
// series names a query may use (histograms add _bucket, _sum, _count),
// learnt from the registries themselves after one observation of each.
func registered(t *testing.T) map[string]bool {
	t.Helper()
	gw := gwmetrics.New(gwmetrics.Sources{})
	gw.Finished(exchange.Observation{Side: "provider", Mode: "query", Outcome: exchange.OutcomeAllowed, Status: 200, Bytes: 1,
		Total: time.Millisecond, Decision: time.Millisecond, Backend: time.Millisecond, Projection: time.Millisecond, AuditWait: time.Millisecond})
	gw.AuditCommitted(1, time.Millisecond)
	cp := cpmetrics.New(cpmetrics.Sources{})
	cp.BundleBuilt(time.Millisecond)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(http.ResponseWriter, *http.Request) {})
	cp.Middleware(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	types := map[string]dto.MetricType{}
	for _, g := range []interface {
		Gather() ([]*dto.MetricFamily, error)
	}{gw.Registry(), cp.Registry()} {
		mfs, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			types[mf.GetName()] = mf.GetType()
		}
	}
	out := map[string]bool{}
	fr := gwmetrics.NewFeedRouter()
	fr.WatchReady(func() map[string]bool { return map[string]bool{"kafka": true} })
	for _, g := range []interface {
		Gather() ([]*dto.MetricFamily, error)
	}{fr.Registry()} {
		mfs, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			types[mf.GetName()] = mf.GetType()
		}
	}
	for _, name := range allNames() {
		out[name] = true
		if types[name] == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[name+s] = true
			}
		}
	}
	return out
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

var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

// TestAlertRules decodes alerts.yml strictly, checks each rule is complete
// and each expression names only registered metrics, and that the alerts
// the operations guide promises are there.
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var rf rules
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
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

func checkExpr(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	names, err := metricNames(expr)
	if err != nil {
		t.Errorf("%s: %v: %s", where, err, expr)
		return
	}
	if len(names) == 0 {
		t.Errorf("%s: names no metric: %s", where, expr)
	}
	for _, n := range names {
		if !known[n] {
			t.Errorf("%s: %s is not a registered metric", where, n)
		}
	}
}

// TestDashboard reads dashboard.json and checks every panel's queries name
// only registered metrics, and every registered family of the gateways'
// exchanges appears on some panel.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
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
