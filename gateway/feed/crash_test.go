package feed

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/gateway/projection"
)

// received is one consumer's view of its topic.
type received struct {
	ids      map[string]int
	lastSeq  map[string]int
	revision map[string]string // event id -> revision that decided it
	bad      []string
}

// TestRouterSurvivesKillsExactlyOnce starts the router as a separate
// process and SIGKILLs it at random moments while 5,000 events flow to
// three consumers with different grants, restarting it each time. The
// broker runs in this process and outlives every router. It then reads
// every consumer topic (read_committed) and checks: each entitled event
// exactly once, per-subject order, only granted and masked fields, no
// invalid event delivered, and nothing for the consumer whose grant was
// revoked once a revision without it decided.
func TestRouterSurvivesKillsExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	const (
		subjects = 500
		perSubj  = 10
		kills    = 6
		invalid  = 10
	)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w := newWorld(t, []string{b.Addr()})
	topic := broker.PublishTopic(provider, "vital-events")

	// Publish: subjects × perSubj events in per-subject order, some invalid,
	// in chunks so they keep flowing while the router is killed.
	prod := newClient(t, b.Addr())
	defer prod.Close()
	published := make(chan error, 1)
	revoked := make(chan struct{})
	province := func(s int) string {
		if s%3 == 0 {
			return "01"
		}
		return "79"
	}
	go func() {
		var recs []*kgo.Record
		for seq := 1; seq <= perSubj; seq++ {
			for s := 0; s < subjects; s++ {
				subj := fmt.Sprintf("KS-%05d", s)
				data := fmt.Sprintf(`{"registrationId":%q,"seq":%d,"province":%q,"child":{"fullName":"Nguyễn Văn %05d","personalId":"0012250%05d","ethnicity":"01"}}`, subj, seq, province(s), s, s)
				ev := fmt.Sprintf(`{"specversion":"1.0","id":"%s-%d","source":%q,"type":%q,"subject":%q,"time":"2026-03-01T08:00:00Z","data":%s}`, subj, seq, provider, birthType, subj, data)
				recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(subj), Value: []byte(ev)})
			}
		}
		for i := 0; i < invalid; i++ {
			subj := fmt.Sprintf("BAD-%d", i)
			ev := fmt.Sprintf(`{"specversion":"1.0","id":"bad-%d","source":%q,"type":%q,"subject":%q,"time":"2026-03-01T08:00:00Z","data":{"seq":"x"}}`, i, provider, birthType, subj)
			at := (i + 1) * len(recs) / (invalid + 1)
			recs = append(recs[:at], append([]*kgo.Record{{Topic: topic, Key: []byte(subj), Value: []byte(ev)}}, recs[at:]...)...)
		}
		half := len(recs) / 2
		for len(recs) > 0 {
			if len(recs) <= half && half > 0 {
				<-revoked // the second half flows after the revocation was written
				half = 0
			}
			n := min(250, len(recs))
			if err := prod.ProduceSync(ctx, recs[:n]...).FirstErr(); err != nil {
				published <- err
				return
			}
			recs = recs[n:]
			time.Sleep(300 * time.Millisecond)
		}
		published <- nil
	}()

	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envRouterConfig+"="+w.config)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	router := start()
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(300+rand.IntN(900)) * time.Millisecond)
		_ = router.Process.Signal(syscall.SIGKILL)
		_ = router.Wait()
		router = start()
		if k == kills/2 {
			// C's grant is revoked while events flow, once C has had some.
			cTopic := broker.DeliverTopic(consumerC, provider, "vital-events")
			for wait := time.Now(); countTopic(ctx, t, b.Addr(), cTopic) == 0 && time.Since(wait) < 30*time.Second; {
				time.Sleep(100 * time.Millisecond)
			}
			w.publish(t, 2, true)
			close(revoked)
		}
	}
	defer func() {
		_ = router.Process.Signal(syscall.SIGTERM)
		_ = router.Wait()
	}()
	if err := <-published; err != nil {
		t.Fatal(err)
	}

	total := subjects * perSubj
	wantB := 0
	for s := 0; s < subjects; s++ {
		if province(s) == "01" {
			wantB += perSubj
		}
	}
	got := map[string]*received{}
	deadline := time.Now().Add(120 * time.Second)
	for {
		got = readAll(ctx, t, b.Addr())
		if len(got[consumerA].ids) >= total && len(got[consumerB].ids) >= wantB || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for c, r := range got {
		for _, bad := range r.bad {
			t.Errorf("%s: %s", c, bad)
		}
		for id, n := range r.ids {
			if n != 1 {
				t.Errorf("%s received event %s %d times", c, id, n)
			}
			if strings.HasPrefix(id, "bad-") {
				t.Errorf("%s received the invalid event %s", c, id)
			}
		}
	}
	if n := len(got[consumerA].ids); n != total {
		t.Errorf("A received %d distinct events, want %d", n, total)
	}
	if n := len(got[consumerB].ids); n != wantB {
		t.Errorf("B received %d distinct events, want %d (row scope province 01)", n, wantB)
	}
	// Revocation: C holds nothing decided by revision 2, and nothing of an
	// event that follows, in its partition, an event decided by revision 2.
	for id, rev := range got[consumerC].revision {
		if rev != "1" {
			t.Errorf("C received %s under revision %s, after its grant was revoked", id, rev)
		}
	}
	offsets, firstRev2 := sourceOffsets(ctx, t, b.Addr(), topic), map[int32]int64{}
	for _, c := range []string{consumerA, consumerB} {
		for id, rev := range got[c].revision {
			if rev == "2" {
				o := offsets[id]
				if f, ok := firstRev2[o.p]; !ok || o.off < f {
					firstRev2[o.p] = o.off
				}
			}
		}
	}
	if len(firstRev2) == 0 {
		t.Error("no event was decided by revision 2: the revocation came too late to test")
	}
	cAfter := 0
	for id := range got[consumerC].ids {
		o := offsets[id]
		if f, ok := firstRev2[o.p]; ok && o.off > f {
			cAfter++
		}
	}
	if cAfter > 0 {
		t.Errorf("C received %d events that follow the revocation's revision", cAfter)
	}
	if n := len(got[consumerC].ids); n == 0 || n >= total {
		t.Errorf("C received %d events; want some before the revocation and not all", n)
	}
	// C was entitled to exactly the events decided by revision 1 (A holds
	// every event, with the revision that decided its batch): each of them
	// reached C, and nothing else did.
	missedC := 0
	for id, rev := range got[consumerA].revision {
		if rev == "1" && got[consumerC].ids[id] == 0 {
			missedC++
		}
	}
	if missedC > 0 {
		t.Errorf("C missed %d events decided before its grant was revoked", missedC)
	}
	dead := countTopic(ctx, t, b.Addr(), broker.DeadLetterTopic(provider, "vital-events"))
	if dead != invalid {
		t.Errorf("dead-letter topic holds %d events, want the %d invalid ones", dead, invalid)
	}
	// Every delivery is in the audit log the killed routers wrote: its
	// exchange id, consumer, dataset, fields and the revision that decided.
	recs, err := audit.ReadFile(filepath.Join(w.dir, "audit.log"))
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	audited := map[string]bool{}
	// Subjects are named as query records name them: the federation's
	// subject key over the record id, so the audit index finds both.
	subjectKey, named := audit.SubjectKey(testSubjectKey), map[string]bool{}
	for s := 0; s < subjects; s++ {
		named[subjectKey.Subject(fmt.Sprintf("KS-%05d", s))] = true
	}
	for _, r := range recs {
		if r.Status == 200 && r.Mode == "feed" && r.Dataset == "vital-events" && r.Provider == provider && len(r.Fields) > 0 {
			audited[r.ExchangeID+" "+r.PolicyRevision] = true
			if !named[r.Subject] {
				t.Errorf("delivery %s is audited under subject %q, not the subject key's name of its record", r.ExchangeID, r.Subject)
			}
		}
	}
	missing := 0
	for c, r := range got {
		for id, rev := range r.revision {
			if !audited[exchange.FeedExchangeID(provider, id, c)+" "+rev] {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d deliveries have no audit record", missing)
	}
	t.Logf("A %d, B %d, C %d (revoked mid-stream), dead letters %d, kills %d", len(got[consumerA].ids), len(got[consumerB].ids), len(got[consumerC].ids), dead, kills)
}

func newClient(t testing.TB, addr string, more ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts, err := broker.Config{Brokers: []string{addr}}.Options()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(append(opts, broker.ProducerOptions()...), more...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// readAll reads every consumer topic from the start, read_committed, and
// checks each record's fields against its consumer's grant.
func readAll(ctx context.Context, t *testing.T, addr string) map[string]*received {
	t.Helper()
	out := map[string]*received{}
	for _, c := range []string{consumerA, consumerB, consumerC} {
		r := &received{ids: map[string]int{}, lastSeq: map[string]int{}, revision: map[string]string{}}
		out[c] = r
		for _, rec := range drain(ctx, t, addr, broker.DeliverTopic(c, provider, "vital-events")) {
			var ev struct {
				ID, Subject string
				Data        map[string]any
			}
			if err := json.Unmarshal(rec.Value, &ev); err != nil {
				r.bad = append(r.bad, "undecodable record")
				continue
			}
			r.ids[ev.ID]++
			if strings.HasPrefix(ev.Subject, "KS-") {
				r.bad = append(r.bad, "the record id was delivered in clear as the subject")
			}
			for _, h := range rec.Headers {
				if h.Key == HeaderRevision {
					r.revision[ev.ID] = string(h.Value)
				}
			}
			seq := int(ev.Data["seq"].(float64))
			if seq <= r.lastSeq[ev.Subject] && r.ids[ev.ID] == 1 {
				r.bad = append(r.bad, fmt.Sprintf("subject %s: seq %d after %d", ev.Subject, seq, r.lastSeq[ev.Subject]))
			}
			r.lastSeq[ev.Subject] = seq
			if msg := checkFields(c, ev.Data); msg != "" {
				r.bad = append(r.bad, ev.ID+": "+msg)
			}
		}
	}
	return out
}

// checkFields holds a delivered record to exactly its consumer's grant.
func checkFields(consumer string, data map[string]any) string {
	child, _ := data["child"].(map[string]any)
	keys := func(m map[string]any) string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		return strings.Join(sorted(ks), ",")
	}
	switch consumer {
	case consumerA:
		if keys(data) != "child,province,seq" || keys(child) != "fullName" {
			return "fields " + keys(data) + " / " + keys(child)
		}
	case consumerB:
		if keys(data) != "child,seq" || keys(child) != "personalId" {
			return "fields " + keys(data) + " / " + keys(child)
		}
		if id, _ := child["personalId"].(string); !strings.HasPrefix(id, projection.HashPrefix) {
			return "personalId not hashed"
		}
	case consumerC:
		if keys(data) != "child,seq" || keys(child) != "fullName" {
			return "fields " + keys(data) + " / " + keys(child)
		}
		if name, _ := child["fullName"].(string); strings.Contains(name, "Nguyễn") {
			return "fullName not masked"
		}
	}
	return ""
}

func sorted(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

type position struct {
	p   int32
	off int64
}

func sourceOffsets(ctx context.Context, t *testing.T, addr, topic string) map[string]position {
	out := map[string]position{}
	for _, rec := range drain(ctx, t, addr, topic) {
		var ev struct{ ID string }
		_ = json.Unmarshal(rec.Value, &ev)
		out[ev.ID] = position{rec.Partition, rec.Offset}
	}
	return out
}

func countTopic(ctx context.Context, t *testing.T, addr, topic string) int {
	return len(drain(ctx, t, addr, topic))
}

// drain reads a topic from the start, read_committed, until no record
// has come for a second (the callers read once the producers are done).
func drain(ctx context.Context, t *testing.T, addr, topic string) []*kgo.Record {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	var out []*kgo.Record
	for idle := 0; idle < 2 && ctx.Err() == nil; {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r); n++ })
		if n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return out
}
