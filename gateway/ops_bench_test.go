package gateway_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lienthong/lienthong/gateway"
	"github.com/lienthong/lienthong/internal/tracing"
)

// TestBenchOps measures, in one run and against the same backend, the
// gateway path with metrics and tracing on (every trace sampled, spans
// batched to an exporter that drops them, as an OTLP exporter would batch
// them off the request path) against the same path with both off. Rounds
// alternate so drift in the machine's load falls on both. It prints BENCH
// lines only; it asserts no timing.
func TestBenchOps(t *testing.T) {
	if os.Getenv("LIENTHONG_BENCH") != "1" {
		t.Skip("benchmark report: run with LIENTHONG_BENCH=1 (make bench)")
	}
	backend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, benchRecord)
	}))
	defer backend.Close()
	backendCA := filepath.Join(t.TempDir(), "backend-ca.pem")
	writeFile(t, backendCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: backend.Certificate().Raw}))

	tp := tracing.NewProvider(sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter()), 1, "bench")
	defer func() { _ = tp.Shutdown(context.Background()) }()
	plain := benchGatewayTargetWith(t, "plain", backend.URL, backendCA, []gateway.Option{gateway.WithoutMetrics()})
	observed := benchGatewayTargetWith(t, "observed", backend.URL, backendCA, []gateway.Option{gateway.WithTracerProvider(tp)})
	for _, tg := range []target{plain, observed} {
		tg.closedLoop(t, 300) // warm up connections and caches
	}
	const rounds, perRound = 4, 1500
	var sum [2]float64
	var last [2]loadResult
	for range rounds {
		for i, tg := range []target{plain, observed} {
			last[i] = tg.closedLoop(t, perRound)
			sum[i] += last[i].rps
		}
	}
	fmt.Printf("BENCH ops plain_rps %.0f req/s\n", sum[0]/rounds)
	fmt.Printf("BENCH ops observed_rps %.0f req/s\n", sum[1]/rounds)
	fmt.Printf("BENCH ops plain_p99 %.3f ms\n", last[0].p99)
	fmt.Printf("BENCH ops observed_p99 %.3f ms\n", last[1].p99)
	fmt.Printf("BENCH ops rps_ratio_observed_over_plain %.2f x\n", sum[1]/sum[0])
}
