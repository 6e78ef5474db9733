// Package xds keeps Envoy at the agency edges in step with the catalog:
// it reads the catalog (source.go, the one place that does), builds the IR
// of every edge (package ir), translates it (package translate) and
// publishes it through the ADS server (package server). Grants approved or
// revoked update the model in place and reach the affected edges only; any
// other change rebuilds the model, and the server still sends only the
// edges whose content moved.
package xds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/controlplane/xds/ir"
	"github.com/lienthong/lienthong/controlplane/xds/server"
	"github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/internal/jsonstrict"
)

// Trust is the federation's trust as the control plane serves it: the
// roots (PEM) and the serials of revoked certificates.
type Trust struct {
	RootsPEM       string
	RevokedSerials []string
}

// Config configures a Syncer.
type Config struct {
	// Store is read for the trail (grant changes between rebuilds) and, when
	// Snapshot is nil, for the snapshot itself.
	Store catalog.Reader
	// Snapshot returns the federation snapshot of the catalog's current
	// revision (service.Snapshot): rebuilds take the edges' input from it,
	// the very value gateway configuration and bundles are built from.
	Snapshot    func(context.Context) (*federation.Snapshot, error)
	TrustDomain string
	// Trust returns the current roots and revocations (service.Trust).
	Trust func(context.Context) (Trust, error)
	// TrustStore, when set, is kept at the same roots and revocations: it
	// checks the nodes' certificates on the ADS listener.
	TrustStore *certs.TrustStore
	// Sites hold the agencies' local settings (ir.Site), by member.
	Sites map[string]ir.Site
	// MinLevel is the platform's minimum assessed level (enrolment); 0
	// means ir.DefaultMinLevel.
	MinLevel int
	// Interval is how often the catalog revision is checked (default 250 ms).
	Interval time.Duration
	// Resync is how often the edges are rebuilt even without a write, so
	// that grants expiring or starting take effect (default 30 s).
	Resync time.Duration
	Now    func() time.Time
	Log    *slog.Logger
}

// Syncer publishes the catalog to the ADS server.
type Syncer struct {
	cfg   Config
	srv   *server.Server
	model *ir.Model
	// seq is the trail position the model reflects; trust the last trust.
	seq      int64
	trustPEM string
	revoked  string
	built    time.Time
}

// NewSyncer returns a Syncer for srv.
func NewSyncer(srv *server.Server, cfg Config) *Syncer {
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Syncer{cfg: cfg, srv: srv}
}

// Run syncs until ctx ends. A failed round is logged and retried at the
// next tick; nodes keep their last snapshot meanwhile.
func (s *Syncer) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.Once(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("xds sync failed; edges keep their last configuration", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once brings the edges up to the catalog's current revision. When the
// trust cannot be read (the authority is unreachable), grants and routes
// still follow the catalog with the last trust bundle: a revocation must
// not wait for the CA.
func (s *Syncer) Once(ctx context.Context) error {
	trustPEM, trustErr := s.refreshTrust(ctx)
	if trustErr != nil && s.model == nil {
		return trustErr
	}
	now := s.cfg.Now()
	var err error
	if s.model != nil && trustPEM == s.trustPEM && now.Sub(s.built) < s.cfg.Resync {
		var grants []catalog.Grant
		var last int64
		var ok bool
		grants, last, ok, err = grantChanges(ctx, s.cfg.Store, s.seq)
		if err == nil && ok {
			return errors.Join(trustErr, s.applyGrants(ctx, grants, last))
		}
	}
	if err == nil {
		err = s.rebuild(ctx, trustPEM, now)
	}
	return errors.Join(trustErr, err)
}

// refreshTrust reads the trust and keeps the ADS listener's trust store at
// it. On failure it returns the last bundle with the error.
func (s *Syncer) refreshTrust(ctx context.Context) (string, error) {
	trust, err := s.cfg.Trust(ctx)
	if err != nil {
		return s.trustPEM, fmt.Errorf("xds: trust: %w", err)
	}
	revoked, _ := json.Marshal(trust.RevokedSerials)
	if s.cfg.TrustStore != nil && (trust.RootsPEM != s.trustPEM || string(revoked) != s.revoked) {
		roots, err := certs.ParseCertificatesPEM([]byte(trust.RootsPEM))
		if err != nil {
			return s.trustPEM, fmt.Errorf("xds: trust roots: %w", err)
		}
		if err := s.cfg.TrustStore.Update(roots, trust.RevokedSerials); err != nil {
			return s.trustPEM, fmt.Errorf("xds: trust store: %w", err)
		}
	}
	s.revoked = string(revoked)
	return trust.RootsPEM, nil
}

func (s *Syncer) applyGrants(ctx context.Context, grants []catalog.Grant, last int64) error {
	var affected []string
	for i := range grants {
		affected = append(affected, s.model.PutGrant(&grants[i])...)
	}
	s.seq = last
	if len(affected) == 0 {
		return nil
	}
	changed, err := s.srv.Update(ctx, s.model, affected)
	if len(changed) > 0 {
		s.cfg.Log.Info("xds edges updated", "grants", len(grants), "nodes", len(changed))
	}
	return err
}

func (s *Syncer) rebuild(ctx context.Context, trustPEM string, now time.Time) error {
	read := s.cfg.Snapshot
	if read == nil {
		read = func(ctx context.Context) (*federation.Snapshot, error) { return readSnapshot(ctx, s.cfg.Store) }
	}
	snap, err := read(ctx)
	if err != nil {
		return fmt.Errorf("xds: %w", err)
	}
	in, rev := input(snap, now)
	in.TrustDomain, in.TrustPEM, in.Sites, in.MinLevel = s.cfg.TrustDomain, trustPEM, s.cfg.Sites, s.cfg.MinLevel
	m := ir.NewModel(in)
	changed, err := s.srv.Sync(ctx, m)
	// The model is kept even when some edge failed to translate: those
	// nodes keep their last snapshot and the next rebuild tries again.
	s.model, s.seq, s.trustPEM, s.built = m, rev, trustPEM, now
	if len(changed) > 0 {
		s.cfg.Log.Info("xds edges rebuilt", "revision", rev, "edges", len(m.Members()), "grants", m.GrantCount(), "nodes_changed", len(changed))
	}
	return err
}

// LoadSites reads a JSON object of ir.Site by member code; an empty path
// gives none (every edge then uses ir.DefaultSite).
func LoadSites(path string) (map[string]ir.Site, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("xds sites: %w", err)
	}
	// Strictly, as every configuration file: an unknown or repeated key is
	// refused naming its path.
	var sites map[string]ir.Site
	if err := jsonstrict.Decode(b, &sites); err != nil {
		return nil, fmt.Errorf("xds sites %s: %w", path, err)
	}
	for member, site := range sites {
		if !catalog.ValidMemberCode(member) {
			return nil, fmt.Errorf("xds sites %s: %q is not an agency code", path, member)
		}
		if err := site.Validate(); err != nil {
			return nil, fmt.Errorf("xds sites %s: %s: %w", path, member, err)
		}
	}
	return sites, nil
}
