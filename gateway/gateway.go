package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/adapters/rest"
	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/ship"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/federation/pull"
	envoydoor "github.com/lienthong/lienthong/gateway/envoy"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/feed"
	"github.com/lienthong/lienthong/gateway/metrics"
	"github.com/lienthong/lienthong/gateway/projection"
	"github.com/lienthong/lienthong/internal/opsmux"
	"github.com/lienthong/lienthong/internal/tracing"
)

// Gateway is one agency's gateway.
type Gateway struct {
	cfg     *Config
	log     *slog.Logger
	cp      *pull.Client
	sync    *syncer
	rotator *certs.Rotator
	sink    audit.Sink
	shipper *ship.Shipper // nil with a sink from WithSink
	// feedRouter is the feed router run in the process (feeds.router).
	feedRouter *feed.ProviderRouter
	// auditPath is the audit file the gateway opened ("" with WithSink).
	auditPath string
	adapters  map[string]adapters.Adapter
	pools     []*pgxpool.Pool
	// core runs every exchange; the HTTP handlers are its doors.
	core *exchange.Core

	peersMu sync.Mutex
	peers   map[string]*http.Client
	// feeds publishes change events (feeds.go).
	feeds publisher
	// metrics count and time exchanges (observe.go); tracer traces them
	// (trace.go).
	metrics    *metrics.Gateway
	metricsOff bool
	tracer     trace.Tracer
	// bound are listeners the caller bound, by door (WithListeners).
	bound map[string]net.Listener
}

// Option adjusts a gateway, mostly for tests.
type Option func(*Gateway)

// WithSink replaces the audit file sink.
func WithSink(s audit.Sink) Option { return func(g *Gateway) { g.sink = s } }

// WithClock replaces time.Now for staleness and decisions.
func WithClock(now func() time.Time) Option { return func(g *Gateway) { g.sync.now = now } }

// auditKeyFile is the gateway's checkpoint key: it signs the audit log's
// checkpoints and is the gateway's alone, in its state directory.
func auditKeyFile(cfg *Config) string {
	if cfg.AuditLog.CheckpointKeyFile != "" {
		return cfg.AuditLog.CheckpointKeyFile
	}
	return filepath.Join(cfg.StateDir, "audit-checkpoint.key")
}

// New prepares a gateway: it reads its identity, pulls (or restores) its
// configuration, and opens its backends. It refuses to start without a
// verified configuration, since it could not check anyone.
func New(ctx context.Context, cfg *Config, log *slog.Logger, opts ...Option) (_ *Gateway, err error) {
	cfg = cfg.withDefaults()
	g := &Gateway{cfg: cfg, log: log, adapters: map[string]adapters.Adapter{}, peers: map[string]*http.Client{},
		sync: &syncer{cfg: cfg, log: log, now: time.Now}, tracer: tracing.Provider(nil).Tracer(tracerName)}
	for _, o := range opts {
		o(g)
	}
	// From here the gateway owns the listeners handed to it (WithListeners);
	// what New opens below (the audit log, database pools) it closes again
	// when it fails part-way. A sink handed in (WithSink) stays its
	// caller's until Run.
	defer func() {
		if err != nil {
			g.closeListeners()
			if g.auditPath == "" {
				g.sink = nil
			}
			_ = g.release()
		}
	}()
	subjects, err := audit.LoadSubjectKey(cfg.AuditSubjectKeyFile)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	initial, err := loadIdentity(cfg)
	if err != nil {
		return nil, err
	}
	// The certificate first: it is the gateway's only credential, towards
	// peers and towards the control plane alike (it holds no token).
	g.rotator, err = certs.NewRotator(ctx, certs.RotatorConfig{
		Initial: initial,
		Renew:   renewer(cfg, func() *pull.Client { return g.cp }, func() string { return trustDomainOf(g.sync.current.Load()) }),
		OnRenew: func(leaf *x509.Certificate) {
			log.Info("gateway certificate renewed", "serial", certs.SerialHex(leaf.SerialNumber), "not_after", leaf.NotAfter)
			g.retireConnections(ctx)
			g.cp.CloseIdleConnections()
		},
		OnError: func(err error, retryIn time.Duration) {
			log.Warn("gateway certificate renewal failed", "error", err.Error(), "retry_in", retryIn)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: identity: %w", err)
	}
	if g.cp, err = controlPlaneClient(cfg, g.rotator.GetClientCertificate); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("gateway: state dir: %w", err)
	}
	g.sync.cp = g.cp
	g.metrics = g.newMetrics()
	key, err := loadMaskingKey(cfg.MaskingKeyFile)
	if err != nil {
		return nil, err
	}
	masker, err := projection.NewMasker(key, 4)
	if err != nil {
		return nil, err
	}
	if g.sink == nil {
		key, err := audit.LoadKey(auditKeyFile(cfg))
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		// Checkpoints leave for the control plane as soon as they are
		// durable; entries follow at least once (audit/ship).
		var fs *audit.FileSink
		g.shipper = ship.New(ship.NewClient(g.cp.HTTPClient(), cfg.ControlPlane.URL, cfg.System, ""), cfg.AuditFile,
			ship.Options{Key: key.Public().(ed25519.PublicKey), Log: log, Durable: func() uint64 { return fs.Durable() }})
		fs, err = audit.OpenFile(cfg.AuditFile, audit.Options{Gateway: cfg.System, Key: key, Log: log, OnCheckpoint: g.shipper.Nudge,
			CheckpointEvery: cfg.AuditLog.CheckpointEvery, CheckpointInterval: cfg.AuditLog.CheckpointInterval.Duration,
			SegmentBytes: cfg.AuditLog.SegmentBytes, SegmentAge: cfg.AuditLog.SegmentAge.Duration,
			OnCommit: g.onCommit()})
		if err != nil {
			return nil, err
		}
		g.sink, g.auditPath = fs, cfg.AuditFile
	}
	if err := g.sync.loadKey(ctx); err != nil {
		return nil, err
	}
	if err := g.sync.restore(ctx); err != nil {
		log.Warn("stored configuration not usable", "error", err.Error())
	}
	if err := g.sync.pull(ctx); err != nil {
		if g.sync.current.Load() == nil {
			return nil, fmt.Errorf("gateway: no configuration: %w", err)
		}
		log.Warn("control plane unreachable; serving the stored configuration until it is stale", "error", err.Error())
	}
	for ref, b := range cfg.Backends {
		a, err := g.openBackend(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("gateway: backend %s: %w", ref, err)
		}
		g.adapters[ref] = a
	}
	backends := map[string]exchange.Backend{}
	for ref, a := range g.adapters {
		b := cfg.Backends[ref]
		kind := "postgres"
		if b.REST != nil {
			kind = "rest"
		}
		traced := tracedAdapter{Adapter: a, kind: kind, tracer: func() trace.Tracer { return g.tracer }}
		backends[ref] = exchange.Backend{Adapter: traced, RecordPath: b.RecordPath, SubjectField: b.SubjectField}
	}
	g.core, err = exchange.New(exchange.Config{
		Member: cfg.Member, Instance: cfg.Instance, Source: source{g.sync},
		Revoked:  func(serial *big.Int) bool { return g.sync.trust.IsRevoked(serial) },
		Backends: backends, Sink: g.sink, Masker: masker, Subjects: subjects, Log: log,
		Now:          func() time.Time { return g.sync.now() },
		MaxStaleness: cfg.MaxStaleness.Duration, Timeout: cfg.Timeout.Duration, MaxResponseBytes: cfg.MaxResponseBytes,
		RatePerSecond: cfg.RateLimit.PerSecond, RateBurst: cfg.RateLimit.Burst,
		Observer: g.observer(),
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if g.feedRouter, err = g.newFeedRouter(ctx); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return g, nil
}

func (g *Gateway) openBackend(ctx context.Context, b Backend) (adapters.Adapter, error) {
	if b.REST != nil {
		rc := rest.Config{BaseURL: b.REST.BaseURL, Timeout: b.REST.Timeout.Duration}
		if b.REST.CAFile != "" {
			pemBytes, err := os.ReadFile(b.REST.CAFile)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemBytes) {
				return nil, fmt.Errorf("%s holds no PEM certificate", b.REST.CAFile)
			}
			rc.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		return rest.New(rc)
	}
	return g.openPostgres(ctx, b)
}

// Addrs are the addresses the gateway listens on once running.
type Addrs struct{ Outbound, Inbound, Envoy, Health, Metrics string }

// Run serves both listeners until ctx ends, pulling configuration and
// renewing its certificate in the background. It refuses to start when its
// certificate chain does not verify to the trust bundle, its key does not
// match, or its audit log cannot be written (see Readiness). When ctx ends
// it stops accepting, lets exchanges in flight finish, waits for the
// background work, and syncs and closes the audit log before returning.
func (g *Gateway) Run(ctx context.Context, ready func(Addrs)) error {
	defer g.closeListeners() // on every return: the gateway owns them
	started := false
	defer func() {
		if !started { // failed to start: nothing else will close them
			_ = g.release()
		}
	}()
	for _, c := range g.Readiness() {
		// A stale configuration is served as denials until a pull renews
		// it; the rest cannot heal by waiting.
		if c.Err != nil && c.Name != "configuration" && !isFeedRouterCheck(c) {
			return fmt.Errorf("gateway of %s is not ready: %s: %w", g.cfg.Member, c.Name, c.Err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var servers []*http.Server
	defer func() {
		if !started { // failed while starting: stop the doors already serving
			for _, s := range servers {
				_ = s.Close()
			}
		}
	}()
	var addrs Addrs
	errc := make(chan error, 4)
	serve := func(listen string, h http.Handler, name string, plain bool) (string, error) {
		ln := g.bound[name]
		if ln == nil {
			if listen == "" {
				return "", nil
			}
			var err error
			if ln, err = net.Listen("tcp", listen); err != nil {
				return "", fmt.Errorf("%s listener: %w", name, err)
			}
		}
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
			IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 32 << 10,
			ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		}
		servers = append(servers, srv)
		if plain {
			go func() { errc <- srv.Serve(ln) }()
		} else {
			srv.TLSConfig = g.sync.trust.ServerConfig(g.rotator)
			go func() { errc <- srv.ServeTLS(ln, "", "") }()
		}
		return ln.Addr().String(), nil
	}
	var err error
	if addrs.Outbound, err = serve(g.cfg.Outbound.Listen, g.consumerHandler(), "outbound", false); err != nil {
		return err
	}
	if addrs.Inbound, err = serve(g.cfg.Inbound.Listen, g.providerHandler(), "inbound", false); err != nil {
		return err
	}
	if addrs.Health, err = serve(g.cfg.Health.Listen, g.readyzHandler(), "health", true); err != nil {
		return err
	}
	if ln := g.bound["metrics"]; ln != nil || g.cfg.Metrics.Listen != "" {
		h := opsmux.Handler(g.metrics.Handler(), g.opsChecks)
		var ops *opsmux.Server
		if ln != nil {
			ops = opsmux.Serve(ln, h, g.log)
		} else if ops, err = opsmux.Listen(g.cfg.Metrics.Listen, h, g.log); err != nil {
			return err
		}
		addrs.Metrics = ops.Addr()
		defer func() { _ = ops.Close(context.Background()) }()
	}
	var doors *envoydoor.Server
	var grpcServer *grpc.Server
	if g.cfg.Envoy.Listen != "" || g.bound["envoy"] != nil {
		ln := g.bound["envoy"]
		if ln == nil {
			if ln, err = net.Listen("tcp", g.cfg.Envoy.Listen); err != nil {
				return fmt.Errorf("envoy listener: %w", err)
			}
		}
		if doors, err = g.EnvoyDoors(); err != nil {
			_ = ln.Close()
			return err
		}
		grpcServer = doors.GRPCServer(g.EnvoyTLS())
		addrs.Envoy = ln.Addr().String()
		go func() { errc <- grpcServer.Serve(ln) }()
	}
	var background sync.WaitGroup
	background.Add(2)
	go func() { defer background.Done(); g.sync.run(ctx) }()
	go func() { defer background.Done(); _ = g.rotator.Run(ctx) }()
	if g.shipper != nil {
		background.Add(1)
		go func() { defer background.Done(); g.shipper.Run(ctx) }()
	}
	if g.feedRouter != nil {
		background.Add(1)
		go func() { defer background.Done(); _ = g.feedRouter.Run(ctx) }() // and reports its lag
	}
	started = true
	g.log.Info("gateway listening", "member", g.cfg.Member, "outbound", addrs.Outbound, "inbound", addrs.Inbound, "envoy", addrs.Envoy, "health", addrs.Health, "metrics", addrs.Metrics)
	if ready != nil {
		ready(addrs)
	}
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	// Stop accepting and let the exchanges in flight finish; then no
	// record can still be submitted, and closing the sink syncs them all.
	shutdown, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	for _, s := range servers {
		_ = s.Shutdown(shutdown)
	}
	if grpcServer != nil {
		grpcServer.GracefulStop()
		doors.Close()
	}
	cancel()
	background.Wait()
	if rerr := g.release(); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	g.log.Info("gateway stopped", "member", g.cfg.Member)
	return nil
}

// release closes what the gateway holds open for its life: its backends'
// database pools, its change-feed producer and its audit log (synced as it
// closes). Run calls it once nothing can submit a record any more, or when
// it fails to start; New when it fails part-way.
func (g *Gateway) release() error {
	for _, p := range g.pools {
		p.Close()
	}
	g.pools = nil
	if g.feeds.cl != nil {
		g.feeds.cl.Close()
	}
	if c, ok := g.sink.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			return fmt.Errorf("close the audit log: %w", err)
		}
	}
	return nil
}

// EnvoyDoors returns the ext_authz and ext_proc doors onto the gateway's
// exchange core (Run serves them on envoy.listen; tests serve them on
// their own listener).
func (g *Gateway) EnvoyDoors() (*envoydoor.Server, error) {
	return envoydoor.New(envoydoor.Config{
		Core: g.core,
		VerifyPeer: func(chain []*x509.Certificate) error {
			// Envoy forwards the peer's leaf only; the issuing
			// intermediates are the federation's, as in this gateway's
			// own chain. Only the roots anchor the verification.
			_, err := g.sync.trust.Verify(append(slices.Clip(chain), g.ownIntermediates()...), x509.ExtKeyUsageClientAuth)
			return err
		},
		Envoy:            g.ownSPIFFECached(),
		MaxResponseBytes: g.cfg.MaxResponseBytes,
		MaxRequestBytes:  g.cfg.MaxRequestBytes,
		Wait:             g.cfg.Timeout.Duration,
		Streamed:         g.cfg.Envoy.Streamed,
		Log:              g.log,
		Tracer:           g.tracer,
	})
}

// EnvoyTLS is the TLS configuration of the Envoy doors' listener: the
// gateway's certificate, and a client certificate of the federation naming
// the gateway's own system, which the local Envoy presents.
func (g *Gateway) EnvoyTLS() *tls.Config {
	c := g.sync.trust.ServerConfig(g.rotator)
	c.VerifyConnection = g.sync.trust.VerifyConnection(x509.ExtKeyUsageClientAuth, func(id string) error {
		if id != g.ownSPIFFE() {
			return errors.New("only the local Envoy, presenting this gateway's certificate, may call")
		}
		return nil
	})
	c.NextProtos = []string{"h2"}
	return c
}

// ownIntermediates are the CA certificates of the gateway's own chain.
func (g *Gateway) ownIntermediates() []*x509.Certificate {
	cur := g.rotator.Current()
	if cur == nil {
		return nil
	}
	var out []*x509.Certificate
	for _, der := range cur.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// ownSPIFFE is the SPIFFE id of the certificate the gateway presents now.
func (g *Gateway) ownSPIFFE() string {
	if leaf := g.rotator.Leaf(); leaf != nil {
		if id, err := certs.SPIFFEID(leaf); err == nil {
			return id
		}
	}
	return ""
}

// trustDomainOf is the federation's SPIFFE trust domain from the configuration.
func trustDomainOf(st *state) string {
	if st != nil && st.config.Trust != nil && st.config.Trust.TrustDomain != "" {
		return st.config.Trust.TrustDomain
	}
	return federation.DefaultTrustDomain
}

var randRead = rand.Read

// retireConnections starts new peer transports after a renewal: peers check
// the certificate on every request, so no new request may ride a
// keep-alive connection that presents the previous one. Requests in flight
// finish on the old connections (their certificate is still valid: renewal
// comes at two-thirds of its life), which are then closed.
func (g *Gateway) retireConnections(ctx context.Context) {
	g.peersMu.Lock()
	old := g.peers
	g.peers = map[string]*http.Client{}
	g.peersMu.Unlock()
	for _, c := range old {
		c.CloseIdleConnections()
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-time.After(g.cfg.Timeout.Duration):
		}
		for _, c := range old {
			c.CloseIdleConnections()
		}
	}()
}

// RenewCertificate renews the gateway's certificate now rather than at
// two-thirds of its life (operators use it after a CA rotation; tests, to
// renew on demand).
func (g *Gateway) RenewCertificate(ctx context.Context) error { return g.rotator.RenewNow(ctx) }

// Sync pulls configuration and policy now rather than at the next tick
// (operators use it after an urgent revocation; tests, to avoid sleeping).
func (g *Gateway) Sync(ctx context.Context) error { return g.sync.pull(ctx) }

// FreshAsOf is the newest signed time the gateway holds for its
// configuration (its issue time, or the control plane's latest statement
// that it is still current); past it by more than maxStaleness the gateway
// denies. Zero before any configuration.
func (g *Gateway) FreshAsOf() time.Time {
	if st := g.sync.current.Load(); st != nil {
		return st.syncedAt
	}
	return time.Time{}
}

// PolicyRevision is the revision of the policy the gateway decides with.
func (g *Gateway) PolicyRevision() string {
	if st := g.sync.current.Load(); st != nil {
		return st.engine.Revision()
	}
	return ""
}

// InvalidResponses counts backend answers refused because they did not match
// the dataset (schema, duplicate keys, malformed JSON) since the gateway
// started: a provider's operator watches it to find a misbehaving backend.
func (g *Gateway) InvalidResponses() int64 { return g.core.InvalidResponses() }

// CertificateSerial is the serial of the certificate the gateway presents
// now, for operators and tests watching renewals.
func (g *Gateway) CertificateSerial() string {
	if leaf := g.rotator.Leaf(); leaf != nil {
		return certs.SerialHex(leaf.SerialNumber)
	}
	return ""
}
