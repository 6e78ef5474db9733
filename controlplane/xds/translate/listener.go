package translate

import (
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/lienthong/lienthong/controlplane/xds/ir"
)

// Envoy's well-known extension names, used as filter and option keys.
const (
	hcmName         = "envoy.filters.network.http_connection_manager"
	extAuthzName    = "envoy.filters.http.ext_authz"
	extProcName     = "envoy.filters.http.ext_proc"
	routerName      = "envoy.filters.http.router"
	tlsSocketName   = "envoy.transport_sockets.tls"
	http2OptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// Timeouts of the gateway calls. ext_proc's default message timeout is
// 200 ms; a buffered body of a large record may take longer to filter.
const (
	authzTimeout   = 500 * time.Millisecond
	extProcTimeout = time.Second
)

func listener(l *ir.Listener) (*listenerv3.Listener, error) {
	filters, err := httpFilters(l)
	if err != nil {
		return nil, err
	}
	mgr, err := pack(&hcmv3.HttpConnectionManager{
		StatPrefix: l.Name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    ads(),
			RouteConfigName: l.RouteTable,
		}},
		HttpFilters: filters,
		// The caller's certificate is for ext_authz only; Envoy neither
		// forwards nor trusts a client-certificate header.
		ForwardClientCertDetails: hcmv3.HttpConnectionManager_SANITIZE,
		UseRemoteAddress:         wrapperspb.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	tls, err := downstreamTLS(l.TLS)
	if err != nil {
		return nil, err
	}
	return validate(&listenerv3.Listener{
		Name:    l.Name,
		Address: socketAddress(l.Address, l.Port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters:         []*listenerv3.Filter{{Name: hcmName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mgr}}},
			TransportSocket: tls,
		}},
	})
}

// httpFilters is ext_authz → ext_proc (when the listener has it) → router.
func httpFilters(l *ir.Listener) ([]*hcmv3.HttpFilter, error) {
	authz := &extauthzv3.ExtAuthz{
		TransportApiVersion: corev3.ApiVersion_V3,
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: l.ExtAuthz.Cluster}},
			Timeout:         durationpb.New(authzTimeout),
		}},
		// Deny by default: no answer from the gateway is a denial.
		FailureModeAllow:       false,
		IncludePeerCertificate: l.ExtAuthz.IncludePeerCertificate,
		StatPrefix:             "lienthong",
	}
	if len(l.ExtAuthz.DisallowedHeaders) > 0 {
		authz.DisallowedHeaders = exactList(l.ExtAuthz.DisallowedHeaders)
	}
	if n := l.ExtAuthz.BodyBytes; n > 0 {
		// A verification's claims go to Check (other routes turn
		// buffering off). A longer body is
		// sent cut at n bytes, one more than the gateway's limit, so the
		// gateway refuses it as its native door does, with a record.
		authz.WithRequestBody = &extauthzv3.BufferSettings{MaxRequestBytes: n, AllowPartialMessage: true, PackAsBytes: true}
	}
	authzAny, err := pack(authz)
	if err != nil {
		return nil, err
	}
	out := []*hcmv3.HttpFilter{{Name: extAuthzName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: authzAny}}}
	if p := l.ExtProc; p != nil {
		procAny, err := pack(&extprocv3.ExternalProcessor{
			GrpcService: &corev3.GrpcService{
				TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: p.Cluster}},
			},
			FailureModeAllow: false,
			ProcessingMode: &extprocv3.ProcessingMode{
				RequestHeaderMode:   extprocv3.ProcessingMode_SKIP,
				ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
				RequestBodyMode:     extprocv3.ProcessingMode_NONE,
				ResponseBodyMode:    extprocv3.ProcessingMode_BUFFERED,
				RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
				ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
			},
			MessageTimeout: durationpb.New(extProcTimeout),
			MetadataOptions: &extprocv3.MetadataOptions{
				ForwardingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: p.ForwardNamespaces},
			},
			StatPrefix: "lienthong",
		})
		if err != nil {
			return nil, err
		}
		out = append(out, &hcmv3.HttpFilter{Name: extProcName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: procAny}})
	}
	routerAny, err := pack(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	return append(out, &hcmv3.HttpFilter{Name: routerName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: routerAny}}), nil
}

func exactList(values []string) *matcherv3.ListStringMatcher {
	l := &matcherv3.ListStringMatcher{}
	for _, v := range values {
		l.Patterns = append(l.Patterns, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}, IgnoreCase: true})
	}
	return l
}

// routeTable assembles a route configuration from routes made once per
// distinct IR route: a peer dataset's route is the same on every consumer
// edge. Each route was validated when made; the configuration around them
// is validated as a whole.
func (t *Translator) routeTable(rt *ir.RouteTable) (*routev3.RouteConfiguration, error) {
	vh := &routev3.VirtualHost{Name: rt.Name, Domains: []string{"*"}, Routes: make([]*routev3.Route, 0, len(rt.Routes))}
	for _, r := range rt.Routes {
		xr, err := t.route(r)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Name, err)
		}
		vh.Routes = append(vh.Routes, xr)
	}
	// The routes were validated one by one when made; validating them again
	// inside every configuration that shares them would only repeat it.
	// So the configuration is validated around an empty virtual host, then
	// given its routes.
	routes := vh.Routes
	vh.Routes = nil
	rc, err := validate(&routev3.RouteConfiguration{
		Name:                     rt.Name,
		VirtualHosts:             []*routev3.VirtualHost{vh},
		RequestHeadersToRemove:   rt.RemoveRequestHeaders,
		ValidateClusters:         wrapperspb.Bool(false),
		IgnorePortInHostMatching: true,
	})
	if err != nil {
		return nil, err
	}
	vh.Routes = routes
	return rc, nil
}

func (t *Translator) route(r ir.Route) (*routev3.Route, error) {
	t.mu.Lock()
	got, ok := t.routes[r]
	t.mu.Unlock()
	if ok {
		return got, nil
	}
	xr, err := newRoute(r)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if len(t.routes) >= maxCached {
		clear(t.routes)
	}
	t.routes[r] = xr
	t.mu.Unlock()
	return xr, nil
}

func newRoute(r ir.Route) (*routev3.Route, error) {
	// The dataset the route addresses, and the side, go to ext_authz as
	// context; only a verification's route sends the request body.
	context := map[string]string{"provider": r.Provider, "dataset": r.Dataset}
	if r.Outbound {
		context["door"] = "outbound"
	}
	ctx, err := pack(&extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: &extauthzv3.CheckSettings{
		ContextExtensions:           context,
		DisableRequestBodyBuffering: !r.SendBody,
	}}})
	if err != nil {
		return nil, err
	}
	route := &routev3.Route{
		Name:  r.Name,
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: r.Prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: r.Cluster},
		}},
		TypedPerFilterConfig: map[string]*anypb.Any{extAuthzName: ctx},
	}
	if r.AnsweredByGateway {
		// ext_proc takes the request headers and answers with the
		// gateway's ImmediateResponse; the route itself goes nowhere.
		proc, err := pack(&extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{
			ProcessingMode: &extprocv3.ProcessingMode{
				RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
				ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
				RequestBodyMode:     extprocv3.ProcessingMode_NONE,
				ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
				RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
				ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
			},
		}}})
		if err != nil {
			return nil, err
		}
		route.TypedPerFilterConfig[extProcName] = proc
		route.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 502,
			Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: notAnsweredProblem}},
		}}
		route.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "content-type", Value: "application/problem+json"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}}
	}
	return validate(route)
}

// notAnsweredProblem is what a route answered by the gateway sends if a
// request ever gets past ext_proc unanswered (a misconfigured filter): it
// fails closed, and names itself so an operator finds the cause.
const notAnsweredProblem = `{"type":"urn:lienthong:problem:backend-error","title":"Bad Gateway","status":502,` +
	`"detail":"the agency gateway did not answer this verification (Envoy's ext_proc did not reach it)"}`

func sds(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ads()}
}

func commonTLS(certSecret, trustSecret string, sans []*tlsv3.SubjectAltNameMatcher) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds(certSecret)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans},
			ValidationContextSdsSecretConfig: sds(trustSecret),
		}},
	}
}

func uriSAN(m *matcherv3.StringMatcher) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: m}
}

func downstreamTLS(t ir.DownstreamTLS) (*corev3.TransportSocket, error) {
	var sans []*tlsv3.SubjectAltNameMatcher
	for _, id := range t.PeerSPIFFE {
		sans = append(sans, uriSAN(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}}))
	}
	if t.PeerSPIFFEPrefix != "" {
		sans = append(sans, uriSAN(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: t.PeerSPIFFEPrefix}}))
	}
	if len(sans) == 0 {
		// No peer to admit: a SAN no certificate carries keeps the door
		// shut rather than open to every holder of a federation certificate.
		sans = append(sans, uriSAN(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://invalid/no-peer"}}))
	}
	ctx, err := pack(&tlsv3.DownstreamTlsContext{
		CommonTlsContext:         commonTLS(t.CertificateSecret, t.TrustSecret, sans),
		RequireClientCertificate: wrapperspb.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	return &corev3.TransportSocket{Name: tlsSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: ctx}}, nil
}

func upstreamTLS(u ir.UpstreamTLS) (*corev3.TransportSocket, error) {
	sans := []*tlsv3.SubjectAltNameMatcher{uriSAN(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: u.PeerSPIFFE}})}
	ctx, err := pack(&tlsv3.UpstreamTlsContext{CommonTlsContext: commonTLS(u.CertificateSecret, u.TrustSecret, sans)})
	if err != nil {
		return nil, err
	}
	return &corev3.TransportSocket{Name: tlsSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: ctx}}, nil
}

// http2Options makes a cluster speak HTTP/2 (gRPC to the gateway).
func http2Options() (*anypb.Any, error) {
	return pack(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		},
	}})
}
