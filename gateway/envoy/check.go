package envoy

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.opentelemetry.io/otel/trace"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/internal/httpguard"
	"github.com/lienthong/lienthong/internal/problem"
)

// identityHeaders name a caller; they never reach the backend (the route
// table removes them too). The caller is its TLS peer certificate.
var identityHeaders = []string{"x-lt-consumer", "x-road-client", "x-road-userid", "x-forwarded-client-cert"}

// callerTraceText are the W3C trace headers that are free text a caller
// could fill with anything (a personal id): baggage and tracestate. Both
// doors remove them on every side, tracing on or off; only traceparent
// (ids and flags) goes on, as the native doors pass only it.
var callerTraceText = []string{"baggage", headerTracestate}

// inboundRemoved are the headers an allowed inbound Check removes: the
// identity headers and the caller's trace text.
var inboundRemoved = append(slices.Clip(identityHeaders), callerTraceText...)

// partialBodyHeader is the header Envoy's ext_authz adds when it sent only
// the first max_request_bytes of a longer body.
const partialBodyHeader = "x-envoy-auth-partial-body"

// headerLimits are the core's header bounds under the canonical names the
// HTTP guard names them by (Envoy's are looked up in lower case).
var headerLimits = func() map[string]int {
	m := make(map[string]int, len(exchange.HeaderLimits))
	for name, n := range exchange.HeaderLimits {
		m[http.CanonicalHeaderKey(name)] = n
	}
	return m
}()

// Check is the ext_authz door: it admits and decides a query or a
// verification as the native inbound door does (the core's BeginQuery or
// BeginVerify, which write the intent record) and answers with the
// decision as dynamic metadata for Process, or with the refusal's status
// and problem JSON. The caller is the TLS peer certificate Envoy forwards
// (include_peer_certificate), never a header.
//
// Its span continues the trace Envoy hands over (trace.go), and an allowed
// Check has Envoy set the traceparent of the request it sends on.
func (s *Server) Check(ctx context.Context, in *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	if err := s.fromEnvoy(ctx); err != nil {
		return nil, err
	}
	if s.traced {
		var span trace.Span
		ctx, span = s.startCheck(ctx, in)
		defer span.End()
	}
	return s.check(ctx, in), nil
}

// check is Check's work; ctx holds its span.
func (s *Server) check(ctx context.Context, in *authv3.CheckRequest) *authv3.CheckResponse {
	httpReq := in.GetAttributes().GetRequest().GetHttp()
	if httpReq == nil {
		return refused(ctx, problemRefusal(problem.New(http.StatusBadRequest, "invalid-input", "the check names no HTTP request")))
	}
	headers := httpReq.GetHeaders()
	values := func(name string) []string {
		if v, ok := headers[strings.ToLower(name)]; ok {
			return []string{v}
		}
		return nil
	}
	u, err := url.ParseRequestURI(httpReq.GetPath())
	if err != nil {
		return refused(ctx, problemRefusal(problem.New(http.StatusBadRequest, "invalid-path", "the path could not be read")))
	}
	if p := httpguard.Check(httpReq.GetMethod(), u.Path, values, headerLimits); p != nil {
		return refused(ctx, problemRefusal(p))
	}
	req, ok := s.request(in, httpReq.GetMethod(), u, headers)
	if !ok {
		return refused(ctx, problemRefusal(problem.New(http.StatusNotFound, "not-found", "use GET /r/{provider}/{dataset}/{path}")))
	}
	trace.SpanFromContext(ctx).SetAttributes(modeAttr(req.Mode))
	outbound := in.GetAttributes().GetContextExtensions()["door"] == "outbound"
	var x *exchange.Exchange
	var ref *exchange.Refusal
	if req.Mode == catalog.ModeVerify {
		// The claims come in the request body (ext_authz with_request_body,
		// packed as bytes). A body over the limit is refused as the native
		// door refuses it; Envoy sends at most one byte more than the
		// limit (allow_partial_message), or marks it partial.
		body := httpReq.GetRawBody()
		if len(body) == 0 {
			body = []byte(httpReq.GetBody())
		}
		if int64(len(body)) > s.cfg.MaxRequestBytes || headers[partialBodyHeader] == "true" {
			return refused(ctx, s.tooLarge(ctx, req, outbound))
		}
		req.Body = body
	}
	switch {
	case outbound:
		return s.checkOutbound(ctx, req)
	case req.Mode == catalog.ModeVerify:
		x, ref = s.cfg.Core.BeginVerify(ctx, req)
	default:
		x, ref = s.cfg.Core.BeginQuery(ctx, req)
	}
	if ref != nil {
		return refused(ctx, ref)
	}
	up, set := s.startUpstream(ctx, x)
	handle, ok := s.hold(x, trace.SpanContextFromContext(ctx), up)
	if !ok {
		endUpstream(up, "the gateway is closing")
		return refused(ctx, s.cfg.Core.Abandon(ctx, x, false))
	}
	meta, err := handoverOf(handle, x).Struct()
	if err != nil {
		s.drop(handle)
		return refused(ctx, s.cfg.Core.Refuse(ctx, x, http.StatusInternalServerError, exchange.KindInternal, "the decision could not be handed over"))
	}
	answer := &authv3.OkHttpResponse{HeadersToRemove: inboundRemoved}
	if len(set) > 0 {
		// The backend continues the trace from the gateway's span.
		answer.Headers = authzHeaders(set)
	}
	return allowed(answer, meta)
}

// allowed is an allowing CheckResponse.
func allowed(ok *authv3.OkHttpResponse, meta *structpb.Struct) *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: meta,
	}
}

// tooLarge refuses a verification whose body exceeds the limit, recorded
// as the native door on that side records it.
func (s *Server) tooLarge(ctx context.Context, req exchange.Request, outbound bool) *exchange.Refusal {
	req.Body = nil
	if !outbound {
		return s.cfg.Core.Reject(ctx, req, http.StatusRequestEntityTooLarge, "too-large", "the request body exceeds the limit")
	}
	x, ref := s.cfg.Core.AdmitCaller(ctx, req)
	if ref != nil {
		return ref
	}
	return s.cfg.Core.Refuse(ctx, x, http.StatusRequestEntityTooLarge, "too-large", "the request body exceeds the limit")
}

// relayRemoved are the caller's identity headers and trace text an
// outbound Check removes; the exchange headers are set (overwritten)
// instead.
var relayRemoved = append([]string{"x-road-client", "x-road-userid", "x-forwarded-client-cert"}, callerTraceText...)

// checkOutbound is the consumer side's ext_authz door, on the edge's
// outbound listener: the member's own system calling is admitted as the
// native outbound door admits it (the core's AdmitCaller: named by its
// certificate, a system of this member, with a purpose), the provider's
// gateway must be registered (RelayTarget), and the intent is recorded.
// Envoy then relays the request to the provider's edge with the exchange
// headers set here, as the native door sets them, and Process judges the
// answer (the core's Relayed).
func (s *Server) checkOutbound(ctx context.Context, req exchange.Request) *authv3.CheckResponse {
	req.Consumer, req.ExchangeID = "", "" // named by the certificate; a new id
	x, ref := s.cfg.Core.AdmitCaller(ctx, req)
	if ref != nil {
		return refused(ctx, ref)
	}
	if _, ref := s.cfg.Core.RelayTarget(ctx, x); ref != nil {
		return refused(ctx, ref)
	}
	if ref := s.cfg.Core.WriteIntent(ctx, x, nil); ref != nil {
		return refused(ctx, ref)
	}
	up, traceSet := s.startUpstream(ctx, x)
	handle, ok := s.hold(x, trace.SpanContextFromContext(ctx), up)
	if !ok {
		endUpstream(up, "the gateway is closing")
		return refused(ctx, s.cfg.Core.Abandon(ctx, x, false))
	}
	meta, err := handoverOf(handle, x).Struct()
	if err != nil {
		s.drop(handle)
		return refused(ctx, s.cfg.Core.Refuse(ctx, x, http.StatusInternalServerError, exchange.KindInternal, "the exchange could not be handed over"))
	}
	// Only these exchange headers are the gateway's word; identity headers
	// the caller sent are overwritten or removed.
	set := []exchange.Field{
		{Name: exchange.HeaderConsumer, Value: x.Consumer()},
		{Name: exchange.HeaderPurpose, Value: req.Purpose},
		{Name: exchange.HeaderExchangeID, Value: x.ID()},
	}
	set = append(set, traceSet...)
	remove := slices.Clone(relayRemoved)
	if req.Case != "" {
		set = append(set, exchange.Field{Name: exchange.HeaderCase, Value: req.Case})
	} else {
		remove = append(remove, strings.ToLower(exchange.HeaderCase))
	}
	if req.Mode == catalog.ModeVerify {
		set = append(set, exchange.Field{Name: "Content-Type", Value: "application/json"})
	}
	return allowed(&authv3.OkHttpResponse{Headers: authzHeaders(set), HeadersToRemove: remove}, meta)
}

// authzHeaders are headers as ext_authz sets them (in value, which every
// Envoy version reads), each overwriting what the request or answer had.
func authzHeaders(fields []exchange.Field) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, 0, len(fields))
	for _, f := range fields {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: f.Name, Value: f.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

// request reads an exchange request from a CheckRequest shaped as the
// native door reads it from HTTP: the route's provider and dataset, the
// record path after them, the query with fields=, the exchange headers and
// the caller's certificate chain. ok is false for a path no door serves.
func (s *Server) request(in *authv3.CheckRequest, method string, u *url.URL, headers map[string]string) (exchange.Request, bool) {
	mode := catalog.ModeQuery
	rest, found := strings.CutPrefix(u.Path, "/r/")
	if !found {
		if rest, found = strings.CutPrefix(u.Path, "/v/"); !found {
			return exchange.Request{}, false
		}
		mode = catalog.ModeVerify
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return exchange.Request{}, false
	}
	if mode == catalog.ModeQuery && method != http.MethodGet || mode == catalog.ModeVerify && method != http.MethodPost {
		return exchange.Request{}, false
	}
	// The route tells which dataset it addresses; a path naming another is
	// not one this route serves.
	if ext := in.GetAttributes().GetContextExtensions(); ext != nil {
		if p, ok := ext["provider"]; ok && p != parts[0] {
			return exchange.Request{}, false
		}
		if d, ok := ext["dataset"]; ok && d != parts[1] {
			return exchange.Request{}, false
		}
	}
	req := exchange.Request{
		Provider: parts[0], Dataset: parts[1], Record: parts[2], Mode: mode,
		Purpose: headers["x-lt-purpose"], Case: headers["x-lt-case"],
		Consumer: headers["x-lt-consumer"], ExchangeID: headers["x-lt-exchange-id"],
		Method: method, Path: u.Path, Query: u.Query(),
		PeerChain: s.peerChain(in.GetAttributes().GetSource().GetCertificate()),
	}
	if f := req.Query.Get("fields"); f != "" && mode == catalog.ModeQuery {
		req.Fields = strings.Split(f, ",")
	}
	return req, true
}

// peerChain parses the caller's certificate as Envoy forwards it (URL-encoded
// PEM) and returns it only when VerifyPeer accepts it: otherwise the core
// sees no certificate and refuses the caller. A chain verified in the last
// peerCacheTTL is not parsed and verified again: peer gateways keep their
// connections, so the same certificate comes with every request (the core
// still checks its expiry, serial and system on each one).
func (s *Server) peerChain(encoded string) []*x509.Certificate {
	if encoded == "" {
		return nil
	}
	now := time.Now()
	s.peersMu.Lock()
	e, ok := s.peers[encoded]
	s.peersMu.Unlock()
	if ok && now.Sub(e.at) < peerCacheTTL {
		return e.chain
	}
	chain := s.verifyChain(encoded)
	if chain != nil {
		s.peersMu.Lock()
		if len(s.peers) >= maxPeers {
			clear(s.peers)
		}
		s.peers[encoded] = peerEntry{chain: chain, at: now}
		s.peersMu.Unlock()
	}
	return chain
}

// Bounds of the verified-peer cache: a verification stands for a short
// while (a CA rotation or a chain's expiry is seen within it), and a flood
// of distinct certificates empties the cache rather than growing it.
const (
	peerCacheTTL = 30 * time.Second
	maxPeers     = 1024
)

// peerEntry is a verified chain and when it was verified.
type peerEntry struct {
	chain []*x509.Certificate
	at    time.Time
}

func (s *Server) verifyChain(encoded string) []*x509.Certificate {
	pemBytes, err := url.QueryUnescape(encoded)
	if err != nil {
		return nil
	}
	var chain []*x509.Certificate
	rest := []byte(pemBytes)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil
	}
	if s.cfg.VerifyPeer != nil {
		if err := s.cfg.VerifyPeer(chain); err != nil {
			s.cfg.Log.Warn("forwarded peer certificate refused", "fault", "peer-certificate")
			return nil
		}
	}
	return chain
}

// denied is a refusal as ext_authz's denial: the refusal's status, headers
// and problem JSON body, as the native door sends them.
func denied(ref *exchange.Refusal) *authv3.CheckResponse {
	headers := authzHeaders(ref.Headers())
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(ref.Status)},
			Headers: headers,
			Body:    string(ref.Body()),
		}},
	}
}

// problemRefusal wraps a guard's problem (refused before the core saw the
// request, so not recorded, as on the native listeners) as a refusal.
func problemRefusal(p *problem.Problem) *exchange.Refusal {
	return &exchange.Refusal{Kind: strings.TrimPrefix(p.Type, problem.TypePrefix), Status: p.Status, Detail: p.Detail}
}
