package metrics_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/certs/embedded"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/metrics"
	"github.com/lienthong/lienthong/controlplane/service"
)

// TestCountReadsTheCatalog builds a catalog on a real SQLite store (three
// consumer systems whose assessments lapse in 3, 20 and 200 days, grants
// ending in 3, 20 and 200 days, a pending and a refused request, two
// certificates of which one is revoked) and checks each figure and window.
func TestCountReadsTheCatalog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ca, err := embedded.Open(filepath.Join(dir, "ca"), embedded.WithPassphrase(nil))
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(store, service.WithAuthority(ca))
	admin := auth.Principal{TokenID: "test", Name: "operator", Role: catalog.RolePlatformAdmin}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const provider = "VN:GOV:000.00.00.G01:CSDLDC"
	now := time.Now()
	day := 24 * time.Hour
	must(svc.AddMember(ctx, admin, catalog.Member{Code: "000.00.00.G01", Name: "Bộ Công an"}))
	must(svc.AddMember(ctx, admin, catalog.Member{Code: "000.00.00.G14", Name: "BHXH"}))
	must(svc.AddSystem(ctx, admin, catalog.System{ID: provider, Name: "CSDLDC", SecurityLevel: 3}))
	must(svc.Assess(ctx, admin, provider, catalog.Assessment{Level: 4, AssessedBy: "A05", Reference: "QĐ 1", ValidUntil: now.Add(400 * day)}))
	doc, err := os.ReadFile(filepath.Join("..", "..", "examples", "population.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	must(svc.Publish(ctx, admin, service.PublishInput{System: provider, Document: doc}))
	var consumers []string
	for i, days := range []time.Duration{3, 20, 200} {
		id := "VN:GOV:000.00.00.G14:S" + string(rune('A'+i))
		consumers = append(consumers, id)
		must(svc.AddSystem(ctx, admin, catalog.System{ID: id, Name: id, SecurityLevel: 3}))
		must(svc.Assess(ctx, admin, id, catalog.Assessment{Level: 4, AssessedBy: "A05", Reference: "QĐ 2", ValidUntil: now.Add(days*day + time.Hour)}))
		req, err := svc.RequestAccess(ctx, admin, service.AccessRequestInput{
			Consumer: id, Provider: provider, Dataset: "population", Fields: []string{"fullName"},
			Purpose: catalog.Purpose{Code: "1.001234"}, LegalBasis: catalog.LegalBasis{Reference: "NĐ 13"},
			ValidUntil: now.Add(days * day), Modes: []catalog.Mode{catalog.ModeQuery},
		})
		if err != nil {
			t.Fatal(err)
		}
		must(svc.Approve(ctx, admin, req.ID, service.Approval{Fields: []catalog.GrantedField{{Path: "fullName"}}}))
	}
	for _, refuse := range []bool{false, true} {
		req, err := svc.RequestAccess(ctx, admin, service.AccessRequestInput{
			Consumer: consumers[2], Provider: provider, Dataset: "population", Fields: []string{"sex"},
			Purpose: catalog.Purpose{Code: "1.001234"}, LegalBasis: catalog.LegalBasis{Reference: "NĐ 13"},
			ValidUntil: now.Add(30 * day), Modes: []catalog.Mode{catalog.ModeQuery},
		})
		if err != nil {
			t.Fatal(err)
		}
		if refuse {
			must(svc.Refuse(ctx, admin, req.ID, "no legal basis for this field"))
		}
	}
	var serials []string
	for range 2 {
		id, _ := catalog.ParseSystemID(consumers[2])
		_, csr, err := certs.GenerateKeyAndCSR(id, svc.TrustDomain())
		if err != nil {
			t.Fatal(err)
		}
		enr, err := svc.Enroll(ctx, admin, consumers[2], csr)
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, enr.Certificate.Serial)
	}
	must(svc.RevokeCertificate(ctx, admin, serials[0], "key compromise"))

	got, err := metrics.Count(ctx, store, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, m := range got {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		key := name(m)
		for _, l := range pb.GetLabel() {
			key += "{" + l.GetValue() + "}"
		}
		values[key] = pb.GetGauge().GetValue() + pb.GetCounter().GetValue()
	}
	for key, want := range map[string]float64{
		metrics.AccessRequests + "{pending}":       1,
		metrics.AccessRequests + "{approved}":      3,
		metrics.AccessRequests + "{refused}":       1,
		metrics.AccessRequests + "{withdrawn}":     0,
		metrics.GrantsActive:                       3,
		metrics.GrantsExpiring + "{7d}":            1,
		metrics.GrantsExpiring + "{30d}":           2,
		metrics.SystemsAssessmentLapsing + "{7d}":  1,
		metrics.SystemsAssessmentLapsing + "{30d}": 2,
		metrics.SystemsAssessmentLapsed:            0,
		metrics.CertificatesIssuedTotal:            2,
		metrics.CertificatesRevokedTotal:           1,
	} {
		if v, ok := values[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	// A week on, the first grant has ended and the first system's
	// assessment has lapsed.
	later, err := metrics.Count(ctx, store, now.Add(8*day))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range later {
		var pb dto.Metric
		_ = m.Write(&pb)
		switch name(m) {
		case metrics.GrantsActive:
			if pb.GetGauge().GetValue() != 2 {
				t.Errorf("a week on, %v grants active, want 2", pb.GetGauge().GetValue())
			}
		case metrics.SystemsAssessmentLapsed:
			if pb.GetGauge().GetValue() != 1 {
				t.Errorf("a week on, %v systems lapsed, want 1", pb.GetGauge().GetValue())
			}
		}
	}
}

// name is a constant metric's family name, from its description.
func name(m prometheus.Metric) string {
	d := m.Desc().String()
	_, rest, _ := strings.Cut(d, `fqName: "`)
	fq, _, _ := strings.Cut(rest, `"`)
	return fq
}

// The shipping figures: one lag and one report age per gateway that has
// reported its log head; a gateway that never reported has neither (its
// lag is unknown, not zero), and an index that cannot be read leaves the
// figures out and counts a scrape error.
func TestShippingFigures(t *testing.T) {
	now := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	fail := false
	m := metrics.New(metrics.Sources{Now: func() time.Time { return now }, CacheFor: time.Nanosecond,
		Shipping: func(context.Context) ([]metrics.GatewayShipping, error) {
			if fail {
				return nil, context.DeadlineExceeded
			}
			return []metrics.GatewayShipping{
				{Gateway: "VN:GOV:000.00.00.G01:GW", Lag: 32, ReportedAt: now.Add(-90 * time.Second)},
				{Gateway: "VN:GOV:000.00.00.G14:GW"},
			}, nil
		}})
	gather := func() map[string]float64 {
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, mt := range mf.GetMetric() {
				key := mf.GetName()
				for _, l := range mt.GetLabel() {
					key += "{" + l.GetValue() + "}"
				}
				out[key] = mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
			}
		}
		return out
	}
	got := gather()
	for key, want := range map[string]float64{
		metrics.AuditShippingLag + "{VN:GOV:000.00.00.G01:GW}":       32,
		metrics.AuditShippingReportAge + "{VN:GOV:000.00.00.G01:GW}": 90,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	for key := range got {
		if strings.Contains(key, "G14") {
			t.Errorf("%s: a gateway that never reported has figures", key)
		}
	}
	fail = true
	now = now.Add(time.Second)
	got = gather()
	if _, ok := got[metrics.AuditShippingLag+"{VN:GOV:000.00.00.G01:GW}"]; ok || got[metrics.CatalogScrapeErrorsTotal] != 1 {
		t.Errorf("an unreadable index: lag present %v, scrape errors %v", ok, got[metrics.CatalogScrapeErrorsTotal])
	}
}
