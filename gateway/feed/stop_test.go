package feed

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lienthong/lienthong/gateway/feed/broker"
)

// TestStoppingRouterGivesUpOnAnUnreachableBroker stops a router while the
// broker does not answer its request to end the transaction (kfake, the
// broker every test here runs, is told to swallow EndTxn requests: nothing
// else here can make a broker unreachable mid-request), with a transaction
// timeout far past the test's deadline. The router must still stop, giving
// up on the end (stopEndTimeout), instead of waiting for the broker and
// holding back the process's shutdown.
func TestStoppingRouterGivesUpOnAnUnreachableBroker(t *testing.T) {
	const n = 600
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(2), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	subs := []string{"VN:GOV:000.00.00.G01:S1"}
	ds := testDataset(t)
	core := benchCore(t, subs, ds)
	prod := newClient(t, addr)
	defer prod.Close()
	if err := prod.ProduceSync(ctx, benchEvents(broker.PublishTopic(provider, ds.Code), 0, n, time.Now)...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	router, err := NewRouter(RouterConfig{ID: "stop", Core: core, Kafka: broker.Config{Brokers: []string{addr}},
		Datasets: []*Dataset{ds}, Log: benchLog(), MaxBatch: 20, TransactionTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() { _ = router.Run(rctx); close(done) }()

	// Once some events are delivered, the broker stops answering EndTxn.
	reader := newClient(t, addr, kgo.ConsumeTopics(broker.DeliverTopic(subs[0], provider, ds.Code)), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	for got := 0; got < 20 && ctx.Err() == nil; {
		got += len(reader.PollFetches(ctx).Records())
	}
	reader.Close()
	swallowed := make(chan struct{}, 1)
	c.ControlKey(kmsg.EndTxn.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case swallowed <- struct{}{}:
		default:
		}
		return nil, nil, true // no answer: the client waits, then retries
	})
	select {
	case <-swallowed:
	case <-ctx.Done():
		t.Fatal("the router never tried to end a transaction")
	}
	stop()
	// Unanswered, the client gives up on EndTxn by itself only after its
	// retry timeout (30 s); this deadline is well past stopEndTimeout and
	// well short of that.
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the stopping router waited for an unreachable broker instead of giving up on its transaction")
	}
}
