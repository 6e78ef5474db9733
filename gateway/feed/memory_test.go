package feed

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/gateway/feed/event"
)

// A lane's record memory is written again only once the client has
// finished with every record of the batch before; otherwise the batch gets
// new memory and the old is left to the records still in flight.
func TestLaneMemoryIsReusedOnlyOnceTheClientIsDone(t *testing.T) {
	var m laneMemory
	mems, reused := m.begin(2)
	if reused {
		t.Fatal("the first batch reused memory")
	}
	first := mems[0].bytes.take(10)
	copy(first, "0123456789")
	rec := &mems[0].records.take(1)[0]
	rec.Value = first

	m.finished(false) // a record's promise not yet called
	mems, reused = m.begin(2)
	second := mems[0].bytes.take(10)
	if reused || &second[0] == &first[0] {
		t.Fatal("memory was written again while the client may still read it")
	}
	if string(first) != "0123456789" || string(rec.Value) != "0123456789" {
		t.Fatal("an unfinished batch's record changed")
	}

	m.finished(true)
	mems, reused = m.begin(2)
	again := mems[0].bytes.take(10)
	if !reused || &again[0] != &second[0] {
		t.Fatal("finished memory was not reused")
	}
	if r := mems[0].records.take(1)[0]; r.Value != nil {
		t.Fatal("a reused record still points at the last batch's bytes")
	}
	if _, reused := m.begin(3); reused {
		t.Fatal("memory for another number of workers was reused")
	}
}

// Through a real client and broker, a router writing each batch in its
// lane's memory of the batch before delivers every event once, each record
// whole: its id, data, key and exchange id all of the same event.
func TestRouterReusesRecordMemoryWithoutCorruptingDeliveries(t *testing.T) {
	const n = 1500
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	subs := []string{"VN:GOV:000.00.00.G01:S1", "VN:GOV:000.00.00.G01:S2"}
	ds := testDataset(t)
	core := benchCore(t, subs, ds)
	prod := newClient(t, b.Addr())
	defer prod.Close()
	if err := prod.ProduceSync(ctx, benchEvents(broker.PublishTopic(provider, ds.Code), 0, n, time.Now)...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	router, err := NewRouter(RouterConfig{ID: "memory", Core: core, Kafka: broker.Config{Brokers: []string{b.Addr()}},
		Datasets: []*Dataset{ds}, Log: benchLog(), MaxBatch: 50})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = router.Run(rctx); close(done) }()
	defer func() { stop(); <-done }()

	consumer := subs[1]
	reader := newClient(t, b.Addr(), kgo.ConsumeTopics(broker.DeliverTopic(consumer, provider, ds.Code)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer reader.Close()
	seen := map[string]bool{}
	for len(seen) < n && ctx.Err() == nil {
		reader.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			ev, err := event.Parse(r.Value)
			if err != nil {
				t.Fatalf("a delivered record is not an event: %v", err)
			}
			var data struct {
				Seq   *int `json:"seq"`
				Child struct {
					FullName string `json:"fullName"`
				} `json:"child"`
			}
			if err := json.Unmarshal(ev.Data, &data); err != nil || data.Seq == nil || data.Child.FullName != "Nguyễn Văn An" {
				t.Fatalf("event %s delivered with data %s (%v)", ev.ID, ev.Data, err)
			}
			if ev.ID != fmt.Sprint("b-", *data.Seq) || string(r.Key) != ev.Subject {
				t.Fatalf("event %s carries the data of event %d or another's key", ev.ID, *data.Seq)
			}
			var xid string
			for _, h := range r.Headers {
				if h.Key == HeaderExchangeID {
					xid = string(h.Value)
				}
			}
			if xid != exchange.FeedExchangeID(provider, ev.ID, consumer) {
				t.Fatalf("event %s carries another delivery's exchange id", ev.ID)
			}
			if seen[ev.ID] {
				t.Fatalf("event %s delivered twice", ev.ID)
			}
			seen[ev.ID] = true
		})
	}
	if len(seen) != n {
		t.Fatalf("%d of %d events delivered", len(seen), n)
	}
	if router.reusedMemory.Load() == 0 {
		t.Fatal("no batch reused its lane's memory: the reuse never happens")
	}
}
