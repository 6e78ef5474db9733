// Package metrics is the gateway's Prometheus instrumentation: exchanges by
// consumer, provider, dataset, mode and outcome, the latency of the whole
// exchange and of each stage, bytes, rate-limited requests, the policy
// bundle and configuration in force, the certificate's expiry, the audit
// log's commits and feed consumers' lag.
//
// It hears of exchanges through exchange.Observer, so every door (the HTTP
// listeners, Envoy's ext_authz and ext_proc) counts the same way, and it
// reads the state it reports (configuration, bundle, certificate) at scrape
// time, so a gauge is never older than the scrape.
//
// Labels are bounded, by construction and by a cap (docs/operations.md,
// "Watching a federation"): consumer, provider and dataset are names the
// federation registers, passed on only once the gateway has checked them,
// and each label keeps at most MaxLabelValues distinct values (later ones
// count as "other"); reason is a problem kind from a fixed set; side, mode,
// outcome and stage are enumerations. No subject, exchange id, record id,
// field value or free text is ever a label.
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lienthong/lienthong/gateway/exchange"
)

// Metric names the gateway registers. The alert rules and the dashboard in
// deploy/observability name only these (a test checks it).
const (
	ExchangesTotal      = "lienthong_gateway_exchanges_total"
	ExchangeDuration    = "lienthong_gateway_exchange_duration_seconds"
	StageDuration       = "lienthong_gateway_stage_duration_seconds"
	ResponseBytesTotal  = "lienthong_gateway_response_bytes_total"
	RateLimitedTotal    = "lienthong_gateway_rate_limited_total"
	PolicyBundleInfo    = "lienthong_gateway_policy_bundle_info"
	PolicyBundleAge     = "lienthong_gateway_policy_bundle_age_seconds"
	ConfigAge           = "lienthong_gateway_config_age_seconds"
	ConfigMaxStaleness  = "lienthong_gateway_config_max_staleness_seconds"
	ConfigRevision      = "lienthong_gateway_config_revision"
	CertificateExpiry   = "lienthong_gateway_certificate_expiry_timestamp_seconds"
	AuditCommitDuration = "lienthong_audit_commit_duration_seconds"
	AuditCommitBatch    = "lienthong_audit_commit_batch_records"
	FeedConsumerLag     = "lienthong_feed_consumer_lag_events"
	ReadyCheck          = "lienthong_gateway_ready"
	// FeedRouterReady is a router run alone's lienthong_gateway_ready: its
	// own process, its own checks (kafka, routing, configuration,
	// audit-log; router while not running).
	FeedRouterReady       = "lienthong_feed_router_ready"
	LabelValuesOverflowed = "lienthong_gateway_label_values_overflowed_total"
)

const (
	defaultMaxLabelValues  = 1000
	overflowLabelValue     = "other"
	unknownLabelValue      = "unknown"
	stageDecision          = "decision"
	stageBackend           = "backend"
	stageProjection        = "projection"
	stageAuditWait         = "audit_wait"
	labelSide, labelMode   = "side", "mode"
	labelOutcome, labelRsn = "outcome", "reason"
)

// Names lists every metric family the gateway registers (the Go runtime's
// and the process's go_* and process_* families aside).
func Names() []string {
	return []string{ExchangesTotal, ExchangeDuration, StageDuration, ResponseBytesTotal, RateLimitedTotal,
		PolicyBundleInfo, PolicyBundleAge, ConfigAge, ConfigMaxStaleness, ConfigRevision, CertificateExpiry,
		AuditCommitDuration, AuditCommitBatch, FeedConsumerLag, ReadyCheck, LabelValuesOverflowed}
}

// FeedRouterNames lists every metric family a feed router run alone
// registers (go_* and process_* aside).
func FeedRouterNames() []string {
	return []string{FeedConsumerLag, FeedRouterReady, LabelValuesOverflowed}
}

// LatencyBuckets span 100 µs to 10 s, about three per decade: a decision
// takes tens of microseconds, an exchange milliseconds, a slow backend
// seconds.
var LatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// batchBuckets count the records of one audit commit.
var batchBuckets = prometheus.ExponentialBuckets(1, 2, 13) // 1 … 4096

// Sources are what the gateway reports at scrape time; a nil func leaves
// its metric out.
type Sources struct {
	// FreshAsOf is the newest signed time of the configuration in force.
	FreshAsOf func() time.Time
	// MaxStaleness is the age past which the gateway denies.
	MaxStaleness time.Duration
	// ConfigRevision is the revision of the configuration in force.
	ConfigRevision func() int64
	// Bundle is the policy bundle in force: its revision and build time.
	Bundle func() (revision string, builtAt time.Time)
	// CertificateNotAfter is the expiry of the certificate presented now.
	CertificateNotAfter func() time.Time
	// Ready runs the readiness checks: name → passed.
	Ready func() map[string]bool
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// MaxLabelValues caps the distinct values of each label (default 1000).
	MaxLabelValues int
}

// Gateway holds one gateway's metrics in its own registry, so several
// gateways in one process (tests, `lienthong up`) do not mix.
type Gateway struct {
	reg       *prometheus.Registry
	src       Sources
	exchanges *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	stage     *prometheus.HistogramVec
	bytes     *prometheus.CounterVec
	limited   *prometheus.CounterVec
	commit    prometheus.Histogram
	batch     prometheus.Histogram
	feedLag   *prometheus.GaugeVec
	overflow  *prometheus.CounterVec
	labels    *labelGuard
	hot       hotSeries
}

// New registers the gateway's metrics.
func New(src Sources) *Gateway {
	if src.Now == nil {
		src.Now = time.Now
	}
	if src.MaxLabelValues <= 0 {
		src.MaxLabelValues = defaultMaxLabelValues
	}
	m := &Gateway{reg: prometheus.NewRegistry(), src: src}
	m.exchanges = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ExchangesTotal,
		Help: "Exchanges finished, by side, consumer system, provider system, dataset, mode, outcome (allowed, denied, backend_error, invalid_response, failed) and reason (the problem kind of a refusal)."},
		[]string{labelSide, "consumer", "provider", "dataset", labelMode, labelOutcome, labelRsn})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: ExchangeDuration,
		Help: "Time from admission to the outcome record of an exchange, by side, mode and outcome.", Buckets: LatencyBuckets},
		[]string{labelSide, labelMode, labelOutcome})
	m.stage = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: StageDuration,
		Help: "Time an exchange spent in one stage (decision, backend, projection, audit_wait), by side; only stages an exchange reached.", Buckets: LatencyBuckets},
		[]string{labelSide, "stage"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ResponseBytesTotal,
		Help: "Bytes of the answers released, by side, consumer, provider, dataset and mode."},
		[]string{labelSide, "consumer", "provider", "dataset", labelMode})
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: RateLimitedTotal,
		Help: "Requests refused because the consumer system exceeded its rate at this provider, by consumer."},
		[]string{"consumer"})
	m.commit = prometheus.NewHistogram(prometheus.HistogramOpts{Name: AuditCommitDuration,
		Help: "Time one group commit of the audit log took to write and sync.", Buckets: LatencyBuckets})
	m.batch = prometheus.NewHistogram(prometheus.HistogramOpts{Name: AuditCommitBatch,
		Help: "Records written by one group commit of the audit log.", Buckets: batchBuckets})
	m.feedLag = newFeedLag()
	m.overflow = newOverflow()
	m.labels = &labelGuard{max: src.MaxLabelValues, overflow: m.overflow}
	m.reg.MustRegister(m.exchanges, m.duration, m.stage, m.bytes, m.limited, m.commit, m.batch, m.feedLag, m.overflow,
		stateCollector{m}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry the metrics live in (tests gather from it).
func (m *Gateway) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Gateway) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Finished implements exchange.Observer: one call per finished exchange.
func (m *Gateway) Finished(o exchange.Observation) {
	consumer := m.bound("consumer", o.Consumer)
	provider := m.bound("provider", o.Provider)
	dataset := m.bound("dataset", o.Dataset)
	mode := m.bound("mode", o.Mode)
	ex := [7]string{o.Side, consumer, provider, dataset, mode, o.Outcome, o.Kind}
	m.hot.exchanges.get(ex, func() prometheus.Counter { return m.exchanges.WithLabelValues(ex[:]...) }).Inc()
	du := [3]string{o.Side, mode, o.Outcome}
	m.hot.duration.get(du, func() prometheus.Observer { return m.duration.WithLabelValues(du[:]...) }).Observe(o.Total.Seconds())
	for _, s := range []struct {
		name string
		d    time.Duration
	}{{stageDecision, o.Decision}, {stageBackend, o.Backend}, {stageProjection, o.Projection}, {stageAuditWait, o.AuditWait}} {
		if s.d > 0 {
			st := [2]string{o.Side, s.name}
			m.hot.stage.get(st, func() prometheus.Observer { return m.stage.WithLabelValues(st[:]...) }).Observe(s.d.Seconds())
		}
	}
	if o.Outcome == exchange.OutcomeAllowed && o.Bytes > 0 {
		by := [5]string{o.Side, consumer, provider, dataset, mode}
		m.hot.bytes.get(by, func() prometheus.Counter { return m.bytes.WithLabelValues(by[:]...) }).Add(float64(o.Bytes))
	}
	if o.Kind == exchange.KindRateLimited {
		m.limited.WithLabelValues(consumer).Inc()
	}
}

// AuditCommitted records one group commit of the audit log (audit.Options'
// OnCommit).
func (m *Gateway) AuditCommitted(records int, took time.Duration) {
	m.commit.Observe(took.Seconds())
	m.batch.Observe(float64(records))
}

// SetFeedLag sets how many change events of dataset the consumer has not yet
// been delivered; the feed router calls it as it reads its offsets.
func (m *Gateway) SetFeedLag(consumer, dataset string, lag int64) {
	m.feedLag.WithLabelValues(m.bound("consumer", consumer), m.bound("dataset", dataset)).Set(float64(lag))
}

// bound returns v as a label value (see labelGuard).
func (m *Gateway) bound(label, v string) string { return m.labels.bound(label, v) }

// labelGuard caps the distinct values of each label.
type labelGuard struct {
	max      int
	overflow *prometheus.CounterVec

	mu   sync.Mutex
	seen map[string]map[string]bool
}

// bound returns v as a label value: "unknown" when empty, "other" once the
// label holds its maximum of distinct values.
func (g *labelGuard) bound(label, v string) string {
	if v == "" {
		return unknownLabelValue
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[string]map[string]bool{}
	}
	seen := g.seen[label]
	if seen == nil {
		seen = map[string]bool{}
		g.seen[label] = seen
	}
	if seen[v] {
		return v
	}
	if len(seen) >= g.max {
		g.overflow.WithLabelValues(label).Inc()
		return overflowLabelValue
	}
	seen[v] = true
	return v
}

func newFeedLag() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: FeedConsumerLag,
		Help: "Change events of a dataset not yet delivered to a subscribed consumer, as the feed router last saw."},
		[]string{"consumer", "dataset"})
}

func newOverflow() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: LabelValuesOverflowed,
		Help: "Observations whose label value was counted as \"other\" because the label already had its maximum of distinct values."},
		[]string{"label"})
}

// FeedRouter holds a feed router process's metrics: each subscribed
// consumer's lag and its readiness checks, with the Go runtime's and the
// process's.
type FeedRouter struct {
	reg    *prometheus.Registry
	lag    *prometheus.GaugeVec
	labels *labelGuard
	ready  atomic.Pointer[func() map[string]bool]
}

var feedRouterReadyDesc = prometheus.NewDesc(FeedRouterReady,
	"Whether one readiness check of the feed router passes (1) or fails (0), by check.", []string{"check"}, nil)

// WatchReady reports ready's checks (name: passing) as FeedRouterReady at
// every scrape, so an alert sees a router not ready without probing it.
func (m *FeedRouter) WatchReady(ready func() map[string]bool) { m.ready.Store(&ready) }

// feedRouterReadyCollector reports the checks given to WatchReady.
type feedRouterReadyCollector struct{ m *FeedRouter }

func (c feedRouterReadyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- feedRouterReadyDesc }

func (c feedRouterReadyCollector) Collect(ch chan<- prometheus.Metric) {
	ready := c.m.ready.Load()
	if ready == nil {
		return
	}
	for name, ok := range (*ready)() {
		v := 0.0
		if ok {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(feedRouterReadyDesc, prometheus.GaugeValue, v, name)
	}
}

// NewFeedRouter registers a feed router's metrics.
func NewFeedRouter() *FeedRouter {
	overflow := newOverflow()
	m := &FeedRouter{reg: prometheus.NewRegistry(), lag: newFeedLag(), labels: &labelGuard{max: defaultMaxLabelValues, overflow: overflow}}
	m.reg.MustRegister(m.lag, overflow, feedRouterReadyCollector{m}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SetFeedLag sets how many change events of dataset the consumer has not
// yet been delivered; the router calls it as it reads its offsets.
func (m *FeedRouter) SetFeedLag(consumer, dataset string, lag int64) {
	m.lag.WithLabelValues(m.labels.bound("consumer", consumer), m.labels.bound("dataset", dataset)).Set(float64(lag))
}

// Handler serves the metrics.
func (m *FeedRouter) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry the metrics live in.
func (m *FeedRouter) Registry() *prometheus.Registry { return m.reg }

// stateCollector reports, at scrape time, the state the gateway is in.
type stateCollector struct{ m *Gateway }

var (
	bundleInfoDesc = prometheus.NewDesc(PolicyBundleInfo, "The policy bundle in force (value 1), by revision.", []string{"revision"}, nil)
	bundleAgeDesc  = prometheus.NewDesc(PolicyBundleAge, "Seconds since the control plane built the policy bundle in force.", nil, nil)
	configAgeDesc  = prometheus.NewDesc(ConfigAge, "Seconds since the newest signed time of the configuration in force; past the maximum staleness the gateway denies every exchange.", nil, nil)
	maxStaleDesc   = prometheus.NewDesc(ConfigMaxStaleness, "The configured maximum staleness of the configuration, in seconds.", nil, nil)
	configRevDesc  = prometheus.NewDesc(ConfigRevision, "The revision of the configuration in force.", nil, nil)
	certDesc       = prometheus.NewDesc(CertificateExpiry, "When the certificate the gateway presents expires, as a Unix time.", nil, nil)
	readyDesc      = prometheus.NewDesc(ReadyCheck, "Whether one readiness check passes (1) or fails (0), by check.", []string{"check"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{bundleInfoDesc, bundleAgeDesc, configAgeDesc, maxStaleDesc, configRevDesc, certDesc, readyDesc} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	src, now := c.m.src, c.m.src.Now()
	if src.Bundle != nil {
		if rev, built := src.Bundle(); rev != "" {
			ch <- prometheus.MustNewConstMetric(bundleInfoDesc, prometheus.GaugeValue, 1, rev)
			if !built.IsZero() {
				ch <- prometheus.MustNewConstMetric(bundleAgeDesc, prometheus.GaugeValue, now.Sub(built).Seconds())
			}
		}
	}
	if src.FreshAsOf != nil {
		if at := src.FreshAsOf(); !at.IsZero() {
			ch <- prometheus.MustNewConstMetric(configAgeDesc, prometheus.GaugeValue, now.Sub(at).Seconds())
		}
	}
	if src.MaxStaleness > 0 {
		ch <- prometheus.MustNewConstMetric(maxStaleDesc, prometheus.GaugeValue, src.MaxStaleness.Seconds())
	}
	if src.ConfigRevision != nil {
		ch <- prometheus.MustNewConstMetric(configRevDesc, prometheus.GaugeValue, float64(src.ConfigRevision()))
	}
	if src.CertificateNotAfter != nil {
		if t := src.CertificateNotAfter(); !t.IsZero() {
			ch <- prometheus.MustNewConstMetric(certDesc, prometheus.GaugeValue, float64(t.Unix()))
		}
	}
	if src.Ready != nil {
		for name, ok := range src.Ready() {
			v := 0.0
			if ok {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, v, name)
		}
	}
}
