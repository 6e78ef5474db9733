package tracing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/lienthong/lienthong/internal/tracing"
)

// TestOffByDefault: with no endpoint nothing is recorded or sent.
func TestOffByDefault(t *testing.T) {
	tp, flush, err := tracing.Setup(context.Background(), tracing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("t").Start(context.Background(), "x")
	if span.SpanContext().IsValid() || span.IsRecording() {
		t.Error("a span was recorded with tracing off")
	}
	span.End()
	if err := flush(context.Background()); err != nil {
		t.Error(err)
	}
	if _, _, err := tracing.Setup(context.Background(), tracing.Config{Endpoint: "collector:4318"}); err == nil {
		t.Error("an endpoint that is not an http(s) URL was accepted")
	}
}

// TestExportsOverOTLPHTTP: spans reach an OTLP/HTTP collector (a loopback
// server standing in for one, counting what arrives at /v1/traces) by the
// time the flush returns.
func TestExportsOverOTLPHTTP(t *testing.T) {
	var got atomic.Int64
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" && r.Method == http.MethodPost && r.ContentLength != 0 {
			got.Add(1)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	tp, flush, err := tracing.Setup(context.Background(), tracing.Config{Endpoint: collector.URL, Service: "test"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("t").Start(context.Background(), "exchange")
	if !span.IsRecording() {
		t.Fatal("not recording with an endpoint set")
	}
	span.End()
	if err := flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got.Load() == 0 {
		t.Error("no export reached the collector")
	}
}

// TestPropagatesOnlyTraceContext: traceparent goes through; baggage, which
// a caller could fill with anything, does not.
func TestPropagatesOnlyTraceContext(t *testing.T) {
	in := http.Header{}
	in.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	in.Set("baggage", "personalId=001090000001")
	ctx := tracing.Extract(context.Background(), in)
	out := http.Header{}
	tracing.Inject(ctx, out)
	if out.Get("traceparent") != in.Get("traceparent") || out.Get("baggage") != "" {
		t.Errorf("propagated %v", out)
	}
}
