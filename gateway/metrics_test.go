package gateway_test

import (
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lienthong/lienthong/gateway"
	"github.com/lienthong/lienthong/gateway/metrics"
)

// scrape reads a gateway's /metrics over its operations listener and
// parses it with the Prometheus text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	return mfs
}

// series sums a family's counters, or its histograms' sample counts, over
// the series whose labels include want.
func series(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var total float64
	mf := mfs[name]
	if mf == nil {
		return 0
	}
next:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		}
	}
	return total
}

// TestMetricsCountAKnownMixExactly runs a known mix of exchanges through a
// federation (allowed, denied by policy, refused at the consumer gateway for
// want of a purpose, backend errors, invalid backend answers), scrapes both
// gateways' /metrics, and checks every counter and histogram count against
// the mix: each exchange is counted once, on each side it reached, under
// its outcome.
func TestMetricsCountAKnownMixExactly(t *testing.T) {
	provLn, consLn := liveListener(t), liveListener(t)
	provOps, consOps := provLn.Addr().String(), consLn.Addr().String()
	f := newFederationFull(t, 0, nil, []gateway.Option{gateway.WithMetricsListener(provLn)}, []gateway.Option{gateway.WithMetricsListener(consLn)})
	c := f.systemClient(insurance)

	mix := []struct {
		path    string
		headers map[string]string
		status  int
		// outcome and reason as both sides count them; consumerOnly when
		// the consumer gateway refuses before forwarding.
		outcome, reason string
		consumerOnly    bool
	}{
		{recordPath + citizenID, purposeHeader(), 200, "allowed", "", false},
		{recordPath + citizenID + "?fields=fullName", purposeHeader(), 200, "allowed", "", false},
		{recordPath + "079195000002", purposeHeader(), 200, "allowed", "", false},
		{recordPath + citizenID + "?fields=religion,ethnicity", purposeHeader(), 403, "denied", "access-denied", false},
		{recordPath + citizenID + "?fields=religion", purposeHeader(), 403, "denied", "access-denied", false},
		{recordPath + citizenID, nil, 400, "denied", "purpose-required", true},
		{recordPath + badContentTypeID, purposeHeader(), 502, "backend_error", "backend-error", false},
		{recordPath + badContentTypeID, purposeHeader(), 502, "backend_error", "backend-error", false},
		{recordPath + "001090000003", purposeHeader(), 502, "invalid_response", "bad-backend-answer", false},
		{recordPath + "001090000004", purposeHeader(), 502, "invalid_response", "bad-backend-answer", false},
	}
	want := map[string]map[[2]string]float64{"consumer": {}, "provider": {}}
	for _, x := range mix {
		if a := f.get(c, x.path, x.headers); a.status != x.status {
			t.Fatalf("%s: %d %s, want %d", x.path, a.status, a.raw, x.status)
		}
		want["consumer"][[2]string{x.outcome, x.reason}]++
		if !x.consumerOnly {
			want["provider"][[2]string{x.outcome, x.reason}]++
		}
	}

	for side, addr := range map[string]string{"consumer": consOps, "provider": provOps} {
		mfs := scrape(t, addr)
		total := 0.0
		for k, n := range want[side] {
			labels := map[string]string{"side": side, "outcome": k[0], "reason": k[1], "mode": "query"}
			if got := series(mfs, metrics.ExchangesTotal, labels); got != n {
				t.Errorf("%s %v: counted %v, want %v", side, k, got, n)
			}
			if got := series(mfs, metrics.ExchangeDuration, map[string]string{"side": side, "outcome": k[0]}); got < n {
				t.Errorf("%s %s: %v durations observed, want at least %v", side, k[0], got, n)
			}
			total += n
		}
		if got := series(mfs, metrics.ExchangesTotal, nil); got != total {
			t.Errorf("%s: %v exchanges counted, want %v", side, got, total)
		}
		if got := series(mfs, metrics.ExchangeDuration, nil); got != total {
			t.Errorf("%s: %v exchange durations, want %v", side, got, total)
		}
		// Every exchange waits for its records once.
		if got := series(mfs, metrics.StageDuration, map[string]string{"side": side, "stage": "audit_wait"}); got != total {
			t.Errorf("%s: %v audit waits, want %v", side, got, total)
		}
		// Allowed answers were counted with the consumer, provider and
		// dataset named; nothing was counted under a name the gateway had
		// not checked, except what never got that far.
		if got := series(mfs, metrics.ExchangesTotal, map[string]string{"consumer": insurance, "provider": population, "dataset": "population", "outcome": "allowed"}); got != 3 {
			t.Errorf("%s: allowed exchanges of %s on population: %v, want 3", side, insurance, got)
		}
		if got := series(mfs, metrics.ResponseBytesTotal, map[string]string{"side": side}); got <= 0 {
			t.Errorf("%s: no response bytes counted", side)
		}
		if series(mfs, metrics.CertificateExpiry, nil) <= 0 || mfs[metrics.PolicyBundleInfo] == nil || mfs[metrics.ConfigAge] == nil {
			t.Errorf("%s: state metrics missing", side)
		}
		if series(mfs, metrics.AuditCommitBatch, nil) == 0 || series(mfs, metrics.AuditCommitDuration, nil) == 0 {
			t.Errorf("%s: no audit commit observed", side)
		}
		if got := series(mfs, metrics.ReadyCheck, nil); got != 4 {
			t.Errorf("%s: %v readiness checks pass, want 4", side, got)
		}
	}
	// Stages only the provider runs: a decision for each exchange it saw;
	// the backend for each it fetched (allowed, backend errors, invalid
	// answers); projection for each answer it read (allowed, invalid).
	prov := scrape(t, provOps)
	for stage, n := range map[string]float64{"decision": 9, "backend": 7, "projection": 5} {
		if got := series(prov, metrics.StageDuration, map[string]string{"side": "provider", "stage": stage}); got != n {
			t.Errorf("provider stage %s: %v, want %v", stage, got, n)
		}
	}
	// The consumer side's backend is the provider's gateway: every
	// forwarded exchange.
	cons := scrape(t, consOps)
	if got := series(cons, metrics.StageDuration, map[string]string{"side": "consumer", "stage": "backend"}); got != 9 {
		t.Errorf("consumer stage backend: %v, want 9", got)
	}
	if got := series(cons, metrics.StageDuration, map[string]string{"side": "consumer", "stage": "decision"}); got != 0 {
		t.Errorf("consumer stage decision: %v, want 0 (the provider decides)", got)
	}
}
