package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/certs/vault/vaulttest"
)

// enrolOutput is what `system enroll -o json` prints.
type enrolOutput struct {
	Certificate struct {
		Serial    string    `json:"serial"`
		SPIFFE    string    `json:"spiffe"`
		Authority string    `json:"authority"`
		NotAfter  time.Time `json:"notAfter"`
		Status    string    `json:"status"`
	} `json:"certificate"`
	Files struct {
		Key, Chain, Bundle string
	} `json:"files"`
}

// checkEnrolledFiles checks what enroll wrote: a private key only its owner
// can read that pairs with the chain, and a bundle the chain verifies against.
func checkEnrolledFiles(t *testing.T, dir, wantSPIFFE string) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("key.pem has mode %o, want 600", mode)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatalf("written key and chain do not pair: %v", err)
	}
	bundle, err := os.ReadFile(filepath.Join(dir, "bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := certs.ParseCertificatesPEM(bundle)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := certs.NewTrustStore(roots, nil)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := certs.ParseCertificatesPEM(mustRead(t, filepath.Join(dir, "cert.pem")))
	if err != nil {
		t.Fatal(err)
	}
	id, err := ts.Verify(chain, x509.ExtKeyUsageClientAuth)
	if err != nil || id != wantSPIFFE || !pair.Leaf.Equal(chain[0]) {
		t.Errorf("written chain: id %q, %v", id, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCertificateLifecycleThroughTheCLI(t *testing.T) {
	env := controlPlane(t, t.TempDir())
	const (
		mps = "000.00.00.G01"
		sys = "VN:GOV:000.00.00.G01:CSDLDC"
	)
	mustCLI(t, env, "", "member", "add", "--code", mps, "--name", "Bộ Công an")
	mpsAdmin := newToken(t, env, "--name", "C06 admin", "--role", "member-admin", "--member", mps)
	mustCLI(t, env, mpsAdmin, "system", "add", "--id", sys, "--name", "CSDL quốc gia về dân cư", "--level", "4")

	// Not secure, not connected: no certificate before the assessment, and
	// no key left behind.
	out1 := filepath.Join(t.TempDir(), "refused")
	out, err := cli(t, env, mpsAdmin, "system", "enroll", "--system", sys, "--out", out1)
	if err == nil || !strings.Contains(out, "Forbidden (403)") || !strings.Contains(out, "not assessed") {
		t.Fatalf("enrolment before assessment:\n%s", out)
	}
	if _, err := os.Stat(out1); !os.IsNotExist(err) {
		t.Errorf("a refused enrolment wrote %s (%v)", out1, err)
	}

	validUntil := time.Now().AddDate(1, 0, 0).Format("2006-01-02")
	mustCLI(t, env, "", "system", "assess", sys, "--level", "4", "--by", "Cục A05", "--reference", "QĐ 12/QĐ-A05", "--valid-until", validUntil)

	dir := filepath.Join(t.TempDir(), "CSDLDC")
	out = mustCLI(t, env, mpsAdmin, "system", "enroll", "--system", sys, "--out", dir)
	const spiffe = "spiffe://lienthong.vn/GOV/000.00.00.G01/CSDLDC"
	for _, want := range []string{"serial:", spiffe, "expires:", "0600, made here, never sent"} {
		if !strings.Contains(out, want) {
			t.Errorf("enroll output lacks %q:\n%s", want, out)
		}
	}
	checkEnrolledFiles(t, dir, spiffe)

	// Renewal is the same command; -o json for scripts.
	var renewed enrolOutput
	if err := json.Unmarshal([]byte(mustCLI(t, env, mpsAdmin, "system", "enroll", "--system", sys, "--out", dir, "-o", "json")), &renewed); err != nil {
		t.Fatal(err)
	}
	if renewed.Certificate.SPIFFE != spiffe || renewed.Certificate.Authority != "embedded" || renewed.Files.Key != filepath.Join(dir, "key.pem") {
		t.Errorf("enroll -o json: %+v", renewed)
	}
	checkEnrolledFiles(t, dir, spiffe)

	out = mustCLI(t, env, mpsAdmin, "cert", "list", "--system", sys)
	if strings.Count(out, sys) != 2 || !strings.Contains(out, renewed.Certificate.Serial) || !strings.Contains(out, "valid") {
		t.Errorf("cert list:\n%s", out)
	}
	out = mustCLI(t, env, mpsAdmin, "cert", "show", renewed.Certificate.Serial)
	if !strings.Contains(out, spiffe) || !strings.Contains(out, "Status:") {
		t.Errorf("cert show:\n%s", out)
	}

	if out, err := cli(t, env, mpsAdmin, "cert", "revoke", renewed.Certificate.Serial); err == nil || !strings.Contains(out, "reason") {
		t.Errorf("revocation without --reason:\n%s", out)
	}
	out = mustCLI(t, env, mpsAdmin, "cert", "revoke", renewed.Certificate.Serial, "--reason", "laptop lost")
	if !strings.Contains(out, "revoked certificate "+renewed.Certificate.Serial) {
		t.Errorf("cert revoke:\n%s", out)
	}
	var listed []struct {
		Serial, Status string
	}
	if err := json.Unmarshal([]byte(mustCLI(t, env, mpsAdmin, "cert", "list", "-o", "json")), &listed); err != nil || len(listed) != 2 {
		t.Fatalf("cert list -o json: %v %v", listed, err)
	}
	for _, c := range listed {
		if (c.Serial == renewed.Certificate.Serial) != (c.Status == "revoked") {
			t.Errorf("certificate %s is %s", c.Serial, c.Status)
		}
	}

	// The platform operator cuts the system off: the other certificate goes too.
	out = mustCLI(t, env, "", "system", "revoke", sys, "--reason", "assessment withdrawn")
	if !strings.Contains(out, "revoked 1 certificate(s)") {
		t.Errorf("system revoke:\n%s", out)
	}
	out, err = cli(t, env, mpsAdmin, "system", "enroll", "--system", sys, "--out", dir)
	if err == nil || !strings.Contains(out, "system revoked: assessment withdrawn") {
		t.Errorf("enrolment of a revoked system:\n%s", out)
	}

	out = mustCLI(t, env, "", "ca", "rotate")
	if !regexp.MustCompile(`Trusted roots:\s+2\n`).MatchString(out) {
		t.Errorf("ca rotate:\n%s", out)
	}
	mustCLI(t, env, "", "ca", "retire")
	out = mustCLI(t, env, "", "trail")
	for _, action := range []string{"certificate.enroll", "certificate.revoke", "system.revoke", "ca.rotate", "ca.retire"} {
		if !strings.Contains(out, action) {
			t.Errorf("trail lacks %s", action)
		}
	}
}

// TestEnrolmentThroughVault runs the control plane against vaulttest, the
// in-repo stand-in for Vault's PKI API (a real Vault cannot run here), with
// the role docs/certificates.md recommends.
func TestEnrolmentThroughVault(t *testing.T) {
	const td = "lienthong.gov.vn"
	v, err := vaulttest.New(vaulttest.Config{Role: vaulttest.RecommendedRole(td)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	caFile := filepath.Join(t.TempDir(), "vault-ca.pem")
	if err := os.WriteFile(caFile, v.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	roleID, secretID := v.AppRoleCredentials()
	env := controlPlane(t, t.TempDir(), "--ca", "vault", "--trust-domain", td,
		"--vault-addr", v.URL, "--vault-ca-file", caFile,
		"--vault-approle-role-id", roleID, "--vault-approle-secret-id", secretID)

	const sys = "VN:GOV:000.00.00.G01:CSDLDC"
	mustCLI(t, env, "", "member", "add", "--code", "000.00.00.G01", "--name", "Bộ Công an")
	mustCLI(t, env, "", "system", "add", "--id", sys, "--name", "CSDL quốc gia về dân cư", "--level", "4")
	mustCLI(t, env, "", "system", "assess", sys, "--level", "4", "--by", "Cục A05", "--reference", "QĐ 12", "--valid-until", time.Now().AddDate(0, 1, 0).Format("2006-01-02"))

	dir := filepath.Join(t.TempDir(), "CSDLDC")
	var out enrolOutput
	if err := json.Unmarshal([]byte(mustCLI(t, env, "", "system", "enroll", "--system", sys, "--out", dir, "-o", "json")), &out); err != nil {
		t.Fatal(err)
	}
	if out.Certificate.Authority != "vault" || out.Certificate.SPIFFE != "spiffe://"+td+"/GOV/000.00.00.G01/CSDLDC" {
		t.Errorf("vault enrolment: %+v", out)
	}
	checkEnrolledFiles(t, dir, out.Certificate.SPIFFE)
	if v.Hits("sign") != 1 {
		t.Errorf("vault signed %d times", v.Hits("sign"))
	}
	// Rotation happens inside Vault, not through the control plane.
	if o, err := cli(t, env, "", "ca", "rotate"); err == nil || !strings.Contains(o, "Conflict (409)") {
		t.Errorf("ca rotate with vault:\n%s", o)
	}
}
