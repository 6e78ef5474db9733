package gateway

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/lienthong/lienthong/internal/opsmux"
)

// Check is one named readiness check and what it found (nil: passed).
type Check struct {
	Name string
	Err  error
}

// Readiness runs the checks that must pass before the gateway says it is
// ready, at start-up and on every GET /readyz: a gateway that answers every
// read with 502 (a truncated certificate chain, say) must not claim to be
// up. The checks are:
//
//   - certificate: the chain presented verifies to the trust bundle of the
//     configuration in force, and the private key matches it;
//   - audit-log: the audit file can be opened for writing (a sink given
//     with WithSink is not checked);
//   - configuration: a verified configuration is in force and not stale;
//   - policy-bundle: a policy bundle whose signature verified is in force;
//   - feed-router.kafka and feed-router.routing, when the gateway runs the
//     feed router (feeds.router; see feedRouterChecks): listed on /readyz
//     but not deciding it, they decide /readyz/feeds (FeedsReadyGroup).
func (g *Gateway) Readiness() []Check {
	return append([]Check{
		{"certificate", g.checkCertificate()},
		{"audit-log", g.checkAuditLog()},
		{"configuration", g.checkConfiguration()},
		{"policy-bundle", g.checkBundle()},
	}, g.feedRouterChecks()...)
}

// checkBundle: the engine in force was loaded from a bundle whose signature
// verified (install refuses any other), so one being there is the check.
func (g *Gateway) checkBundle() error {
	st := g.sync.current.Load()
	if st == nil || st.engine == nil || st.engine.Revision() == "" {
		return errors.New("no verified policy bundle is in force")
	}
	return nil
}

func (g *Gateway) checkCertificate() error {
	cur := g.rotator.Current()
	if cur == nil || len(cur.Certificate) == 0 {
		return errors.New("no certificate")
	}
	chain := make([]*x509.Certificate, 0, len(cur.Certificate))
	for i, der := range cur.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("certificate %d of the chain in %s does not parse: %w", i, g.cfg.Identity.CertFile, err)
		}
		chain = append(chain, c)
	}
	// By the gateway's clock, as every exchange's identity check is.
	if now := g.sync.now(); now.After(chain[0].NotAfter) {
		return fmt.Errorf("the certificate in %s expired at %s; renewal has failed (see the log)", g.cfg.Identity.CertFile, chain[0].NotAfter.UTC().Format(time.RFC3339))
	}
	signer, ok := cur.PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("key %s is not a signing key", g.cfg.Identity.KeyFile)
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(chain[0].PublicKey) {
		return fmt.Errorf("key %s does not match the certificate in %s", g.cfg.Identity.KeyFile, g.cfg.Identity.CertFile)
	}
	if g.sync.trust == nil {
		return errors.New("no trust bundle: no configuration is in force")
	}
	// Peers verify both ways: as a server (inbound) and as a client.
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := g.sync.trust.Verify(chain, usage); err != nil {
			return fmt.Errorf("the chain in %s does not verify to the trust bundle (re-enrol, or restore the file from a backup): %w", g.cfg.Identity.CertFile, err)
		}
	}
	return nil
}

func (g *Gateway) checkAuditLog() error {
	if g.auditPath == "" {
		return nil // a sink given with WithSink answers for itself
	}
	f, err := os.OpenFile(g.auditPath, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("audit log not writable: %w", err)
	}
	return f.Close()
}

func (g *Gateway) checkConfiguration() error {
	return g.core.Fresh()
}

// readyErr joins the failed checks, naming each.
func readyErr(checks []Check) error {
	var errs []error
	for _, c := range checks {
		if c.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, c.Err))
		}
	}
	return errors.Join(errs...)
}

// readyzHandler serves the health listener: GET /readyz (200 when every
// check of the gateway's own passes, 503 otherwise, each check named),
// GET /readyz/feeds (the feed router's checks) and GET /healthz.
func (g *Gateway) readyzHandler() http.Handler { return opsmux.Handler(nil, g.opsChecks) }
