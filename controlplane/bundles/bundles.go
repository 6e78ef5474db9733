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
	"github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/internal/durable"
	"github.com/lienthong/lienthong/policies"
)

// Bundle is one built revision.
type Bundle struct {
	// Revision is the catalog revision the bundle reflects.
	Revision string
	// Archive is the signed OPA bundle (tar.gz).
	Archive []byte
	// Engine decides with this revision's whole snapshot (nil in a
	// member's bundle).
	Engine *policies.Engine
}

// Source gives the federation snapshot of the catalog's current revision
// (service.Service.Snapshot): the bundles are built from the same read as
// the gateway configuration.
type Source func(ctx context.Context) (*federation.Snapshot, error)

// Builder builds and caches the bundle of the current catalog revision, and
// each member's share of it. Concurrent callers share one build.
type Builder struct {
	source Source
	key    policies.SigningKey
	now    func() time.Time

	mu      sync.Mutex
	current *Bundle
	// snap is what current was built from; members are the members'
	// bundles built from it so far.
	snap    *federation.Snapshot
	members map[string]*Bundle
	// Built, when set, hears how long each bundle build took (metrics).
	Built func(took time.Duration)
}

// NewBuilder returns a builder signing with key the snapshots source gives.
func NewBuilder(source Source, key policies.SigningKey, now func() time.Time) *Builder {
	if now == nil {
		now = time.Now
	}
	return &Builder{source: source, key: key, now: now}
}

// Current returns the bundle of the catalog's current revision, building it
// when the catalog changed since the last build.
func (b *Builder) Current(ctx context.Context) (*Bundle, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.currentLocked(ctx)
}

func (b *Builder) currentLocked(ctx context.Context) (*Bundle, error) {
	fs, err := b.source(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy bundle: %w", err)
	}
	revision := strconv.FormatInt(fs.Revision, 10)
	if b.current != nil && b.current.Revision == revision {
		return b.current, nil
	}
	began := time.Now()
	snap, err := PolicySnapshot(fs, "")
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
	if b.Built != nil {
		b.Built(time.Since(began))
	}
	b.snap, b.members = fs, map[string]*Bundle{}
	return b.current, nil
}

// ForMember returns the bundle of the current revision as the gateway of
// member needs it (see PolicySnapshot). A gateway decides only for its own
// datasets, so it learns nothing of who may read what from other agencies.
func (b *Builder) ForMember(ctx context.Context, member string) (*Bundle, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, err := b.currentLocked(ctx)
	if err != nil {
		return nil, err
	}
	if mb, ok := b.members[member]; ok {
		return mb, nil
	}
	snap, err := PolicySnapshot(b.snap, member)
	if err != nil {
		return nil, err
	}
	snap.Revision, snap.IssuedAt = cur.Revision, b.now().UTC()
	archive, err := policies.BuildBundle(snap, cur.Revision, b.key)
	if err != nil {
		return nil, fmt.Errorf("policy bundle %s of member %s: %w", cur.Revision, member, err)
	}
	mb := &Bundle{Revision: cur.Revision, Archive: archive}
	b.members[member] = mb
	return mb, nil
}

// PolicySnapshot is what policies decide with, from a federation snapshot:
// every system (a consumer's registration, level and assessment decide
// whether it is connected at all), the latest version of the datasets, the
// active grants on them and the providers' own modules. With a member, only
// that member's datasets, the grants on them and its own providers' modules
// are kept: its gateway's share.
func PolicySnapshot(fs *federation.Snapshot, member string) (*policies.Snapshot, error) {
	ours := func(system string) bool { return member == "" || federation.MemberOf(system) == member }
	var (
		datasets []catalog.Dataset
		grants   []catalog.Grant
		sources  = map[string][]byte{}
	)
	for _, d := range fs.Datasets {
		if ours(d.System) {
			datasets = append(datasets, d)
		}
	}
	for _, g := range fs.Grants {
		if ours(g.Provider) {
			grants = append(grants, g)
		}
	}
	for _, m := range fs.Modules {
		if ours(m.Provider) {
			sources[m.Provider] = m.Source
		}
	}
	snap, err := policies.BuildData(fs.Systems, datasets, grants, sources)
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
		if werr := durable.WriteFile(file, raw, 0o600); werr != nil {
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
