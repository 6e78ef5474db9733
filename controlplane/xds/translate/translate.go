// Package translate turns the IR of one agency edge into Envoy's xDS
// resources and a go-control-plane snapshot. Every message it makes is
// validated (ValidateAll) before it is packed into an Any, because a packed
// message is not validated again when the message around it is; and every
// snapshot it returns is Consistent.
package translate

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/lienthong/lienthong/controlplane/xds/ir"
)

// Resources are one edge's xDS resources, each list sorted by name.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Secrets   []*tlsv3.Secret
}

// Translator makes xDS resources from edges. Clusters and secrets that are
// equal in the IR (a peer's edge, the trust bundle) are the same for every
// node, so it keeps each one it made and hands the same message to every
// snapshot that needs it: a federation of 300 edges makes each peer
// cluster once. Resources are never modified after they are made. It is
// safe for concurrent use.
type Translator struct {
	mu       sync.Mutex
	clusters map[ir.Cluster]*clusterv3.Cluster
	routes   map[ir.Route]*routev3.Route
	trust    map[string]*tlsv3.Secret
}

// maxCached bounds each cache; past it the cache starts over.
const maxCached = 100_000

// New returns an empty Translator.
func New() *Translator {
	return &Translator{clusters: map[ir.Cluster]*clusterv3.Cluster{}, routes: map[ir.Route]*routev3.Route{}, trust: map[string]*tlsv3.Secret{}}
}

// Edge translates one edge.
func (t *Translator) Edge(e *ir.Edge) (*Resources, error) {
	r := &Resources{}
	for i := range e.Listeners {
		l, err := listener(&e.Listeners[i])
		if err != nil {
			return nil, fmt.Errorf("edge %s: listener %s: %w", e.NodeID, e.Listeners[i].Name, err)
		}
		r.Listeners = append(r.Listeners, l)
	}
	for i := range e.Routes {
		rc, err := t.routeTable(&e.Routes[i])
		if err != nil {
			return nil, fmt.Errorf("edge %s: routes %s: %w", e.NodeID, e.Routes[i].Name, err)
		}
		r.Routes = append(r.Routes, rc)
	}
	for _, c := range e.Clusters {
		xc, err := t.cluster(c)
		if err != nil {
			return nil, fmt.Errorf("edge %s: cluster %s: %w", e.NodeID, c.Name, err)
		}
		r.Clusters = append(r.Clusters, xc)
	}
	for i := range e.Secrets {
		s, err := t.secret(&e.Secrets[i])
		if err != nil {
			return nil, fmt.Errorf("edge %s: secret %s: %w", e.NodeID, e.Secrets[i].Name, err)
		}
		r.Secrets = append(r.Secrets, s)
	}
	return r, nil
}

// Snapshot translates e and packs it into a snapshot whose per-type
// versions are the edge's Versions, so that a change of routes alone sends
// Envoy only routes. It fails if the snapshot is not Consistent.
func (t *Translator) Snapshot(e *ir.Edge) (*cache.Snapshot, error) {
	r, err := t.Edge(e)
	if err != nil {
		return nil, err
	}
	return r.Snapshot(e.Versions())
}

// Snapshot packs the resources with the given versions.
func (r *Resources) Snapshot(v ir.Versions) (*cache.Snapshot, error) {
	s := &cache.Snapshot{}
	s.Resources[types.Listener] = cache.NewResources(v.Listeners, asResources(r.Listeners))
	s.Resources[types.Route] = cache.NewResources(v.Routes, asResources(r.Routes))
	s.Resources[types.Cluster] = cache.NewResources(v.Clusters, asResources(r.Clusters))
	s.Resources[types.Secret] = cache.NewResources(v.Secrets, asResources(r.Secrets))
	// No EDS: endpoints are inline, so the snapshot names none.
	s.Resources[types.Endpoint] = cache.NewResources(v.Clusters, nil)
	if err := s.Consistent(); err != nil {
		return nil, fmt.Errorf("snapshot not consistent: %w", err)
	}
	return s, nil
}

func asResources[T types.Resource](in []T) []types.Resource {
	out := make([]types.Resource, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

// validatable is every generated Envoy message.
type validatable interface {
	proto.Message
	ValidateAll() error
}

// pack validates m, then packs it. Validation comes first because the
// message that will hold the Any validates only the Any's type URL.
func pack(m validatable) (*anypb.Any, error) {
	if err := m.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return anypb.New(m)
}

// validate checks a top-level resource.
func validate[T validatable](m T) (T, error) {
	if err := m.ValidateAll(); err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return m, nil
}

// ads is the config source of RDS and SDS: the same ADS stream.
func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    resource.DefaultAPIVersion,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

const connectTimeout = 2 * time.Second

func (t *Translator) cluster(c ir.Cluster) (*clusterv3.Cluster, error) {
	t.mu.Lock()
	got, ok := t.clusters[c]
	t.mu.Unlock()
	if ok {
		return got, nil
	}
	xc, err := newCluster(c)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if len(t.clusters) >= maxCached {
		clear(t.clusters)
	}
	t.clusters[c] = xc
	t.mu.Unlock()
	return xc, nil
}

func newCluster(c ir.Cluster) (*clusterv3.Cluster, error) {
	discovery := clusterv3.Cluster_STRICT_DNS
	if net.ParseIP(c.Host) != nil {
		discovery = clusterv3.Cluster_STATIC
	}
	xc := &clusterv3.Cluster{
		Name:                 c.Name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: discovery},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: c.Name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(c.Host, c.Port)}},
				}},
			}},
		},
	}
	if c.HTTP2 {
		opts, err := http2Options()
		if err != nil {
			return nil, err
		}
		xc.TypedExtensionProtocolOptions = map[string]*anypb.Any{http2OptionsKey: opts}
	}
	if c.Upstream.Enabled() {
		ts, err := upstreamTLS(c.Upstream)
		if err != nil {
			return nil, err
		}
		xc.TransportSocket = ts
	}
	return validate(xc)
}

func (t *Translator) secret(s *ir.Secret) (*tlsv3.Secret, error) {
	switch {
	case s.Certificate != nil && s.TrustPEM != "":
		return nil, errors.New("a secret holds a certificate or a trust bundle, not both")
	case s.Certificate != nil:
		f := s.Certificate
		return validate(&tlsv3.Secret{Name: s.Name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: f.CertFile}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: f.KeyFile}},
			// A renewal replaces the files by rename in this directory;
			// Envoy reloads them without a restart.
			WatchedDirectory: &corev3.WatchedDirectory{Path: f.Dir},
		}}})
	case s.TrustPEM == "":
		return nil, errors.New("the trust bundle is empty")
	}
	key := s.Name + "\x00" + s.TrustPEM
	t.mu.Lock()
	got, ok := t.trust[key]
	t.mu.Unlock()
	if ok {
		return got, nil
	}
	xs, err := validate(&tlsv3.Secret{Name: s.Name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s.TrustPEM}},
	}}})
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if len(t.trust) >= 16 {
		clear(t.trust)
	}
	t.trust[key] = xs
	t.mu.Unlock()
	return xs, nil
}
