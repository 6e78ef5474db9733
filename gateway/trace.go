package gateway

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/trace"

	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/internal/tracing"
)

// tracerName names the gateway's spans' instrumentation scope.
const tracerName = "github.com/lienthong/lienthong/gateway"

// WithTracerProvider traces exchanges with tp (default: no tracing; the
// command builds tp from --otlp-endpoint). Spans carry the exchange id and
// the names of internal/tracing, never a path, field value or subject.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(g *Gateway) { g.tracer = tracing.Provider(tp).Tracer(tracerName) }
}

// startSpan continues the caller's trace (its traceparent, if any) with a
// server span for one door.
func (g *Gateway) startSpan(r *http.Request, name, side string, mode string) (context.Context, trace.Span) {
	ctx := withoutTraceState(tracing.Extract(r.Context(), r.Header))
	return g.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(tracing.KeySide.String(side), tracing.KeyMode.String(mode)))
}

// endAnswer ends a door's span with the exchange's id and outcome.
func endAnswer(span trace.Span, a *exchange.Answer, ref *exchange.Refusal) {
	if ref != nil {
		if ref.ExchangeID != "" {
			span.SetAttributes(tracing.KeyExchangeID.String(ref.ExchangeID))
		}
		kind := exchange.BoundedKind(ref.Kind)
		tracing.End(span, ref.Status, exchange.OutcomeOf(kind, ref.Status), kind)
		return
	}
	span.SetAttributes(tracing.KeyExchangeID.String(a.ExchangeID))
	tracing.End(span, a.Status, exchange.OutcomeOf("", a.Status), "")
}

// tracedAdapter puts each backend fetch in a client span under the
// exchange's; the REST adapter passes the trace on to the backend.
type tracedAdapter struct {
	adapters.Adapter
	kind   string
	tracer func() trace.Tracer
}

// Fetch implements adapters.Adapter.
func (a tracedAdapter) Fetch(ctx context.Context, req adapters.Request) (*adapters.Response, error) {
	attrs := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(tracing.KeyAdapter.String(a.kind))}
	if req.Dataset != nil {
		attrs = append(attrs, trace.WithAttributes(tracing.KeyDataset.String(req.Dataset.System+"/"+req.Dataset.Code)))
	}
	ctx, span := a.tracer().Start(ctx, "lienthong.adapter.fetch", attrs...)
	defer span.End()
	resp, err := a.Adapter.Fetch(ctx, req)
	if err != nil {
		// The error's text can quote the backend: the kind of fault only.
		span.SetAttributes(tracing.KeyOutcome.String(exchange.OutcomeBackendError))
	}
	return resp, err
}

// withoutTraceState keeps only the ids and flags of the caller's trace
// context. A tracestate is free text a caller could fill with anything (a
// personal id): kept, it would be in the gateway's spans and, tracing on
// or off, injected with the traceparent into the request to the provider
// gateway and to the backend. The Envoy doors remove it too.
func withoutTraceState(ctx context.Context) context.Context {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || sc.TraceState().Len() == 0 {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc.WithTraceState(trace.TraceState{}))
}
