package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/federation"
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

// requireGateway allows what a gateway does: pull its member's configuration
// and policy. A gateway known by its certificate (catalog.RoleGateway) and
// its member's admin get the member's share; the platform operator any.
// Integrators, approvers and auditors read grants through the scoped
// listings instead.
func requireGateway(p auth.Principal, action string) error {
	if p.IsPlatformAdmin() || p.IsGateway() {
		return nil
	}
	return p.RequireMemberAdmin(action, p.Member)
}

// RequireOwnDataset refuses a gateway a dataset document of another member:
// it serves only its own member's datasets. People read the catalog whole.
func RequireOwnDataset(p auth.Principal, provider string) error {
	if p.IsGateway() && memberOf(provider) != p.Member {
		return fmt.Errorf("%w: gateway %s serves member %s and may not read documents of %s", catalog.ErrForbidden, p.System, p.Member, provider)
	}
	return nil
}

// shareOf is the member whose share p may pull: its own, whatever it asks
// for, unless it is the platform operator, who gets what it asks for (""
// meaning the whole federation). Asking for another member's share is
// refused rather than silently narrowed.
func shareOf(p auth.Principal, action, member string) (string, error) {
	if err := requireGateway(p, action); err != nil {
		return "", err
	}
	if p.IsPlatformAdmin() {
		return member, nil
	}
	if member != "" && member != p.Member {
		return "", fmt.Errorf("%w: %s: %s acts for member %s, not for %s", catalog.ErrForbidden, action, p.Actor(), p.Member, member)
	}
	return p.Member, nil
}

// GatewayConfig returns the configuration of member's gateway, signed, or,
// when ifNoneMatch names its current content, a signed statement that it is
// current. The caller gets its own member's share (see shareOf); it and the
// policy bundles come from the same snapshot of the catalog.
func (s *Service) GatewayConfig(ctx context.Context, p auth.Principal, member, ifNoneMatch string) (*federation.Signed, error) {
	member, err := shareOf(p, "pull the gateway configuration", member)
	if err != nil {
		return nil, err
	}
	if s.bundleKey == nil {
		return nil, errNoBundles
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	trust, err := s.trustOf(ctx, snap)
	if err != nil {
		return nil, err
	}
	cfg, err := snap.Config(member, trust)
	if err != nil {
		return nil, err
	}
	signed, err := federation.Issue(cfg, ifNoneMatch, s.Now(), s.bundleKey.KeyID, s.bundleKey.Key)
	if err == nil {
		s.notePull(p, member, signed.ETag, ifNoneMatch)
	}
	return signed, err
}
