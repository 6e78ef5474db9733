package gateway_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	fed "github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/gateway"
)

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestQueryReturnsOnlyGrantedFields(t *testing.T) {
	f := newFederation(t)
	c := f.systemClient(insurance)

	a := f.get(c, recordPath+citizenID, purposeHeader())
	if a.status != http.StatusOK {
		t.Fatalf("granted read: %d %s", a.status, a.raw)
	}
	if got := keys(a.body); !slices.Equal(got, []string{"dateOfBirth", "fullName", "personalId", "sex"}) {
		t.Errorf("fields = %v", got)
	}
	if id, _ := a.body["personalId"].(string); !strings.HasPrefix(id, "hmac-sha256:") || strings.Contains(a.raw, citizenID) {
		t.Errorf("personalId not masked: %s", a.raw)
	}
	if strings.Contains(a.raw, "Không") || strings.Contains(a.raw, "Hàng Bạc") {
		t.Errorf("ungranted value leaked: %s", a.raw)
	}
	if a.header.Get(gateway.HeaderExchangeID) == "" || a.header.Get(gateway.HeaderHash) == "" {
		t.Errorf("answer lacks exchange id or request hash: %v", a.header)
	}

	// fields= narrows; it can never widen.
	a = f.get(c, recordPath+citizenID+"?fields=fullName", purposeHeader())
	if got := keys(a.body); a.status != 200 || !slices.Equal(got, []string{"fullName"}) {
		t.Errorf("fields=fullName: %d %v", a.status, got)
	}
	a = f.get(c, recordPath+citizenID+"?fields=religion,ethnicity", purposeHeader())
	if a.status != http.StatusForbidden || strings.Contains(a.raw, "Không") {
		t.Errorf("fields=religion widened: %d %s", a.status, a.raw)
	}

	// Another purpose, no purpose, an unknown record.
	if a := f.get(c, recordPath+citizenID, map[string]string{gateway.HeaderPurpose: "9.999999"}); a.status != http.StatusForbidden {
		t.Errorf("ungranted purpose: %d", a.status)
	}
	if a := f.get(c, recordPath+citizenID, nil); a.status != http.StatusBadRequest {
		t.Errorf("no purpose: %d", a.status)
	}
	if a := f.get(c, recordPath+"001099999999", purposeHeader()); a.status != http.StatusNotFound {
		t.Errorf("unknown record: %d", a.status)
	}
}

func TestIdentityComesOnlyFromTheCertificate(t *testing.T) {
	f := newFederation(t)
	// A header naming a granted consumer changes nothing for a system that
	// holds no grant: identity comes from the certificate.
	ctx := context.Background()
	const other = "VN:GOV:000.00.00.G14:HTTTKHAC"
	if _, err := f.svc.AddSystem(ctx, f.admin, catalog.System{ID: other, Name: "other", SecurityLevel: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Assess(ctx, f.admin, other, catalog.Assessment{Level: 3, AssessedBy: "A05", Reference: "r", ValidUntil: time.Now().Add(time.Hour * 24)}); err != nil {
		t.Fatal(err)
	}
	if err := f.consumer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.provider.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	spoof := map[string]string{gateway.HeaderPurpose: purpose, gateway.HeaderConsumer: insurance, "X-Road-Client": "VN/GOV/000.00.00.G14/CSDLBH"}
	a := f.get(f.systemClient(other), recordPath+citizenID, spoof)
	if a.status != http.StatusForbidden || strings.Contains(a.raw, "Nguyễn") {
		t.Fatalf("spoofed identity header: %d %s", a.status, a.raw)
	}

	// A system of another member may not use this member's gateway.
	if a := f.get(f.systemClient(population), recordPath+citizenID, purposeHeader()); a.status != http.StatusForbidden {
		t.Errorf("foreign system: %d %s", a.status, a.raw)
	}
	// No certificate, or a certificate from another CA: no TLS session at all.
	if _, err := f.call(f.clientWith(nil), http.MethodGet, recordPath+citizenID, purposeHeader(), ""); err == nil {
		t.Error("request without a client certificate was served")
	}
	if _, err := f.call(f.clientWith(selfSigned(t, "spiffe://lienthong.vn/GOV/000.00.00.G14/CSDLBH", time.Now().Add(time.Hour))), http.MethodGet, recordPath+citizenID, purposeHeader(), ""); err == nil {
		t.Error("certificate from another CA was accepted")
	}
	// A certificate of the granted system, from the right CA, once expired.
	id, _ := catalog.ParseSystemID(insurance)
	keyPEM, csrPEM, err := certs.GenerateKeyAndCSR(id, f.svc.TrustDomain())
	if err != nil {
		t.Fatal(err)
	}
	issued, err := f.ca.Sign(ctx, certs.SignRequest{CSR: csrPEM, System: id, TrustDomain: f.svc.TrustDomain(), TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(issued.CertificatePEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(issued.Leaf.NotAfter) + 100*time.Millisecond)
	if _, err := f.call(f.clientWith(&pair), http.MethodGet, recordPath+citizenID, purposeHeader(), ""); err == nil {
		t.Error("expired certificate was accepted")
	}
}

func TestVerifyAnswersMatchNeverValues(t *testing.T) {
	f := newFederation(t)
	c := f.systemClient(insurance)
	path := "/v/" + population + "/population/" + citizenID
	post := func(body string) answer {
		a, err := f.call(c, http.MethodPost, path, map[string]string{gateway.HeaderPurpose: purpose, "Content-Type": "application/json"}, body)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := post(`{"attributes":{"dateOfBirth":"1990-05-01","fullName":"Nguyễn Văn Ân"}}`)
	if a.status != http.StatusOK {
		t.Fatalf("verify: %d %s", a.status, a.raw)
	}
	res, _ := a.body["results"].(map[string]any)
	if res["dateOfBirth"] != "match" || res["fullName"] != "no_match" {
		t.Errorf("results = %v", res)
	}
	if strings.Contains(a.raw, "Nguyễn Văn An") || strings.Contains(a.raw, "1990-05-01") {
		t.Errorf("verify leaked a stored value: %s", a.raw)
	}
	if a := post(`{"attributes":{"religion":"Không"}}`); a.status != http.StatusForbidden || strings.Contains(a.raw, "match") {
		t.Errorf("verify of an ungranted field: %d %s", a.status, a.raw)
	}
}

func TestBadBackendAnswersAreRefused(t *testing.T) {
	f := newFederation(t)
	c := f.systemClient(insurance)
	before := f.provider.InvalidResponses()
	for id, why := range map[string]string{"001090000003": "invalid against the schema", "001090000004": "duplicate key"} {
		a := f.get(c, recordPath+id, purposeHeader())
		if a.status != http.StatusBadGateway || strings.Contains(a.raw, "smuggled") || strings.Contains(a.raw, "robot") {
			t.Errorf("%s: %d %s", why, a.status, a.raw)
		}
	}
	if got := f.provider.InvalidResponses() - before; got != 2 {
		t.Errorf("refused backend answers counted %d, want 2", got)
	}
}

func TestRevocationReachesTheGatewayAtTheNextPull(t *testing.T) {
	f := newFederation(t)
	ctx := context.Background()
	c := f.systemClient(insurance)
	if a := f.get(c, recordPath+citizenID, purposeHeader()); a.status != http.StatusOK {
		t.Fatalf("before revocation: %d", a.status)
	}
	before := f.provider.PolicyRevision()
	if _, err := f.svc.RevokeGrant(ctx, f.admin, f.grantID, "case closed"); err != nil {
		t.Fatal(err)
	}
	if err := f.provider.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if f.provider.PolicyRevision() == before {
		t.Fatal("policy revision did not move")
	}
	a := f.get(c, recordPath+citizenID, purposeHeader())
	if a.status != http.StatusForbidden || a.body["type"] != "urn:lienthong:problem:access-denied" || strings.Contains(a.raw, "Nguyễn") {
		t.Fatalf("after revocation: %d %s", a.status, a.raw)
	}
}

func TestStaleConfigurationDenies(t *testing.T) {
	f := newFederation(t)
	c := f.systemClient(insurance)
	f.clock.Store(int64(11 * time.Minute))
	a := f.get(c, recordPath+citizenID, purposeHeader())
	if a.status != http.StatusServiceUnavailable || !strings.Contains(a.raw, "stale") {
		t.Fatalf("stale configuration: %d %s", a.status, a.raw)
	}
	f.clock.Store(0)
	if a := f.get(c, recordPath+citizenID, purposeHeader()); a.status != http.StatusOK {
		t.Fatalf("fresh again: %d", a.status)
	}
}

// While the configuration is unchanged, a poll gets the control plane's
// signed statement that it is current instead of the configuration, and
// that statement renews freshness: a gateway that would be stale is fresh
// again without downloading anything. The statement is kept, so it also
// counts after a restart.
func TestUnchangedConfigurationRenewsFreshness(t *testing.T) {
	f := newFederation(t)
	ctx := context.Background()
	c := f.systemClient(insurance)
	state := filepath.Join(f.dir, vss, "state")
	if err := f.consumer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(state, "gateway-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	// 10 minutes minus a second from now: the last statement (1.5 s old)
	// is past the limit, a new one is not.
	f.clock.Store(int64(10*time.Minute - time.Second))
	if a := f.get(c, recordPath+citizenID, purposeHeader()); a.status != http.StatusServiceUnavailable || !strings.Contains(a.raw, "stale") {
		t.Fatalf("before renewal: %d %s", a.status, a.raw)
	}
	if err := f.consumer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a := f.get(c, recordPath+citizenID, purposeHeader()); a.status != http.StatusOK {
		t.Fatalf("after renewal: %d %s", a.status, a.raw)
	}
	after, err := os.ReadFile(filepath.Join(state, "gateway-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		FreshAt time.Time `json:"freshAt"`
	}
	raw, err := os.ReadFile(filepath.Join(state, "gateway-config.meta.json"))
	if err != nil || json.Unmarshal(raw, &meta) != nil {
		t.Fatalf("freshness statement not kept: %v %s", err, raw)
	}
	if !bytes.Equal(body, after) || time.Since(meta.FreshAt) > time.Second {
		t.Fatalf("renewal downloaded the configuration again (changed %v) or kept no fresh statement: %+v", !bytes.Equal(body, after), meta)
	}
}

// selfSigned makes a client certificate from a CA nobody trusts.
func selfSigned(t *testing.T, spiffe string, notAfter time.Time) *tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(spiffe)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "rogue"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: notAfter, URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestRateLimitPerConsumer(t *testing.T) {
	f := newFederationWith(t, func(c *gateway.Config) { c.RateLimit.PerSecond, c.RateLimit.Burst = 0.5, 2 })
	c := f.systemClient(insurance)
	var statuses []int
	for range 4 {
		statuses = append(statuses, f.get(c, recordPath+citizenID, purposeHeader()).status)
	}
	if !slices.Equal(statuses, []int{200, 200, 429, 429}) {
		t.Fatalf("statuses = %v, want two served then 429", statuses)
	}
}

// After a restart with the control plane out of reach, the stored freshness
// statement counts only if it verifies for the ETag the stored configuration
// itself names: a genuine statement about a newer configuration cannot keep
// an older one (without the newer revocations) fresh.
func TestRestoredFreshnessIsBoundToTheStoredConfiguration(t *testing.T) {
	f := newFederation(t)
	ctx := context.Background()
	if err := f.consumer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(f.dir, vss)
	body, err := os.ReadFile(filepath.Join(src, "state", "gateway-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var stored fed.Config
	if err := json.Unmarshal(body, &stored); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	same, err := f.svc.GatewayConfig(ctx, f.admin, vss, stored.ETag())
	if err != nil || !same.NotModified {
		t.Fatalf("statement for the stored configuration: %+v %v", same, err)
	}
	// A newer configuration (a system revoked) and a genuine statement
	// about it.
	if _, err := f.svc.RevokeSystem(ctx, f.admin, insurance, "compromised"); err != nil {
		t.Fatal(err)
	}
	newer, err := f.svc.GatewayConfig(ctx, f.admin, vss, "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	other, err := f.svc.GatewayConfig(ctx, f.admin, vss, newer.ETag)
	if err != nil || !other.NotModified || other.ETag == stored.ETag() {
		t.Fatalf("statement for the newer configuration: %+v %v", other, err)
	}

	for _, tc := range []struct {
		name      string
		statement *fed.Signed
		want      time.Time
	}{
		{"statement about the stored configuration", same, same.FreshAt},
		{"statement about another configuration", other, stored.IssuedAt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, src, dir)
			meta, _ := json.Marshal(map[string]any{"body": sha256Hex(body), "freshAt": tc.statement.FreshAt, "freshSignature": tc.statement.Signature})
			writeFile(t, filepath.Join(dir, "state", "gateway-config.meta.json"), meta)
			cfg := &gateway.Config{Member: vss, System: vssGW, StateDir: filepath.Join(dir, "state"),
				MaskingKeyFile: filepath.Join(dir, "masking.key"), AuditFile: filepath.Join(dir, "audit.jsonl"), AuditSubjectKeyFile: f.subjectKeyFile()}
			cfg.Identity.KeyFile, cfg.Identity.CertFile = filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
			cfg.ControlPlane.URL, cfg.ControlPlane.CAFile = "https://127.0.0.1:1", filepath.Join(f.dir, "cp-ca.pem")
			gw, err := gateway.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if got := gw.FreshAsOf(); !got.Equal(tc.want) {
				t.Fatalf("fresh as of %s, want %s", got.Format(time.RFC3339Nano), tc.want.Format(time.RFC3339Nano))
			}
		})
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		if strings.HasSuffix(path, "audit.jsonl") {
			return nil // the running gateway holds it
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
