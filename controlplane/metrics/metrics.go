// Package metrics is the control plane's Prometheus instrumentation: API
// requests by route template and status, and what an operator watches in
// the catalog (access requests by state, grants active and expiring,
// systems whose assessment lapses soon, certificates issued and revoked)
// and policy bundle build time.
//
// Catalog figures are counted at scrape time from the store, at most once
// per CacheFor, so a busy Prometheus cannot load the store. Labels are
// bounded: route is the API's pattern (a fixed set, never a path with its
// ids), status an HTTP code, state and within fixed enumerations.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lienthong/lienthong/catalog"
)

// Metric names the control plane registers; the alert rules and dashboard
// in deploy/observability name only these (and the gateways').
const (
	APIRequestsTotal          = "lienthong_controlplane_api_requests_total"
	APIRequestDuration        = "lienthong_controlplane_api_request_duration_seconds"
	AccessRequests            = "lienthong_controlplane_access_requests"
	GrantsActive              = "lienthong_controlplane_grants_active"
	GrantsExpiring            = "lienthong_controlplane_grants_expiring"
	SystemsAssessmentLapsing  = "lienthong_controlplane_systems_assessment_lapsing"
	SystemsAssessmentLapsed   = "lienthong_controlplane_systems_assessment_lapsed"
	CertificatesIssuedTotal   = "lienthong_controlplane_certificates_issued_total"
	CertificatesRevokedTotal  = "lienthong_controlplane_certificates_revoked_total"
	BundleBuildDuration       = "lienthong_controlplane_bundle_build_duration_seconds"
	CatalogScrapeErrorsTotal  = "lienthong_controlplane_catalog_scrape_errors_total"
	ReadyCheck                = "lienthong_controlplane_ready"
	AuditShippingLag          = "lienthong_audit_shipping_lag_records"
	AuditShippingReportAge    = "lienthong_audit_shipping_report_age_seconds"
	defaultCacheFor           = 10 * time.Second
	unmatchedRoute            = "unmatched"
	catalogScrapeQueryTimeout = 5 * time.Second
)

// Names lists every metric family the control plane registers (go_* and
// process_* aside).
func Names() []string {
	return []string{APIRequestsTotal, APIRequestDuration, AccessRequests, GrantsActive, GrantsExpiring,
		SystemsAssessmentLapsing, SystemsAssessmentLapsed, CertificatesIssuedTotal, CertificatesRevokedTotal,
		BundleBuildDuration, CatalogScrapeErrorsTotal, ReadyCheck, AuditShippingLag, AuditShippingReportAge}
}

// Windows are the horizons "expiring" and "lapsing" are counted within
// (the value of the within label).
var Windows = []struct {
	Label string
	Span  time.Duration
}{{"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

// latencyBuckets span 100 µs to 10 s.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Sources are what the control plane reports at scrape time.
type Sources struct {
	// Store is the catalog the figures are counted from (nil: none).
	Store catalog.Store
	// Ready runs the readiness checks: name → passed.
	Ready func() map[string]bool
	// Shipping reads each gateway's audit shipping from the index (nil:
	// no index, no shipping figures).
	Shipping func(ctx context.Context) ([]GatewayShipping, error)
	// Now is the clock (time.Now if nil); CacheFor how long catalog
	// figures are reused (default 10 s).
	Now      func() time.Time
	CacheFor time.Duration
}

// GatewayShipping is one gateway's audit shipping, as the index knows it.
type GatewayShipping struct {
	Gateway string
	// Lag is how many entries of the gateway's log the index does not hold
	// yet, as of the gateway's last report.
	Lag uint64
	// ReportedAt is when the gateway last reported its log head (zero:
	// never; such a gateway has no figures).
	ReportedAt time.Time
}

// ControlPlane holds the control plane's metrics in their own registry.
type ControlPlane struct {
	reg      *prometheus.Registry
	src      Sources
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	build    prometheus.Histogram
	errors   prometheus.Counter

	mu     sync.Mutex
	at     time.Time
	cached []prometheus.Metric
}

// New registers the control plane's metrics.
func New(src Sources) *ControlPlane {
	if src.Now == nil {
		src.Now = time.Now
	}
	if src.CacheFor <= 0 {
		src.CacheFor = defaultCacheFor
	}
	m := &ControlPlane{reg: prometheus.NewRegistry(), src: src}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: APIRequestsTotal,
		Help: "Management API requests, by route pattern (method and path template) and HTTP status."}, []string{"route", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: APIRequestDuration,
		Help: "Management API request latency, by route pattern.", Buckets: latencyBuckets}, []string{"route"})
	m.build = prometheus.NewHistogram(prometheus.HistogramOpts{Name: BundleBuildDuration,
		Help: "Time to build and sign the policy bundle of a new catalog revision.", Buckets: latencyBuckets})
	m.errors = prometheus.NewCounter(prometheus.CounterOpts{Name: CatalogScrapeErrorsTotal,
		Help: "Scrapes whose catalog figures could not be read from the store."})
	m.reg.MustRegister(m.requests, m.latency, m.build, m.errors, catalogCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry the metrics live in.
func (m *ControlPlane) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics.
func (m *ControlPlane) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// BundleBuilt records one bundle build (service.WithBundleBuildObserver).
func (m *ControlPlane) BundleBuilt(took time.Duration) { m.build.Observe(took.Seconds()) }

// Middleware counts and times the requests next serves. next must be (or
// end in) the http.ServeMux that routes them: the route label is the
// pattern it matched (Request.Pattern), so ids in paths never become labels.
func (m *ControlPlane) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" || route == "/" {
			route = unmatchedRoute
		}
		m.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		m.latency.WithLabelValues(route).Observe(time.Since(began).Seconds())
	})
}

// statusRecorder notes the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// catalogCollector counts the catalog at scrape time.
type catalogCollector struct{ m *ControlPlane }

var (
	accessDesc   = prometheus.NewDesc(AccessRequests, "Access requests, by state.", []string{"state"}, nil)
	activeDesc   = prometheus.NewDesc(GrantsActive, "Grants in force now.", nil, nil)
	expiringDesc = prometheus.NewDesc(GrantsExpiring, "Grants in force that expire within the window (7d, 30d).", []string{"within"}, nil)
	lapsingDesc  = prometheus.NewDesc(SystemsAssessmentLapsing, "Systems not revoked whose security assessment is current and lapses within the window (7d, 30d).", []string{"within"}, nil)
	lapsedDesc   = prometheus.NewDesc(SystemsAssessmentLapsed, "Systems not revoked with no current security assessment: they get no certificate, route or grant.", nil, nil)
	issuedDesc   = prometheus.NewDesc(CertificatesIssuedTotal, "Certificates the control plane has issued.", nil, nil)
	revokedDesc  = prometheus.NewDesc(CertificatesRevokedTotal, "Certificates the control plane has revoked.", nil, nil)
	readyDesc    = prometheus.NewDesc(ReadyCheck, "Whether one readiness check passes (1) or fails (0), by check.", []string{"check"}, nil)
	lagDesc      = prometheus.NewDesc(AuditShippingLag, "Audit log entries a gateway holds that the control plane's index does not, as of the gateway's last report, by gateway.", []string{"gateway"}, nil)
	reportDesc   = prometheus.NewDesc(AuditShippingReportAge, "Seconds since a gateway last reported its audit log head (with a shipment or a heartbeat), by gateway.", []string{"gateway"}, nil)
)

func (c catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{accessDesc, activeDesc, expiringDesc, lapsingDesc, lapsedDesc, issuedDesc, revokedDesc, readyDesc, lagDesc, reportDesc} {
		ch <- d
	}
}

func (c catalogCollector) Collect(ch chan<- prometheus.Metric) {
	for _, mt := range c.m.catalogMetrics() {
		ch <- mt
	}
	if c.m.src.Ready != nil {
		for name, ok := range c.m.src.Ready() {
			v := 0.0
			if ok {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, v, name)
		}
	}
}

// catalogMetrics counts the catalog, or reuses the last count within
// CacheFor. A store that cannot be read leaves the figures out and counts
// an error, so an alert sees the gap instead of zeros.
func (m *ControlPlane) catalogMetrics() []prometheus.Metric {
	if m.src.Store == nil && m.src.Shipping == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.src.Now()
	if m.cached != nil && now.Sub(m.at) < m.src.CacheFor {
		return m.cached
	}
	ctx, cancel := context.WithTimeout(context.Background(), catalogScrapeQueryTimeout)
	defer cancel()
	var out []prometheus.Metric
	var err error
	if m.src.Store != nil {
		out, err = Count(ctx, m.src.Store, now)
	}
	if err == nil && m.src.Shipping != nil {
		var sh []prometheus.Metric
		if sh, err = shippingMetrics(ctx, m.src.Shipping, now); err == nil {
			out = append(out, sh...)
		}
	}
	if err != nil {
		m.errors.Inc()
		return nil
	}
	m.cached, m.at = out, now
	return m.cached
}

// Count reads the catalog's figures at now as metrics.
func Count(ctx context.Context, store catalog.Store, now time.Time) ([]prometheus.Metric, error) {
	var out []prometheus.Metric
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	reqs, err := store.ListAccessRequests(ctx, catalog.AccessRequestFilter{})
	if err != nil {
		return nil, err
	}
	byState := map[catalog.RequestState]int{catalog.RequestPending: 0, catalog.RequestApproved: 0, catalog.RequestRefused: 0, catalog.RequestWithdrawn: 0}
	for _, r := range reqs {
		if _, ok := byState[r.State]; ok {
			byState[r.State]++
		}
	}
	for st, n := range byState {
		gauge(accessDesc, float64(n), string(st))
	}
	grants, err := store.ListGrants(ctx, catalog.GrantFilter{})
	if err != nil {
		return nil, err
	}
	active := 0
	expiring := make([]int, len(Windows))
	for i := range grants {
		g := &grants[i]
		if g.StateAt(now) != catalog.GrantActive || now.Before(g.ValidFrom) {
			continue
		}
		active++
		for w, win := range Windows {
			if g.ValidUntil.Sub(now) <= win.Span {
				expiring[w]++
			}
		}
	}
	gauge(activeDesc, float64(active))
	for w, win := range Windows {
		gauge(expiringDesc, float64(expiring[w]), win.Label)
	}
	systems, err := store.ListSystems(ctx, catalog.SystemFilter{})
	if err != nil {
		return nil, err
	}
	lapsing := make([]int, len(Windows))
	lapsed := 0
	for _, s := range systems {
		if s.RevokedAt != nil {
			continue
		}
		if s.Assessment == nil || !now.Before(s.Assessment.ValidUntil) {
			lapsed++
			continue
		}
		for w, win := range Windows {
			if s.Assessment.ValidUntil.Sub(now) <= win.Span {
				lapsing[w]++
			}
		}
	}
	for w, win := range Windows {
		gauge(lapsingDesc, float64(lapsing[w]), win.Label)
	}
	gauge(lapsedDesc, float64(lapsed))
	certs, err := store.ListCertificates(ctx, catalog.CertificateFilter{})
	if err != nil {
		return nil, err
	}
	revoked := 0
	for _, c := range certs {
		if c.RevokedAt != nil {
			revoked++
		}
	}
	out = append(out, prometheus.MustNewConstMetric(issuedDesc, prometheus.CounterValue, float64(len(certs))),
		prometheus.MustNewConstMetric(revokedDesc, prometheus.CounterValue, float64(revoked)))
	return out, nil
}

// shippingMetrics reads each gateway's audit shipping at now. The gateway
// label is bounded by the gateways registered in the federation.
func shippingMetrics(ctx context.Context, read func(context.Context) ([]GatewayShipping, error), now time.Time) ([]prometheus.Metric, error) {
	all, err := read(ctx)
	if err != nil {
		return nil, err
	}
	var out []prometheus.Metric
	for _, g := range all {
		if g.ReportedAt.IsZero() {
			continue
		}
		out = append(out, prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(g.Lag), g.Gateway),
			prometheus.MustNewConstMetric(reportDesc, prometheus.GaugeValue, max(0, now.Sub(g.ReportedAt).Seconds()), g.Gateway))
	}
	return out, nil
}
