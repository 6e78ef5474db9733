// Package ir is the intermediate representation between the catalog and
// Envoy's xDS resources: for each agency edge, the listeners, routes,
// clusters and secrets it needs, as plain Go values. It is where a grant
// becomes a route, and tests read it without protobufs. Package translate
// turns it into xDS resources; nothing here knows about Envoy's types.
package ir

// Names the IR gives to the parts every edge has, so translate and the
// tests refer to them by constant rather than by spelling.
const (
	// InboundListener takes peer gateways' calls for the member's datasets.
	InboundListener = "inbound"
	// OutboundListener takes the member's own systems' calls to providers.
	OutboundListener = "outbound"
	// InboundRoutes and OutboundRoutes are the listeners' route tables.
	InboundRoutes  = "inbound-routes"
	OutboundRoutes = "outbound-routes"
	// GatewayCluster is the agency's own gateway, serving ext_authz and
	// ext_proc over gRPC: the decision and the field filtering stay ours.
	GatewayCluster = "gateway"
	// EdgeCertificate is the SDS secret holding the edge's certificate and
	// key; TrustBundle is the one holding the federation's roots.
	EdgeCertificate = "edge-certificate"
	TrustBundle     = "federation-trust-bundle"
	// ExtAuthzNamespace is the dynamic-metadata namespace ext_authz writes
	// the decision into and ext_proc reads it from.
	ExtAuthzNamespace = "envoy.filters.http.ext_authz"
)

// IdentityHeaders are the headers that name a caller. On the outbound side
// a system may not send them (its identity is its certificate); on the
// inbound side they never reach the provider's backend.
var IdentityHeaders = []string{"x-lt-consumer", "x-road-client", "x-road-userid", "x-forwarded-client-cert"}

// Edge is everything one agency's Envoy needs. Its NodeID is the member
// code: Envoy announces it in its bootstrap and the control plane serves
// an edge only to a node whose certificate belongs to that member. Slices
// are sorted by name so that equal edges are equal values.
type Edge struct {
	NodeID    string
	Member    string
	Listeners []Listener
	Routes    []RouteTable
	Clusters  []Cluster
	Secrets   []Secret
}

// Listener is one door of the edge: an address, mutual TLS with the peers
// it admits, the filter chain and the route table it uses.
type Listener struct {
	Name    string
	Address string
	Port    uint32
	TLS     DownstreamTLS
	// RouteTable names the RouteTable the listener's HTTP connection
	// manager fetches over RDS.
	RouteTable string
	// ExtAuthz asks the agency's gateway for the decision before routing.
	ExtAuthz ExtAuthz
	// ExtProc, when set, sends responses to the gateway for field
	// filtering; the inbound side has it, the outbound side does not.
	ExtProc *ExtProc
}

// DownstreamTLS is the listener's mutual TLS: a client certificate is
// always required, chained to the federation's roots and naming one of
// PeerSPIFFE exactly or, when PeerSPIFFEPrefix is set, starting with it.
type DownstreamTLS struct {
	CertificateSecret string
	TrustSecret       string
	PeerSPIFFE        []string
	PeerSPIFFEPrefix  string
}

// ExtAuthz is the ext_authz filter's setting.
type ExtAuthz struct {
	Cluster string
	// IncludePeerCertificate sends the caller's certificate: identity
	// comes from the TLS peer, never from a header.
	IncludePeerCertificate bool
	// DisallowedHeaders never reach the authorization server.
	DisallowedHeaders []string
	// BodyBytes, when not 0, has ext_authz send request bodies (a
	// verification's claims) up to this many bytes, packed as bytes: one
	// byte more than the gateway's limit, so that the gateway sees a body
	// over it and refuses it as the native door does.
	BodyBytes uint32
}

// ExtProc is the ext_proc filter's setting: response headers and the
// whole buffered response body go to the gateway, which projects and
// masks them with the decision ext_authz left in ForwardNamespaces.
type ExtProc struct {
	Cluster           string
	ForwardNamespaces []string
}

// RouteTable is a route configuration: one virtual host with Routes in
// order, and headers removed from every request before it goes upstream.
type RouteTable struct {
	Name                 string
	Routes               []Route
	RemoveRequestHeaders []string
}

// Route sends one dataset's paths to a cluster. Provider and Dataset are
// handed to ext_authz as context, so the decision knows what is asked
// without parsing the path again.
type Route struct {
	Name     string
	Prefix   string
	Cluster  string
	Provider string
	Dataset  string
	// AnsweredByGateway marks a route the gateway answers itself (a
	// verification, on the inbound side): ext_authz gets the body, ext_proc
	// the request headers, and answers; the route has no cluster and
	// answers 502 should a request ever get past ext_proc, so no backend
	// ever sees the claims.
	AnsweredByGateway bool
	// SendBody has ext_authz get the request body (a verification's
	// claims, which the request hash covers); other routes do not buffer.
	SendBody bool
	// Outbound marks a consumer-side route: ext_authz is told so (context
	// "door": "outbound") and admits the member's own system as the native
	// outbound door does.
	Outbound bool
}

// Cluster is an upstream: one endpoint, HTTP/2 or not, and TLS when the
// upstream is another agency's edge or the gateway. It is comparable, so
// translate can reuse the xDS cluster made for an equal one.
type Cluster struct {
	Name     string
	Host     string
	Port     uint32
	HTTP2    bool
	Upstream UpstreamTLS
}

// UpstreamTLS is the cluster's TLS origination; an empty PeerSPIFFE means
// plain TCP (a loopback or agency-internal backend).
type UpstreamTLS struct {
	CertificateSecret string
	TrustSecret       string
	// PeerSPIFFE is the only identity the upstream may present.
	PeerSPIFFE string
}

// Enabled reports whether the cluster originates TLS.
func (u UpstreamTLS) Enabled() bool { return u.PeerSPIFFE != "" }

// Secret is one SDS secret: either the edge's certificate, given as files
// on the Envoy host (its key never leaves that host; Envoy reloads them when
// the directory changes), or the federation's trust bundle, given inline so
// that a CA rotation reaches Envoy over SDS without a restart.
type Secret struct {
	Name        string
	Certificate *CertificateFiles
	TrustPEM    string
}

// CertificateFiles locate the edge's certificate chain and key.
type CertificateFiles struct {
	Dir      string
	CertFile string
	KeyFile  string
}
