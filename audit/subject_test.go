package audit_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/lienthong/lienthong/audit"
)

// The formula is a contract other components reproduce: recompute it here
// from its definition, and check it differs from a plain HMAC of the id (the
// hash mask's shape) under the same key.
func TestSubjectFormula(t *testing.T) {
	key := audit.SubjectKey(bytes.Repeat([]byte{7}, 32))
	m := hmac.New(sha256.New, key)
	m.Write([]byte("lienthong-audit-subject-v1\x00001090000001"))
	want := hex.EncodeToString(m.Sum(nil))
	if got := key.Subject("001090000001"); got != want {
		t.Fatalf("Subject = %s, want %s", got, want)
	}
	plain := hmac.New(sha256.New, key)
	plain.Write([]byte("001090000001"))
	if key.Subject("001090000001") == hex.EncodeToString(plain.Sum(nil)) {
		t.Fatal("subject equals a plain HMAC of the id")
	}
	if key.Subject("001090000001") == key.Subject("001090000002") {
		t.Fatal("two ids share a subject")
	}
}

func TestCreateSubjectKeyKeepsAnExistingKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit-subject.key")
	made, err := audit.CreateSubjectKey(path)
	if err != nil || !made {
		t.Fatalf("first create: %v %v", made, err)
	}
	first, err := audit.LoadSubjectKey(path)
	if err != nil {
		t.Fatal(err)
	}
	made, err = audit.CreateSubjectKey(path)
	if err != nil || made {
		t.Fatalf("second create replaced the key or failed: %v %v", made, err)
	}
	second, err := audit.LoadSubjectKey(path)
	if err != nil || !bytes.Equal(first, second) {
		t.Fatalf("key changed: %v", err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", info.Mode().Perm())
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.LoadSubjectKey(path); err == nil {
		t.Fatal("a key readable by others was loaded")
	}
	short := filepath.Join(t.TempDir(), "short.key")
	if err := os.WriteFile(short, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.LoadSubjectKey(short); err == nil {
		t.Fatal("a short key was loaded")
	}
}
