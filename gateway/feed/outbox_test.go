package feed

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lienthong/lienthong/adapters/postgres"
	"github.com/lienthong/lienthong/catalog/storetest"
	"github.com/lienthong/lienthong/gateway/feed/broker"
)

// TestOutboxRelaysCommittedEventsInOrder has eight writers append events in
// their own transactions (one in ten rolled back, a few invalid) while the
// relay runs and is stopped three times at random moments. Every committed
// valid event reaches the provider topic, per-subject order holds, nothing
// rolled back appears, the invalid ones are dead-lettered, and positions
// have no gaps.
func TestOutboxRelaysCommittedEventsInOrder(t *testing.T) {
	dsn := storetest.FreshPostgresDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ds := testDataset(t)
	ob, err := postgres.OpenOutbox(ctx, dsn, "relay-test")
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	pub, err := NewOutboxPublisher(broker.Config{Brokers: []string{b.Addr()}}, []*Dataset{ds})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	const writers, perWriter = 8, 40
	committed := make(chan string, writers*perWriter)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close(ctx)
			subj := fmt.Sprintf("W-%d", w)
			for seq := 1; seq <= perWriter; seq++ {
				data := fmt.Sprintf(`{"registrationId":%q,"seq":%d,"province":"01","child":{"fullName":"A","personalId":"001225004321"}}`, subj, seq)
				if seq%13 == 0 {
					data = `{"seq":"not a number"}` // committed, but invalid
				}
				id := fmt.Sprintf("%s-%d", subj, seq)
				ev := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":%q,"type":%q,"subject":%q,"time":"2026-03-01T08:00:00Z","data":%s}`, id, provider, birthType, subj, data)
				tx, err := c.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := postgres.Append(ctx, tx, ds.Code, []byte(ev)); err != nil {
					t.Error(err)
					return
				}
				if seq%10 == 0 {
					_ = tx.Rollback(ctx)
					continue
				}
				if err := tx.Commit(ctx); err != nil {
					t.Error(err)
					return
				}
				if seq%13 != 0 {
					committed <- id
				}
			}
		}()
	}
	// The relay, stopped at random moments and started again.
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()
	for stops := 0; ; stops++ {
		rctx, stop := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- ob.Relay(rctx, 25, 20*time.Millisecond, pub.Publish) }()
		if stops < 3 {
			time.Sleep(time.Duration(50+rand.IntN(200)) * time.Millisecond)
		} else {
			<-writersDone
			time.Sleep(time.Second)
		}
		stop()
		if err := <-errc; err != nil && rctx.Err() == nil {
			t.Fatal(err)
		}
		if stops >= 3 {
			break
		}
	}
	close(committed)
	want := map[string]bool{}
	for id := range committed {
		want[id] = true
	}
	// Drain the relay's remainder, then read the topic.
	rctx, stop := context.WithTimeout(ctx, 3*time.Second)
	_ = ob.Relay(rctx, 25, 20*time.Millisecond, pub.Publish)
	stop()
	seen, lastSeq := map[string]int{}, map[string]int{}
	for _, rec := range drain(ctx, t, b.Addr(), broker.PublishTopic(provider, ds.Code)) {
		var ev struct {
			ID, Subject string
			Data        struct{ Seq int }
		}
		if err := json.Unmarshal(rec.Value, &ev); err != nil {
			t.Fatal(err)
		}
		seen[ev.ID]++
		if seen[ev.ID] == 1 {
			if ev.Data.Seq <= lastSeq[ev.Subject] {
				t.Errorf("%s: seq %d after %d", ev.Subject, ev.Data.Seq, lastSeq[ev.Subject])
			}
			lastSeq[ev.Subject] = ev.Data.Seq
		}
		if !want[ev.ID] {
			t.Errorf("%s is in the topic but was rolled back or invalid", ev.ID)
		}
	}
	for id := range want {
		if seen[id] == 0 {
			t.Errorf("committed event %s never reached Kafka", id)
		}
	}
	invalid := writers * (perWriter / 13)
	if n := countTopic(ctx, t, b.Addr(), broker.DeadLetterTopic(provider, ds.Code)); n < invalid {
		t.Errorf("dead letters %d, want at least %d", n, invalid)
	}
	var rows, maxPos int64
	if err := conn.QueryRow(ctx, "SELECT count(*), coalesce(max(position), 0) FROM lienthong_outbox").Scan(&rows, &maxPos); err != nil {
		t.Fatal(err)
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("%d committed valid events, %d distinct in the topic, %d repeats after stops, %d outbox rows", len(want), len(seen), dups, rows)
	if rows != maxPos {
		t.Errorf("positions have gaps: %d rows up to position %d", rows, maxPos)
	}
}
