package certs

import (
	"bytes"
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
	"fmt"
	"net/url"
	"strings"

	"github.com/lienthong/lienthong/catalog"
)

// MaxCSRSize bounds the input ValidateCSR reads. A real request is well
// under 4 KiB even with an 8192-bit RSA key; anything larger is refused
// before parsing.
const MaxCSRSize = 64 << 10

// CSRError says why a certificate request was refused. Reason is one
// sentence meant for the requester (an RFC 9457 "detail"): it names what is
// wrong and what is expected, and never carries secrets.
type CSRError struct {
	// Reason is the sentence itself, e.g. "RSA keys must have 2048 to 8192
	// bits; this one has 1024".
	Reason string
}

// Error returns Reason unadorned, so it can be shown as is.
func (e *CSRError) Error() string { return e.Reason }

func refuse(format string, args ...any) error {
	return &CSRError{Reason: fmt.Sprintf(format, args...)}
}

// Object identifiers of the extensions ValidateCSR understands.
var (
	oidSubjectAltName   = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidSubjectKeyID     = asn1.ObjectIdentifier{2, 5, 29, 14}
)

// ValidateCSR checks a certificate request for the system want in
// trustDomain and returns it parsed. It accepts PEM or DER and refuses, with
// a *CSRError, a request that:
//
//   - does not parse, or whose signature does not verify, or that is signed
//     with SHA-1 or MD5;
//   - has a key other than ECDSA P-256/P-384, RSA of 2048 to 8192 bits, or
//     Ed25519;
//   - asks for any subject alternative name but exactly one URI, or whose URI
//     is not want's SPIFFE id (another system's id, above all);
//   - asks for CA rights (basicConstraints CA:TRUE, keyCertSign, cRLSign);
//   - repeats an extension or marks one critical that is not understood here.
//
// Passing says only that the request is well-formed for want: authorities
// copy nothing from it but the public key. An invalid want or trustDomain is
// the caller's fault and yields a plain error.
func ValidateCSR(data []byte, want catalog.SystemID, trustDomain string) (*x509.CertificateRequest, error) {
	wantURI, err := spiffeFor(want, trustDomain)
	if err != nil {
		return nil, err
	}
	der, err := csrDER(data)
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, refuse("the certificate request is not a valid PKCS #10 structure (%s)", printable(strings.TrimPrefix(err.Error(), "x509: ")))
	}
	if err := checkSignatureAlgorithm(csr.SignatureAlgorithm); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, refuse("the certificate request's signature does not verify against its own public key; it was altered or signed with another key")
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if err := checkExtensions(csr.Extensions, wantURI); err != nil {
		return nil, err
	}
	return csr, nil
}

// spiffeFor validates the caller's side of the check.
func spiffeFor(want catalog.SystemID, trustDomain string) (string, error) {
	if _, err := catalog.ParseSystemID(want.String()); err != nil {
		return "", fmt.Errorf("certs: wanted system: %w", err)
	}
	if !ValidTrustDomain(trustDomain) {
		return "", fmt.Errorf("certs: trust domain %q must be lower-case letters, digits, '.', '-' or '_'", trustDomain)
	}
	return want.SPIFFE(trustDomain), nil
}

// ValidTrustDomain reports whether td is a SPIFFE trust domain name as the
// SPIFFE specification allows it: lower-case letters, digits, dots, dashes
// and underscores, at most 255 characters.
func ValidTrustDomain(td string) bool {
	if td == "" || len(td) > 255 {
		return false
	}
	for _, c := range td {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// csrDER unwraps PEM input, or passes DER through.
func csrDER(data []byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, refuse("the certificate request is empty")
	}
	if len(data) > MaxCSRSize {
		return nil, refuse("the certificate request is %d bytes; at most %d are accepted", len(data), MaxCSRSize)
	}
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		return data, nil
	}
	block, rest := pem.Decode(trimmed)
	if block == nil {
		return nil, refuse("the certificate request looks like PEM but its block is damaged")
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, refuse("the PEM block is a %q; send a \"CERTIFICATE REQUEST\"", block.Type)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, refuse("the PEM input holds more than one block; send the certificate request alone")
	}
	return block.Bytes, nil
}

func checkSignatureAlgorithm(alg x509.SignatureAlgorithm) error {
	switch alg {
	case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS,
		x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512,
		x509.PureEd25519:
		return nil
	}
	return refuse("the certificate request is signed with %v, which is not accepted; sign it with SHA-256 or stronger (or Ed25519)", alg)
}

func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return refuse("ECDSA keys must use curve P-256 or P-384; this one uses %s", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > 8192 {
			return refuse("RSA keys must have 2048 to 8192 bits; this one has %d", bits)
		}
	case ed25519.PublicKey:
	default:
		return refuse("the key type %T is not accepted; use ECDSA P-256 or P-384, RSA of 2048 bits or more, or Ed25519", pub)
	}
	return nil
}

func checkExtensions(exts []pkix.Extension, wantURI string) error {
	seen := make(map[string]bool, len(exts))
	sawSAN := false
	for _, ext := range exts {
		id := ext.Id.String()
		if seen[id] {
			return refuse("the certificate request carries extension %s more than once", id)
		}
		seen[id] = true
		switch {
		case ext.Id.Equal(oidSubjectAltName):
			sawSAN = true
			if err := checkSAN(ext.Value, wantURI); err != nil {
				return err
			}
		case ext.Id.Equal(oidBasicConstraints):
			if err := checkBasicConstraints(ext.Value); err != nil {
				return err
			}
		case ext.Id.Equal(oidKeyUsage):
			if err := checkKeyUsage(ext.Value); err != nil {
				return err
			}
		case ext.Id.Equal(oidExtKeyUsage), ext.Id.Equal(oidSubjectKeyID):
			// Harmless: the issued certificate sets its own.
		default:
			if ext.Critical {
				return refuse("the certificate request marks extension %s critical, and Liên Thông does not know it; remove it", id)
			}
		}
	}
	if !sawSAN {
		return refuse("the certificate request names no subject alternative name; it must carry the system's SPIFFE id %s as its one URI", wantURI)
	}
	return nil
}

// General name tags of RFC 5280 section 4.2.1.6, for messages.
var generalNameKinds = map[int]string{
	0: "other name", 1: "email address", 2: "DNS name", 3: "X.400 address",
	4: "directory name", 5: "EDI party name", 6: "URI", 7: "IP address", 8: "registered ID",
}

// walkSAN calls fn for each general name of a SAN extension, reading the
// extension itself rather than trusting x509's fields, which skip name types
// Go does not model.
func walkSAN(value []byte, fn func(tag int, content []byte) error) error {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(value, &seq)
	if err != nil || len(rest) > 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return errMalformedSAN
	}
	for b := seq.Bytes; len(b) > 0; {
		var gn asn1.RawValue
		if b, err = asn1.Unmarshal(b, &gn); err != nil || gn.Class != asn1.ClassContextSpecific {
			return errMalformedSAN
		}
		if gn.Tag == 6 && gn.IsCompound {
			return errMalformedSAN
		}
		if err := fn(gn.Tag, gn.Bytes); err != nil {
			return err
		}
	}
	return nil
}

var errMalformedSAN = errors.New("the subject alternative name extension is malformed")

func nameKind(tag int) string {
	if kind, ok := generalNameKinds[tag]; ok {
		return kind
	}
	return fmt.Sprintf("name of type %d", tag)
}

func checkSAN(value []byte, wantURI string) error {
	var uris []string
	err := walkSAN(value, func(tag int, content []byte) error {
		if tag != 6 {
			return refuse("the certificate request asks for a %s; the only subject alternative name allowed is the system's SPIFFE id %s", nameKind(tag), wantURI)
		}
		uris = append(uris, string(content))
		return nil
	})
	if errors.Is(err, errMalformedSAN) {
		return refuse("the certificate request's subject alternative name extension is malformed")
	}
	if err != nil {
		return err
	}
	switch {
	case len(uris) == 0:
		return refuse("the certificate request names no URI; it must carry the system's SPIFFE id %s", wantURI)
	case len(uris) > 1:
		return refuse("the certificate request names %d URIs; only one is allowed, the system's SPIFFE id %s", len(uris), wantURI)
	case uris[0] != wantURI:
		return refuse("the certificate request names %q, but this enrolment is for %s", printable(uris[0]), wantURI)
	}
	return nil
}

func checkBasicConstraints(value []byte) error {
	var bc struct {
		IsCA       bool `asn1:"optional"`
		MaxPathLen int  `asn1:"optional,default:-1"`
	}
	rest, err := asn1.Unmarshal(value, &bc)
	if err != nil || len(rest) > 0 {
		return refuse("the certificate request's basic constraints extension is malformed")
	}
	if bc.IsCA {
		return refuse("the certificate request asks for CA rights (basicConstraints CA:TRUE); system certificates can never sign other certificates")
	}
	return nil
}

func checkKeyUsage(value []byte) error {
	var ku asn1.BitString
	rest, err := asn1.Unmarshal(value, &ku)
	if err != nil || len(rest) > 0 {
		return refuse("the certificate request's key usage extension is malformed")
	}
	// Bits 5 and 6 are keyCertSign and cRLSign (RFC 5280 section 4.2.1.3).
	if ku.At(5) == 1 || ku.At(6) == 1 {
		return refuse("the certificate request asks for key usage keyCertSign or cRLSign, which only CAs have")
	}
	return nil
}

// printable keeps an attacker-chosen URI from smuggling control characters
// into an error message, and bounds its length.
func printable(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s), "?")
}

// GenerateKeyAndCSR makes a new EC P-256 key and a certificate request for
// id in trustDomain, for enrolment clients and gateways: the private key is
// made on the machine that uses it and never leaves it; only the CSR goes to
// the control plane. keyPEM is PKCS #8 ("PRIVATE KEY").
func GenerateKeyAndCSR(id catalog.SystemID, trustDomain string) (keyPEM, csrPEM []byte, err error) {
	uri, err := spiffeFor(id, trustDomain)
	if err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: spiffe id %q: %w", uri, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: generate key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:            pkix.Name{CommonName: id.String()},
		URIs:               []*url.URL{u},
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: create certificate request for %s: %w", id, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// errNoCertificates is returned when PEM input holds no certificate.
var errNoCertificates = errors.New("certs: no CERTIFICATE block found")
