package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
	outbound := freeAddr(t)
	f := newFederationWith(t, func(c *gateway.Config) {
		c.Outbound.Listen = outbound
		c.Feeds = &gateway.FeedsConfig{Kafka: broker.Config{Brokers: []string{b.Addr()}}, DeliveryTimeout: gateway.Duration{Duration: 2 * time.Second}}
	})
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
