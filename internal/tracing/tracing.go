// Package tracing sets up OpenTelemetry traces for a process and carries
// the W3C trace context (traceparent) across the hops of an exchange: the
// consumer system, the consumer gateway, the provider gateway, the adapter
// and the backend. Tracing is off unless an OTLP endpoint is configured;
// tests use an in-memory exporter.
//
// A span names what happened, never to whom: its name is fixed text, and
// its attributes are the exchange id, side, mode, the dataset reference,
// the adapter kind, the outcome and the problem kind (see the Attr
// helpers). A URL path is never recorded (a record path holds a personal
// id), nor a header, body, field value or subject.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config is how a process exports traces.
type Config struct {
	// Endpoint is the OTLP/HTTP collector's base URL, e.g.
	// http://127.0.0.1:4318 ("" turns tracing off).
	Endpoint string
	// SampleRatio is the share of new traces recorded (0 < r ≤ 1; 0 means
	// 1). A trace a caller started keeps the caller's sampling decision.
	SampleRatio float64
	// Service names the process in the traces (service.name).
	Service string
}

// Setup returns the process's tracer provider and a function that flushes
// and stops it. With no endpoint it returns a provider that records
// nothing, at no cost.
func Setup(ctx context.Context, cfg Config) (trace.TracerProvider, func(context.Context) error, error) {
	if cfg.Endpoint == "" {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("tracing: the OTLP endpoint %q is not an http(s) URL", cfg.Endpoint)
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint+"/v1/traces"))
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	tp := NewProvider(sdktrace.NewBatchSpanProcessor(exp), cfg.SampleRatio, cfg.Service)
	return tp, tp.Shutdown, nil
}

// NewProvider is a tracer provider over one span processor (tests pass a
// synchronous one over an in-memory exporter).
func NewProvider(sp sdktrace.SpanProcessor, ratio float64, service string) *sdktrace.TracerProvider {
	if ratio <= 0 || ratio > 1 {
		ratio = 1
	}
	if service == "" {
		service = "lienthong"
	}
	res := resource.NewSchemaless(semconv.ServiceName(service))
	return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sp), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
}

// Provider is tp, or a provider that records nothing when tp is nil.
func Provider(tp trace.TracerProvider) trace.TracerProvider {
	if tp == nil {
		return noop.NewTracerProvider()
	}
	return tp
}

// propagator is the W3C trace context, the only context carried: baggage
// could carry anything a caller put in it, so it is not.
var propagator = propagation.TraceContext{}

// Extract continues the trace the caller's traceparent names, if any.
func Extract(ctx context.Context, h http.Header) context.Context {
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// Inject writes the traceparent of ctx's span into h, so the next hop
// continues the trace.
func Inject(ctx context.Context, h http.Header) {
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// Attribute keys spans carry. Each holds a name the federation registers
// or an enumeration, never caller data.
const (
	KeyExchangeID = attribute.Key("lienthong.exchange_id")
	KeySide       = attribute.Key("lienthong.side")
	KeyMode       = attribute.Key("lienthong.mode")
	KeyDataset    = attribute.Key("lienthong.dataset")
	KeyAdapter    = attribute.Key("lienthong.adapter")
	KeyOutcome    = attribute.Key("lienthong.outcome")
	KeyKind       = attribute.Key("lienthong.problem_kind")
	KeyStatus     = attribute.Key("http.response.status_code")
)

// End ends span with the exchange's status: an error status for 5xx
// answers, the outcome and problem kind as attributes.
func End(span trace.Span, status int, outcome, kind string) {
	span.SetAttributes(KeyStatus.Int(status), KeyOutcome.String(outcome))
	if kind != "" {
		span.SetAttributes(KeyKind.String(kind))
	}
	if status >= 500 {
		span.SetStatus(codes.Error, outcome)
	}
	span.End()
}
