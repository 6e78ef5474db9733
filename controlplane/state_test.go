package controlplane

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/catalog/storetest"
)

// startControlPlane runs Run in the background and returns once it is
// ready, or with the error it stopped on.
func startControlPlane(t *testing.T, cfg Config) (stop func(), err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- Run(ctx, cfg, func(Ready) { close(ready) }) }()
	select {
	case <-ready:
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("control plane stopped with %v", err)
			}
		}, nil
	case err := <-done:
		cancel()
		return nil, err
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("control plane neither ready nor failed in 60s")
		return nil, nil
	}
}

func quietConfig(dataDir, dsn string) Config {
	return Config{DataDir: dataDir, Listen: "127.0.0.1:0", Store: "postgres", PostgresDSN: dsn,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSecondControlPlaneWithOtherKeysRefuses starts a control plane against
// a PostgreSQL store, then a second one with keys of its own against the
// same store: it must refuse, naming both keys. A third that shares the
// first's keys (as documented for running several) starts.
func TestSecondControlPlaneWithOtherKeysRefuses(t *testing.T) {
	dsn := storetest.FreshPostgresDatabase(t)
	first := t.TempDir()
	stop, err := startControlPlane(t, quietConfig(first, dsn))
	if err != nil {
		t.Fatalf("first control plane: %v", err)
	}
	defer stop()

	store, err := sqlstore.OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	pinned, err := store.KeyFingerprint(context.Background(), fingerprintBundleSign)
	if err != nil || !strings.HasPrefix(pinned, "sha256:") {
		t.Fatalf("the first control plane recorded no signing-key fingerprint: %q, %v", pinned, err)
	}

	_, err = startControlPlane(t, quietConfig(t.TempDir(), dsn))
	if err == nil {
		t.Fatal("a second control plane with its own keys started against the same store")
	}
	msg := err.Error()
	if !strings.Contains(msg, "refusing to start") || !strings.Contains(msg, pinned) || strings.Count(msg, "sha256:") < 2 {
		t.Errorf("the refusal does not name both keys: %v", err)
	}

	// Sharing the first's keys: the bundle-signing key and the CA.
	third := t.TempDir()
	copyFile(t, filepath.Join(first, "bundle-signing-key.pem"), filepath.Join(third, "bundle-signing-key.pem"))
	entries, err := os.ReadDir(filepath.Join(first, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	if err := copyTree(filepath.Join(first, "ca"), filepath.Join(third, "ca")); err != nil || len(entries) == 0 {
		t.Fatalf("copy the CA: %v", err)
	}
	stop3, err := startControlPlane(t, quietConfig(third, dsn))
	if err != nil {
		t.Fatalf("a control plane sharing the federation's keys was refused: %v", err)
	}
	stop3()
}

func copyTree(from, to string) error {
	return filepath.Walk(from, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, info.Mode().Perm())
	})
}

// TestPinKeys records, refuses and follows a CA rotation, on SQLite.
func TestPinKeys(t *testing.T) {
	ctx := context.Background()
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first := keyFingerprints{ca: "sha256:aa", bundleSign: "sha256:k1"}
	steps := []struct {
		name    string
		fp      keyFingerprints
		refused string // "" when it must be accepted
	}{
		{"first start records", first, ""},
		{"same keys", first, ""},
		{"other signing key", keyFingerprints{ca: "sha256:aa", bundleSign: "sha256:k2"}, "sha256:k2"},
		{"other CA", keyFingerprints{ca: "sha256:bb", bundleSign: "sha256:k1"}, "sha256:bb"},
		{"CA rotation under way (old and new roots)", keyFingerprints{ca: "sha256:aa,sha256:cc", bundleSign: "sha256:k1"}, ""},
		{"CA rotation done", keyFingerprints{ca: "sha256:cc", bundleSign: "sha256:k1"}, ""},
		{"the old CA alone is now refused", first, "sha256:aa"},
		{"Vault CA: only the signing key is compared", keyFingerprints{bundleSign: "sha256:k1"}, ""},
	}
	for _, s := range steps {
		err := pinKeys(ctx, store, s.fp)
		switch {
		case s.refused == "" && err != nil:
			t.Errorf("%s: refused: %v", s.name, err)
		case s.refused != "" && err == nil:
			t.Errorf("%s: accepted", s.name)
		case s.refused != "" && !strings.Contains(err.Error(), s.refused):
			t.Errorf("%s: the refusal does not name %s: %v", s.name, s.refused, err)
		}
	}
}

// TestFlagsThatConflictWithTheFederationAreRefused starts a control plane,
// then again with another trust domain and another store: both refused,
// naming the flag and the federation's value; the same flags start.
func TestFlagsThatConflictWithTheFederationAreRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, Listen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	stop, err := startControlPlane(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	before, err := os.ReadFile(filepath.Join(dir, MarkerFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		tweak func(*Config)
		want  string
	}{
		{"other trust domain", func(c *Config) { c.CA.TrustDomain = "other.example" }, "--trust-domain other.example (this data directory's federation uses lienthong.vn)"},
		{"other store", func(c *Config) { c.Store, c.PostgresDSN = "postgres", "postgres://nowhere.invalid/x" }, "--store postgres"},
	} {
		t.Run(c.name, func(t *testing.T) {
			changed := cfg
			c.tweak(&changed)
			_, err := startControlPlane(t, changed)
			if err == nil || !strings.Contains(err.Error(), "refusing to start") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want a refusal naming %q", err, c.want)
			}
		})
	}
	after, _ := os.ReadFile(filepath.Join(dir, MarkerFile))
	if string(after) != string(before) {
		t.Errorf("%s changed by a refused start", MarkerFile)
	}
	stop, err = startControlPlane(t, cfg)
	if err != nil {
		t.Fatalf("the same flags again: %v", err)
	}
	stop()
}
