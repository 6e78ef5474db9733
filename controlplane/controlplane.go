// Package controlplane runs the federation's control plane: the single source
// of truth for the catalog, and the management API over HTTPS. Later
// capabilities (grants and policy bundles, certificates, gateway
// configuration) mount their routes on the same server.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/controlplane/api"
	"github.com/lienthong/lienthong/controlplane/bundles"
	"github.com/lienthong/lienthong/controlplane/console"
	"github.com/lienthong/lienthong/controlplane/metrics"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/durable"
	"github.com/lienthong/lienthong/internal/httpguard"
)

// Config is the control plane's configuration; cmd/lienthong fills it from flags.
type Config struct {
	// DataDir holds the SQLite file, the management TLS CA and the bootstrap token.
	DataDir string
	// Listen is the management API's address, e.g. 127.0.0.1:8443.
	Listen string
	// Store is "sqlite" (default) or "postgres".
	Store       string
	PostgresDSN string
	// TLSCert and TLSKey, when set, replace the self-signed management certificate.
	TLSCert, TLSKey string
	// Hosts are the names and addresses the management certificate covers.
	Hosts []string
	// MaxGrantPeriod is the longest period an access request may ask for
	// (0: service.DefaultMaxGrantPeriod, a year).
	MaxGrantPeriod time.Duration
	// Seed, when set, is a federation file loaded into an empty catalog on first start.
	Seed string
	// CA selects the certificate authority and the enrolment rules.
	CA CAConfig
	// XDSListen, when set, serves ADS to Envoy edges there over mTLS;
	// XDSSites is an optional JSON file of per-agency site settings.
	XDSListen, XDSSites string
	// Citizen configures the citizen's data tracker (off without an issuer).
	Citizen CitizenConfig
	// MetricsListen, when set, serves GET /metrics, /healthz and /readyz
	// over plain HTTP there (an address without a host: loopback only).
	MetricsListen string
	Log           *slog.Logger
}

// Ready tells the caller where the running control plane can be reached.
type Ready struct {
	URL string
	// CAFile is the management CA to trust; empty with an operator certificate.
	CAFile string
	// TokenFile holds the bootstrap platform-admin token (0600).
	TokenFile  string
	AdminToken string
	Seeded     bool
	// XDSAddress is the ADS listener's address, when one runs.
	XDSAddress string
	// MetricsAddress is the operations listener's address, when one runs.
	MetricsAddress string
	// Console is the web console at URL+"/console"; `lienthong up` mints
	// its login links through it.
	Console *console.Console
}

// OpenStore opens the configured store and runs its migrations.
func OpenStore(ctx context.Context, cfg Config) (catalog.Store, error) {
	switch cfg.Store {
	case "", "sqlite":
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		return sqlstore.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "catalog.db"))
	case "postgres":
		if cfg.PostgresDSN == "" {
			return nil, errors.New("--store postgres needs --postgres-dsn (or LIENTHONG_POSTGRES_DSN)")
		}
		return sqlstore.OpenPostgres(ctx, cfg.PostgresDSN)
	}
	return nil, fmt.Errorf("unknown store %q: use sqlite or postgres", cfg.Store)
}

// Run serves the control plane until ctx ends. ready is called once the
// listener is open.
func Run(ctx context.Context, cfg Config, ready func(Ready)) error {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	// A directory that holds a federation's state never starts over: its
	// catalog is checked, touching nothing, before anything opens it.
	found := existingState(cfg.DataDir)
	if err := checkMarker(cfg); err != nil {
		return err
	}
	if len(found) > 0 && storeName(cfg.Store) == "sqlite" {
		if err := checkCatalogFile(cfg.DataDir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	certOpts, authority, err := certificateOptions(cfg, log)
	if err != nil {
		return err
	}
	store, err := OpenStore(ctx, cfg)
	if err != nil {
		if errors.Is(err, sqlstore.ErrDamaged) {
			return refuseStartOver(cfg.DataDir, []string{"catalog.db"}, err)
		}
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", "error", err.Error())
		}
	}()
	if len(found) > 0 {
		empty, err := storeIsEmpty(ctx, store)
		if err != nil {
			return err
		}
		if empty {
			return refuseStartOver(cfg.DataDir, found, errors.New("the store holds no catalog at all"))
		}
	}
	bundleKey, err := bundles.LoadOrCreateKey(filepath.Join(cfg.DataDir, "bundle-signing-key.pem"))
	if err != nil {
		return err
	}
	fps, err := fingerprintsOf(ctx, authority, bundleKey, cfg.CA.Kind)
	if err != nil {
		return err
	}
	if err := pinKeys(ctx, store, fps); err != nil {
		return err
	}
	var checks *readiness
	var auditIndex index.Store // set below, before anything serves
	m := metrics.New(metrics.Sources{Store: store, Ready: func() map[string]bool {
		if checks == nil {
			return nil
		}
		return checks.Passed()
	}, Shipping: func(ctx context.Context) ([]metrics.GatewayShipping, error) { return shippingFigures(ctx, auditIndex) }})
	svc := service.New(store, append(certOpts, service.WithPolicySigningKey(bundleKey), service.WithMaxGrantPeriod(cfg.MaxGrantPeriod),
		service.WithBundleBuildObserver(m.BundleBuilt))...)

	r := Ready{TokenFile: filepath.Join(cfg.DataDir, "admin.token")}
	if r.AdminToken, err = bootstrapToken(ctx, svc, r.TokenFile); err != nil {
		return err
	}
	if cfg.Seed != "" {
		if r.Seeded, err = SeedIfEmpty(ctx, svc, cfg.Seed); err != nil {
			return err
		}
	}
	if err := writeMarker(cfg); err != nil {
		return err
	}

	cc := console.Config{Service: svc, Log: log}
	extra, err := auditRoutes(cfg, svc, log, &cc)
	auditIndex = cc.Index
	if err != nil {
		return err
	}

	hosts := cfg.Hosts
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	tlsCfg, caFile, err := managementTLS(cfg.DataDir, cfg.TLSCert, cfg.TLSKey, hosts)
	if err != nil {
		return err
	}
	r.CAFile = caFile

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	r.URL = "https://" + urlHost(ln.Addr().String())
	var xdsErr <-chan error
	if cfg.XDSListen != "" {
		if r.XDSAddress, xdsErr, cc.EnvoyNodes, err = startXDS(ctx, cfg, svc, tlsCfg, log); err != nil {
			ln.Close()
			return err
		}
	}
	checks = newReadiness(cfg, svc, store, tlsCfg)
	ops, err := startOps(cfg, m, checks, log)
	if err != nil {
		ln.Close()
		return err
	}
	if ops != nil {
		r.MetricsAddress = ops.Addr()
		defer func() { _ = ops.Close(context.Background()) }()
	}
	if r.Console, err = console.New(cc); err != nil {
		ln.Close()
		return err
	}
	srv.Handler = httpguard.Wrap(m.Middleware(console.Mount(r.Console, api.New(svc, log, extra...))), httpguard.Options{Allow: "GET, POST, PUT, DELETE"})
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	log.Info("control plane listening", "url", r.URL, "store", storeName(cfg.Store))
	if ready != nil {
		ready(r)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case err := <-xdsErr:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if xdsErr != nil {
		if err := <-xdsErr; err != nil {
			return err
		}
	}
	log.Info("control plane stopped")
	return nil
}

func storeName(s string) string {
	if s == "" {
		return "sqlite"
	}
	return s
}

// urlHost turns a listener address into a URL host, naming the loopback
// address when the listener is on all interfaces.
func urlHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// bootstrapToken makes the first platform-admin token on first start and
// keeps it in a 0600 file beside the database, so `make run` can show it on
// every start. Operators of a production platform delete that file after
// minting named tokens and revoke the bootstrap token.
func bootstrapToken(ctx context.Context, svc *service.Service, file string) (string, error) {
	secret, err := svc.Bootstrap(ctx)
	if err != nil {
		return "", err
	}
	if secret != "" {
		if err := durable.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write bootstrap token: %w", err)
		}
		return secret, nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read bootstrap token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
