package controlplane

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/durable"
	"github.com/lienthong/lienthong/policies"
)

// MarkerFile is written into the data directory once its first start is
// complete (store created, bootstrap token made, seed loaded).
const MarkerFile = "datadir.json"

// stateFiles are what a completed first start leaves in the data
// directory. Either means the directory belongs to a federation and its
// catalog must be there, whole: bootstrap and seeding happen only into a
// directory that holds neither (a first start that crashed before them
// simply runs again).
var stateFiles = []string{MarkerFile, "admin.token"}

// RecoveryDoc is where an operator reads what a refusal to start means.
const RecoveryDoc = "docs/operations.md, \"Backup, restore and recovery\""

// existingState lists the state files present in dir.
func existingState(dir string) []string {
	var found []string
	for _, name := range stateFiles {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			found = append(found, name)
		}
	}
	return found
}

// marker is the content of MarkerFile: the settings a federation's state
// was made with, which a later start may not silently change.
type marker struct {
	Store       string `json:"store"`
	CA          string `json:"ca"`
	TrustDomain string `json:"trustDomain"`
	CreatedAt   string `json:"createdAt,omitempty"`
}

func markerOf(cfg Config) marker {
	m := marker{Store: storeName(cfg.Store), CA: cfg.CA.Kind, TrustDomain: cfg.CA.TrustDomain}
	if m.CA == "" {
		m.CA = "embedded"
	}
	if m.TrustDomain == "" {
		m.TrustDomain = service.DefaultTrustDomain
	}
	return m
}

// checkMarker refuses a start whose flags conflict with the settings the
// data directory's federation was made with: certificates already issued
// name its trust domain, and its catalog is in its store.
func checkMarker(cfg Config) error {
	raw, err := os.ReadFile(filepath.Join(cfg.DataDir, MarkerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var was marker
	if err := json.Unmarshal(raw, &was); err != nil {
		return fmt.Errorf("refusing to start: %s is damaged (%v); restore it from a backup (see %s)", filepath.Join(cfg.DataDir, MarkerFile), err, RecoveryDoc)
	}
	now := markerOf(cfg)
	var conflicts []string
	for _, c := range []struct{ flag, was, now string }{
		{"--store", was.Store, now.Store}, {"--ca", was.CA, now.CA}, {"--trust-domain", was.TrustDomain, now.TrustDomain},
	} {
		if c.was != "" && c.was != c.now {
			conflicts = append(conflicts, fmt.Sprintf("%s %s (this data directory's federation uses %s)", c.flag, c.now, c.was))
		}
	}
	if len(conflicts) > 0 {
		return fmt.Errorf("refusing to start: %s; start with the federation's settings, or use a new --data-dir for a new federation", strings.Join(conflicts, "; "))
	}
	return nil
}

// writeMarker records that the data directory's first start is complete,
// with the settings it was made with.
func writeMarker(cfg Config) error {
	path := filepath.Join(cfg.DataDir, MarkerFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	m := markerOf(cfg)
	m.CreatedAt = time.Now().UTC().Format(time.RFC3339)
	raw, _ := json.MarshalIndent(m, "", "  ")
	return durable.WriteFile(path, append(raw, '\n'), 0o600)
}

// refuseStartOver is the error for a data directory whose catalog is gone
// or damaged: the process stops, touching nothing, and says how to restore.
func refuseStartOver(dir string, found []string, cause error) error {
	return fmt.Errorf("refusing to start: the data directory %s holds a federation's state (%s) but its catalog cannot be opened intact: %w.\n"+
		"Nothing was changed. Restore the data directory (catalog.db with it) from your last backup, or, to start a new federation, use an empty --data-dir. See %s",
		dir, strings.Join(found, ", "), cause, RecoveryDoc)
}

// Names under which the federation's key fingerprints are recorded.
const (
	fingerprintCA         = "ca-roots"
	fingerprintBundleSign = "bundle-signing-key"
)

// keyFingerprints are the SHA-256 fingerprints of the keys this control
// plane would sign with: the bundle-signing key's public key and, for the
// embedded CA, its roots (comma-separated, sorted; empty for Vault, whose
// CA is shared by every control plane that points at it).
type keyFingerprints struct {
	ca, bundleSign string
}

func fingerprintsOf(ctx context.Context, a certs.Authority, key policies.SigningKey, kind string) (keyFingerprints, error) {
	var fp keyFingerprints
	der, err := x509.MarshalPKIXPublicKey(key.Key.Public())
	if err != nil {
		return fp, err
	}
	sum := sha256.Sum256(der)
	fp.bundleSign = "sha256:" + hex.EncodeToString(sum[:])
	if kind == "" || kind == "embedded" {
		roots, err := a.TrustBundle(ctx)
		if err != nil {
			return fp, fmt.Errorf("CA roots: %w", err)
		}
		var parts []string
		for _, r := range roots {
			s := sha256.Sum256(r.Raw)
			parts = append(parts, "sha256:"+hex.EncodeToString(s[:]))
		}
		slices.Sort(parts)
		fp.ca = strings.Join(parts, ",")
	}
	return fp, nil
}

// keyPinner is what the SQL store offers for recording fingerprints.
type keyPinner interface {
	PinKeyFingerprint(ctx context.Context, name, fingerprint string) (string, error)
	ReplaceKeyFingerprint(ctx context.Context, name, fingerprint string) error
}

var _ keyPinner = (*sqlstore.Store)(nil)

// pinKeys records this control plane's key fingerprints in the store at
// the federation's first start, and on later starts refuses keys that
// differ: two control planes with their own CA or signing key against one
// store would hand gateways certificates and bundles that their peers do
// not trust. A CA rotation (the new roots still include one recorded) is
// recorded as the new set.
func pinKeys(ctx context.Context, store catalog.Store, fp keyFingerprints) error {
	p, ok := store.(keyPinner)
	if !ok {
		return nil
	}
	pinned, err := p.PinKeyFingerprint(ctx, fingerprintBundleSign, fp.bundleSign)
	if err != nil {
		return err
	}
	if pinned != fp.bundleSign {
		return fmt.Errorf("refusing to start: this store's federation signs policy bundles with key %s, but this control plane's key is %s. "+
			"Every control plane of one federation must share its keys (copy bundle-signing-key.pem and the CA from the first control plane, or use a Vault CA); "+
			"running several control planes with keys of their own is not supported. See %s", pinned, fp.bundleSign, RecoveryDoc)
	}
	if fp.ca == "" {
		return nil
	}
	pinned, err = p.PinKeyFingerprint(ctx, fingerprintCA, fp.ca)
	if err != nil {
		return err
	}
	if pinned == fp.ca {
		return nil
	}
	for _, root := range strings.Split(fp.ca, ",") {
		if slices.Contains(strings.Split(pinned, ","), root) {
			return p.ReplaceKeyFingerprint(ctx, fingerprintCA, fp.ca) // a rotation under way
		}
	}
	return fmt.Errorf("refusing to start: this store's federation trusts CA roots %s, but this control plane's CA has roots %s. "+
		"Every control plane of one federation must share its CA (copy the ca directory from the first control plane, or use a Vault CA); see %s", pinned, fp.ca, RecoveryDoc)
}

// storeIsEmpty reports whether the catalog holds nothing at all: no token,
// no member.
func storeIsEmpty(ctx context.Context, store catalog.Store) (bool, error) {
	tokens, err := store.ListTokens(ctx, catalog.TokenFilter{})
	if err != nil {
		return false, err
	}
	members, err := store.ListMembers(ctx)
	if err != nil {
		return false, err
	}
	return len(tokens) == 0 && len(members) == 0, nil
}

// checkCatalogFile refuses, before anything opens it, a SQLite catalog that
// is missing, empty or damaged in a data directory that holds state.
func checkCatalogFile(dir string) error {
	found := existingState(dir)
	if len(found) == 0 {
		return nil
	}
	if err := sqlstore.CheckExistingSQLite(filepath.Join(dir, "catalog.db")); err != nil {
		if errors.Is(err, sqlstore.ErrDamaged) || errors.Is(err, fs.ErrNotExist) {
			return refuseStartOver(dir, found, err)
		}
		return err
	}
	return nil
}
