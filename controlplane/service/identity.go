package service

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/controlplane/auth"
)

// AuthenticateGateway knows a gateway by the certificate chain it presented
// in the TLS handshake (leaf first). The chain must verify for client
// authentication against the authority's current roots at the service's
// time; the leaf must be a certificate this control plane issued (the same
// bytes as its record), not revoked, of a system not revoked, and that
// system must be the registered gateway of its member. The principal it
// returns has catalog.RoleGateway: it pulls its member's share and renews
// its own certificate, and may do nothing else.
//
// Every failure wraps auth.ErrUnauthenticated, with the reason for the
// server's log only.
func (s *Service) AuthenticateGateway(ctx context.Context, chain []*x509.Certificate) (auth.Principal, error) {
	fail := func(format string, args ...any) (auth.Principal, error) {
		return auth.Principal{}, fmt.Errorf("%w: client certificate: %s", auth.ErrUnauthenticated, fmt.Sprintf(format, args...))
	}
	if len(chain) == 0 {
		return fail("none presented")
	}
	if s.authority == nil {
		return fail("this control plane has no certificate authority")
	}
	roots, err := s.authority.TrustBundle(ctx)
	if err != nil {
		return auth.Principal{}, fmt.Errorf("authenticate certificate: trust bundle: %w: %w", ErrAuthorityFailed, err)
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	leaf := chain[0]
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, CurrentTime: s.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return fail("%v", err)
	}
	uri, err := certs.SPIFFEID(leaf)
	if err != nil {
		return fail("%v", err)
	}
	serial := certs.SerialHex(leaf.SerialNumber)
	rec, err := s.store.GetCertificate(ctx, serial)
	if errors.Is(err, catalog.ErrNotFound) {
		return fail("serial %s was not issued by this control plane", serial)
	} else if err != nil {
		return auth.Principal{}, fmt.Errorf("authenticate certificate %s: %w", serial, err)
	}
	if block, _ := pem.Decode([]byte(rec.PEM)); block == nil || !bytes.Equal(block.Bytes, leaf.Raw) || rec.SPIFFE != uri {
		return fail("serial %s does not match the certificate issued under it", serial)
	}
	if rec.RevokedAt != nil {
		return fail("serial %s is revoked", serial)
	}
	sys, err := s.store.GetSystem(ctx, rec.System)
	if err != nil {
		return fail("system %s: %v", rec.System, err)
	}
	if sys.RevokedAt != nil {
		return fail("system %s is revoked", sys.ID)
	}
	gw, err := s.store.GetGateway(ctx, sys.Member)
	if err != nil || gw.System != sys.ID {
		return fail("system %s is not the registered gateway of member %s", sys.ID, sys.Member)
	}
	return auth.Principal{
		Name: "gateway " + sys.ID, Role: catalog.RoleGateway, Member: sys.Member,
		System: sys.ID, Certificate: serial,
	}, nil
}
