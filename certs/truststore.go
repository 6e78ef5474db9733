package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"sync/atomic"
	"time"
)

// TrustStore holds what a gateway trusts right now: the roots of the trust
// bundle and the serials of revoked certificates, both from the control
// plane's signed configuration. Update swaps them atomically, so handshakes
// under way see either the old or the new set, never half of each, and the
// next handshake of a revoked peer fails. Make one with NewTrustStore; an
// empty store trusts nobody.
type TrustStore struct {
	snap atomic.Pointer[trustSnapshot]
}

type trustSnapshot struct {
	roots   []*x509.Certificate
	pool    *x509.CertPool
	revoked map[string]struct{} // SerialHex form
}

// NewTrustStore returns a store holding roots and revokedSerials (see Update).
func NewTrustStore(roots []*x509.Certificate, revokedSerials []string) (*TrustStore, error) {
	s := &TrustStore{}
	if err := s.Update(roots, revokedSerials); err != nil {
		return nil, err
	}
	return s, nil
}

// Update replaces the trusted roots and the revoked serials in one step.
// Serials are hex as SerialHex writes them; colons and upper case are
// accepted too. An empty root list or a bad serial is refused and the store
// keeps what it had, so a damaged configuration does not open or close the
// door by accident.
func (s *TrustStore) Update(roots []*x509.Certificate, revokedSerials []string) error {
	if len(roots) == 0 {
		return errors.New("certs: trust store update with no roots")
	}
	snap := &trustSnapshot{
		roots:   append([]*x509.Certificate(nil), roots...),
		pool:    x509.NewCertPool(),
		revoked: make(map[string]struct{}, len(revokedSerials)),
	}
	for i, r := range roots {
		if r == nil || !r.IsCA {
			return fmt.Errorf("certs: trust store root %d is not a CA certificate", i)
		}
		snap.pool.AddCert(r)
	}
	for _, s := range revokedSerials {
		n, err := ParseSerial(s)
		if err != nil {
			return fmt.Errorf("certs: revoked serials: %w", err)
		}
		snap.revoked[SerialHex(n)] = struct{}{}
	}
	s.snap.Store(snap)
	return nil
}

// emptySnapshot stands in before the first Update: no roots, so every
// peer is refused.
var emptySnapshot = &trustSnapshot{pool: x509.NewCertPool()}

func (s *TrustStore) load() *trustSnapshot {
	if snap := s.snap.Load(); snap != nil {
		return snap
	}
	return emptySnapshot
}

// Roots returns the trusted roots.
func (s *TrustStore) Roots() []*x509.Certificate {
	return append([]*x509.Certificate(nil), s.load().roots...)
}

// IsRevoked reports whether serial is on the revocation list.
func (s *TrustStore) IsRevoked(serial *big.Int) bool {
	_, ok := s.load().revoked[SerialHex(serial)]
	return ok
}

// Verify checks a peer's chain (leaf first, as sent in the handshake)
// against the current roots for usage, refuses it if the leaf or an
// intermediate is revoked, and returns the peer's SPIFFE id.
func (s *TrustStore) Verify(chain []*x509.Certificate, usage x509.ExtKeyUsage) (string, error) {
	if len(chain) == 0 {
		return "", errors.New("certs: the peer sent no certificate")
	}
	snap := s.load()
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	leaf := chain[0]
	verified, err := leaf.Verify(x509.VerifyOptions{
		Roots:         snap.pool,
		Intermediates: inter,
		CurrentTime:   time.Now(),
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return "", fmt.Errorf("certs: peer certificate: %w", err)
	}
	for _, path := range verified {
		for _, c := range path {
			if _, bad := snap.revoked[SerialHex(c.SerialNumber)]; bad {
				return "", fmt.Errorf("certs: peer certificate: serial %s is revoked", SerialHex(c.SerialNumber))
			}
		}
	}
	id, err := SPIFFEID(leaf)
	if err != nil {
		return "", fmt.Errorf("certs: peer certificate: %w", err)
	}
	return id, nil
}

// VerifyPeerCertificate returns a function for
// tls.Config.VerifyPeerCertificate. Note that Go does not call that hook on
// resumed sessions; prefer VerifyConnection, which it always calls.
func (s *TrustStore) VerifyPeerCertificate(usage x509.ExtKeyUsage) func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		chain := make([]*x509.Certificate, 0, len(rawCerts))
		for _, raw := range rawCerts {
			c, err := x509.ParseCertificate(raw)
			if err != nil {
				return fmt.Errorf("certs: peer certificate: %w", err)
			}
			chain = append(chain, c)
		}
		_, err := s.Verify(chain, usage)
		return err
	}
}

// VerifyConnection returns a function for tls.Config.VerifyConnection. Go
// calls it on every handshake, resumed ones included, so a peer revoked
// after it got a session ticket is still refused. allow, if not nil, also
// vets the peer's SPIFFE id (a client checks it reached the system it meant).
func (s *TrustStore) VerifyConnection(usage x509.ExtKeyUsage, allow func(spiffeID string) error) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		id, err := s.Verify(cs.PeerCertificates, usage)
		if err != nil {
			return err
		}
		if allow != nil {
			if err := allow(id); err != nil {
				return fmt.Errorf("certs: peer %s refused: %w", id, err)
			}
		}
		return nil
	}
}

// ServerConfig returns a TLS 1.3 server configuration that presents r's
// certificate and requires a client certificate verified against the store
// on every handshake. Go's own client-certificate check is replaced (hence
// RequireAnyClientCert) because it would use a fixed pool, while the store's
// roots change with CA rotations.
func (s *TrustStore) ServerConfig(r *Rotator) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		GetCertificate:   r.GetCertificate,
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: s.VerifyConnection(x509.ExtKeyUsageClientAuth, nil),
	}
}

// ClientConfig returns a TLS 1.3 client configuration that presents r's
// certificate and verifies the server against the store, and its SPIFFE id
// with allow if given. Peers are named by SPIFFE id rather than host name,
// so Go's host-name check is switched off (InsecureSkipVerify) and replaced
// by VerifyConnection, which checks the chain, revocation and identity.
func (s *TrustStore) ClientConfig(r *Rotator, allow func(spiffeID string) error) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: r.GetClientCertificate,
		InsecureSkipVerify:   true, // replaced by VerifyConnection below
		VerifyConnection:     s.VerifyConnection(x509.ExtKeyUsageServerAuth, allow),
	}
}
