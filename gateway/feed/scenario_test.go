package feed

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/adapters/postgres"
	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/policies"
)

// The systems of Project 06's two joint public services.
const (
	civilRegistry = "VN:GOV:000.00.00.G05:HTTTHT" // Ministry of Justice
	populationDB  = "VN:GOV:000.00.00.G01:CSDLDC" // Ministry of Public Security
	residenceDB   = "VN:GOV:000.00.00.G01:CSDLCT" // Ministry of Public Security
	socialIns     = "VN:GOV:000.00.00.G14:CSDLBH" // Vietnam Social Security
)

// TestJointServicesRunOnFeeds runs both joint services across three
// agencies on the example datasets, each agency's system a small program
// that acts only on what its feed delivers; which fields reach it comes
// from the grants below, never from the programs:
//
//  1. birth registered (civil registry) → the population database issues
//     the child's personal ID and publishes it → the residence system
//     registers permanent residence, Social Insurance issues the under-six
//     health-insurance card;
//  2. death registered → the population database publishes the removal of
//     permanent residence → the residence system removes it, Social
//     Insurance pays the funeral allowance.
func TestJointServicesRunOnFeeds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kafka := broker.Config{Brokers: []string{b.Addr()}}
	docs := map[string][]byte{}
	for _, name := range []string{"birth-registration", "death-registration", "population"} {
		if docs[name], err = os.ReadFile(filepath.Join("..", "..", "examples", name+".yaml")); err != nil {
			t.Fatal(err)
		}
	}
	dataset := func(provider, name string) *Dataset {
		ds, err := NewDataset(ctx, provider, docs[name])
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	birthDS, deathDS, popDS := dataset(civilRegistry, "birth-registration"), dataset(civilRegistry, "death-registration"), dataset(populationDB, "population")
	// Each agency's router runs its own gateway's core.
	justiceCore, securityCore := scenarioCore(t, docs, birthDS, deathDS), scenarioCore(t, docs, popDS)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var routers []*Router
	for _, r := range []RouterConfig{
		{ID: "router-G05", Core: justiceCore, Kafka: kafka, Datasets: []*Dataset{birthDS, deathDS}, Log: quiet},
		{ID: "router-G01", Core: securityCore, Kafka: kafka, Datasets: []*Dataset{popDS}, Log: quiet},
	} {
		router, err := NewRouter(r)
		if err != nil {
			t.Fatal(err)
		}
		routers = append(routers, router)
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = router.Run(rctx); close(done) }()
		defer func() { stop(); <-done }()
	}
	civilOut := publisherFor(t, kafka, birthDS, deathDS)
	popOut := publisherFor(t, kafka, popDS)

	// What each program received, by event type: the field paths.
	var mu sync.Mutex
	received := map[string]map[string]bool{}
	note := func(who, typ string, data map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		k := who + " " + typ
		if received[k] == nil {
			received[k] = map[string]bool{}
		}
		for _, p := range leafPaths("", data) {
			received[k][p] = true
		}
	}

	// The population database: its own records, and its program.
	mother := map[string]any{"personalId": "001190012345", "fullName": "Trần Thị Mai", "dateOfBirth": "1990-04-02", "sex": "female",
		"permanentResidence": map[string]any{"provinceCode": "01", "wardCode": "00004", "addressLine": "12 Hàng Bạc, Hoàn Kiếm"}}
	elder := map[string]any{"personalId": "001045000123", "fullName": "Nguyễn Văn Thọ", "dateOfBirth": "1945-08-19", "sex": "male",
		"permanentResidence": map[string]any{"provinceCode": "01", "wardCode": "00007", "addressLine": "3 Hàng Đào, Hoàn Kiếm"}}
	citizens := map[string]map[string]any{"001190012345": mother, "001045000123": elder}
	go consume(ctx, t, kafka, populationDB, []string{broker.DeliverTopic(populationDB, civilRegistry, "birth-registration"),
		broker.DeliverTopic(populationDB, civilRegistry, "death-registration")}, func(typ string, data map[string]any) {
		note("population", typ, data)
		var out map[string]any
		var outType string
		switch typ {
		case "vn.gov.civilstatus.birth.registered":
			child, _ := data["child"].(map[string]any)
			mom, _ := data["mother"].(map[string]any)
			place, _ := child["placeOfBirth"].(map[string]any)
			sexDigit := "2"
			if child["sex"] == "female" {
				sexDigit = "3"
			}
			var r [3]byte
			_, _ = rand.Read(r[:])
			id := fmt.Sprintf("0%s%s%s%06d", place["provinceCode"], sexDigit, strings.TrimPrefix(child["dateOfBirth"].(string)[:4], "20"), (int(r[0])<<16|int(r[1])<<8|int(r[2]))%1000000)
			mrec := citizens[mom["personalId"].(string)]
			out = map[string]any{"personalId": id, "fullName": child["fullName"], "dateOfBirth": child["dateOfBirth"], "sex": child["sex"],
				"birthRegistrationPlace": map[string]any{"provinceCode": place["provinceCode"]},
				"mother":                 map[string]any{"personalId": mom["personalId"], "fullName": mom["fullName"]},
				"permanentResidence":     mrec["permanentResidence"]}
			citizens[id], outType = out, "vn.gov.population.personal-id.issued"
		case "vn.gov.civilstatus.death.registered":
			d, _ := data["deceased"].(map[string]any)
			rec := maps.Clone(citizens[d["personalId"].(string)])
			rec["dateOfDeath"] = d["dateOfDeath"]
			out, outType = rec, "vn.gov.population.permanent-residence.removed"
		}
		publish(ctx, t, popOut, populationDB, "population", outType, out["personalId"].(string), out)
	})

	// The residence system and Social Insurance.
	residents := map[string]string{"001045000123": "3 Hàng Đào, Hoàn Kiếm"}
	removed := map[string]string{}
	cards, funeral := map[string]map[string]any{}, map[string]string{}
	go consume(ctx, t, kafka, residenceDB, []string{broker.DeliverTopic(residenceDB, populationDB, "population")}, func(typ string, data map[string]any) {
		note("residence", typ, data)
		mu.Lock()
		defer mu.Unlock()
		res, _ := data["permanentResidence"].(map[string]any)
		id := data["personalId"].(string)
		if typ == "vn.gov.population.personal-id.issued" {
			residents[id] = fmt.Sprint(res["addressLine"])
		} else {
			delete(residents, id)
			removed[id] = fmt.Sprint(data["dateOfDeath"])
		}
	})
	go consume(ctx, t, kafka, socialIns, []string{broker.DeliverTopic(socialIns, populationDB, "population")}, func(typ string, data map[string]any) {
		note("insurance", typ, data)
		mu.Lock()
		defer mu.Unlock()
		id := data["personalId"].(string)
		if typ == "vn.gov.population.personal-id.issued" {
			born, _ := time.Parse("2006-01-02", data["dateOfBirth"].(string))
			if time.Since(born) < 6*365*24*time.Hour {
				cards[id] = data
			}
		} else if d, ok := data["dateOfDeath"].(string); ok {
			funeral[id] = d
		}
	})

	// The civil registry registers a birth and a death.
	publish(ctx, t, civilOut, civilRegistry, "birth-registration", "vn.gov.civilstatus.birth.registered", "8f14e45f-ceea-4e7a-9b0e-2f6a1c3d9e01", map[string]any{
		"registrationId": "8f14e45f-ceea-4e7a-9b0e-2f6a1c3d9e01", "registrationNumber": "125/2026", "registeredAt": "2026-02-27",
		"registrationOffice": map[string]any{"code": "00004", "name": "UBND phường Hoàn Kiếm"},
		"child": map[string]any{"fullName": "Trần Minh Khang", "dateOfBirth": "2026-02-20", "sex": "male", "ethnicity": "01",
			"placeOfBirth": map[string]any{"provinceCode": "01", "facilityName": "Bệnh viện Phụ sản Hà Nội"}},
		"mother": map[string]any{"personalId": "001190012345", "fullName": "Trần Thị Mai", "ethnicity": "01"},
	})
	publish(ctx, t, civilOut, civilRegistry, "death-registration", "vn.gov.civilstatus.death.registered", "c9f0f895-fb98-4b91-9c2a-0d6c2b7e5a11", map[string]any{
		"registrationId": "c9f0f895-fb98-4b91-9c2a-0d6c2b7e5a11", "registrationNumber": "33/2026", "registeredAt": "2026-03-02",
		"deceased": map[string]any{"personalId": "001045000123", "fullName": "Nguyễn Văn Thọ", "dateOfDeath": "2026-03-01",
			"placeOfDeath": "Hà Nội", "causeOfDeath": "bệnh tim"},
	})

	var childID string
	for ctx.Err() == nil {
		mu.Lock()
		doneNow := len(cards) == 1 && len(funeral) == 1 && len(removed) == 1 && len(residents) == 1
		for id := range cards {
			childID = id
		}
		mu.Unlock()
		if doneNow {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(childID) != 12 || !strings.HasPrefix(childID, "001226") {
		t.Fatalf("the child's personal ID %q: want 001 (Hà Nội) 2 (2000s, male) 26 (born 2026) + 6 digits; cards %v", childID, cards)
	}
	if residents[childID] != "12 Hàng Bạc, Hoàn Kiếm" {
		t.Errorf("the child's permanent residence: %q (residents %v)", residents[childID], residents)
	}
	if removed["001045000123"] != "2026-03-01" || funeral["001045000123"] != "2026-03-01" {
		t.Errorf("death: residence removed %v, funeral allowance %v", removed, funeral)
	}
	want := map[string][]string{
		"population vn.gov.civilstatus.birth.registered": {"child.dateOfBirth", "child.fullName", "child.placeOfBirth.provinceCode", "child.sex",
			"mother.fullName", "mother.personalId", "registrationNumber"},
		"population vn.gov.civilstatus.death.registered": {"deceased.dateOfDeath", "deceased.personalId"},
		"residence vn.gov.population.personal-id.issued": {"dateOfBirth", "fullName", "mother.personalId", "permanentResidence.addressLine",
			"permanentResidence.provinceCode", "permanentResidence.wardCode", "personalId"},
		"residence vn.gov.population.permanent-residence.removed": {"dateOfBirth", "dateOfDeath", "fullName", "permanentResidence.addressLine",
			"permanentResidence.provinceCode", "permanentResidence.wardCode", "personalId"},
		"insurance vn.gov.population.personal-id.issued":          {"dateOfBirth", "fullName", "permanentResidence.provinceCode", "personalId", "sex"},
		"insurance vn.gov.population.permanent-residence.removed": {"dateOfBirth", "dateOfDeath", "fullName", "permanentResidence.provinceCode", "personalId", "sex"},
	}
	for k, fields := range want {
		got := slices.Sorted(maps.Keys(received[k]))
		if !slices.Equal(got, fields) {
			t.Errorf("%s received %v; its grant allows %v", k, got, fields)
		}
	}
	// The routers' counters: each event routed once, each delivery counted,
	// no backlog. The civil registry's two events go to the population
	// database; the population database's two to residence and insurance.
	want2 := []RouterStats{{Events: 2, Deliveries: 2}, {Events: 2, Deliveries: 4}}
	for i, r := range routers {
		var st RouterStats
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if st = r.Stats(); st.Events == want2[i].Events && st.Deliveries == want2[i].Deliveries {
				break
			}
		}
		if st.Events != want2[i].Events || st.Deliveries != want2[i].Deliveries || st.DeadLetters != 0 || st.Lag != 0 || st.Batches < 1 {
			t.Errorf("router %d stats %+v; want %d events, %d deliveries, no dead letter, no lag", i, st, want2[i].Events, want2[i].Deliveries)
		}
	}
}

// scenarioGrants are the feed grants of the joint services: each hop's
// fields.
func scenarioGrants(now time.Time) []catalog.Grant {
	g := func(id, consumer, provider, dataset, purpose string, fields ...string) catalog.Grant {
		gf := make([]catalog.GrantedField, len(fields))
		for i, f := range fields {
			gf[i] = catalog.GrantedField{Path: f}
		}
		return catalog.Grant{ID: id, Consumer: consumer, Provider: provider, Dataset: dataset, Fields: gf,
			Purposes: []catalog.Purpose{{Code: purpose}}, LegalBasis: catalog.LegalBasis{Reference: "Nghị định 63/2024/NĐ-CP (liên thông thủ tục hành chính)"},
			Modes: []catalog.Mode{catalog.ModeFeed}, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour), State: catalog.GrantActive}
	}
	return []catalog.Grant{
		g("g-birth-pop", populationDB, civilRegistry, "birth-registration", "1.001193",
			"registrationNumber", "child.fullName", "child.dateOfBirth", "child.sex", "child.placeOfBirth.provinceCode", "mother.personalId", "mother.fullName"),
		g("g-death-pop", populationDB, civilRegistry, "death-registration", "1.000656", "deceased.personalId", "deceased.dateOfDeath"),
		g("g-pop-residence", residenceDB, populationDB, "population", "1.004222",
			"personalId", "fullName", "dateOfBirth", "permanentResidence", "mother.personalId", "dateOfDeath"),
		g("g-pop-insurance", socialIns, populationDB, "population", "1.002045",
			"personalId", "fullName", "dateOfBirth", "sex", "permanentResidence.provinceCode", "dateOfDeath"),
	}
}

func scenarioCore(t *testing.T, docs map[string][]byte, ds ...*Dataset) *exchange.Core {
	t.Helper()
	now := time.Now()
	var datasets []catalog.Dataset
	for name, provider := range map[string]string{"birth-registration": civilRegistry, "death-registration": civilRegistry, "population": populationDB} {
		d, err := catalog.LoadDocument(context.Background(), docs[name])
		if err != nil {
			t.Fatal(err)
		}
		datasets = append(datasets, catalog.Dataset{System: provider, Code: d.Code, Version: 1, RecordSchema: d.RecordSchema, MinConsumerLevel: 3, Fields: d.Fields})
	}
	var systems []catalog.System
	for _, id := range []string{civilRegistry, populationDB, residenceDB, socialIns} {
		systems = append(systems, catalog.System{ID: id, Name: id, SecurityLevel: 3,
			Assessment: &catalog.Assessment{Level: 4, AssessedBy: "A05", Reference: "QĐ 1", ValidUntil: now.Add(365 * 24 * time.Hour)}})
	}
	snap, err := policies.BuildData(systems, datasets, scenarioGrants(now), nil)
	if err != nil {
		t.Fatal(err)
	}
	snap.Revision = "1"
	return testCore(t, snap, ds...)
}

func publisherFor(t *testing.T, kafka broker.Config, ds ...*Dataset) *OutboxPublisher {
	t.Helper()
	p, err := NewOutboxPublisher(kafka, ds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// publish writes one checked event through the publisher, as a provider's
// outbox relay would.
func publish(ctx context.Context, t *testing.T, p *OutboxPublisher, source, dataset, typ, subject string, data map[string]any) {
	raw, _ := json.Marshal(data)
	ev := fmt.Sprintf(`{"specversion":"1.0","id":"%s-%d","source":%q,"type":%q,"subject":%q,"time":%q,"data":%s}`,
		typ, time.Now().UnixNano(), source, typ, subject, time.Now().UTC().Format(time.RFC3339), raw)
	if err := p.Publish(ctx, []postgres.OutboxRow{{Dataset: dataset, Event: []byte(ev)}}); err != nil {
		t.Error(err)
	}
}

// consume runs one agency's program over its feed topics.
func consume(ctx context.Context, t *testing.T, kafka broker.Config, system string, topics []string, handle func(typ string, data map[string]any)) {
	opts, _ := kafka.Options()
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topics...), kgo.ConsumerGroup(system), kgo.AllowAutoTopicCreation(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var ev struct {
				Type string
				Data map[string]any
			}
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Errorf("%s: undecodable delivery", system)
				return
			}
			handle(ev.Type, ev.Data)
		})
	}
}

// leafPaths lists the dotted paths of the leaves of a decoded record.
func leafPaths(prefix string, v map[string]any) []string {
	var out []string
	for k, x := range v {
		if m, ok := x.(map[string]any); ok {
			out = append(out, leafPaths(prefix+k+".", m)...)
			continue
		}
		out = append(out, prefix+k)
	}
	return out
}

// testAuditOptions is a router's hash-chained log with a fixed test key.
func testAuditOptions() audit.Options {
	return audit.Options{Gateway: "router-test", Key: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}
}
