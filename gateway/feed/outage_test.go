package feed

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/gateway/feed/broker"
)

// TestBrokerOutagePausesTheRouter stops the broker while events flow and
// starts it again on the same data directory and port: the router pauses,
// then resumes, and every consumer still has each event exactly once.
func TestBrokerOutagePausesTheRouter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := broker.EmbeddedConfig{Listen: addr, DataDir: dir, Partitions: 2}
	b, err := broker.StartEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, []string{addr})
	rcfg, err := LoadConfig(w.config)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = Run(rctx, rcfg, slog.New(slog.NewTextHandler(io.Discard, nil)), RunOptions{}); close(done) }()
	defer func() { stop(); <-done }()

	const n = 600
	produce := func(from, to int) {
		t.Helper()
		prod := newClient(t, addr)
		defer prod.Close()
		for i := from; i < to; i++ {
			subj := fmt.Sprintf("KS-%03d", i%50)
			ev := fmt.Sprintf(`{"specversion":"1.0","id":"o-%d","source":%q,"type":%q,"subject":%q,"time":"2026-03-01T08:00:00Z","data":{"registrationId":%q,"seq":%d,"province":"01","child":{"fullName":"Nguyễn Văn An","personalId":"001225004321"}}}`, i, provider, birthType, subj, subj, i+1)
			prod.Produce(ctx, &kgo.Record{Topic: broker.PublishTopic(provider, "vital-events"), Key: []byte(subj), Value: []byte(ev)}, nil)
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, n/2)
	time.Sleep(300 * time.Millisecond) // the router is mid-stream
	b.Close()
	time.Sleep(1500 * time.Millisecond) // the outage
	if b, err = broker.StartEmbedded(cfg); err != nil {
		t.Fatalf("restart on the same data dir: %v", err)
	}
	defer b.Close()
	produce(n/2, n)
	var got map[string]*received
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		got = readAll(ctx, t, addr)
		if len(got[consumerA].ids) >= n && len(got[consumerB].ids) >= n {
			break
		}
	}
	for _, c := range []string{consumerA, consumerB, consumerC} {
		r := got[c]
		for _, bad := range r.bad {
			t.Errorf("%s: %s", c, bad)
		}
		for id, k := range r.ids {
			if k != 1 {
				t.Errorf("%s received %s %d times", c, id, k)
			}
		}
		if len(r.ids) != n {
			t.Errorf("%s received %d distinct events, want %d", c, len(r.ids), n)
		}
	}
}
