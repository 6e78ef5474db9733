package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/certs/embedded"
	"github.com/lienthong/lienthong/controlplane/xds/ir"
	"github.com/lienthong/lienthong/controlplane/xds/server"
)

const (
	td         = "lienthong.test"
	provider   = "000.00.00.G01"
	consumer   = "000.00.00.G14"
	population = "VN:GOV:000.00.00.G01:CSDLDC"
	insurance  = "VN:GOV:000.00.00.G14:CSDLBH"
)

// patience bounds every wait for an event of the protocol (a response, an
// ACK in the status, a refusal). Such events take milliseconds; the bound
// is generous so that a loaded machine cannot fail a test, which asserts
// what happens, never how fast (TestBenchRevocationReachesNode measures
// that).
const patience = 30 * time.Second

// pki is a real embedded CA and the certificates the test needs.
type pki struct {
	roots []*x509.Certificate
	trust *certs.TrustStore
	ca    *embedded.CA
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	ca, err := embedded.Open(t.TempDir(), embedded.WithPassphrase(nil))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := ca.TrustBundle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	trust, err := certs.NewTrustStore(roots, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{roots: roots, trust: trust, ca: ca}
}

// issue enrols a system the way a gateway does: key and CSR made here,
// signed by the CA.
func (p *pki) issue(t *testing.T, system string) tls.Certificate {
	t.Helper()
	id, err := catalog.ParseSystemID(system)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, csrPEM, err := certs.GenerateKeyAndCSR(id, td)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := p.ca.Sign(context.Background(), certs.SignRequest{CSR: csrPEM, System: id, TrustDomain: td, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(iss.CertificatePEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func grant(id string) catalog.Grant {
	now := time.Now()
	return catalog.Grant{
		ID: id, Consumer: insurance, Provider: population, Dataset: "population", State: catalog.GrantActive,
		Modes: []catalog.Mode{catalog.ModeQuery}, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour),
	}
}

func assessed(ids ...string) []catalog.System {
	var out []catalog.System
	for _, id := range ids {
		out = append(out, catalog.System{ID: id, Name: id, Member: id[7:20], SecurityLevel: 3,
			Assessment: &catalog.Assessment{Level: 3, AssessedBy: "A05", Reference: "QĐ 1", ValidUntil: time.Now().Add(365 * 24 * time.Hour)}})
	}
	return out
}

func input(p *pki, grants ...catalog.Grant) ir.Input {
	return ir.Input{
		Systems:     assessed(population, insurance, "VN:GOV:000.00.00.G01:GW", "VN:GOV:000.00.00.G14:GW"),
		TrustDomain: td, TrustPEM: string(certs.EncodeCertificatesPEM(p.roots)), Now: time.Now(),
		Gateways: []catalog.Gateway{
			{Member: provider, System: "VN:GOV:000.00.00.G01:GW", Address: "127.0.0.1:8443"},
			{Member: consumer, System: "VN:GOV:000.00.00.G14:GW", Address: "127.0.0.1:9443"},
		},
		Datasets: []catalog.Dataset{{System: population, Code: "population"}, {System: insurance, Code: "contributions"}},
		Grants:   grants,
	}
}

// syncBuffer is a log sink the test reads while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	pki  *pki
	srv  *server.Server
	addr string
	logs *syncBuffer
}

func start(t *testing.T) *fixture {
	t.Helper()
	p := newPKI(t)
	logs := &syncBuffer{}
	srv := server.New(server.Config{TrustDomain: td, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if _, err := srv.Sync(context.Background(), ir.NewModel(input(p, grant("g1")))); err != nil {
		t.Fatal(err)
	}
	cpCert := p.issue(t, "VN:GOV:000.00.00.G00:XDS")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- srv.Serve(ctx, ln, server.TLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cpCert, nil }, p.trust))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return &fixture{pki: p, srv: srv, addr: ln.Addr().String(), logs: logs}
}

// adsClient speaks the ADS protocol as Envoy does: one stream, requests
// per type, ACKs carrying the version and nonce of the response.
type adsClient struct {
	t      *testing.T
	node   string
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	resps  chan *discoveryv3.DiscoveryResponse
	errc   chan error
	first  bool
}

func (f *fixture) dial(t *testing.T, system, node string) *adsClient {
	t.Helper()
	return f.dialWith(t, f.pki.issue(t, system), node)
}

func (f *fixture) dialWith(t *testing.T, cert tls.Certificate, node string) *adsClient {
	t.Helper()
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // replaced by VerifyConnection: SPIFFE, not host names
		VerifyConnection: f.pki.trust.VerifyConnection(x509.ExtKeyUsageServerAuth, func(id string) error {
			if id != "spiffe://"+td+"/GOV/000.00.00.G00/XDS" {
				return fmt.Errorf("not the control plane: %s", id)
			}
			return nil
		}),
	}
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &adsClient{t: t, node: node, stream: stream, resps: make(chan *discoveryv3.DiscoveryResponse, 16), errc: make(chan error, 1), first: true}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				c.errc <- err
				return
			}
			c.resps <- r
		}
	}()
	return c
}

func (c *adsClient) send(typ string, names []string, version, nonce string, nack error) {
	c.t.Helper()
	req := &discoveryv3.DiscoveryRequest{TypeUrl: typ, ResourceNames: names, VersionInfo: version, ResponseNonce: nonce}
	if c.first {
		// Like Envoy, the node goes on the first request only.
		req.Node = &corev3.Node{Id: c.node, Cluster: "lienthong-edge"}
		c.first = false
	}
	if nack != nil {
		req.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// recv waits up to wait for the next response.
func (c *adsClient) recv(wait time.Duration) (*discoveryv3.DiscoveryResponse, error) {
	select {
	case r := <-c.resps:
		return r, nil
	case err := <-c.errc:
		return nil, err
	case <-time.After(wait):
		return nil, errors.New("no response")
	}
}

func (c *adsClient) must(wait time.Duration) *discoveryv3.DiscoveryResponse {
	c.t.Helper()
	r, err := c.recv(wait)
	if err != nil {
		c.t.Fatalf("node %s: %v", c.node, err)
	}
	return r
}

func names(t *testing.T, r *discoveryv3.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.(interface{ GetName() string }).GetName())
	}
	slices.Sort(out)
	return out
}

// subscribe walks the protocol as Envoy does on start: clusters and
// listeners (wildcard), then the route tables and secrets they name, ACKing
// each, and returns the responses by type.
func (c *adsClient) subscribe() map[string]*discoveryv3.DiscoveryResponse {
	c.t.Helper()
	got := map[string]*discoveryv3.DiscoveryResponse{}
	steps := []struct {
		typ   string
		names []string
	}{
		{resource.ClusterType, nil},
		{resource.ListenerType, nil},
		{resource.RouteType, []string{ir.InboundRoutes, ir.OutboundRoutes}},
		{resource.SecretType, []string{ir.EdgeCertificate, ir.TrustBundle}},
	}
	for _, s := range steps {
		c.send(s.typ, s.names, "", "", nil)
		r := c.must(patience)
		if r.GetTypeUrl() != s.typ {
			c.t.Fatalf("asked %s, got %s", s.typ, r.GetTypeUrl())
		}
		got[s.typ] = r
		c.send(s.typ, s.names, r.GetVersionInfo(), r.GetNonce(), nil) // ACK
	}
	return got
}

func outboundRoutes(t *testing.T, r *discoveryv3.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		var rc routev3.RouteConfiguration
		if err := a.UnmarshalTo(&rc); err != nil {
			t.Fatal(err)
		}
		if rc.GetName() != ir.OutboundRoutes {
			continue
		}
		for _, vh := range rc.GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				out = append(out, rt.GetName())
			}
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func nodeStatus(srv *server.Server, node string) (server.NodeStatus, bool) {
	for _, n := range srv.Status() {
		if n.Node == node {
			return n, true
		}
	}
	return server.NodeStatus{}, false
}

// TestADSSnapshotAckAndRevocation: the consumer's Envoy gets a consistent
// edge, ACKs it, and gets the route withdrawn when the grant is revoked; the provider's node is not sent anything for it.
func TestADSSnapshotAckAndRevocation(t *testing.T) {
	f := start(t)
	c := f.dial(t, "VN:GOV:000.00.00.G14:GW", consumer)
	got := c.subscribe()

	if n := names(t, got[resource.ListenerType]); !slices.Equal(n, []string{ir.InboundListener, ir.OutboundListener}) {
		t.Fatalf("listeners %v", n)
	}
	if n := names(t, got[resource.ClusterType]); !slices.Equal(n, []string{"adapter", ir.GatewayCluster, "peer/" + provider}) {
		t.Fatalf("clusters %v, want the adapter, the gateway and the provider's edge", n)
	}
	if r := outboundRoutes(t, got[resource.RouteType]); !slices.Contains(r, "query/"+population+"/population") {
		t.Fatalf("outbound routes %v lack the granted dataset", r)
	}
	snap, ok := f.srv.Snapshot(consumer)
	if !ok || snap.Consistent() != nil {
		t.Fatal("the cached snapshot is missing or inconsistent")
	}
	for _, a := range got[resource.ListenerType].GetResources() {
		var l listenerv3.Listener
		if err := a.UnmarshalTo(&l); err != nil {
			t.Fatal(err)
		}
		if err := l.ValidateAll(); err != nil {
			t.Fatalf("listener %s: %v", l.GetName(), err)
		}
	}
	routesV := got[resource.RouteType].GetVersionInfo()
	waitFor(t, "the ACKs in the status", func() bool {
		n, ok := nodeStatus(f.srv, consumer)
		return ok && n.Types["RouteConfiguration"].Acked == routesV && n.Types["Listener"].Acked != "" && n.Connected == 1
	})

	// A provider node connected at the same time sees no change.
	p := f.dial(t, "VN:GOV:000.00.00.G01:GW", provider)
	before := p.subscribe()

	revoked := grant("g1")
	revoked.State = catalog.GrantRevoked
	in := input(f.pki, revoked)
	changed, err := f.srv.Sync(context.Background(), ir.NewModel(in))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(changed, []string{consumer}) {
		t.Fatalf("a grant revocation changed nodes %v, want only the consumer", changed)
	}
	// The change reaches the node (how fast is TestBenchRevocationReachesNode's
	// figure, not a test's: a loaded machine must not fail it); only the
	// route tables and clusters moved, so only they are sent.
	seen := map[string]*discoveryv3.DiscoveryResponse{}
	deadline := time.Now().Add(patience)
	for len(seen) < 2 {
		r, err := c.recv(time.Until(deadline))
		if err != nil {
			t.Fatalf("after the revocation: %v (got %v)", err, seen)
		}
		seen[r.GetTypeUrl()] = r
		c.send(r.GetTypeUrl(), nil, r.GetVersionInfo(), r.GetNonce(), nil)
	}
	if _, ok := seen[resource.ListenerType]; ok {
		t.Error("listeners were re-sent although they did not change")
	}
	r := seen[resource.RouteType]
	if r == nil {
		t.Fatalf("no route update, got %v", seen)
	}
	if routes := outboundRoutes(t, r); len(routes) != 0 {
		t.Fatalf("revoked grant still routed: %v", routes)
	}
	// The consumer's change has been sent; the server's own account of
	// what it sent the provider's stream is still its first configuration,
	// and nothing waits on that stream (no sleep: the event is the
	// consumer's change, which was published in the same Sync).
	n, _ := nodeStatus(f.srv, provider)
	for typ, r := range before {
		if got := n.Types[shortType(typ)].Sent; got != r.GetVersionInfo() {
			t.Errorf("the provider's node was sent %s version %s after a consumer's grant changed (had %s)", shortType(typ), got, r.GetVersionInfo())
		}
	}
	select {
	case r := <-p.resps:
		t.Fatalf("the provider's node was sent %s after a consumer's grant changed", r.GetTypeUrl())
	default:
	}
}

// shortType is a type URL's message name, as Status names types.
func shortType(typeURL string) string { return typeURL[strings.LastIndex(typeURL, ".")+1:] }

// TestNACKKeepsPreviousVersion: a node refusing a configuration is logged,
// its acknowledged version stays the previous one, the refused one is not
// pushed again, and the next change still reaches it.
func TestNACKKeepsPreviousVersion(t *testing.T) {
	f := start(t)
	c := f.dial(t, "VN:GOV:000.00.00.G14:GW", consumer)
	got := c.subscribe()
	v1 := got[resource.RouteType].GetVersionInfo()

	revoked := grant("g1")
	revoked.State = catalog.GrantRevoked
	if _, err := f.srv.Sync(context.Background(), ir.NewModel(input(f.pki, revoked))); err != nil {
		t.Fatal(err)
	}
	var v2 string
	for v2 == "" {
		r := c.must(patience)
		if r.GetTypeUrl() != resource.RouteType {
			c.send(r.GetTypeUrl(), nil, r.GetVersionInfo(), r.GetNonce(), nil)
			continue
		}
		v2 = r.GetVersionInfo()
		// NACK: keep v1, name the nonce of v2, say why.
		c.send(resource.RouteType, []string{ir.InboundRoutes, ir.OutboundRoutes}, v1, r.GetNonce(), errors.New("route: unknown cluster"))
	}
	waitFor(t, "the NACK in the status", func() bool {
		n, _ := nodeStatus(f.srv, consumer)
		rs := n.Types["RouteConfiguration"]
		return rs.Nacked == v2 && rs.Acked == v1 && strings.Contains(rs.NackError, "unknown cluster")
	})
	if logs := f.logs.String(); !strings.Contains(logs, "xds configuration refused by node") || !strings.Contains(logs, v2) {
		t.Fatalf("the NACK was not logged:\n%s", logs)
	}

	// The grant comes back: the node gets the new version (v1's content, but
	// sent as a change), never the refused v2 again.
	if _, err := f.srv.Sync(context.Background(), ir.NewModel(input(f.pki, grant("g1")))); err != nil {
		t.Fatal(err)
	}
	for {
		r := c.must(patience)
		if r.GetTypeUrl() != resource.RouteType {
			c.send(r.GetTypeUrl(), nil, r.GetVersionInfo(), r.GetNonce(), nil)
			continue
		}
		if r.GetVersionInfo() == v2 {
			t.Fatal("the refused version was sent again")
		}
		if routes := outboundRoutes(t, r); !slices.Contains(routes, "query/"+population+"/population") {
			t.Fatalf("routes after the re-grant: %v", routes)
		}
		break
	}
}

// TestNodeGetsOnlyItsMembersEdge: a certificate of one member asking as
// another member's node is refused and receives nothing; no certificate
// gets no connection at all.
func TestNodeGetsOnlyItsMembersEdge(t *testing.T) {
	f := start(t)
	c := f.dial(t, "VN:GOV:000.00.00.G14:GW", provider) // G14's certificate, G01's node id
	c.send(resource.ClusterType, nil, "", "", nil)
	r, err := c.recv(patience)
	if err == nil {
		t.Fatalf("a node with another member's certificate received %d %s resources", len(r.GetResources()), r.GetTypeUrl())
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("refusal %v, want PermissionDenied", err)
	}
	if n, ok := nodeStatus(f.srv, provider); ok && len(n.Types) > 0 {
		t.Fatalf("the provider's node shows traffic: %+v", n)
	}

	// A node that changes its id mid-stream is cut off too.
	c2 := f.dial(t, "VN:GOV:000.00.00.G14:GW", consumer)
	c2.send(resource.ClusterType, nil, "", "", nil)
	r = c2.must(patience)
	req := &discoveryv3.DiscoveryRequest{TypeUrl: resource.ListenerType, Node: &corev3.Node{Id: provider}}
	if err := c2.stream.Send(req); err != nil {
		t.Fatal(err)
	}
	for {
		r, err = c2.recv(patience)
		if err != nil {
			break
		}
		if r.GetTypeUrl() == resource.ListenerType {
			t.Fatal("a node that switched to another member's id was sent listeners")
		}
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("refusal %v, want PermissionDenied", err)
	}

	// Without a client certificate the handshake fails.
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err == nil {
		_ = s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, Node: &corev3.Node{Id: consumer}})
		_, err = s.Recv()
	}
	if err == nil {
		t.Fatal("a client without a certificate was served")
	}
}

// TestRevokedOrForeignNodeRefused: a revoked certificate loses the next
// connection, and a certificate of the right CA but another trust domain
// names no member of this federation.
func TestRevokedOrForeignNodeRefused(t *testing.T) {
	f := start(t)
	cert := f.pki.issue(t, "VN:GOV:000.00.00.G14:GW")
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := f.try(t, cert, consumer); err != nil {
		t.Fatalf("before the revocation: %v", err)
	}
	if err := f.pki.trust.Update(f.pki.roots, []string{certs.SerialHex(leaf.SerialNumber)}); err != nil {
		t.Fatal(err)
	}
	if err := f.try(t, cert, consumer); err == nil {
		t.Fatal("a revoked certificate was served")
	}

	id, _ := catalog.ParseSystemID("VN:GOV:000.00.00.G14:GW")
	keyPEM, csrPEM, err := certs.GenerateKeyAndCSR(id, "other.example")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := f.pki.ca.Sign(context.Background(), certs.SignRequest{CSR: csrPEM, System: id, TrustDomain: "other.example", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := tls.X509KeyPair(iss.CertificatePEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	err = f.try(t, foreign, consumer)
	if err == nil {
		t.Fatal("a certificate of another trust domain was served")
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("refusal %v, want PermissionDenied", err)
	}
}

// try opens a stream with cert, asks for clusters as node, and returns the
// first error on the way (nil when an answer arrives).
func (f *fixture) try(t *testing.T, cert tls.Certificate, node string) error {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true} // the server's identity is not what this checks
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	// A stream the server already ended makes Send return io.EOF; the
	// server's status is what Recv then returns, as gRPC documents.
	if err := s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, Node: &corev3.Node{Id: node}}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	_, err = s.Recv()
	return err
}

// TestDeltaStreamsAuthorisedToo: the incremental (delta) ADS door, which
// the same gRPC service serves, applies the same rule as state of the
// world: own member's node id served, another's refused.
func TestDeltaStreamsAuthorisedToo(t *testing.T) {
	f := start(t)
	cert := f.pki.issue(t, "VN:GOV:000.00.00.G14:GW")
	delta := func(node string) (*discoveryv3.DeltaDiscoveryResponse, error) {
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true} // the server's identity is not what this checks
		conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
		if err != nil {
			return nil, err
		}
		if err := s.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, Node: &corev3.Node{Id: node}}); err != nil {
			return nil, err
		}
		return s.Recv()
	}
	r, err := delta(consumer)
	if err != nil {
		t.Fatalf("own node id over delta: %v", err)
	}
	if len(r.GetResources()) == 0 {
		t.Fatal("no clusters over delta")
	}
	if _, err := delta(provider); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("another member's node id over delta: %v, want PermissionDenied", err)
	}
}
