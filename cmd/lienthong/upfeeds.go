package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/lienthong/lienthong/adapters/synthetic"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/gateway"
	"github.com/lienthong/lienthong/gateway/feed"
	"github.com/lienthong/lienthong/gateway/feed/broker"
)

// startFeeds runs, for `lienthong up`, the embedded Kafka-protocol broker
// (topics and offsets in <data-dir>/kafka) and the Ministry of Public
// Security's feed router for the population dataset, reading the signed
// bundle and masking key its gateway keeps. It returns the broker
// configuration the gateways use; a nil config means feeds are off.
// The broker stops after the gateways and the router (it is pushed on stack
// before them); the router, started last, stops first.
func startFeeds(ctx context.Context, admin *client.Client, o upOptions, dir string, log *slog.Logger, errc chan<- error, stack *stopStack) (*broker.Config, func(), error) {
	if o.kafkaListen == "" {
		return nil, func() {}, nil
	}
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: o.kafkaListen, DataDir: filepath.Join(o.dataDir, "kafka")})
	if err != nil {
		return nil, nil, err
	}
	stack.push(func() { b.Close() })
	kafka := &broker.Config{Brokers: []string{b.Addr()}}
	doc, err := admin.DatasetDocument(ctx, upProviderSystem, "population", 0)
	if err != nil {
		return nil, nil, fmt.Errorf("feeds: population document: %w", err)
	}
	gdir := filepath.Join(dir, upProvider)
	docFile := filepath.Join(gdir, "population.openapi")
	if err := os.WriteFile(docFile, doc, 0o600); err != nil {
		return nil, nil, err
	}
	start := func() {
		cfg := &feed.Config{
			ID: "router-" + upProvider, Provider: upProviderSystem, Kafka: *kafka,
			Datasets: []feed.DatasetConfig{{Document: docFile}},
			Policy: feed.PolicyConfig{BundleFile: filepath.Join(gdir, "state", "policy-bundle.tar.gz"),
				VerificationKeyFile: filepath.Join(gdir, "state", "verification-key.json")},
			MaskingKeyFile: filepath.Join(gdir, "masking.key"), AuditFile: filepath.Join(gdir, "feed-audit.jsonl"),
			SubjectKeyFile: filepath.Join(o.dataDir, auditSubjectKeyFile),
		}
		rctx, rstop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := feed.Run(rctx, cfg, log.With("component", "feed-router")); err != nil && rctx.Err() == nil {
				errc <- fmt.Errorf("feed router: %w", err)
			}
		}()
		stack.push(func() { rstop(); <-done })
	}
	return kafka, start, nil
}

// withFeeds gives a gateway configuration the embedded broker.
func withFeeds(cfg *gateway.Config, kafka *broker.Config) {
	if kafka != nil {
		cfg.Feeds = &gateway.FeedsConfig{Kafka: *kafka}
	}
}

// printFeeds shows how to publish a change event and read the feed.
func printFeeds(out io.Writer, dir string, o upOptions, sample synthetic.Citizen) error {
	if o.kafkaListen == "" {
		return nil
	}
	prov := filepath.Join(dir, "provider-client")
	if _, err := os.Stat(filepath.Join(prov, "cert.pem")); err != nil {
		return nil // a data dir made before feeds: no publishing system enrolled
	}
	ppin, err := gatewayPin(filepath.Join(dir, upProvider, "cert.pem"))
	if err != nil {
		return err
	}
	cpin, err := gatewayPin(filepath.Join(dir, upConsumer, "cert.pem"))
	if err != nil {
		return err
	}
	c := filepath.Join(dir, "client")
	ev := fmt.Sprintf(`[{"specversion":"1.0","id":"demo-1","source":"%s","type":"vn.gov.population.personal-id.issued","subject":"%s","time":"2026-03-01T08:00:00Z","data":{"personalId":"%s","fullName":"%s","dateOfBirth":"%s","sex":"%s"}}]`,
		upProviderSystem, sample.PersonalID, sample.PersonalID, sample.FullName, sample.DateOfBirth, sample.Sex)
	fmt.Fprintf(out, `Change feed: the population database publishes an event through its gateway (Kafka embedded at %s)...
  curl -sk --pinnedpubkey %s --cert %s --key %s -H 'Content-Type: application/json' -d '%s' https://%s/feeds/population/events
...and Social Security reads only its granted fields, as Server-Sent Events (Last-Event-ID resumes):
  curl -skN --pinnedpubkey %s --cert %s --key %s https://%s/feeds/%s/population

`, o.kafkaListen, ppin, filepath.Join(prov, "cert.pem"), filepath.Join(prov, "key.pem"), ev, o.providerOutbound,
		cpin, filepath.Join(c, "cert.pem"), filepath.Join(c, "key.pem"), o.outbound, upProviderSystem)
	return nil
}
