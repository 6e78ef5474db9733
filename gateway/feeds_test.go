package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/gateway"
	"github.com/lienthong/lienthong/gateway/feed/broker"
)

const personalIDIssued = "vn.gov.population.personal-id.issued"

func citizenEvent(id, personalID string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":%q,"type":%q,"subject":%q,"time":"2026-03-01T08:00:00Z",`+
		`"data":{"personalId":%q,"fullName":"Trần Minh Khang","dateOfBirth":"2026-02-20","sex":"male"}}`, id, population, personalIDIssued, personalID, personalID)
}

// TestPublishRefusesAndAcknowledgesOnlyWhatKafkaHolds posts batches to the
// provider gateway's outbound listener: a valid batch is 202 and in Kafka;
// a batch with one bad event is refused whole with the event's index and
// JSON pointer; an undeclared type, another system, an oversized batch are
// refused; with the broker gone the answer is 503 with Retry-After.
func TestPublishRefusesAndAcknowledgesOnlyWhatKafkaHolds(t *testing.T) {
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	outboundLn := liveListener(t) // the provider gateway's outbound door, handed in live
	outbound := outboundLn.Addr().String()
	f := newFederationWith(t, func(c *gateway.Config) {
		c.Feeds = &gateway.FeedsConfig{Kafka: broker.Config{Brokers: []string{b.Addr()}}, DeliveryTimeout: gateway.Duration{Duration: 2 * time.Second}}
	}, gateway.WithListeners(outboundLn, nil))
	f.outbound = outbound // calls below go to the provider gateway's outbound door
	publisher := f.systemClient(population)
	post := func(c *http.Client, body string) answer {
		t.Helper()
		a, err := f.call(c, http.MethodPost, "/feeds/population/events", nil, body)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	topic := broker.PublishTopic(population, "population")

	if a := post(publisher, "["+citizenEvent("e1", "001226000001")+","+citizenEvent("e2", "001226000002")+"]"); a.status != http.StatusAccepted {
		t.Fatalf("valid batch: %d %s", a.status, a.raw)
	}
	pointerOf := func(a answer) string {
		errs, _ := a.body["errors"].([]any)
		if len(errs) == 0 {
			return ""
		}
		p, _ := errs[0].(map[string]any)["pointer"].(string)
		return p
	}
	refusals := []struct {
		name    string
		client  *http.Client
		body    string
		status  int
		pointer string
	}{
		{"invalid second event", publisher, "[" + citizenEvent("e3", "001226000003") + "," + citizenEvent("e4", "12") + "]", 422, "/1/data/personalId"},
		{"undeclared type", publisher, "[" + strings.Replace(citizenEvent("e5", "001226000005"), personalIDIssued, "vn.gov.population.citizen.moved", 1) + "]", 422, "/0/type"},
		{"other source", publisher, "[" + strings.Replace(citizenEvent("e6", "001226000006"), `"source":"`+population, `"source":"`+insurance, 1) + "]", 422, "/0/source"},
		{"not an array", publisher, citizenEvent("e7", "001226000007"), 400, ""},
		{"too many", publisher, "[" + strings.Repeat(citizenEvent("e8", "001226000008")+",", gateway.MaxEventsPerBatch) + citizenEvent("e9", "001226000009") + "]", 400, ""},
		{"another system", f.systemClient(insurance), "[" + citizenEvent("e10", "001226000010") + "]", 403, ""},
	}
	for _, c := range refusals {
		a := post(c.client, c.body)
		if a.status != c.status || pointerOf(a) != c.pointer {
			t.Errorf("%s: %d %s; want %d at %q", c.name, a.status, a.raw, c.status, c.pointer)
		}
		if strings.Contains(a.raw, "001226") {
			t.Errorf("%s: the refusal quotes a value: %s", c.name, a.raw)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics(topic))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	var ids []string
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { ids = append(ids, string(r.Key)) })
	}
	cancel()
	cl.Close()
	if strings.Join(ids, ",") != "001226000001,001226000002" {
		t.Fatalf("the topic holds %v; want only the accepted batch", ids)
	}

	b.Close()
	a := post(publisher, "["+citizenEvent("e11", "001226000011")+"]")
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Fatalf("broker down: %d %s (Retry-After %q)", a.status, a.raw, a.header.Get("Retry-After"))
	}
}

// TestFeedStreamResumesWithLastEventID reads a system's feed as
// Server-Sent Events, disconnects after a few events, and resumes with
// Last-Event-ID: every event arrives exactly once across both connections.
func TestFeedStreamResumesWithLastEventID(t *testing.T) {
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	outboundLn := liveListener(t) // the provider gateway's outbound door, handed in live
	outbound := outboundLn.Addr().String()
	f := newFederationWith(t, func(c *gateway.Config) {
		c.Feeds = &gateway.FeedsConfig{Kafka: broker.Config{Brokers: []string{b.Addr()}}}
	}, gateway.WithListeners(outboundLn, nil))
	f.outbound = outbound
	reader := f.systemClient(population)
	topic := broker.DeliverTopic(population, insurance, "insured-persons")
	prod, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr())}, broker.ProducerOptions()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			v := fmt.Sprintf(`{"id":"ev-%d","subject":"s-%d","data":{"n":%d}}`, i, i%4, i)
			if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint("s-", i%4)), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 10)

	seen := map[string]int{}
	lastSeq := map[string]int{}
	read := func(lastID string, n int) string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+outbound+"/feeds/"+insurance+"/insured-persons", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := reader.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		sc := bufio.NewScanner(resp.Body)
		id := ""
		for got := 0; got < n && sc.Scan(); {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				var ev struct {
					ID, Subject string
					Data        struct{ N int }
				}
				if err := json.Unmarshal([]byte(v), &ev); err != nil {
					t.Fatalf("data line: %v", err)
				}
				seen[ev.ID]++
				if prev, ok := lastSeq[ev.Subject]; ok && ev.Data.N <= prev {
					t.Errorf("subject %s out of order: %d after %d", ev.Subject, ev.Data.N, lastSeq[ev.Subject])
				}
				lastSeq[ev.Subject] = ev.Data.N
				got++
			}
		}
		return id
	}
	last := read("", 4)
	produce(10, 15)
	read(last, 11)
	for i := 0; i < 15; i++ {
		if n := seen[fmt.Sprint("ev-", i)]; n != 1 {
			t.Errorf("ev-%d seen %d times", i, n)
		}
	}

	// The gateway recorded each streamed event before passing it on (the
	// sink's receipts were waited for; ReadFile sees what is durable).
	recs, err := audit.ReadFile(f.auditFile[mps])
	if err != nil {
		t.Fatal(err)
	}
	streamed := 0
	for _, r := range recs {
		if r.Side == "consumer" && r.Mode == "feed" && r.Consumer == population && r.Provider == insurance && r.Dataset == "insured-persons" {
			streamed++
		}
	}
	if streamed < 15 {
		t.Errorf("%d streamed events in the audit log, want at least 15", streamed)
	}

	bad := []struct {
		path, lastID string
		status       int
	}{
		{"/feeds/" + insurance + "/insured-persons", "0:1,zz", 400},
		{"/feeds/" + insurance + "/insured-persons", "0:1,0:2", 400},
		{"/feeds/" + insurance + "/no-such-feed", "", 404},
	}
	for _, c := range bad {
		a, err := f.call(reader, http.MethodGet, c.path, map[string]string{"Last-Event-ID": c.lastID}, "")
		if err != nil || a.status != c.status {
			t.Errorf("%s %q: %d %s %v; want %d", c.path, c.lastID, a.status, a.raw, err, c.status)
		}
	}
}
