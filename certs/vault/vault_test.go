// These tests talk to vaulttest, an in-repo stand-in that implements the
// few Vault endpoints the backend calls as Vault's API documentation
// describes them. A real Vault or OpenBao server cannot run on the machines
// where these tests run; try a deployment against the real one once.
package vault

import (
	"context"
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/certs/authoritytest"
	"github.com/lienthong/lienthong/certs/vault/vaulttest"
)

func newServer(t *testing.T, edit func(*vaulttest.Config)) *vaulttest.Server {
	t.Helper()
	cfg := vaulttest.Config{Role: vaulttest.RecommendedRole(authoritytest.TrustDomain)}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := vaulttest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func withToken(t *testing.T, srv *vaulttest.Server) *Authority {
	t.Helper()
	a, err := New(Config{Address: srv.URL, CACertPEM: srv.CACertPEM(), Role: "lienthong-system", Token: srv.RootToken()})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func withAppRole(t *testing.T, srv *vaulttest.Server) *Authority {
	t.Helper()
	roleID, secretID := srv.AppRoleCredentials()
	a, err := New(Config{Address: srv.URL, CACertPEM: srv.CACertPEM(), Role: "lienthong-system", AppRole: &AppRole{RoleID: roleID, SecretID: secretID}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestConformanceToken(t *testing.T) {
	authoritytest.Run(t, func(t *testing.T) certs.Authority { return withToken(t, newServer(t, nil)) })
}

func TestConformanceAppRole(t *testing.T) {
	authoritytest.Run(t, func(t *testing.T) certs.Authority { return withAppRole(t, newServer(t, nil)) })
}

// signPopulation enrols the population database system the way a gateway
// does, with a key made locally.
func signPopulation(a *Authority, ttl time.Duration) (*certs.Issued, error) {
	_, csr, err := certs.GenerateKeyAndCSR(authoritytest.Population, authoritytest.TrustDomain)
	if err != nil {
		return nil, err
	}
	return a.Sign(context.Background(), certs.SignRequest{CSR: csr, System: authoritytest.Population, TrustDomain: authoritytest.TrustDomain, TTL: ttl})
}

// A Vault role broader than ours must not get its certificates through.
func TestRefusesWhatVaultShouldNotHaveIssued(t *testing.T) {
	other, _ := url.Parse(authoritytest.Insurance.SPIFFE(authoritytest.TrustDomain))
	cases := map[string]func(*vaulttest.Role){
		"DNS name": func(r *vaulttest.Role) {
			r.Tamper = func(c *x509.Certificate) { c.DNSNames = []string{"any.example.vn"} }
		},
		"second URI":          func(r *vaulttest.Role) { r.Tamper = func(c *x509.Certificate) { c.URIs = append(c.URIs, other) } },
		"another system's id": func(r *vaulttest.Role) { r.Tamper = func(c *x509.Certificate) { c.URIs = []*url.URL{other} } },
		"CA rights": func(r *vaulttest.Role) {
			r.Tamper = func(c *x509.Certificate) { c.BasicConstraintsValid, c.IsCA = true, true }
		},
		"no server auth":   func(r *vaulttest.Role) { r.ServerFlag = false },
		"code signing too": func(r *vaulttest.Role) { r.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning} },
		"longer than asked": func(r *vaulttest.Role) {
			r.Tamper = func(c *x509.Certificate) { c.NotAfter = c.NotAfter.Add(10 * 24 * time.Hour) }
		},
		"cert-signing key use": func(r *vaulttest.Role) { r.KeyUsage |= x509.KeyUsageCertSign },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, func(c *vaulttest.Config) { edit(&c.Role) })
			_, err := signPopulation(withToken(t, srv), time.Hour)
			if !errors.Is(err, ErrRefusedCertificate) {
				t.Fatalf("err = %v, want ErrRefusedCertificate", err)
			}
			t.Log(err)
			if srv.Hits("sign") != 1 {
				t.Errorf("sign called %d times", srv.Hits("sign"))
			}
		})
	}
}

func TestBadCSRNeverReachesVault(t *testing.T) {
	srv := newServer(t, nil)
	a := withToken(t, srv)
	_, err := a.Sign(context.Background(), certs.SignRequest{CSR: []byte("garbage"), System: authoritytest.Population, TrustDomain: authoritytest.TrustDomain})
	var ce *certs.CSRError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v", err)
	}
	if srv.Hits("sign") != 0 {
		t.Error("Vault was asked to sign a refused CSR")
	}
}

func TestVaultErrorsAreReported(t *testing.T) {
	// A role that wants a common name cannot serve us; the error must say so.
	srv := newServer(t, func(c *vaulttest.Config) { c.Role.RequireCN = true })
	if _, err := signPopulation(withToken(t, srv), time.Hour); err == nil || !strings.Contains(err.Error(), "require_cn") {
		t.Errorf("require_cn role: %v", err)
	}
	// A role whose allowed_uri_sans miss our trust domain.
	srv = newServer(t, func(c *vaulttest.Config) { c.Role.AllowedURISANs = []string{"spiffe://elsewhere/*"} })
	if _, err := signPopulation(withToken(t, srv), time.Hour); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Errorf("allowed_uri_sans mismatch: %v", err)
	}
	// Unknown role, bad token.
	srv = newServer(t, nil)
	a, _ := New(Config{Address: srv.URL, CACertPEM: srv.CACertPEM(), Role: "nope", Token: srv.RootToken()})
	if _, err := signPopulation(a, time.Hour); err == nil || !strings.Contains(err.Error(), "unknown role") {
		t.Errorf("unknown role: %v", err)
	}
	a, _ = New(Config{Address: srv.URL, CACertPEM: srv.CACertPEM(), Role: "lienthong-system", Token: "hvs.wrong"})
	if _, err := signPopulation(a, time.Hour); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("bad token: %v", err)
	}
	roleID, _ := srv.AppRoleCredentials()
	a, _ = New(Config{Address: srv.URL, CACertPEM: srv.CACertPEM(), Role: "lienthong-system", AppRole: &AppRole{RoleID: roleID, SecretID: "wrong"}})
	if _, err := signPopulation(a, time.Hour); err == nil || !strings.Contains(err.Error(), "invalid role or secret ID") {
		t.Errorf("bad secret_id: %v", err)
	}
	if _, err := New(Config{Address: srv.URL, Role: "r", Token: "t", AppRole: &AppRole{RoleID: "x"}}); err == nil {
		t.Error("token and AppRole together accepted")
	}
}

func TestAppRoleRenewAndRelogin(t *testing.T) {
	srv := newServer(t, func(c *vaulttest.Config) { c.TokenTTL, c.TokenMaxTTL = 30*time.Minute, 2*time.Hour })
	a := withAppRole(t, srv)
	var mu sync.Mutex
	clock := time.Now()
	a.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	if _, err := signPopulation(a, time.Hour); err != nil {
		t.Fatal(err)
	}
	if srv.Hits("login") != 1 {
		t.Fatalf("logins = %d", srv.Hits("login"))
	}
	// Within 2/3 of the token's life: reuse it.
	advance(10 * time.Minute)
	if _, err := signPopulation(a, time.Hour); err != nil {
		t.Fatal(err)
	}
	if srv.Hits("login") != 1 || srv.Hits("renew-self") != 0 {
		t.Fatalf("logins %d renewals %d", srv.Hits("login"), srv.Hits("renew-self"))
	}
	// Past 2/3 (our clock only; the server's token is still valid): renew.
	advance(12 * time.Minute)
	if _, err := signPopulation(a, time.Hour); err != nil {
		t.Fatal(err)
	}
	if srv.Hits("renew-self") != 1 || srv.Hits("login") != 1 {
		t.Fatalf("logins %d renewals %d", srv.Hits("login"), srv.Hits("renew-self"))
	}
	// Vault forgets the token (expiry, revocation): 403, log in, retry.
	srv.RevokeTokens()
	if _, err := signPopulation(a, time.Hour); err != nil {
		t.Fatal(err)
	}
	if srv.Hits("login") != 2 || srv.Hits("sign") != 4 {
		t.Fatalf("logins %d signs %d", srv.Hits("login"), srv.Hits("sign"))
	}
	// Concurrent requests hitting a revoked token log in once, not each.
	srv.RevokeTokens()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := signPopulation(a, time.Hour); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := srv.Hits("login"); n != 3 {
		t.Errorf("logins after concurrent 403s = %d, want 3", n)
	}
}

func TestRotationInVault(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, nil)
	a := withToken(t, srv)
	a.cfg.BundleCacheTTL = time.Hour // only a failed check refreshes it
	before, err := signPopulation(a, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.RotateRoot(); err != nil {
		t.Fatal(err)
	}
	// Signed by the new intermediate, whose root the cache has not seen:
	// the backend refreshes rather than refuses.
	after, err := signPopulation(a, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if after.Chain[0].Equal(before.Chain[0]) {
		t.Fatal("not signed by the new issuer")
	}
	bundle, err := a.TrustBundle(ctx)
	if err != nil || len(bundle) != 2 {
		t.Fatalf("bundle during rotation: %d roots, %v", len(bundle), err)
	}
	check := func(iss *certs.Issued, roots []*x509.Certificate) error {
		return certs.CheckIssued(iss.Leaf, iss.Chain, certs.Expectation{SPIFFEID: authoritytest.Population.SPIFFE(authoritytest.TrustDomain), PublicKey: iss.Leaf.PublicKey, Roots: roots})
	}
	if check(before, bundle) != nil || check(after, bundle) != nil {
		t.Error("old or new certificate does not verify during rotation")
	}
	// A revoked root leaves the bundle even while Vault still lists it.
	if !srv.RevokeIssuer("root-1") {
		t.Fatal("no issuer root-1")
	}
	a.cfg.BundleCacheTTL = time.Nanosecond
	if bundle, err := a.TrustBundle(ctx); err != nil || len(bundle) != 1 || check(before, bundle) == nil {
		t.Errorf("bundle with a revoked root: %d roots, %v", len(bundle), err)
	}
	srv.RemoveIssuersExceptDefault()
	bundle, err = a.TrustBundle(ctx)
	if err != nil || len(bundle) != 1 {
		t.Fatalf("bundle after retiring: %d roots, %v", len(bundle), err)
	}
	if check(before, bundle) == nil {
		t.Error("certificate under the retired root still verifies")
	}
	if check(after, bundle) != nil {
		t.Error("new certificate does not verify after retiring")
	}
}

func TestTTLCappedByRole(t *testing.T) {
	srv := newServer(t, func(c *vaulttest.Config) { c.Role.MaxTTL = time.Hour })
	iss, err := signPopulation(withToken(t, srv), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(iss.Leaf.NotAfter); d > time.Hour+time.Minute {
		t.Errorf("lifetime %v beyond the role's max_ttl", d)
	}
}
