package feed

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/projection"
	"github.com/lienthong/lienthong/policies"
)

// The test world: one provider publishing vital events, three consumers
// with different feed grants.
const (
	provider  = "VN:GOV:000.00.00.G05:HTTTHT"
	consumerA = "VN:GOV:000.00.00.G01:CSDLDC" // fullName, seq, province
	consumerB = "VN:GOV:000.00.00.G14:CSDLBH" // personalId hashed, seq; province 01 only
	consumerC = "VN:GOV:000.00.00.H26:DVCHN"  // fullName partial, seq; revoked mid-stream
	purpose   = "1.004227"
	birthType = "vn.gov.civilstatus.birth.registered"
)

// envRouterConfig makes the test binary run a router (see TestMain): the
// crash test starts it as a separate process and kills it.
const envRouterConfig = "LIENTHONG_TEST_FEED_ROUTER_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(envRouterConfig); path != "" {
		os.Exit(runRouterProcess(path))
	}
	os.Exit(m.Run())
}

func runRouterProcess(path string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := LoadConfig(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := Run(ctx, cfg, log, RunOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// world holds the files a router reads.
type world struct {
	dir     string
	signing policies.SigningKey
	config  string
}

func newWorld(t testing.TB, brokers []string) *world {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := policies.PublicKeyPEM(&key.PublicKey)
	vk, _ := json.Marshal(map[string]string{"keyId": "k1", "publicKeyPem": string(pub)})
	write(t, filepath.Join(dir, "verification-key.json"), vk)
	mk := make([]byte, 32)
	_, _ = rand.Read(mk)
	write(t, filepath.Join(dir, "masking.key"), mk)
	write(t, filepath.Join(dir, "audit-subject.key"), testSubjectKey)
	doc, err := os.ReadFile("testdata/vital-events.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "vital-events.yaml"), doc)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	sk, err := policies.SigningKeyFromPEM("k1", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{dir: dir, signing: sk, config: filepath.Join(dir, "router.json")}
	cfg := map[string]any{
		"id": "router-test", "provider": provider,
		"kafka":    map[string]any{"brokers": brokers},
		"datasets": []any{map[string]any{"document": "vital-events.yaml"}},
		"policy": map[string]any{"bundleFile": "policy-bundle.tar.gz", "verificationKeyFile": "verification-key.json",
			"reloadInterval": "50ms"},
		"maskingKeyFile": "masking.key", "subjectKeyFile": "audit-subject.key", "auditFile": "audit.log", "maxBatch": 200,
	}
	raw, _ := json.Marshal(cfg)
	write(t, w.config, raw)
	w.publish(t, 1, false)
	return w
}

// publish writes the policy bundle of a revision; revokeC revokes C's grant.
func (w *world) publish(t testing.TB, revision int, revokeC bool) {
	t.Helper()
	now := time.Now()
	sys := func(id string) catalog.System {
		return catalog.System{ID: id, Name: id, SecurityLevel: 3,
			Assessment: &catalog.Assessment{Level: 3, AssessedBy: "A05", Reference: "QD-1", ValidUntil: now.Add(365 * 24 * time.Hour)}}
	}
	doc, _ := os.ReadFile("testdata/vital-events.yaml")
	d, err := catalog.LoadDocument(context.Background(), doc)
	if err != nil {
		t.Fatal(err)
	}
	ds := catalog.Dataset{System: provider, Code: d.Code, Version: 1, RecordSchema: d.RecordSchema, MinConsumerLevel: 3, Fields: d.Fields}
	grant := func(id, consumer string, fields []catalog.GrantedField, scope *catalog.RowScope) catalog.Grant {
		return catalog.Grant{ID: id, Consumer: consumer, Provider: provider, Dataset: d.Code, Fields: fields,
			Purposes: []catalog.Purpose{{Code: purpose}}, LegalBasis: catalog.LegalBasis{Reference: "Decree 104/2022"},
			Modes: []catalog.Mode{catalog.ModeFeed}, RowScope: scope, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour),
			State: catalog.GrantActive}
	}
	gc := grant("g-c", consumerC, []catalog.GrantedField{{Path: "child.fullName", Mask: catalog.MaskPartial}, {Path: "seq"}}, nil)
	if revokeC {
		gc.State = catalog.GrantRevoked
	}
	grants := []catalog.Grant{
		grant("g-a", consumerA, []catalog.GrantedField{{Path: "child.fullName"}, {Path: "seq"}, {Path: "province"}}, nil),
		grant("g-b", consumerB, []catalog.GrantedField{{Path: "child.personalId", Mask: catalog.MaskHash}, {Path: "seq"}},
			&catalog.RowScope{Field: "province", Values: []string{"01"}}),
		gc,
	}
	snap, err := policies.BuildData([]catalog.System{sys(provider), sys(consumerA), sys(consumerB), sys(consumerC)}, []catalog.Dataset{ds}, grants, nil)
	if err != nil {
		t.Fatal(err)
	}
	rev := fmt.Sprint(revision)
	snap.Revision = rev
	archive, err := policies.BuildBundle(snap, rev, w.signing)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(w.dir, "policy-bundle.tar.gz"), archive)
}

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// testSubjectKey is the federation's audit subject key in these tests.
var testSubjectKey = bytes.Repeat([]byte{5}, audit.SubjectKeySize)

// staticSource is a snapshot that stays fresh: the tests' policy does not
// age.
type staticSource struct{ snap *exchange.Snapshot }

func (s staticSource) Current() (*exchange.Snapshot, time.Time) { return s.snap, time.Now() }

// testCore is the exchange core deciding with snap for datasets (of one
// provider member), with a
// random masking key, a fixed subject key and a real audit file.
func testCore(t testing.TB, snap *policies.Snapshot, datasets ...*Dataset) *exchange.Core {
	t.Helper()
	eng := policies.NewEngine()
	if err := eng.Load(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	es := &exchange.Snapshot{Engine: eng, Policy: snap.Data, Datasets: map[string]*exchange.Dataset{}, RevokedSystem: map[string]bool{}}
	for _, d := range datasets {
		es.Datasets[d.Provider+"/"+d.Code] = d.core
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	masker, _ := projection.NewMasker(key, 0)
	sink, err := audit.OpenFile(filepath.Join(t.TempDir(), "audit.log"), testAuditOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	core, err := NewCore(datasets[0].Provider, staticSource{es}, masker, audit.SubjectKey(testSubjectKey), sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	return core
}
