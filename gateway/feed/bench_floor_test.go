package feed

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/gateway/feed/broker"
)

// fanOutFloor measures the ceiling any router doing this job on this broker
// can reach: it consumes topic (n events) the way the router does (a
// transactional session, read committed, batches of up to maxBatch) and, in
// one transaction with the consumed offsets, produces one unprojected copy
// of every event to each of subs' topics and appends one audit record per
// copy to a real audit log, durable before the commit. No decision, no
// projection, no masking, no exchange-id hashing: what is left is Kafka and
// the audit chain. It runs in lanes sessions side by side, as the router
// does. It returns input events/s, timed until the last subscriber's topic
// holds n records.
func fanOutFloor(ctx context.Context, t *testing.T, addr, topic string, subs []string, n, maxBatch, lanes int) float64 {
	t.Helper()
	sink, err := audit.OpenFile(filepath.Join(t.TempDir(), "floor-audit.log"), testAuditOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	outs := make([]string, len(subs))
	for i, s := range subs {
		outs[i] = "floor." + broker.DeliverTopic(s, provider, "bench")
	}
	reader := newClient(t, addr, kgo.ConsumeTopics(outs[len(outs)-1]), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(20*time.Millisecond))
	defer reader.Close()

	fctx, stop := context.WithCancel(ctx)
	defer stop()
	failed := make(chan error, lanes)
	var wg sync.WaitGroup
	start := time.Now()
	for lane := range lanes {
		id := fmt.Sprintf("bench-floor-%d", lane)
		opts := append([]kgo.Opt{kgo.SeedBrokers(addr)}, broker.ProducerOptions()...)
		opts = append(opts,
			kgo.TransactionalID(id),
			kgo.TransactionTimeout(30*time.Second),
			kgo.ConsumerGroup("bench-floor"),
			kgo.InstanceID(id),
			kgo.SessionTimeout(10*time.Second),
			kgo.ConsumeTopics(topic),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.RequireStableFetchOffsets(),
			kgo.FetchMaxWait(100*time.Millisecond),
		)
		sess, err := kgo.NewGroupTransactSession(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		wg.Go(func() {
			if err := floorLane(fctx, sess, sink, subs, outs, maxBatch); err != nil && fctx.Err() == nil {
				failed <- err
			}
		})
	}
	// Before the sessions close (deferred above), even on a failure.
	defer func() {
		stop()
		wg.Wait()
	}()
	for got := 0; got < n; {
		select {
		case err := <-failed:
			t.Fatalf("fan-out floor: %v", err)
		default:
		}
		fs := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("fan-out floor: timed out")
		}
		fs.EachError(func(tp string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("fan-out floor: fetch %s/%d: %v", tp, p, err)
			}
		})
		got += len(fs.Records())
	}
	return float64(n) / time.Since(start).Seconds()
}

// floorLane is one lane of the floor: batches of up to maxBatch events,
// each copied to every topic of outs and audited once per copy, in one
// transaction with the consumed offsets, until ctx ends.
func floorLane(ctx context.Context, sess *kgo.GroupTransactSession, sink audit.Sink, subs, outs []string, maxBatch int) error {
	// A record the size of a delivery's (the router's carry the same
	// fields), its exchange id cheap to make.
	base := audit.Record{Side: "provider", Phase: audit.Outcome, Provider: provider, Dataset: "bench", Mode: "feed",
		Purpose: purpose, Subject: "s-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		Fields: []string{"child.fullName", "child.personalId", "seq"}, GrantID: "g0", Status: 200, Bytes: 120,
		RequestHash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", PolicyRevision: "1"}
	for ctx.Err() == nil {
		recs := sess.PollRecords(ctx, maxBatch).Records()
		if len(recs) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return err
		}
		receipts := make([]*audit.Receipt, 0, len(recs)*len(outs))
		for _, rec := range recs {
			for i, out := range outs {
				sess.Produce(ctx, &kgo.Record{Topic: out, Key: rec.Key, Value: rec.Value}, nil)
				a := base
				a.Time = time.Now().UTC()
				a.Consumer = subs[i]
				a.ExchangeID = "fx-" + strconv.FormatInt(rec.Offset, 10) + "-" + strconv.Itoa(int(rec.Partition)) + "-" + strconv.Itoa(i)
				commit := audit.CommitSoon
				if len(receipts) == len(recs)*len(outs)-1 {
					commit = audit.CommitNow
				}
				receipts = append(receipts, sink.Submit(&a, commit))
			}
		}
		err := sess.Client().Flush(ctx)
		for _, r := range receipts {
			if err == nil {
				err = r.Wait(ctx)
			}
		}
		commit := kgo.TryCommit
		if err != nil {
			commit = kgo.TryAbort
		}
		if _, endErr := sess.End(ctx, commit); err == nil && endErr != nil {
			err = endErr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// floorLine formats the floor's BENCH lines.
func floorLine(floor, router float64) string {
	return fmt.Sprintf("BENCH feeds fanout_floor_events_per_s %.0f events/s\nBENCH feeds router_over_fanout_floor_ratio %.2f x\n", floor, router/floor)
}
