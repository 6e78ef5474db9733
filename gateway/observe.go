package gateway

import (
	"time"

	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/metrics"
	"github.com/lienthong/lienthong/internal/opsmux"
)

// newMetrics builds the gateway's metrics over its own state, read at
// scrape time.
func (g *Gateway) newMetrics() *metrics.Gateway {
	return metrics.New(metrics.Sources{
		FreshAsOf:    g.FreshAsOf,
		MaxStaleness: g.cfg.MaxStaleness.Duration,
		ConfigRevision: func() int64 {
			if st := g.sync.current.Load(); st != nil {
				return st.config.Revision
			}
			return 0
		},
		Bundle: func() (string, time.Time) {
			if st := g.sync.current.Load(); st != nil {
				return st.engine.Revision(), st.bundleBuilt
			}
			return "", time.Time{}
		},
		CertificateNotAfter: func() time.Time {
			if leaf := g.rotator.Leaf(); leaf != nil {
				return leaf.NotAfter
			}
			return time.Time{}
		},
		Ready: func() map[string]bool {
			out := map[string]bool{}
			for _, c := range g.Readiness() {
				out[c.Name] = c.Err == nil
			}
			return out
		},
		Now: func() time.Time { return g.sync.now() },
	})
}

// Metrics are the gateway's Prometheus metrics (served on metrics.listen).
func (g *Gateway) Metrics() *metrics.Gateway { return g.metrics }

// opsChecks are the readiness checks as the operations listener reports them.
func (g *Gateway) opsChecks() []opsmux.Check {
	checks := g.Readiness()
	out := make([]opsmux.Check, len(checks))
	for i, c := range checks {
		out[i] = opsmux.Check{Name: c.Name, Err: c.Err, Group: opsGroup(c)}
	}
	return out
}

// WithMetricsListen serves the operations listener (/metrics, /healthz,
// /readyz) at addr, as metrics.listen in the configuration does (for
// `lienthong up` and tests, which build configurations in code).
func WithMetricsListen(addr string) Option { return func(g *Gateway) { g.cfg.Metrics.Listen = addr } }

// WithoutMetrics turns the gateway's metrics off: exchanges are neither
// counted nor timed, and /metrics serves nothing of them. It exists for the
// bench's baseline (the cost of observation); a production gateway keeps
// its metrics.
func WithoutMetrics() Option { return func(g *Gateway) { g.metricsOff = true } }

// observer is what the exchange core reports to (nil: off).
func (g *Gateway) observer() exchange.Observer {
	if g.metricsOff {
		return nil
	}
	return g.metrics
}

// onCommit is what the audit log reports its commits to (nil: off).
func (g *Gateway) onCommit() func(int, time.Duration) {
	if g.metricsOff {
		return nil
	}
	return g.metrics.AuditCommitted
}
