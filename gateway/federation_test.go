package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/certs/embedded"
	"github.com/lienthong/lienthong/controlplane/api"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/bundles"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/gateway"
)

const (
	mps        = "000.00.00.G01"
	vss        = "000.00.00.G14"
	population = "VN:GOV:000.00.00.G01:CSDLDC"
	mpsGW      = "VN:GOV:000.00.00.G01:GW"
	insurance  = "VN:GOV:000.00.00.G14:CSDLBH"
	vssGW      = "VN:GOV:000.00.00.G14:GW"
	citizenID  = "001090000001"
	purpose    = "1.001234"
)

// citizens is the REST backend's data: two valid records, one that breaks
// the schema and one with a duplicate key.
var citizens = map[string]string{
	citizenID: `{"personalId":"001090000001","fullName":"Nguyễn Văn An","dateOfBirth":"1990-05-01","sex":"male",` +
		`"ethnicity":"01","religion":"Không","permanentResidence":{"provinceCode":"01","wardCode":"00001","addressLine":"12 Hàng Bạc"}}`,
	"079195000002": `{"personalId":"079195000002","fullName":"Trần Thị Bình","dateOfBirth":"1995-02-03","sex":"female",` +
		`"ethnicity":"01","religion":"Phật giáo","permanentResidence":{"provinceCode":"79","wardCode":"26734","addressLine":"5 Lê Lợi"}}`,
	"001090000003": `{"personalId":"001090000003","fullName":"Lê Văn C","dateOfBirth":"1990-13-45","sex":"robot"}`,
	"001090000004": `{"personalId":"001090000004","fullName":"Phạm D","fullName":"smuggled","dateOfBirth":"1990-01-01","sex":"male"}`,
}

// badContentTypeID makes the backend answer with logMarker in its
// Content-Type; logMarker must never reach a log line.
const (
	badContentTypeID = "001090000005"
	logMarker        = "BACKEND-CONTROLLED-BYTES"
)

// federation is a control plane, a provider gateway (Public Security, with
// the population database behind it) and a consumer gateway (Social
// Security), all on loopback with real mTLS.
type federation struct {
	t         *testing.T
	svc       *service.Service
	ca        *embedded.CA
	admin     auth.Principal
	provider  *gateway.Gateway
	consumer  *gateway.Gateway
	outbound  string // consumer gateway's outbound address
	inbound   string // provider gateway's inbound address
	roots     *x509.CertPool
	clock     atomic.Int64 // consumer gateway clock offset
	grantID   string
	dir       string
	freshMu   sync.Mutex
	fresh     map[int]freshClient
	auditFile map[string]string
	// backendCalls counts requests the REST backend received.
	backendCalls atomic.Int64
	// backendURL is the REST backend's base URL.
	backendURL string
	// backendTraceparent is the traceparent header of the backend's last
	// request.
	backendTraceparent atomic.Value
	// backendHeader is the header of the backend's last request.
	backendHeader atomic.Value
	// logs holds what both gateways logged, at logLevel and above.
	logs     lockedBuffer
	logLevel slog.Level
}

// lockedBuffer collects log lines from concurrent writers.
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

func newFederation(t *testing.T) *federation { return newFederationWith(t, nil) }

// newFederationWith lets a test adjust the provider gateway's configuration
// and options.
func newFederationWith(t *testing.T, tweakProvider func(*gateway.Config), providerOpts ...gateway.Option) *federation {
	t.Helper()
	return newFederationTTL(t, 0, tweakProvider, providerOpts...)
}

// newFederationTTL also sets the lifetime of every certificate the control
// plane issues (0: the default 72 hours).
func newFederationTTL(t *testing.T, certTTL time.Duration, tweakProvider func(*gateway.Config), providerOpts ...gateway.Option) *federation {
	t.Helper()
	return newFederationFull(t, certTTL, tweakProvider, providerOpts, nil)
}

// newFederationFull also takes options for the consumer gateway.
func newFederationFull(t *testing.T, certTTL time.Duration, tweakProvider func(*gateway.Config), providerOpts, consumerOpts []gateway.Option) *federation {
	t.Helper()
	return newFederationLogging(t, slog.LevelDebug, certTTL, tweakProvider, providerOpts, consumerOpts)
}

// newFederationLogging is newFederationFull with the gateways logging at
// level (the bench logs as a production gateway does, at info).
func newFederationLogging(t *testing.T, level slog.Level, certTTL time.Duration, tweakProvider func(*gateway.Config), providerOpts, consumerOpts []gateway.Option) *federation {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	f := &federation{t: t, dir: dir, auditFile: map[string]string{}, logLevel: level}
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ca, err := embedded.Open(filepath.Join(dir, "ca"), embedded.WithPassphrase(nil))
	if err != nil {
		t.Fatal(err)
	}
	key, err := bundles.LoadOrCreateKey(filepath.Join(dir, "bundle-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	f.ca = ca
	f.svc = service.New(store, service.WithAuthority(ca), service.WithPolicySigningKey(key), service.WithCertTTL(certTTL))
	f.admin = auth.Principal{TokenID: "test", Name: "test operator", Role: catalog.RolePlatformAdmin}
	// The control plane knows the gateways by their certificates, as in
	// production: the listener asks every client for one.
	cp := httptest.NewUnstartedServer(api.New(f.svc, slog.New(slog.NewTextHandler(io.Discard, nil))))
	cp.TLS = api.RequestClientCertificates(&tls.Config{})
	cp.StartTLS()
	t.Cleanup(cp.Close)
	cpCA := filepath.Join(dir, "cp-ca.pem")
	writeFile(t, cpCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cp.Certificate().Raw}))

	// The catalog: two members, their gateways and systems, assessed.
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.svc.AddMember(ctx, f.admin, catalog.Member{Code: mps, Name: "Bộ Công an"}))
	must(f.svc.AddMember(ctx, f.admin, catalog.Member{Code: vss, Name: "Bảo hiểm xã hội Việt Nam"}))
	for _, id := range []string{population, mpsGW, insurance, vssGW} {
		must(f.svc.AddSystem(ctx, f.admin, catalog.System{ID: id, Name: id, SecurityLevel: 3}))
		must(f.svc.Assess(ctx, f.admin, id, catalog.Assessment{Level: 4, AssessedBy: "A05", Reference: "QĐ 1", ValidUntil: time.Now().Add(365 * 24 * time.Hour)}))
	}
	doc, err := os.ReadFile(filepath.Join("..", "examples", "population.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	must(f.svc.Publish(ctx, f.admin, service.PublishInput{System: population, Document: doc}))

	// A grant: four fields, personalId hashed, query and verify.
	req, err := f.svc.RequestAccess(ctx, f.admin, service.AccessRequestInput{
		Consumer: insurance, Provider: population, Dataset: "population",
		Fields: []string{"personalId", "fullName", "dateOfBirth", "sex"}, Purpose: catalog.Purpose{Code: purpose},
		LegalBasis: catalog.LegalBasis{Reference: "Nghị định 13/2023/NĐ-CP"}, ValidUntil: time.Now().Add(90 * 24 * time.Hour),
		Modes: []catalog.Mode{catalog.ModeQuery, catalog.ModeVerify},
	})
	if err != nil {
		t.Fatal(err)
	}
	g, err := f.svc.Approve(ctx, f.admin, req.ID, service.Approval{Fields: []catalog.GrantedField{
		{Path: "personalId", Mask: catalog.MaskHash}, {Path: "fullName"}, {Path: "dateOfBirth"}, {Path: "sex"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.grantID = g.ID

	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.backendCalls.Add(1)
		f.backendTraceparent.Store(r.Header.Get("traceparent"))
		f.backendHeader.Store(r.Header.Clone())
		id := strings.TrimPrefix(r.URL.Path, "/citizens/")
		if id == badContentTypeID {
			// A backend that answers with a content type made to be quoted.
			w.Header().Set("Content-Type", "text/html; evil="+logMarker)
			_, _ = io.WriteString(w, logMarker)
			return
		}
		rec, ok := citizens[id]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, rec)
	}))
	t.Cleanup(backend.Close)
	f.backendURL = backend.URL

	// The doors' ports are bound here and handed in live, so the addresses
	// registered are the ones that listen.
	inboundLn, outboundLn := liveListener(t), liveListener(t)
	inbound := inboundLn.Addr().String()
	must(f.svc.RegisterGateway(ctx, f.admin, catalog.Gateway{Member: mps, System: mpsGW, Address: inbound}))
	// The consumer's gateway serves no inbound door: its address is only
	// registered, never dialled (port 9 is discard; nothing here listens).
	must(f.svc.RegisterGateway(ctx, f.admin, catalog.Gateway{Member: vss, System: vssGW, Address: "127.0.0.1:9"}))

	f.provider = f.startGateway(mps, mpsGW, cpCA, cp.URL, map[string]gateway.Backend{
		population + "/population": restBackend(backend.URL, "citizens/{id}"),
	}, "", inbound, append([]gateway.Option{gateway.WithListeners(nil, inboundLn)}, providerOpts...), tweakProvider)
	f.inbound = inbound
	f.outbound = outboundLn.Addr().String()
	f.consumer = f.startGateway(vss, vssGW, cpCA, cp.URL, nil, f.outbound, "", append([]gateway.Option{
		gateway.WithClock(func() time.Time { return time.Now().Add(time.Duration(f.clock.Load())) }),
		gateway.WithListeners(outboundLn, nil),
	}, consumerOpts...), nil)
	trust, err := f.svc.Trust(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.roots = x509.NewCertPool()
	f.roots.AppendCertsFromPEM([]byte(trust.RootsPEM))
	return f
}

func restBackend(url, recordPath string) gateway.Backend {
	var b gateway.Backend
	if err := json.Unmarshal([]byte(`{"recordPath":"`+recordPath+`","rest":{"baseUrl":"`+url+`","timeout":"5s"}}`), &b); err != nil {
		panic(err)
	}
	return b
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// subjectKeyFile is the federation's audit subject key, made on first use.
func (f *federation) subjectKeyFile() string {
	f.t.Helper()
	path := filepath.Join(f.dir, "audit-subject.key")
	if _, err := audit.CreateSubjectKey(path); err != nil {
		f.t.Fatal(err)
	}
	return path
}

// subjectKey is the federation's audit subject key.
func (f *federation) subjectKey() audit.SubjectKey {
	f.t.Helper()
	k, err := audit.LoadSubjectKey(f.subjectKeyFile())
	if err != nil {
		f.t.Fatal(err)
	}
	return k
}

// enroll makes a key here and has the control plane sign it.
func (f *federation) enroll(system, keyFile, certFile string) {
	f.t.Helper()
	id, _ := catalog.ParseSystemID(system)
	keyPEM, csrPEM, err := certs.GenerateKeyAndCSR(id, f.svc.TrustDomain())
	if err != nil {
		f.t.Fatal(err)
	}
	enr, err := f.svc.Enroll(context.Background(), f.admin, system, csrPEM)
	if err != nil {
		f.t.Fatal(err)
	}
	writeFile(f.t, keyFile, keyPEM)
	writeFile(f.t, certFile, []byte(enr.ChainPEM))
}

func (f *federation) startGateway(member, system, cpCA, cpURL string, backends map[string]gateway.Backend, outbound, inbound string, opts []gateway.Option, tweak func(*gateway.Config)) *gateway.Gateway {
	t := f.t
	t.Helper()
	dir := filepath.Join(f.dir, member)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := &gateway.Config{Member: member, System: system, StateDir: filepath.Join(dir, "state"),
		MaskingKeyFile: filepath.Join(dir, "masking.key"), AuditFile: filepath.Join(dir, "audit.jsonl"), Backends: backends,
		AuditSubjectKeyFile: f.subjectKeyFile()}
	cfg.Identity.KeyFile, cfg.Identity.CertFile = filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	cfg.ControlPlane.URL, cfg.ControlPlane.CAFile = cpURL, cpCA
	cfg.Outbound.Listen, cfg.Inbound.Listen = outbound, inbound
	if tweak != nil {
		tweak(cfg)
	}
	f.enroll(system, cfg.Identity.KeyFile, cfg.Identity.CertFile)
	f.auditFile[member] = cfg.AuditFile

	ctx, cancel := context.WithCancel(context.Background())
	gw, err := gateway.New(ctx, cfg, slog.New(slog.NewJSONHandler(&f.logs, &slog.HandlerOptions{Level: f.logLevel})), opts...)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := gw.Run(ctx, func(gateway.Addrs) { close(ready) }); err != nil {
			t.Errorf("gateway %s: %v", member, err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	<-ready
	return gw
}

// enrolledPair enrols system and returns its key pair and serial.
func (f *federation) enrolledPair(system string) (*tls.Certificate, string) {
	f.t.Helper()
	dir := f.t.TempDir()
	f.enroll(system, filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem"))
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		f.t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		f.t.Fatal(err)
	}
	return &pair, certs.SerialHex(leaf.SerialNumber)
}

// systemClient is an information system calling its gateway with its own
// certificate. Gateways present SPIFFE identities, not host names, so the
// client checks the chain and the peer's trust domain itself.
func (f *federation) systemClient(system string) *http.Client {
	f.t.Helper()
	dir := f.t.TempDir()
	f.enroll(system, filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem"))
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		f.t.Fatal(err)
	}
	return f.clientWith(&pair)
}

func (f *federation) clientWith(pair *tls.Certificate) *http.Client {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyConnection: gateways are named by SPIFFE id
		VerifyConnection: func(cs tls.ConnectionState) error {
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: f.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		},
	}
	if pair != nil {
		cfg.Certificates = []tls.Certificate{*pair}
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 64}}
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (f *federation) call(c *http.Client, method, path string, headers map[string]string, body string) (answer, error) {
	req, err := http.NewRequest(method, "https://"+f.outbound+path, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a, nil
}

func (f *federation) get(c *http.Client, path string, headers map[string]string) answer {
	f.t.Helper()
	a, err := f.call(c, http.MethodGet, path, headers, "")
	if err != nil {
		f.t.Fatalf("GET %s: %v", path, err)
	}
	return a
}

func purposeHeader() map[string]string { return map[string]string{gateway.HeaderPurpose: purpose} }

const recordPath = "/r/" + population + "/population/citizens/"

func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	return &pair, err
}

// systemClientFresh returns, per worker, a client whose certificate is at
// most two seconds old (re-enrolled when older), for tests where
// certificates live only seconds.
func (f *federation) systemClientFresh(worker int) *http.Client {
	f.freshMu.Lock()
	defer f.freshMu.Unlock()
	if f.fresh == nil {
		f.fresh = map[int]freshClient{}
	}
	if fc, ok := f.fresh[worker]; ok && time.Since(fc.at) < 2*time.Second {
		return fc.c
	}
	pair, _ := f.enrolledPair(insurance)
	fc := freshClient{c: f.clientWith(pair), at: time.Now()}
	f.fresh[worker] = fc
	return fc.c
}

type freshClient struct {
	c  *http.Client
	at time.Time
}
