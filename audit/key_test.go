package audit

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadKeyCreatesOnceAndRefusesOpenFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit-checkpoint.key")
	k1, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", info.Mode().Perm())
	}
	k2, err := LoadKey(path)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("reloaded key differs (%v)", err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadKey(path); err == nil {
		t.Fatal("a world-readable key was accepted")
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte("not a key"), 0o600)
	if _, err := LoadKey(path); err == nil {
		t.Fatal("garbage accepted as a key")
	}
}
