// Package service is the control plane's business layer: every management
// operation (admit a member, register a system, record an assessment, publish
// a dataset, mint a token) with its authorization check and its admin-trail
// entry, independent of HTTP. The API and the first-start seeding both call
// it, so there is one place where each rule is enforced.
package service

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/bundles"
	"github.com/lienthong/lienthong/policies"
)

// Service performs management operations against a store.
type Service struct {
	store    catalog.Store
	now      func() time.Time
	maxGrant time.Duration

	// Policy (policy.go): the bundle signing key and the builder that signs
	// one bundle per catalog revision; nil when bundles are not configured.
	bundleKey *policies.SigningKey
	bundles   *bundles.Builder

	// Certificates (certs.go): the authority that signs, the federation's
	// SPIFFE trust domain, the lifetime asked for, and the platform's
	// minimum assessed level for enrolment. Zero values mean the defaults.
	authority   certs.Authority
	trustDomain string
	certTTL     time.Duration
	enrollMin   int

	// snapshots caches the federation snapshot of the latest revision
	// (snapshot.go).
	snapshots snapshotCache
	// bundleBuilt hears of bundle builds (WithBundleBuildObserver).
	bundleBuilt func(time.Duration)

	// pulls remembers each gateway's last configuration pull (pulls.go).
	pulls pullLog
}

// Option configures a Service.
type Option func(*Service)

// WithClock replaces time.Now, for tests that move time past an expiry.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithBundleBuildObserver hears how long each policy bundle build takes
// (the control plane's metrics).
func WithBundleBuildObserver(f func(took time.Duration)) Option {
	return func(s *Service) { s.bundleBuilt = f }
}

// New returns a Service over store.
func New(store catalog.Store, opts ...Option) *Service {
	s := &Service{store: store, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	if s.bundleKey != nil {
		s.bundles = bundles.NewBuilder(s.Snapshot, *s.bundleKey, s.Now)
		s.bundles.Built = s.bundleBuilt
	}
	return s
}

// Store exposes the underlying store for read paths that need no rule.
func (s *Service) Store() catalog.Store { return s.store }

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.now().UTC() }

// change is one write and how the trail should describe it.
type change struct {
	action string
	object string
	member string
	before any
	after  any
}

// record appends c to the admin trail inside tx. Snapshots must never hold
// secrets: callers pass types whose secret fields are tagged json:"-".
func (s *Service) record(ctx context.Context, tx catalog.Tx, p auth.Principal, c change) error {
	e := &catalog.TrailEntry{
		At:      s.Now(),
		Actor:   p.Actor(),
		Role:    p.Role,
		Member:  c.member,
		Action:  c.action,
		Object:  c.object,
		Outcome: "ok",
	}
	var err error
	if e.Before, err = snapshot(c.before); err != nil {
		return fmt.Errorf("trail %s: %w", c.action, err)
	}
	if e.After, err = snapshot(c.after); err != nil {
		return fmt.Errorf("trail %s: %w", c.action, err)
	}
	return tx.AppendTrail(ctx, e)
}

// snapshot marshals v, returning nil for an absent value (nil, or a typed nil
// pointer) so the trail shows no snapshot rather than a JSON null.
func snapshot(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		return nil, err
	}
	return b, nil
}

// RecordRefusal writes a refused attempt to the trail in its own
// transaction, for attempts auditors must see even though nothing changed
// (a certificate request for another system's id, for example).
func (s *Service) RecordRefusal(ctx context.Context, p auth.Principal, action, object, member, reason string) error {
	return s.store.Update(ctx, func(tx catalog.Tx) error {
		return tx.AppendTrail(ctx, &catalog.TrailEntry{
			At: s.Now(), Actor: p.Actor(), Role: p.Role, Member: member,
			Action: action, Object: object, Outcome: "refused: " + reason,
		})
	})
}

// Trail lists admin-trail entries: all of them for platform-admin, the
// member's own for an auditor or member-admin.
func (s *Service) Trail(ctx context.Context, p auth.Principal, f catalog.TrailFilter) ([]catalog.TrailEntry, error) {
	if !p.IsPlatformAdmin() {
		if err := p.RequireRoleOf("read the admin trail", p.Member, catalog.RoleAuditor, catalog.RoleMemberAdmin); err != nil {
			return nil, err
		}
		f.Member = p.Member
	}
	entries, err := s.store.ListTrail(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list trail: %w", err)
	}
	return entries, nil
}
