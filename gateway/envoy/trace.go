package envoy

import (
	"context"
	"net/http"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/internal/tracing"
)

// Span names of the Envoy doors. The door spans are the gateway's side of
// Envoy's ext_authz and ext_proc calls; the upstream spans stand for the
// request Envoy sends on after an allowed Check (to the provider's edge on
// the consumer side, the native door's "lienthong.forward"; to the backend
// on the provider side), whose traceparent Check has Envoy set.
const (
	spanCheck    = "lienthong.envoy.check"
	spanProcess  = "lienthong.envoy.process"
	spanForward  = "lienthong.forward"
	spanUpstream = "lienthong.envoy.backend"
)

// Trace context headers. Envoy hands the request's headers to Check (and to
// Process at the request headers) in lower case.
const (
	headerTraceparent = "traceparent"
	headerTracestate  = "tracestate"
)

// parentContext is the trace a door's span continues, in this order:
//
//  1. the traceparent in the gRPC call's metadata: Envoy's own span for
//     the ext_authz or ext_proc call, which its gRPC client injects when
//     the listener traces (the HTTP connection manager's tracing);
//  2. the traceparent among the request's headers, which Envoy passes on
//     untouched when it does not trace (the caller's, or the one the
//     consumer side's Check had Envoy set);
//  3. fallback, the span the door started for the exchange at Check (an
//     ext_proc stream at the response has no request headers).
//
// Envoy is the only peer these doors admit, so the metadata is its word.
// Only traceparent is read, ids and flags: a tracestate is free text a
// caller could fill with anything, so it is neither kept in the gateway's
// spans nor passed on.
func parentContext(ctx context.Context, headers map[string]string, fallback trace.SpanContext) context.Context {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if c, ok := extract(ctx, first(md.Get(headerTraceparent))); ok {
			return c
		}
	}
	if c, ok := extract(ctx, headers[headerTraceparent]); ok {
		return c
	}
	if fallback.IsValid() {
		return trace.ContextWithRemoteSpanContext(ctx, fallback)
	}
	return ctx
}

// extract reads a W3C traceparent; ok is false when it is absent or not
// valid.
func extract(ctx context.Context, traceparent string) (context.Context, bool) {
	if traceparent == "" {
		return ctx, false
	}
	h := http.Header{}
	h.Set(headerTraceparent, traceparent)
	c := tracing.Extract(ctx, h)
	return c, trace.SpanContextFromContext(c).IsValid()
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// sideOf names the gateway's side of a Check: the outbound listener's
// routes are the consumer side.
func sideOf(in *authv3.CheckRequest) string {
	if in.GetAttributes().GetContextExtensions()["door"] == "outbound" {
		return "consumer"
	}
	return "provider"
}

// startCheck starts Check's span under the context Envoy hands over.
func (s *Server) startCheck(ctx context.Context, in *authv3.CheckRequest) (context.Context, trace.Span) {
	ctx = parentContext(ctx, in.GetAttributes().GetRequest().GetHttp().GetHeaders(), trace.SpanContext{})
	return s.tracer.Start(ctx, spanCheck, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(tracing.KeySide.String(sideOf(in))))
}

// modeAttr names an exchange's mode (an enumeration) on a span.
func modeAttr(m catalog.Mode) attribute.KeyValue { return tracing.KeyMode.String(string(m)) }

// refused notes a Check's refusal on its span and returns the denial.
func refused(ctx context.Context, ref *exchange.Refusal) *authv3.CheckResponse {
	noteOutcome(trace.SpanFromContext(ctx), ref.ExchangeID, ref.Status, ref.Kind)
	return denied(ref)
}

// noteOutcome marks span with an exchange's status: the exchange id when
// the exchange got one, the status, outcome and problem kind (bounded
// names only; kind "" with a status below 400 is allowed).
func noteOutcome(span trace.Span, exchangeID string, status int, kind string) {
	if !span.IsRecording() {
		return
	}
	if exchangeID != "" {
		span.SetAttributes(tracing.KeyExchangeID.String(exchangeID))
	}
	kind = exchange.BoundedKind(kind)
	outcome := exchange.OutcomeOf(kind, status)
	span.SetAttributes(tracing.KeyStatus.Int(status), tracing.KeyOutcome.String(outcome))
	if kind != "" {
		span.SetAttributes(tracing.KeyKind.String(kind))
	}
	if status >= 500 {
		span.SetStatus(codes.Error, outcome)
	}
}

// startUpstream starts, under Check's span, the span of the request Envoy
// sends on for an allowed exchange, and returns the trace context header
// Check has Envoy set on that request (set), so that the
// next hop continues this trace: the provider's edge (and so its gateway's
// Check) on the consumer side, the backend on the provider side. A
// verification on the provider side goes nowhere (the gateway answers it
// at ext_proc): no span, no header.
func (s *Server) startUpstream(ctx context.Context, x *exchange.Exchange) (span trace.Span, set []exchange.Field) {
	if !s.traced {
		return nil, nil
	}
	rec := x.Record()
	trace.SpanFromContext(ctx).SetAttributes(tracing.KeyExchangeID.String(x.ID()), tracing.KeyOutcome.String(exchange.OutcomeAllowed))
	name := spanForward
	if rec.Side == "provider" {
		if rec.Mode == "verify" {
			return nil, nil
		}
		name = spanUpstream
	}
	_, span = s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		tracing.KeySide.String(rec.Side), tracing.KeyExchangeID.String(x.ID()),
		tracing.KeyDataset.String(rec.Provider+"/"+rec.Dataset)))
	h := http.Header{}
	tracing.Inject(trace.ContextWithSpan(ctx, span), h)
	tp := h.Get(headerTraceparent)
	if tp == "" {
		// A span that names no trace (cannot happen with the SDK's
		// tracer): the request goes on as the caller sent it.
		return span, nil
	}
	// The caller's tracestate is removed whatever this returns (see
	// callerTraceText).
	return span, []exchange.Field{{Name: headerTraceparent, Value: tp}}
}

// endUpstream ends an upstream span: the answer came back to Process, or
// (err) it never did.
func endUpstream(span trace.Span, err string) {
	if span == nil {
		return
	}
	if err != "" {
		span.SetStatus(codes.Error, err)
	}
	span.End()
}

// beginProcess starts the span of an ext_proc stream once its first message
// named the exchange (w nil: it named none), from when the stream opened.
func (p *processing) beginProcess(in *extprocv3.ProcessingRequest, w *waiting) {
	if !p.s.traced {
		return
	}
	var fallback trace.SpanContext
	side, mode := "", ""
	if w != nil {
		rec := w.x.Record()
		side, mode = rec.Side, rec.Mode
		if w.upstream != nil {
			fallback = w.upstream.SpanContext()
		} else {
			fallback = w.check
		}
	}
	var headers map[string]string
	if rh := in.GetRequestHeaders(); rh != nil {
		headers = map[string]string{}
		for _, hv := range rh.GetHeaders().GetHeaders() {
			if strings.EqualFold(hv.GetKey(), headerTraceparent) {
				headers[headerTraceparent] = headerValue(hv)
			}
		}
	}
	ctx := parentContext(p.ctx, headers, fallback)
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(p.opened)}
	if side != "" {
		opts = append(opts, trace.WithAttributes(tracing.KeySide.String(side), tracing.KeyMode.String(mode)))
	}
	if w != nil {
		opts = append(opts, trace.WithAttributes(tracing.KeyExchangeID.String(w.x.ID())))
	}
	p.ctx, p.span = p.s.tracer.Start(ctx, spanProcess, opts...)
}

// noteProcess notes what an ext_proc answer decided: an ImmediateResponse's
// status and problem kind (Details names it), or, once the exchange's
// outcome is recorded, its status.
func (p *processing) noteProcess(out *extprocv3.ProcessingResponse) {
	if p.span == nil || !p.span.IsRecording() || p.noted {
		return
	}
	id := ""
	if p.x != nil {
		id = p.x.ID()
	}
	if im := out.GetImmediateResponse(); im != nil {
		p.noted = true
		noteOutcome(p.span, id, int(im.GetStatus().GetCode()), strings.TrimPrefix(im.GetDetails(), "lienthong_"))
		return
	}
	if p.done && p.x != nil {
		p.noted = true
		noteOutcome(p.span, id, p.x.Record().Status, "")
	}
}

// endProcess ends the stream's span.
func (p *processing) endProcess() {
	if p.span != nil {
		p.span.End()
	}
}
