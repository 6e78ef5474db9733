// Package server is the control plane's ADS server: it holds one snapshot
// per Envoy node (one node per agency edge, its id the member code) in
// go-control-plane's snapshot cache, serves them over gRPC with mutual TLS,
// and serves a node only the edge of the member its certificate names.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	xdsserver "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/controlplane/xds/ir"
	"github.com/lienthong/lienthong/controlplane/xds/translate"
)

// Server is the ADS server. Make one with New, feed it edges with Sync or
// Update, and serve it with Serve.
type Server struct {
	log         *slog.Logger
	trustDomain string
	cache       cache.SnapshotCache
	translator  *translate.Translator
	xds         xdsserver.Server
	streams     *streams

	mu       sync.Mutex // serialises publishing
	versions map[string]ir.Versions
}

// Config configures a Server.
type Config struct {
	// TrustDomain is the federation's SPIFFE trust domain; a node's
	// certificate must be in it.
	TrustDomain string
	Log         *slog.Logger
}

// New returns a Server with an empty cache: a node that connects before the
// first Sync waits for its snapshot.
func New(cfg Config) *Server {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		log:         log.With("component", "xds"),
		trustDomain: cfg.TrustDomain,
		translator:  translate.New(),
		versions:    map[string]ir.Versions{},
	}
	s.streams = newStreams(s.log, cfg.TrustDomain)
	s.cache = cache.NewSnapshotCache(true, cache.IDHash{}, nil)
	s.xds = xdsserver.NewServer(context.Background(), s.cache, s.streams)
	return s
}

// Sync publishes every edge of m and withdraws the snapshot of any node
// whose member no longer has an edge. Only nodes whose content changed get
// a new snapshot; it returns their ids.
func (s *Server) Sync(ctx context.Context, m *ir.Model) ([]string, error) {
	members := m.Members()
	changed, err := s.Update(ctx, m, members)
	if err != nil {
		return changed, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for node := range s.versions {
		if _, ok := slices.BinarySearch(members, node); !ok {
			delete(s.versions, node)
			s.cache.ClearSnapshot(node)
			changed = append(changed, node)
		}
	}
	return changed, nil
}

// Update rebuilds the edges of the given members only (those a grant
// change affected) and publishes those whose content changed. Edges are
// built and translated on every core; snapshots are set in member order.
func (s *Server) Update(ctx context.Context, m *ir.Model, members []string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	built := make([]builtEdge, len(members))
	workers := min(runtime.GOMAXPROCS(0), len(members))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(members) {
					return
				}
				built[i] = s.build(m, members[i])
			}
		}()
	}
	wg.Wait()

	var changed []string
	var errs []error
	for i, b := range built {
		member := members[i]
		switch {
		case b.err != nil:
			// The node keeps its previous snapshot: a bad edge must not
			// take down a working one.
			errs = append(errs, b.err)
		case b.gone:
			if _, ok := s.versions[member]; ok {
				delete(s.versions, member)
				s.cache.ClearSnapshot(member)
				changed = append(changed, member)
			}
		case b.snap != nil:
			if err := s.cache.SetSnapshot(ctx, member, b.snap); err != nil {
				errs = append(errs, fmt.Errorf("edge %s: %w", member, err))
				continue
			}
			s.versions[member] = b.versions
			changed = append(changed, member)
		}
	}
	return changed, errors.Join(errs...)
}

// builtEdge is one member's result: a snapshot to set, nothing to do
// (same versions), no edge any more, or an error.
type builtEdge struct {
	snap     *cache.Snapshot
	versions ir.Versions
	gone     bool
	err      error
}

// build makes one member's snapshot if its content changed. It reads
// s.versions, which only Update (holding s.mu) writes, after the workers end.
func (s *Server) build(m *ir.Model, member string) builtEdge {
	e, err := m.Edge(member)
	if err != nil {
		return builtEdge{err: err}
	}
	if e == nil {
		return builtEdge{gone: true}
	}
	v := e.Versions()
	if old, ok := s.versions[e.NodeID]; ok && old == v {
		return builtEdge{}
	}
	snap, err := s.translator.Snapshot(e)
	if err != nil {
		return builtEdge{err: err}
	}
	return builtEdge{snap: snap, versions: v}
}

// Snapshot returns the snapshot the cache holds for a node, for tests and
// the console.
func (s *Server) Snapshot(node string) (*cache.Snapshot, bool) {
	r, err := s.cache.GetSnapshot(node)
	if err != nil {
		return nil, false
	}
	snap, ok := r.(*cache.Snapshot)
	return snap, ok
}

// Status reports, per node, what each open stream was sent and what the
// node acknowledged or refused, sorted by node id.
func (s *Server) Status() []NodeStatus { return s.streams.status() }

// TLSConfig is the ADS listener's TLS: it presents the control plane's
// certificate and requires a client certificate that chains to the
// federation's current roots, is not revoked, and carries a SPIFFE id. The
// store is read on every handshake, so a CA rotation or a revocation
// applies to the next connection.
func TLSConfig(getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error), trust *certs.TrustStore) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		GetCertificate:   getCertificate,
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: trust.VerifyConnection(x509.ExtKeyUsageClientAuth, nil),
		NextProtos:       []string{"h2"},
	}
}

// GRPCServer returns a gRPC server with only the aggregated discovery
// service (state of the world and delta) registered on it: Envoy is
// configured for ADS, and the per-type services would be more doors to
// guard for nothing.
func (s *Server) GRPCServer(tlsCfg *tls.Config) *grpc.Server {
	g := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.MaxConcurrentStreams(1000),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	return g
}

// Serve serves ADS on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener, tlsCfg *tls.Config) error {
	g := s.GRPCServer(tlsCfg)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(ln) }()
	s.log.Info("xds listening", "address", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("xds serve: %w", err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		g.Stop()
	}
	return nil
}

// memberOfSPIFFE returns the member a node's SPIFFE id belongs to.
func memberOfSPIFFE(id, trustDomain string) (string, error) {
	sys, err := catalog.ParseSPIFFE(id, trustDomain, catalog.DefaultInstance)
	if err != nil {
		return "", err
	}
	return sys.Member, nil
}
