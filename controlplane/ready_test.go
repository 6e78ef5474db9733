package controlplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/certs/embedded"
	"github.com/lienthong/lienthong/controlplane/bundles"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/opsmux"
)

// selfSigned is a TLS certificate valid from notBefore to notAfter.
func selfSigned(t *testing.T, notBefore, notAfter time.Time) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "cp"}, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// readyzOf serves the checks as the operations listener does and reads
// GET /readyz.
func readyzOf(t *testing.T, r *readiness) (int, map[string]string) {
	t.Helper()
	srv := httptest.NewServer(opsmux.Handler(nil, r.Checks))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// TestReadyzNamesEachFailingCheck breaks one condition at a time on a real
// store, CA and bundle signer: each turns /readyz to 503 and is named with
// why; the checks it does not touch still pass.
func TestReadyzNamesEachFailingCheck(t *testing.T) {
	ctx := context.Background()
	good := func(t *testing.T) (*readiness, *embedded.CA, func()) {
		dir := t.TempDir()
		store, err := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "catalog.db"))
		if err != nil {
			t.Fatal(err)
		}
		ca, err := embedded.Open(filepath.Join(dir, "ca"), embedded.WithPassphrase(nil))
		if err != nil {
			t.Fatal(err)
		}
		key, err := bundles.LoadOrCreateKey(filepath.Join(dir, "bundle-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		svc := service.New(store, service.WithAuthority(ca), service.WithPolicySigningKey(key))
		r := newReadiness(Config{DataDir: dir}, svc, store, selfSigned(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour)))
		return r, ca, func() { store.Close() }
	}
	r, _, done := good(t)
	if status, body := readyzOf(t, r); status != http.StatusOK || len(body) != 5 {
		t.Fatalf("healthy control plane: %d %v", status, body)
	}
	done()

	for _, tc := range []struct {
		check string
		// isolated: no other check fails.
		isolated bool
		brk      func(t *testing.T, r *readiness, ca *embedded.CA, done func())
	}{
		{"store", false, func(_ *testing.T, _ *readiness, _ *embedded.CA, done func()) { done() }},
		{"policy-bundle", true, func(_ *testing.T, r *readiness, ca *embedded.CA, _ func()) {
			// A control plane with no bundle signing key.
			r.svc = service.New(r.store, service.WithAuthority(ca))
		}},
		{"certificate-authority", true, func(t *testing.T, r *readiness, _ *embedded.CA, _ func()) {
			// The roots' validity has ended (the management certificate
			// is made to outlast the clock).
			r.now = func() time.Time { return time.Now().Add(50 * 365 * 24 * time.Hour) }
			r.tls = selfSigned(t, time.Now().Add(-time.Hour), time.Now().Add(60*365*24*time.Hour))
		}},
		{"management-certificate", true, func(t *testing.T, r *readiness, _ *embedded.CA, _ func()) {
			r.tls = selfSigned(t, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
		}},
		{"data-dir", true, func(_ *testing.T, r *readiness, _ *embedded.CA, _ func()) {
			r.dataDir = filepath.Join(r.dataDir, "gone")
		}},
	} {
		t.Run(tc.check, func(t *testing.T) {
			r, ca, done := good(t)
			defer done()
			tc.brk(t, r, ca, done)
			status, body := readyzOf(t, r)
			if status != http.StatusServiceUnavailable || body[tc.check] == "ok" || body[tc.check] == "" {
				t.Fatalf("%s broken: %d %v", tc.check, status, body)
			}
			for name, v := range body {
				if tc.isolated && name != tc.check && v != "ok" {
					t.Errorf("%s broken, but %s fails too: %s", tc.check, name, v)
				}
			}
			if strings.Contains(body[tc.check], "BEGIN") {
				t.Errorf("%s: the answer quotes key or certificate material: %s", tc.check, body[tc.check])
			}
		})
	}
}
