package controlplane

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/certs/embedded"
	"github.com/lienthong/lienthong/certs/vault"
	"github.com/lienthong/lienthong/controlplane/service"
)

// CAConfig selects the certificate authority and the enrolment rules. The
// embedded CA serves one machine; production points at a Vault or OpenBao
// PKI secrets engine (deploy/vault.md, docs/certificates.md).
type CAConfig struct {
	// Kind is "embedded" (default) or "vault".
	Kind string
	// Dir holds the embedded CA's keys; default <DataDir>/ca. The keys are
	// sealed with LIENTHONG_CA_PASSPHRASE when it is set.
	Dir string
	// TrustDomain is the SPIFFE trust domain; default service.DefaultTrustDomain.
	TrustDomain string
	// CertTTL is the lifetime of issued certificates; default certs.DefaultTTL.
	CertTTL time.Duration
	// EnrollMinLevel is the lowest assessed level that gets a certificate;
	// default service.DefaultEnrollMinLevel.
	EnrollMinLevel int
	// Vault configures Kind "vault".
	Vault VaultConfig
}

// VaultConfig points the control plane at a Vault PKI role. Secrets (token,
// AppRole secret_id) come from the environment in production; they are
// never logged.
type VaultConfig struct {
	// Addr is Vault's URL; empty means VAULT_ADDR.
	Addr string
	// PKIMount and Role name the secrets engine and the role that signs.
	PKIMount, Role string
	// Namespace is the Vault Enterprise / HCP namespace, if any.
	Namespace string
	// Token authenticates with a fixed token; with neither Token nor
	// AppRoleRoleID, VAULT_TOKEN is used.
	Token string
	// AppRoleRoleID and AppRoleSecretID authenticate with AppRole instead,
	// the method meant for services.
	AppRoleRoleID, AppRoleSecretID string
	// CAFile is the CA of Vault's own TLS certificate, if not in the system pool.
	CAFile string
}

// VaultSecretIDEnv names the environment variable the AppRole secret_id is
// read from when it is not configured directly, so it need not appear on a
// command line where every local user can see it.
const VaultSecretIDEnv = "LIENTHONG_VAULT_SECRET_ID"

// maxCertTTL bounds --cert-ttl: the embedded CA caps lifetimes there, and a
// longer life would defeat "a lapsed system drops off within one lifetime".
const maxCertTTL = embedded.DefaultMaxTTL

// OpenAuthority opens the configured certificate authority: the embedded CA
// (created on first start) or a Vault client, which is not contacted until
// the first enrolment.
func OpenAuthority(cfg Config) (certs.Authority, error) {
	ca := cfg.CA
	switch ca.Kind {
	case "", "embedded":
		dir := ca.Dir
		if dir == "" {
			dir = filepath.Join(cfg.DataDir, "ca")
		}
		a, err := embedded.Open(dir)
		if err != nil {
			return nil, fmt.Errorf("open the embedded CA in %s: %w", dir, err)
		}
		return a, nil
	case "vault":
		v := ca.Vault
		vc := vault.Config{Address: v.Addr, PKIMount: v.PKIMount, Role: v.Role, Namespace: v.Namespace, Token: v.Token}
		if v.AppRoleRoleID != "" && v.AppRoleSecretID == "" {
			v.AppRoleSecretID = os.Getenv(VaultSecretIDEnv)
		}
		if v.AppRoleRoleID != "" || v.AppRoleSecretID != "" {
			if v.Token != "" {
				return nil, errors.New("vault: give either a token or AppRole credentials, not both")
			}
			vc.AppRole = &vault.AppRole{RoleID: v.AppRoleRoleID, SecretID: v.AppRoleSecretID}
		}
		if v.CAFile != "" {
			pem, err := os.ReadFile(v.CAFile)
			if err != nil {
				return nil, fmt.Errorf("vault CA file: %w", err)
			}
			vc.CACertPEM = pem
		}
		a, err := vault.New(vc)
		if err != nil {
			return nil, fmt.Errorf("configure the Vault authority: %w", err)
		}
		return a, nil
	}
	return nil, fmt.Errorf("unknown certificate authority %q: use embedded or vault", ca.Kind)
}

// certificateOptions checks the enrolment settings, opens the authority and
// returns the service options that carry them.
func certificateOptions(cfg Config, log *slog.Logger) ([]service.Option, certs.Authority, error) {
	ca := cfg.CA
	td := ca.TrustDomain
	if td == "" {
		td = service.DefaultTrustDomain
	}
	if !certs.ValidTrustDomain(td) {
		return nil, nil, fmt.Errorf("trust domain %q must be lower-case letters, digits, '.', '-' or '_', e.g. %s", td, service.DefaultTrustDomain)
	}
	ttl := ca.CertTTL
	if ttl == 0 {
		ttl = certs.DefaultTTL
	}
	if ttl < time.Minute || ttl > maxCertTTL {
		return nil, nil, fmt.Errorf("certificate lifetime %s must be between 1m and %s", ttl, maxCertTTL)
	}
	level := ca.EnrollMinLevel
	if level == 0 {
		level = service.DefaultEnrollMinLevel
	}
	if level < catalog.MinSecurityLevel || level > catalog.MaxSecurityLevel {
		return nil, nil, fmt.Errorf("enrolment minimum level %d must be between %d and %d", level, catalog.MinSecurityLevel, catalog.MaxSecurityLevel)
	}
	a, err := OpenAuthority(cfg)
	if err != nil {
		return nil, nil, err
	}
	attrs := []any{"authority", a.Name(), "trust_domain", td, "certificate_lifetime", ttl.String(), "enroll_min_level", level}
	if ca.Kind == "vault" {
		method := "token"
		if ca.Vault.AppRoleRoleID != "" {
			method = "approle"
		}
		attrs = append(attrs, "vault_addr", ca.Vault.Addr, "vault_pki_mount", ca.Vault.PKIMount, "vault_role", ca.Vault.Role, "vault_auth", method)
	}
	log.Info("certificate authority ready", attrs...)
	return []service.Option{
		service.WithAuthority(a),
		service.WithTrustDomain(td),
		service.WithCertTTL(ttl),
		service.WithEnrollMinLevel(level),
	}, a, nil
}
