package certs

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// FuzzValidateCSR feeds ValidateCSR arbitrary bytes, starting from the seed
// corpus in testdata/fuzz/FuzzValidateCSR (a valid CSR and the classic
// refusals). It must never panic, must refuse with a *CSRError, and
// whatever it accepts must name exactly the wanted SPIFFE id and nothing
// else, with a verified signature and an accepted key.
func FuzzValidateCSR(f *testing.F) {
	want := population.SPIFFE(testTD)
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ValidateCSR(data, population, testTD)
		if err != nil {
			var ce *CSRError
			if !errors.As(err, &ce) || ce.Reason == "" {
				t.Fatalf("refusal is not a *CSRError with a reason: %v", err)
			}
			return
		}
		if len(csr.URIs) != 1 || csr.URIs[0].String() != want {
			t.Fatalf("accepted a CSR naming %v, want exactly %s", csr.URIs, want)
		}
		if len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses) != 0 {
			t.Fatalf("accepted a CSR with extra names: %v %v %v", csr.DNSNames, csr.IPAddresses, csr.EmailAddresses)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a CSR whose signature fails: %v", err)
		}
		if err := checkPublicKey(csr.PublicKey); err != nil {
			t.Fatalf("accepted a CSR with a refused key: %v", err)
		}
	})
}

// TestWriteFuzzSeeds regenerates the seed corpus when
// LIENTHONG_WRITE_FUZZ_SEEDS=1; otherwise it is skipped. The seeds are
// committed so that every plain `go test` run replays them.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("LIENTHONG_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set LIENTHONG_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz/FuzzValidateCSR")
	}
	other, _ := url.Parse(insurance.SPIFFE(testTD))
	valid := makeCSR(t, "ec", nil)
	seeds := map[string][]byte{
		"valid-der":     valid,
		"valid-pem":     toPEM(valid),
		"valid-ed25519": makeCSR(t, "ed25519", nil),
		"rsa-1024":      makeCSR(t, "rsa1024", nil),
		"dns-san":       makeCSR(t, "ec", func(r *x509.CertificateRequest) { r.DNSNames = []string{"gw.example.vn"} }),
		"two-uris":      makeCSR(t, "ec", func(r *x509.CertificateRequest) { r.URIs = append(r.URIs, other) }),
		"other-system":  makeCSR(t, "ec", func(r *x509.CertificateRequest) { r.URIs[0] = other }),
		"ca-constraints": makeCSR(t, "ec", func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{ext(t, oidBasicConstraints, true, struct {
				IsCA bool `asn1:"optional"`
			}{true})}
		}),
		"unknown-critical": makeCSR(t, "ec", func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{ext(t, asn1.ObjectIdentifier{1, 2, 3, 4}, true, "x")}
		}),
		"garbage":       []byte("this is not a certificate request\x00\xff"),
		"truncated-der": valid[:len(valid)*2/3],
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzValidateCSR")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
