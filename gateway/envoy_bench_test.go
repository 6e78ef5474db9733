package gateway_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/lienthong/lienthong/gateway"
	envoydoor "github.com/lienthong/lienthong/gateway/envoy"
)

// TestBenchEnvoyDoors measures, in one run, interleaved round by round so
// that each sees the same machine noise, against the same provider gateway,
// grant and record:
//
//   - native: the native inbound door (decision, backend fetch, projection,
//     audit over HTTPS);
//   - grpc_floor: a Check answered at once by a server that does nothing,
//     over the same mutual TLS gRPC as the doors, with the same request and
//     an answer of the same size (what gRPC and TLS cost on this machine);
//   - check: the ext_authz Check over gRPC (admission, decision, intent
//     record, handover);
//   - check_door: the same Check called in-process, without gRPC: the
//     door's own cost;
//   - ext_proc: one ext_proc exchange per response over gRPC (response
//     headers and the buffered body in, the filtered body out, outcome
//     record).
//
// It also reports the load average, the GC cycles and the longest GC pause
// during the run, and how many of the slowest 1% of Checks had a GC cycle
// end while they ran. The backend's body is fetched once beforehand:
// fetching is Envoy's part. The fake Envoy is a Go gRPC client (no Envoy
// binary here). It prints BENCH lines only; it asserts no timing.
func TestBenchEnvoyDoors(t *testing.T) {
	if os.Getenv("LIENTHONG_BENCH") != "1" {
		t.Skip("benchmark report: run with LIENTHONG_BENCH=1 (make bench)")
	}
	ef := newEnvoyFederation(t, false, 0, func(c *gateway.Config) {
		c.RateLimit.PerSecond, c.RateLimit.Burst = 1e6, 1e6
	})
	const n, warm = 2000, 200
	path := recordPath + citizenID
	ctx := context.Background()

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

	// The floor: the same TLS and gRPC, a server that answers with a fixed
	// allow of the size a real one has.
	first, err := ef.auth.Check(ctx, checkRequest(ef, path, exchangeHeaders(insurance, "bf-first")))
	if err != nil || first.GetOkResponse() == nil {
		t.Fatalf("Check: %v %v", err, first)
	}
	floorSrv := grpc.NewServer(grpc.Creds(credentials.NewTLS(ef.provider.EnvoyTLS())))
	authv3.RegisterAuthorizationServer(floorSrv, fixedCheck{resp: first})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = floorSrv.Serve(ln) }()
	t.Cleanup(floorSrv.Stop)
	envoyPair, _ := ef.enrolledPair(mpsGW)
	floor, _ := ef.dialAt(ln.Addr().String(), envoyPair)

	// The door in-process: a second Server on the same core, called with
	// the local Envoy as its TLS peer.
	doors, err := ef.provider.EnvoyDoors()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(doors.Close)
	leaf, err := x509.ParseCertificate(envoyPair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	inProc := peer.NewContext(ctx, &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}}})

	var native, floors, checks, doorChecks, procs []time.Duration
	var slowInGC []bool // per gRPC Check: a GC cycle ended while it ran
	gc := newGCWatch()
	load := loadAverage()
	budget := time.Now().Add(2 * time.Minute)
	for i := range n + warm {
		if time.Now().After(budget) {
			break
		}
		id := strconv.Itoa(i)
		start := time.Now()
		a := ef.native(path, exchangeHeaders(insurance, "bn-"+id))
		if a.status != http.StatusOK {
			t.Fatalf("native: %d %s", a.status, a.body)
		}
		nativeTook := time.Since(start)

		req := checkRequest(ef, path, exchangeHeaders(insurance, "bf-"+id))
		start = time.Now()
		if _, err := floor.Check(ctx, req); err != nil {
			t.Fatal(err)
		}
		floorTook := time.Since(start)

		req = checkRequest(ef, path, exchangeHeaders(insurance, "bd-"+id))
		start = time.Now()
		if r, err := doors.Check(inProc, req); err != nil || r.GetOkResponse() == nil {
			t.Fatalf("in-process Check: %v %v", err, r)
		}
		doorTook := time.Since(start)

		req = checkRequest(ef, path, exchangeHeaders(insurance, "be-"+id))
		cycles := gc.cycles()
		start = time.Now()
		check, err := ef.auth.Check(ctx, req)
		if err != nil || check.GetOkResponse() == nil {
			t.Fatalf("Check: %v %v", err, check)
		}
		checked := time.Now()
		inGC := gc.cycles() != cycles
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
			native = append(native, nativeTook)
			floors = append(floors, floorTook)
			doorChecks = append(doorChecks, doorTook)
			checks = append(checks, checked.Sub(start))
			slowInGC = append(slowInGC, inGC)
			procs = append(procs, done.Sub(checked))
		}
	}
	cycles, maxPause := gc.since()
	// The slowest 1% of gRPC Checks, and how many of them saw a GC cycle end.
	order := make([]int, len(checks))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(checks[b] - checks[a]) })
	slow := order[:max(1, len(order)/100)]
	inGC := 0
	for _, i := range slow {
		if slowInGC[i] {
			inGC++
		}
	}
	p := func(d []time.Duration, q float64) float64 {
		d = slices.Clone(d)
		slices.Sort(d)
		return float64(d[int(q*float64(len(d)-1))].Microseconds())
	}
	fmt.Printf("BENCH xds loadavg_1m %s load\n", load)
	fmt.Printf("BENCH xds native_query_p50_us %.0f us\n", p(native, 0.5))
	fmt.Printf("BENCH xds native_query_p99_us %.0f us\n", p(native, 0.99))
	fmt.Printf("BENCH xds grpc_floor_p50_us %.0f us\n", p(floors, 0.5))
	fmt.Printf("BENCH xds grpc_floor_p99_us %.0f us\n", p(floors, 0.99))
	fmt.Printf("BENCH xds check_door_p50_us %.0f us\n", p(doorChecks, 0.5))
	fmt.Printf("BENCH xds check_door_p99_us %.0f us\n", p(doorChecks, 0.99))
	fmt.Printf("BENCH xds check_p50_us %.0f us\n", p(checks, 0.5))
	fmt.Printf("BENCH xds check_p99_us %.0f us\n", p(checks, 0.99))
	fmt.Printf("BENCH xds check_p99_over_floor %.2f x\n", p(checks, 0.99)/max(1, p(floors, 0.99)))
	fmt.Printf("BENCH xds ext_proc_p50_us %.0f us\n", p(procs, 0.5))
	fmt.Printf("BENCH xds ext_proc_p99_us %.0f us\n", p(procs, 0.99))
	fmt.Printf("BENCH xds gc_cycles %d count\n", cycles)
	fmt.Printf("BENCH xds gc_pause_max_us %.0f us\n", maxPause.Seconds()*1e6)
	fmt.Printf("BENCH xds check_slowest_1pct_in_gc %d/%d count\n", inGC, len(slow))
	fmt.Printf("BENCH xds envoy_doors_samples %d count\n", len(checks))
	fmt.Printf("BENCH xds loadavg_1m_end %s load\n", loadAverage())
	if ef.sink.of("be-0") == nil {
		t.Error("the bench's exchanges were not recorded")
	}
}

// fixedCheck answers every Check with the same response at once.
type fixedCheck struct {
	authv3.UnimplementedAuthorizationServer
	resp *authv3.CheckResponse
}

func (f fixedCheck) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return f.resp, nil
}

// gcWatch reads the runtime's GC counters without stopping the world.
type gcWatch struct {
	samples []metrics.Sample
	start   uint64
	pauses  *metrics.Float64Histogram
}

const (
	gcCyclesMetric = "/gc/cycles/total:gc-cycles"
	gcPausesMetric = "/sched/pauses/total/gc:seconds"
)

func newGCWatch() *gcWatch {
	w := &gcWatch{samples: []metrics.Sample{{Name: gcCyclesMetric}, {Name: gcPausesMetric}}}
	metrics.Read(w.samples)
	w.start = w.samples[0].Value.Uint64()
	w.pauses = copyHistogram(w.samples[1].Value.Float64Histogram())
	return w
}

// cycles is the number of GC cycles completed so far.
func (w *gcWatch) cycles() uint64 {
	metrics.Read(w.samples[:1])
	return w.samples[0].Value.Uint64()
}

// since returns the GC cycles completed since newGCWatch and the upper
// bound of the longest stop-the-world GC pause among them.
func (w *gcWatch) since() (uint64, time.Duration) {
	metrics.Read(w.samples)
	now := w.samples[1].Value.Float64Histogram()
	var longest float64
	for i := range now.Counts {
		if now.Counts[i] > w.pauses.Counts[i] {
			longest = now.Buckets[i+1]
		}
	}
	return w.samples[0].Value.Uint64() - w.start, time.Duration(longest * float64(time.Second))
}

func copyHistogram(h *metrics.Float64Histogram) *metrics.Float64Histogram {
	return &metrics.Float64Histogram{Counts: slices.Clone(h.Counts), Buckets: slices.Clone(h.Buckets)}
}

// loadAverage is the machine's 1-minute load average ("?" where it cannot
// be read), printed so a reader weighs the figures against the load.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
