package feed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/policies"
)

// TestBenchFeeds measures, on one embedded broker in one run: raw
// produce+consume throughput of the events (the baseline), the router's
// input events/s delivering to 5 subscribers (each event decided,
// projected and masked 5 times, transactions on, batches of up to 1,000),
// their ratio, and the end-to-end delivery p99 at a fixed 1,000 events/s.
// It prints BENCH lines only; it asserts no timing.
func TestBenchFeeds(t *testing.T) {
	if os.Getenv("LIENTHONG_BENCH") != "1" {
		t.Skip("benchmark report: run with LIENTHONG_BENCH=1 (make bench)")
	}
	const n = 20000
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	prod := newClient(t, b.Addr())
	defer prod.Close()
	events := benchEvents

	// Baseline: produce n events and consume them back.
	rawTopic := "bench.raw"
	cons := newClient(t, b.Addr(), kgo.ConsumeTopics(rawTopic), kgo.ConsumerGroup("bench-raw"), kgo.FetchMaxWait(50*time.Millisecond))
	cpu := processCPU()
	start := time.Now()
	go func() { _ = prod.ProduceSync(ctx, events(rawTopic, 0, n, time.Now)...) }()
	for got := 0; got < n && ctx.Err() == nil; {
		got += len(cons.PollFetches(ctx).Records())
	}
	rawRate := n / time.Since(start).Seconds()
	rawCPU := (processCPU() - cpu) / n
	cons.Close()

	// Router: 5 subscribers.
	subs := []string{"VN:GOV:000.00.00.G01:S1", "VN:GOV:000.00.00.G01:S2", "VN:GOV:000.00.00.G01:S3", "VN:GOV:000.00.00.G01:S4", "VN:GOV:000.00.00.G01:S5"}
	ds := testDataset(t)
	core := benchCore(t, subs, ds)
	topic := broker.PublishTopic(provider, ds.Code)
	if err := prod.ProduceSync(ctx, events(topic, 0, n, time.Now)...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	lanes := benchLanes()
	stopProfile := profilePhase(t, "floor")
	cpu = processCPU()
	floorRate := fanOutFloor(ctx, t, b.Addr(), topic, subs, n, 1000, lanes)
	floorCPU := (processCPU() - cpu) / n
	stopProfile()
	router, err := NewRouter(RouterConfig{ID: "bench", Core: core, Kafka: broker.Config{Brokers: []string{b.Addr()}},
		Datasets: []*Dataset{ds}, Log: benchLog(), MaxBatch: 1000, Lanes: lanes})
	if err != nil {
		t.Fatal(err)
	}
	last := broker.DeliverTopic(subs[len(subs)-1], provider, ds.Code)
	reader := newClient(t, b.Addr(), kgo.ConsumeTopics(last), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(20*time.Millisecond))
	defer reader.Close()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	stopProfile = profilePhase(t, "router")
	cpu = processCPU()
	start = time.Now()
	go func() { _ = router.Run(rctx); close(done) }()
	var first time.Duration
	for got := 0; got < n && ctx.Err() == nil; {
		got += len(reader.PollFetches(ctx).Records())
		if first == 0 && got > 0 {
			first = time.Since(start)
		}
	}
	routerRate := n / time.Since(start).Seconds()
	routerCPU := (processCPU() - cpu) / n
	stopProfile()

	// Latency at a fixed 1,000 events/s for 3 s.
	var lat []float64
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 300; i++ {
			<-tick.C
			for _, r := range events(topic, n+i*10, 10, time.Now) {
				prod.Produce(ctx, r, nil)
			}
		}
	}()
	for len(lat) < 3000 && ctx.Err() == nil {
		reader.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var ev struct{ Time time.Time }
			if json.Unmarshal(r.Value, &ev) == nil {
				lat = append(lat, float64(time.Since(ev.Time).Microseconds())/1000)
			}
		})
	}
	stop()
	<-done
	slices.Sort(lat)
	fmt.Printf("BENCH feeds raw_events_per_s %.0f events/s\n", rawRate)
	fmt.Printf("BENCH feeds router_events_per_s %.0f events/s\n", routerRate)
	fmt.Printf("BENCH feeds router_deliveries_per_s %.0f deliveries/s\n", routerRate*float64(len(subs)))
	fmt.Printf("BENCH feeds router_first_delivery_ms %.0f ms\n", float64(first.Microseconds())/1000)
	fmt.Printf("BENCH feeds router_over_raw_ratio %.2f x\n", routerRate/rawRate)
	fmt.Print(floorLine(floorRate, routerRate))
	fmt.Printf("BENCH feeds fanout_floor_over_raw_ratio %.2f x\n", floorRate/rawRate)
	// CPU per input event of the whole process (broker included): less
	// sensitive to the machine's other load than the rates.
	fmt.Printf("BENCH feeds raw_cpu_us_per_event %.1f us\n", rawCPU)
	fmt.Printf("BENCH feeds fanout_floor_cpu_us_per_event %.1f us\n", floorCPU)
	fmt.Printf("BENCH feeds router_cpu_us_per_event %.1f us\n", routerCPU)
	fmt.Printf("BENCH feeds delivery_p50_at_1000eps %.1f ms\n", lat[len(lat)/2])
	fmt.Printf("BENCH feeds delivery_p99_at_1000eps %.1f ms\n", lat[len(lat)*99/100])
}

// benchEvents are count birth events of the bench, numbered from from, on
// topic, timed by at, about 5,000 subjects.
func benchEvents(topic string, from, count int, at func() time.Time) []*kgo.Record {
	recs := make([]*kgo.Record, count)
	for i := range recs {
		s := from + i
		subj := fmt.Sprintf("KS-%06d", s%5000)
		ev := fmt.Sprintf(`{"specversion":"1.0","id":"b-%d","source":%q,"type":%q,"subject":%q,"time":%q,"data":{"registrationId":%q,"seq":%d,"province":"01","child":{"fullName":"Nguyễn Văn An","personalId":"001225004321","ethnicity":"01"}}}`,
			s, provider, birthType, subj, at().Format(time.RFC3339Nano), subj, s)
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(subj), Value: []byte(ev)}
	}
	return recs
}

// benchCore is the exchange core over a policy granting each subscriber
// the same fields (personalId hashed), with a real audit file.
func benchCore(t testing.TB, subs []string, ds *Dataset) *exchange.Core {
	t.Helper()
	now := time.Now()
	doc, _ := os.ReadFile("testdata/vital-events.yaml")
	d, err := catalog.LoadDocument(context.Background(), doc)
	if err != nil {
		t.Fatal(err)
	}
	sys := func(id string) catalog.System {
		return catalog.System{ID: id, Name: id, SecurityLevel: 3,
			Assessment: &catalog.Assessment{Level: 3, AssessedBy: "A05", Reference: "QD-1", ValidUntil: now.Add(24 * time.Hour)}}
	}
	systems := []catalog.System{sys(provider)}
	var grants []catalog.Grant
	for i, s := range subs {
		systems = append(systems, sys(s))
		grants = append(grants, catalog.Grant{ID: fmt.Sprint("g", i), Consumer: s, Provider: provider, Dataset: d.Code,
			Fields:   []catalog.GrantedField{{Path: "child.fullName"}, {Path: "child.personalId", Mask: catalog.MaskHash}, {Path: "seq"}},
			Purposes: []catalog.Purpose{{Code: purpose}}, LegalBasis: catalog.LegalBasis{Reference: "Decree 104/2022"},
			Modes: []catalog.Mode{catalog.ModeFeed}, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour), State: catalog.GrantActive})
	}
	snap, err := policies.BuildData(systems, []catalog.Dataset{{System: provider, Code: d.Code, Version: 1, RecordSchema: d.RecordSchema, MinConsumerLevel: 3, Fields: d.Fields}}, grants, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap.Revision = "1"
	return testCore(t, snap, ds)
}

// profilePhase writes a CPU profile of one phase of the bench alone to
// $LIENTHONG_BENCH_CPUPROFILE.<phase>, if that variable is set; the
// returned func stops it.
func profilePhase(t *testing.T, phase string) func() {
	prefix := os.Getenv("LIENTHONG_BENCH_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(prefix + "." + phase)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// benchLanes is the lanes of the router and the floor:
// LIENTHONG_BENCH_LANES, or the router's default.
func benchLanes() int {
	if n, err := strconv.Atoi(os.Getenv("LIENTHONG_BENCH_LANES")); err == nil && n > 0 {
		return n
	}
	return DefaultLanes
}

// processCPU is the user and system CPU time the process has used, in µs.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e3
}

// benchLog shows the router's per-batch timings with LIENTHONG_BENCH_DEBUG=1.
func benchLog() *slog.Logger {
	if os.Getenv("LIENTHONG_BENCH_DEBUG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
