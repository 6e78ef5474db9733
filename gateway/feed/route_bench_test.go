package feed

import (
	"context"
	"testing"
	"time"

	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/feed/broker"
)

// BenchmarkRoute measures the router's own work on one batch of 1,000
// events to 5 subscribers, without Kafka: parse, decode and validate each
// event once, decide, project and mask it for each subscriber, write the
// consumer records, and make the deliveries' audit records durable in a
// real audit file. One op is one batch; cpu-us/event is the process's CPU
// time per event.
func BenchmarkRoute(b *testing.B) {
	subs := []string{"VN:GOV:000.00.00.G01:S1", "VN:GOV:000.00.00.G01:S2", "VN:GOV:000.00.00.G01:S3", "VN:GOV:000.00.00.G01:S4", "VN:GOV:000.00.00.G01:S5"}
	ds := testDataset(b)
	core := benchCore(b, subs, ds)
	router, err := NewRouter(RouterConfig{ID: "bench", Core: core, Kafka: broker.Config{Brokers: []string{"127.0.0.1:9"}},
		Datasets: []*Dataset{ds}, Log: benchLog()})
	if err != nil {
		b.Fatal(err)
	}
	recs := benchEvents(broker.PublishTopic(provider, ds.Code), 0, 1000, time.Now)
	ctx := context.Background()
	b.ReportAllocs()
	cpu := processCPU()
	// The router's lanes keep their record memory from batch to batch.
	var mem recordMemory
	for b.Loop() {
		mem.reset()
		fb, ref := core.BeginFeedBatch()
		if ref != nil {
			b.Fatal(ref.Detail)
		}
		var deliveries []*exchange.FeedDelivery
		for _, rec := range recs {
			res := router.route(ctx, fb, rec, &mem)
			if res.err != nil || res.dead || len(res.deliveries) != len(subs) {
				b.Fatalf("routed %d deliveries, dead %v: %v", len(res.deliveries), res.dead, res.err)
			}
			deliveries = append(deliveries, res.deliveries...)
		}
		if err := fb.Record(deliveries).Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	// CPU of the whole process per event: steadier than the wall time on
	// a shared machine.
	b.ReportMetric((processCPU()-cpu)/float64(b.N*len(recs)), "cpu-us/event")
}
