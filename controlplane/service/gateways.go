package service

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
)

// RegisterGateway records where a member's gateway accepts peers and which of
// the member's systems it presents. Only that member's admin (or the
// platform operator) may point traffic at an address.
func (s *Service) RegisterGateway(ctx context.Context, p auth.Principal, g catalog.Gateway) (*catalog.Gateway, error) {
	if err := p.RequireMemberAdmin("register a gateway", g.Member); err != nil {
		return nil, err
	}
	v := &catalog.ValidationError{What: "gateway"}
	if memberOf(g.System) != g.Member {
		v.Add("/system", "gateway system %q must be a system of member %s", g.System, g.Member)
	}
	if host, port, err := net.SplitHostPort(g.Address); err != nil || host == "" {
		v.Add("/address", "address %q must be host:port", g.Address)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.Add("/address", "port %q must be 1-65535", port)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	g.UpdatedAt = s.Now()
	err := s.store.Update(ctx, func(tx catalog.Tx) error {
		before, err := tx.GetGateway(ctx, g.Member)
		if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return err
		}
		sys, err := tx.GetSystem(ctx, g.System)
		if errors.Is(err, catalog.ErrNotFound) {
			return catalog.Invalid("gateway", "/system", "system %s is not registered", g.System)
		} else if err != nil {
			return err
		}
		// Not secure, not connected: a gateway gets no route either.
		if c := sys.ConnectivityAt(s.Now(), s.EnrollMinLevel()); !c.Connectable {
			return fmt.Errorf("%w: gateway system %s cannot be routed to: %s (not secure, not connected)", catalog.ErrForbidden, g.System, c.Reason)
		}
		if err := tx.PutGateway(ctx, &g); err != nil {
			return err
		}
		return s.record(ctx, tx, p, change{action: "gateway.register", object: g.Member, member: g.Member, before: before, after: g})
	})
	if err != nil {
		return nil, fmt.Errorf("register gateway of %s: %w", g.Member, err)
	}
	return &g, nil
}

// Gateways lists every registered gateway.
func (s *Service) Gateways(ctx context.Context) ([]catalog.Gateway, error) {
	return s.store.ListGateways(ctx)
}

// GatewayConfig is what every gateway pulls: where the peers are, which
// datasets exist (with the digest of their document, to fetch when it
// changes), and whom to trust and refuse. The control plane signs it, so a
// gateway acts only on configuration its operator issued.
type GatewayConfig struct {
	Revision int64     `json:"revision"`
	IssuedAt time.Time `json:"issuedAt"`
	// Gateways are the registered gateways of all members.
	Gateways []catalog.Gateway `json:"gateways"`
	// Datasets are the latest versions, without documents or fields.
	Datasets []GatewayDataset `json:"datasets"`
	// Trust holds the roots and the revoked serials and systems.
	Trust *Trust `json:"trust"`
}

// GatewayDataset is a dataset as gateways need to know it.
type GatewayDataset struct {
	Provider     string `json:"provider"`
	Code         string `json:"code"`
	Version      int    `json:"version"`
	Digest       string `json:"digest"`
	RecordSchema string `json:"recordSchema"`
}

// RequireGateway allows what a gateway's token does: pull configuration and
// policy. Those carry every grant of the federation (who may read what), so
// integrators, approvers and auditors read grants through the scoped
// listings instead.
func RequireGateway(p auth.Principal, action string) error {
	if p.IsPlatformAdmin() {
		return nil
	}
	return p.RequireMemberAdmin(action, p.Member)
}

// SignedGatewayConfig returns the gateway configuration as JSON and its
// signature: "<key id>.<base64url ECDSA/RSA signature over SHA-256(body)>",
// made with the policy bundle key, so gateways need one verification key.
func (s *Service) SignedGatewayConfig(ctx context.Context) (body []byte, signature string, err error) {
	if s.bundleKey == nil {
		return nil, "", errNoBundles
	}
	rev, err := s.store.Revision(ctx)
	if err != nil {
		return nil, "", err
	}
	gws, err := s.store.ListGateways(ctx)
	if err != nil {
		return nil, "", err
	}
	ds, err := s.store.ListDatasets(ctx, catalog.DatasetFilter{})
	if err != nil {
		return nil, "", err
	}
	trust, err := s.Trust(ctx)
	if err != nil {
		return nil, "", err
	}
	cfg := GatewayConfig{Revision: rev, IssuedAt: s.Now(), Gateways: gws, Datasets: make([]GatewayDataset, len(ds)), Trust: trust}
	for i, d := range ds {
		cfg.Datasets[i] = GatewayDataset{Provider: d.System, Code: d.Code, Version: d.Version, Digest: d.Digest, RecordSchema: d.RecordSchema}
	}
	body, err = json.Marshal(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("gateway config: %w", err)
	}
	sum := sha256.Sum256(body)
	sig, err := s.bundleKey.Key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return nil, "", fmt.Errorf("sign gateway config: %w", err)
	}
	return body, s.bundleKey.KeyID + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
