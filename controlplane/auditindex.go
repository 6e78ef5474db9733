package controlplane

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/api"
	"github.com/lienthong/lienthong/controlplane/auditapi"
	"github.com/lienthong/lienthong/controlplane/citizen"
	"github.com/lienthong/lienthong/controlplane/console"
	"github.com/lienthong/lienthong/controlplane/metrics"
	"github.com/lienthong/lienthong/controlplane/service"
)

// CitizenConfig configures the citizen's data tracker; with no issuer the
// tracker is not mounted.
type CitizenConfig struct {
	// Issuer is the OIDC issuer citizens sign in with.
	Issuer string
	// ClientID is the audience its ID tokens name for this platform.
	ClientID string
	// Claim holds the personal ID ("sub" when empty).
	Claim string
	// ClientSecret is the console's secret at the issuer for the citizens'
	// sign-in, when the issuer gives one (PKCE alone serves a public client).
	ClientSecret string
}

// sharedDB is what a catalog store offers to stores that keep their tables
// in the same database (sqlstore.Store has it).
type sharedDB interface {
	DB() *sql.DB
	Dialect() string
}

// OpenIndex opens the audit index over the catalog store's database, whose
// migrations created its tables.
func OpenIndex(store catalog.Store, log *slog.Logger, opts ...index.Option) (*index.SQLStore, error) {
	s, ok := store.(sharedDB)
	if !ok {
		return nil, fmt.Errorf("audit index: the catalog store %T does not share its database", store)
	}
	return index.New(s.DB(), s.Dialect(), append([]index.Option{index.WithLogger(log)}, opts...)...)
}

// auditRoutes builds the audit index's routes and, when an issuer is
// configured, the citizen tracker's. The subject key is created in the data
// directory at first start when missing (`lienthong up` creates the same
// file), so the gateways' HMACs and the tracker's agree. It also fills the
// console's view of the same index, key and tracker.
func auditRoutes(cfg Config, svc *service.Service, log *slog.Logger, cc *console.Config) ([]api.Route, error) {
	key, err := index.LoadOrCreateSubjectKey(filepath.Join(cfg.DataDir, index.SubjectKeyFile))
	if err != nil {
		return nil, err
	}
	ix, err := OpenIndex(svc.Store(), log)
	if err != nil {
		return nil, err
	}
	cc.Index, cc.SubjectKey = ix, key
	routes := auditapi.New(ix, key, log, svc.Store()).Routes()
	if cfg.Citizen.Issuer != "" {
		v, err := citizen.NewVerifier(citizen.Config{Issuer: cfg.Citizen.Issuer, ClientID: cfg.Citizen.ClientID, Claim: cfg.Citizen.Claim})
		if err != nil {
			return nil, err
		}
		tr := citizen.NewTracker(v, key, ix, svc.Store(), svc.Now, log)
		cc.Tracker = tr
		cc.Citizen = console.CitizenLogin{Issuer: cfg.Citizen.Issuer, ClientID: cfg.Citizen.ClientID, ClientSecret: cfg.Citizen.ClientSecret, Verifier: v}
		routes = append(routes, tr.Route())
	}
	return routes, nil
}

// shippingFigures reads each gateway's audit shipping for the metrics
// (none before the index is open).
func shippingFigures(ctx context.Context, ix index.Store) ([]metrics.GatewayShipping, error) {
	if ix == nil {
		return nil, nil
	}
	all, err := ix.ShippingStatus(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]metrics.GatewayShipping, len(all))
	for i, sh := range all {
		out[i] = metrics.GatewayShipping{Gateway: sh.Gateway, Lag: sh.Lag, ReportedAt: sh.HeadAt}
	}
	return out, nil
}
