package gateway

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/federation/pull"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/projection"
	"github.com/lienthong/lienthong/internal/durable"
	"github.com/lienthong/lienthong/policies"
)

// state is one consistent view of the federation as the gateway last pulled
// it: peers, datasets, the policy engine, trust. It is replaced whole, never
// changed in place, so a request sees one revision from start to end.
type state struct {
	config   federation.Config
	engine   *policies.Engine
	syncedAt time.Time
	// bundleBuilt is when the control plane built the policy bundle.
	bundleBuilt time.Time
	// gateways by member, and the member of each gateway identity system.
	gateways      map[string]catalog.Gateway
	gatewayMember map[string]string
	revokedSystem map[string]bool
	// documents of this member's datasets, by "<provider>/<code>".
	documents map[string]*dataset
	// snap is this state as the exchange core reads it.
	snap *exchange.Snapshot
}

// dataset is one of the member's published datasets as the provider side
// needs it: its document's validator.
type dataset struct {
	info      federation.Dataset
	document  []byte
	validator *projection.Validator
	// partial validates records fetched only in part (see partialDocument).
	partial *projection.Validator
	// schema is the declared shape projection plans are compiled against.
	schema *projection.Schema
}

// syncer pulls the signed configuration and the policy bundle from the
// control plane, keeps the last good copy on disk, and says when it is stale.
type syncer struct {
	cfg   *Config
	cp    *pull.Client
	trust *certs.TrustStore
	log   *slog.Logger
	now   func() time.Time
	key   policies.VerificationKey

	current    atomic.Pointer[state]
	bundleETag string
	bundle     []byte
	// configBody is the signed configuration in force, kept to install it
	// again with a new bundle.
	configBody []byte
}

// configMeta is kept next to the stored configuration: the newest signed
// statement that it is current, so a restart keeps the freshness the
// gateway had. It is trusted only if the statement verifies for the ETag
// the stored (and verified) configuration names.
type configMeta struct {
	// Body is the SHA-256 (hex) of the configuration this is about.
	Body           string    `json:"body"`
	FreshAt        time.Time `json:"freshAt,omitzero"`
	FreshSignature string    `json:"freshSignature,omitempty"`
}

// Files in the state directory.
const (
	fileVerificationKey = "verification-key.json"
	fileConfig          = "gateway-config.json"
	fileConfigSignature = "gateway-config.sig"
	fileConfigMeta      = "gateway-config.meta.json"
	fileBundle          = "policy-bundle.tar.gz"
)

// loadKey settles the key that configuration and bundles must be signed
// with. A key named in the gateway's configuration wins; otherwise the first
// key fetched (over the pinned management TLS connection) is kept on disk
// and pinned: a control plane that later presents another key is refused,
// so a replaced or impersonated control plane cannot sign for this gateway.
func (s *syncer) loadKey(ctx context.Context) error {
	if s.cfg.VerificationKeyFile != "" {
		return s.readKey(s.cfg.VerificationKeyFile)
	}
	path := filepath.Join(s.cfg.StateDir, fileVerificationKey)
	if _, err := os.Stat(path); err == nil {
		if err := s.readKey(path); err != nil {
			return err
		}
		if fetched, err := s.fetchKey(ctx); err == nil && !fetched.Key.(interface{ Equal(crypto.PublicKey) bool }).Equal(s.key.Key) {
			return fmt.Errorf("verification key: the control plane presents key %q, not the pinned key %q; if the key was rotated on purpose, remove %s", fetched.KeyID, s.key.KeyID, path)
		}
		return nil
	}
	key, err := s.fetchKey(ctx)
	if err != nil {
		return fmt.Errorf("verification key: %w", err)
	}
	s.key = key
	pemBytes, err := policies.PublicKeyPEM(key.Key)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(map[string]string{"keyId": key.KeyID, "publicKeyPem": string(pemBytes)})
	return writeFileAtomic(path, raw)
}

// fetchKey fetches the control plane's verification key.
func (s *syncer) fetchKey(ctx context.Context) (policies.VerificationKey, error) {
	id, pemBytes, err := s.cp.VerificationKey(ctx)
	if err != nil {
		return policies.VerificationKey{}, err
	}
	return policies.VerificationKeyFromPEM(id, pemBytes)
}

// readKey reads a key stored as {"keyId", "publicKeyPem"}.
func (s *syncer) readKey(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("verification key: %w", err)
	}
	var stored struct{ KeyID, PublicKeyPem string }
	if err := json.Unmarshal(raw, &stored); err != nil {
		return fmt.Errorf("verification key %s: %w", path, err)
	}
	s.key, err = policies.VerificationKeyFromPEM(stored.KeyID, []byte(stored.PublicKeyPem))
	return err
}

// restore loads the last good configuration from disk, verifying its
// signature again, so a restart during an outage serves until it is stale.
func (s *syncer) restore(ctx context.Context) error {
	if err := durable.Recover(s.storedConfigFiles()...); err != nil {
		return fmt.Errorf("stored configuration: %w", err)
	}
	body, err := os.ReadFile(filepath.Join(s.cfg.StateDir, fileConfig))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	sig, err := os.ReadFile(filepath.Join(s.cfg.StateDir, fileConfigSignature))
	if err != nil {
		return err
	}
	cfg, err := federation.VerifyConfig(s.key.KeyID, s.key.Key, body, string(sig))
	if err != nil {
		return fmt.Errorf("stored configuration: %w", err)
	}
	bundle, err := os.ReadFile(filepath.Join(s.cfg.StateDir, fileBundle))
	if err != nil {
		return err
	}
	// A freshness statement counts only if it is about this body and
	// verifies for the ETag the body itself names.
	var meta configMeta
	var freshAt time.Time
	etag := cfg.ETag()
	if raw, err := os.ReadFile(filepath.Join(s.cfg.StateDir, fileConfigMeta)); err == nil && json.Unmarshal(raw, &meta) == nil &&
		etag != "" && meta.Body == sha256Hex(body) && !meta.FreshAt.IsZero() &&
		federation.Verify(s.key.KeyID, s.key.Key, federation.FreshnessMessage(etag, meta.FreshAt), meta.FreshSignature) == nil {
		freshAt = meta.FreshAt
	}
	if err := s.install(ctx, body, bundle, false, freshAt); err != nil {
		return err
	}
	s.configBody = body
	return nil
}

// storedConfigFiles are the files pull replaces together, in the order it
// names them.
func (s *syncer) storedConfigFiles() []string {
	return []string{
		filepath.Join(s.cfg.StateDir, fileConfig),
		filepath.Join(s.cfg.StateDir, fileBundle),
		filepath.Join(s.cfg.StateDir, fileConfigSignature),
	}
}

// pull fetches the configuration and the bundle if they changed, verifies
// both, and installs them. While neither changed, the control plane's signed
// statement that the configuration is current renews the gateway's
// freshness without a download. A failure keeps the previous state.
func (s *syncer) pull(ctx context.Context) error {
	// Ask whether the configuration in force, named by its signed content,
	// changed.
	var inForce string
	if st := s.current.Load(); st != nil && s.configBody != nil {
		inForce = st.config.ETag()
	}
	got, err := s.cp.Config(ctx, s.key.KeyID, s.key.Key, inForce)
	if err != nil {
		return err
	}
	archive, etag, bundleSame, err := s.cp.Bundle(ctx, s.bundleETag)
	if err != nil {
		return err
	}
	if bundleSame {
		archive = s.bundle
	}
	body, freshAt := got.Body, time.Time{}
	if got.NotModified {
		body, freshAt = s.configBody, got.FreshAt
		if bundleSame {
			return s.renew(got)
		}
	}
	if err := s.install(ctx, body, archive, true, freshAt); err != nil {
		return err
	}
	s.bundleETag, s.configBody = etag, body
	// The body, its signature and the bundle are replaced as one: a crash
	// between them must not leave a body that its signature does not cover.
	files := []durable.File{
		{Path: filepath.Join(s.cfg.StateDir, fileConfig), Data: body, Perm: 0o600},
		{Path: filepath.Join(s.cfg.StateDir, fileBundle), Data: archive, Perm: 0o600},
	}
	if !got.NotModified {
		files = append(files, durable.File{Path: filepath.Join(s.cfg.StateDir, fileConfigSignature), Data: []byte(got.Signature), Perm: 0o600})
	}
	if err := durable.ReplaceTogether(files...); err != nil {
		return fmt.Errorf("keep last good configuration: %w", err)
	}
	return s.keepMeta(got)
}

// renew extends the freshness of the state in force with a verified
// statement that its configuration is still current. A statement older than
// the freshness in force is refused, as an older configuration would be.
func (s *syncer) renew(got *federation.Signed) error {
	prev := s.current.Load()
	if prev == nil {
		return errors.New("gateway configuration: not modified, but none is in force")
	}
	if got.FreshAt.Before(prev.syncedAt) {
		return fmt.Errorf("gateway configuration: statement of %s is older than the freshness in force (%s); refused", got.FreshAt.Format(time.RFC3339), prev.syncedAt.Format(time.RFC3339))
	}
	st := *prev
	st.syncedAt = got.FreshAt
	s.current.Store(&st)
	return s.keepMeta(got)
}

// keepMeta stores, after a not-modified answer, the freshness statement of
// the configuration in force (and forgets an older one after a download).
func (s *syncer) keepMeta(got *federation.Signed) error {
	meta := configMeta{Body: sha256Hex(s.configBody)}
	if got.NotModified {
		meta.FreshAt, meta.FreshSignature = got.FreshAt, got.Signature
	}
	raw, _ := json.Marshal(meta)
	if err := writeFileAtomic(filepath.Join(s.cfg.StateDir, fileConfigMeta), raw); err != nil {
		return fmt.Errorf("keep last good configuration: %w", err)
	}
	return nil
}

// install verifies and activates one configuration and bundle. Freshness is
// the configuration's signed issue time, or freshAt (a verified statement
// that it is still current) when later, never when it reached us, and
// neither the configuration nor the bundle may go back to an older revision:
// a replayed copy from before a revocation is refused.
func (s *syncer) install(ctx context.Context, body, archive []byte, fetchDocs bool, freshAt time.Time) error {
	var cfg federation.Config
	if err := json.Unmarshal(body, &cfg); err != nil {
		return fmt.Errorf("gateway configuration: %w", err)
	}
	if cfg.Member != s.cfg.Member {
		return fmt.Errorf("gateway configuration is the share of member %q, not of this gateway's member %s; refused", cfg.Member, s.cfg.Member)
	}
	snap, err := policies.LoadBundle(bytes.NewReader(archive), s.key)
	if err != nil {
		return fmt.Errorf("policy bundle: %w", err)
	}
	prev := s.current.Load()
	if prev != nil {
		if cfg.Revision < prev.config.Revision || cfg.IssuedAt.Before(prev.config.IssuedAt) {
			return fmt.Errorf("gateway configuration revision %d issued %s is older than the one in force (%d); refused", cfg.Revision, cfg.IssuedAt.Format(time.RFC3339), prev.config.Revision)
		}
		if older(snap.Revision, prev.engine.Revision()) {
			return fmt.Errorf("policy bundle revision %s is older than the one in force (%s); refused", snap.Revision, prev.engine.Revision())
		}
	}
	syncedAt := cfg.IssuedAt
	if freshAt.After(syncedAt) {
		syncedAt = freshAt
	}
	if prev != nil && syncedAt.Before(prev.syncedAt) && cfg.Revision == prev.config.Revision {
		syncedAt = prev.syncedAt // the same configuration, with a new bundle
	}
	engine := policies.NewEngine(policies.WithClock(s.now))
	if prev != nil && prev.engine.Revision() == snap.Revision {
		engine = prev.engine
	} else if err := engine.Load(ctx, snap); err != nil {
		return fmt.Errorf("policy bundle %s: %w", snap.Revision, err)
	}
	st := &state{
		config: cfg, engine: engine, syncedAt: syncedAt, bundleBuilt: snap.IssuedAt,
		gateways: map[string]catalog.Gateway{}, gatewayMember: map[string]string{},
		revokedSystem: map[string]bool{}, documents: map[string]*dataset{},
	}
	for _, g := range cfg.Gateways {
		st.gateways[g.Member] = g
		st.gatewayMember[g.System] = g.Member
	}
	if cfg.Trust != nil {
		for _, id := range cfg.Trust.RevokedSystems {
			st.revokedSystem[id] = true
		}
		roots, err := certs.ParseCertificatesPEM([]byte(cfg.Trust.RootsPEM))
		if err != nil {
			return fmt.Errorf("trust roots: %w", err)
		}
		if s.trust == nil {
			if s.trust, err = certs.NewTrustStore(roots, cfg.Trust.RevokedSerials); err != nil {
				return fmt.Errorf("trust roots: %w", err)
			}
		} else if err := s.trust.Update(roots, cfg.Trust.RevokedSerials); err != nil {
			return fmt.Errorf("trust roots: %w", err)
		}
	} else {
		return errors.New("gateway configuration carries no trust roots")
	}
	for _, d := range cfg.Datasets {
		if memberOfSystem(d.Provider) != s.cfg.Member {
			continue
		}
		ref := d.Provider + "/" + d.Code
		if prev != nil {
			if old, ok := prev.documents[ref]; ok && old.info.Digest == d.Digest {
				st.documents[ref] = old
				continue
			}
		}
		doc, err := s.document(ctx, d, fetchDocs)
		if err != nil {
			return err
		}
		v, err := projection.NewValidator(doc, d.RecordSchema)
		if err != nil {
			return fmt.Errorf("dataset %s: %w", ref, err)
		}
		partialDoc, err := partialDocument(doc)
		if err != nil {
			return fmt.Errorf("dataset %s: %w", ref, err)
		}
		pv, err := projection.NewValidator(partialDoc, d.RecordSchema)
		if err != nil {
			return fmt.Errorf("dataset %s: %w", ref, err)
		}
		schema, err := projection.LoadSchema(ctx, doc, d.RecordSchema)
		if err != nil {
			return fmt.Errorf("dataset %s: %w", ref, err)
		}
		st.documents[ref] = &dataset{info: d, document: doc, validator: v, partial: pv, schema: schema}
	}
	st.snap = snapshotOf(st)
	st.snap.Policy = snap.Data // the feed router's subscribers
	s.current.Store(st)
	if prev == nil || prev.config.Revision != cfg.Revision {
		s.log.Info("configuration installed", "revision", cfg.Revision, "policy_revision", snap.Revision, "peers", len(cfg.Gateways), "datasets", len(st.documents))
	}
	s.bundle = archive
	return nil
}

// document returns a dataset document, from disk when its digest matches,
// else from the control plane (when allowed), kept on disk by digest.
func (s *syncer) document(ctx context.Context, d federation.Dataset, fetch bool) ([]byte, error) {
	path := filepath.Join(s.cfg.StateDir, "documents", d.Digest)
	if doc, err := os.ReadFile(path); err == nil && sha256Hex(doc) == d.Digest {
		return doc, nil
	}
	if !fetch {
		return nil, fmt.Errorf("dataset %s/%s: document %s not kept on disk", d.Provider, d.Code, d.Digest)
	}
	doc, err := s.cp.Document(ctx, d.Provider, d.Code, d.Version)
	if err != nil {
		return nil, fmt.Errorf("dataset %s/%s: %w", d.Provider, d.Code, err)
	}
	if sha256Hex(doc) != d.Digest {
		return nil, fmt.Errorf("dataset %s/%s: document digest does not match the signed configuration", d.Provider, d.Code)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return doc, writeFileAtomic(path, doc)
}

// run pulls every poll interval until ctx ends, logging failures; the
// previous state stays in force until it goes stale.
func (s *syncer) run(ctx context.Context) {
	t := time.NewTicker(s.cfg.PollInterval.Duration)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.pull(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("configuration pull failed; keeping the last good configuration", "error", err.Error())
			}
		}
	}
}

// older reports whether revision a is numerically below b.
func older(a, b string) bool {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	return errA == nil && errB == nil && x < y
}

// writeFileAtomic keeps a gateway file (mode 0600) durably: see
// internal/durable.
func writeFileAtomic(path string, data []byte) error {
	return durable.WriteFile(path, data, 0o600)
}

func memberOfSystem(id string) string {
	sid, err := catalog.ParseSystemID(id)
	if err != nil {
		return ""
	}
	return sid.Member
}
