package api_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/certs/embedded"
	"github.com/lienthong/lienthong/controlplane/api"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/federation"
)

// certFixture is the seeded fixture of api_test.go with an embedded CA
// behind the service: the population database is assessed at level 4, the
// social insurance system is registered but not assessed.
type certFixture struct {
	*fixture
	ca *embedded.CA
}

func newCertFixture(t *testing.T) *certFixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ca, err := embedded.Open(filepath.Join(t.TempDir(), "ca"), embedded.WithPassphrase(nil))
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(store, service.WithAuthority(ca))
	srv := newServer(api.New(svc, slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)
	f := &fixture{t: t, store: store, srv: srv}
	f.vt = newValidatingTransport(t, srv.URL, srv.Client().Transport)
	secret, err := svc.Bootstrap(ctx)
	if err != nil || secret == "" {
		t.Fatalf("bootstrap: %q %v", secret, err)
	}
	f.admin = f.client(secret)
	f.seed()
	return &certFixture{fixture: f, ca: ca}
}

func spiffeOf(t *testing.T, system string) string {
	t.Helper()
	id, err := catalog.ParseSystemID(system)
	if err != nil {
		t.Fatal(err)
	}
	return id.SPIFFE(service.DefaultTrustDomain)
}

// enrolled is a certificate as a gateway holds it.
type enrolled struct {
	*service.Enrolment
	key  crypto.Signer
	leaf *x509.Certificate
	pair tls.Certificate
}

// enroll makes a key locally, as `lienthong system enroll` does, and sends
// only the CSR.
func enroll(t *testing.T, c *client.Client, system string) (*enrolled, error) {
	t.Helper()
	id, err := catalog.ParseSystemID(system)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, csrPEM, err := certs.GenerateKeyAndCSR(id, service.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	enr, err := c.Enroll(context.Background(), system, csrPEM)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair([]byte(enr.ChainPEM), keyPEM)
	if err != nil {
		t.Fatalf("issued chain does not pair with the key: %v", err)
	}
	return &enrolled{Enrolment: enr, key: pair.PrivateKey.(crypto.Signer), leaf: pair.Leaf, pair: pair}, nil
}

func mustEnroll(t *testing.T, c *client.Client, system string) *enrolled {
	t.Helper()
	e, err := enroll(t, c, system)
	if err != nil {
		t.Fatalf("enrol %s: %v", system, err)
	}
	return e
}

// refusedEnrolments returns the trail outcomes of refused enrolments of system.
func (f *certFixture) refusedEnrolments(system string) []string {
	f.t.Helper()
	entries, err := f.admin.Trail(context.Background(), catalog.TrailFilter{Object: system})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Action == "certificate.enroll" && strings.HasPrefix(e.Outcome, "refused: ") {
			out = append(out, e.Outcome)
		}
	}
	return out
}

func (f *certFixture) certificates(system string) []service.CertificateView {
	f.t.Helper()
	cs, err := f.admin.Certificates(context.Background(), catalog.CertificateFilter{System: system})
	if err != nil {
		f.t.Fatal(err)
	}
	return cs
}

func (f *certFixture) trust(etag string) (*federation.Trust, string, bool) {
	f.t.Helper()
	tr, tag, notModified, err := f.admin.Trust(context.Background(), etag)
	if err != nil {
		f.t.Fatal(err)
	}
	return tr, tag, notModified
}

func (f *certFixture) trustStore(tr *federation.Trust) *certs.TrustStore {
	f.t.Helper()
	roots, err := certs.ParseCertificatesPEM([]byte(tr.RootsPEM))
	if err != nil {
		f.t.Fatal(err)
	}
	ts, err := certs.NewTrustStore(roots, tr.RevokedSerials)
	if err != nil {
		f.t.Fatal(err)
	}
	return ts
}

func TestEnrolmentIsRefusedWithTheReason(t *testing.T) {
	f := newCertFixture(t)
	ctx := context.Background()
	vssAdmin := f.token(catalog.RoleMemberAdmin, vss)

	// Registered but never assessed.
	_, err := enroll(t, vssAdmin, insurance)
	if p := asProblem(t, err); p.Status != http.StatusForbidden || !strings.Contains(p.Detail, "not assessed") {
		t.Fatalf("unassessed: %+v", p)
	}
	// Assessed, but below the platform minimum of 3.
	const portal = "VN:GOV:000.00.00.G14:CONG"
	if _, err := vssAdmin.AddSystem(ctx, client.NewSystem{ID: portal, Name: "Cổng thông tin", SecurityLevel: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.Assess(ctx, portal, client.NewAssessment{Level: 2, AssessedBy: "Cục A05", Reference: "QĐ 2", ValidUntil: time.Now().Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	_, err = enroll(t, vssAdmin, portal)
	if p := asProblem(t, err); p.Status != http.StatusForbidden || !strings.Contains(p.Detail, "assessed level 2 below required 3") {
		t.Fatalf("level 2: %+v", p)
	}
	// Another member's admin may not enrol the population database.
	_, err = enroll(t, vssAdmin, population)
	if p := asProblem(t, err); p.Status != http.StatusForbidden || !strings.Contains(p.Detail, "not for "+mps) {
		t.Fatalf("foreign enrolment: %+v", p)
	}

	for system, want := range map[string]string{insurance: "not assessed", portal: "assessed level 2 below required 3", population: "not for " + mps} {
		got := f.refusedEnrolments(system)
		if len(got) != 1 || !strings.Contains(got[0], want) {
			t.Errorf("trail for %s: %q, want one refusal naming %q", system, got, want)
		}
		if n := len(f.certificates(system)); n != 0 {
			t.Errorf("%d certificates issued to %s", n, system)
		}
	}
}

// csrWith builds a CSR for population's SPIFFE id, edited by edit, signed
// by key.
func csrWith(t *testing.T, key crypto.Signer, edit func(*x509.CertificateRequest)) string {
	t.Helper()
	u, _ := url.Parse(spiffeOf(t, population))
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: population}, URIs: []*url.URL{u}}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestBadCertificateRequestsAreRefusedAndRecorded(t *testing.T) {
	f := newCertFixture(t)
	ctx := context.Background()
	mpsAdmin := f.token(catalog.RoleMemberAdmin, mps)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	caTrue, err := asn1.Marshal(struct{ IsCA bool }{true})
	if err != nil {
		t.Fatal(err)
	}
	insuranceID, _ := catalog.ParseSystemID(insurance)
	_, otherCSR, err := certs.GenerateKeyAndCSR(insuranceID, service.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, csr, want string
	}{
		{"another system's id", string(otherCSR), "this enrolment is for " + spiffeOf(t, population)},
		{"CA rights", csrWith(t, ec, func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: caTrue}}
		}), "CA rights"},
		{"extra DNS name", csrWith(t, ec, func(r *x509.CertificateRequest) { r.DNSNames = []string{"evil.example"} }), "DNS name"},
		{"second URI", csrWith(t, ec, func(r *x509.CertificateRequest) {
			u, _ := url.Parse(spiffeOf(t, insurance))
			r.URIs = append(r.URIs, u)
		}), "2 URIs"},
		{"weak RSA key", csrWith(t, weak, nil), "RSA keys must have 2048 to 8192 bits; this one has 1024"},
		{"not a CSR", "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n", "not a valid PKCS #10"},
		{"empty", "", "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := mpsAdmin.Do(ctx, http.MethodPost, "/v1/systems/"+population+"/certificates", map[string]string{"csr": c.csr}, nil)
			p := asProblem(t, err)
			if p.Status != http.StatusBadRequest || !strings.Contains(p.Detail, c.want) {
				t.Fatalf("want 400 naming %q, got %+v", c.want, p)
			}
			if len(p.Errors) != 1 || p.Errors[0].Pointer != "/csr" {
				t.Errorf("problem does not point at /csr: %+v", p.Errors)
			}
		})
	}
	// A body that does not even parse is refused and recorded too.
	err = mpsAdmin.Do(withUnvalidated(ctx), http.MethodPost, "/v1/systems/"+population+"/certificates", map[string]int{"csr": 5}, nil)
	if p := asProblem(t, err); p.Status != http.StatusBadRequest || p.Errors[0].Pointer != "/csr" {
		t.Fatalf("CSR of the wrong JSON type: %+v", p)
	}
	if n := len(f.certificates(population)); n != 0 {
		t.Errorf("%d certificates issued for bad requests", n)
	}
	got := f.refusedEnrolments(population)
	if len(got) != len(cases)+1 {
		t.Fatalf("trail holds %d refusals, want %d: %q", len(got), len(cases)+1, got)
	}
	for i, c := range cases {
		if !strings.Contains(got[i], c.want) {
			t.Errorf("trail refusal %d = %q, want it to name %q", i, got[i], c.want)
		}
	}
	if last := got[len(got)-1]; !strings.Contains(last, "unreadable request body") {
		t.Errorf("trail refusal of the unparsable body = %q", last)
	}
}

func TestEnrolmentIssuesOneSPIFFEIdentity(t *testing.T) {
	f := newCertFixture(t)
	ctx := context.Background()
	integrator := f.token(catalog.RoleIntegrator, mps)
	e := mustEnroll(t, integrator, population)

	want := spiffeOf(t, population)
	if len(e.leaf.URIs) != 1 || e.leaf.URIs[0].String() != want || len(e.leaf.DNSNames)+len(e.leaf.IPAddresses)+len(e.leaf.EmailAddresses) != 0 {
		t.Fatalf("leaf names: URIs %v DNS %v IP %v email %v", e.leaf.URIs, e.leaf.DNSNames, e.leaf.IPAddresses, e.leaf.EmailAddresses)
	}
	if e.leaf.IsCA {
		t.Fatal("leaf is a CA")
	}
	chain, err := certs.ParseCertificatesPEM([]byte(e.ChainPEM))
	if err != nil || len(chain) != 2 {
		t.Fatalf("chain: %d certificates, %v", len(chain), err)
	}
	roots, err := certs.ParseCertificatesPEM([]byte(e.TrustBundlePEM))
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.CheckIssued(e.leaf, chain[1:], certs.Expectation{SPIFFEID: want, PublicKey: e.key.Public(), Roots: roots, NotAfterBy: time.Now().Add(certs.DefaultTTL + time.Minute)}); err != nil {
		t.Fatalf("issued certificate: %v", err)
	}
	rec := e.Certificate
	if rec.SPIFFE != want || rec.System != population || rec.Status != service.CertificateValid || rec.Authority != embedded.Name || rec.Serial != certs.SerialHex(e.leaf.SerialNumber) {
		t.Errorf("record: %+v", rec)
	}

	got, err := integrator.Certificate(ctx, strings.ToUpper(rec.Serial))
	if err != nil || got.Serial != rec.Serial {
		t.Fatalf("show by upper-case serial: %+v %v", got, err)
	}
	if list := f.certificates(population); len(list) != 1 || list[0].Serial != rec.Serial {
		t.Errorf("listing: %+v", list)
	}
	// Other agencies neither list nor see it.
	outsider := f.token(catalog.RoleMemberAdmin, vss)
	if list, err := outsider.Certificates(ctx, catalog.CertificateFilter{System: population}); err != nil || len(list) != 0 {
		t.Errorf("outsider lists %d certificates (%v)", len(list), err)
	}
	if _, err := outsider.Certificate(ctx, rec.Serial); asProblem(t, err).Status != http.StatusNotFound {
		t.Error("outsider can read the certificate")
	}
	entries, err := f.admin.Trail(ctx, catalog.TrailFilter{Object: population})
	if err != nil {
		t.Fatal(err)
	}
	ok := slices.ContainsFunc(entries, func(e catalog.TrailEntry) bool {
		return e.Action == "certificate.enroll" && e.Outcome == "ok" && strings.Contains(string(e.After), rec.Serial)
	})
	if !ok {
		t.Error("issuance not in the trail")
	}
}

func TestLapsedAssessmentStopsRenewals(t *testing.T) {
	f := newCertFixture(t)
	ctx := context.Background()
	mpsAdmin := f.token(catalog.RoleMemberAdmin, mps)
	first := mustEnroll(t, mpsAdmin, population)
	// Backdate the stored assessment: the API refuses past dates.
	lapsed := time.Now().Add(-time.Hour).UTC()
	err := f.store.Update(ctx, func(tx catalog.Tx) error {
		return tx.SetAssessment(ctx, population, catalog.Assessment{Level: 4, AssessedBy: "A05", Reference: "old", ValidUntil: lapsed, RecordedAt: lapsed.Add(-24 * time.Hour)})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = enroll(t, mpsAdmin, population)
	wantReason := "assessment expired on " + lapsed.Format("2006-01-02")
	if p := asProblem(t, err); p.Status != http.StatusForbidden || !strings.Contains(p.Detail, wantReason) {
		t.Fatalf("renewal after lapse: %+v", p)
	}
	if got := f.refusedEnrolments(population); len(got) != 1 || !strings.Contains(got[0], wantReason) {
		t.Errorf("trail: %q", got)
	}
	if list := f.certificates(population); len(list) != 1 || list[0].Serial != first.Certificate.Serial {
		t.Errorf("certificates after the refused renewal: %+v", list)
	}
}

func TestRevocationReachesTheTrustConfiguration(t *testing.T) {
	f := newCertFixture(t)
	ctx := context.Background()
	mpsAdmin := f.token(catalog.RoleMemberAdmin, mps)
	e := mustEnroll(t, mpsAdmin, population)
	serial := e.Certificate.Serial

	before, tag, _ := f.trust("")
	if len(before.RevokedSerials) != 0 || before.TrustDomain != service.DefaultTrustDomain || tag == "" {
		t.Fatalf("initial trust: %+v %q", before, tag)
	}
	if tr, same, notModified := f.trust(tag); !notModified || tr != nil || same != tag {
		t.Fatalf("If-None-Match with the current ETag: notModified=%v", notModified)
	}

	// Another member's admin may not revoke it; the attempt is recorded.
	_, err := f.token(catalog.RoleMemberAdmin, vss).RevokeCertificate(ctx, serial, "mischief")
	if p := asProblem(t, err); p.Status != http.StatusForbidden {
		t.Fatalf("foreign revocation: %+v", p)
	}
	err = mpsAdmin.Do(ctx, http.MethodPost, "/v1/certificates/"+serial+"/revoke", map[string]string{"reason": ""}, nil)
	if p := asProblem(t, err); p.Status != http.StatusBadRequest || p.Errors[0].Pointer != "/reason" {
		t.Fatalf("revocation without reason: %+v", p)
	}
	out, err := mpsAdmin.RevokeCertificate(ctx, serial, "key copied to an unmanaged laptop")
	if err != nil || out.Status != service.CertificateRevoked || out.RevokeReason == "" {
		t.Fatalf("revoke: %+v %v", out, err)
	}
	if _, err := mpsAdmin.RevokeCertificate(ctx, serial, "again"); asProblem(t, err).Status != http.StatusConflict {
		t.Error("second revocation not a conflict")
	}

	after, newTag, notModified := f.trust(tag)
	if notModified || newTag == tag || !slices.Contains(after.RevokedSerials, serial) || after.Revision <= before.Revision {
		t.Fatalf("trust after revocation: notModified=%v tag %s→%s %+v", notModified, tag, newTag, after)
	}
	// A gateway fed from it refuses the certificate.
	if _, err := f.trustStore(after).Verify(append([]*x509.Certificate{e.leaf}, mustChain(t, e)[1:]...), x509.ExtKeyUsageClientAuth); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("trust store accepts the revoked certificate: %v", err)
	}
}

func mustChain(t *testing.T, e *enrolled) []*x509.Certificate {
	t.Helper()
	chain, err := certs.ParseCertificatesPEM([]byte(e.ChainPEM))
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

func TestRevokingASystemRevokesAllItsCertificates(t *testing.T) {
	f := newCertFixture(t)
	ctx := context.Background()
	mpsAdmin := f.token(catalog.RoleMemberAdmin, mps)
	a, b := mustEnroll(t, mpsAdmin, population), mustEnroll(t, mpsAdmin, population)

	if _, err := mpsAdmin.RevokeSystem(ctx, population, "own decision"); asProblem(t, err).Status != http.StatusForbidden {
		t.Fatal("member-admin revoked a system")
	}
	out, err := f.admin.RevokeSystem(ctx, population, "assessment withdrawn by A05")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{a.Certificate.Serial, b.Certificate.Serial}
	slices.Sort(want)
	got := slices.Clone(out.RevokedCertificates)
	slices.Sort(got)
	if !slices.Equal(got, want) || out.System.RevokedAt == nil || out.System.Connectivity.Connectable {
		t.Fatalf("revocation: %+v", out)
	}
	tr, _, _ := f.trust("")
	if !slices.Equal(tr.RevokedSystems, []string{population}) || !slices.Equal(tr.RevokedSerials, want) {
		t.Errorf("trust: systems %v serials %v", tr.RevokedSystems, tr.RevokedSerials)
	}
	_, err = enroll(t, mpsAdmin, population)
	if p := asProblem(t, err); p.Status != http.StatusForbidden || !strings.Contains(p.Detail, "system revoked: assessment withdrawn by A05") {
		t.Fatalf("enrolment after system revocation: %+v", p)
	}
	if _, err := f.admin.RevokeSystem(ctx, population, "again"); asProblem(t, err).Status != http.StatusConflict {
		t.Error("second system revocation not a conflict")
	}
}

// handshake dials addr as a gateway client presenting rot's certificate and
// reads one line; it returns the error either side saw.
func handshake(t *testing.T, addr string, ts *certs.TrustStore, rot *certs.Rotator, serverErrs <-chan error) error {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, ts.ClientConfig(rot, nil))
	var serverErr error
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 3)
		_, err = io.ReadFull(conn, buf)
		conn.Close()
	}
	select {
	case serverErr = <-serverErrs:
	case <-time.After(10 * time.Second):
		t.Fatal("the server saw no connection")
	}
	return errors.Join(serverErr, err)
}

func TestGatewayRefusesRevokedPeerWithinOneRefresh(t *testing.T) {
	f := newCertFixture(t)
	ctx := context.Background()
	if _, err := f.admin.Assess(ctx, insurance, client.NewAssessment{Level: 3, AssessedBy: "Cục A05", Reference: "QĐ 13", ValidUntil: time.Now().Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// Each gateway renews through the control plane, as its Rotator would.
	rotator := func(c *client.Client, system string) *certs.Rotator {
		r, err := certs.NewRotator(ctx, certs.RotatorConfig{Renew: func(context.Context) (tls.Certificate, error) {
			e, err := enroll(t, c, system)
			if err != nil {
				return tls.Certificate{}, err
			}
			return e.pair, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	provider := rotator(f.token(catalog.RoleIntegrator, mps), population)
	consumer := rotator(f.token(catalog.RoleIntegrator, vss), insurance)

	tr, tag, _ := f.trust("")
	serverTrust, clientTrust := f.trustStore(tr), f.trustStore(tr)

	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTrust.ServerConfig(provider))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverErrs := make(chan error, 4)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			tc := conn.(*tls.Conn)
			_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
			err = tc.HandshakeContext(ctx)
			if err == nil {
				_, err = tc.Write([]byte("ok\n"))
			}
			tc.Close()
			serverErrs <- err
		}
	}()

	if err := handshake(t, ln.Addr().String(), clientTrust, consumer, serverErrs); err != nil {
		t.Fatalf("handshake before revocation: %v", err)
	}
	if _, err := f.admin.RevokeCertificate(ctx, certs.SerialHex(consumer.Leaf().SerialNumber), "compromised gateway"); err != nil {
		t.Fatal(err)
	}
	// One refresh: the provider gateway pulls the trust configuration.
	tr, newTag, notModified := f.trust(tag)
	if notModified || newTag == tag {
		t.Fatal("revocation did not change the trust configuration")
	}
	roots, err := certs.ParseCertificatesPEM([]byte(tr.RootsPEM))
	if err != nil {
		t.Fatal(err)
	}
	if err := serverTrust.Update(roots, tr.RevokedSerials); err != nil {
		t.Fatal(err)
	}
	err = handshake(t, ln.Addr().String(), clientTrust, consumer, serverErrs)
	if err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked consumer was not refused: %v", err)
	}
	// A renewed certificate (new serial) gets through again.
	if err := consumer.RenewNow(ctx); err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, ln.Addr().String(), clientTrust, consumer, serverErrs); err != nil {
		t.Fatalf("handshake with the renewed certificate: %v", err)
	}
}

func TestCARotationKeepsOldAndNewCertificatesWorking(t *testing.T) {
	f := newCertFixture(t)
	ctx := context.Background()
	mpsAdmin := f.token(catalog.RoleMemberAdmin, mps)
	old := mustEnroll(t, mpsAdmin, population)

	if _, err := mpsAdmin.RotateCA(ctx); asProblem(t, err).Status != http.StatusForbidden {
		t.Fatal("member-admin rotated the CA")
	}
	if _, err := f.admin.RetireCA(ctx); asProblem(t, err).Status != http.StatusConflict {
		t.Fatal("retire without a rotation is not a conflict")
	}
	_, tag, _ := f.trust("")
	st, err := f.admin.RotateCA(ctx)
	if err != nil || len(st.Roots) != 2 || !st.Rotatable {
		t.Fatalf("rotate: %+v %v", st, err)
	}
	if _, err := f.admin.RotateCA(ctx); asProblem(t, err).Status != http.StatusConflict {
		t.Fatal("a second rotation before retiring is not a conflict")
	}
	during, newTag, _ := f.trust(tag)
	if newTag == tag {
		t.Fatal("rotation did not change the trust ETag")
	}
	fresh := mustEnroll(t, mpsAdmin, population)
	if roots, _ := certs.ParseCertificatesPEM([]byte(fresh.TrustBundlePEM)); len(roots) != 2 {
		t.Errorf("enrolment during rotation returns %d roots", len(roots))
	}
	ts := f.trustStore(during)
	if got := len(ts.Roots()); got != 2 {
		t.Fatalf("trust during rotation has %d roots", got)
	}
	for name, e := range map[string]*enrolled{"old": old, "new": fresh} {
		if _, err := ts.Verify(mustChain(t, e), x509.ExtKeyUsageClientAuth); err != nil {
			t.Errorf("%s certificate during rotation: %v", name, err)
		}
	}
	if mustChain(t, old)[1].Equal(mustChain(t, fresh)[1]) {
		t.Error("the new certificate was signed by the old intermediate")
	}

	st, err = f.admin.RetireCA(ctx)
	if err != nil || len(st.Roots) != 1 {
		t.Fatalf("retire: %+v %v", st, err)
	}
	after, _, _ := f.trust("")
	ts = f.trustStore(after)
	if _, err := ts.Verify(mustChain(t, fresh), x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("new certificate after retiring: %v", err)
	}
	if _, err := ts.Verify(mustChain(t, old), x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("old certificate still verifies after its root was retired")
	}
	entries, err := f.admin.Trail(ctx, catalog.TrailFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"ca.rotate", "ca.retire"} {
		if !slices.ContainsFunc(entries, func(e catalog.TrailEntry) bool { return e.Action == action && e.Outcome == "ok" }) {
			t.Errorf("trail lacks %s", action)
		}
	}
	if st, err := mpsAdmin.CA(ctx); err != nil || st.Authority != embedded.Name || len(st.Roots) != 1 {
		t.Errorf("CA status: %+v %v", st, err)
	}
}

func TestCertificateRoutesWithoutAuthority(t *testing.T) {
	f := newFixtureWith(t, false)
	f.seed()
	ctx := context.Background()
	_, err := enroll(t, f.admin, population)
	if p := asProblem(t, err); p.Status != http.StatusServiceUnavailable {
		t.Fatalf("enrol without authority: %+v", p)
	}
	if _, _, _, err := f.admin.Trust(ctx, ""); asProblem(t, err).Status != http.StatusServiceUnavailable {
		t.Fatal("trust without authority")
	}
}
