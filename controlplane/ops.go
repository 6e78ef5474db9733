package controlplane

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/metrics"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/opsmux"
)

// startOps serves the operations listener (GET /metrics, /healthz,
// /readyz) on cfg.MetricsListen; nil when none is configured.
func startOps(cfg Config, m *metrics.ControlPlane, r *readiness, log *slog.Logger) (*opsmux.Server, error) {
	if cfg.MetricsListen == "" {
		return nil, nil
	}
	return opsmux.Listen(cfg.MetricsListen, opsmux.Handler(m.Handler(), r.Checks), log)
}

// newReadiness builds the readiness checks of a running control plane.
func newReadiness(cfg Config, svc *service.Service, store catalog.Store, tlsCfg *tls.Config) *readiness {
	return &readiness{svc: svc, store: store, tls: tlsCfg, dataDir: cfg.DataDir, now: time.Now}
}
