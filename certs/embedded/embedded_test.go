package embedded

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/certs/authoritytest"
)

func TestMain(m *testing.M) {
	scryptN = 1 << 14 // production files use 1<<15; see keyfile.go
	os.Exit(m.Run())
}

func openCA(t *testing.T, dir string, opts ...Option) *CA {
	t.Helper()
	ca, err := Open(dir, append([]Option{WithPassphrase(nil)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return ca
}

func TestConformance(t *testing.T) {
	authoritytest.Run(t, func(t *testing.T) certs.Authority {
		return openCA(t, t.TempDir())
	})
}

func TestFilesAndPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca := openCA(t, dir)
	g := ca.Current()
	if g.ID != "g0001" {
		t.Errorf("first generation %q", g.ID)
	}
	if g.Root.PublicKeyAlgorithm != x509.ECDSA || g.Issuing.PublicKeyAlgorithm != x509.ECDSA {
		t.Error("keys are not ECDSA")
	}
	if got := g.Root.NotAfter.Sub(g.Root.NotBefore); got < DefaultRootLifetime {
		t.Errorf("root lifetime %v", got)
	}
	if got := g.Issuing.NotAfter.Sub(g.Issuing.NotBefore); got < DefaultIssuingLifetime || got > DefaultIssuingLifetime+2*time.Minute {
		t.Errorf("issuing lifetime %v", got)
	}
	if !g.Issuing.IsCA || !g.Issuing.MaxPathLenZero {
		t.Error("issuing CA must be a CA with path length 0")
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, %v", fi.Mode().Perm(), err)
	}
	for _, name := range []string{"state.json", "g0001/root.pem", "g0001/root.key", "g0001/issuing.pem", "g0001/issuing.key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	// Reopening loads the same CA rather than making a new one.
	again := openCA(t, dir)
	if !again.Current().Root.Equal(g.Root) {
		t.Error("reopen made a new root")
	}
	// A key readable by others is refused.
	if err := os.Chmod(filepath.Join(dir, "g0001/issuing.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, WithPassphrase(nil)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("open with 0644 key: %v", err)
	}
}

func TestPassphrase(t *testing.T) {
	dir := t.TempDir()
	pass := []byte("correct horse battery staple")
	ca, err := Open(dir, WithPassphrase(pass))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"root.key", "issuing.key"} {
		data, err := os.ReadFile(filepath.Join(dir, "g0001", name))
		if err != nil {
			t.Fatal(err)
		}
		if !isEncrypted(data) || strings.Contains(string(data), "BEGIN PRIVATE KEY") {
			t.Errorf("%s is not sealed", name)
		}
	}
	if _, err := Open(dir, WithPassphrase([]byte("wrong"))); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("wrong passphrase: %v", err)
	}
	if _, err := Open(dir, WithPassphrase(nil)); !errors.Is(err, errNeedPassphrase) {
		t.Errorf("no passphrase: %v", err)
	}
	// Without WithPassphrase, Open reads the environment.
	t.Setenv(PassphraseEnv, string(pass))
	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Current().Issuing.Equal(ca.Current().Issuing) {
		t.Error("different issuing CA after reopen")
	}
	// Altered parameters fail authentication rather than yield a key.
	path := filepath.Join(dir, "g0001", "issuing.key")
	data, _ := os.ReadFile(path)
	n := fmt.Sprintf("scrypt N=%d ", scryptN)
	if !strings.Contains(string(data), n) {
		t.Fatalf("key file lacks %q", n)
	}
	tampered := strings.Replace(string(data), n, fmt.Sprintf("scrypt N=%d ", scryptN*2), 1)
	if err := os.WriteFile(path, []byte(tampered), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil {
		t.Error("altered KDF parameters were accepted")
	}
}

func TestKDFBounds(t *testing.T) {
	for _, h := range []string{"scrypt N=32768 r=8 p=1", "scrypt N=16384 r=8 p=1"} {
		if _, _, _, err := parseKDF(h); err != nil {
			t.Errorf("%q: %v", h, err)
		}
	}
	for _, h := range []string{"", "pbkdf2 N=32768 r=8 p=1", "scrypt N=1024 r=8 p=1", "scrypt N=30000 r=8 p=1", "scrypt N=4194304 r=8 p=1", "scrypt N=32768 r=0 p=1", "scrypt N=32768 r=8 p=99"} {
		if _, _, _, err := parseKDF(h); err == nil {
			t.Errorf("%q accepted", h)
		}
	}
}

func TestPlainKeysSealedWhenPassphraseAppears(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	openCA(t, dir)
	data, _ := os.ReadFile(filepath.Join(dir, "g0001", "issuing.key"))
	if isEncrypted(data) {
		t.Fatal("key sealed without passphrase")
	}
	if _, err := Open(dir, WithPassphrase([]byte("now with a passphrase"))); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"root.key", "issuing.key"} {
		data, _ := os.ReadFile(filepath.Join(dir, "g0001", name))
		if !isEncrypted(data) {
			t.Errorf("%s still plain", name)
		}
	}
	if _, err := Open(dir, WithPassphrase([]byte("now with a passphrase"))); err != nil {
		t.Fatalf("reopen sealed: %v", err)
	}
}

func verifies(leaf *certs.Issued, roots []*x509.Certificate) error {
	return certs.CheckIssued(leaf.Leaf, leaf.Chain, certs.Expectation{
		SPIFFEID: authoritytest.Population.SPIFFE(authoritytest.TrustDomain), PublicKey: leaf.Leaf.PublicKey, Roots: roots,
	})
}

func TestRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ca := openCA(t, dir)
	signOne := func(ca *CA) *certs.Issued {
		t.Helper()
		_, csr := authoritytest.CSR(t, authoritytest.Population, "ec", nil)
		iss, err := ca.Sign(ctx, certs.SignRequest{CSR: csr, System: authoritytest.Population, TrustDomain: authoritytest.TrustDomain, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return iss
	}
	oldCert := signOne(ca)
	oldGen := ca.Current()

	if err := ca.RetireOldRoot(); !errors.Is(err, ErrNoPreviousRoot) {
		t.Errorf("retire without rotation: %v", err)
	}
	if err := ca.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := ca.Rotate(); !errors.Is(err, ErrRotationPending) {
		t.Errorf("second rotation: %v", err)
	}
	newCert := signOne(ca)
	if newCert.Chain[0].Equal(oldCert.Chain[0]) {
		t.Fatal("still signing with the old intermediate after Rotate")
	}
	bundle, _ := ca.TrustBundle(ctx)
	if len(bundle) != 2 || !bundle[1].Equal(oldGen.Root) {
		t.Fatalf("bundle during rotation has %d roots", len(bundle))
	}
	for name, c := range map[string]*certs.Issued{"old": oldCert, "new": newCert} {
		if err := verifies(c, bundle); err != nil {
			t.Errorf("%s certificate during rotation: %v", name, err)
		}
	}

	// The rotation survives a restart.
	ca = openCA(t, dir)
	if b, _ := ca.TrustBundle(ctx); len(b) != 2 {
		t.Fatalf("after restart bundle has %d roots", len(b))
	}
	if !signOne(ca).Chain[0].Equal(newCert.Chain[0]) {
		t.Error("after restart not signing with the new intermediate")
	}

	if err := ca.RetireOldRoot(); err != nil {
		t.Fatal(err)
	}
	bundle, _ = ca.TrustBundle(ctx)
	if len(bundle) != 1 {
		t.Fatalf("bundle after retiring has %d roots", len(bundle))
	}
	if err := verifies(oldCert, bundle); err == nil {
		t.Error("a certificate under the retired root still verifies")
	}
	if err := verifies(newCert, bundle); err != nil {
		t.Errorf("new certificate after retiring: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, oldGen.ID, "root.key")); !os.IsNotExist(err) {
		t.Errorf("retired root key still on disk: %v", err)
	}
	ca = openCA(t, dir)
	if b, _ := ca.TrustBundle(ctx); len(b) != 1 {
		t.Errorf("after restart bundle has %d roots", len(b))
	}
	var st state
	data, _ := os.ReadFile(filepath.Join(dir, stateFile))
	if err := json.Unmarshal(data, &st); err != nil || st.Current != "g0002" || st.Previous != "" {
		t.Errorf("state.json = %s (%v)", data, err)
	}
	// A new rotation is possible again.
	if err := ca.Rotate(); err != nil || ca.Current().ID != "g0003" {
		t.Errorf("second rotation: %v, %s", err, ca.Current().ID)
	}
}

// Signing goes on, without errors, while the CA rotates and retires.
func TestSignDuringRotation(t *testing.T) {
	ca := openCA(t, t.TempDir())
	var allRoots []*x509.Certificate
	allRoots = append(allRoots, ca.Current().Root)
	done := make(chan struct{})
	errs := make(chan error, 64)
	var issued []*certs.Issued
	go func() {
		defer close(done)
		for i := 0; i < 30; i++ {
			_, csr := authoritytest.CSR(t, authoritytest.Population, "ec", nil)
			iss, err := ca.Sign(context.Background(), certs.SignRequest{CSR: csr, System: authoritytest.Population, TrustDomain: authoritytest.TrustDomain, TTL: time.Hour})
			if err != nil {
				errs <- err
				return
			}
			issued = append(issued, iss)
		}
	}()
	if err := ca.Rotate(); err != nil {
		t.Fatal(err)
	}
	allRoots = append(allRoots, ca.Current().Root)
	if err := ca.RetireOldRoot(); err != nil {
		t.Fatal(err)
	}
	<-done
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, iss := range issued {
		if err := verifies(iss, allRoots); err != nil {
			t.Error(err)
		}
	}
}

func TestCaps(t *testing.T) {
	now := time.Now()
	ca := openCA(t, t.TempDir(), WithMaxTTL(time.Hour), WithLifetimes(24*time.Hour, 2*time.Hour))
	_, csr := authoritytest.CSR(t, authoritytest.Insurance, "ec", nil)
	iss, err := ca.Sign(context.Background(), certs.SignRequest{CSR: csr, System: authoritytest.Insurance, TrustDomain: authoritytest.TrustDomain, TTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if iss.Leaf.NotAfter.After(now.Add(time.Hour + 2*time.Second)) {
		t.Errorf("NotAfter %s exceeds the 1h cap", iss.Leaf.NotAfter)
	}
	// The issuing CA's expiry caps too, and an expired one refuses to sign.
	later := openCA(t, t.TempDir(), WithLifetimes(24*time.Hour, 2*time.Hour), WithClock(func() time.Time { return now }))
	iss, err = later.Sign(context.Background(), certs.SignRequest{CSR: csr, System: authoritytest.Insurance, TrustDomain: authoritytest.TrustDomain, TTL: 5 * time.Hour})
	if err != nil || !iss.Leaf.NotAfter.Equal(later.Current().Issuing.NotAfter) {
		t.Errorf("NotAfter %v not capped at the issuing CA's %v (%v)", iss.Leaf.NotAfter, later.Current().Issuing.NotAfter, err)
	}
	later.opts.now = func() time.Time { return now.Add(3 * time.Hour) }
	if _, err := later.Sign(context.Background(), certs.SignRequest{CSR: csr, System: authoritytest.Insurance, TrustDomain: authoritytest.TrustDomain}); err == nil || !strings.Contains(err.Error(), "rotate") {
		t.Errorf("expired issuing CA: %v", err)
	}
}

func TestCorruptState(t *testing.T) {
	dir := t.TempDir()
	openCA(t, dir)
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"version":1,"current":"../etc"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, WithPassphrase(nil)); err == nil {
		t.Error("state naming a path outside the CA was accepted")
	}
}
