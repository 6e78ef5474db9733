package feed

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/gateway/feed/broker"
)

// TestLanesDeliverExactlyOnceInOrder runs a router of three lanes (three
// transactional sessions sharing the provider topic's partitions), stops it
// mid-stream and starts it again with the same lanes, and checks that each
// consumer received every event once, in order per subject. The SIGKILL
// test (TestRouterSurvivesKillsExactlyOnce) proves the same for one lane.
func TestLanesDeliverExactlyOnceInOrder(t *testing.T) {
	const n, subjects = 900, 40
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
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
	recs := benchEvents(broker.PublishTopic(provider, ds.Code), 0, n, time.Now)
	for i, r := range recs {
		// Fewer subjects than the bench's, so each has many events.
		subj := fmt.Sprintf("KS-%06d", i%subjects)
		r.Key = []byte(subj)
		var ev map[string]any
		_ = json.Unmarshal(r.Value, &ev)
		ev["subject"] = subj
		ev["data"].(map[string]any)["registrationId"] = subj
		r.Value, _ = json.Marshal(ev)
	}
	if err := prod.ProduceSync(ctx, recs[:n/2]...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	run := func() (stop func()) {
		router, err := NewRouter(RouterConfig{ID: "lanes", Core: core, Kafka: broker.Config{Brokers: []string{b.Addr()}},
			Datasets: []*Dataset{ds}, Log: benchLog(), MaxBatch: 50, Lanes: 3})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = router.Run(rctx); close(done) }()
		return func() { cancel(); <-done }
	}
	last := broker.DeliverTopic(subs[len(subs)-1], provider, ds.Code)
	stop := run()
	// Stop once some of the first half is delivered, then publish the rest.
	reader := newClient(t, b.Addr(), kgo.ConsumeTopics(last), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	for got := 0; got < n/4 && ctx.Err() == nil; {
		got += len(reader.PollFetches(ctx).Records())
	}
	reader.Close()
	stop()
	if err := prod.ProduceSync(ctx, recs[n/2:]...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	stop = run()
	defer stop()
	reader = newClient(t, b.Addr(), kgo.ConsumeTopics(last), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	for got := 0; got < n && ctx.Err() == nil; {
		got += len(reader.PollFetches(ctx).Records())
	}
	reader.Close()
	if ctx.Err() != nil {
		t.Fatal("timed out before every event was delivered")
	}
	stop()
	for _, c := range subs {
		seen := map[int]int{}
		lastSeq := map[string]int{}
		for _, rec := range drain(ctx, t, b.Addr(), broker.DeliverTopic(c, provider, ds.Code)) {
			var ev struct {
				Subject string
				Data    struct{ Seq int }
			}
			if err := json.Unmarshal(rec.Value, &ev); err != nil {
				t.Fatalf("%s: undecodable record: %v", c, err)
			}
			seen[ev.Data.Seq]++
			if prev, ok := lastSeq[ev.Subject]; ok && ev.Data.Seq <= prev {
				t.Errorf("%s: subject %s: seq %d after %d", c, ev.Subject, ev.Data.Seq, prev)
			}
			lastSeq[ev.Subject] = ev.Data.Seq
		}
		for seq := range n {
			if seen[seq] != 1 {
				t.Errorf("%s: event %d delivered %d times", c, seq, seen[seq])
			}
		}
		if len(lastSeq) != subjects {
			t.Errorf("%s: %d subjects, want %d", c, len(lastSeq), subjects)
		}
	}
}
