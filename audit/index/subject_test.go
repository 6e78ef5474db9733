package index_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/audit/index"
)

func TestSubjectKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, index.SubjectKeyFile)
	k1, err := index.LoadOrCreateSubjectKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("created key file: %v %v", fi, err)
	}
	k2, err := index.LoadOrCreateSubjectKey(path)
	if err != nil {
		t.Fatal(err)
	}
	const id = "001201012345"
	if k1.Subject(id) != k2.Subject(id) {
		t.Fatal("the key changed when read again")
	}
	if s := k1.Subject(id); len(s) != 64 || strings.ToLower(s) != s || strings.Contains(s, id) {
		t.Fatalf("subject %q is not lowercase hex of an HMAC", s)
	}
	if k1.Subject(id) == k1.Subject("001201012346") {
		t.Fatal("two personal IDs share a subject")
	}

	// A key of another size is refused.
	raw, _ := os.ReadFile(path)
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, raw[:16], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := index.LoadOrCreateSubjectKey(short); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
}
