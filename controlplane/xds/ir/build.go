package ir

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

// Input is what the control plane knows that shapes the edges: the
// registered gateways (one edge per member that has one), the latest
// datasets, the grants, the trust bundle, and each agency's local site
// settings. It is plain data so that tests and benchmarks build it without
// a store.
type Input struct {
	TrustDomain string
	// TrustPEM holds the federation's roots (one, two during a rotation).
	TrustPEM string
	Gateways []catalog.Gateway
	// Datasets are the latest versions; documents are not needed.
	Datasets []catalog.Dataset
	Grants   []catalog.Grant
	// Systems are the catalog's systems with their assessments. Not
	// secure, not connected: a gateway, provider or consumer system that is
	// not connectable now gets no edge, no route and no peer cluster; a
	// system missing here counts as not connectable.
	Systems []catalog.System
	// MinLevel is the platform's minimum assessed level (the enrolment
	// minimum); 0 means DefaultMinLevel.
	MinLevel int
	// Sites hold per-member settings; a member without one gets DefaultSite.
	Sites map[string]Site
	// Now decides which grants are in force.
	Now time.Time
}

// DefaultMinLevel is the platform's default minimum assessed level, the
// control plane's default enrolment minimum.
const DefaultMinLevel = 3

// routeKey is one provider dataset.
type routeKey struct{ provider, dataset string }

// grantEdge is what a grant contributes to the edges: its consumer's
// member may route to the provider's dataset.
type grantEdge struct {
	consumerMember string
	key            routeKey
}

// Model indexes an Input so that one edge is built from its own share and
// a grant change touches only the member it routes for. Edge may be called
// from several goroutines at once; PutGrant must not run at the same time.
type Model struct {
	trustDomain string
	trustPEM    string
	sites       map[string]Site
	gateways    map[string]catalog.Gateway
	// gatewayIDs are the SPIFFE ids of the gateways, sorted.
	gatewayIDs []string
	// provided lists each member's datasets.
	provided map[string][]routeKey
	// grants holds the grants in force by id; outbound counts them per
	// consumer member and provider dataset.
	grants   map[string]grantEdge
	outbound map[string]map[routeKey]int
	// systems and minLevel decide connectivity; consumerLevel is each
	// dataset's minimum consumer level.
	systems       map[string]*catalog.System
	minLevel      int
	consumerLevel map[routeKey]int
	// connectable remembers each system's answer per level: many grants
	// share a consumer, and the rule formats a reason every time.
	connectable map[connKey]bool
	// peerRoutes holds the outbound routes of each provider dataset some
	// grant covers, made once: they are the same on every consumer edge.
	peerRoutes map[routeKey][]Route
	now        time.Time
}

// NewModel indexes in.
func NewModel(in Input) *Model {
	m := &Model{
		trustDomain:   in.TrustDomain,
		trustPEM:      in.TrustPEM,
		sites:         in.Sites,
		gateways:      make(map[string]catalog.Gateway, len(in.Gateways)),
		provided:      map[string][]routeKey{},
		grants:        make(map[string]grantEdge, len(in.Grants)),
		outbound:      map[string]map[routeKey]int{},
		peerRoutes:    map[routeKey][]Route{},
		now:           in.Now,
		systems:       make(map[string]*catalog.System, len(in.Systems)),
		minLevel:      in.MinLevel,
		consumerLevel: map[routeKey]int{},
		connectable:   map[connKey]bool{},
	}
	if m.minLevel == 0 {
		m.minLevel = DefaultMinLevel
	}
	for i := range in.Systems {
		m.systems[in.Systems[i].ID] = &in.Systems[i]
	}
	for _, g := range in.Gateways {
		if !m.secure(g.System) {
			continue
		}
		m.gateways[g.Member] = g
		if id, err := catalog.ParseSystemID(g.System); err == nil {
			m.gatewayIDs = append(m.gatewayIDs, id.SPIFFE(m.trustDomain))
		}
	}
	slices.Sort(m.gatewayIDs)
	for _, d := range in.Datasets {
		if !m.secure(d.System) {
			continue
		}
		k := routeKey{d.System, d.Code}
		mem := memberOf(d.System)
		m.provided[mem] = append(m.provided[mem], k)
		m.consumerLevel[k] = d.MinConsumerLevel
	}
	for _, ks := range m.provided {
		slices.SortFunc(ks, compareKeys)
	}
	for i := range in.Grants {
		m.PutGrant(&in.Grants[i])
	}
	return m
}

// Members lists the members that get an edge (those with a registered
// gateway), sorted.
func (m *Model) Members() []string {
	out := make([]string, 0, len(m.gateways))
	for mem := range m.gateways {
		out = append(out, mem)
	}
	slices.Sort(out)
	return out
}

// GrantCount is the number of grants in force the model holds.
func (m *Model) GrantCount() int { return len(m.grants) }

// PutGrant records a new or changed grant (an approval, a revocation) and
// returns the members whose edge changed: at most the consumer's, and only
// when the set of datasets it routes to moved.
func (m *Model) PutGrant(g *catalog.Grant) []string {
	var affected []string
	if old, ok := m.grants[g.ID]; ok {
		delete(m.grants, g.ID)
		if m.decrement(old) {
			affected = append(affected, old.consumerMember)
		}
	}
	if !m.inForce(g) {
		return affected
	}
	e := grantEdge{consumerMember: memberOf(g.Consumer), key: routeKey{g.Provider, g.Dataset}}
	m.grants[g.ID] = e
	per := m.outbound[e.consumerMember]
	if per == nil {
		per = map[routeKey]int{}
		m.outbound[e.consumerMember] = per
	}
	per[e.key]++
	if _, ok := m.peerRoutes[e.key]; !ok {
		routes := datasetRoutes(e.key, "peer/"+memberOf(e.key.provider))
		for i := range routes {
			routes[i].Outbound = true
		}
		routes[1].SendBody = true // the claims, which the request hash covers
		m.peerRoutes[e.key] = routes
	}
	if per[e.key] == 1 && !slices.Contains(affected, e.consumerMember) {
		affected = append(affected, e.consumerMember)
	}
	return affected
}

// decrement drops one grant from the counts and reports whether its route
// went away.
func (m *Model) decrement(e grantEdge) bool {
	per := m.outbound[e.consumerMember]
	per[e.key]--
	if per[e.key] > 0 {
		return false
	}
	delete(per, e.key)
	return true
}

// inForce reports whether g lets its consumer call the provider now in a
// mode that goes through Envoy (query or verify; feeds ride on Kafka).
func (m *Model) inForce(g *catalog.Grant) bool {
	if g.StateAt(m.now) != catalog.GrantActive || m.now.Before(g.ValidFrom) {
		return false
	}
	if !slices.Contains(g.Modes, catalog.ModeQuery) && !slices.Contains(g.Modes, catalog.ModeVerify) {
		return false
	}
	level, ok := m.consumerLevel[routeKey{g.Provider, g.Dataset}]
	return ok && m.consumerSecure(g.Consumer, level)
}

// secure reports whether a gateway or provider system is connectable now
// at the level a certificate needs: the platform minimum, or the level it
// was declared at if higher.
func (m *Model) secure(systemID string) bool {
	sys, ok := m.systems[systemID]
	return ok && m.connectableAt(sys, max(m.minLevel, sys.SecurityLevel))
}

type connKey struct {
	system string
	level  int
}

func (m *Model) connectableAt(sys *catalog.System, level int) bool {
	k := connKey{sys.ID, level}
	c, ok := m.connectable[k]
	if !ok {
		c = sys.ConnectivityAt(m.now, level).Connectable
		m.connectable[k] = c
	}
	return c
}

// consumerSecure reports whether a consumer system is connectable now at
// the dataset's minimum consumer level, the rule approvals apply.
func (m *Model) consumerSecure(systemID string, level int) bool {
	sys, ok := m.systems[systemID]
	return ok && m.connectableAt(sys, level)
}

func (m *Model) site(member string) Site { return m.sites[member].withDefaults() }

// Edge builds the edge of member, or nil if the member has no gateway.
func (m *Model) Edge(member string) (*Edge, error) {
	gw, ok := m.gateways[member]
	if !ok {
		return nil, nil
	}
	site := m.site(member)
	sysID, err := catalog.ParseSystemID(gw.System)
	if err != nil {
		return nil, fmt.Errorf("edge %s: gateway system: %w", member, err)
	}
	in, err := m.inbound(member, gw, sysID.SPIFFE(m.trustDomain), site)
	if err != nil {
		return nil, err
	}
	e := &Edge{NodeID: member, Member: member}
	gatewayCluster, err := endpointCluster(GatewayCluster, site.GatewayAddress, true, UpstreamTLS{
		CertificateSecret: EdgeCertificate, TrustSecret: TrustBundle, PeerSPIFFE: sysID.SPIFFE(m.trustDomain),
	})
	if err != nil {
		return nil, fmt.Errorf("edge %s: %w", member, err)
	}
	e.Clusters = append(e.Clusters, gatewayCluster)
	e.Listeners = append(e.Listeners, in.listener)
	e.Routes = append(e.Routes, in.routes)
	e.Clusters = append(e.Clusters, in.clusters...)

	out, err := m.outboundSide(member, sysID, site)
	if err != nil {
		return nil, err
	}
	e.Listeners = append(e.Listeners, out.listener)
	e.Routes = append(e.Routes, out.routes)
	e.Clusters = append(e.Clusters, out.clusters...)

	e.Secrets = []Secret{
		{Name: EdgeCertificate, Certificate: &CertificateFiles{Dir: site.CertDir, CertFile: path.Join(site.CertDir, "cert.pem"), KeyFile: path.Join(site.CertDir, "key.pem")}},
		{Name: TrustBundle, TrustPEM: m.trustPEM},
	}
	slices.SortFunc(e.Listeners, func(a, b Listener) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(e.Routes, func(a, b RouteTable) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(e.Clusters, func(a, b Cluster) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(e.Secrets, func(a, b Secret) int { return strings.Compare(a.Name, b.Name) })
	return e, nil
}

type side struct {
	listener Listener
	routes   RouteTable
	clusters []Cluster
}

// inbound is the provider side: peer gateways call the member's datasets;
// ext_authz decides, the backend answers, ext_proc filters the answer.
func (m *Model) inbound(member string, gw catalog.Gateway, ownID string, site Site) (side, error) {
	_, port, err := splitAddress(gw.Address)
	if err != nil {
		return side{}, fmt.Errorf("edge %s: registered gateway address: %w", member, err)
	}
	var s side
	s.listener = Listener{
		Name: InboundListener, Address: "0.0.0.0", Port: port,
		TLS:        DownstreamTLS{CertificateSecret: EdgeCertificate, TrustSecret: TrustBundle, PeerSPIFFE: m.peerGateways(ownID)},
		RouteTable: InboundRoutes,
		ExtAuthz:   ExtAuthz{Cluster: GatewayCluster, IncludePeerCertificate: true, BodyBytes: uint32(site.MaxRequestBytes) + 1},
		ExtProc:    &ExtProc{Cluster: GatewayCluster, ForwardNamespaces: []string{ExtAuthzNamespace}},
	}
	s.routes = RouteTable{Name: InboundRoutes, RemoveRequestHeaders: IdentityHeaders}
	for _, k := range m.provided[member] {
		ref := k.provider + "/" + k.dataset
		addr, own := site.Backends[ref]
		name := "backend/" + ref
		if !own {
			addr = site.AdapterAddress
			name = "adapter"
		}
		if !slices.ContainsFunc(s.clusters, func(c Cluster) bool { return c.Name == name }) {
			c, err := endpointCluster(name, addr, false, UpstreamTLS{})
			if err != nil {
				return side{}, fmt.Errorf("edge %s: backend of %s: %w", member, ref, err)
			}
			s.clusters = append(s.clusters, c)
		}
		routes := datasetRoutes(k, name)
		// The gateway answers a verification itself: the claims never go
		// to a backend (docs/envoy-doors.md).
		routes[1].Cluster, routes[1].AnsweredByGateway, routes[1].SendBody = "", true, true
		s.routes.Routes = append(s.routes.Routes, routes...)
	}
	return s, nil
}

// outboundSide is the consumer side: the member's own systems call the
// datasets its grants cover, through the provider member's edge.
func (m *Model) outboundSide(member string, sysID catalog.SystemID, site Site) (side, error) {
	host, port, err := splitAddress(site.OutboundAddress)
	if err != nil {
		return side{}, fmt.Errorf("edge %s: outbound address: %w", member, err)
	}
	var s side
	s.listener = Listener{
		Name: OutboundListener, Address: host, Port: port,
		TLS: DownstreamTLS{
			CertificateSecret: EdgeCertificate, TrustSecret: TrustBundle,
			PeerSPIFFEPrefix: "spiffe://" + m.trustDomain + "/" + sysID.Class + "/" + member + "/",
		},
		RouteTable: OutboundRoutes,
		ExtAuthz: ExtAuthz{Cluster: GatewayCluster, IncludePeerCertificate: true, DisallowedHeaders: IdentityHeaders,
			BodyBytes: uint32(site.MaxRequestBytes) + 1},
		// The provider's answer is judged by the gateway before it is
		// passed on (bound to the request sent, JSON), as on the native
		// outbound door.
		ExtProc: &ExtProc{Cluster: GatewayCluster, ForwardNamespaces: []string{ExtAuthzNamespace}},
	}
	s.routes = RouteTable{Name: OutboundRoutes}
	keys := make([]routeKey, 0, len(m.outbound[member]))
	for k := range m.outbound[member] {
		if _, ok := m.gateways[memberOf(k.provider)]; ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compareKeys)
	s.routes.Routes = make([]Route, 0, 2*len(keys))
	peers := map[string]bool{}
	for _, k := range keys {
		peer := memberOf(k.provider)
		name := "peer/" + peer
		if !peers[peer] {
			peers[peer] = true
			pgw := m.gateways[peer]
			pid, err := catalog.ParseSystemID(pgw.System)
			if err != nil {
				return side{}, fmt.Errorf("edge %s: peer %s gateway system: %w", member, peer, err)
			}
			c, err := endpointCluster(name, pgw.Address, false, UpstreamTLS{
				CertificateSecret: EdgeCertificate, TrustSecret: TrustBundle, PeerSPIFFE: pid.SPIFFE(m.trustDomain),
			})
			if err != nil {
				return side{}, fmt.Errorf("edge %s: peer %s: %w", member, peer, err)
			}
			s.clusters = append(s.clusters, c)
		}
		s.routes.Routes = append(s.routes.Routes, m.peerRoutes[k]...)
	}
	return s, nil
}

// datasetRoutes are the two paths of a dataset the gateway serves: query
// (/r/) and verify (/v/).
func datasetRoutes(k routeKey, cluster string) []Route {
	ref := k.provider + "/" + k.dataset
	return []Route{
		{Name: "query/" + ref, Prefix: "/r/" + ref + "/", Cluster: cluster, Provider: k.provider, Dataset: k.dataset},
		{Name: "verify/" + ref, Prefix: "/v/" + ref + "/", Cluster: cluster, Provider: k.provider, Dataset: k.dataset},
	}
}

// peerGateways are the SPIFFE ids of every other member's registered
// gateway: the only callers the inbound door admits.
func (m *Model) peerGateways(own string) []string {
	out := make([]string, 0, len(m.gatewayIDs))
	for _, id := range m.gatewayIDs {
		if id != own {
			out = append(out, id)
		}
	}
	return out
}

func endpointCluster(name, addr string, http2 bool, tls UpstreamTLS) (Cluster, error) {
	host, port, err := splitAddress(addr)
	if err != nil {
		return Cluster{}, err
	}
	return Cluster{Name: name, Host: host, Port: port, HTTP2: http2, Upstream: tls}, nil
}

func compareKeys(a, b routeKey) int {
	if c := strings.Compare(a.provider, b.provider); c != 0 {
		return c
	}
	return strings.Compare(a.dataset, b.dataset)
}

// memberOf returns the member part of a system id, "" if it has none.
func memberOf(systemID string) string {
	_, rest, ok := strings.Cut(systemID, ":")
	if !ok {
		return ""
	}
	if _, rest, ok = strings.Cut(rest, ":"); !ok {
		return ""
	}
	member, _, ok := strings.Cut(rest, ":")
	if !ok {
		return ""
	}
	return member
}
