package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/lienthong/lienthong/gateway"
	envoydoor "github.com/lienthong/lienthong/gateway/envoy"
)

// TestBenchEnvoyDoors measures, in one run and against the same provider
// gateway, grant and record: (a) the native inbound door (decision, backend
// fetch, projection, audit over HTTPS), (b) the ext_authz Check over gRPC
// (admission, decision, intent record) and (c) one ext_proc exchange per
// response over gRPC (response headers and the buffered body in, the
// filtered body out, outcome record). The backend's body is fetched once
// beforehand: fetching is Envoy's part. The fake Envoy is a Go gRPC client
// (no Envoy binary here). It prints BENCH lines only; it asserts no timing.
func TestBenchEnvoyDoors(t *testing.T) {
	if os.Getenv("LIENTHONG_BENCH") != "1" {
		t.Skip("benchmark report: run with LIENTHONG_BENCH=1 (make bench)")
	}
	ef := newEnvoyFederation(t, false, 0, func(c *gateway.Config) {
		c.RateLimit.PerSecond, c.RateLimit.Burst = 1e6, 1e6
	})
	const n, warm = 2000, 200
	budget := time.Now().Add(2 * time.Minute)
	path := recordPath + citizenID

	var native []time.Duration
	for i := range n + warm {
		if time.Now().After(budget) {
			break
		}
		start := time.Now()
		a := ef.native(path, exchangeHeaders(insurance, "bn-"+strconv.Itoa(i)))
		if a.status != http.StatusOK {
			t.Fatalf("native: %d %s", a.status, a.body)
		}
		if i >= warm {
			native = append(native, time.Since(start))
		}
	}

	resp, err := http.Get(ef.backendURL + "/citizens/" + citizenID)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	headers := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("application/json")},
		{Key: "content-length", RawValue: []byte(strconv.Itoa(len(raw)))},
	}}
	ctx := context.Background()
	var checks, procs []time.Duration
	for i := range n + warm {
		if time.Now().After(budget) {
			break
		}
		start := time.Now()
		check, err := ef.auth.Check(ctx, checkRequest(ef, path, exchangeHeaders(insurance, "be-"+strconv.Itoa(i))))
		if err != nil || check.GetOkResponse() == nil {
			t.Fatalf("Check: %v %v", err, check)
		}
		checked := time.Now()
		meta := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{envoydoor.Namespace: check.GetDynamicMetadata()}}
		stream, err := ef.proc.Process(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, req := range []*extprocv3.ProcessingRequest{
			{MetadataContext: meta, Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: headers}}},
			{MetadataContext: meta, Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: raw, EndOfStream: true}}},
		} {
			if err := stream.Send(req); err != nil {
				t.Fatal(err)
			}
			out, err := stream.Recv()
			if err != nil || out.GetImmediateResponse() != nil {
				t.Fatalf("ext_proc: %v %v", err, out)
			}
		}
		_ = stream.CloseSend()
		done := time.Now()
		if i >= warm {
			checks = append(checks, checked.Sub(start))
			procs = append(procs, done.Sub(checked))
		}
	}
	p := func(d []time.Duration, q float64) float64 {
		slices.Sort(d)
		return float64(d[int(q*float64(len(d)-1))].Microseconds())
	}
	fmt.Printf("BENCH xds native_query_p50_us %.0f us\n", p(native, 0.5))
	fmt.Printf("BENCH xds native_query_p99_us %.0f us\n", p(native, 0.99))
	fmt.Printf("BENCH xds check_p50_us %.0f us\n", p(checks, 0.5))
	fmt.Printf("BENCH xds check_p99_us %.0f us\n", p(checks, 0.99))
	fmt.Printf("BENCH xds ext_proc_p50_us %.0f us\n", p(procs, 0.5))
	fmt.Printf("BENCH xds ext_proc_p99_us %.0f us\n", p(procs, 0.99))
	fmt.Printf("BENCH xds envoy_doors_samples %d count\n", len(checks))
	if ef.sink.of("be-0") == nil {
		t.Error("the bench's exchanges were not recorded")
	}
}
