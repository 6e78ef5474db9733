package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/adapters/rest"
	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/gateway/projection"
	"golang.org/x/time/rate"
)

// Gateway is one agency's gateway.
type Gateway struct {
	cfg      *Config
	log      *slog.Logger
	cp       *client.Client
	sync     *syncer
	rotator  *certs.Rotator
	sink     audit.Sink
	masker   *projection.Masker
	adapters map[string]adapters.Adapter
	pools    []*pgxpool.Pool

	peersMu sync.Mutex
	peers   map[string]*http.Client
	// limitersMu guards the per-consumer rate limiters and the verify
	// attempt counts.
	limitersMu     sync.Mutex
	limiters       map[string]*rate.Limiter
	verifyAttempts map[string][]time.Time

	// feeds publishes change events (feeds.go).
	feeds publisher

	// invalidResponses counts backend answers refused by validation.
	invalidResponses atomic.Int64
}

// Option adjusts a gateway, mostly for tests.
type Option func(*Gateway)

// WithSink replaces the audit file sink.
func WithSink(s audit.Sink) Option { return func(g *Gateway) { g.sink = s } }

// WithClock replaces time.Now for staleness and decisions.
func WithClock(now func() time.Time) Option { return func(g *Gateway) { g.sync.now = now } }

// New prepares a gateway: it reads its identity, pulls (or restores) its
// configuration, and opens its backends. It refuses to start without a
// verified configuration, since it could not check anyone.
func New(ctx context.Context, cfg *Config, log *slog.Logger, opts ...Option) (*Gateway, error) {
	token, err := os.ReadFile(cfg.ControlPlane.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("gateway: control plane token: %w", err)
	}
	cp, err := client.New(cfg.ControlPlane.URL, strings.TrimSpace(string(token)), cfg.ControlPlane.CAFile)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("gateway: state dir: %w", err)
	}
	g := &Gateway{cfg: cfg, log: log, cp: cp, adapters: map[string]adapters.Adapter{}, peers: map[string]*http.Client{}}
	g.sync = &syncer{cfg: cfg, cp: cp, log: log, now: time.Now}
	for _, o := range opts {
		o(g)
	}
	key, err := loadMaskingKey(cfg.MaskingKeyFile)
	if err != nil {
		return nil, err
	}
	if g.masker, err = projection.NewMasker(key, 4); err != nil {
		return nil, err
	}
	if g.sink == nil {
		fs, err := audit.OpenFile(cfg.AuditFile)
		if err != nil {
			return nil, err
		}
		g.sink = fs
	}
	initial, err := loadIdentity(cfg)
	if err != nil {
		return nil, err
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
	g.rotator, err = certs.NewRotator(ctx, certs.RotatorConfig{
		Initial: initial,
		Renew:   renewer(cfg, cp, func() string { return g.trustDomain(g.sync.current.Load()) }),
		OnRenew: func(leaf *x509.Certificate) {
			log.Info("gateway certificate renewed", "serial", certs.SerialHex(leaf.SerialNumber), "not_after", leaf.NotAfter)
			g.retireConnections(ctx)
		},
		OnError: func(err error, retryIn time.Duration) {
			log.Warn("gateway certificate renewal failed", "error", err.Error(), "retry_in", retryIn)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: identity: %w", err)
	}
	for ref, b := range cfg.Backends {
		a, err := g.openBackend(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("gateway: backend %s: %w", ref, err)
		}
		g.adapters[ref] = a
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
type Addrs struct{ Outbound, Inbound string }

// Run serves both listeners until ctx ends, pulling configuration and
// renewing its certificate in the background.
func (g *Gateway) Run(ctx context.Context, ready func(Addrs)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var servers []*http.Server
	var addrs Addrs
	errc := make(chan error, 2)
	serve := func(listen string, h http.Handler, name string) (string, error) {
		if listen == "" {
			return "", nil
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return "", fmt.Errorf("%s listener: %w", name, err)
		}
		srv := &http.Server{
			Handler: h, TLSConfig: g.sync.trust.ServerConfig(g.rotator),
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
			IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 32 << 10,
			ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		}
		servers = append(servers, srv)
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
		return ln.Addr().String(), nil
	}
	var err error
	if addrs.Outbound, err = serve(g.cfg.Outbound.Listen, g.consumerHandler(), "outbound"); err != nil {
		return err
	}
	if addrs.Inbound, err = serve(g.cfg.Inbound.Listen, g.providerHandler(), "inbound"); err != nil {
		return err
	}
	go g.sync.run(ctx)
	go func() { _ = g.rotator.Run(ctx) }()
	g.log.Info("gateway listening", "member", g.cfg.Member, "outbound", addrs.Outbound, "inbound", addrs.Inbound)
	if ready != nil {
		ready(addrs)
	}
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	shutdown, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	for _, s := range servers {
		_ = s.Shutdown(shutdown)
	}
	for _, p := range g.pools {
		p.Close()
	}
	if g.feeds.cl != nil {
		g.feeds.cl.Close()
	}
	if c, ok := g.sink.(interface{ Close() error }); ok {
		_ = c.Close()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// trustDomain is the federation's SPIFFE trust domain from the configuration.
func (g *Gateway) trustDomain(st *state) string {
	if st != nil && st.config.Trust != nil && st.config.Trust.TrustDomain != "" {
		return st.config.Trust.TrustDomain
	}
	return service.DefaultTrustDomain
}

// identify names the caller of r from its client certificate and checks it
// again on every request, not only at the handshake: a keep-alive
// connection must not outlive the certificate's expiry, the revocation of
// its serial, or the revocation of its system.
func (g *Gateway) identify(r *http.Request, st *state) (string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", errors.New("no client certificate")
	}
	leaf := r.TLS.PeerCertificates[0]
	if now := g.sync.now(); now.After(leaf.NotAfter) {
		return "", fmt.Errorf("the client certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if g.sync.trust.IsRevoked(leaf.SerialNumber) {
		return "", fmt.Errorf("the client certificate %s has been revoked", certs.SerialHex(leaf.SerialNumber))
	}
	uri, err := certs.SPIFFEID(leaf)
	if err != nil {
		return "", err
	}
	id, err := catalog.ParseSPIFFE(uri, g.trustDomain(st), g.cfg.instance())
	if err != nil {
		return "", err
	}
	if st.revokedSystem[id.String()] {
		return "", fmt.Errorf("system %s has been revoked", id)
	}
	return id.String(), nil
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
		case <-time.After(orDefault(g.cfg.Timeout, 15*time.Second)):
		}
		for _, c := range old {
			c.CloseIdleConnections()
		}
	}()
}

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
func (g *Gateway) InvalidResponses() int64 { return g.invalidResponses.Load() }

// CertificateSerial is the serial of the certificate the gateway presents
// now, for operators and tests watching renewals.
func (g *Gateway) CertificateSerial() string {
	if leaf := g.rotator.Leaf(); leaf != nil {
		return certs.SerialHex(leaf.SerialNumber)
	}
	return ""
}
