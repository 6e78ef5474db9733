package certs

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"
)

// SerialBits is the size of the random serial numbers Liên Thông's own CA
// gives. CA/Browser Forum rules ask for at least 64 bits of randomness; 128
// makes collisions across CAs and rotations a non-question, which matters
// because revocation lists name serials only.
const SerialBits = 128

// ClockSkew is how far back a leaf's NotBefore is set, so a peer whose clock
// runs a little behind still accepts a certificate issued this second.
const ClockSkew = time.Minute

// NewSerial returns a positive random serial of SerialBits bits from
// crypto/rand.
func NewSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), SerialBits)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("certs: random serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// LeafTemplate is the one certificate profile Liên Thông issues to systems:
// the SPIFFE id as the only subject alternative name, digital signature key
// usage, client and server authentication, not a CA. subject is informative
// only (the system id, for people reading certificates); identity comes from
// the URI.
func LeafTemplate(serial *big.Int, spiffeID, subject string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	u, err := url.Parse(spiffeID)
	if err != nil || u.Scheme != "spiffe" || u.Host == "" {
		return nil, fmt.Errorf("certs: %q is not a SPIFFE id", spiffeID)
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: subject},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		URIs:                  []*url.URL{u},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
	}, nil
}

// Expectation is what a certificate issued for one request must be.
type Expectation struct {
	// SPIFFEID is the one URI the leaf must carry.
	SPIFFEID string
	// PublicKey is the key from the CSR; the leaf must certify exactly it.
	PublicKey crypto.PublicKey
	// Roots is the trust bundle the chain must reach.
	Roots []*x509.Certificate
	// NotAfterBy is the latest acceptable NotAfter (the request time plus
	// the asked lifetime plus a little slack); zero skips the check.
	NotAfterBy time.Time
	// Now is the verification time; zero means time.Now().
	Now time.Time
}

// CheckIssued verifies that leaf and chain are exactly what Liên Thông
// issues for exp: one URI SAN equal to exp.SPIFFEID and no other name,
// extended key usages client and server authentication and nothing else, no
// CA rights, the requested public key, a lifetime within exp.NotAfterBy, a
// chain without the root, and a path to exp.Roots valid for both client and
// server authentication. External CAs (Vault) are checked with it after they
// sign, because their role configuration may allow more than we do.
func CheckIssued(leaf *x509.Certificate, chain []*x509.Certificate, exp Expectation) error {
	if leaf == nil {
		return errors.New("no certificate")
	}
	now := exp.Now
	if now.IsZero() {
		now = time.Now()
	}
	if leaf.IsCA || leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		return errors.New("the certificate has CA rights")
	}
	if err := checkLeafEKU(leaf); err != nil {
		return err
	}
	id, err := SPIFFEID(leaf)
	if err != nil {
		return err
	}
	if id != exp.SPIFFEID {
		return fmt.Errorf("the certificate names %q, want %q", id, exp.SPIFFEID)
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(exp.PublicKey) {
		return errors.New("the certificate is for another public key than the request's")
	}
	if leaf.SerialNumber == nil || leaf.SerialNumber.Sign() <= 0 {
		return errors.New("the certificate's serial number is not positive")
	}
	if !exp.NotAfterBy.IsZero() && leaf.NotAfter.After(exp.NotAfterBy) {
		return fmt.Errorf("the certificate lives until %s, longer than asked (%s)", leaf.NotAfter.UTC().Format(time.RFC3339), exp.NotAfterBy.UTC().Format(time.RFC3339))
	}
	for _, c := range chain {
		if IsSelfSigned(c) {
			return errors.New("the chain includes a root; it must stop below the root")
		}
	}
	if len(exp.Roots) == 0 {
		return errors.New("no trust roots to verify the chain against")
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range exp.Roots {
		roots.AddCert(r)
	}
	for _, c := range chain {
		inter.AddCert(c)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return fmt.Errorf("the certificate does not chain to the trust bundle: %w", err)
		}
	}
	return nil
}

func checkLeafEKU(leaf *x509.Certificate) error {
	if len(leaf.UnknownExtKeyUsage) > 0 {
		return fmt.Errorf("the certificate has extra extended key usages %v", leaf.UnknownExtKeyUsage)
	}
	var server, client bool
	for _, u := range leaf.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			server = true
		case x509.ExtKeyUsageClientAuth:
			client = true
		default:
			return fmt.Errorf("the certificate has extended key usage %d besides client and server authentication", u)
		}
	}
	if !server || !client {
		return errors.New("the certificate lacks client or server authentication in its extended key usage")
	}
	return nil
}

// SPIFFEID returns the SPIFFE id a certificate carries, and an error unless
// it carries exactly one URI, a spiffe:// one, and no other subject
// alternative name. Gateways take the caller's identity from it.
func SPIFFEID(cert *x509.Certificate) (string, error) {
	if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses) > 0 {
		return "", errors.New("the certificate carries DNS, IP or email names besides its SPIFFE id")
	}
	var uris []string
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidSubjectAltName) {
			// Re-read the extension: Go's parser skips name types it does
			// not model, which must not pass unnoticed.
			if err := checkSANShape(ext.Value, &uris); err != nil {
				return "", err
			}
		}
	}
	if len(uris) != 1 || len(cert.URIs) != 1 {
		return "", fmt.Errorf("the certificate carries %d URIs; exactly one SPIFFE id is required", len(uris))
	}
	if !strings.HasPrefix(uris[0], "spiffe://") {
		return "", fmt.Errorf("the certificate's URI %q is not a SPIFFE id", printable(uris[0]))
	}
	return uris[0], nil
}

// checkSANShape collects the URIs of a SAN extension and fails on any other
// name type.
func checkSANShape(value []byte, uris *[]string) error {
	return walkSAN(value, func(tag int, content []byte) error {
		if tag != 6 {
			return fmt.Errorf("the certificate carries a %s besides its SPIFFE id", nameKind(tag))
		}
		*uris = append(*uris, string(content))
		return nil
	})
}

// IsSelfSigned reports whether c is a root: its own issuer and signed by its
// own key.
func IsSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}

// EncodeCertificatesPEM returns the certificates as concatenated PEM blocks.
func EncodeCertificatesPEM(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// ParseCertificatesPEM reads every CERTIFICATE block in data and fails on
// anything else, so a bundle with a stray private key is noticed.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certs: unexpected PEM block %q among certificates", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: parse certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(data)) > 0 {
		return nil, errors.New("certs: trailing data after the last PEM certificate")
	}
	if len(out) == 0 {
		return nil, errNoCertificates
	}
	return out, nil
}

// ParseSerial reads a serial number written as hex, with or without colons
// or dashes between bytes (as Vault writes them) and in either case, so
// revocation lists from any source compare equal to SerialHex.
func ParseSerial(s string) (*big.Int, error) {
	trimmed := strings.TrimSpace(s)
	clean := strings.NewReplacer(":", "", "-", "").Replace(trimmed)
	n, ok := new(big.Int).SetString(clean, 16)
	if !ok || clean == "" || strings.HasPrefix(clean, "+") || strings.Trim(trimmed, ":-") != trimmed || n.Sign() <= 0 {
		return nil, fmt.Errorf("certs: %q is not a positive hexadecimal serial number", printable(s))
	}
	return n, nil
}
