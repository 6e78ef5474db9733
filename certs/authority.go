package certs

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

// DefaultTTL is the lifetime of a system certificate when the request names
// none. It is short so that a revoked or lapsed system drops off the network
// within days even if a gateway misses a revocation list, and long enough that
// a control-plane outage of a day does not stop traffic.
const DefaultTTL = 72 * time.Hour

// Authority signs certificate requests for systems. The embedded CA and the
// Vault PKI backend implement it and pass the same conformance suite
// (certs/authoritytest), so the control plane does not care which one runs.
//
// Callers decide eligibility first: an Authority signs whatever valid request
// it gets, it does not look at security assessments.
type Authority interface {
	// Sign issues a certificate for req.CSR whose only subject alternative
	// name is the system's SPIFFE id, with extended key usages client and
	// server authentication, no CA rights, and NotAfter = now + req.TTL
	// (capped by the authority). Nothing is copied from the request but its
	// public key. The result holds the leaf and the chain up to, excluding,
	// the root. A request that is itself at fault yields a *CSRError.
	Sign(ctx context.Context, req SignRequest) (*Issued, error)
	// TrustBundle returns the roots gateways must trust now: one normally,
	// two while a CA rotation is under way.
	TrustBundle(ctx context.Context) ([]*x509.Certificate, error)
	// Name identifies the authority in certificate records and logs.
	Name() string
}

// SignRequest is one certificate request for one system.
type SignRequest struct {
	// CSR is a PKCS #10 request, PEM or DER.
	CSR []byte
	// System is the system the certificate is for; the CSR must name its
	// SPIFFE id and nothing else.
	System catalog.SystemID
	// TrustDomain is the SPIFFE trust domain of the federation, e.g.
	// "lienthong.gov.vn".
	TrustDomain string
	// TTL is the wanted lifetime; zero means DefaultTTL.
	TTL time.Duration
}

// SPIFFEID is the identity the issued certificate will carry.
func (r SignRequest) SPIFFEID() string { return r.System.SPIFFE(r.TrustDomain) }

// Lifetime returns the lifetime to ask for: TTL, or DefaultTTL when TTL is
// zero. A negative TTL is the requester's mistake and yields a *CSRError.
func (r SignRequest) Lifetime() (time.Duration, error) {
	switch {
	case r.TTL < 0:
		return 0, &CSRError{Reason: fmt.Sprintf("the requested lifetime %s is negative; ask for a positive duration or none for the default %s", r.TTL, DefaultTTL)}
	case r.TTL == 0:
		return DefaultTTL, nil
	}
	return r.TTL, nil
}

// Issued is a certificate an Authority issued, with the chain a TLS peer
// needs to reach a root in the trust bundle.
type Issued struct {
	// Leaf is the system's certificate.
	Leaf *x509.Certificate
	// Chain holds the intermediates, the leaf's issuer first, without the
	// root: peers have the root already, and sending it would only cost bytes.
	Chain []*x509.Certificate
	// Authority is the Name of the authority that signed it.
	Authority string
}

// CertificatePEM returns the leaf followed by its chain, the form a TLS
// server or client presents and tls.X509KeyPair reads.
func (i *Issued) CertificatePEM() []byte {
	return EncodeCertificatesPEM(append([]*x509.Certificate{i.Leaf}, i.Chain...))
}

// TLSCertificate pairs the issued chain with the private key that made the
// CSR, ready for a Rotator's Renew function.
func (i *Issued) TLSCertificate(key crypto.Signer) (tls.Certificate, error) {
	if key == nil {
		return tls.Certificate{}, errors.New("certs: no private key for the issued certificate")
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(i.Leaf.PublicKey) {
		return tls.Certificate{}, errors.New("certs: the private key does not match the issued certificate")
	}
	chain := make([][]byte, 0, 1+len(i.Chain))
	chain = append(chain, i.Leaf.Raw)
	for _, c := range i.Chain {
		chain = append(chain, c.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: i.Leaf}, nil
}

// Record returns the catalog's record of the certificate, so every issuance
// is written down with the same fields whichever authority signed it.
func (i *Issued) Record(system catalog.SystemID) catalog.Certificate {
	rec := catalog.Certificate{
		Serial:    SerialHex(i.Leaf.SerialNumber),
		System:    system.String(),
		Authority: i.Authority,
		NotBefore: i.Leaf.NotBefore.UTC(),
		NotAfter:  i.Leaf.NotAfter.UTC(),
		PEM:       string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.Leaf.Raw})),
	}
	if len(i.Leaf.URIs) == 1 {
		rec.SPIFFE = i.Leaf.URIs[0].String()
	}
	return rec
}

// SerialHex formats a serial number the way the catalog stores it and
// revocation lists name it: lower-case hex without separators or leading
// zeros.
func SerialHex(serial *big.Int) string {
	if serial == nil {
		return ""
	}
	return serial.Text(16)
}
