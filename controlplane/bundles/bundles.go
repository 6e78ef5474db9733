// Package bundles turns the catalog into signed OPA policy bundles for the
// gateways, one per catalog revision, and keeps a policy engine loaded with
// the same snapshot so the control plane can explain decisions exactly as a
// gateway would make them.
package bundles

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/policies"
)

// Bundle is one built revision.
type Bundle struct {
	// Revision is the catalog revision the bundle reflects.
	Revision string
	// Archive is the signed OPA bundle (tar.gz).
	Archive []byte
	// Engine decides with this revision's snapshot.
	Engine *policies.Engine
}

// Builder builds and caches the bundle of the current catalog revision.
// Concurrent callers of Current share one build.
type Builder struct {
	store catalog.Store
	key   policies.SigningKey
	now   func() time.Time

	mu      sync.Mutex
	current *Bundle
}

// NewBuilder returns a builder signing with key.
func NewBuilder(store catalog.Store, key policies.SigningKey, now func() time.Time) *Builder {
	if now == nil {
		now = time.Now
	}
	return &Builder{store: store, key: key, now: now}
}

// Current returns the bundle of the catalog's current revision, building it
// when the catalog changed since the last build.
func (b *Builder) Current(ctx context.Context) (*Bundle, error) {
	rev, err := b.store.Revision(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy bundle: %w", err)
	}
	revision := strconv.FormatInt(rev, 10)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.current != nil && b.current.Revision == revision {
		return b.current, nil
	}
	snap, err := Snapshot(ctx, b.store)
	if err != nil {
		return nil, err
	}
	snap.Revision, snap.IssuedAt = revision, b.now().UTC()
	archive, err := policies.BuildBundle(snap, revision, b.key)
	if err != nil {
		return nil, fmt.Errorf("policy bundle %s: %w", revision, err)
	}
	engine := policies.NewEngine(policies.WithClock(b.now))
	if err := engine.Load(ctx, snap); err != nil {
		return nil, fmt.Errorf("policy bundle %s: %w", revision, err)
	}
	b.current = &Bundle{Revision: revision, Archive: archive, Engine: engine}
	return b.current, nil
}

// Snapshot reads what policies decide with from the store: every system,
// the latest version of every dataset, the grants not revoked, and the
// providers' own modules. Reading them in one place keeps the bundle and the
// explanation endpoint identical.
func Snapshot(ctx context.Context, store catalog.Reader) (*policies.Snapshot, error) {
	systems, err := store.ListSystems(ctx, catalog.SystemFilter{})
	if err != nil {
		return nil, fmt.Errorf("policy snapshot: %w", err)
	}
	datasets, err := store.ListDatasets(ctx, catalog.DatasetFilter{})
	if err != nil {
		return nil, fmt.Errorf("policy snapshot: %w", err)
	}
	grants, err := store.ListGrants(ctx, catalog.GrantFilter{State: catalog.GrantActive})
	if err != nil {
		return nil, fmt.Errorf("policy snapshot: %w", err)
	}
	modules, err := store.ListAgencyModules(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy snapshot: %w", err)
	}
	sources := make(map[string][]byte, len(modules))
	for _, m := range modules {
		sources[m.Provider] = m.Source
	}
	snap, err := policies.BuildData(systems, datasets, grants, sources)
	if err != nil {
		return nil, fmt.Errorf("policy snapshot: %w", err)
	}
	return snap, nil
}

// LoadOrCreateKey reads the bundle signing key (PKCS#8 PEM) from file, making
// a P-256 key (mode 0600) on first use. The key id is derived from the public
// key so a rotated key gets a new id without bookkeeping.
func LoadOrCreateKey(file string) (policies.SigningKey, error) {
	raw, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		key, gerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if gerr != nil {
			return policies.SigningKey{}, fmt.Errorf("bundle signing key: %w", gerr)
		}
		der, merr := x509.MarshalPKCS8PrivateKey(key)
		if merr != nil {
			return policies.SigningKey{}, fmt.Errorf("bundle signing key: %w", merr)
		}
		raw = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if werr := os.WriteFile(file, raw, 0o600); werr != nil {
			return policies.SigningKey{}, fmt.Errorf("bundle signing key: %w", werr)
		}
	} else if err != nil {
		return policies.SigningKey{}, fmt.Errorf("bundle signing key: %w", err)
	}
	if info, err := os.Stat(file); err == nil && info.Mode().Perm()&0o077 != 0 {
		return policies.SigningKey{}, fmt.Errorf("bundle signing key %s is readable by others (mode %v); chmod 600 it", file, info.Mode().Perm())
	}
	probe, err := policies.SigningKeyFromPEM("probe", raw)
	if err != nil {
		return policies.SigningKey{}, fmt.Errorf("bundle signing key %s: %w", file, err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(probe.Key.Public())
	if err != nil {
		return policies.SigningKey{}, fmt.Errorf("bundle signing key %s: %w", file, err)
	}
	sum := sha256.Sum256(pubDER)
	probe.KeyID = "lienthong-" + hex.EncodeToString(sum[:6])
	return probe, nil
}
