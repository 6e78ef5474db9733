package gateway_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/gateway"
)

const benchPurpose = "1.009999"

// benchFields are the bench grant's 8 of the record's 30 fields (personalId
// hashed).
var benchFields = []string{"personalId", "fullName", "dateOfBirth", "sex", "nationality", "maritalStatus", "permanentResidence.provinceCode", "permanentResidence.wardCode"}

// benchRecord is a citizen with 30 populated fields; the bench grant allows 8.
const benchRecord = `{"personalId":"001090000001","oldIdNumber":"012345678","fullName":"Nguyễn Văn An","dateOfBirth":"1990-05-01","sex":"male",` +
	`"birthRegistrationPlace":{"provinceCode":"01","districtCode":"001","wardCode":"00001","name":"Phường Hàng Bạc"},` +
	`"homeTown":{"provinceCode":"31","districtCode":"303","wardCode":"11311","name":"Xã An Lư"},` +
	`"ethnicity":"01","religion":"Không","nationality":"VN","maritalStatus":"married",` +
	`"permanentResidence":{"provinceCode":"01","districtCode":"001","wardCode":"00001","addressLine":"12 Hàng Bạc"},` +
	`"currentResidence":{"provinceCode":"01","districtCode":"001","wardCode":"00001","addressLine":"12 Hàng Bạc"},` +
	`"idCardIssueDate":"2021-04-01","idCardIssuePlace":"Cục Cảnh sát QLHC về TTXH"}`

// TestBenchGatewayPath compares, in one run and against the same backend and
// record, (a) a direct TLS call, (b) a plain two-hop Go TLS reverse proxy and
// (c) consumer gateway → provider gateway with decision, projection and audit,
// plus two figures that separate the disk's share: the audit file's own
// durable write, and the gateway path with audit records dropped after
// serialisation. It prints BENCH lines only; it asserts no timing.
func TestBenchGatewayPath(t *testing.T) {
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

	gateways := benchGatewayTarget(t, "gateway", backend.URL, backendCA, nil)
	// A diagnostic, not a configuration of the product: the same path with
	// both gateways' audit records serialised and then dropped, so the
	// reader can tell what the disk's syncs cost from what the gateways do.
	noDisk := benchGatewayTarget(t, "gateway_nodisk", backend.URL, backendCA, discardSink{})

	// (b) two hops of httputil.ReverseProxy over TLS, like two gateways
	// that decide nothing.
	inner := httptest.NewTLSServer(&httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(mustURL(backend.URL)) },
		Transport: pooled(backend.Client()),
	})
	defer inner.Close()
	outer := httptest.NewTLSServer(&httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(mustURL(inner.URL)) },
		Transport: pooled(inner.Client()),
	})
	defer outer.Close()

	direct := target{"direct", &http.Client{Transport: pooled(backend.Client())}, backend.URL + "/citizens/" + citizenID, nil, nil}
	proxy := target{"proxy", &http.Client{Transport: pooled(outer.Client())}, outer.URL + "/citizens/" + citizenID, nil, nil}
	all := []target{direct, proxy, gateways, noDisk}
	if name := os.Getenv("LIENTHONG_BENCH_GATEWAY_DIAG"); name != "" {
		diagnose64(t, name, all)
		return
	}
	for _, tg := range all {
		tg.closedLoop(t, 200) // warm up connections and caches
	}
	// Each target in turn, round by round, so a neighbour's load falls on
	// all of them; each figure is the median of its rounds.
	rounds := map[string][]loadResult{}
	for range benchRounds {
		for _, tg := range all {
			rounds[tg.name] = append(rounds[tg.name], tg.closedLoop(t, 2000))
		}
	}
	results := map[string]loadResult{}
	for _, tg := range all {
		r := medianResult(rounds[tg.name])
		results[tg.name] = r
		fmt.Printf("BENCH gateway %s_rps %.0f req/s\n", tg.name, r.rps)
		fmt.Printf("BENCH gateway %s_p50 %.3f ms\n", tg.name, r.p50)
		fmt.Printf("BENCH gateway %s_p99 %.3f ms\n", tg.name, r.p99)
	}
	fmt.Printf("BENCH gateway rps_ratio_gateway_over_proxy %.2f x\n", results["gateway"].rps/results["proxy"].rps)
	fmt.Printf("BENCH gateway rps_ratio_gateway_nodisk_over_proxy %.2f x\n", results["gateway_nodisk"].rps/results["proxy"].rps)
	// The same closed loop at 64 callers, where group commit amortises
	// the syncs: each warmed at 64 callers first, then proxy and gateway
	// alternated round by round, so a neighbour's load falls on both; the
	// ratio is the median of the rounds' ratios.
	proxy.closedLoopN(t, 640, 64)
	gateways.closedLoopN(t, 640, 64)
	var p64, g64, r64 []float64
	for range benchRounds {
		p, g := proxy.closedLoopN(t, 3000, 64), gateways.closedLoopN(t, 3000, 64)
		p64, g64, r64 = append(p64, p.rps), append(g64, g.rps), append(r64, g.rps/p.rps)
	}
	fmt.Printf("BENCH gateway proxy_rps_64callers %.0f req/s\n", median(p64))
	fmt.Printf("BENCH gateway gateway_rps_64callers %.0f req/s\n", median(g64))
	fmt.Printf("BENCH gateway rps_ratio_gateway_over_proxy_64callers %.2f x\n", median(r64))

	n := noDisk.fixedRate(t, 500, 2500)
	// The disk's share: one audit record made durable, at the same pace, in
	// a file on the same disk as the gateways' logs. Each exchange waits for
	// one such write on each gateway (overlapped with the exchange's work),
	// so this tail bounds how low the gateway's can go.
	dir := t.TempDir()
	sink, err := audit.OpenFile(filepath.Join(dir, "baseline-audit.jsonl"), benchAuditOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	d := fixedRateFunc(500, 2500, func() time.Duration {
		start := time.Now()
		if err := audit.Write(context.Background(), sink, &audit.Record{Time: start, ExchangeID: "baseline", Phase: audit.Intent, Fields: benchFields}); err != nil {
			t.Error(err)
		}
		return time.Since(start)
	})
	// The disk's floor: two logs on the same disk (the two gateways'),
	// each making one record durable per exchange at the same pace,
	// concurrently; an exchange waits for both. These are the syncs the
	// gateways cannot avoid; what the gateway path adds beyond them is its
	// own cost.
	var floorSinks [2]*audit.FileSink
	for i := range floorSinks {
		if floorSinks[i], err = audit.OpenFile(filepath.Join(dir, fmt.Sprintf("floor-%d.jsonl", i)), benchAuditOptions()); err != nil {
			t.Fatal(err)
		}
		defer floorSinks[i].Close()
	}
	floorOnce := func() time.Duration {
		start := time.Now()
		rec := &audit.Record{Time: start, ExchangeID: "floor", Phase: audit.Intent, Fields: benchFields}
		a, b := floorSinks[0].Submit(rec, audit.CommitNow), floorSinks[1].Submit(rec, audit.CommitNow)
		if err := errors.Join(a.Wait(context.Background()), b.Wait(context.Background())); err != nil {
			t.Error(err)
		}
		return time.Since(start)
	}
	// A p99 of a few seconds' load swings with the neighbours' bursts, and
	// a difference of three such p99s swings more. So the direct call, the
	// gateway path, the floor and the plain two-hop proxy (what two TLS
	// hops add to the tail with no decision and no disk) take turns in
	// slices of 100 requests (0.2 s), 50 slices each: a burst of a few
	// seconds falls on all four alike, and each p99 is of 5,000 requests.
	const slice, slices500 = 100, 50
	var direct500, gateway500, floor500, proxy500 []time.Duration
	for range slices500 {
		direct500 = append(direct500, fixedRateSamples(500, slice, func() time.Duration { return direct.once(t) })...)
		gateway500 = append(gateway500, fixedRateSamples(500, slice, func() time.Duration { return gateways.once(t) })...)
		floor500 = append(floor500, fixedRateSamples(500, slice, floorOnce)...)
		proxy500 = append(proxy500, fixedRateSamples(500, slice, func() time.Duration { return proxy.once(t) })...)
	}
	// Only the latencies are read: the rate was the fixed 500/s.
	a, c := summarize(direct500, time.Second), summarize(gateway500, time.Second)
	f, p := summarize(floor500, time.Second), summarize(proxy500, time.Second)
	fmt.Printf("BENCH gateway audit_write_p50_at_500rps %.3f ms\n", d.p50)
	fmt.Printf("BENCH gateway audit_write_p99_at_500rps %.3f ms\n", d.p99)
	fmt.Printf("BENCH gateway direct_p50_at_500rps %.3f ms\n", a.p50)
	fmt.Printf("BENCH gateway gateway_p50_at_500rps %.3f ms\n", c.p50)
	fmt.Printf("BENCH gateway direct_p99_at_500rps %.3f ms\n", a.p99)
	fmt.Printf("BENCH gateway gateway_p99_at_500rps %.3f ms\n", c.p99)
	fmt.Printf("BENCH gateway added_p99_at_500rps %.3f ms\n", c.p99-a.p99)
	fmt.Printf("BENCH gateway gateway_nodisk_p50_at_500rps %.3f ms\n", n.p50)
	fmt.Printf("BENCH gateway gateway_nodisk_p99_at_500rps %.3f ms\n", n.p99)
	fmt.Printf("BENCH gateway added_p99_nodisk_at_500rps %.3f ms\n", n.p99-a.p99)
	fmt.Printf("BENCH gateway disk_floor_p99_at_500rps %.3f ms\n", f.p99)
	fmt.Printf("BENCH gateway added_p99_over_disk_floor_at_500rps %.3f ms\n", c.p99-a.p99-f.p99)
	fmt.Printf("BENCH gateway proxy_p99_at_500rps %.3f ms\n", p.p99)
	fmt.Printf("BENCH gateway added_p99_proxy_at_500rps %.3f ms\n", p.p99-a.p99)
	fmt.Printf("BENCH gateway added_p99_over_proxy_and_disk_floor_at_500rps %.3f ms\n", c.p99-p.p99-f.p99)
}

// benchRounds is how many times the bench alternates the figures it
// compares under load that others share.
const benchRounds = 3

// medianResult is the median of each figure of rs.
func medianResult(rs []loadResult) loadResult {
	var rps, p50, p99 []float64
	for _, r := range rs {
		rps, p50, p99 = append(rps, r.rps), append(p50, r.p50), append(p99, r.p99)
	}
	return loadResult{rps: median(rps), p50: median(p50), p99: median(p99)}
}

// median returns the median of xs (the mean of the middle two for an even
// count); xs is sorted in place.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// benchGatewayTarget starts a federation whose provider gateway serves the
// bench record from backendURL, grants the bench consumer 8 of its fields,
// and returns the consumer's call through both gateways. With sink set, both
// gateways write their audit records to it instead of their files.
func benchGatewayTarget(t *testing.T, name, backendURL, backendCA string, sink audit.Sink) target {
	t.Helper()
	var opts []gateway.Option
	if sink != nil {
		opts = []gateway.Option{gateway.WithSink(sink)}
	}
	return benchGatewayTargetWith(t, name, backendURL, backendCA, opts)
}

// benchGatewayTargetWith is benchGatewayTarget with both gateways' options.
func benchGatewayTargetWith(t *testing.T, name, backendURL, backendCA string, opts []gateway.Option) target {
	t.Helper()
	f := newFederationLogging(t, slog.LevelInfo, 0, func(c *gateway.Config) {
		c.RateLimit.PerSecond = 1e6
		var b gateway.Backend
		raw := fmt.Sprintf(`{"recordPath":"citizens/{id}","rest":{"baseUrl":%q,"caFile":%q}}`, backendURL, backendCA)
		if err := json.Unmarshal([]byte(raw), &b); err != nil {
			t.Fatal(err)
		}
		c.Backends = map[string]gateway.Backend{population + "/population": b}
	}, opts, opts)
	req, err := f.svc.RequestAccess(context.Background(), f.admin, service.AccessRequestInput{
		Consumer: insurance, Provider: population, Dataset: "population", Fields: benchFields,
		Purpose: catalog.Purpose{Code: benchPurpose}, ValidUntil: time.Now().Add(24 * time.Hour), Modes: []catalog.Mode{catalog.ModeQuery},
	})
	if err != nil {
		t.Fatal(err)
	}
	granted := []catalog.GrantedField{{Path: "personalId", Mask: catalog.MaskHash}}
	for _, p := range benchFields[1:] {
		granted = append(granted, catalog.GrantedField{Path: p})
	}
	if _, err := f.svc.Approve(context.Background(), f.admin, req.ID, service.Approval{Fields: granted}); err != nil {
		t.Fatal(err)
	}
	if err := f.provider.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{gateway.HeaderPurpose: benchPurpose}
	gw := f.systemClient(insurance)
	gw.Transport.(*http.Transport).MaxConnsPerHost = 64
	gwURL := "https://" + f.outbound + recordPath + citizenID
	if a := f.get(gw, strings.TrimPrefix(gwURL, "https://"+f.outbound), headers); a.status != http.StatusOK || len(a.body) != 7 {
		t.Fatalf("%s: gateway path not serving the 8 granted fields: %d %s", name, a.status, a.raw)
	}
	return target{name, gw, gwURL, headers, []*gateway.Gateway{f.consumer, f.provider}}
}

// discardSink serialises each record as the file sink does, then drops it
// and reports it durable. It exists only for the bench's diagnostic figure.
type discardSink struct{}

func (discardSink) Submit(r *audit.Record, _ audit.Commit) *audit.Receipt {
	if _, err := audit.Encode(r); err != nil {
		return audit.Refused(err)
	}
	rc := audit.NewReceipt()
	rc.Settle(nil)
	return rc
}

// pooled clones a test server client's transport with the connection pool
// every hop of the gateway path has (64 idle connections per host), so the
// baselines are not slowed by TLS handshakes the gateways do not pay.
func pooled(c *http.Client) *http.Transport {
	t := c.Transport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost, t.MaxConnsPerHost = 64, 64
	return t
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

type target struct {
	name    string
	client  *http.Client
	url     string
	headers map[string]string
	// gateways are the consumer's and the provider's gateway of a gateway
	// target (for the diagnostic mode's commit figures).
	gateways []*gateway.Gateway
}

type loadResult struct{ rps, p50, p99 float64 }

func (tg target) once(t *testing.T) time.Duration {
	req, _ := http.NewRequest(http.MethodGet, tg.url, nil)
	for k, v := range tg.headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := tg.client.Do(req)
	if err != nil {
		t.Errorf("%s: %v", tg.name, err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s: status %d", tg.name, resp.StatusCode)
	}
	return time.Since(start)
}

// closedLoop sends n requests from 8 workers as fast as they are answered,
// stopping after n or 30 s.
func (tg target) closedLoop(t *testing.T, n int) loadResult { return tg.closedLoopN(t, n, 8) }

// closedLoopN is closedLoop with the given number of workers.
func (tg target) closedLoopN(t *testing.T, n, workers int) loadResult {
	deadline := time.Now().Add(30 * time.Second)
	lat := make([]time.Duration, 0, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for range next {
				if time.Now().After(deadline) {
					return
				}
				d := tg.once(t)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return summarize(lat, time.Since(start))
}

// fixedRate sends n requests at rate per second, each in its own goroutine,
// and reports their latency.
func (tg target) fixedRate(t *testing.T, rate, n int) loadResult {
	return fixedRateFunc(rate, n, func() time.Duration { return tg.once(t) })
}

// fixedRateFunc calls once n times at rate per second, each call in its own
// goroutine, and summarises the durations it reports; bounded by n and 30 s.
func fixedRateFunc(rate, n int, once func() time.Duration) loadResult {
	start := time.Now()
	lat := fixedRateSamples(rate, n, once)
	return summarize(lat, time.Since(start))
}

// fixedRateSamples is fixedRateFunc's calls, returning the durations.
func fixedRateSamples(rate, n int, once func() time.Duration) []time.Duration {
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		if time.Since(start) > 30*time.Second {
			lat = lat[:i]
			break
		}
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Go(func() { lat[i] = once() })
	}
	wg.Wait()
	return lat
}

func summarize(lat []time.Duration, elapsed time.Duration) loadResult {
	if len(lat) == 0 {
		return loadResult{}
	}
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond) }
	return loadResult{rps: float64(len(lat)) / elapsed.Seconds(), p50: ms(0.50), p99: ms(0.99)}
}

// benchAuditOptions are an audit log's options for the bench's own logs.
func benchAuditOptions() audit.Options {
	return audit.Options{Gateway: "VN:GOV:000.00.00.G01:BENCH", Key: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}
}
