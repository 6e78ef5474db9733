package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/opsmux"
	"github.com/lienthong/lienthong/policies"
)

// readiness are the control plane's readiness checks, each named in
// GET /readyz of its operations listener:
//
//   - store: the catalog answers a query;
//   - policy-bundle: the bundle of the current revision builds and its
//     signature verifies with the key gateways pin;
//   - certificate-authority: every trusted root is within its validity;
//   - management-certificate: the API's TLS certificate is within its
//     validity;
//   - data-dir: the data directory can be written.
type readiness struct {
	svc     *service.Service
	store   catalog.Store
	tls     *tls.Config
	dataDir string
	now     func() time.Time

	// verified is the bundle revision whose signature last verified.
	mu       sync.Mutex
	verified string
}

// checkTimeout bounds each check that asks the store.
const checkTimeout = 3 * time.Second

// Checks runs every check.
func (r *readiness) Checks() []opsmux.Check {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	return []opsmux.Check{
		{Name: "store", Err: r.checkStore(ctx)},
		{Name: "policy-bundle", Err: r.checkBundle(ctx)},
		{Name: "certificate-authority", Err: r.checkAuthority(ctx)},
		{Name: "management-certificate", Err: r.checkManagementCertificate()},
		{Name: "data-dir", Err: r.checkDataDir()},
	}
}

// Passed is the checks as name → passed, for the metrics.
func (r *readiness) Passed() map[string]bool {
	out := map[string]bool{}
	for _, c := range r.Checks() {
		out[c.Name] = c.Err == nil
	}
	return out
}

func (r *readiness) checkStore(ctx context.Context) error {
	if _, err := r.store.Revision(ctx); err != nil {
		return fmt.Errorf("the catalog does not answer: %w", err)
	}
	return nil
}

func (r *readiness) checkBundle(ctx context.Context) error {
	b, err := r.svc.PolicyBundle(ctx)
	if err != nil {
		return fmt.Errorf("the policy bundle does not build: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.verified == b.Revision {
		return nil
	}
	id, pemBytes, err := r.svc.PolicyVerificationKey()
	if err != nil {
		return err
	}
	key, err := policies.VerificationKeyFromPEM(id, pemBytes)
	if err != nil {
		return fmt.Errorf("the bundle verification key: %w", err)
	}
	if _, err := policies.LoadBundle(bytes.NewReader(b.Archive), key); err != nil {
		return fmt.Errorf("the policy bundle of revision %s does not verify: %w", b.Revision, err)
	}
	r.verified = b.Revision
	return nil
}

func (r *readiness) checkAuthority(ctx context.Context) error {
	trust, err := r.svc.Trust(ctx)
	if err != nil {
		return fmt.Errorf("the certificate authority: %w", err)
	}
	roots, err := certs.ParseCertificatesPEM([]byte(trust.RootsPEM))
	if err != nil {
		return fmt.Errorf("the trusted roots: %w", err)
	}
	if len(roots) == 0 {
		return errors.New("no trusted root")
	}
	return validNow(roots, r.now(), "root")
}

func (r *readiness) checkManagementCertificate() error {
	if r.tls == nil || len(r.tls.Certificates) == 0 || len(r.tls.Certificates[0].Certificate) == 0 {
		return errors.New("no management certificate")
	}
	leaf, err := x509.ParseCertificate(r.tls.Certificates[0].Certificate[0])
	if err != nil {
		return fmt.Errorf("the management certificate does not parse: %w", err)
	}
	return validNow([]*x509.Certificate{leaf}, r.now(), "management certificate")
}

// validNow refuses a certificate outside its validity at now, naming it by
// serial and dates.
func validNow(cs []*x509.Certificate, now time.Time, what string) error {
	for _, c := range cs {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return fmt.Errorf("%s %s is valid from %s to %s, not now", what, certs.SerialHex(c.SerialNumber),
				c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

func (r *readiness) checkDataDir() error {
	f, err := os.CreateTemp(r.dataDir, ".readyz-*")
	if err != nil {
		return fmt.Errorf("the data directory cannot be written: %w", err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
