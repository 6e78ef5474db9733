package exchange_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/projection"
	"github.com/lienthong/lienthong/policies"
)

const (
	trustDomain = "lienthong.test"
	provider    = "VN:GOV:000.00.00.G01:CSDLDC"
	consumer    = "VN:GOV:000.00.00.G14:CSDLBH"
	consumerGW  = "VN:GOV:000.00.00.G14:GW"
	purpose     = "1.001234"
	// maskedPurpose is granted with every field masked one way or another.
	maskedPurpose = "2.000001"
	// feedPurpose is granted in feed mode only.
	feedPurpose = "3.000001"
	citizenID   = "001090000001"
	otherID     = "079195000002"
)

var records = map[string]string{
	citizenID: `{"personalId":"001090000001","fullName":"Nguyễn Văn An","dateOfBirth":"1990-05-01","sex":"male",` +
		`"ethnicity":"01","religion":"Không","permanentResidence":{"provinceCode":"01","wardCode":"00001","addressLine":"12 Hàng Bạc"}}`,
	otherID: `{"personalId":"079195000002","fullName":"Trần Thị Bình","dateOfBirth":"1995-02-03","sex":"female",` +
		`"ethnicity":"01","religion":"Phật giáo","permanentResidence":{"provinceCode":"79","wardCode":"26734","addressLine":"5 Lê Lợi"}}`,
}

// memoryBackend is a dataset's backend held in memory: the core's contract
// with backends is the adapters.Adapter interface, and this test is about
// the core without any network.
type memoryBackend struct{ calls atomic.Int64 }

func (b *memoryBackend) Fetch(_ context.Context, req adapters.Request) (*adapters.Response, error) {
	b.calls.Add(1)
	if req.Path == "citizens" {
		return &adapters.Response{Body: io.NopCloser(strings.NewReader("[" + records[citizenID] + "," + records[otherID] + "]"))}, nil
	}
	rec, ok := records[strings.TrimPrefix(req.Path, "citizens/")]
	if !ok {
		return nil, adapters.ErrNotFound
	}
	return &adapters.Response{Body: io.NopCloser(strings.NewReader(rec))}, nil
}

type source struct {
	snap *exchange.Snapshot
	at   atomic.Pointer[time.Time]
}

func (s *source) Current() (*exchange.Snapshot, time.Time) { return s.snap, *s.at.Load() }

type world struct {
	core     *exchange.Core
	src      *source
	backend  *memoryBackend
	subjects audit.SubjectKey
	masker   *projection.Masker
	auditLog string
	sink     *audit.FileSink
	logs     *lockedBuffer // what the core logged, as JSON lines
	peer     []*x509.Certificate
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	doc, err := os.ReadFile(filepath.Join("..", "..", "examples", "population.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := catalog.LoadDocument(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	ds := catalog.Dataset{System: provider, Code: "population", Version: 1, Fields: d.Fields, RecordSchema: d.RecordSchema, Document: doc, MinConsumerLevel: 3}
	now := time.Now()
	var systems []catalog.System
	for _, id := range []string{provider, consumer, consumerGW} {
		systems = append(systems, catalog.System{ID: id, Name: id, SecurityLevel: 3,
			Assessment: &catalog.Assessment{Level: 4, AssessedBy: "A05", Reference: "QĐ 1", ValidUntil: now.Add(24 * time.Hour)}})
	}
	grant := func(id, purposeCode string, fields ...catalog.GrantedField) catalog.Grant {
		modes := []catalog.Mode{catalog.ModeQuery, catalog.ModeVerify}
		if purposeCode == feedPurpose {
			modes = []catalog.Mode{catalog.ModeFeed}
		}
		return catalog.Grant{ID: id, Consumer: consumer, Provider: provider, Dataset: "population", Fields: fields,
			Purposes: []catalog.Purpose{{Code: purposeCode}}, LegalBasis: catalog.LegalBasis{Reference: "Nghị định 13/2023/NĐ-CP"},
			Modes: modes, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour), State: catalog.GrantActive}
	}
	snap, err := policies.BuildData(systems, []catalog.Dataset{ds}, []catalog.Grant{
		grant("g-plain", purpose, catalog.GrantedField{Path: "personalId", Mask: catalog.MaskHash},
			catalog.GrantedField{Path: "fullName"}, catalog.GrantedField{Path: "dateOfBirth"}, catalog.GrantedField{Path: "sex"}),
		grant("g-masked", maskedPurpose, catalog.GrantedField{Path: "personalId", Mask: catalog.MaskHash},
			catalog.GrantedField{Path: "fullName", Mask: catalog.MaskPartial}, catalog.GrantedField{Path: "dateOfBirth", Mask: catalog.MaskNullify},
			catalog.GrantedField{Path: "sex"}),
		grant("g-feed", feedPurpose, catalog.GrantedField{Path: "personalId", Mask: catalog.MaskHash}, catalog.GrantedField{Path: "fullName"}),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap.Revision, snap.IssuedAt = "7", now
	engine := policies.NewEngine()
	if err := engine.Load(ctx, snap); err != nil {
		t.Fatal(err)
	}
	validator, err := projection.NewValidator(doc, d.RecordSchema)
	if err != nil {
		t.Fatal(err)
	}
	schema, err := projection.LoadSchema(ctx, doc, d.RecordSchema)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{backend: &memoryBackend{}, subjects: audit.SubjectKey(bytes.Repeat([]byte{9}, 32))}
	w.masker, err = projection.NewMasker(bytes.Repeat([]byte{3}, 32), 4)
	if err != nil {
		t.Fatal(err)
	}
	w.src = &source{snap: &exchange.Snapshot{
		Engine: engine, TrustDomain: trustDomain,
		GatewayMember: map[string]string{consumerGW: "000.00.00.G14"}, RevokedSystem: map[string]bool{},
		Datasets: map[string]*exchange.Dataset{provider + "/population": {Catalog: &ds, Validator: validator, Partial: validator, Schema: schema}},
	}}
	w.src.at.Store(&now)
	w.auditLog = filepath.Join(t.TempDir(), "audit.jsonl")
	if w.sink, err = audit.OpenFile(w.auditLog, audit.Options{Gateway: provider, Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.sink.Close() })
	w.logs = &lockedBuffer{}
	w.core, err = exchange.New(exchange.Config{
		Member: "000.00.00.G01", Source: w.src, Log: slog.New(slog.NewJSONHandler(w.logs, nil)),
		Backends: map[string]exchange.Backend{provider + "/population": {Adapter: w.backend, RecordPath: "citizens/{id}", SubjectField: "personalId"}},
		Sink:     w.sink, Masker: w.masker, Subjects: w.subjects,
		MaxStaleness: 10 * time.Minute, Timeout: 5 * time.Second, MaxResponseBytes: 1 << 20, RatePerSecond: 100, RateBurst: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.peer = []*x509.Certificate{certificateOf(t, consumerGW)}
	return w
}

// certificateOf is the leaf a door hands the core for system id once TLS has
// verified the chain (the core reads it; it does not verify chains).
func certificateOf(t *testing.T, system string) *x509.Certificate {
	t.Helper()
	id, err := catalog.ParseSystemID(system)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(id.SPIFFE(trustDomain))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), URIs: []*url.URL{u}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func (w *world) query(path string, fields ...string) exchange.Request {
	q := url.Values{}
	if len(fields) > 0 {
		q.Set("fields", strings.Join(fields, ","))
	}
	return exchange.Request{PeerChain: w.peer, Consumer: consumer, Provider: provider, Dataset: "population", Purpose: purpose,
		ExchangeID: "exc-" + strings.ReplaceAll(path, "/", "-") + strings.Join(fields, "-"), Mode: catalog.ModeQuery,
		Method: "GET", Path: "/r/" + provider + "/population/" + path, Query: q, Fields: fields, Record: path}
}

func (w *world) verify(purposeCode, claims string) exchange.Request {
	return exchange.Request{PeerChain: w.peer, Consumer: consumer, Provider: provider, Dataset: "population", Purpose: purposeCode,
		ExchangeID: "exc-v-" + purposeCode, Mode: catalog.ModeVerify, Method: "POST", Path: "/v/" + provider + "/population/" + citizenID,
		Body: []byte(claims), Record: citizenID}
}

// records returns the audit records of one exchange once its outcome is
// durable (the sink commits outcomes a moment after the answer).
func (w *world) records(t *testing.T, id string) []audit.Record {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		all, err := audit.ReadFile(w.auditLog)
		if err != nil {
			t.Fatal(err)
		}
		var out []audit.Record
		for _, r := range all {
			if r.ExchangeID == id {
				out = append(out, r)
			}
		}
		if (len(out) > 0 && out[len(out)-1].Phase == audit.Outcome) || time.Now().After(deadline) {
			return out
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hashOf(req exchange.Request) string {
	return exchange.RequestHash(req.Method, req.Path, req.Query, req.Consumer, req.Purpose, req.Case, req.ExchangeID, req.Body)
}

// The whole pipeline, driven without net/http: a query answers only the
// granted fields, the records name the subject under the audit key (not the
// value the consumer receives for personalId:hash), the grant, the consumer
// and the request hash.
func TestServeQueryWithoutHTTP(t *testing.T) {
	w := newWorld(t)
	req := w.query("citizens/" + citizenID)
	a, ref := w.core.Serve(context.Background(), req)
	if ref != nil {
		t.Fatalf("refused: %v", ref)
	}
	var got map[string]any
	if err := json.Unmarshal(a.Body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got["fullName"] != "Nguyễn Văn An" || strings.Contains(string(a.Body), "Không") || strings.Contains(string(a.Body), citizenID) {
		t.Fatalf("answer %s", a.Body)
	}
	subject := w.subjects.Subject(citizenID)
	if hashed := got["personalId"].(string); !strings.HasPrefix(hashed, projection.HashPrefix) || strings.Contains(hashed, subject) {
		t.Fatalf("the consumer received the audit subject: %s", hashed)
	}
	recs := w.records(t, a.ExchangeID)
	if len(recs) != 2 || recs[0].Phase != audit.Intent || recs[1].Phase != audit.Outcome {
		t.Fatalf("records %+v", recs)
	}
	for _, r := range recs {
		if r.Subject != subject || r.GrantID != "g-plain" || r.Consumer != consumer || r.RequestHash != hashOf(req) || r.RequestHash != a.RequestHash || r.PolicyRevision != "7" {
			t.Errorf("%s record: subject %q grant %q consumer %q hash %q revision %q", r.Phase, r.Subject, r.GrantID, r.Consumer, r.RequestHash, r.PolicyRevision)
		}
		if strings.Contains(r.Subject, strings.TrimPrefix(got["personalId"].(string), projection.HashPrefix)) {
			t.Errorf("audit subject equals the hash-masked value the consumer holds")
		}
	}
	if recs[1].Status != 200 || !slices.Equal(recs[1].Fields, []string{"dateOfBirth", "fullName", "personalId", "sex"}) {
		t.Errorf("outcome status %d fields %v", recs[1].Status, recs[1].Fields)
	}
}

// A list answer names each record's subject, in order.
func TestListAnswerNamesEverySubject(t *testing.T) {
	w := newWorld(t)
	a, ref := w.core.Serve(context.Background(), w.query("citizens"))
	if ref != nil {
		t.Fatalf("refused: %v", ref)
	}
	recs := w.records(t, a.ExchangeID)
	out := recs[len(recs)-1]
	if want := []string{w.subjects.Subject(citizenID), w.subjects.Subject(otherID)}; !slices.Equal(out.Subjects, want) || out.Subject != "" {
		t.Fatalf("subjects %v (subject %q), want %v", out.Subjects, out.Subject, want)
	}
}

// fields= naming granted and ungranted fields answers the granted ones and
// names the others, never their values; the record says why.
func TestPartialAnswerNamesWithheldFields(t *testing.T) {
	w := newWorld(t)
	a, ref := w.core.Serve(context.Background(), w.query("citizens/"+citizenID, "fullName", "religion", "bad name!"))
	if ref != nil {
		t.Fatalf("refused: %v", ref)
	}
	if !slices.Equal(a.Withheld, []string{"religion"}) || strings.Contains(string(a.Body), "Không") || !strings.Contains(string(a.Body), "fullName") {
		t.Fatalf("withheld %v body %s", a.Withheld, a.Body)
	}
	recs := w.records(t, a.ExchangeID)
	if out := recs[len(recs)-1]; !slices.Contains(out.Reasons, exchange.ReasonFieldsWithheld) {
		t.Fatalf("outcome reasons %v lack %s", out.Reasons, exchange.ReasonFieldsWithheld)
	}
	// Nothing withheld: no reason, no list.
	a, ref = w.core.Serve(context.Background(), w.query("citizens/"+citizenID, "fullName"))
	if ref != nil || len(a.Withheld) != 0 {
		t.Fatalf("only granted fields: %v %v", ref, a)
	}
}

// A field the grant masks cannot be verified: a match would reveal a
// nullified value, the hidden part of a partial one, or a hash's preimage.
func TestVerifyRefusesMaskedFields(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct{ field, claim, mask string }{
		{"dateOfBirth", `"1990-05-01"`, "nullify"},
		{"fullName", `"Nguyễn Văn An"`, "partial"},
		{"personalId", `"001090000001"`, "hash"},
	} {
		t.Run(tc.mask, func(t *testing.T) {
			before := w.backend.calls.Load()
			_, ref := w.core.Serve(context.Background(), w.verify(maskedPurpose, `{"attributes":{"`+tc.field+`":`+tc.claim+`,"sex":"male"}}`))
			if ref == nil || ref.Status != 403 || ref.Kind != exchange.KindMaskedField || !strings.Contains(ref.Detail, tc.field) {
				t.Fatalf("verify of a %s-masked field: %+v", tc.mask, ref)
			}
			if strings.Contains(string(ref.Body()), "match") || w.backend.calls.Load() != before {
				t.Fatalf("masked verify reached the backend or answered a match: %s", ref.Body())
			}
		})
	}
	// The unmasked field of the same grant verifies.
	a, ref := w.core.Serve(context.Background(), w.verify(maskedPurpose, `{"attributes":{"sex":"male"}}`))
	if ref != nil || !strings.Contains(string(a.Body), `"sex":"match"`) {
		t.Fatalf("unmasked verify: %v %v", ref, a)
	}
	recs := w.records(t, a.ExchangeID)
	if out := recs[len(recs)-1]; out.Subject != w.subjects.Subject(citizenID) || out.GrantID != "g-masked" || out.Consumer != consumer {
		t.Fatalf("verify outcome record %+v", out)
	}
	// personalId under the plain grant is hash-masked too.
	if _, ref := w.core.Serve(context.Background(), w.verify(purpose, `{"attributes":{"personalId":"001090000001"}}`)); ref == nil || ref.Kind != exchange.KindMaskedField {
		t.Fatalf("hash-masked personalId verified under the plain grant: %v", ref)
	}
}

// lockedBuffer collects log lines; the core may log from any goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A backend answer with keys the schema does not declare (a case variant of
// a declared one, and a new one, at the top and inside a granted object) is
// projected without them; the outcome record says undeclared_dropped and
// the log gives the count, never the keys or their values: both are bytes
// the backend chose.
func TestUndeclaredKeysDroppedAndCountedOnly(t *testing.T) {
	w := newWorld(t)
	const smuggler = "001090000009"
	records[smuggler] = `{"personalId":"001090000009","fullName":"Lê Văn C","dateOfBirth":"1980-01-01","sex":"male",` +
		`"hivStatus":"dương tính","Religion":"Công giáo","permanentResidence":{"provinceCode":"01","wardCode":"00001","addressLine":"1 Hàng Bạc","sexualOrientation":"x"}}`
	t.Cleanup(func() { delete(records, smuggler) })
	a, ref := w.core.Serve(context.Background(), w.query("citizens/"+smuggler))
	if ref != nil {
		t.Fatalf("refused: %v", ref)
	}
	for _, leaked := range []string{"hivStatus", "dương tính", "Religion", "Công giáo"} {
		if strings.Contains(string(a.Body), leaked) {
			t.Fatalf("answer carries %q: %s", leaked, a.Body)
		}
	}
	recs := w.records(t, a.ExchangeID)
	if out := recs[len(recs)-1]; !slices.Contains(out.Reasons, exchange.ReasonUndeclaredDropped) {
		t.Fatalf("outcome reasons %v lack %s", out.Reasons, exchange.ReasonUndeclaredDropped)
	}
	logs := w.logs.String()
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil && entry["reason"] == exchange.ReasonUndeclaredDropped {
			found = entry["count"] == float64(2) // hivStatus and Religion; permanentResidence is not granted
		}
	}
	if !found {
		t.Fatalf("no undeclared_dropped log line with count 2:\n%s", logs)
	}
	for _, secret := range []string{"hivStatus", "dương tính", "Religion", "Công giáo", "sexualOrientation"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the log quotes backend bytes %q:\n%s", secret, logs)
		}
	}
	// A clean answer carries no such reason.
	a, ref = w.core.Serve(context.Background(), w.query("citizens/"+citizenID, "fullName"))
	if ref != nil {
		t.Fatal(ref)
	}
	recs = w.records(t, a.ExchangeID)
	if out := recs[len(recs)-1]; slices.Contains(out.Reasons, exchange.ReasonUndeclaredDropped) {
		t.Fatalf("clean answer recorded %v", out.Reasons)
	}
}

// A claim given twice (also in another case or escaped) is refused before
// anything is decided: which of the two would be compared is the parser's
// choice, and the record would name a claim the caller may not have meant.
func TestVerifyRefusesRepeatedClaims(t *testing.T) {
	w := newWorld(t)
	for _, body := range []string{
		`{"attributes":{"sex":"male","sex":"female"}}`,
		`{"attributes":{"sex":"male","\u0073ex":"female"}}`,
		`{"attributes":{"sex":"male"},"Attributes":{"sex":"female"}}`,
	} {
		before := w.backend.calls.Load()
		_, ref := w.core.Serve(context.Background(), w.verify(purpose, body))
		if ref == nil || ref.Status != 400 || ref.Kind != exchange.KindInvalidInput || w.backend.calls.Load() != before {
			t.Fatalf("%s: %+v", body, ref)
		}
	}
}

// Staleness is the core's: whatever the door, an old snapshot denies, and the
// refusal's body is the problem every door sends.
func TestStaleSnapshotDeniesAtEveryStage(t *testing.T) {
	w := newWorld(t)
	old := time.Now().Add(-11 * time.Minute)
	w.src.at.Store(&old)
	for name, run := range map[string]func() *exchange.Refusal{
		"serve": func() *exchange.Refusal {
			_, r := w.core.Serve(context.Background(), w.query("citizens/"+citizenID))
			return r
		},
		"admit": func() *exchange.Refusal {
			_, r := w.core.Admit(context.Background(), w.query("citizens/"+citizenID))
			return r
		},
		"admit caller": func() *exchange.Refusal {
			_, r := w.core.AdmitCaller(context.Background(), w.query("citizens/"+citizenID))
			return r
		},
	} {
		ref := run()
		if ref == nil || ref.Status != 503 || ref.Kind != exchange.KindStale {
			t.Fatalf("%s: %+v", name, ref)
		}
		var p map[string]any
		if err := json.Unmarshal(ref.Body(), &p); err != nil || p["type"] != "urn:lienthong:problem:stale-configuration" || p["status"] != float64(503) {
			t.Fatalf("%s: body %s", name, ref.Body())
		}
	}
	if w.backend.calls.Load() != 0 {
		t.Fatal("a stale core called the backend")
	}
}

// The stages compose as an ext_authz + ext_proc pair would run them: admit,
// decide and write the intent; later filter a response body given that
// decision and record the outcome.
func TestStagesComposeWithoutServe(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	req := w.query("citizens/"+citizenID, "fullName", "personalId")
	x, ref := w.core.Admit(ctx, req)
	if ref != nil {
		t.Fatal(ref)
	}
	d, ref := w.core.Decide(ctx, x, req.Fields)
	if ref != nil {
		t.Fatal(ref)
	}
	if !slices.Equal(d.Fields, []string{"fullName", "personalId"}) || d.Masks["personalId"] != catalog.MaskHash {
		t.Fatalf("decision %+v", d)
	}
	if ref := w.core.WriteIntent(ctx, x, d.Fields); ref != nil {
		t.Fatal(ref)
	}
	var out bytes.Buffer
	// A response body as Envoy would hand it over, with a key the grant
	// does not cover.
	if _, ref := w.core.Filter(ctx, x, &out, exchange.Body{Reader: strings.NewReader(records[citizenID])}, true); ref != nil {
		t.Fatal(ref)
	}
	if strings.Contains(out.String(), "Không") || strings.Contains(out.String(), citizenID) || !strings.Contains(out.String(), "Nguyễn Văn An") {
		t.Fatalf("filtered %s", out.String())
	}
	a, ref := w.core.Answer(ctx, x, 200, "application/json", out.Bytes())
	if ref != nil || a.RequestHash != hashOf(req) {
		t.Fatalf("answer %v %v", a, ref)
	}
	recs := w.records(t, x.ID())
	if len(recs) != 2 || recs[1].Subject != w.subjects.Subject(citizenID) {
		t.Fatalf("records %+v", recs)
	}
	// A peer that is no registered gateway is refused before any decision.
	bad := w.query("citizens/" + citizenID)
	bad.PeerChain = []*x509.Certificate{certificateOf(t, consumer)}
	if _, ref := w.core.Admit(ctx, bad); ref == nil || ref.Kind != exchange.KindUnknownPeer {
		t.Fatalf("unregistered peer: %v", ref)
	}
	// A refusal whose record cannot be written says so.
	w.sink.Close()
	if _, ref := w.core.Serve(ctx, w.query("citizens/nobody")); ref == nil || ref.Kind != exchange.KindAuditUnavailable {
		t.Fatalf("closed log: %v", ref)
	}
}

// A feed router's delivery runs the same stages without a peer: admitted for
// the subscribed consumer, decided in feed mode, the event filtered, the
// delivery recorded under the event's subject.
func TestFeedDeliveryRunsTheSameStages(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	req := exchange.Request{Consumer: consumer, Provider: provider, Dataset: "population", Purpose: feedPurpose,
		ExchangeID: "evt-1", Mode: catalog.ModeFeed, Method: "FEED", Path: "feed/population"}
	x, ref := w.core.AdmitDelivery(ctx, req)
	if ref != nil {
		t.Fatal(ref)
	}
	d, ref := w.core.Decide(ctx, x, nil)
	if ref != nil || d.GrantID != "g-feed" {
		t.Fatalf("feed decision %+v %v", d, ref)
	}
	var out bytes.Buffer
	if _, ref := w.core.Filter(ctx, x, &out, exchange.Body{Reader: strings.NewReader(records[otherID])}, true); ref != nil {
		t.Fatal(ref)
	}
	if strings.Contains(out.String(), "Phật giáo") || strings.Contains(out.String(), otherID) || !strings.Contains(out.String(), "Trần Thị Bình") {
		t.Fatalf("delivered %s", out.String())
	}
	if _, ref := w.core.Answer(ctx, x, 200, "application/json", out.Bytes()); ref != nil {
		t.Fatal(ref)
	}
	recs := w.records(t, "evt-1")
	if out := recs[len(recs)-1]; out.Mode != "feed" || out.Subject != w.subjects.Subject(otherID) || out.GrantID != "g-feed" || out.Consumer != consumer {
		t.Fatalf("delivery record %+v", out)
	}
	// A query grant does not allow a feed.
	req.Purpose, req.ExchangeID = purpose, "evt-2"
	x, ref = w.core.AdmitDelivery(ctx, req)
	if ref != nil {
		t.Fatal(ref)
	}
	if _, ref := w.core.Decide(ctx, x, nil); ref == nil || ref.Kind != exchange.KindAccessDenied {
		t.Fatalf("feed under a query grant: %v", ref)
	}
}

// BeginQuery and FinishQuery are Serve split where a proxy fetches: the
// answer is Serve's, byte for byte, each exchange has one intent and one
// outcome, and an exchange whose answer never comes is closed by Abandon.
func TestBeginFinishQueryEqualsServe(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	served, ref := w.core.Serve(ctx, w.query("citizens/"+citizenID, "fullName", "personalId", "religion"))
	if ref != nil {
		t.Fatal(ref)
	}
	req := w.query("citizens/"+citizenID, "fullName", "personalId", "religion")
	req.ExchangeID = "exc-split"
	x, ref := w.core.BeginQuery(ctx, req)
	if ref != nil {
		t.Fatal(ref)
	}
	if got := x.Withheld(); !slices.Equal(got, []string{"religion"}) {
		t.Errorf("withheld %v", got)
	}
	a, ref := w.core.FinishQuery(ctx, x, exchange.Body{Reader: strings.NewReader(records[citizenID])})
	if ref != nil {
		t.Fatal(ref)
	}
	if !bytes.Equal(a.Body, served.Body) || !slices.Equal(a.Withheld, served.Withheld) || a.Status != served.Status {
		t.Fatalf("split %d %s %v, serve %d %s %v", a.Status, a.Body, a.Withheld, served.Status, served.Body, served.Withheld)
	}
	recs := w.records(t, "exc-split")
	if len(recs) != 2 || recs[0].Phase != audit.Intent || recs[1].Status != 200 || !slices.Contains(recs[1].Reasons, exchange.ReasonFieldsWithheld) {
		t.Fatalf("records %+v", recs)
	}
	// Begun, never finished: one outcome, 504.
	req.ExchangeID = "exc-abandoned"
	x, ref = w.core.BeginQuery(ctx, req)
	if ref != nil {
		t.Fatal(ref)
	}
	if ref := w.core.Abandon(ctx, x, true); ref.Status != 504 || ref.Kind != exchange.KindBackendTimeout || ref.ExchangeID != "exc-abandoned" {
		t.Fatalf("abandon %+v", ref)
	}
	if recs := w.records(t, "exc-abandoned"); len(recs) != 2 || recs[1].Status != 504 {
		t.Fatalf("records %+v", recs)
	}
	// BeginQuery serves queries only; a verification is refused and recorded.
	v := w.query("citizens/" + citizenID)
	v.Mode, v.ExchangeID = catalog.ModeVerify, "exc-verify"
	if _, ref := w.core.BeginQuery(ctx, v); ref == nil || ref.Kind != exchange.KindInvalidInput {
		t.Fatalf("verify through BeginQuery: %v", ref)
	}
	if recs := w.records(t, "exc-verify"); len(recs) != 1 || recs[0].Phase != audit.Outcome {
		t.Fatalf("records %+v", recs)
	}
	if w.backend.calls.Load() != 1 {
		t.Errorf("backend called %d times; only Serve fetches", w.backend.calls.Load())
	}
}
