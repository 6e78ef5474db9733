package feed

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/gateway/projection"
	"github.com/lienthong/lienthong/internal/opsmux"
	"github.com/lienthong/lienthong/policies"
)

// readyz reads /readyz of an operations listener.
func readyz(t *testing.T, url string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// waitReadyz reads /readyz until ok says it shows what is wanted, and
// fails the test with the last answer if it does not within 20 s (the
// monitor looks every p.every; a look at a stopped broker takes up to
// probeTimeout).
func waitReadyz(t *testing.T, url string, ok func(int, map[string]string) bool) (int, map[string]string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, body := readyz(t, url)
		if ok(status, body) {
			return status, body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never showed what was wanted; last: %d %v", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// allOK: 200 and each check named passed.
func allOK(names ...string) func(int, map[string]string) bool {
	return func(status int, body map[string]string) bool {
		for _, n := range names {
			if body[n] != "ok" {
				return false
			}
		}
		return status == http.StatusOK && len(body) == len(names)
	}
}

// waitRouted waits for the router to count n routed events (the broker
// may show its commit, and readiness pass, a moment before the router
// counts it), and fails the test if it counts another number.
func waitRouted(t *testing.T, p *ProviderRouter, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Events < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.Stats().Events; got != n {
		t.Errorf("the router routed %d events, want %d", got, n)
	}
}

// agedSource is a router's bundle source whose configuration is reported
// age older than it is: what a router sees once its gateway has stopped
// renewing the configuration.
type agedSource struct {
	exchange.Source
	age atomic.Int64
}

func (s *agedSource) Current() (*exchange.Snapshot, time.Time) {
	snap, at := s.Source.Current()
	return snap, at.Add(-time.Duration(s.age.Load()))
}

// TestReadyzNamesEachFailingCondition runs a router alone from its
// configuration file, as `lienthong feed-router` does, with its readiness
// on an operations listener, breaks one condition at a time and reads
// /readyz: each turns it 503 and is named with why. Others may fail with
// it only as its consequence.
func TestReadyzNamesEachFailingCondition(t *testing.T) {
	every := []string{CheckKafka, CheckRouting, CheckConfiguration, CheckAuditLog}
	var w *world // of the subtest running
	for _, tc := range []struct {
		check, why string
		brk        func(t *testing.T, b *broker.Embedded, cfg *Config)
	}{
		{CheckKafka, "does not answer", func(_ *testing.T, b *broker.Embedded, _ *Config) { b.Close() }},
		{CheckAuditLog, "not writable", func(t *testing.T, _ *broker.Embedded, cfg *Config) {
			if err := os.Remove(cfg.AuditFile); err != nil {
				t.Fatal(err)
			}
		}},
		// The gateway's configuration, which the router follows, issued
		// past the router's maxStaleness (1h) and never renewed since.
		{CheckConfiguration, "stale", func(t *testing.T, _ *broker.Embedded, cfg *Config) {
			writeGatewayConfig(t, filepath.Dir(cfg.Policy.ConfigFile), w.signing, w.signing, exchange.MemberOf(provider),
				time.Now().Add(-2*time.Hour), time.Time{})
		}},
	} {
		t.Run(tc.check, func(t *testing.T) {
			b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			w = newWorld(t, []string{b.Addr()})
			cfg, err := LoadConfig(w.config)
			if err != nil {
				t.Fatal(err)
			}
			// The router follows its gateway's configuration, fresh now.
			cfg.Policy.ConfigFile = writeGatewayConfig(t, w.dir, w.signing, w.signing, exchange.MemberOf(provider), time.Now(), time.Time{})
			cfg.Policy.MaxStaleness = "1h"
			ready := NewReady()
			ops := httptest.NewServer(opsmux.Handler(nil, ready.Checks))
			defer ops.Close()
			if status, body := readyz(t, ops.URL); status != http.StatusServiceUnavailable || !strings.Contains(body["router"], "starting") {
				t.Fatalf("before the router runs: %d %v", status, body)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- Run(ctx, cfg, benchLog(), RunOptions{Ready: ready}) }()
			waitReadyz(t, ops.URL, allOK(every...))
			tc.brk(t, b, cfg)
			_, body := waitReadyz(t, ops.URL, func(status int, body map[string]string) bool {
				return status == http.StatusServiceUnavailable && strings.Contains(body[tc.check], tc.why)
			})
			for name, v := range body {
				if name != tc.check && v != "ok" {
					t.Errorf("%s broken, but %s fails too: %s", tc.check, name, v)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if status, body := readyz(t, ops.URL); status != http.StatusServiceUnavailable || !strings.Contains(body["router"], "stopped") {
				t.Errorf("after the router stopped: %d %v", status, body)
			}
		})
	}
}

// TestReadyzConfigurationStale ages the configuration a running router
// decides with past its allowed staleness: BeginFeedBatch then refuses
// every batch, and /readyz says so under configuration. With events
// waiting, routing fails too, by consequence, once StallAfter passes.
func TestReadyzConfigurationStale(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w := newWorld(t, []string{b.Addr()})
	cfg, err := LoadConfig(w.config)
	if err != nil {
		t.Fatal(err)
	}
	ds := testDataset(t)
	bundle, err := OpenBundleSource(ctx, cfg.Policy.BundleFile,
		policies.VerificationKey{KeyID: w.signing.KeyID, Key: w.signing.Key.Public()}, []*Dataset{ds})
	if err != nil {
		t.Fatal(err)
	}
	src := &agedSource{Source: bundle}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	masker, _ := projection.NewMasker(key, 0)
	sink, err := audit.OpenFile(cfg.AuditFile, testAuditOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	core, err := NewCore(provider, src, masker, audit.SubjectKey(testSubjectKey), sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProviderRouter(ProviderRouterConfig{ID: "router-stale", Provider: provider, Core: core,
		Kafka: broker.Config{Brokers: []string{b.Addr()}}, Datasets: []*Dataset{ds}, Log: benchLog(), StallAfter: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.every = 50 * time.Millisecond
	ops := httptest.NewServer(opsmux.Handler(nil, standaloneChecks(p, core, cfg.AuditFile)))
	defer ops.Close()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = p.Run(rctx); close(done) }()
	defer func() { stop(); <-done }()
	waitReadyz(t, ops.URL, allOK(CheckKafka, CheckRouting, CheckConfiguration, CheckAuditLog))

	src.age.Store(int64(2 * time.Hour))
	prod := newClient(t, b.Addr())
	defer prod.Close()
	if err := prod.ProduceSync(ctx, benchEvents(broker.PublishTopic(provider, ds.Code), 0, 20, time.Now)...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	_, body := waitReadyz(t, ops.URL, func(status int, body map[string]string) bool {
		return status == http.StatusServiceUnavailable && strings.Contains(body[CheckConfiguration], "stale") &&
			strings.Contains(body[CheckConfiguration], "routes nothing") && strings.Contains(body[CheckRouting], "stuck")
	})
	if body[CheckKafka] != "ok" || body[CheckAuditLog] != "ok" {
		t.Errorf("the configuration is stale, but more fails: %v", body)
	}
	if st := p.Stats(); st.Batches != 0 {
		t.Errorf("a router deciding with a stale configuration committed %d batches", st.Batches)
	}
	// Renewed, the router routes the waiting events and is ready again.
	src.age.Store(0)
	waitReadyz(t, ops.URL, allOK(CheckKafka, CheckRouting, CheckConfiguration, CheckAuditLog))
	waitRouted(t, p, 20)
}

// TestReadyzRoutingStuck watches a router whose routing loop does not run
// (the monitor alone, as if the loop were wedged) while events wait on the
// broker: once StallAfter passes without a commit, routing fails, naming
// the backlog, and nothing else does. Started, the loop commits and the
// router is ready again. A router with nothing to route is never stuck.
func TestReadyzRoutingStuck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ds := testDataset(t)
	core := benchCore(t, []string{consumerA}, ds)
	p, err := NewProviderRouter(ProviderRouterConfig{ID: "router-stuck", Provider: provider, Core: core,
		Kafka: broker.Config{Brokers: []string{b.Addr()}}, Datasets: []*Dataset{ds}, Log: benchLog(), StallAfter: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.every = 50 * time.Millisecond
	if got := p.Readiness(); len(got) != 2 || got[0].Err == nil || got[1].Err == nil {
		t.Fatalf("a router not running: %v", got)
	}
	ops := httptest.NewServer(opsmux.Handler(nil, p.Readiness))
	defer ops.Close()
	mctx, stopMonitor := context.WithCancel(ctx)
	monitored := make(chan struct{})
	go func() { p.monitor(mctx); close(monitored) }()
	defer func() { stopMonitor(); <-monitored }()
	// Idle for longer than StallAfter: not stuck.
	waitReadyz(t, ops.URL, allOK(CheckKafka, CheckRouting))
	idle := time.Now().Add(2 * p.stallAfter)
	for time.Now().Before(idle) {
		if status, body := readyz(t, ops.URL); status != http.StatusOK {
			t.Fatalf("an idle router is not ready: %v", body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	prod := newClient(t, b.Addr())
	defer prod.Close()
	if err := prod.ProduceSync(ctx, benchEvents(broker.PublishTopic(provider, ds.Code), 0, 30, time.Now)...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	_, body := waitReadyz(t, ops.URL, func(status int, body map[string]string) bool {
		return status == http.StatusServiceUnavailable && strings.Contains(body[CheckRouting], "30 events waiting")
	})
	if body[CheckKafka] != "ok" || !strings.Contains(body[CheckRouting], "since the router started") {
		t.Errorf("stuck: %v", body)
	}

	rctx, stopRouting := context.WithCancel(ctx)
	routed := make(chan struct{})
	go func() { _ = p.Router.Run(rctx); close(routed) }()
	defer func() { stopRouting(); <-routed }()
	waitReadyz(t, ops.URL, allOK(CheckKafka, CheckRouting))
	waitRouted(t, p, 30)
}

// TestKafkaCheckNamesTheBrokers: with no broker where the configuration
// points, the kafka check fails, naming the brokers and that they were
// never reached.
func TestKafkaCheckNamesTheBrokers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there
	p, err := NewProviderRouter(ProviderRouterConfig{ID: "router-nobroker", Provider: provider, Core: benchCore(t, []string{consumerA}, testDataset(t)),
		Kafka: broker.Config{Brokers: []string{addr}}, Datasets: []*Dataset{testDataset(t)}, Log: benchLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.monitor(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := p.Readiness()
		i := slices.IndexFunc(got, func(c Check) bool { return c.Name == CheckKafka })
		if i >= 0 && got[i].Err != nil && strings.Contains(got[i].Err.Error(), "does not answer") {
			if msg := got[i].Err.Error(); !strings.Contains(msg, addr) || !strings.Contains(msg, "never reached") {
				t.Errorf("the kafka check does not name the brokers or that they were never reached: %s", msg)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no broker, but: %v", got)
		}
	}
}
