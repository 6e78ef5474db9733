package service_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/certs/embedded"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/service"
)

const (
	mps        = "000.00.00.G01"
	vss        = "000.00.00.G14"
	population = "VN:GOV:000.00.00.G01:CSDLDC"
	insurance  = "VN:GOV:000.00.00.G14:BHXH"
)

var admin = auth.Principal{TokenID: "admin", Name: "platform operator", Role: catalog.RolePlatformAdmin}

func principal(role catalog.Role, member string) auth.Principal {
	return auth.Principal{TokenID: string(role) + "@" + member, Name: string(role), Role: role, Member: member}
}

// clock is a settable time source for the service; the CA keeps real time,
// so moving it forward plays "days later" for the catalog's rules only.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

type certEnv struct {
	t     *testing.T
	store catalog.Store
	svc   *service.Service
	ca    *embedded.CA
	clock *clock
}

// newCertEnv is a service over a real SQLite store and an embedded CA in a
// temporary directory, with two members and their systems: the population
// database (level 4, assessed 4 for 30 days) and social insurance (level 3,
// not assessed).
func newCertEnv(t *testing.T, opts ...service.Option) *certEnv {
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
	clk := &clock{now: time.Now().UTC()}
	svc := service.New(store, append([]service.Option{service.WithAuthority(ca), service.WithClock(clk.Now)}, opts...)...)
	e := &certEnv{t: t, store: store, svc: svc, ca: ca, clock: clk}
	for _, m := range []catalog.Member{{Code: mps, Name: "Bộ Công an"}, {Code: vss, Name: "Bảo hiểm xã hội Việt Nam"}} {
		if _, err := svc.AddMember(ctx, admin, m); err != nil {
			t.Fatal(err)
		}
	}
	e.addSystem(population, 4)
	e.addSystem(insurance, 3)
	e.assess(population, 4, 30*24*time.Hour)
	return e
}

func (e *certEnv) addSystem(id string, level int) {
	e.t.Helper()
	if _, err := e.svc.AddSystem(context.Background(), admin, catalog.System{ID: id, Name: id, SecurityLevel: level}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *certEnv) assess(id string, level int, validFor time.Duration) {
	e.t.Helper()
	a := catalog.Assessment{Level: level, AssessedBy: "Cục A05", Reference: "QĐ 1/QĐ-A05", ValidUntil: e.clock.Now().Add(validFor)}
	if _, err := e.svc.Assess(context.Background(), admin, id, a); err != nil {
		e.t.Fatal(err)
	}
}

func csrFor(t *testing.T, id string) []byte {
	t.Helper()
	sid, err := catalog.ParseSystemID(id)
	if err != nil {
		t.Fatal(err)
	}
	_, csr, err := certs.GenerateKeyAndCSR(sid, service.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func (e *certEnv) enroll(p auth.Principal, id string) (*service.Enrolment, error) {
	return e.svc.Enroll(context.Background(), p, id, csrFor(e.t, id))
}

// refusals returns the outcomes of refused entries of action in the trail.
func (e *certEnv) refusals(action string) []string {
	e.t.Helper()
	entries, err := e.store.ListTrail(context.Background(), catalog.TrailFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		if en.Action == action && strings.HasPrefix(en.Outcome, "refused: ") {
			out = append(out, en.Outcome)
		}
	}
	return out
}

func wantForbidden(t *testing.T, err error, reason string) {
	t.Helper()
	if !errors.Is(err, catalog.ErrForbidden) || !strings.Contains(err.Error(), reason) {
		t.Fatalf("want forbidden with %q, got %v", reason, err)
	}
}

func TestEnrolmentStopsWhenTheAssessmentLapses(t *testing.T) {
	e := newCertEnv(t)
	enr, err := e.enroll(admin, population)
	if err != nil {
		t.Fatal(err)
	}
	if enr.Certificate.Status != service.CertificateValid || enr.Certificate.NotAfter.Sub(enr.Certificate.NotBefore) > certs.DefaultTTL+2*time.Minute {
		t.Errorf("first certificate: %+v", enr.Certificate)
	}
	// A day before the assessment ends, renewal still works.
	e.clock.Advance(29 * 24 * time.Hour)
	if _, err := e.enroll(admin, population); err != nil {
		t.Fatalf("renewal within the assessment: %v", err)
	}
	// Two days later it has lapsed: no renewal, with the date.
	e.clock.Advance(2 * 24 * time.Hour)
	_, err = e.enroll(admin, population)
	wantForbidden(t, err, "assessment expired on ")
	got := e.refusals("certificate.enroll")
	if len(got) != 1 || !strings.Contains(got[0], "assessment expired on ") {
		t.Fatalf("trail refusals = %q", got)
	}
	// The certificates issued before run out on their own: by the service's
	// clock they have expired, and no third one exists.
	list, err := e.svc.Certificates(context.Background(), admin, catalog.CertificateFilter{System: population})
	if err != nil || len(list) != 2 {
		t.Fatalf("certificates = %d, %v", len(list), err)
	}
	for _, c := range list {
		if c.Status != service.CertificateExpired {
			t.Errorf("certificate %s is %s a month on", c.Serial, c.Status)
		}
	}
}

func TestEnrolmentRoles(t *testing.T) {
	e := newCertEnv(t)
	for _, p := range []auth.Principal{principal(catalog.RoleMemberAdmin, mps), principal(catalog.RoleIntegrator, mps)} {
		if _, err := e.enroll(p, population); err != nil {
			t.Errorf("%s of the owner refused: %v", p.Role, err)
		}
	}
	for _, p := range []auth.Principal{
		principal(catalog.RoleApprover, mps),
		principal(catalog.RoleAuditor, mps),
		principal(catalog.RoleMemberAdmin, vss),
		principal(catalog.RoleIntegrator, vss),
	} {
		_, err := e.enroll(p, population)
		if !errors.Is(err, catalog.ErrForbidden) {
			t.Errorf("%s of %s: want forbidden, got %v", p.Role, p.Member, err)
		}
	}
	if got := e.refusals("certificate.enroll"); len(got) != 4 {
		t.Errorf("want 4 refusals in the trail, got %q", got)
	}
}

func TestRequiredLevelIsTheHigherOfMinimumAndDeclared(t *testing.T) {
	e := newCertEnv(t)
	const low, under = "VN:GOV:000.00.00.G14:CONG", "VN:GOV:000.00.00.G14:TRA"
	e.addSystem(low, 2)
	e.assess(low, 2, 24*time.Hour)
	_, err := e.enroll(admin, low)
	wantForbidden(t, err, "assessed level 2 below required 3")

	// Declared at 4, assessed at 3: not secure at the level it claims.
	e.addSystem(under, 4)
	e.assess(under, 3, 24*time.Hour)
	_, err = e.enroll(admin, under)
	wantForbidden(t, err, "assessed level 3 below required 4")

	_, err = e.enroll(admin, insurance)
	wantForbidden(t, err, "not assessed")

	// A platform that lowers its minimum admits the level-2 system.
	lenient := service.New(e.store, service.WithAuthority(e.ca), service.WithEnrollMinLevel(2), service.WithClock(e.clock.Now))
	if _, err := lenient.Enroll(context.Background(), admin, low, csrFor(t, low)); err != nil {
		t.Fatalf("minimum 2: %v", err)
	}
}

func TestEnrolmentInputErrors(t *testing.T) {
	e := newCertEnv(t)
	ctx := context.Background()
	var verr *catalog.ValidationError
	_, err := e.svc.Enroll(ctx, admin, population, csrFor(t, insurance))
	if !errors.As(err, &verr) || verr.Problems[0].Pointer != "/csr" || !strings.Contains(err.Error(), "this enrolment is for spiffe://") {
		t.Fatalf("CSR for another system: %v", err)
	}
	_, err = e.svc.Enroll(ctx, admin, "not-a-system", csrFor(t, population))
	if !errors.As(err, &verr) {
		t.Fatalf("malformed id: %v", err)
	}
	_, err = e.svc.Enroll(ctx, admin, "VN:GOV:000.00.00.G01:NOPE", csrFor(t, "VN:GOV:000.00.00.G01:NOPE"))
	if !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown system: %v", err)
	}
	if got := e.refusals("certificate.enroll"); len(got) != 2 {
		t.Errorf("want the two bad requests in the trail, got %q", got)
	}
	if list, _ := e.svc.Certificates(ctx, admin, catalog.CertificateFilter{}); len(list) != 0 {
		t.Errorf("%d certificates issued for bad requests", len(list))
	}
}

func TestRevokeSystemRevokesEveryCertificateInOneStep(t *testing.T) {
	e := newCertEnv(t)
	ctx := context.Background()
	var serials []string
	for range 3 {
		enr, err := e.enroll(admin, population)
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, enr.Certificate.Serial)
	}
	if _, err := e.svc.RevokeCertificate(ctx, principal(catalog.RoleMemberAdmin, mps), strings.ToUpper(serials[0]), "key lost"); err != nil {
		t.Fatalf("member-admin revokes own certificate (upper-case serial): %v", err)
	}
	_, err := e.svc.RevokeSystem(ctx, principal(catalog.RoleMemberAdmin, mps), population, "self-revocation")
	wantForbidden(t, err, "platform-admin")
	if _, err := e.svc.RevokeSystem(ctx, admin, population, " "); err == nil {
		t.Fatal("revocation without a reason accepted")
	}
	out, err := e.svc.RevokeSystem(ctx, admin, population, "assessment withdrawn")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sorted(out.RevokedCertificates), sorted(serials[1:])) {
		t.Errorf("revoked with the system: %v, want %v", out.RevokedCertificates, serials[1:])
	}
	if out.System.Connectivity.Connectable || !strings.HasPrefix(out.System.Connectivity.Reason, "system revoked: ") {
		t.Errorf("system after revocation: %+v", out.System.Connectivity)
	}
	list, _ := e.svc.Certificates(ctx, admin, catalog.CertificateFilter{System: population})
	for _, c := range list {
		if c.Status != service.CertificateRevoked {
			t.Errorf("certificate %s still %s", c.Serial, c.Status)
		}
	}
	trust, err := e.svc.Trust(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(trust.RevokedSystems, []string{population}) || !slices.Equal(trust.RevokedSerials, sorted(serials)) {
		t.Errorf("trust lists systems %v serials %v", trust.RevokedSystems, trust.RevokedSerials)
	}
	_, err = e.enroll(admin, population)
	wantForbidden(t, err, "system revoked: assessment withdrawn")
	if _, err := e.svc.RevokeSystem(ctx, admin, population, "again"); !errors.Is(err, catalog.ErrConflict) {
		t.Errorf("second revocation: %v", err)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestTrustListsRevokedSerialsUntilTheyExpire(t *testing.T) {
	e := newCertEnv(t)
	ctx := context.Background()
	enr, err := e.enroll(admin, population)
	if err != nil {
		t.Fatal(err)
	}
	before, err := e.svc.Trust(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := e.svc.Trust(ctx)
	if again.ETag != before.ETag {
		t.Errorf("ETag changed without a change: %s vs %s", before.ETag, again.ETag)
	}
	if _, err := e.svc.RevokeCertificate(ctx, admin, enr.Certificate.Serial, "compromised"); err != nil {
		t.Fatal(err)
	}
	revoked, _ := e.svc.Trust(ctx)
	if !slices.Equal(revoked.RevokedSerials, []string{enr.Certificate.Serial}) || revoked.ETag == before.ETag || revoked.Revision <= before.Revision {
		t.Fatalf("after revocation: %+v (before %s)", revoked, before.ETag)
	}
	// Once the certificate has expired the list no longer needs it; the
	// catalog revision is the same, the ETag is not.
	e.clock.Advance(certs.DefaultTTL + time.Hour)
	later, _ := e.svc.Trust(ctx)
	if len(later.RevokedSerials) != 0 || later.Revision != revoked.Revision || later.ETag == revoked.ETag {
		t.Errorf("after expiry: %+v (was %s)", later, revoked.ETag)
	}
	roots, err := certs.ParseCertificatesPEM([]byte(later.RootsPEM))
	if err != nil || len(roots) != 1 || !roots[0].Equal(e.ca.Current().Root) {
		t.Errorf("roots: %d %v", len(roots), err)
	}
}

// signOnly hides the embedded CA's rotation, as the Vault backend has none.
type signOnly struct{ certs.Authority }

// failing is an authority whose backend is down.
type failing struct{ certs.Authority }

func (failing) Sign(context.Context, certs.SignRequest) (*certs.Issued, error) {
	return nil, errors.New("dial tcp 10.0.0.7:8200: connection refused")
}

func TestAuthorityLimits(t *testing.T) {
	e := newCertEnv(t)
	ctx := context.Background()

	vaultLike := service.New(e.store, service.WithAuthority(signOnly{e.ca}))
	if _, err := vaultLike.RotateCA(ctx, admin); !errors.Is(err, catalog.ErrConflict) || !strings.Contains(err.Error(), "Vault") {
		t.Errorf("rotation without Rotatable: %v", err)
	}
	st, err := vaultLike.CA(ctx)
	if err != nil || st.Rotatable || len(st.Roots) != 1 {
		t.Errorf("status: %+v %v", st, err)
	}

	none := service.New(e.store)
	if _, err := none.Enroll(ctx, admin, population, csrFor(t, population)); !errors.Is(err, service.ErrNoAuthority) {
		t.Errorf("enrol without authority: %v", err)
	}
	if _, err := none.Trust(ctx); !errors.Is(err, service.ErrNoAuthority) {
		t.Errorf("trust without authority: %v", err)
	}

	down := service.New(e.store, service.WithAuthority(failing{e.ca}))
	if _, err := down.Enroll(ctx, admin, population, csrFor(t, population)); !errors.Is(err, service.ErrAuthorityFailed) {
		t.Errorf("authority down: %v", err)
	}
	if list, _ := e.svc.Certificates(ctx, admin, catalog.CertificateFilter{}); len(list) != 0 {
		t.Errorf("%d certificates recorded without a signature", len(list))
	}

	_, err = e.svc.RotateCA(ctx, principal(catalog.RoleMemberAdmin, mps))
	wantForbidden(t, err, "platform-admin")
	if got := e.refusals("ca.rotate"); len(got) != 1 {
		t.Errorf("refused rotation not in the trail: %q", got)
	}
	if _, err := e.svc.RetireCA(ctx, admin); !errors.Is(err, catalog.ErrConflict) {
		t.Errorf("retire without rotation: %v", err)
	}
	rot, err := e.svc.RotateCA(ctx, admin)
	if err != nil || len(rot.Roots) != 2 {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	if _, err := e.svc.RotateCA(ctx, admin); !errors.Is(err, catalog.ErrConflict) {
		t.Errorf("second rotation: %v", err)
	}
}

func TestCertificateVisibility(t *testing.T) {
	e := newCertEnv(t)
	ctx := context.Background()
	enr, err := e.enroll(admin, population)
	if err != nil {
		t.Fatal(err)
	}
	serial := enr.Certificate.Serial
	owner := principal(catalog.RoleAuditor, mps)
	other := principal(catalog.RoleMemberAdmin, vss)
	if _, err := e.svc.Certificate(ctx, owner, serial); err != nil {
		t.Errorf("owner's auditor: %v", err)
	}
	if _, err := e.svc.Certificate(ctx, other, serial); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("other member sees the certificate: %v", err)
	}
	if list, _ := e.svc.Certificates(ctx, other, catalog.CertificateFilter{Member: mps}); len(list) != 0 {
		t.Errorf("other member lists %d certificates of %s", len(list), mps)
	}
	if _, err := e.svc.Certificate(ctx, admin, "zz"); err == nil {
		t.Error("malformed serial accepted")
	}
	_, err = e.svc.RevokeCertificate(ctx, other, serial, "mischief")
	wantForbidden(t, err, "not for "+mps)
	if got := e.refusals("certificate.revoke"); len(got) != 1 {
		t.Errorf("refused revocation not in the trail: %q", got)
	}
	leaf, err := certs.ParseCertificatesPEM([]byte(enr.ChainPEM))
	if err != nil {
		t.Fatal(err)
	}
	if got := certs.SerialHex(leaf[0].SerialNumber); got != serial {
		t.Errorf("record serial %s, certificate %s", serial, got)
	}
}
