package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/gateway"
	"github.com/lienthong/lienthong/gateway/feed"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/gateway/metrics"
	"github.com/lienthong/lienthong/internal/durable"
	"github.com/lienthong/lienthong/internal/opsmux"
)

// upRouters are the feed routers `up` runs: one per provider system that
// publishes change events, each routing the datasets named.
var upRouters = []struct {
	member, system string
	datasets       []string
}{
	// The two joint services start at the civil registry.
	{upJustice, upJusticeSystem, []string{"birth-registration", "death-registration"}},
	// The population database publishes what follows from them.
	{upProvider, upProviderSystem, []string{"population"}},
}

// startBroker runs, for `lienthong up`, the embedded Kafka-protocol broker
// (topics and offsets in <data-dir>/kafka). It returns the broker
// configuration the gateways and routers use; nil means feeds are off.
// The broker stops after the gateways and routers (it is pushed on stack
// before them).
func startBroker(o upOptions, stack *stopStack) (*broker.Config, error) {
	if o.kafkaListen == "" {
		return nil, nil
	}
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: o.kafkaListen, DataDir: filepath.Join(o.dataDir, "kafka")})
	if err != nil {
		return nil, err
	}
	stack.push(func() { b.Close() })
	return &broker.Config{Brokers: []string{b.Addr()}}, nil
}

// startFeeds runs the feed routers through the router's public
// configuration (feed.Config, as `lienthong feed-router` takes it), each
// reading the signed policy bundle and masking key its provider's gateway
// keeps, so deliveries carry exactly the fields, and masks, of each grant.
// Started after the gateways (which have fetched the bundle), they stop
// before them. Each serves its metrics (its subscribers' lag), /healthz
// and /readyz on a loopback port, noted in ops.routers by member.
func startFeeds(ctx context.Context, admin *client.Client, dir, subjectKeyFile string, kafka *broker.Config, log *slog.Logger, errc chan<- error, stack *stopStack, ops *upOps) error {
	if kafka == nil {
		return nil
	}
	ops.routers = map[string]string{}
	for _, r := range upRouters {
		gdir := filepath.Join(dir, r.member)
		cfg := &feed.Config{
			ID: "router-" + r.member, Provider: r.system, Kafka: *kafka,
			Policy: feed.PolicyConfig{BundleFile: filepath.Join(gdir, "state", "policy-bundle.tar.gz"),
				VerificationKeyFile: filepath.Join(gdir, "state", "verification-key.json")},
			MaskingKeyFile: filepath.Join(gdir, "masking.key"), AuditFile: filepath.Join(gdir, "feed-audit.jsonl"),
			SubjectKeyFile: subjectKeyFile,
		}
		for _, code := range r.datasets {
			doc, err := admin.DatasetDocument(ctx, r.system, code, 0)
			if err != nil {
				return fmt.Errorf("feeds: %s document: %w", code, err)
			}
			file := filepath.Join(gdir, code+".openapi")
			if err := durable.WriteFile(file, doc, 0o600); err != nil {
				return err
			}
			cfg.Datasets = append(cfg.Datasets, feed.DatasetConfig{Document: file})
		}
		rlog := log.With("component", "feed-router", "provider", r.member)
		m, ready := metrics.NewFeedRouter(), feed.NewReady()
		m.WatchReady(ready.Passing)
		listener, err := opsmux.Listen(upMetricsListen, opsmux.Handler(m.Handler(), ready.Checks), rlog)
		if err != nil {
			return fmt.Errorf("feed router of %s: %w", r.member, err)
		}
		stack.push(func() { _ = listener.Close(context.Background()) })
		ops.routers[r.member] = listener.Addr()
		rctx, rstop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := feed.Run(rctx, cfg, rlog, feed.RunOptions{Lag: m, Ready: ready}); err != nil && rctx.Err() == nil {
				errc <- fmt.Errorf("feed router of %s: %w", r.member, err)
			}
		}()
		stack.push(func() { rstop(); <-done })
	}
	return nil
}

// withFeeds gives a gateway configuration the embedded broker.
func withFeeds(cfg *gateway.Config, kafka *broker.Config) {
	if kafka != nil {
		cfg.Feeds = &gateway.FeedsConfig{Kafka: *kafka}
	}
}
