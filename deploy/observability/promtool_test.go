package observability_test

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	cpmetrics "github.com/lienthong/lienthong/controlplane/metrics"
	"github.com/lienthong/lienthong/gateway/exchange"
	gwmetrics "github.com/lienthong/lienthong/gateway/metrics"
)

// ruleTestsFile holds the unit tests of alerts.yml, in the format of
// `promtool test rules`.
const ruleTestsFile = "testdata/alerts_test.yml"

// promtool is the path of Prometheus's promtool (Debian's prometheus
// package). Without it the test skips, unless LIENTHONG_REQUIRE_SERVICES=1.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("LIENTHONG_REQUIRE_SERVICES") == "1" {
			t.Fatal("promtool is required (LIENTHONG_REQUIRE_SERVICES=1): apt-get install prometheus")
		}
		t.Skip("promtool not installed (apt-get install prometheus); the alert rules are parsed but not evaluated")
	}
	return p
}

// runPromtool runs promtool with args in this directory and fails the test
// with its output when it does not succeed.
func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAlertRulesEvaluate has Prometheus's own engine check alerts.yml
// (expressions, templates, durations, duplicate rules) and run its unit
// tests: for every alert, series histories where it must fire, with its
// labels and annotations as rendered, and near misses where it must not.
func TestAlertRulesEvaluate(t *testing.T) {
	runPromtool(t, "check", "rules", "--lint=all", "--lint-fatal", "alerts.yml")
	runPromtool(t, "test", "rules", ruleTestsFile)
}

// ruleTests is the file format of `promtool test rules`, as far as
// testdata/alerts_test.yml uses it.
type ruleTests struct {
	RuleFiles          []string `yaml:"rule_files"`
	EvaluationInterval string   `yaml:"evaluation_interval"`
	Tests              []struct {
		Interval    string `yaml:"interval"`
		InputSeries []struct {
			Series string `yaml:"series"`
			Values string `yaml:"values"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

var (
	seriesShape = regexp.MustCompile(`^([A-Za-z_:][A-Za-z0-9_:]*)\{(.*)\}$`)
	labelPair   = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)`)
)

// parseSeries reads a series as the rule tests write it:
// name{label="value", ...}.
func parseSeries(s string) (string, map[string]string, error) {
	m := seriesShape.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return "", nil, fmt.Errorf("not name{labels}: %s", s)
	}
	labels := map[string]string{}
	for rest := m[2]; strings.TrimSpace(rest) != ""; {
		p := labelPair.FindStringSubmatch(rest)
		if p == nil {
			return "", nil, fmt.Errorf("bad label at %q in %s", rest, s)
		}
		if _, dup := labels[p[1]]; dup {
			return "", nil, fmt.Errorf("label %s twice in %s", p[1], s)
		}
		v, err := strconv.Unquote(`"` + p[2] + `"`)
		if err != nil {
			return "", nil, fmt.Errorf("label %s in %s: %w", p[1], s, err)
		}
		labels[p[1]] = v
		rest = rest[len(p[0]):]
	}
	return m[1], labels, nil
}

// TestParseSeries checks the series reader on good and broken input.
func TestParseSeries(t *testing.T) {
	name, labels, err := parseSeries(`a_b{x="1", y="p\"q", le="+Inf"}`)
	if err != nil || name != "a_b" || len(labels) != 3 || labels["y"] != `p"q` || labels["le"] != "+Inf" {
		t.Fatalf("%s %v %v", name, labels, err)
	}
	for _, bad := range []string{`a`, `a{x=1}`, `a{x="1" y="2"}`, `a{x="1", x="2"}`, `{x="1"}`} {
		if _, _, err := parseSeries(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// exchangeSides are the sides an exchange is observed on (audit.Record's
// Side).
var exchangeSides = []string{"consumer", "provider"}

// checkSeries checks one input series of the rule tests is one the
// processes really export: a registered name, only its family's labels and
// the target's (instance and job, both required), and, where the code fixes
// a label's values, one of them.
func checkSeries(x exported, name string, labels map[string]string) []error {
	allowed, ok := x.labels(name)
	if !ok {
		return []error{fmt.Errorf("%s is not a registered metric", name)}
	}
	var errs []error
	for l := range labels {
		if !allowed[l] {
			errs = append(errs, fmt.Errorf("%s has no label %s", name, l))
		}
	}
	for _, l := range targetLabels {
		if labels[l] == "" {
			errs = append(errs, fmt.Errorf("%s lacks the target label %s Prometheus adds", name, l))
		}
	}
	if le, ok := labels["le"]; ok {
		if b, err := strconv.ParseFloat(le, 64); err != nil || (!math.IsInf(b, 1) && !x.fams[x.family[name]].buckets[b]) {
			errs = append(errs, fmt.Errorf("%s: le %q is not one of the histogram's buckets", name, le))
		}
	}
	if side, ok := labels["side"]; ok && !slices.Contains(exchangeSides, side) {
		errs = append(errs, fmt.Errorf("%s: side %q", name, side))
	}
	if w, ok := labels["within"]; ok {
		var windows []string
		for _, win := range cpmetrics.Windows {
			windows = append(windows, win.Label)
		}
		if !slices.Contains(windows, w) {
			errs = append(errs, fmt.Errorf("%s: within %q is not one of the control plane's windows %v", name, w, windows))
		}
	}
	if name == gwmetrics.ExchangesTotal {
		// An empty label is no label to Prometheus: an allowed exchange
		// has no reason.
		reason, outcome := labels["reason"], labels["outcome"]
		if exchange.BoundedKind(reason) != reason {
			errs = append(errs, fmt.Errorf("%s: reason %q is not a problem kind the gateway counts", name, reason))
		}
		var possible []string
		for _, status := range []int{200, 403, 429, 502, 503} {
			possible = append(possible, exchange.OutcomeOf(reason, status))
		}
		if !slices.Contains(possible, outcome) {
			errs = append(errs, fmt.Errorf("%s: outcome %q with reason %q: the gateway says %v", name, outcome, reason, possible))
		}
	}
	return errs
}

// TestAlertRuleTestsAreReal checks the unit tests of alerts.yml before
// promtool runs them: each input series is one the code exports (name,
// labels, fixed values), so an alert that selects a wrong metric or label
// cannot fire in them; and every alert has a history where it fires and a
// near miss where it must not: an evaluation expecting no alert, or, beside
// the alerts expected, a series of a metric the alert reads that no
// expected alert is about.
func TestAlertRuleTestsAreReal(t *testing.T) {
	var rf rules
	decodeStrict(t, "alerts.yml", &rf)
	var rt ruleTests
	decodeStrict(t, ruleTestsFile, &rt)
	if !slices.Equal(rt.RuleFiles, []string{"../alerts.yml"}) {
		t.Errorf("%s tests %v, want ../alerts.yml", ruleTestsFile, rt.RuleFiles)
	}
	x := registered(t)
	type ruleInfo struct {
		families map[string]bool
		labels   map[string]string
	}
	alerts := map[string]ruleInfo{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			names, _ := metricNames(r.Expr)
			fams := map[string]bool{}
			for _, n := range names {
				fams[x.family[n]] = true
			}
			alerts[r.Alert] = ruleInfo{families: fams, labels: r.Labels}
		}
	}
	fires, nearMiss := map[string]bool{}, map[string]bool{}
	for i, tc := range rt.Tests {
		type input struct {
			family string
			labels map[string]string
		}
		var inputs []input
		for _, in := range tc.InputSeries {
			name, labels, err := parseSeries(in.Series)
			if err != nil {
				t.Errorf("test %d: %v", i, err)
				continue
			}
			for _, err := range checkSeries(x, name, labels) {
				t.Errorf("test %d: %v", i, err)
			}
			inputs = append(inputs, input{x.family[name], labels})
		}
		for _, at := range tc.AlertRuleTest {
			rule, ok := alerts[at.Alertname]
			if !ok {
				t.Errorf("test %d: %s is not an alert of alerts.yml", i, at.Alertname)
				continue
			}
			reads := false
			for _, in := range inputs {
				reads = reads || rule.families[in.family]
			}
			if !reads {
				t.Errorf("test %d: no input series is of a metric %s reads", i, at.Alertname)
				continue
			}
			if len(at.ExpAlerts) == 0 {
				nearMiss[at.Alertname] = true
				continue
			}
			fires[at.Alertname] = true
			for _, in := range inputs {
				if !rule.families[in.family] {
					continue
				}
				about := false
				for _, exp := range at.ExpAlerts {
					if exp.ExpLabels["severity"] != rule.labels["severity"] {
						t.Errorf("test %d: %s expected with severity %q", i, at.Alertname, exp.ExpLabels["severity"])
					}
					about = about || aboutSeries(exp.ExpLabels, rule.labels, in.labels)
				}
				if !about {
					nearMiss[at.Alertname] = true
				}
			}
		}
	}
	for name := range alerts {
		if !fires[name] {
			t.Errorf("%s: no test where it fires", name)
		}
		if !nearMiss[name] {
			t.Errorf("%s: no near miss, where it must not fire", name)
		}
	}
}

// aboutSeries says whether an expected alert (its labels but the rule's
// own) is about a series: every label it carries, the series carries too.
func aboutSeries(expected, ruleLabels, series map[string]string) bool {
	for l, v := range expected {
		if _, own := ruleLabels[l]; own {
			continue
		}
		if series[l] != v {
			return false
		}
	}
	return true
}

// dashboardVariables stand for the dashboard's Grafana variables, so its
// queries become plain PromQL.
var dashboardVariables = strings.NewReplacer("$__rate_interval", "5m", "$instance", ".+")

// TestDashboardQueriesParse has Prometheus's parser read every query of
// dashboard.json: promtool 2.42 has no command to parse a lone query, so
// each becomes a recording rule of a rule file promtool checks.
func TestDashboardQueriesParse(t *testing.T) {
	bin := promtool(t)
	d := readDashboard(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var recs []rule
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			expr := dashboardVariables.Replace(tg.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %d: a variable the test does not know: %s", p.ID, tg.Expr)
			}
			recs = append(recs, rule{Record: fmt.Sprintf("dashboard:panel_%d_%d", p.ID, i), Expr: expr})
		}
	}
	if len(recs) == 0 {
		t.Fatal("dashboard.json has no queries")
	}
	out, err := yaml.Marshal(map[string]any{"groups": []map[string]any{{"name": "dashboard", "rules": recs}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(bin, "check", "rules", "--lint=none", path).CombinedOutput(); err != nil {
		t.Fatalf("a dashboard query does not parse: %v\n%s", err, msg)
	}
}
