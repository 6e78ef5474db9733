package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/controlplane/xds"
	"github.com/lienthong/lienthong/controlplane/xds/server"
)

// startXDS opens the ADS listener for Envoy edges (--xds-listen) and the
// loop that keeps their snapshots in step with the catalog. Envoy nodes
// present their gateway system's certificate from the federation CA; the
// listener presents the management certificate, which Envoy checks against
// the management CA (deploy/envoy/bootstrap.yaml). It returns the listener
// address, a channel that yields the server's end (nil error when ctx
// ended), and the server's per-node status for the console.
func startXDS(ctx context.Context, cfg Config, svc *service.Service, mgmt *tls.Config, log *slog.Logger) (string, <-chan error, func() []server.NodeStatus, error) {
	if len(mgmt.Certificates) == 0 {
		return "", nil, nil, errors.New("xds: no management certificate to present")
	}
	sites, err := xds.LoadSites(cfg.XDSSites)
	if err != nil {
		return "", nil, nil, err
	}
	trust := func(ctx context.Context) (xds.Trust, error) {
		t, err := svc.Trust(ctx)
		if err != nil {
			return xds.Trust{}, err
		}
		return xds.Trust{RootsPEM: t.RootsPEM, RevokedSerials: t.RevokedSerials}, nil
	}
	first, err := trust(ctx)
	if err != nil {
		return "", nil, nil, fmt.Errorf("xds: %w", err)
	}
	roots, err := certs.ParseCertificatesPEM([]byte(first.RootsPEM))
	if err != nil {
		return "", nil, nil, fmt.Errorf("xds: trust roots: %w", err)
	}
	store, err := certs.NewTrustStore(roots, first.RevokedSerials)
	if err != nil {
		return "", nil, nil, fmt.Errorf("xds: %w", err)
	}
	srv := server.New(server.Config{TrustDomain: svc.TrustDomain(), Log: log})
	syncer := xds.NewSyncer(srv, xds.Config{
		Store: svc.Store(), Snapshot: svc.Snapshot, TrustDomain: svc.TrustDomain(), Trust: trust, TrustStore: store, Sites: sites, Log: log,
		MinLevel: svc.EnrollMinLevel(),
	})
	ln, err := net.Listen("tcp", cfg.XDSListen)
	if err != nil {
		return "", nil, nil, fmt.Errorf("xds listen %s: %w", cfg.XDSListen, err)
	}
	cert := mgmt.Certificates[0]
	tlsCfg := server.TLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }, store)
	// errc yields once both the server and the syncer have stopped, so the
	// store is not closed under a sync in progress.
	errc := make(chan error, 1)
	go func() {
		sctx, stop := context.WithCancel(ctx)
		synced := make(chan struct{})
		go func() { _ = syncer.Run(sctx); close(synced) }()
		err := srv.Serve(ctx, ln, tlsCfg)
		stop()
		<-synced
		errc <- err
	}()
	return ln.Addr().String(), errc, srv.Status, nil
}
