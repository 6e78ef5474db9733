package exchange

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"net/url"
	"testing"
	"time"
)

// peerCert makes a parsed self-signed certificate with the given URI SANs
// and DNS names (real DER, so certs.SPIFFEID reads it as it reads a peer's).
func peerCert(t *testing.T, serial int64, uris []string, dns []string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), DNSNames: dns}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestPeerIDsNeverMixCertificates tries to get one certificate's id for
// another, or a refused certificate's id from the cache, including across
// the cache's reset at maxPeerIDs.
func TestPeerIDsNeverMixCertificates(t *testing.T) {
	var p peerIDs
	a := peerCert(t, 1, []string{"spiffe://td/GOV/000.00.00.G01/A"}, nil)
	b := peerCert(t, 2, []string{"spiffe://td/GOV/000.00.00.G02/B"}, nil)
	bad := peerCert(t, 3, []string{"spiffe://td/GOV/000.00.00.G01/A"}, []string{"a.example"})
	for round := 0; round < 3; round++ {
		for _, c := range []struct {
			cert *x509.Certificate
			want string
		}{{a, "spiffe://td/GOV/000.00.00.G01/A"}, {b, "spiffe://td/GOV/000.00.00.G02/B"}} {
			if got, err := p.spiffeID(c.cert); err != nil || got != c.want {
				t.Fatalf("round %d: id %q, %v; want %q", round, got, err, c.want)
			}
		}
		if id, err := p.spiffeID(bad); err == nil {
			t.Fatalf("round %d: a certificate with a DNS name besides its SPIFFE id was accepted as %q", round, id)
		}
	}
	// Fill the cache past its bound with copies of a (distinct pointers):
	// it starts over rather than growing, and b is still read right.
	for i := 0; i < maxPeerIDs+10; i++ {
		cp := *a
		if _, err := p.spiffeID(&cp); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.ids) > maxPeerIDs {
		t.Fatalf("cache holds %d ids, bound %d", len(p.ids), maxPeerIDs)
	}
	if got, err := p.spiffeID(b); err != nil || got != "spiffe://td/GOV/000.00.00.G02/B" {
		t.Fatalf("after the reset: %q, %v", got, err)
	}
}
