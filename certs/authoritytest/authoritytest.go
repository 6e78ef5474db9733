// Package authoritytest is the conformance suite every certs.Authority
// passes: the embedded CA and the Vault backend run the same tests, so the
// control plane can rely on the same certificate profile from either.
package authoritytest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"math/bits"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
)

// TrustDomain is the trust domain the suite signs for; authorities under
// test (a Vault role's allowed_uri_sans, say) must accept it.
const TrustDomain = "lienthong.test"

// Systems the suite enrols.
var (
	Population = catalog.SystemID{Instance: "VN", Class: "GOV", Member: "000.00.00.G01", Code: "CSDLDC"}
	Insurance  = catalog.SystemID{Instance: "VN", Class: "GOV", Member: "000.00.00.G13", Code: "BHXH-PORTAL"}
)

// Run runs the suite. newAuthority is called once per subtest and must
// return a ready authority whose maximum lifetime is at least
// certs.DefaultTTL.
func Run(t *testing.T, newAuthority func(t *testing.T) certs.Authority) {
	t.Run("Profile", func(t *testing.T) { testProfile(t, newAuthority(t)) })
	t.Run("ChainVerifiesForClientAndServer", func(t *testing.T) { testChain(t, newAuthority(t)) })
	t.Run("KeyTypes", func(t *testing.T) { testKeyTypes(t, newAuthority(t)) })
	t.Run("CopiesNothingFromTheRequest", func(t *testing.T) { testNoCopy(t, newAuthority(t)) })
	t.Run("RandomSerials", func(t *testing.T) { testSerials(t, newAuthority(t)) })
	t.Run("TTL", func(t *testing.T) { testTTL(t, newAuthority(t)) })
	t.Run("RefusesBadRequests", func(t *testing.T) { testRefusals(t, newAuthority(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newAuthority(t)) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelled(t, newAuthority(t)) })
}

// CSR makes a key of the given kind ("ec", "ec384", "rsa", "ed25519") and a
// CSR for id, optionally altered by edit before signing.
func CSR(t testing.TB, id catalog.SystemID, kind string, edit func(*x509.CertificateRequest)) (crypto.Signer, []byte) {
	t.Helper()
	var key crypto.Signer
	var err error
	switch kind {
	case "ec":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ec384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(id.SPIFFE(TrustDomain))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: id.String()}, URIs: []*url.URL{u}}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func sign(t *testing.T, a certs.Authority, id catalog.SystemID, csr []byte, ttl time.Duration) *certs.Issued {
	t.Helper()
	iss, err := a.Sign(context.Background(), certs.SignRequest{CSR: csr, System: id, TrustDomain: TrustDomain, TTL: ttl})
	if err != nil {
		t.Fatalf("%s: Sign(%s): %v", a.Name(), id, err)
	}
	return iss
}

func bundle(t *testing.T, a certs.Authority) []*x509.Certificate {
	t.Helper()
	roots, err := a.TrustBundle(context.Background())
	if err != nil {
		t.Fatalf("%s: TrustBundle: %v", a.Name(), err)
	}
	if len(roots) == 0 {
		t.Fatalf("%s: empty trust bundle", a.Name())
	}
	for i, r := range roots {
		if !certs.IsSelfSigned(r) || !r.IsCA {
			t.Fatalf("%s: trust bundle entry %d (%s) is not a self-signed CA", a.Name(), i, r.Subject)
		}
	}
	return roots
}

func testProfile(t *testing.T, a certs.Authority) {
	if a.Name() == "" {
		t.Error("Name() is empty")
	}
	key, csr := CSR(t, Population, "ec", nil)
	iss := sign(t, a, Population, csr, time.Hour)
	leaf := iss.Leaf
	want := Population.SPIFFE(TrustDomain)
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		t.Errorf("URIs = %v, want exactly [%s]", leaf.URIs, want)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		t.Errorf("extra names: DNS %v IP %v email %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	if id, err := certs.SPIFFEID(leaf); err != nil || id != want {
		t.Errorf("SPIFFEID = %q, %v", id, err)
	}
	if leaf.IsCA {
		t.Error("leaf IsCA")
	}
	if leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		t.Errorf("leaf key usage %b includes CA bits", leaf.KeyUsage)
	}
	eku := map[x509.ExtKeyUsage]bool{}
	for _, u := range leaf.ExtKeyUsage {
		eku[u] = true
	}
	if len(leaf.ExtKeyUsage) != 2 || !eku[x509.ExtKeyUsageClientAuth] || !eku[x509.ExtKeyUsageServerAuth] || len(leaf.UnknownExtKeyUsage) != 0 {
		t.Errorf("ExtKeyUsage = %v (+%v), want exactly client and server auth", leaf.ExtKeyUsage, leaf.UnknownExtKeyUsage)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(key.Public()) {
		t.Error("leaf does not certify the CSR's key")
	}
	if iss.Authority != a.Name() {
		t.Errorf("Issued.Authority = %q, want %q", iss.Authority, a.Name())
	}
	rec := iss.Record(Population)
	if rec.Serial != leaf.SerialNumber.Text(16) || rec.SPIFFE != want || rec.System != Population.String() || rec.Authority != a.Name() {
		t.Errorf("Record = %+v", rec)
	}
	if tc, err := iss.TLSCertificate(key); err != nil || len(tc.Certificate) != 1+len(iss.Chain) {
		t.Errorf("TLSCertificate: %v", err)
	}
	// The request asked for nothing else, but the CSR's subject must not
	// be trusted either: identity lives in the URI only.
	if err := certs.CheckIssued(leaf, iss.Chain, certs.Expectation{SPIFFEID: want, PublicKey: key.Public(), Roots: bundle(t, a)}); err != nil {
		t.Errorf("CheckIssued: %v", err)
	}
}

func testNoCopy(t *testing.T, a certs.Authority) {
	custom := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}
	codeSigning, _ := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 3}})
	_, csr := CSR(t, Population, "ec", func(r *x509.CertificateRequest) {
		r.Subject.Organization = []string{"Copied Organisation"}
		r.ExtraExtensions = []pkix.Extension{
			{Id: custom, Value: []byte{0x05, 0x00}},
			{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: codeSigning},
		}
	})
	leaf := sign(t, a, Population, csr, time.Hour).Leaf
	for _, e := range leaf.Extensions {
		if e.Id.Equal(custom) {
			t.Error("an extension of the request was copied into the certificate")
		}
	}
	if len(leaf.ExtKeyUsage) != 2 || len(leaf.UnknownExtKeyUsage) != 0 {
		t.Errorf("ExtKeyUsage %v: the request's code signing was copied", leaf.ExtKeyUsage)
	}
	if len(leaf.Subject.Organization) != 0 {
		t.Errorf("subject organisation %v copied from the request", leaf.Subject.Organization)
	}
}

func testChain(t *testing.T, a certs.Authority) {
	_, csr := CSR(t, Insurance, "ec", nil)
	iss := sign(t, a, Insurance, csr, time.Hour)
	roots := bundle(t, a)
	if len(iss.Chain) == 0 {
		t.Fatal("empty chain: the leaf's issuer must be included")
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, c := range iss.Chain {
		if certs.IsSelfSigned(c) {
			t.Errorf("chain includes root %s", c.Subject)
		}
		inter.AddCert(c)
	}
	if err := iss.Leaf.CheckSignatureFrom(iss.Chain[0]); err != nil {
		t.Errorf("Chain[0] is not the leaf's issuer: %v", err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if _, err := iss.Leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for usage %v: %v", usage, err)
		}
	}
	// Not for code signing or anything else.
	if _, err := iss.Leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err == nil {
		t.Error("leaf verifies for code signing")
	}
	// The chain from the PEM form parses back the same.
	list, err := certs.ParseCertificatesPEM(iss.CertificatePEM())
	if err != nil || len(list) != 1+len(iss.Chain) || !list[0].Equal(iss.Leaf) {
		t.Errorf("CertificatePEM round trip: %d certs, %v", len(list), err)
	}
}

func testKeyTypes(t *testing.T, a certs.Authority) {
	for _, kind := range []string{"ec384", "rsa", "ed25519"} {
		key, csr := CSR(t, Population, kind, nil)
		iss := sign(t, a, Population, csr, time.Hour)
		if err := certs.CheckIssued(iss.Leaf, iss.Chain, certs.Expectation{SPIFFEID: Population.SPIFFE(TrustDomain), PublicKey: key.Public(), Roots: bundle(t, a)}); err != nil {
			t.Errorf("%s key: %v", kind, err)
		}
	}
}

func testSerials(t *testing.T, a certs.Authority) {
	const n = 12
	seen := map[string]bool{}
	var prev *big.Int
	for i := 0; i < n; i++ {
		_, csr := CSR(t, Population, "ec", nil)
		s := sign(t, a, Population, csr, time.Hour).Leaf.SerialNumber
		if s.Sign() <= 0 {
			t.Fatalf("serial %s is not positive", s)
		}
		// A 128-bit or larger random serial is below 2^64 with
		// probability 2^-64: a shorter one is a counter or too little
		// randomness.
		if s.BitLen() < 64 {
			t.Fatalf("serial %x has only %d bits; want at least 64 random bits", s, s.BitLen())
		}
		if seen[s.String()] {
			t.Fatalf("serial %x issued twice", s)
		}
		seen[s.String()] = true
		if prev != nil {
			// Consecutive random serials differ in about half their bits;
			// fewer than 16 differing bits means they are not random.
			diff := 0
			x := new(big.Int).Xor(prev, s)
			for _, w := range x.Bits() {
				diff += bits.OnesCount(uint(w))
			}
			if diff < 16 {
				t.Fatalf("serials %x and %x differ in only %d bits", prev, s, diff)
			}
		}
		prev = s
	}
}

func testTTL(t *testing.T, a certs.Authority) {
	// Certificates carry whole seconds, so allow rounding either way.
	const slack = 2 * time.Second
	for _, ttl := range []time.Duration{5 * time.Minute, 26 * time.Hour, 0} {
		_, csr := CSR(t, Insurance, "ec", nil)
		before := time.Now()
		iss := sign(t, a, Insurance, csr, ttl)
		after := time.Now()
		want := ttl
		if ttl == 0 {
			want = certs.DefaultTTL
		}
		if lo, hi := before.Add(want-slack), after.Add(want+slack); iss.Leaf.NotAfter.Before(lo) || iss.Leaf.NotAfter.After(hi) {
			t.Errorf("ttl %v: NotAfter %s, want between %s and %s", ttl, iss.Leaf.NotAfter, lo, hi)
		}
		if iss.Leaf.NotBefore.After(before) {
			t.Errorf("ttl %v: NotBefore %s is after the request (%s): not usable at once", ttl, iss.Leaf.NotBefore, before)
		}
		if before.Sub(iss.Leaf.NotBefore) > 5*time.Minute {
			t.Errorf("ttl %v: NotBefore %s backdated more than 5 minutes", ttl, iss.Leaf.NotBefore)
		}
	}
	_, csr := CSR(t, Insurance, "ec", nil)
	if _, err := a.Sign(context.Background(), certs.SignRequest{CSR: csr, System: Insurance, TrustDomain: TrustDomain, TTL: -time.Hour}); !isCSRError(err) {
		t.Errorf("negative ttl: err = %v, want *certs.CSRError", err)
	}
}

func isCSRError(err error) bool {
	var ce *certs.CSRError
	return errors.As(err, &ce) && ce.Reason != ""
}

func testRefusals(t *testing.T, a certs.Authority) {
	other := func(r *x509.CertificateRequest) { r.URIs[0], _ = url.Parse(Insurance.SPIFFE(TrustDomain)) }
	dns := func(r *x509.CertificateRequest) { r.DNSNames = []string{"gateway.example.vn"} }
	cases := map[string][]byte{
		"another system's id": func() []byte { _, c := CSR(t, Population, "ec", other); return c }(),
		"DNS name":            func() []byte { _, c := CSR(t, Population, "ec", dns); return c }(),
		"garbage":             []byte("not a certificate request"),
	}
	for name, csr := range cases {
		_, err := a.Sign(context.Background(), certs.SignRequest{CSR: csr, System: Population, TrustDomain: TrustDomain})
		if !isCSRError(err) {
			t.Errorf("%s: err = %v, want *certs.CSRError", name, err)
		}
	}
}

func testConcurrent(t *testing.T, a certs.Authority) {
	const workers, each = 6, 4
	roots := bundle(t, a)
	var mu sync.Mutex
	serials := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			id := Population
			if w%2 == 1 {
				id = Insurance
			}
			for i := 0; i < each; i++ {
				key, csr := CSR(t, id, "ec", nil)
				iss, err := a.Sign(context.Background(), certs.SignRequest{CSR: csr, System: id, TrustDomain: TrustDomain, TTL: time.Hour})
				if err != nil {
					errs <- err
					continue
				}
				if err := certs.CheckIssued(iss.Leaf, iss.Chain, certs.Expectation{SPIFFEID: id.SPIFFE(TrustDomain), PublicKey: key.Public(), Roots: roots}); err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				if serials[iss.Leaf.SerialNumber.String()] {
					errs <- errors.New("duplicate serial under concurrency")
				}
				serials[iss.Leaf.SerialNumber.String()] = true
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(serials) != workers*each {
		t.Errorf("%d certificates issued, want %d", len(serials), workers*each)
	}
}

func testCancelled(t *testing.T, a certs.Authority) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, csr := CSR(t, Population, "ec", nil)
	if _, err := a.Sign(ctx, certs.SignRequest{CSR: csr, System: Population, TrustDomain: TrustDomain}); err == nil {
		t.Error("Sign with a cancelled context succeeded")
	}
}
