package metrics_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/metrics"
)

// TestLabelValuesAreCapped: a flood of distinct consumers (a peer inventing
// system ids would be refused before being named, but the cap holds even if
// one slipped through) never grows the label set past the cap.
func TestLabelValuesAreCapped(t *testing.T) {
	m := metrics.New(metrics.Sources{MaxLabelValues: 3})
	for i := range 10 {
		m.Finished(exchange.Observation{Side: "provider", Mode: "query", Consumer: fmt.Sprintf("VN:GOV:000.00.00.G%02d:S", i),
			Outcome: exchange.OutcomeAllowed, Status: 200, Total: time.Millisecond})
	}
	series := testutil.CollectAndCount(m.Registry(), metrics.ExchangesTotal)
	if series != 4 { // three consumers and "other"
		t.Errorf("%d series, want 3 named consumers and one \"other\"", series)
	}
	if got := sum(t, m, metrics.LabelValuesOverflowed); got != 7 {
		t.Errorf("overflowed %v, want 7", got)
	}
}

// sum adds up the values of a gathered counter family.
func sum(t *testing.T, m *metrics.Gateway, name string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, mt := range mf.GetMetric() {
				total += mt.GetCounter().GetValue()
			}
		}
	}
	return total
}

// TestOutcomeOf classifies each kind the core refuses with.
func TestOutcomeOf(t *testing.T) {
	for _, c := range []struct {
		kind   string
		status int
		want   string
	}{
		{"", 200, exchange.OutcomeAllowed},
		{exchange.KindAccessDenied, 403, exchange.OutcomeDenied},
		{exchange.KindStale, 503, exchange.OutcomeDenied},
		{exchange.KindRateLimited, 429, exchange.OutcomeDenied},
		{exchange.KindNotFound, 404, exchange.OutcomeDenied},
		{exchange.KindBackendError, 502, exchange.OutcomeBackendError},
		{exchange.KindBackendTimeout, 504, exchange.OutcomeBackendError},
		{"provider-unreachable", 502, exchange.OutcomeBackendError},
		{exchange.KindBadBackendAnswer, 502, exchange.OutcomeInvalidResponse},
		{"unbound-answer", 502, exchange.OutcomeInvalidResponse},
		{exchange.KindAuditUnavailable, 503, exchange.OutcomeFailed},
		{exchange.KindOther, 500, exchange.OutcomeFailed},
		{exchange.KindOther, 400, exchange.OutcomeDenied},
	} {
		if got := exchange.OutcomeOf(c.kind, c.status); got != c.want {
			t.Errorf("OutcomeOf(%q, %d) = %s, want %s", c.kind, c.status, got, c.want)
		}
	}
	if exchange.BoundedKind("made-up-by-a-peer") != exchange.KindOther {
		t.Error("an unknown kind is not bounded")
	}
}

// TestFeedRouterLag: the lag a router reports is exposed by consumer and
// dataset, and a later report replaces it.
func TestFeedRouterLag(t *testing.T) {
	m := metrics.NewFeedRouter()
	m.SetFeedLag("VN:GOV:000.00.00.G14:CSDLBH", "population", 40)
	m.SetFeedLag("VN:GOV:000.00.00.G14:CSDLBH", "population", 12)
	m.SetFeedLag("VN:GOV:000.00.00.H09:CC", "population", 3)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() == metrics.FeedConsumerLag {
			for _, mt := range mf.GetMetric() {
				total += mt.GetGauge().GetValue()
			}
		}
	}
	if total != 15 {
		t.Errorf("lag %v, want 12 + 3", total)
	}
}

// TestFeedRouterReady: the router's readiness is a gauge per check, 1 when
// it passes and 0 when it fails, read at every scrape; nothing before the
// process watches its checks.
func TestFeedRouterReady(t *testing.T) {
	m := metrics.NewFeedRouter()
	gauge := func() map[string]float64 {
		t.Helper()
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != metrics.FeedRouterReady {
				continue
			}
			for _, mt := range mf.GetMetric() {
				for _, l := range mt.GetLabel() {
					if l.GetName() == "check" {
						out[l.GetValue()] = mt.GetGauge().GetValue()
					}
				}
			}
		}
		return out
	}
	if got := gauge(); len(got) != 0 {
		t.Errorf("readiness %v before any checks are watched", got)
	}
	kafka := true
	m.WatchReady(func() map[string]bool { return map[string]bool{"kafka": kafka, "audit-log": true} })
	if got := gauge(); len(got) != 2 || got["kafka"] != 1 || got["audit-log"] != 1 {
		t.Errorf("ready router: %v", got)
	}
	kafka = false
	if got := gauge(); got["kafka"] != 0 || got["audit-log"] != 1 {
		t.Errorf("router with kafka failing: %v", got)
	}
}
