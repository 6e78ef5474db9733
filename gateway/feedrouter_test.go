package gateway_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/gateway"
	"github.com/lienthong/lienthong/gateway/feed"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/gateway/projection"
	"github.com/lienthong/lienthong/internal/opsmux"
)

// feedPurpose is the purpose of the feed grant in the router tests.
const feedPurpose = "1.004227"

// TestGatewayRunsTheFeedRouter configures feeds.router on the provider
// gateway: an event its system publishes reaches the consumer holding a
// feed grant with only the granted fields, masked as granted, and the
// delivery is in the gateway's own audit log, under the subject name the
// federation's subject key gives, as a query about the record would be.
func TestGatewayRunsTheFeedRouter(t *testing.T) {
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	outboundLn := liveListener(t) // the provider gateway's outbound door, handed in live
	outbound := outboundLn.Addr().String()
	f := newFederationWith(t, func(c *gateway.Config) {
		c.Feeds = &gateway.FeedsConfig{Kafka: broker.Config{Brokers: []string{b.Addr()}},
			Router: &gateway.FeedRouterConfig{Provider: population, MaxBatch: 50}}
	}, gateway.WithListeners(outboundLn, nil))
	f.outbound = outbound
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := f.svc.RequestAccess(ctx, f.admin, service.AccessRequestInput{
		Consumer: insurance, Provider: population, Dataset: "population",
		Fields: []string{"personalId", "fullName"}, Purpose: catalog.Purpose{Code: feedPurpose},
		LegalBasis: catalog.LegalBasis{Reference: "Nghị định 13/2023/NĐ-CP"}, ValidUntil: time.Now().Add(24 * time.Hour),
		Modes: []catalog.Mode{catalog.ModeFeed},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, f.admin, req.ID, service.Approval{Fields: []catalog.GrantedField{
		{Path: "personalId", Mask: catalog.MaskHash}, {Path: "fullName"}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.provider.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	const personalID = "001226000042"
	a, err := f.call(f.systemClient(population), http.MethodPost, "/feeds/population/events", nil, "["+citizenEvent("r1", personalID)+"]")
	if err != nil || a.status != http.StatusAccepted {
		t.Fatalf("publish: %v %d %s", err, a.status, a.raw)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics(broker.DeliverTopic(insurance, population, "population")),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []*kgo.Record
	for len(got) == 0 && ctx.Err() == nil {
		got = append(got, cl.PollFetches(ctx).Records()...)
	}
	if len(got) != 1 {
		t.Fatalf("delivered %d records", len(got))
	}
	var ev struct {
		ID, Subject string
		Data        map[string]any
	}
	if err := json.Unmarshal(got[0].Value, &ev); err != nil {
		t.Fatal(err)
	}
	hashed, _ := ev.Data["personalId"].(string)
	if ev.ID != "r1" || len(ev.Data) != 2 || ev.Data["fullName"] != "Trần Minh Khang" || !strings.HasPrefix(hashed, projection.HashPrefix) ||
		strings.Contains(string(got[0].Value), personalID) {
		t.Fatalf("delivered %s", got[0].Value)
	}

	// The delivery's record is in the provider gateway's log.
	subject := f.subjectKey().Subject(personalID)
	var rec *audit.Record
	for deadline := time.Now().Add(5 * time.Second); rec == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		recs, err := audit.ReadFile(f.auditFile[mps])
		if err != nil {
			t.Fatal(err)
		}
		for i := range recs {
			if recs[i].Mode == "feed" && recs[i].Status == 200 {
				rec = &recs[i]
			}
		}
	}
	if rec == nil || rec.Subject != subject || rec.Consumer != insurance || rec.Dataset != "population" ||
		strings.Join(rec.Fields, ",") != "fullName,personalId" || rec.PolicyRevision == "" {
		t.Fatalf("feed record %+v; want subject %s", rec, subject)
	}
	// The counters follow the commit the consumer already read.
	st, ok := f.provider.FeedRouterStats()
	for deadline := time.Now().Add(5 * time.Second); ok && st.Events == 0 && time.Now().Before(deadline); st, _ = f.provider.FeedRouterStats() {
		time.Sleep(10 * time.Millisecond)
	}
	if !ok || st.Events != 1 || st.Deliveries != 1 || st.Lag != 0 {
		t.Errorf("router stats %+v %v", st, ok)
	}
	// The subscriber's lag is exposed as the metric the alert rules watch:
	// caught up, 0.
	want := `lienthong_feed_consumer_lag_events{consumer="` + insurance + `",dataset="population"} 0`
	var exposition string
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(exposition, want) && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		w := httptest.NewRecorder()
		f.provider.Metrics().Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		exposition = w.Body.String()
	}
	if !strings.Contains(exposition, want) {
		t.Errorf("no %s in the provider gateway's metrics", want)
	}
	if _, ok := f.consumer.FeedRouterStats(); ok {
		t.Error("the consumer gateway runs no router, yet reports one")
	}
}

// feeds.router is checked when the gateway starts: a provider of another
// member, or a dataset it does not publish, is refused by name; a misspelt
// key is refused when the file is read.
func TestFeedRouterConfigurationIsChecked(t *testing.T) {
	dir := t.TempDir()
	base := `"member":"000.00.00.G14","system":"VN:GOV:000.00.00.G14:GW","identity":{"keyFile":"k","certFile":"c"},
		"controlPlane":{"url":"https://cp","caFile":"ca"},"outbound":{"listen":"127.0.0.1:0"},"inbound":{"listen":""},
		"stateDir":"s","maskingKeyFile":"m","auditFile":"a","auditSubjectKeyFile":"sk"`
	path := filepath.Join(dir, "typo.json")
	writeFile(t, path, []byte("{"+base+`,"feeds":{"kafka":{"brokers":["127.0.0.1:1"]},"router":{"provder":"x"}}}`))
	if _, err := gateway.LoadConfig(path); err == nil || !strings.Contains(err.Error(), "feeds.router.provder: unknown key") {
		t.Fatalf("typo: %v", err)
	}

	// A second gateway of the provider's member, starting from the state
	// the running one stored (its control plane address is unreachable, so
	// it keeps that state), with a router configured wrongly.
	f := newFederation(t)
	mdir := filepath.Join(f.dir, mps)
	for _, tc := range []struct {
		name string
		rc   gateway.FeedRouterConfig
		want string
	}{
		{"no provider", gateway.FeedRouterConfig{}, "feeds.router.provider: required"},
		{"other member", gateway.FeedRouterConfig{Provider: insurance}, "is not a system of member"},
		{"unknown dataset", gateway.FeedRouterConfig{Provider: population, Datasets: []string{"nothing"}}, `publishes no dataset "nothing"`},
		{"too many lanes", gateway.FeedRouterConfig{Provider: population, Lanes: feed.MaxLanes + 1}, "feeds.router.lanes: 65 is not between 1 and 64"},
		{"negative lanes", gateway.FeedRouterConfig{Provider: population, Lanes: -1}, "feeds.router.lanes: -1"},
		{"lane-like id", gateway.FeedRouterConfig{ID: "router/lane1", Provider: population}, `feeds.router.id: "router/lane1" may not contain "/"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &gateway.Config{Member: mps, System: mpsGW, StateDir: filepath.Join(mdir, "state"),
				MaskingKeyFile: filepath.Join(mdir, "masking.key"), AuditFile: filepath.Join(t.TempDir(), "audit.jsonl"),
				AuditSubjectKeyFile: f.subjectKeyFile(),
				Feeds:               &gateway.FeedsConfig{Kafka: broker.Config{Brokers: []string{"127.0.0.1:1"}}, Router: &tc.rc}}
			cfg.Identity.KeyFile, cfg.Identity.CertFile = filepath.Join(mdir, "key.pem"), filepath.Join(mdir, "cert.pem")
			cfg.ControlPlane.URL, cfg.ControlPlane.CAFile = "https://127.0.0.1:1", filepath.Join(f.dir, "cp-ca.pem")
			sink, err := audit.OpenFile(cfg.AuditFile, audit.Options{Gateway: mpsGW, Key: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))})
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = gateway.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), gateway.WithSink(sink))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestReadyzNamesTheFeedRouterChecks: a gateway running the feed router
// lists the router's checks in its own /readyz, marked not gating, and
// serves them on /readyz/feeds. A broker outage, which pauses the router
// but not queries, turns /readyz/feeds 503 naming feed-router.kafka while
// /readyz stays 200 (showing the failure, not gating); the consumer
// gateway, which runs no router, stays ready.
func TestReadyzNamesTheFeedRouterChecks(t *testing.T) {
	readyzAt := func(t *testing.T, addr, path string) (int, map[string]string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	healthLn := liveListener(t)
	health := healthLn.Addr().String()
	f := newFederationWith(t, func(c *gateway.Config) {
		c.Feeds = &gateway.FeedsConfig{Kafka: broker.Config{Brokers: []string{b.Addr()}},
			Router: &gateway.FeedRouterConfig{Provider: population, MaxBatch: 50}}
	}, gateway.WithHealthListener(healthLn))
	own := []string{"certificate", "audit-log", "configuration", "policy-bundle"}
	feeds := []string{"feed-router.kafka", "feed-router.routing"}
	wait := func(path string, ok func(int, map[string]string) bool) map[string]string {
		t.Helper()
		var status int
		var body map[string]string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if status, body = readyzAt(t, health, path); ok(status, body) {
				return body
			}
		}
		t.Fatalf("%s never showed what was wanted; last %d %v", path, status, body)
		return nil
	}
	wait("/readyz", func(status int, body map[string]string) bool {
		for _, name := range own {
			if body[name] != "ok" {
				return false
			}
		}
		for _, name := range feeds {
			if body[name] != opsmux.NotGating+"ok" {
				return false
			}
		}
		return status == http.StatusOK && len(body) == len(own)+len(feeds)
	})
	if status, body := readyzAt(t, health, "/readyz/feeds"); status != http.StatusOK || len(body) != 2 ||
		body["feed-router.kafka"] != "ok" || body["feed-router.routing"] != "ok" {
		t.Errorf("/readyz/feeds of a routing router: %d %v, want 200 and its two checks ok", status, body)
	}
	if got := f.provider.Readiness(); len(got) != len(own)+len(feeds) {
		t.Errorf("%d checks, want %v and %v", len(got), own, feeds)
	}
	b.Close()
	wait("/readyz/feeds", func(status int, body map[string]string) bool {
		return status == http.StatusServiceUnavailable && strings.Contains(body["feed-router.kafka"], "does not answer")
	})
	status, body := readyzAt(t, health, "/readyz")
	if status != http.StatusOK || !strings.HasPrefix(body["feed-router.kafka"], opsmux.NotGating) ||
		!strings.Contains(body["feed-router.kafka"], "does not answer") {
		t.Errorf("/readyz with the broker down: %d %v, want 200 listing feed-router.kafka failing, not gating", status, body)
	}
	for _, name := range own {
		if body[name] != "ok" {
			t.Errorf("the broker is down, but %s fails too: %s", name, body[name])
		}
	}
	if _, ok := f.consumer.FeedRouterStats(); ok {
		t.Error("the consumer gateway runs no router, yet reports one")
	}
	for _, c := range f.consumer.Readiness() {
		if c.Err != nil {
			t.Errorf("the consumer gateway, which runs no router, fails %s: %v", c.Name, c.Err)
		}
	}
}
