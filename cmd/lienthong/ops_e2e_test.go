package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
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
