package feed

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/gateway/feed/broker"
)

// TestLanesDeliverExactlyOnceInOrder runs a router of several lanes
// (transactional sessions sharing the provider topic's partitions), stops
// it mid-stream and starts it again with the same or another number of
// lanes (which re-shares the partitions), and checks that each consumer
// received every event once, in order per subject. The SIGKILL test
// (TestRouterSurvivesKillsExactlyOnce) proves the same for one lane.
//
// The transaction timeout is far past the test's deadline, and once the
// first run has stopped no lane's transaction may be open on the broker: a
// router that left one open at stop would hold its partitions' offsets
// pending, and the restart, until the broker aborted it.
func TestLanesDeliverExactlyOnceInOrder(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after int
	}{{"fewer lanes", 3, 1}, {"more lanes", 1, 3}} {
		t.Run(tc.name, func(t *testing.T) { testLanesRestart(t, tc.before, tc.after) })
	}
}

func testLanesRestart(t *testing.T, before, after int) {
	const n, subjects = 900, 40
	// Far past the test's deadline: a transaction left open at stop is not
	// aborted by the broker while the test runs.
	const txnTimeout = 10 * time.Minute
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
	run := func(lanes int) (stop func() []string) {
		router, err := NewRouter(RouterConfig{ID: "lanes", Core: core, Kafka: broker.Config{Brokers: []string{b.Addr()}},
			Datasets: []*Dataset{ds}, Log: benchLog(), MaxBatch: 50, Lanes: lanes, TransactionTimeout: txnTimeout})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = router.Run(rctx); close(done) }()
		return func() []string { cancel(); <-done; return router.LaneIDs() }
	}
	last := broker.DeliverTopic(subs[len(subs)-1], provider, ds.Code)
	stop := run(before)
	// Stop once some of the first half is delivered, then publish the rest.
	reader := newClient(t, b.Addr(), kgo.ConsumeTopics(last), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	for got := 0; got < n/4 && ctx.Err() == nil; {
		got += len(reader.PollFetches(ctx).Records())
	}
	reader.Close()
	ids := stop()
	adm := kadm.NewClient(prod)
	txns, err := adm.DescribeTransactions(ctx, ids...)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if st := txns[id].State; st == "" || st == "Ongoing" {
			t.Fatalf("lane %s: transaction state %q after the router stopped, want it ended", id, st)
		}
	}
	if err := prod.ProduceSync(ctx, recs[n/2:]...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	stop = run(after)
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

// TestLaneIDsCannotBeAnotherRoutersID: a lane's transactional id must not
// be the id of another router (whose sessions would fence each other), nor
// may two lanes share one; and the number of lanes is bounded.
func TestLaneIDsCannotBeAnotherRoutersID(t *testing.T) {
	ds := testDataset(t)
	core := benchCore(t, []string{"VN:GOV:000.00.00.G01:S1"}, ds)
	newRouter := func(id string, lanes int) (*Router, error) {
		return NewRouter(RouterConfig{ID: id, Core: core, Kafka: broker.Config{Brokers: []string{"127.0.0.1:9"}},
			Datasets: []*Dataset{ds}, Lanes: lanes})
	}
	r, err := newRouter("router-a", 3)
	if err != nil {
		t.Fatal(err)
	}
	ids := r.LaneIDs()
	if len(ids) != 3 || ids[0] != "router-a" {
		t.Fatalf("lane ids %q: want 3, the first the router's own id", ids)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("lane id %q twice", id)
		}
		seen[id] = true
		if id == ids[0] {
			continue
		}
		// Another router may not take a lane's id ...
		if _, err := newRouter(id, 1); err == nil {
			t.Errorf("a router took the id %q of a lane of router-a", id)
		}
	}
	// ... and ids that merely look like the old lane ids are lanes of no one.
	other, err := newRouter("router-a-lane1", 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range other.LaneIDs() {
		if seen[id] {
			t.Errorf("router-a-lane1 has lane id %q, also router-a's", id)
		}
	}
	for _, lanes := range []int{-1, MaxLanes + 1} {
		if _, err := newRouter("router-b", lanes); err == nil {
			t.Errorf("%d lanes accepted", lanes)
		}
	}
}
