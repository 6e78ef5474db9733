package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/federation/pull"
	"github.com/lienthong/lienthong/internal/durable"
)

// loadIdentity reads the gateway's key and certificate chain from disk.
// A renewal that a crash interrupted is settled first, so the key and the
// chain always belong together.
func loadIdentity(cfg *Config) (*tls.Certificate, error) {
	if err := durable.Recover(cfg.Identity.KeyFile, cfg.Identity.CertFile); err != nil {
		return nil, fmt.Errorf("gateway identity: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(cfg.Identity.CertFile, cfg.Identity.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("gateway identity: %w (enrol the gateway system first: lienthong system enroll --system %s)", err, cfg.System)
	}
	if info, err := os.Stat(cfg.Identity.KeyFile); err == nil && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("gateway identity: key %s is readable by others (mode %v); chmod 600 it", cfg.Identity.KeyFile, info.Mode().Perm())
	}
	return &pair, nil
}

// renewer returns the Rotator's renewal function: a new key made here (it
// never leaves the machine), a CSR to the control plane, which signs only
// while the gateway system's assessment is current, and the files on disk
// replaced so a restart starts from the newest certificate. The request
// travels on cp(), authenticated by the certificate being renewed.
func renewer(cfg *Config, cp func() *pull.Client, trustDomain func() string) func(context.Context) (tls.Certificate, error) {
	return func(ctx context.Context) (tls.Certificate, error) {
		id, err := catalog.ParseSystemID(cfg.System)
		if err != nil {
			return tls.Certificate{}, err
		}
		keyPEM, csrPEM, err := certs.GenerateKeyAndCSR(id, trustDomain())
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("renew identity: %w", err)
		}
		enr, err := cp().Renew(ctx, cfg.System, csrPEM)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("renew identity: %w", err)
		}
		pair, err := tls.X509KeyPair([]byte(enr.ChainPEM), keyPEM)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("renew identity: %w", err)
		}
		// Key and chain are replaced as one: a crash between the two must
		// not leave a key that its certificate does not match.
		if err := durable.ReplaceTogether(
			durable.File{Path: cfg.Identity.KeyFile, Data: keyPEM, Perm: 0o600},
			durable.File{Path: cfg.Identity.CertFile, Data: []byte(enr.ChainPEM), Perm: 0o600},
		); err != nil {
			return tls.Certificate{}, fmt.Errorf("renew identity: %w", err)
		}
		return pair, nil
	}
}

// controlPlaneClient is how the gateway reaches the control plane: TLS with
// the management CA pinned (when configured) and the gateway's certificate
// (getCert, the one in force) as its only credential.
func controlPlaneClient(cfg *Config, getCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) (*pull.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, GetClientCertificate: getCert}
	if cfg.ControlPlane.CAFile != "" {
		pemBytes, err := os.ReadFile(cfg.ControlPlane.CAFile)
		if err != nil {
			return nil, fmt.Errorf("control plane CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("control plane CA file %s holds no PEM certificate", cfg.ControlPlane.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	return pull.New(cfg.ControlPlane.URL, &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: nil, MaxIdleConnsPerHost: 4},
	}), nil
}

// loadMaskingKey reads the provider's HMAC key, making one on first start.
func loadMaskingKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		key = make([]byte, 32)
		if _, err := randRead(key); err != nil {
			return nil, err
		}
		return key, writeFileAtomic(path, key)
	}
	if err != nil {
		return nil, fmt.Errorf("masking key: %w", err)
	}
	if len(key) < 32 {
		return nil, fmt.Errorf("masking key %s: %d bytes, need at least 32", path, len(key))
	}
	return key, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
