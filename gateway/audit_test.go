package gateway_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/gateway"
)

// heldSink is an in-memory audit sink whose intent records become durable
// only when the test says so (or fail, when it says that): it stands for a
// slow or failing disk, which a real file cannot be made to be on demand.
// Outcome records settle at once.
type heldSink struct {
	mu      sync.Mutex
	records []audit.Record
	release chan struct{}
	loseAll error
	// refuseOutcomes and refuseIntents turn those records away at once, as
	// a closed or failed sink does.
	refuseOutcomes, refuseIntents bool
}

func newHeldSink() *heldSink { return &heldSink{release: make(chan struct{})} }

func (s *heldSink) Submit(r *audit.Record, _ audit.Commit) *audit.Receipt {
	s.mu.Lock()
	s.records = append(s.records, *r)
	s.mu.Unlock()
	if r.Phase == audit.Intent && s.refuseIntents {
		return audit.Refused(errors.New("sink failed"))
	}
	rc := audit.NewReceipt()
	if r.Phase != audit.Intent {
		if s.refuseOutcomes {
			return audit.Refused(errors.New("sink closed"))
		}
		rc.Settle(nil)
		return rc
	}
	go func() {
		<-s.release
		rc.Settle(s.loseAll)
	}()
	return rc
}

func (s *heldSink) snapshot() []audit.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

// No answer leaves either gateway before the exchange's intent record is
// durable; once it is, the answer follows, and each gateway's log holds the
// intent (with the fields the decision allowed) before the outcome.
func TestNoAnswerBeforeIntentIsDurable(t *testing.T) {
	sink := newHeldSink()
	f := newFederationFull(t, 0, nil, []gateway.Option{gateway.WithSink(sink)}, []gateway.Option{gateway.WithSink(sink)})
	done := make(chan answer, 1)
	go func() { done <- f.get(f.systemClient(insurance), recordPath+citizenID, purposeHeader()) }()
	select {
	case a := <-done:
		t.Fatalf("answered %d before the intent record was durable: %s", a.status, a.raw)
	case <-time.After(300 * time.Millisecond):
	}
	close(sink.release)
	var a answer
	select {
	case a = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after the intent records became durable")
	}
	if a.status != http.StatusOK {
		t.Fatalf("after release: %d %s", a.status, a.raw)
	}
	id := a.header.Get(gateway.HeaderExchangeID)
	phases := map[string][]audit.Phase{}
	for _, r := range sink.snapshot() {
		if r.ExchangeID != id {
			continue
		}
		phases[r.Side] = append(phases[r.Side], r.Phase)
		if r.Side == "provider" && r.Phase == audit.Intent && (!slices.Contains(r.Fields, "fullName") || slices.Contains(r.Fields, "religion")) {
			t.Errorf("provider intent names fields %v, want the decision's", r.Fields)
		}
		if r.Phase == audit.Outcome && r.Status != http.StatusOK {
			t.Errorf("%s outcome status %d", r.Side, r.Status)
		}
	}
	want := []audit.Phase{audit.Intent, audit.Outcome}
	if !slices.Equal(phases["consumer"], want) || !slices.Equal(phases["provider"], want) {
		t.Fatalf("records of exchange %s by side: %v, want intent then outcome on both", id, phases)
	}
}

// An intent record that is lost (the disk failed), or an outcome the sink
// turns away, stops the answer: the consumer receives a problem, never the
// data.
func TestLostRecordStopsTheAnswer(t *testing.T) {
	for _, tc := range []struct {
		name string
		sink func(*heldSink)
	}{
		{"intent lost", func(s *heldSink) { s.loseAll = errors.New("I/O error") }},
		{"outcome refused", func(s *heldSink) { s.refuseOutcomes = true }},
		{"intent refused", func(s *heldSink) { s.refuseIntents = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := newHeldSink()
			tc.sink(sink)
			close(sink.release)
			f := newFederationFull(t, 0, nil, []gateway.Option{gateway.WithSink(sink)}, []gateway.Option{gateway.WithSink(sink)})
			a := f.get(f.systemClient(insurance), recordPath+citizenID, purposeHeader())
			if a.status != http.StatusServiceUnavailable || strings.Contains(a.raw, "Nguyễn") || !strings.Contains(a.raw, "audit-unavailable") {
				t.Fatalf("answer whose record was lost: %d %s", a.status, a.raw)
			}
			// A log that refuses intents at once stops the exchange before
			// anything is forwarded or fetched.
			if n := f.backendCalls.Load(); sink.refuseIntents && n != 0 {
				t.Fatalf("the backend was called %d times with the log refusing records", n)
			}
		})
	}
}

func TestBothGatewaysAuditEveryExchange(t *testing.T) {
	f := newFederation(t)
	c := f.systemClient(insurance)
	ok := f.get(c, recordPath+citizenID, purposeHeader())
	denied := f.get(c, recordPath+citizenID+"?fields=religion", purposeHeader())
	okID, deniedID := ok.header.Get(gateway.HeaderExchangeID), denied.header.Get(gateway.HeaderExchangeID)
	for member, file := range f.auditFile {
		// Outcome records are made durable by the sink's next commit, a
		// moment after the answer: wait for them, within bounds.
		var recs []audit.Record
		deadline := time.Now().Add(5 * time.Second)
		for {
			recs = readAudit(t, file)
			if countOutcomes(recs, okID, deniedID) == 2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		got := map[string][]string{}
		for _, r := range recs {
			got[r.ExchangeID] = append(got[r.ExchangeID], fmtRecord(r))
		}
		// The allowed exchange: an intent, then its outcome. The denied one
		// never reached the backend (provider) but was forwarded (consumer).
		if w := []string{"intent:0", "outcome:200"}; !slices.Equal(got[okID], w) {
			t.Errorf("%s: allowed exchange recorded as %v, want %v", member, got[okID], w)
		}
		wantDenied := []string{"outcome:403"}
		if member == vss {
			wantDenied = []string{"intent:0", "outcome:403"}
		}
		if !slices.Equal(got[deniedID], wantDenied) {
			t.Errorf("%s: denied exchange recorded as %v, want %v", member, got[deniedID], wantDenied)
		}
	}
}

func fmtRecord(r audit.Record) string { return string(r.Phase) + ":" + strconv.Itoa(r.Status) }

func countOutcomes(recs []audit.Record, ids ...string) int {
	n := 0
	for _, r := range recs {
		if r.Phase == audit.Outcome && slices.Contains(ids, r.ExchangeID) {
			n++
		}
	}
	return n
}

// readAudit reads an audit file and fails on any record that holds a clear
// record id or value.
func readAudit(t *testing.T, file string) []audit.Record {
	t.Helper()
	recs, err := audit.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		line, _ := json.Marshal(r)
		if strings.Contains(string(line), citizenID) || strings.Contains(string(line), "Nguyễn") {
			t.Errorf("%s: audit record holds a clear id or value: %s", file, line)
		}
	}
	return recs
}
