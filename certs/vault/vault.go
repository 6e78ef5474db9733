// Package vault is a certs.Authority backed by the PKI secrets engine of
// HashiCorp Vault or OpenBao, for deployments that keep CA keys in Vault
// rather than on the control plane's disk.
//
// It signs with POST /v1/<pki mount>/sign/<role>, sending the CSR, the
// system's SPIFFE id as uri_sans and the lifetime as ttl, and no common
// name. It reads the trust bundle from the mount's issuers (LIST
// /v1/<mount>/issuers, then GET /v1/<mount>/issuer/<id>/json for each),
// keeping the self-signed ones, so a root rotation inside Vault shows up as
// two roots. It authenticates with a token or with AppRole, renewing the
// AppRole token at 2/3 of its lifetime and logging in again when renewal is
// refused or a request gets 403.
//
// Vault decides what to sign by its role, which an operator may have made
// broader than Liên Thông allows. So every certificate Vault returns is
// checked with certs.CheckIssued (one URI SAN equal to the SPIFFE id, client
// and server authentication only, no CA rights, the CSR's key, no longer
// than asked, chaining to the bundle) and refused with ErrRefusedCertificate
// otherwise. docs/certificates.md gives the matching role configuration.
//
// The tests run against vaulttest, an in-repo stand-in that follows Vault's
// documented API, because a real Vault cannot run where they run.
package vault

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/lienthong/lienthong/certs"
)

// ErrRefusedCertificate wraps the reason a certificate Vault issued was not
// accepted. It points at the Vault role's configuration, not at the
// requester.
var ErrRefusedCertificate = errors.New("vault issued a certificate outside Liên Thông's profile; check the PKI role")

// Config configures the backend.
type Config struct {
	// Address is Vault's URL, e.g. https://vault.lienthong.gov.vn:8200;
	// empty means the VAULT_ADDR environment variable.
	Address string
	// CACertPEM is the CA of Vault's own TLS certificate, if not in the
	// system pool (VAULT_CACERT also works).
	CACertPEM []byte
	// Namespace is the Vault Enterprise or HCP namespace, if any.
	Namespace string
	// PKIMount is the path of the PKI secrets engine (default "pki").
	PKIMount string
	// Role is the PKI role to sign with. Required.
	Role string
	// Token authenticates with a fixed token. With neither Token nor
	// AppRole, the VAULT_TOKEN environment variable is used.
	Token string
	// AppRole authenticates with AppRole instead, the method meant for
	// services.
	AppRole *AppRole
	// ExtraRoots are trusted besides the self-signed issuers of the mount,
	// for a root kept offline that Vault does not hold.
	ExtraRoots []*x509.Certificate
	// BundleCacheTTL is how long a fetched trust bundle is reused (default
	// one minute). A certificate that does not chain to the cached bundle
	// triggers a fresh fetch, so a rotation is picked up at once.
	BundleCacheTTL time.Duration
	// Timeout bounds each request to Vault (default 30s).
	Timeout time.Duration
	// Name is the authority's name in records (default "vault").
	Name string
}

// AppRole holds AppRole credentials.
type AppRole struct {
	// Mount is the auth method's path (default "approle").
	Mount string
	// RoleID and SecretID are the role's credentials.
	RoleID, SecretID string
}

// Authority signs through Vault. It implements certs.Authority and is safe
// for concurrent use.
type Authority struct {
	cfg    Config
	client *api.Client
	now    func() time.Time

	authMu         sync.Mutex
	token          string
	tokenObtained  time.Time
	tokenTTL       time.Duration // of the current token; 0 means it does not expire
	loginTTL       time.Duration // what a fresh login gives
	tokenRenewable bool

	bundleMu  sync.Mutex
	bundle    []*x509.Certificate
	bundleAt  time.Time
	bundleSet bool
}

// lifetimeSlack is how much later than asked Vault's NotAfter may fall,
// for clock differences between Vault and us.
const lifetimeSlack = time.Minute

// New checks cfg and prepares a Vault client. It does not contact Vault.
func New(cfg Config) (*Authority, error) {
	if cfg.Role == "" {
		return nil, errors.New("vault: a PKI role is required")
	}
	if cfg.Token != "" && cfg.AppRole != nil {
		return nil, errors.New("vault: configure either a token or AppRole, not both")
	}
	if cfg.AppRole != nil {
		ar := *cfg.AppRole // do not write defaults into the caller's value
		if ar.RoleID == "" {
			return nil, errors.New("vault: AppRole needs a role_id")
		}
		if ar.Mount == "" {
			ar.Mount = "approle"
		}
		cfg.AppRole = &ar
	}
	for i, r := range cfg.ExtraRoots {
		if r == nil || !r.IsCA || !certs.IsSelfSigned(r) {
			return nil, fmt.Errorf("vault: extra root %d is not a self-signed CA certificate", i)
		}
	}
	cfg.ExtraRoots = append([]*x509.Certificate(nil), cfg.ExtraRoots...)
	if cfg.PKIMount == "" {
		cfg.PKIMount = "pki"
	}
	cfg.PKIMount = strings.Trim(cfg.PKIMount, "/")
	if cfg.BundleCacheTTL <= 0 {
		cfg.BundleCacheTTL = time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Name == "" {
		cfg.Name = "vault"
	}
	ac := api.DefaultConfig()
	if ac.Error != nil {
		return nil, fmt.Errorf("vault: client configuration: %w", ac.Error)
	}
	if cfg.Address != "" {
		ac.Address = cfg.Address
	}
	ac.Timeout = cfg.Timeout
	if cfg.CACertPEM != nil {
		if err := ac.ConfigureTLS(&api.TLSConfig{CACertBytes: cfg.CACertPEM}); err != nil {
			return nil, fmt.Errorf("vault: TLS configuration: %w", err)
		}
	}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("vault: client: %w", err)
	}
	if cfg.Token == "" && cfg.AppRole == nil {
		cfg.Token = client.Token() // VAULT_TOKEN
		if cfg.Token == "" {
			return nil, errors.New("vault: no credentials: set a token, AppRole, or VAULT_TOKEN")
		}
	}
	// Tokens go on each request instead (see as), so that a re-login does
	// not race with requests in flight.
	client.ClearToken()
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	return &Authority{cfg: cfg, client: client, now: time.Now}, nil
}

// Name implements certs.Authority.
func (a *Authority) Name() string { return a.cfg.Name }

// as returns a client that sends tok (none when empty).
func (a *Authority) as(tok string) *api.Client {
	return a.client.WithRequestCallbacks(func(r *api.Request) { r.ClientToken = tok })
}

// Sign implements certs.Authority.
func (a *Authority) Sign(ctx context.Context, req certs.SignRequest) (*certs.Issued, error) {
	csr, err := certs.ValidateCSR(req.CSR, req.System, req.TrustDomain)
	if err != nil {
		return nil, err
	}
	ttl, err := req.Lifetime()
	if err != nil {
		return nil, err
	}
	spiffeID := req.SPIFFEID()
	start := a.now()
	path := a.cfg.PKIMount + "/sign/" + url.PathEscape(a.cfg.Role)
	secret, err := a.write(ctx, path, map[string]any{
		"csr":                  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})),
		"uri_sans":             spiffeID,
		"ttl":                  fmt.Sprintf("%ds", int64(math.Ceil(ttl.Seconds()))),
		"format":               "pem",
		"exclude_cn_from_sans": true,
	})
	if err != nil {
		return nil, fmt.Errorf("vault: sign %s at %s: %w", req.System, path, err)
	}
	leaf, chain, err := parseSigned(secret)
	if err != nil {
		return nil, fmt.Errorf("vault: sign %s: %w", req.System, err)
	}
	exp := certs.Expectation{SPIFFEID: spiffeID, PublicKey: csr.PublicKey, NotAfterBy: start.Add(ttl + lifetimeSlack)}
	var fetched bool
	if exp.Roots, fetched, err = a.trustBundle(ctx, false); err != nil {
		return nil, err
	}
	exp.Now = a.now()
	err = certs.CheckIssued(leaf, chain, exp)
	if err != nil && !fetched {
		// The certificate may come from a rotation the cached bundle has
		// not seen yet: fetch once more before refusing it.
		if exp.Roots, _, err = a.trustBundle(ctx, true); err != nil {
			return nil, err
		}
		err = certs.CheckIssued(leaf, chain, exp)
	}
	if err != nil {
		return nil, fmt.Errorf("vault: certificate %s for %s: %w: %v", certs.SerialHex(leaf.SerialNumber), req.System, ErrRefusedCertificate, err)
	}
	return &certs.Issued{Leaf: leaf, Chain: chain, Authority: a.cfg.Name}, nil
}

// parseSigned reads the leaf and its chain (roots left out) from a sign
// answer: data.certificate, data.ca_chain or else data.issuing_ca, and
// checks data.serial_number agrees with the leaf.
func parseSigned(secret *api.Secret) (*x509.Certificate, []*x509.Certificate, error) {
	if secret == nil || secret.Data == nil {
		return nil, nil, errors.New("empty answer from Vault")
	}
	certPEM, _ := secret.Data["certificate"].(string)
	leafs, err := certs.ParseCertificatesPEM([]byte(certPEM))
	if err != nil {
		return nil, nil, fmt.Errorf("data.certificate: %w", err)
	}
	leaf := leafs[0]
	var chainPEM []string
	if list, ok := secret.Data["ca_chain"].([]any); ok && len(list) > 0 {
		for _, e := range list {
			s, _ := e.(string)
			chainPEM = append(chainPEM, s)
		}
	} else if s, ok := secret.Data["issuing_ca"].(string); ok {
		chainPEM = []string{s}
	}
	var chain []*x509.Certificate
	for i, p := range chainPEM {
		list, err := certs.ParseCertificatesPEM([]byte(p))
		if err != nil {
			return nil, nil, fmt.Errorf("data.ca_chain[%d]: %w", i, err)
		}
		for _, c := range list {
			if !certs.IsSelfSigned(c) {
				chain = append(chain, c)
			}
		}
	}
	if s, _ := secret.Data["serial_number"].(string); s != "" {
		n, err := certs.ParseSerial(s)
		if err != nil || n.Cmp(leaf.SerialNumber) != 0 {
			return nil, nil, fmt.Errorf("data.serial_number %q does not match the certificate's serial %s", s, certs.SerialHex(leaf.SerialNumber))
		}
	}
	return leaf, chain, nil
}

// TrustBundle implements certs.Authority: the self-signed certificates
// among the mount's issuers that are not revoked (and their chains), plus
// Config.ExtraRoots.
func (a *Authority) TrustBundle(ctx context.Context) ([]*x509.Certificate, error) {
	roots, _, err := a.trustBundle(ctx, false)
	return roots, err
}

// trustBundle returns the cached bundle, or a fresh one when refresh is set
// or the cache is stale; fetched says which.
func (a *Authority) trustBundle(ctx context.Context, refresh bool) (roots []*x509.Certificate, fetched bool, err error) {
	a.bundleMu.Lock()
	defer a.bundleMu.Unlock()
	if !refresh && a.bundleSet && a.now().Sub(a.bundleAt) < a.cfg.BundleCacheTTL {
		return append([]*x509.Certificate(nil), a.bundle...), false, nil
	}
	if roots, err = a.fetchRoots(ctx); err != nil {
		return nil, false, err
	}
	a.bundle, a.bundleAt, a.bundleSet = roots, a.now(), true
	return append([]*x509.Certificate(nil), roots...), true, nil
}

func (a *Authority) fetchRoots(ctx context.Context) ([]*x509.Certificate, error) {
	// The issuer endpoints are unauthenticated in Vault: send no token.
	c := a.as("")
	listPath := a.cfg.PKIMount + "/issuers"
	secret, err := c.Logical().ListWithContext(ctx, listPath)
	if err != nil {
		return nil, fmt.Errorf("vault: list issuers at %s: %w", listPath, err)
	}
	var ids []string
	if secret != nil {
		keys, _ := secret.Data["keys"].([]any)
		for _, k := range keys {
			if s, ok := k.(string); ok {
				ids = append(ids, s)
			}
		}
	}
	// Read every issuer first: a revoked root must stay out even when it
	// also appears in the chain of an issuer below it.
	var candidates []*x509.Certificate
	revoked := map[string]bool{}
	for _, id := range ids {
		path := a.cfg.PKIMount + "/issuer/" + url.PathEscape(id) + "/json"
		s, err := c.Logical().ReadWithContext(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("vault: read issuer at %s: %w", path, err)
		}
		if s == nil || s.Data == nil {
			continue // deleted between list and read
		}
		own, _ := s.Data["certificate"].(string)
		pems := []string{own}
		if list, ok := s.Data["ca_chain"].([]any); ok {
			for _, e := range list {
				if p, ok := e.(string); ok {
					pems = append(pems, p)
				}
			}
		}
		for i, p := range pems {
			list, err := certs.ParseCertificatesPEM([]byte(p))
			if err != nil {
				return nil, fmt.Errorf("vault: issuer %s: %w", id, err)
			}
			if isRevoked, _ := s.Data["revoked"].(bool); isRevoked && i == 0 {
				for _, cert := range list {
					revoked[string(cert.Raw)] = true
				}
			}
			candidates = append(candidates, list...)
		}
	}
	seen := map[string]bool{}
	var roots []*x509.Certificate
	add := func(r *x509.Certificate) {
		if !seen[string(r.Raw)] && !revoked[string(r.Raw)] {
			seen[string(r.Raw)] = true
			roots = append(roots, r)
		}
	}
	for _, cert := range candidates {
		if cert.IsCA && certs.IsSelfSigned(cert) {
			add(cert)
		}
	}
	for _, r := range a.cfg.ExtraRoots {
		add(r)
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("vault: mount %s holds no root certificate; import the root or set ExtraRoots", a.cfg.PKIMount)
	}
	return roots, nil
}

// write sends an authenticated write, logging in again once if Vault
// answers 403 to an AppRole token.
func (a *Authority) write(ctx context.Context, path string, body map[string]any) (*api.Secret, error) {
	tok, err := a.authToken(ctx, "")
	if err != nil {
		return nil, err
	}
	secret, err := a.as(tok).Logical().WriteWithContext(ctx, path, body)
	if isForbidden(err) && a.cfg.AppRole != nil {
		if tok, err = a.authToken(ctx, tok); err != nil {
			return nil, err
		}
		secret, err = a.as(tok).Logical().WriteWithContext(ctx, path, body)
	}
	if isForbidden(err) {
		return nil, fmt.Errorf("permission denied: the token's policy must allow update on %s: %w", path, err)
	}
	return secret, err
}

func isForbidden(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

// authToken returns the token to use. For AppRole it renews the token past
// 2/3 of its lifetime and logs in when there is none, renewal fails, or
// rejected names a token Vault refused (unless another caller has already
// replaced it).
func (a *Authority) authToken(ctx context.Context, rejected string) (string, error) {
	if a.cfg.AppRole == nil {
		return a.cfg.Token, nil
	}
	a.authMu.Lock()
	defer a.authMu.Unlock()
	if a.token != "" && (rejected == "" || rejected != a.token) {
		age := a.now().Sub(a.tokenObtained)
		switch {
		case rejected != "", a.tokenTTL == 0, age < a.tokenTTL*2/3:
			return a.token, nil
		case age < a.tokenTTL && a.tokenRenewable:
			if a.renewSelf(ctx) == nil {
				return a.token, nil
			}
		}
	}
	if err := a.login(ctx); err != nil {
		return "", err
	}
	return a.token, nil
}

// login performs POST auth/<mount>/login. Callers hold authMu.
func (a *Authority) login(ctx context.Context) error {
	path := "auth/" + strings.Trim(a.cfg.AppRole.Mount, "/") + "/login"
	secret, err := a.as("").Logical().WriteWithContext(ctx, path, map[string]any{
		"role_id":   a.cfg.AppRole.RoleID,
		"secret_id": a.cfg.AppRole.SecretID,
	})
	if err != nil {
		return fmt.Errorf("vault: AppRole login at %s: %w", path, err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return fmt.Errorf("vault: AppRole login at %s returned no token", path)
	}
	a.token = secret.Auth.ClientToken
	a.tokenObtained = a.now()
	a.tokenTTL = time.Duration(secret.Auth.LeaseDuration) * time.Second
	a.loginTTL = a.tokenTTL
	a.tokenRenewable = secret.Auth.Renewable
	return nil
}

// renewSelf performs POST auth/token/renew-self. A renewal that no longer
// extends the token much (its max TTL is near) counts as failed, so the
// caller logs in afresh instead. Callers hold authMu.
func (a *Authority) renewSelf(ctx context.Context) error {
	secret, err := a.as(a.token).Logical().WriteWithContext(ctx, "auth/token/renew-self", map[string]any{})
	if err != nil {
		return fmt.Errorf("vault: renew token: %w", err)
	}
	if secret == nil || secret.Auth == nil {
		return errors.New("vault: renew token: no auth in answer")
	}
	ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
	if ttl < a.loginTTL/2 {
		return errors.New("vault: renew token: near its maximum lifetime")
	}
	if secret.Auth.ClientToken != "" {
		a.token = secret.Auth.ClientToken
	}
	a.tokenObtained, a.tokenTTL = a.now(), ttl
	return nil
}

var _ certs.Authority = (*Authority)(nil)
