package certs

import (
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
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/lienthong/lienthong/catalog"
)

const testTD = "lienthong.test"

var (
	population = catalog.SystemID{Instance: "VN", Class: "GOV", Member: "000.00.00.G01", Code: "CSDLDC"}
	insurance  = catalog.SystemID{Instance: "VN", Class: "GOV", Member: "000.00.00.G13", Code: "BHXH-PORTAL"}
)

// Keys are slow to make under -race; share them between cases.
var (
	keysOnce sync.Once
	keys     map[string]crypto.Signer
)

func testKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	keysOnce.Do(func() {
		keys = map[string]crypto.Signer{}
		mustKey := func(k crypto.Signer, err error) crypto.Signer {
			if err != nil {
				panic(err)
			}
			return k
		}
		keys["ec"] = mustKey(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
		keys["ec384"] = mustKey(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
		keys["ec521"] = mustKey(ecdsa.GenerateKey(elliptic.P521(), rand.Reader))
		keys["rsa1024"] = mustKey(rsa.GenerateKey(rand.Reader, 1024))
		keys["rsa2048"] = mustKey(rsa.GenerateKey(rand.Reader, 2048))
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		keys["ed25519"] = mustKey(ed, err)
	})
	return keys[kind]
}

// makeCSR returns a DER CSR for population, signed by a key of kind, after
// edit changes the template.
func makeCSR(t testing.TB, kind string, edit func(*x509.CertificateRequest)) []byte {
	t.Helper()
	u, _ := url.Parse(population.SPIFFE(testTD))
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: population.String()}, URIs: []*url.URL{u}}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, testKey(t, kind))
	if err != nil {
		t.Fatalf("create CSR: %v", err)
	}
	return der
}

func toPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func ext(t testing.TB, oid asn1.ObjectIdentifier, critical bool, value any) pkix.Extension {
	t.Helper()
	b, err := asn1.Marshal(value)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oid, Critical: critical, Value: b}
}

// sanWith builds a SAN extension from raw general names.
func sanWith(t testing.TB, names ...asn1.RawValue) pkix.Extension {
	t.Helper()
	return ext(t, oidSubjectAltName, false, names)
}

func uriName(s string) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(s)}
}

func TestValidateCSRAccepts(t *testing.T) {
	for _, kind := range []string{"ec", "ec384", "rsa2048", "ed25519"} {
		der := makeCSR(t, kind, nil)
		for form, data := range map[string][]byte{"DER": der, "PEM": toPEM(der)} {
			csr, err := ValidateCSR(data, population, testTD)
			if err != nil {
				t.Errorf("%s %s: %v", kind, form, err)
				continue
			}
			if len(csr.URIs) != 1 || csr.URIs[0].String() != population.SPIFFE(testTD) {
				t.Errorf("%s %s: URIs %v", kind, form, csr.URIs)
			}
		}
	}
	// Extensions that are harmless because they are never copied.
	der := makeCSR(t, "ec", func(r *x509.CertificateRequest) {
		r.ExtraExtensions = []pkix.Extension{
			ext(t, oidBasicConstraints, true, struct {
				IsCA bool `asn1:"optional"`
			}{false}),
			ext(t, oidExtKeyUsage, false, []asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 3}}),
			ext(t, asn1.ObjectIdentifier{1, 2, 3, 4}, false, "ignored"),
		}
	})
	if _, err := ValidateCSR(der, population, testTD); err != nil {
		t.Errorf("harmless extensions: %v", err)
	}
}

func TestValidateCSRRefuses(t *testing.T) {
	insuranceURI, _ := url.Parse(insurance.SPIFFE(testTD))
	wrongTD, _ := url.Parse(population.SPIFFE("other.test"))
	valid := makeCSR(t, "ec", nil)
	badSig := append([]byte(nil), valid...)
	badSig[len(badSig)-5] ^= 0xff

	cases := []struct {
		name, want string
		data       []byte
	}{
		{"empty", "empty", nil},
		{"garbage", "not a valid PKCS #10", []byte("hello, I am not a CSR")},
		{"truncated DER", "not a valid PKCS #10", valid[:len(valid)/2]},
		{"too large", "at most", make([]byte, MaxCSRSize+1)},
		{"damaged PEM", "damaged", []byte("-----BEGIN CERTIFICATE REQUEST-----\n!!!\n")},
		{"wrong PEM type", "send a \"CERTIFICATE REQUEST\"", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: valid})},
		{"two PEM blocks", "more than one block", append(toPEM(valid), toPEM(valid)...)},
		{"bad signature", "signature does not verify", badSig},
		{"RSA 1024", "2048 to 8192 bits", makeCSR(t, "rsa1024", nil)},
		{"P-521", "P-256 or P-384", makeCSR(t, "ec521", nil)},
		{"another system", "this enrolment is for", makeCSR(t, "ec", func(r *x509.CertificateRequest) { r.URIs = []*url.URL{insuranceURI} })},
		{"another trust domain", "this enrolment is for", makeCSR(t, "ec", func(r *x509.CertificateRequest) { r.URIs = []*url.URL{wrongTD} })},
		{"two URIs", "2 URIs", makeCSR(t, "ec", func(r *x509.CertificateRequest) { r.URIs = append(r.URIs, insuranceURI) })},
		{"same URI twice", "2 URIs", makeCSR(t, "ec", func(r *x509.CertificateRequest) { r.URIs = append(r.URIs, r.URIs[0]) })},
		{"no SAN", "no subject alternative name", makeCSR(t, "ec", func(r *x509.CertificateRequest) { r.URIs = nil })},
		{"DNS name", "DNS name", makeCSR(t, "ec", func(r *x509.CertificateRequest) { r.DNSNames = []string{"gw.example.vn"} })},
		{"email", "email address", makeCSR(t, "ec", func(r *x509.CertificateRequest) { r.EmailAddresses = []string{"a@example.vn"} })},
		{"IP", "IP address", makeCSR(t, "ec", func(r *x509.CertificateRequest) { r.IPAddresses = append(r.IPAddresses, []byte{127, 0, 0, 1}) })},
		{"other name", "other name", makeCSR(t, "ec", func(r *x509.CertificateRequest) {
			r.URIs = nil
			other := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: []byte{0x06, 0x03, 0x2a, 0x03, 0x04, 0xa0, 0x03, 0x0c, 0x01, 0x78}}
			r.ExtraExtensions = []pkix.Extension{sanWith(t, uriName(population.SPIFFE(testTD)), other)}
		})},
		{"registered ID", "registered ID", makeCSR(t, "ec", func(r *x509.CertificateRequest) {
			r.URIs = nil
			rid := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 8, Bytes: []byte{0x2a, 0x03}}
			r.ExtraExtensions = []pkix.Extension{sanWith(t, uriName(population.SPIFFE(testTD)), rid)}
		})},
		{"empty SAN", "names no URI", makeCSR(t, "ec", func(r *x509.CertificateRequest) {
			r.URIs = nil
			r.ExtraExtensions = []pkix.Extension{sanWith(t)}
		})},
		{"CA rights", "CA:TRUE", makeCSR(t, "ec", func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{ext(t, oidBasicConstraints, true, struct {
				IsCA bool `asn1:"optional"`
			}{true})}
		})},
		{"keyCertSign", "keyCertSign", makeCSR(t, "ec", func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{ext(t, oidKeyUsage, true, asn1.BitString{Bytes: []byte{0x84}, BitLength: 6})}
		})},
		{"unknown critical", "critical", makeCSR(t, "ec", func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{ext(t, asn1.ObjectIdentifier{1, 2, 3, 4}, true, "must understand")}
		})},
		{"name constraints", "critical", makeCSR(t, "ec", func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{ext(t, asn1.ObjectIdentifier{2, 5, 29, 30}, true, []int{})}
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ValidateCSR(tc.data, population, testTD)
			var ce *CSRError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want *CSRError", err, err)
			}
			if !strings.Contains(ce.Reason, tc.want) {
				t.Errorf("reason %q, want it to mention %q", ce.Reason, tc.want)
			}
			if strings.ContainsAny(ce.Reason, "\n\r") {
				t.Errorf("reason spans lines: %q", ce.Reason)
			}
		})
	}
}

func TestValidateCSRCallerMistakes(t *testing.T) {
	der := makeCSR(t, "ec", nil)
	var ce *CSRError
	if _, err := ValidateCSR(der, catalog.SystemID{}, testTD); err == nil || errors.As(err, &ce) {
		t.Errorf("invalid wanted system: %v", err)
	}
	if _, err := ValidateCSR(der, population, "Not A Domain"); err == nil || errors.As(err, &ce) {
		t.Errorf("invalid trust domain: %v", err)
	}
}

func TestCheckPublicKeyBounds(t *testing.T) {
	big8193 := new(big.Int).Lsh(big.NewInt(1), 8192) // 8193 bits
	if err := checkPublicKey(&rsa.PublicKey{N: big8193, E: 65537}); err == nil {
		t.Error("8193-bit RSA accepted")
	}
	n8192 := new(big.Int).Sub(big8193, big.NewInt(1))
	if err := checkPublicKey(&rsa.PublicKey{N: n8192, E: 65537}); err != nil {
		t.Errorf("8192-bit RSA refused: %v", err)
	}
	if err := checkPublicKey(struct{}{}); err == nil {
		t.Error("unknown key type accepted")
	}
}

func TestGenerateKeyAndCSR(t *testing.T) {
	keyPEM, csrPEM, err := GenerateKeyAndCSR(population, testTD)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ValidateCSR(csrPEM, population, testTD)
	if err != nil {
		t.Fatalf("own CSR refused: %v", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatal("key is not PKCS #8 PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() || !ec.PublicKey.Equal(csr.PublicKey) {
		t.Error("key is not the CSR's P-256 key")
	}
	if _, _, err := GenerateKeyAndCSR(population, "UPPER"); err == nil {
		t.Error("bad trust domain accepted")
	}
}

func TestParseSerial(t *testing.T) {
	want := SerialHex(big.NewInt(0x39dd2e))
	for _, s := range []string{"39dd2e", "39:DD:2E", "00:39:dd:2e", "39-dd-2e", " 39dd2e "} {
		n, err := ParseSerial(s)
		if err != nil || SerialHex(n) != want {
			t.Errorf("ParseSerial(%q) = %v, %v", s, n, err)
		}
	}
	for _, s := range []string{"", "xyz", "-1", "0", "+12", "0x12"} {
		if _, err := ParseSerial(s); err == nil {
			t.Errorf("ParseSerial(%q) accepted", s)
		}
	}
}

func TestNewSerial(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 64; i++ {
		n, err := NewSerial()
		if err != nil || n.Sign() <= 0 || n.BitLen() > SerialBits || seen[n.String()] {
			t.Fatalf("serial %v, %v", n, err)
		}
		seen[n.String()] = true
	}
}
