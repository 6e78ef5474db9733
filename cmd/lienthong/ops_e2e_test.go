package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// opsLine matches a line `up` prints under its metrics heading: the kind of
// process, its member (none for the control plane) and its /metrics URL.
var opsLine = regexp.MustCompile(`^  (control plane|gateway|feed router)\s+(\S*)\s+http://(\S+)/metrics$`)

// readOps reads, after the curl commands, the metrics heading of `up` and
// the lines under it, up to the blank line that ends them, and returns the
// operations listeners by "kind member" ("control plane" alone).
func readOps(t *testing.T, p *proc) map[string]string {
	t.Helper()
	p.waitFor("Metrics, health and readiness of each process", 10*time.Second)
	out := map[string]string{}
	for {
		l := p.waitFor("", 10*time.Second)[0]
		if l == "" {
			return out
		}
		m := opsLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unexpected line under the metrics heading: %q", l)
		}
		out[strings.TrimSpace(m[1]+" "+m[2])] = m[3]
	}
}

// opsGet fetches path from an operations listener and returns its status
// and body.
func opsGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// scrapeOps scrapes /metrics and parses it with the Prometheus text parser.
func scrapeOps(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	status, body := opsGet(t, addr, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d", addr, status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the exposition of %s does not parse: %v", addr, err)
	}
	return mfs
}

// seriesOf returns the values of a family's series whose labels include
// want (counters and gauges by value), and how many there are.
func seriesOf(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (sum float64, n int) {
next:
	for _, m := range mfs[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		n++
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return sum, n
}

// routedFeeds are the civil registry's datasets and, for each, the
// consumers whose feed grants `up` decides.
var routedFeeds = map[string][]string{
	"birth-registration": {upProviderSystem, upConsumerSystem},
	"death-registration": {upProviderSystem, upConsumerSystem},
}

// waitForLag scrapes a feed router's /metrics until it sets
// lienthong_feed_consumer_lag_events for every consumer of every dataset
// in feeds (a router sets it once a committed batch has read the dataset),
// and fails the test if it does not within the time given or if it sets it
// for anyone else.
func waitForLag(t *testing.T, addr string, feeds map[string][]string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		mfs := scrapeOps(t, addr)
		missing := []string{}
		want := 0
		for dataset, consumers := range feeds {
			for _, c := range consumers {
				want++
				if _, n := seriesOf(mfs, "lienthong_feed_consumer_lag_events", map[string]string{"consumer": c, "dataset": dataset}); n != 1 {
					missing = append(missing, c+" "+dataset)
				}
			}
		}
		if len(missing) == 0 {
			if _, n := seriesOf(mfs, "lienthong_feed_consumer_lag_events", nil); n != want {
				t.Fatalf("%d lag series at %s, want %d (one per subscribed consumer and dataset)", n, addr, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lag at %s after %s for %v", addr, within, missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// routerMetricsAt matches the line `lienthong feed-router` prints for its
// operations listener.
var routerMetricsAt = regexp.MustCompile(`metrics and health at http://(\S+)/metrics`)

// TestFeedRouterReportsLagOnItsMetricsListener runs `lienthong feed-router`
// alone over the civil registry's datasets of a running federation (`up`,
// whose trickle publishes a birth and a death registration in turn), with
// the files its gateway keeps, and scrapes its --metrics-listen: each
// consumer subscribed to each dataset has its lag, as in a gateway that
// runs the router, and nobody else has one; /readyz names the router's
// four checks, ready, and turns 503 naming audit-log once the router's
// audit log is removed, as lienthong_feed_router_ready{check} says on
// /metrics. The router runs in two lanes, set in its JSON.
func TestFeedRouterReportsLagOnItsMetricsListener(t *testing.T) {
	dir, work := filepath.Join(t.TempDir(), "data"), t.TempDir()
	ready := filepath.Join(work, "ready.json")
	up := start(t, nil, upArgs(dir, "--citizens", "50", "--trickle-every", "100ms", "--trickle-max", "10",
		"--log-level", "warn", "--ready-file", ready)...)
	up.waitFor("lienthong federation ready", 90*time.Second)
	up.drain()
	a := readUpAddrs(t, ready)

	gdir := filepath.Join(dir, "federation", upJustice)
	cfg := map[string]any{
		"id": "router-standalone", "provider": upJusticeSystem, "kafka": map[string]any{"brokers": []string{a.kafka}},
		"policy": map[string]string{"bundleFile": filepath.Join(gdir, "state", "policy-bundle.tar.gz"),
			"verificationKeyFile": filepath.Join(gdir, "state", "verification-key.json")},
		"maskingKeyFile": filepath.Join(gdir, "masking.key"), "subjectKeyFile": filepath.Join(dir, auditSubjectKeyFile),
		"auditFile": filepath.Join(work, "feed-audit.jsonl"), "lanes": 2,
	}
	var datasets []map[string]string
	for dataset := range routedFeeds {
		datasets = append(datasets, map[string]string{"document": filepath.Join(gdir, dataset+".openapi")})
	}
	cfg["datasets"] = datasets
	raw, _ := json.Marshal(cfg)
	file := filepath.Join(work, "router.json")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	router := start(t, nil, "feed-router", "--config", file, "--metrics-listen", "127.0.0.1:0", "--log-level", "warn")
	lines := router.waitFor("metrics and health at", 30*time.Second)
	router.drain()
	m := routerMetricsAt.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("no metrics address in %q", lines[len(lines)-1])
	}
	waitForLag(t, m[1], routedFeeds, 30*time.Second)
	status, body := opsGet(t, m[1], "/readyz")
	var checks map[string]string
	if err := json.Unmarshal([]byte(body), &checks); err != nil {
		t.Fatalf("/readyz: %d %s: %v", status, body, err)
	}
	if status != http.StatusOK || len(checks) != 4 || checks["kafka"] != "ok" || checks["routing"] != "ok" ||
		checks["configuration"] != "ok" || checks["audit-log"] != "ok" {
		t.Errorf("/readyz of a routing router: %d %s, want 200 and kafka, routing, configuration, audit-log ok", status, body)
	}
	readyGauge := func(want string) {
		t.Helper()
		if status, body := opsGet(t, m[1], "/metrics"); status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics: %d, no %q", status, want)
		}
	}
	for _, check := range []string{"kafka", "routing", "configuration", "audit-log"} {
		readyGauge(`lienthong_feed_router_ready{check="` + check + `"} 1`)
	}
	// It follows its gateway's configuration (beside the bundle) for
	// freshness, rather than trusting the bundle file.
	if strings.Contains(router.errText(), "cannot tell whether its policy is stale") {
		t.Errorf("the router did not find its gateway's configuration beside the bundle: %s", router.errText())
	}
	// Its audit log removed, the process is not ready and says why.
	if err := os.Remove(filepath.Join(work, "feed-audit.jsonl")); err != nil {
		t.Fatal(err)
	}
	status, body = opsGet(t, m[1], "/readyz")
	checks = nil
	_ = json.Unmarshal([]byte(body), &checks)
	if status != http.StatusServiceUnavailable || !strings.Contains(checks["audit-log"], "not writable") || checks["kafka"] != "ok" {
		t.Errorf("/readyz with the audit log gone: %d %s, want 503 naming audit-log", status, body)
	}
	readyGauge(`lienthong_feed_router_ready{check="audit-log"} 0`)
	readyGauge(`lienthong_feed_router_ready{check="kafka"} 1`)
	if err := router.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Errorf("feed-router after SIGTERM: %v, want status 0", err)
	}
	if err := up.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Errorf("up after SIGTERM: %v, want status 0", err)
	}
}
