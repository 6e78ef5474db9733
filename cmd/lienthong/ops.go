package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"

	"github.com/lienthong/lienthong/internal/tracing"
)

// defaultMetricsListen is where a process serves /metrics, /healthz and
// /readyz unless told otherwise: loopback, on a port the system picks (the
// ready line prints it), so two processes on one host never collide. Give
// a fixed address (e.g. 127.0.0.1:9464) for Prometheus to scrape; an
// address without a host listens on loopback only; "" turns it off.
const defaultMetricsListen = "127.0.0.1:0"

const metricsListenUsage = `serve GET /metrics (Prometheus), /healthz and /readyz over plain HTTP here; a host-less address (":9464") listens on loopback; "" turns it off`

// traceFlags are the OpenTelemetry settings of a process that carries
// exchanges.
type traceFlags struct {
	endpoint string
	sample   float64
}

func addTraceFlags(cmd *cobra.Command, t *traceFlags) {
	cmd.Flags().StringVar(&t.endpoint, "otlp-endpoint", os.Getenv("LIENTHONG_OTLP_ENDPOINT"),
		"send OpenTelemetry traces of exchanges to this OTLP/HTTP collector, e.g. http://127.0.0.1:4318 (env LIENTHONG_OTLP_ENDPOINT; default off)")
	cmd.Flags().Float64Var(&t.sample, "trace-sample", 1, "share of new traces recorded, 0 < r ≤ 1 (a caller's traceparent keeps its own decision)")
}

// setup returns the tracer provider and the function that flushes it.
func (t *traceFlags) setup(ctx context.Context, service string) (trace.TracerProvider, func(context.Context) error, error) {
	return tracing.Setup(ctx, tracing.Config{Endpoint: t.endpoint, SampleRatio: t.sample, Service: service})
}
